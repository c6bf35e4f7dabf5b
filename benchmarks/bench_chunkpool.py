"""Slab reads at once, as the viewer's read process makes them while a scrub reads ahead:
cloud-volume's own scheduling (a new pool of download threads per read, each read an
equal share) against imagery-gui's one chunk pool (``model/chunkpool.py``: the read the
view waits for first, then the others in the order they started), in the same run.

Each round starts ``--slabs`` reads of 1024x1024x16 (both layers, the viewer's
``fetch_slab`` path, 64 download threads a layer read as the read process sets), a moment
apart, the last ranked as the one on screen. Reported per condition and chunk layout:

* when the slab on screen arrived (in the pool: urgent; without it, a read like the rest),
  and when the first slab read ahead and the last one did;
* CPU seconds the reading process used for the round (decoding, requests, threads).

Each scheduling runs in a process of its own (the pool is installed process-wide), against
the same loopback server (tests/helpers/http_server.py) with latency and failures:

    python benchmarks/bench_chunkpool.py [--conditions 100:0 400:0.2 ...] [--rounds 3]
        [--layouts 128x128x16 64x64x64 sharded] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _remote

ROOT = Path(__file__).resolve().parents[1]


def volume(layout: str) -> Path:
    if layout == "sharded":
        return _remote.sharded_demo(256)
    chunk = tuple(int(v) for v in layout.split("x"))
    return _remote.rechunked_demo(chunk, 256)  # type: ignore[arg-type]


def child(url: str, mode: str, slabs: int, rounds: int) -> dict:
    """In this process: ``rounds`` rounds of ``slabs`` reads at once."""
    import cloudvolume.datasource.precomputed.image.rx as rx
    import numpy as np

    from imagery_gui.model import chunkpool, fetchproc, netwatch
    from imagery_gui.model.dataset import Dataset, start_thread
    from imagery_gui.model.errors import SourceUnavailableError

    rx.DEFAULT_THREADS = fetchproc.ChildConfig().download_threads
    netwatch.install(viewer_retries=True)
    pooled = mode == "pool"
    if pooled:
        chunkpool.install()
    ds = Dataset(f"precomputed://{url}/image", f"precomputed://{url}/segmentation").open()
    res = ds.resolution
    (x0, y0, z0), (x1, y1, z1) = ds.volume_bounds().astype(int)
    depth = 16
    retried: list[int] = []

    def read(k: int, rank: int, ended: dict) -> None:
        z = z0 + depth * k
        box = np.array([[x0, y0, z], [min(x1, x0 + 1024), min(y1, y0 + 1024), z + depth]], float)
        for attempt in range(3):  # as the viewer: a read failed for good is tried again twice
            try:
                with chunkpool.ranked(rank) if pooled else contextlib.nullcontext():
                    labels = start_thread(
                        lambda: ds.read_segmentation_with_missing(
                            box, ds.segmentation_mip, res, None, None, True
                        )
                    )
                    ds.read_image_with_missing(box, ds.image_mip, res, fill_outside=True)
                    labels()
                break
            except SourceUnavailableError:
                if attempt == 2:
                    raise
                retried.append(k)
        ended[k] = time.monotonic()

    read((z1 - z0) // depth - 1, chunkpool.AHEAD, {})  # connections and metadata warm
    out = []
    for r in range(rounds):
        ks = list(range(r * slabs, (r + 1) * slabs))
        ended: dict[int, float] = {}
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        threads = []
        for i, k in enumerate(ks):
            rank = chunkpool.URGENT if i == len(ks) - 1 else chunkpool.AHEAD
            t = threading.Thread(target=read, args=(k, rank, ended))
            t.start()
            threads.append(t)
            time.sleep(0.01)
        for t in threads:
            t.join()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        ahead = [ended[k] - t0 for k in ks[:-1]]
        out.append(
            {
                "on_screen_s": ended[ks[-1]] - t0,
                "first_ahead_s": min(ahead),
                "all_s": max(ended.values()) - t0,
                "cpu_s": ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime,
                "reads_tried_again": sum(1 for k in retried if k in ks),
            }
        )
    return {"rounds": out}


def measure(layout: str, cond: tuple[float, float], slabs: int, rounds: int) -> dict:
    row: dict = {"layout": layout, "latency_ms": cond[0], "fail_rate": cond[1], "slabs": slabs}
    with _remote.http_server(volume(layout), cond[0], cond[1], seed=3) as url:
        for mode in ("per-read", "pool"):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", url, mode, str(slabs), str(rounds)],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:  # a read failed for good: said, not hidden
                raise SystemExit(f"{layout} {cond} {mode}: {proc.stderr.strip()[-2000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])["rounds"]
            row[mode] = {k: statistics.median(r[k] for r in got) for k in got[0]}
            row[mode]["reads_tried_again"] = sum(r["reads_tried_again"] for r in got)
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conditions", nargs="+", default=["100:0", "250:0.2", "400:0.2", "400:0.3"])
    ap.add_argument("--layouts", nargs="+", default=["128x128x16", "64x64x64", "sharded"])
    ap.add_argument("--slabs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        url, mode, slabs, rounds = args.child
        print(json.dumps(child(url, mode, int(slabs), int(rounds))))
        return 0
    rows = []
    print(
        f"{'layout':11s} {'condition':16s} {'on screen: c-v / pool':>22s} "
        f"{'first ahead':>14s} {'all':>14s} {'CPU s':>12s}"
    )
    for layout in args.layouts:
        for c in args.conditions:
            lat, rate = (float(v) for v in c.split(":"))
            row = measure(layout, (lat, rate), args.slabs, args.rounds)
            rows.append(row)
            a, b = row["per-read"], row["pool"]
            print(
                f"{layout:11s} {f'{lat:.0f} ms, {rate:.0%}':16s} "
                f"{a['on_screen_s']:6.2f} / {b['on_screen_s']:5.2f} s ({a['on_screen_s'] / b['on_screen_s']:.1f}x) "
                f"{a['first_ahead_s']:5.2f} / {b['first_ahead_s']:5.2f} "
                f"{a['all_s']:5.2f} / {b['all_s']:5.2f} "
                f"{a['cpu_s']:5.2f} / {b['cpu_s']:4.2f}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    raise SystemExit(main())
