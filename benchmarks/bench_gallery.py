"""The gallery with a large site table (offscreen), beside a bare Qt grid in the same run.

A table of N sites (default 10,000) spread over the demo volume, with 18-digit pre/post
root ids, opened in the real window; View > Gallery at 1180x820 with 160 px tiles. Then,
with a 2 ms heartbeat timer in the GUI thread and one idle process per CPU beside it (so
a stall of the machine itself can be told from one of ours):

* **skim**: the grid scrolled by a mouse-wheel step (a quarter tile) every 16 ms, for
  ``--seconds`` (a user skimming the grid fast), while tiles are made in the background;
  the share of on-screen tiles that had their picture at each step, and tiles made per
  second;
* **jump**: a page down every 60 ms to the end of the table, then Home and End: the
  longest stall, and resident memory after every tile of the table has been asked for
  (the tile cache holds at most its byte budget; decisions are not in it);
* **verdicts**: 1,000 verdict key presses on successive tiles, each saved to the review
  file before the next: the longest stall and the median time per decision.

The reference is what a Qt programmer writes first: a ``QListView`` in icon mode over a
``QStandardItemModel`` of N items, each with its own pre-made ``QPixmap`` icon of the same
size (all pictures in memory), scrolled the same way. Its pictures are one figure copied
(making N real figures up front is what the gallery avoids); its memory is the pixmaps it
holds.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gallery.py [--sites 10000] [--json out]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks._remote import (
    Heartbeat,
    IdleReference,
    http_server,
    proc_stats,
    pump,
    run_for,
    stalls_report,
)

SIZE = (1180, 820)


def site_frame(demo, n: int, seed: int = 0):
    """N sites at random places inside the demo volume, with the demo table's root ids."""
    import pandas as pd

    from imagery_gui.model.dataset import Dataset

    ds = Dataset(demo.image_source, demo.segmentation_source)
    res = np.asarray(ds.resolution, dtype=float)
    lo, hi = ds.volume_bounds(res)
    rng = np.random.default_rng(seed)
    margin = np.array([100, 100, 6])
    ctr_vox = np.c_[[rng.integers(lo[k] + margin[k], hi[k] - margin[k], n) for k in range(3)]].T
    syn = pd.read_csv(demo.synapses)
    roots = syn[["pre_pt_root_id", "post_pt_root_id"]].to_numpy()[rng.integers(0, len(syn), n)]
    ctr = (ctr_vox * res / np.array([4, 4, 40])).astype(int)  # the demo table's 4x4x40 nm
    d = np.c_[rng.integers(-20, 20, (n, 2)), np.zeros(n, int)]
    return pd.DataFrame(
        {
            "id": np.arange(n) + 864691135000000000,
            "pre_pt_root_id": roots[:, 0],
            "post_pt_root_id": roots[:, 1],
            "size": rng.integers(20, 5000, n),
            "pre_pt_position": list(ctr - d),
            "post_pt_position": list(ctr + d),
            "ctr_pt_position": list(ctr),
        }
    )


def skim(app, view, seconds: float, step_px: int, covered=None) -> dict:
    """Scroll ``view`` by ``step_px`` every 16 ms for ``seconds``; heartbeat stalls and,
    with ``covered()``, the share of on-screen tiles that had their picture at each step."""
    bar = view.verticalScrollBar()
    beat, idle = Heartbeat(), IdleReference()
    beat.start()
    shares = []
    t_end = time.perf_counter() + seconds
    nxt = time.perf_counter()
    while time.perf_counter() < t_end and bar.value() < bar.maximum():
        now = time.perf_counter()
        if now >= nxt:
            bar.setValue(bar.value() + step_px)
            nxt = now + 0.016
            if covered is not None:
                shares.append(covered())
        app.processEvents()
        time.sleep(0.0005)
    longest = beat.stop()
    idle.stop()
    out = {
        "longest_stall_ms": round(longest * 1e3, 1),
        "p99_gap_ms": round(float(np.percentile(beat.gaps, 99)) * 1e3, 1) if beat.gaps else 0,
        "scrolled_px": bar.value(),
        **stalls_report(beat.stalls, idle),
    }
    if shares:
        out["tiles_shown_with_picture_pct"] = round(100 * float(np.mean(shares)), 1)
    return out


