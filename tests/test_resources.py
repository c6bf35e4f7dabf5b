"""The app icon and the Linux desktop entry in resources/ (and the runtime icon copy)."""

from __future__ import annotations

import configparser
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "resources"


def test_icon_files_are_valid_and_current(tmp_path):
    svg = ET.parse(RES / "imagery-gui.svg").getroot()
    assert svg.tag.endswith("svg") and svg.get("viewBox") == "0 0 512 512"
    png = Image.open(RES / "imagery-gui.png")
    assert png.size == (512, 512) and png.mode == "RGBA"
    ico = Image.open(RES / "imagery-gui.ico")
    assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    icns = Image.open(RES / "imagery-gui.icns")
    assert icns.size[0] >= 256
    runtime = Image.open(ROOT / "imagery_gui" / "resources" / "imagery-gui.png")
    assert runtime.size == (256, 256)
    # The committed files are what resources/make_icon.py draws today.
    sys.path.insert(0, str(RES))
    try:
        import make_icon
    finally:
        sys.path.remove(str(RES))
    assert make_icon.svg() == (RES / "imagery-gui.svg").read_text()
    np.testing.assert_array_equal(np.asarray(make_icon.render(512)), np.asarray(png))
    # Corners are transparent (rounded), the middle is opaque.
    a = np.asarray(png)[..., 3]
    assert a[0, 0] == 0 and a[256, 256] == 255


def test_desktop_entry():
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str  # keys are case-sensitive
    cp.read(RES / "imagery-gui.desktop")
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "imagery-gui"
    assert entry["Icon"] == "imagery-gui" and (RES / f"{entry['Icon']}.svg").is_file()
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and "Science" in entry["Categories"].split(";")
    # Matches the application's desktop file name and window class, so the taskbar
    # groups the window under this entry and shows its icon.
    # (tests/qt/test_viewer.py checks the application uses the same name.)
    assert entry["StartupWMClass"] == "imagery-gui"


def test_python_dash_m_is_the_command():
    a = subprocess.run(
        [sys.executable, "-m", "imagery_gui", "export", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert a.returncode == 0 and "--segmentation-source" in a.stdout
