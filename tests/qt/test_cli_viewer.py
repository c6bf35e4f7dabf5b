"""The viewer's command line, run as users run it (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from imagery_gui.cli import HEADLESS_HINT, display_problem


def _run(args, env_extra=None, drop=(), timeout=240):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "imagery_gui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_screenshot_offscreen(demo, tmp_path):
    out = tmp_path / "shot.png"
    res = _run(
        ["--screenshot", str(out), "--root-ids", "864691135105009228"],
        {"QT_QPA_PLATFORM": "offscreen"},
    )
    assert res.returncode == 0, res.stderr
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (800, 1280, 3)
    # The slice view holds real imagery: many grey levels, not a blank widget.
    view = img[40:700, 20:800]
    assert len(np.unique(view.reshape(-1, 3), axis=0)) > 1000


def test_screenshot_of_explicit_sources(synthetic_big, tmp_path):
    out = tmp_path / "s.png"
    res = _run(
        [
            "--image-source",
            synthetic_big.image,
            "--segmentation-source",
            synthetic_big.segmentation,
            "--center",
            "2192",
            "4160",
            "106",
            "--screenshot",
            str(out),
            "--size",
            "900",
            "600",
        ],
        {"QT_QPA_PLATFORM": "offscreen"},
    )
    assert res.returncode == 0, res.stderr
    assert Image.open(out).size == (900, 600)


def test_screenshot_with_a_bad_source_fails_cleanly(tmp_path):
    res = _run(
        ["--image-source", str(tmp_path / "missing"), "--screenshot", str(tmp_path / "x.png")],
        {"QT_QPA_PLATFORM": "offscreen"},
    )
    assert res.returncode == 1
    assert "no such folder" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.png").exists()


def test_no_display_prints_one_line(tmp_path):
    res = _run([], drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    assert res.returncode == 2
    assert res.stderr.strip() == HEADLESS_HINT
    assert (
        "--screenshot" in HEADLESS_HINT
        and "offscreen" in HEADLESS_HINT
        and "xvfb-run" in HEADLESS_HINT
    )


def test_screenshot_without_display_goes_offscreen(demo, tmp_path):
    out = tmp_path / "auto.png"
    res = _run(["--screenshot", str(out)], drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    assert res.returncode == 0, res.stderr
    assert out.is_file()


def test_display_problem_rules():
    assert display_problem({}, "linux") == HEADLESS_HINT
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}, "linux") == HEADLESS_HINT
    assert display_problem({}, "darwin") is None


def test_version_and_module_entry():
    from imagery_gui import __version__

    a = _run(["--version"])
    script = os.path.join(os.path.dirname(sys.executable), "imagery-gui")
    b = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert a.returncode == 0 and a.stdout.strip() == f"imagery-gui {__version__}"
    assert b.stdout == a.stdout


def test_screenshot_follows_umask(synthetic_small, tmp_path):
    out = tmp_path / "u.png"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagery_gui",
            "--image-source",
            synthetic_small.image,
            "--segmentation-source",
            synthetic_small.segmentation,
            "--center",
            *map(str, synthetic_small.center),
            "--size",
            "400",
            "300",
            "--screenshot",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        umask=0o002,
    )
    assert res.returncode == 0, res.stderr
    assert oct(out.stat().st_mode & 0o777) == oct(0o664)