def jump(app, view, key_press) -> dict:
    """A page down every 60 ms to the end of the table, then the Home and End keys."""
    from PySide6.QtCore import Qt

    bar = view.verticalScrollBar()
    beat = Heartbeat()
    beat.start()
    t0 = time.perf_counter()
    pages = 0
    while bar.value() < bar.maximum():
        bar.setValue(bar.value() + bar.pageStep())  # what PageDown on the scroll bar does
        pages += 1
        run_for(app, 0.06)
    key_press(Qt.Key.Key_Home)
    run_for(app, 0.3)
    key_press(Qt.Key.Key_End)
    run_for(app, 0.3)
    return {
        "pages": pages,
        "seconds": round(time.perf_counter() - t0, 1),
        "longest_stall_ms": round(beat.stop() * 1e3, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--tile", type=int, default=160)
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        help="serve the demo over loopback HTTP with this latency (default: read from disk)",
    )
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.latency_ms is None:
        return run(args, None)
    from imagery_gui.model.demo import ensure_demo

    root = Path(ensure_demo().image_source.split("file://", 1)[1]).parent
    with http_server(root, args.latency_ms, args.fail_rate) as url:
        return run(args, url)


def run(args, url: str | None) -> int:
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1)  # kill -USR1 PID: where is it now

    def say(what: str) -> None:
        print(f"bench_gallery: {what}", file=sys.stderr, flush=True)

    from PySide6.QtCore import QEvent, QSize, Qt
    from PySide6.QtGui import QKeyEvent, QPixmap, QStandardItem, QStandardItemModel
    from PySide6.QtWidgets import QApplication, QListView

    from imagery_gui.app import create_window, make_app
    from imagery_gui.model.demo import ensure_demo
    from imagery_gui.qt.gallery import TileKey
    from imagery_gui.settings import Settings

    app = make_app()
    demo = ensure_demo()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gallery-"))
    os.environ["IMAGERY_GUI_SETTINGS_DIR"] = str(tmp / "settings")
    table_csv = tmp / "sites.csv"
    site_frame(demo, args.sites).to_csv(table_csv, index=False)

    settings = Settings()
    settings.gallery_tile_px = args.tile
    win = create_window(settings=settings)
    win.persist_settings = False
    win.show()
    from imagery_gui.model.inputs import OpenRequest

    image, seg = demo.image_source, demo.segmentation_source
    if url is not None:
        image, seg = f"precomputed://{url}/image", f"precomputed://{url}/segmentation"
    win.open_sources(OpenRequest(image, seg, None, None))
    pump(app, lambda: win.display.complete)
    say("window open; reading the table")
    win.sites.open_table(str(table_csv))
    pump(app, lambda: win.state.sites is not None and len(win.state.sites) == args.sites)
    rss0 = proc_stats()["rss_mib"]
    t = time.perf_counter()
    win.gallery.open()
    g = win.gallery
    g.window.resize(*SIZE)
    app.processEvents()
    t_open = (time.perf_counter() - t) * 1e3
    grid = g.window.grid

    def covered() -> float:
        first, last = grid.visible_positions()
        rows = g.window.model.rows[first : last + 1]
        if len(rows) == 0:
            return 1.0
        return sum(TileKey(g.epoch, int(r), 0) in g.cache for r in rows) / len(rows)

    t = time.perf_counter()
    say("gallery open")
    pump(app, lambda: covered() == 1.0)
    first_screen_s = time.perf_counter() - t
    first, last = grid.visible_positions()
    on_screen = last - first + 1

    def press(widget):
        def key(k):
            QApplication.sendEvent(
                widget, QKeyEvent(QEvent.Type.KeyPress, k, Qt.KeyboardModifier.NoModifier)
            )

        return key

    say("first screen made; skimming")
    made0 = len(g.cache)
    t = time.perf_counter()
    ours_skim = skim(app, grid, args.seconds, max(8, args.tile // 4), covered)
    tiles_per_s = None  # tiles made during the skim (the cache only grows here: no eviction yet)
    if g.cache.bytes < g.cache.budget:
        tiles_per_s = round((len(g.cache) - made0) / (time.perf_counter() - t), 1)
    say("paging through all")
    ours_jump = jump(app, grid, press(grid))
    say("verdicts")
    run_for(app, 1.0)
    rss1 = proc_stats()["rss_mib"]
    pool = g.renderer.signals.pool
    pool_pids = list(getattr(pool, "_processes", {}) or {}) if pool is not None else []
    rss_pool = sum(proc_stats(pid)["rss_mib"] for pid in pool_pids)

    # verdicts: 1,000 key presses on successive tiles, each saved before the next
    grid.setCurrentIndex(g.window.model.index(0))
    beat = Heartbeat()
    beat.start()
    per = []
    key = press(grid)
    for i in range(1000):
        grid.setCurrentIndex(g.window.model.index(i))
        t = time.perf_counter()
        QApplication.sendEvent(
            grid, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_1, Qt.KeyboardModifier.NoModifier, "1")
        )
        per.append((time.perf_counter() - t) * 1e3)
        app.processEvents()
    verdict_stall = beat.stop()
    del key
    reviewed = g.review.progress()[0]
    cache_mib = g.cache.bytes / 2**20
    budget_mib = g.cache.budget / 2**20
    tile_img = g.cache.get(next(iter(g.cache._items)))  # one real tile, for the reference
    win.close()

    say("reference")
    # -- reference: QListView + QStandardItemModel, a pixmap per item --------------------
    rss_r0 = proc_stats()["rss_mib"]
    t = time.perf_counter()
    pix = QPixmap.fromImage(tile_img)
    model = QStandardItemModel()
    for i in range(args.sites):
        item = QStandardItem(str(864691135000000000 + i))
        item.setIcon(QPixmap(pix.copy()))
        model.appendRow(item)
    view = QListView()
    view.setViewMode(QListView.ViewMode.IconMode)
    view.setResizeMode(QListView.ResizeMode.Adjust)
    view.setUniformItemSizes(True)
    view.setIconSize(QSize(args.tile, args.tile))
    view.setGridSize(QSize(args.tile + 6, args.tile + 24))
    view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
    view.setModel(model)
    view.resize(*SIZE)
    view.show()
    app.processEvents()
    t_ref_open = (time.perf_counter() - t) * 1e3
    ref_skim = skim(app, view, args.seconds, max(8, args.tile // 4))
    ref_jump = jump(app, view, press(view))
    rss_r1 = proc_stats()["rss_mib"]
    view.close()

    out = {
        "source": "the demo volume on disk"
        if url is None
        else (
            f"the demo volume over loopback HTTP, {args.latency_ms:g} ms, "
            f"{args.fail_rate:.0%} failing"
        ),
        "sites": args.sites,
        "tile_px": args.tile,
        "tiles_on_screen": on_screen,
        "imagery-gui": {
            "open the gallery (ms)": round(t_open, 1),
            "first screen of tiles made (s)": round(first_screen_s, 2),
            "skim": ours_skim,
            "tiles made per second while skimming": tiles_per_s,
            "page through all": ours_jump,
            "rss before the gallery (MiB)": round(rss0, 1),
            "rss after every tile was asked for (MiB)": round(rss1, 1),
            "rss of the tile processes (MiB)": [len(pool_pids), round(rss_pool, 1)],
            "tile cache (MiB) / budget": [round(cache_mib, 1), round(budget_mib, 1)],
            "verdict key press, median ms (saved to the file)": round(statistics.median(per), 2),
            "verdict key press, max ms": round(max(per), 1),
            "longest stall during 1,000 verdicts (ms)": round(verdict_stall * 1e3, 1),
            "reviewed": reviewed,
        },
        "reference (QListView + QStandardItemModel, a pixmap per item)": {
            "build and show (ms)": round(t_ref_open, 1),
            "skim": ref_skim,
            "page through all": ref_jump,
            "rss growth (MiB)": round(rss_r1 - rss_r0, 1),
        },
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
