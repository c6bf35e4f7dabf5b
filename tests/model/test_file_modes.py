"""Every file imagery-gui writes has the mode the user's umask gives (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from imagery_gui.model.io import current_umask, default_mode


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(code_or_args: list[str], umask: int, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    res = subprocess.run(
        [sys.executable, *code_or_args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        umask=umask,
    )
    assert res.returncode == 0, res.stderr
    return res


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["022", "002"])
def test_export_files_follow_umask(synthetic_small, tmp_path, umask):
    out = tmp_path / "fig.png"
    _run(
        [
            "-m",
            "imagery_gui",
            "export",
            "--image-source",
            synthetic_small.image,
            "--segmentation-source",
            synthetic_small.segmentation,
            "--center",
            *map(str, synthetic_small.center),
            "--size",
            "40",
            "30",
            "2",
            "--masks",
            "-o",
            str(out),
            "--quiet",
        ],
        umask,
    )
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert any(p.suffix == ".json" for p in written)
    assert any("_root_id_" in p.name for p in written), [p.name for p in written]
    assert sum(p.suffix == ".png" for p in written) >= 3
    for p in written:
        assert _mode(p) == 0o666 & ~umask, (p.name, oct(_mode(p)))
    assert not [p for p in tmp_path.rglob("*.part")]


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["022", "002"])
def test_settings_and_api_saves_follow_umask(synthetic_small, tmp_path, umask):
    code = (
        "import os, sys; from pathlib import Path\n"
        "from imagery_gui.settings import Settings\n"
        "from imagery_gui.model.io import current_umask, save_json_atomic\n"
        "import imagery_gui as ig\n"
        f"assert current_umask() == {umask}\n"
        f"t = Path({str(tmp_path)!r})\n"
        "Settings().save(t / 'conf' / 'settings.json')\n"
        "save_json_atomic({'a': 1}, t / 'x.json')\n"
        f"c = ig.ImageryClient(image_source={synthetic_small.image!r}, "
        f"segmentation_source={synthetic_small.segmentation!r})\n"
        f"c.save_imagery(str(t / 'api'), bounds=ig.bounds_from_center({list(synthetic_small.center)!r}, 20, 10, 1))\n"
    )
    _run(["-c", code], umask)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"settings.json", "x.json"}
    assert any(p.name.startswith("api") and p.suffix == ".png" for p in files), files
    for p in files:
        assert _mode(p) == 0o666 & ~umask, (p.name, oct(_mode(p)))
    assert _mode(tmp_path / "conf") == 0o777 & ~umask


def test_demo_volume_follows_umask(tmp_path):
    umask = 0o002
    code = (
        "from pathlib import Path; from imagery_gui.model.demo import ensure_demo\n"
        f"print(ensure_demo(Path({str(tmp_path)!r})).root)\n"
    )
    root = Path(_run(["-c", code], umask, timeout=600).stdout.strip().splitlines()[-1])
    assert root.parent == tmp_path
    dirs = [root, *(p for p in root.rglob("*") if p.is_dir())]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert {oct(_mode(d)) for d in dirs} == {oct(0o777 & ~umask)}
    assert {oct(_mode(f)) for f in files} == {oct(0o666 & ~umask)}


def test_umask_is_read_without_changing_it():
    before = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert default_mode() == 0o640 and default_mode(folder=True) == 0o750
        assert current_umask() == 0o027
    finally:
        os.umask(before)
