"""Start-up: ``imagery-gui --screenshot`` as a whole process against a bare PySide6 window.

A: ``python -m imagery_gui --screenshot OUT.png`` on the cached demo volume (launch, build
the window, read and draw the first view, save it, exit). B: a bare PySide6 window of the
same size making the same kind of screenshot (``QApplication``, ``QMainWindow``, show,
``grab()``, save PNG, exit). Offscreen, run in turn (A B A B ...), wall and CPU time and
peak resident memory of each finished process; medians, and the ratio A/B pair by pair.
``--tree PATH`` times another checkout's code (e.g. an export of the previous commit) as A.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_startup.py [--runs 7] [--tree PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE = """
import sys
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow
app = QApplication(sys.argv)
win = QMainWindow()
win.setCentralWidget(QLabel("bare window"))
win.resize(int(sys.argv[1]), int(sys.argv[2]))
win.show()
app.processEvents()
win.grab().save(sys.argv[3], "PNG")
"""


def _run(cmd: list[str], env: dict) -> dict:
    from benchmarks._proc import run_measured  # stdout of the command is not kept

    return run_measured(cmd, env)


def _run_viewer(cmd: list[str], env: dict, log: Path) -> dict:
    """The viewer run, with its start-up milestones (``imagery_gui.startlog``) in seconds
    from the launch (the timestamp taken just before the process is started)."""
    log.unlink(missing_ok=True)
    t0 = time.time()
    res = _run(cmd, dict(env, IMAGERY_GUI_STARTUP_LOG=str(log)))
    marks: dict[str, float] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        name, _, stamp = line.rpartition(" ")
        marks.setdefault(name, float(stamp) - t0)
    res["milestones"] = marks
    return res


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=7, help="pairs (after one warm-up each)")
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose viewer is timed")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    from imagery_gui.model.demo import cache_root, ensure_demo

    ensure_demo()  # the cached demo volume: generated once, outside the timings
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(args.tree.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        shot = str(Path(tmp) / "viewer.png")
        bare = str(Path(tmp) / "bare.png")
        # Fresh settings (as on a first launch: the demo volume), the cached demo volume.
        env_a = dict(
            env,
            IMAGERY_GUI_SETTINGS_DIR=str(Path(tmp) / "settings"),
            IMAGERY_GUI_CACHE_DIR=str(cache_root()),
        )
        viewer = [sys.executable, "-m", "imagery_gui", "--screenshot", shot]
        _run(viewer, env_a)  # warm-up (also gives the window size)
        from PIL import Image

        width, height = Image.open(shot).size
        bare_cmd = [sys.executable, "-c", BARE, str(width), str(height), bare]
        _run(bare_cmd, env)
        log = Path(tmp) / "startup.log"
        pairs = [(_run_viewer(viewer, env_a, log), _run(bare_cmd, env)) for _ in range(args.runs)]
        if Image.open(bare).size != (width, height):
            print("note: the bare window's screenshot has another size", file=sys.stderr)

    def med(side: int, key: str) -> float:
        return statistics.median(p[side][key] for p in pairs)

    ratio = statistics.median(a["wall_s"] / b["wall_s"] for a, b in pairs)
    res = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "tree": str(args.tree),
        "window": [width, height],
        "runs": args.runs,
        "viewer": {k: med(0, k) for k in ("wall_s", "cpu_s", "peak_mib")},
        "bare_window": {k: med(1, k) for k in ("wall_s", "cpu_s", "peak_mib")},
        "wall_ratio_paired": ratio,
        "milestones_s": {
            name: statistics.median(p[0]["milestones"][name] for p in pairs)
            for name in pairs[0][0]["milestones"]
            if all(name in p[0]["milestones"] for p in pairs)
        },
    }
    v, b = res["viewer"], res["bare_window"]
    print(f"{width}x{height} window, median of {args.runs} pairs (tree {args.tree})")
    print(
        f"  imagery-gui --screenshot {v['wall_s']:6.2f} s wall {v['cpu_s']:5.2f} s CPU {v['peak_mib']:5.0f} MiB"
    )
    print(
        f"  bare PySide6 window      {b['wall_s']:6.2f} s wall {b['cpu_s']:5.2f} s CPU {b['peak_mib']:5.0f} MiB"
    )
    print(f"  ratio (paired) {ratio:.1f}x")
    print("  viewer milestones (median s from launch):")
    for name, t in sorted(res["milestones_s"].items(), key=lambda kv: kv[1]):
        print(f"    {t:5.2f}  {name}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
