"""A long session against a "remote" source: memory, threads and file descriptors over a
random walk of pans, zooms, z steps and style changes, with the memory cache at 256 MiB.

The demo volume is served over HTTP on 127.0.0.1 (100 ms per request by default) by a
separate process. Every 0.5 s the walk does one thing a user does: a z step (1-10
slices, either way), a pan (up to half a view), a zoom (x2 or /2) or a style change (fill
or outline, width, side). Every 5 s it records,
for the viewer's process and its read process: resident memory, threads and open file
descriptors, plus the bytes held in the slab and outline caches. It also keeps the longest
GUI-thread stall (a 2 ms heartbeat timer), and lists every stall of 50 ms or more with
whether a process that only sleeps, running beside it, woke late at the same moment (then
the whole machine stood still, e.g. a virtual machine's host took the CPU).

Reported: memory right after the first image (the baseline), the largest and the last
figure, growth over the second half of the run (MiB per minute; a leak shows here), and
whether growth above the baseline stayed within the configured bound.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_longrun.py [--minutes 10] [--json out]
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
    proc_stats,
    pump,
    run_for,
    viewer_window,
)

CACHE_MB = 256


def _child_stats(pid: int | None) -> dict:
    if pid is None:
        return {"rss_mib": 0.0, "threads": 0, "fds": 0}
    return proc_stats(pid)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json", type=Path)
    _remote.add_server_option(ap)
    args = ap.parse_args()
    _remote.use_server(args)

    import numpy as np

    from imagery_gui.app import make_app
    from imagery_gui.model.demo import ensure_demo
    from imagery_gui.settings import Settings

    demo = ensure_demo()
    app = make_app()
    rng = np.random.default_rng(args.seed)
    samples: list[dict] = []
    with http_server(demo.root, args.latency_ms, args.fail_rate, seed=args.seed) as url:
        settings = Settings()
        settings.cache_mb = CACHE_MB
        settings.fetch_timeout_s = 30.0
        win = viewer_window(settings, (1400, 900))
        open_served_demo(win, url, demo)
        pump(app, lambda: win.display.complete and win.canvas.overlay.image is not None)
        run_for(app, 2.0)
        reader = win.display.reader
        lo, hi = win.display.z_bounds()
        vol = (
            win.state.dataset.volume_bounds(win.state.dataset.resolution)
            * win.state.dataset.resolution
        )
        counts = {"z": 0, "pan": 0, "zoom": 0, "style": 0}

        def sample(t: float) -> None:
            me = proc_stats()
            child = _child_stats(reader.pid if reader is not None else None)
            samples.append(
                {
                    "t_s": round(t, 1),
                    "rss_mib": round(me["rss_mib"] + child["rss_mib"], 1),
                    "viewer_rss_mib": round(me["rss_mib"], 1),
                    "reader_rss_mib": round(child["rss_mib"], 1),
                    "threads": me["threads"],
                    "reader_threads": child["threads"],
                    "fds": me["fds"],
                    "reader_fds": child["fds"],
                    "slab_cache_mib": round(win.display.cache.nbytes / 2**20, 1),
                    "outline_cache_mib": round(win.display._outline_bytes / 2**20, 1),
                }
            )
            s = samples[-1]
            print(
                f"{s['t_s']:7.1f} s  rss {s['rss_mib']:7.1f} MiB (viewer {s['viewer_rss_mib']:6.1f}"
                f" + reader {s['reader_rss_mib']:6.1f})  threads {s['threads']:3d}+"
                f"{s['reader_threads']:<3d} fds {s['fds']:3d}+{s['reader_fds']:<3d} "
                f"slabs {s['slab_cache_mib']:6.1f} MiB  outlines {s['outline_cache_mib']:5.1f} MiB",
                flush=True,
            )

        hb = Heartbeat()
        stall_by_kind: dict[str, float] = {}
        idle = IdleReference()
        hb.start()
        t0 = time.perf_counter()
        next_sample = 0.0
        duration = args.minutes * 60
        while (now := time.perf_counter() - t0) < duration:
            if now >= next_sample:
                sample(now)
                next_sample += 5.0
            kind = rng.choice(["z", "z", "z", "pan", "pan", "zoom", "style"])
            counts[kind] += 1
            if kind == "z":
                step = int(rng.integers(1, 11)) * int(rng.choice([-1, 1]))
                win.set_z(int(np.clip(win.display.z + step, lo, hi)))
            elif kind == "pan":
                x0, y0, x1, y1 = win.canvas.visible_nm()
                cx = float(np.clip((x0 + x1) / 2 + rng.uniform(-0.5, 0.5) * (x1 - x0), *vol[:, 0]))
                cy = float(np.clip((y0 + y1) / 2 + rng.uniform(-0.5, 0.5) * (y1 - y0), *vol[:, 1]))
                win.canvas.show_nm(cx, cy, win.canvas.nm_per_px())
            elif kind == "style":  # fill <-> outline, another width or side
                values = {
                    "outline": not win.state.style.outline,
                    "width": int(rng.integers(1, 8)),
                    "side": str(rng.choice(["in", "out"])),
                }
                win.overlay.styleChanged.emit(values)  # as the widgets would, in one go
            else:
                cx, cy = win.canvas.center_nm()
                f = float(rng.choice([0.5, 2.0]))
                win.canvas.show_nm(cx, cy, float(np.clip(win.canvas.nm_per_px() * f, 2.0, 32.0)))
            n_gaps = len(hb.gaps)
            run_for(app, 0.5)
            worst = max(hb.gaps[n_gaps:], default=0.0)
            stall_by_kind[kind] = max(stall_by_kind.get(kind, 0.0), worst)
        sample(time.perf_counter() - t0)
        stall = hb.stop()
        idle.stop()
        gaps = sorted(hb.gaps)
        win.close()

    base = samples[0]["rss_mib"]
    peak = max(s["rss_mib"] for s in samples)
    half = [s for s in samples if s["t_s"] >= duration / 2]
    slope = float(np.polyfit([s["t_s"] / 60 for s in half], [s["rss_mib"] for s in half], 1)[0])
    summary = {
        "minutes": args.minutes,
        "latency_ms": args.latency_ms,
        "fail_rate": args.fail_rate,
        "actions": counts,
        "cache_bound_mib": CACHE_MB,
        "rss_after_first_image_mib": base,
        "rss_peak_mib": peak,
        "rss_last_mib": samples[-1]["rss_mib"],
        "growth_above_first_image_mib": round(peak - base, 1),
        "within_bound": peak - base <= CACHE_MB,
        "rss_slope_second_half_mib_per_min": round(slope, 2),
        "threads_range": [min(s["threads"] for s in samples), max(s["threads"] for s in samples)],
        "reader_threads_range": [
            min(s["reader_threads"] for s in samples),
            max(s["reader_threads"] for s in samples),
        ],
        "fds_range": [min(s["fds"] for s in samples), max(s["fds"] for s in samples)],
        "reader_fds_range": [
            min(s["reader_fds"] for s in samples),
            max(s["reader_fds"] for s in samples),
        ],
        "longest_gui_stall_ms": round(stall * 1e3, 1),
        "longest_stall_after_ms": {k: round(v * 1e3, 1) for k, v in stall_by_kind.items()},
        "gui_stall_p99_ms": round(gaps[int(0.99 * (len(gaps) - 1))] * 1e3, 1) if gaps else 0.0,
        **_remote.stalls_report(hb.stalls, idle),
    }
    print("\n" + json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "samples": samples}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
