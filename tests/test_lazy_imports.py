"""Heavy libraries are imported when a feature needs them, not at start.

Each check runs in a fresh interpreter, so what the test process already imported does not
count. seaborn (with pandas and matplotlib) costs about 1.5 s and 190 MiB, caveclient
brings pyarrow and pandas, scipy.ndimage about 0.3 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("seaborn", "pandas", "matplotlib", "caveclient", "pyarrow")
QT = ("PySide6", "pyqtgraph", "superqt")


def _loaded_after(code: str, watch: tuple[str, ...]) -> list[str]:
    script = (
        code
        + f"\nimport sys, json\nprint('LOADED', json.dumps(sorted(m for m in {watch!r} if m in sys.modules)))\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("LOADED ")][-1]
    return json.loads(line[len("LOADED ") :])


def test_package_and_imageryclient_are_light(synthetic_small):
    code = f"""
import imagery_gui as ic
client = ic.ImageryClient(image_source={synthetic_small.image!r},
                          segmentation_source={synthetic_small.segmentation!r})
assert client.resolution is not None
"""
    assert _loaded_after(code, HEAVY + QT + ("scipy",)) == []


def test_split_cutout_and_fill_composite_need_no_seaborn(synthetic_small):
    code = f"""
import numpy as np
import imagery_gui as ic
client = ic.ImageryClient(image_source={synthetic_small.image!r},
                          segmentation_source={synthetic_small.segmentation!r})
image, segs = client.image_and_segmentation_cutout(
    {list(synthetic_small.center)!r}, split_segmentations=True, bbox_size=(64, 64))
ic.composite_overlay(segs, imagery=image, palette="husl")
ic.composite_overlay(segs, imagery=image, palette="tab10", outline=True, width=3)
from imagery_gui.model.colors import colors_for_ids
from imagery_gui.model.palette import check_palette
check_palette("deep"), colors_for_ids(range(100)), colors_for_ids([1, 2], "Set2")
"""
    assert _loaded_after(code, HEAVY + QT) == []


def test_viewer_module_imports_no_seaborn_pandas_matplotlib_caveclient():
    code = "import imagery_gui.qt.main_window"
    assert _loaded_after(code, HEAVY) == []


def test_batch_api_is_lazy():
    # imagery_gui.batch is there, but neither it nor Dask is imported until it is used.
    code = """
import imagery_gui
assert "batch" in imagery_gui.__all__
import sys
assert "imagery_gui.batch_cli" not in sys.modules
assert callable(imagery_gui.batch)
"""
    assert _loaded_after(code, HEAVY + QT + ("distributed", "dask")) == []


def test_viewer_launch_shows_local_data_without_cloudvolume_or_scipy(demo, tmp_path):
    # The viewer's launch on local data (the demo), to its first view: the window is shown
    # before the data is drawn, the read process is started before the window is built,
    # and this process draws the view without importing cloud-volume, cloud-files, scipy
    # or seaborn (the read process reads; the rest is imported after the first view).
    out, log = tmp_path / "shot.png", tmp_path / "startup.log"
    code = f"""
import json, sys
from imagery_gui import cli
from imagery_gui.app import run_viewer
rc = run_viewer(cli.viewer_parser().parse_args(["--screenshot", {str(out)!r}]))
watch = ("cloudvolume", "cloudfiles", "scipy", "seaborn", "matplotlib", "caveclient")
print("LOADED", json.dumps(sorted(m for m in watch if m in sys.modules)))
sys.exit(rc)
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", IMAGERY_GUI_STARTUP_LOG=str(log))
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env
    )
    assert res.returncode == 0, res.stderr
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("LOADED ")][-1]
    assert json.loads(line[len("LOADED ") :]) == []
    marks = {}
    for ln in log.read_text().splitlines():
        name, _, stamp = ln.rpartition(" ")
        marks.setdefault(name, float(stamp))
    order = [
        "viewer started",
        "read process started",
        "window shown",
        "first view drawn",
        "screenshot saved",
    ]
    assert [marks[m] for m in order] == sorted(marks[m] for m in order), marks
    # the view was read by the read process (warm before its first slab), and the demo's
    # site table was there for the screenshot
    assert (
        marks["read process warm"] <= marks["read process first slab"] <= marks["first view drawn"]
    )
    assert marks["site table read"] <= marks["screenshot saved"]
    assert out.stat().st_size > 0
