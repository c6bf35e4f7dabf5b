"""The viewer against a "remote" source: the demo volume over HTTP on 127.0.0.1 (a server
in its own process) with latency added to every request and a share of requests failing
with HTTP 503: 100 ms and none, 100 ms and 20%, 200 ms and 10%.

Measured in the same run, for each condition:

* first image: opening the sources to the first slice drawn with its overlay;
  reference: plain cloud-volume opening both layers and reading that slice;
* scrubbing at 10 slices per second through 4 z-chunks after a short warm-up: the
  fraction of steps whose slice was on screen before the next step, and the number of
  steps with nothing to show for the requested slice; reference: a naive viewer that reads
  each slice when asked (it delivers at most 1 / read-time slices per second);
* the longest GUI-thread stall meanwhile (a 2 ms heartbeat timer), and for each of 50 ms
  or more whether a process that only sleeps woke late at the same moment (the machine
  stood still);
* whether the status bar said it was retrying (with failures);
* a fresh viewer process opening the source (100 ms latency) at once, and 3 s after
  launch (by then cloud-volume is imported and the heap settled): time to the first
  image and the longest GUI stall from the open to it;
* a bigger volume (3072x3072, made once by ``_remote.big_volume``) scrubbed at 10 slices
  per second in a 1920x1080 window (regions of ~4.6 megapixels), fill and outlines: the
  longest GUI stall, beside the same with every slice coloured in the GUI thread;
* a source that goes down (every request 503) or hangs (no answer) mid-session: the time
  from the z step that needs new data to the error message, with the default fetch
  timeout (10 s) and with 3 s, and whether the view loads again once the source is back.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_remote.py [--json out.json]

``--scrub-only --conditions MS:RATE[:JITTER[:MBPS]] ...`` runs only the first-image and
scrub rows under those conditions (MBPS: every answer shares a link of that many MB/s, sent
in pieces as flows on a bottleneck share it); ``--straggle SHARE:MS`` makes that share of
requests wait that much longer in every condition. The volume is the demo's voxels
``--depth`` slices deep (default 256: the demo's own 64 slices hold only four 16-deep
chunks, so the open's prefetch holds most of a 64-step scrub; at 256 the scrub starts 128
slices from the open); ``--chunks X Y Z`` rewrites it with other chunks, ``--sharded`` as
sharded Precomputed (both: sharded, in those chunks). The scrub rows also count steps that showed a coarser slice while
the full one was on its way, and record the status bar's link notices. ``--trace-stalls``
adds to each GUI stall of 50 ms or more what a sampling thread saw meanwhile: the GUI
thread's innermost frames, the other threads running Python, garbage collections, and
how late the sampler itself woke (``_remote.StallTracer``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _remote
from _remote import (
    Heartbeat,
    IdleReference,
    http_server,
    open_served_demo,
    pump,
    run_for,
    viewer_window,
)

CONDITIONS = [(100, 0.0), (100, 0.2), (200, 0.1)]
STEPS = 64
STEP_S = 0.1


def slice_read_time(url: str, center, ds_res) -> tuple[float, float]:
    """Plain cloud-volume: open both layers, read a 1024x1024 slice of each (mip 0).
    Returns (open + read, read alone)."""
    from cloudvolume import Bbox, CloudVolume

    x, y, z = (int(v) for v in center)
    t_open = time.perf_counter()
    img = CloudVolume(f"precomputed://{url}/image", progress=False, fill_missing=True)
    seg = CloudVolume(f"precomputed://{url}/segmentation", progress=False, fill_missing=True)
    t0 = time.perf_counter()
    img.download(Bbox((x - 512, y - 512, z + 20), (x + 512, y + 512, z + 21)), mip=0)
    seg.download(
        Bbox((x // 2 - 256, y // 2 - 256, z + 20), (x // 2 + 256, y // 2 + 256, z + 21)), mip=0
    )
    t1 = time.perf_counter()
    return t1 - t_open, t1 - t0


#: Stragglers added to every condition (--straggle): (share of requests, extra ms).
STRAGGLE = (0.0, 0.0)


def _net(cond: tuple[float, ...]) -> dict:
    """Server options of a condition (latency, failing[, jitter[, MB/s]])."""
    jitter = cond[2] if len(cond) > 2 else 0.0
    mbps = cond[3] if len(cond) > 3 else 0.0
    return dict(jitter_ms=jitter, bandwidth_mbps=mbps, straggle=STRAGGLE)


def reference(cond: tuple[float, ...], demo) -> tuple[float, float]:
    """Plain cloud-volume (its own retry policy): measured before any viewer exists. With
    30% of requests failing, its 7 tries of a chunk can all fail (the read raises): such a
    run is said and left out, and a third is made; NaN if none of 3 ends."""
    runs = []
    with http_server(demo.root, cond[0], cond[1], seed=2, **_net(cond)) as url:
        for _ in range(3):
            try:
                runs.append(slice_read_time(url, demo.center, None))
            except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
                print(f"plain cloud-volume failed at {cond}: {type(exc).__name__}: {exc}")
            if len(runs) == 2:
                break
    if not runs:
        return float("nan"), float("nan")
    return min(r[0] for r in runs), min(r[1] for r in runs)


def run(cond: tuple[float, ...], app, demo, t_ref: tuple[float, float]) -> dict:
    from imagery_gui.settings import Settings

    latency_ms, fail_rate = cond[0], cond[1]
    with http_server(demo.root, latency_ms, fail_rate, seed=1, **_net(cond)) as url:
        settings = Settings()
        settings.fetch_timeout_s = 60.0
        win = viewer_window(settings, (1024 + 380, 800))
        notes: list[str] = []
        link_notes: list[str] = []
        win.display.activity.connect(notes.append)
        win.display.linkNotice.connect(link_notes.append)
        idle = IdleReference()
        hb_open = Heartbeat()
        hb_open.start()
        t0 = time.perf_counter()
        open_served_demo(win, url, demo)
        pump(app, lambda: win.display.complete and win.canvas.overlay.image is not None)
        t_first = time.perf_counter() - t0
        stall_open = hb_open.stop()
        lo, hi = win.display.z_bounds()
        # Scrub 64 slices from a z the open's prefetch (around the centre) did not reach,
        # when the volume is deep enough (--depth 256); through the 64-deep demo, from its
        # first slice, where the open's prefetch may already hold much of what follows.
        start = lo + 128 if hi - lo + 1 >= 256 else lo
        win.set_z(start)
        pump(app, lambda: win.display.complete)
        run_for(app, 1.5)  # warm-up: prefetch gets ahead
        hb = Heartbeat()
        hb.start()
        on_time = blank = coarser = 0
        trace = []  # per step: F full, C coarser, B blank
        for i in range(STEPS):
            z = start + i
            win.set_z(z)
            run_for(app, STEP_S)
            shown = win.display.shown
            want = win.display.key_for(win.display.region)
            if (
                shown is not None
                and want is not None
                and shown.key == want
                and shown.key.z0 + shown.zi == win.display.z_at_mip(win.display.region)
            ):
                on_time += 1
            if win.display.current_slab() is None:
                blank += 1
                trace.append("B")
            elif win.display.current_slab()[0].key.region != win.display.region:
                coarser += 1
                trace.append("C")
            else:
                trace.append("F")
        stall = hb.stop()
        plan = win.display.plan
        region = win.display.region
        evicted = win.display.cache.evicted
        idle.stop()
        gaps = sorted(hb.gaps)
        p99 = gaps[int(0.99 * (len(gaps) - 1))] if gaps else 0.0
        retry_notes = [n for n in notes if "retrying" in n or "trying again" in n]
        win.close()
    return {
        "latency_ms": latency_ms,
        "fail_rate": fail_rate,
        "jitter_ms": _net(cond)["jitter_ms"],
        "bandwidth_mbps": _net(cond)["bandwidth_mbps"],
        "straggle": list(STRAGGLE),
        "first_image_s": t_first,
        "stall_opening_ms": stall_open * 1e3,
        "plain_cloudvolume_open_and_slice_s": t_ref[0],
        "steps": STEPS,
        "steps_on_time": on_time,
        "steps_blank": blank,
        "steps_coarser": coarser,
        "step_trace": "".join(trace),
        "link_notices": [n for n in link_notes if n],
        "last_plan": {
            "ahead": plan.ahead,
            "back": plan.back,
            "parallel": plan.parallel,
            "level": plan.level,
        },
        # slabs pushed out of the memory bound during the open and the scrub (each one
        # wanted again is read and decoded again)
        "slab_evictions": evicted,
        "region_px": list(region.shape) if region is not None else None,
        "image_mip": region.image_mip if region is not None else None,
        "naive_slices_per_s": 1 / t_ref[1],
        "longest_gui_stall_ms": stall * 1e3,
        "gui_stall_p99_ms": p99 * 1e3,
        "status_said_retrying": bool(retry_notes),
        **_remote.stalls_report(hb_open.stalls + hb.stalls, idle, (hb_open, hb)),
    }


def cold_open(url: str, delay_s: float) -> dict:
    """In a fresh process: launch the viewer, wait ``delay_s``, open, wait for the image."""
    from imagery_gui.app import make_app
    from imagery_gui.model.demo import ensure_demo
    from imagery_gui.settings import Settings

    demo = ensure_demo()
    app = make_app()
    t_launch = time.perf_counter()
    win = viewer_window(Settings(), (1024 + 380, 800))
    run_for(app, delay_s)
    hb = Heartbeat()
    hb.start()
    t0 = time.perf_counter()
    open_served_demo(win, url, demo)
    pump(app, lambda: win.display.complete and win.canvas.overlay.image is not None)
    t1 = time.perf_counter()
    stall = hb.stop()
    win.close()
    return {
        "open_after_launch_s": delay_s,
        "window_s": t0 - t_launch - delay_s,
        "first_image_s": t1 - t0,
        "longest_gui_stall_ms": stall * 1e3,
    }


def cold_opens(demo, latency_ms: float = 100) -> list[dict]:
    import subprocess

    rows = []
    with http_server(demo.root, latency_ms, 0.0, seed=6) as url:
        for delay in (0.0, 3.0):
            out = subprocess.run(
                [sys.executable, __file__, "--cold-open", url, str(delay)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def big_scrub(app, colour_in_gui: bool) -> dict:
    """Scrubbing a bigger volume in a 1920x1080 window at 6 nm a pixel (regions of ~4.6
    megapixels), 100 ms latency, fill then 3 px outlines. ``colour_in_gui``: the
    reference, colouring every slice in the GUI thread as small slices are."""
    from imagery_gui.qt import display
    from imagery_gui.qt.dialogs import OpenRequest
    from imagery_gui.settings import Settings

    root = _remote.big_volume()
    saved = display.LUT_GUI_MS
    display.LUT_GUI_MS = float("inf") if colour_in_gui else saved
    out = {"colouring": "GUI thread (reference)" if colour_in_gui else "imagery-gui"}
    try:
        with http_server(root, 100, 0.0, seed=7) as url:
            settings = Settings()
            settings.fetch_timeout_s = 60.0
            win = viewer_window(settings, (1920, 1080))
            win.open_sources(
                OpenRequest(
                    f"precomputed://{url}/image",
                    f"precomputed://{url}/segmentation",
                    [1536, 1536, 0],
                    None,
                )
            )
            pump(app, lambda: win.display.complete and win.canvas.overlay.image is not None)
            win.canvas.show_nm(*win.canvas.center_nm(), 6.0)
            pump(app, lambda: win.display.complete)
            slab, _ = win.display.current_slab()
            out["region_px"] = list(slab.local.shape[1:])
            for mode in ("fill", "outline"):
                if mode == "outline":
                    win.overlay.styleChanged.emit({"outline": True, "width": 3, "side": "in"})
                win.set_z(0)
                pump(app, lambda: win.display.complete)
                run_for(app, 1.5)  # warm-up: prefetch gets ahead
                idle = IdleReference()
                hb = Heartbeat()
                hb.start()
                for z in range(1, 16):
                    win.set_z(z)
                    run_for(app, STEP_S)
                pump(app, lambda: win.display.complete)
                out[f"{mode}_longest_gui_stall_ms"] = hb.stop() * 1e3
                idle.stop()
                out[mode] = _remote.stalls_report(hb.stalls, idle)
            win.close()
    finally:
        display.LUT_GUI_MS = saved
    return out


def down_source(app, demo, mode: str, timeout_s: float) -> dict:
    """Time from a step needing new data to the error, with the source down or hung."""
    from imagery_gui.settings import Settings
    from tests.helpers.http_server import LoopbackServer

    with LoopbackServer(demo.root, latency=0.05, seed=4) as srv:
        settings = Settings()
        settings.fetch_timeout_s = timeout_s
        win = viewer_window(settings, (1024 + 380, 800))
        errors: list[str] = []
        win.errorShown.connect(errors.append)
        open_served_demo(win, srv.url, demo)
        pump(app, lambda: win.display.complete and win.canvas.overlay.image is not None)
        if mode == "down":
            srv.down = True
        else:
            srv.hang = 3 * timeout_s
        win.display.cache.clear()
        idle = IdleReference()
        hb = Heartbeat()
        hb.start()
        t0 = time.perf_counter()
        win.step_z(20)  # a slab that is not in memory
        pump(app, lambda: bool(errors), timeout=20 * timeout_s)
        t_error = time.perf_counter() - t0
        stall = hb.stop()
        idle.stop()
        srv.down, srv.hang = False, 0.0
        win.step_z(1)
        try:
            pump(app, lambda: win.display.complete and win.display.current_slab() is not None, 60)
            recovered = True
        except TimeoutError:
            recovered = False
        win.close()
    return {
        "mode": mode,
        "fetch_timeout_s": timeout_s,
        "time_to_error_s": t_error,
        "error": errors[0],
        "longest_gui_stall_ms": stall * 1e3,
        "view_loads_when_back": recovered,
        **_remote.stalls_report(hb.stalls, idle),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--conditions",
        nargs="+",
        metavar="MS:RATE",
        help="scrub conditions as latency_ms:fail_rate[:jitter_ms[:MB/s]] (default: 100:0 "
        "100:0.2 200:0.1); MB/s: all answers share a link that fast",
    )
    ap.add_argument(
        "--straggle",
        metavar="SHARE:MS",
        help="in every condition that share of requests waits that many ms more",
    )
    ap.add_argument(
        "--chunks",
        nargs=3,
        type=int,
        metavar=("X", "Y", "Z"),
        help="serve the demo re-written with chunks of this size in both layers "
        "(default: the demo's own, 128 128 16)",
    )
    ap.add_argument(
        "--sharded",
        action="store_true",
        help="serve the demo rewritten as sharded Precomputed (every scale; in the chunks "
        "of --chunks if given)",
    )
    ap.add_argument(
        "--depth",
        type=int,
        default=256,
        help="serve the demo this many slices deep (its 64 slices mirrored back and forth; "
        "default 256). At 256 or more the scrub starts 128 slices from the open; at the "
        "demo's own 64 it starts at the first slice, and the open's prefetch holds most of it",
    )
    ap.add_argument("--scrub-only", action="store_true", help="only the first image and scrub rows")
    ap.add_argument(
        "--trace-stalls",
        action="store_true",
        help="record the GUI thread's stack and garbage collections during each stall of "
        "50 ms or more (a sampling thread: costs a little)",
    )
    ap.add_argument("--cold-open", nargs=2, metavar=("URL", "DELAY"), help=argparse.SUPPRESS)
    _remote.add_server_option(ap)
    args = ap.parse_args()
    _remote.use_server(args)
    _remote.TRACE_STALLS = args.trace_stalls
    if args.cold_open:
        print(json.dumps(cold_open(args.cold_open[0], float(args.cold_open[1]))))
        return 0
    from imagery_gui.app import make_app
    from imagery_gui.model import fetchproc
    from imagery_gui.model.demo import ensure_demo

    demo = ensure_demo()
    app = make_app()
    # The viewer starts its read process at launch; here it is warm before the first
    # open, so every condition's first image is "open data in a running viewer".
    fetchproc.shared().wait_ready(60)
    global STRAGGLE
    if args.straggle:
        share, ms = (float(v) for v in args.straggle.split(":"))
        STRAGGLE = (share, ms)
    conditions: list[tuple[float, ...]] = list(CONDITIONS)
    if args.conditions:
        conditions = [tuple(float(v) for v in c.split(":")) for c in args.conditions]
    if args.sharded:
        import types

        chunks = tuple(args.chunks) if args.chunks else (128, 128, 16)
        demo = types.SimpleNamespace(
            root=_remote.sharded_demo(args.depth, chunks), center=demo.center
        )
    elif args.chunks or args.depth != 64:
        import types

        chunks = tuple(args.chunks) if args.chunks else (128, 128, 16)
        demo = types.SimpleNamespace(
            root=_remote.rechunked_demo(chunks, args.depth), center=demo.center
        )
    cold = (
        [] if args.scrub_only else cold_opens(demo)
    )  # first: nothing else has run in this process's server yet
    print(f"\n{'fresh viewer, open':20s} {'window':>7s} {'first image':>11s} {'stall max':>9s}")
    for r in cold:
        when = (
            f"{r['open_after_launch_s']:.0f} s after launch"
            if r["open_after_launch_s"]
            else "at launch"
        )
        print(
            f"{when:20s} {r['window_s']:5.2f} s {r['first_image_s']:9.2f} s "
            f"{r['longest_gui_stall_ms']:6.1f} ms"
        )
    refs = {c: reference(c, demo) for c in conditions}
    rows = [run(c, app, demo, refs[c]) for c in conditions for _ in range(args.repeats)]
    print(
        f"\n{'condition':26s} {'first image':>11s} {'plain c-v':>10s} {'10/s scrub on time':>18s} "
        f"{'blank':>5s} {'coarser':>8s} {'naive max':>9s} {'stall max':>9s} {'stall p99':>9s} {'retrying?':>9s} "
        f"{'stall opening':>13s}"
    )
    for r in rows:
        cond = f"{r['latency_ms']:.0f} ms, {r['fail_rate']:.0%} failing"
        if r.get("jitter_ms"):
            cond += f", +0-{r['jitter_ms']:.0f}"
        if r.get("bandwidth_mbps"):
            cond += f", {r['bandwidth_mbps']:g} MB/s"
        print(
            f"{cond:26s} {r['first_image_s']:9.2f} s {r['plain_cloudvolume_open_and_slice_s']:8.2f} s "
            f"{r['steps_on_time']:>11d} / {r['steps']:<4d} {r['steps_blank']:5d} "
            f"{r['steps_coarser']:8d} "
            f"{r['naive_slices_per_s']:6.1f}/s {r['longest_gui_stall_ms']:6.1f} ms {r['gui_stall_p99_ms']:6.1f} ms "
            f"{r['status_said_retrying']!s:>9s} {r['stall_opening_ms']:10.1f} ms"
        )
    if args.scrub_only:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"rows": rows}, indent=2))
        return 0
    big = [big_scrub(app, colour_in_gui) for colour_in_gui in (True, False)]
    print(f"\n{'big volume, 10/s scrub':24s} {'region':>11s} {'stall, fill':>11s} {'outlines':>9s}")
    for r in big:
        print(
            f"{r['colouring']:24s} {r['region_px'][1]:>5d}x{r['region_px'][0]:<5d} "
            f"{r['fill_longest_gui_stall_ms']:8.1f} ms {r['outline_longest_gui_stall_ms']:6.1f} ms"
        )
    down = [down_source(app, demo, m, t) for m in ("down", "hung") for t in (10.0, 3.0)]
    print(
        f"\n{'source':12s} {'fetch timeout':>13s} {'error after':>11s} {'stall max':>9s} "
        f"{'loads when back':>15s}  message"
    )
    for r in down:
        print(
            f"{r['mode']:12s} {r['fetch_timeout_s']:11.0f} s {r['time_to_error_s']:9.2f} s "
            f"{r['longest_gui_stall_ms']:6.1f} ms {r['view_loads_when_back']!s:>15s}  {r['error'][:70]}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"rows": rows, "down": down, "cold": cold, "big": big}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
