"""Viewer responsiveness on the demo volume (offscreen), with references in the same run.

* launch -> first composite: window created to the first slice drawn with its overlay;
  reference: ImageryClient ``image_and_segmentation_cutout`` + ``composite_overlay`` of the
  same 1024x1024 view (what a script user waits for one picture).
* z step inside fetched data: ``set_z`` to the new slice painted; reference: ImageryClient
  re-running the cutout and composite for the next slice.
* control change -> repaint at 1024x1024 with 150+ segments: alpha, palette, selection and
  outline changes; reference: ImageryClient re-compositing the same view.
* longest GUI-thread stall while slabs are fetched: a 2 ms heartbeat timer in the GUI
  thread records its largest gap while the viewer scrubs through z with an empty cache;
  reference: a naive viewer that calls cloud-volume's ``download`` in the GUI thread (the
  stall is the whole read).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_viewer.py [--json out.json]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _remote import pump

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("IMAGERY_GUI_SETTINGS_DIR", tempfile.mkdtemp(prefix="bench-settings-"))


def _choose_palette(win, name: str) -> None:
    """As a user picks a palette from the box's list (the box applies complete names only)."""
    box = win.overlay.palette
    box.setCurrentText(name)
    box.textActivated.emit(name)


def _pct(vals, q):
    return float(np.percentile(np.asarray(vals) * 1e3, q))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import imageryclient as icref
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from imagery_gui.app import create_window, make_app
    from imagery_gui.model.demo import ensure_demo
    from imagery_gui.qt.dialogs import OpenRequest
    from imagery_gui.settings import Settings

    demo = ensure_demo()
    app = make_app()
    results: dict = {"rows": []}

    def pump_until(cond, timeout=120.0):
        pump(app, cond, timeout)

    # -- reference: one picture with ImageryClient ----------------------------------------------
    ref = icref.ImageryClient(
        image_source=demo.image_source, segmentation_source=demo.segmentation_source
    )
    t0 = time.perf_counter()
    img, segs = ref.image_and_segmentation_cutout(
        list(demo.center), bbox_size=(1024, 1024), split_segmentations=True
    )
    t_ref_cut = time.perf_counter() - t0
    t0 = time.perf_counter()
    icref.composite_overlay(segs, imagery=img)
    t_ref_comp = time.perf_counter() - t0
    ref_alpha = []
    for a in (0.3, 0.5):
        t0 = time.perf_counter()
        icref.composite_overlay(segs, imagery=img, alpha=a)
        ref_alpha.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    c = list(demo.center)
    c[2] += 1
    img2, segs2 = ref.image_and_segmentation_cutout(
        c, bbox_size=(1024, 1024), split_segmentations=True
    )
    icref.composite_overlay(segs2, imagery=img2)
    t_ref_zstep = time.perf_counter() - t0

    # -- launch to first composite ----------------------------------------------------------------
    t0 = time.perf_counter()
    win = create_window(settings=Settings())
    win.persist_settings = False
    win.resize(1024 + 380, 1024 + 70)
    win.show()
    win.open_sources(
        OpenRequest(demo.image_source, demo.segmentation_source, list(demo.center), None)
    )
    pump_until(lambda: win.display.complete and win.canvas.overlay.image is not None)
    t_launch = time.perf_counter() - t0
    canvas_px = (win.canvas.viewbox.width(), win.canvas.viewbox.height())
    reg = win.display.region
    pump_until(lambda: not win.busy.isVisible())  # let prefetch finish
    slab, _ = win.display.current_slab()
    n_segments = len(slab.ids) - 1
    print(
        f"canvas {canvas_px[0]:.0f}x{canvas_px[1]:.0f} px, region {reg.shape[1]}x{reg.shape[0]} px at mip {reg.image_mip}, "
        f"{n_segments} segments in the slab"
    )

    def paint_time(action) -> float:
        """Run an action and process events until the slice view is repainted."""
        n0 = win.display.draw_count
        t = time.perf_counter()
        action()
        win.display._redraw_timer.stop()
        win.display._redraw_now()  # the coalescing timer would otherwise add up to a frame
        pump_until(lambda: win.display.draw_count > n0 and win.display.complete)
        win.canvas.viewport().repaint()
        return time.perf_counter() - t

    # -- z steps inside fetched data ---------------------------------------------------------------
    z0 = win.display.z
    key = win.display.key_for(reg)
    steps = []
    for i in range(40):
        z = key.z0 + (i % (key.depth - 1)) + (1 if i % 2 else 0)
        zz = int(np.floor(z * reg.resolution[2] / win.display.view_res[2]))
        steps.append(paint_time(lambda zz=zz: win.set_z(zz)))
    win.set_z(z0)
    pump_until(lambda: win.display.complete)

    # -- control changes ---------------------------------------------------------------------------
    controls = {}
    controls["alpha"] = [
        paint_time(lambda a=a: win.overlay.alpha.setValue(a)) for a in (0.3, 0.5, 0.35, 0.45, 0.25)
    ]
    controls["palette"] = [
        paint_time(lambda p=p: _choose_palette(win, p)) for p in ("tab10", "husl", "Set2", "husl")
    ]
    ids = [int(v) for v in slab.ids[1:6]]
    controls["select a segment"] = [paint_time(lambda i=i: win.add_ids([i])) for i in ids]
    controls["outline on (width 3, in)"] = [
        paint_time(lambda: win.overlay.mode.setCurrentText("outline")),
    ]
    controls["outline width"] = [
        paint_time(lambda w=w: win.overlay.width.setValue(w)) for w in (4, 5, 2)
    ]
    controls[f"outline side out, all {n_segments} segments"] = [
        paint_time(lambda: win.overlay.side.setCurrentText("out"))
    ]
    win.overlay.side.setCurrentText("in")
    win.set_show_all(False)  # 5 selected segments shown
    pump_until(lambda: win.display.complete)
    controls["outline side out, 5 selected segments"] = [
        paint_time(lambda s=s: win.overlay.side.setCurrentText(s)) for s in ("out", "in", "out")
    ][::2]
    win.set_show_all(True)
    win.overlay.mode.setCurrentText("fill")

    # -- stall while fetching (cold cache) ----------------------------------------------------------
    win.display.cache.clear()
    gaps: list[float] = []
    timer = QElapsedTimer()
    timer.start()
    last = [timer.nsecsElapsed()]

    def beat():
        now = timer.nsecsElapsed()
        gaps.append((now - last[0]) / 1e9)
        last[0] = now

    hb = QTimer()
    hb.setInterval(2)
    hb.timeout.connect(beat)
    hb.start()
    lo, hi = win.display.z_bounds()
    t_end = time.perf_counter() + 8.0
    z = lo
    while time.perf_counter() < t_end:
        win.set_z(z)
        z = lo if z >= hi else z + 1
        t_step = time.perf_counter() + 0.1  # 10 slices per second
        while time.perf_counter() < t_step:
            app.processEvents()
            time.sleep(0.001)
    hb.stop()
    stall = max(gaps)
    # Reference: the same slab read in the GUI thread, as a naive viewer would.
    from cloudvolume import Bbox, CloudVolume

    cv = CloudVolume(demo.image_source, progress=False, fill_missing=True, bounded=False)
    k = win.display.key_for(win.display.region)
    t0 = time.perf_counter()
    cv.download(
        Bbox((k.region.lo[0], k.region.lo[1], k.z0), (k.region.hi[0], k.region.hi[1], k.z1)),
        mip=k.region.image_mip,
    )
    t_naive = time.perf_counter() - t0
    win.close()
    QApplication.processEvents()

    def row(name, ours, ref, goal=None):
        med = statistics.median(ours) if isinstance(ours, list) else ours
        r = {
            "what": name,
            "ours_ms": med * 1e3,
            "reference_ms": ref * 1e3,
            "ratio": ref / med,
            "goal_ms": goal,
        }
        if isinstance(ours, list) and len(ours) > 1:
            r["ours_p95_ms"] = _pct(ours, 95)
        results["rows"].append(r)
        g = f"  (goal < {goal} ms)" if goal else ""
        p95 = f", p95 {r['ours_p95_ms']:.1f} ms" if "ours_p95_ms" in r else ""
        print(
            f"{name:42s} ours {med * 1e3:8.1f} ms{p95:16s} reference {ref * 1e3:8.0f} ms  {ref / med:7.0f}x{g}"
        )

    print()
    row("launch -> first composite", t_launch, t_ref_cut + t_ref_comp)
    row("z step inside fetched data", steps, t_ref_zstep, 16)
    for name, vals in controls.items():
        row(f"control change: {name}", vals, statistics.median(ref_alpha), 50)
    row("longest GUI stall while fetching", stall, t_naive, 50)
    results["segments"] = n_segments
    results["region_px"] = list(reg.shape)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
