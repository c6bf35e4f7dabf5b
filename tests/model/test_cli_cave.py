"""``imagery-gui export`` and the viewer's command line with CAVE and Neuroglancer links."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from imagery_gui.model.export import make_figure
from imagery_gui.model.inputs import resolve
from imagery_gui.model.ngl import make_link, make_state
from tests.conftest import CAVE_TOKEN


def run(*args, env_extra=None, timeout=240):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "imagery_gui", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_export_from_a_datastack(cave, token_file, tmp_path):
    out = tmp_path / "ds.png"
    res = run(
        "export",
        "--datastack",
        "test_stack",
        "--server-address",
        cave.url,
        "--auth-token-file",
        token_file,
        "--center",
        2192,
        4160,
        103,
        "--size",
        120,
        90,
        "--outline",
        "--width",
        2,
        "-o",
        out,
    )
    assert res.returncode == 0, res.stderr
    inputs = resolve(
        datastack="test_stack", server_address=cave.url, auth_token_file=str(token_file)
    )
    from imagery_gui.model.export import EXPORT_STYLE, FigureSpec

    spec = FigureSpec.from_center(
        [2192, 4160, 103],
        (120, 90),
        resolution=tuple(inputs.resolution),
        style=EXPORT_STYLE.replace(outline=True, width=2),
    )
    expected = np.asarray(make_figure(inputs.dataset(), spec).slices[0].convert("RGB"))
    np.testing.assert_array_equal(np.asarray(Image.open(out).convert("RGB")), expected)
    prov = (tmp_path / "ds.json").read_text()
    for text in (prov, res.stdout, res.stderr):
        assert CAVE_TOKEN not in text
    data = json.loads(prov)
    assert data["datastack"]["name"] == "test_stack"
    assert data["sources"]["segmentation"] == cave.graphene_source
    assert data["neuroglancer_link"].startswith("https://neuroglancer.example.org/#!")


def test_export_missing_token_explains_setup(cave, tmp_path):
    res = run(
        "export",
        "--datastack",
        "test_stack",
        "--server-address",
        cave.url,
        "--center",
        2192,
        4160,
        103,
        "--size",
        50,
        50,
        "-o",
        tmp_path / "x.png",
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert (
        "create_token" in lines[0] and "save_token" in lines[0] and "--auth-token-file" in lines[0]
    )


def test_export_rejected_token(cave, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"token": "ffffffffffffffffffffffffffffffff"}')
    res = run(
        "export",
        "--datastack",
        "test_stack",
        "--server-address",
        cave.url,
        "--auth-token-file",
        bad,
        "--center",
        2192,
        4160,
        103,
        "--size",
        50,
        50,
        "-o",
        tmp_path / "x.png",
    )
    assert res.returncode == 2 and "rejected" in res.stderr
    assert "ffffffffffffffffffffffffffffffff" not in res.stderr


def test_export_from_a_neuroglancer_link(synthetic_big, tmp_path):
    ids = [864691135000000003]
    link = make_link(
        make_state(
            center=[2192, 4160, 104],
            resolution=[4, 4, 40],
            image_source=synthetic_big.image,
            segmentation_source=synthetic_big.segmentation,
            segments=ids,
            color_seed=5,
        )
    )
    out = tmp_path / "ng.png"
    res = run(
        "export", "--ngl-url", link, "--size", 100, 80, "--palette", "neuroglancer", "-o", out
    )
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "ng.json").read_text())
    assert data["root_ids_requested"] == [str(i) for i in ids]
    assert data["bounds"]["center"][2] == 104.5
    assert data["style"]["color_seed"] == 5 and data["style"]["palette"] == "neuroglancer"


def test_export_bad_link(tmp_path):
    res = run(
        "export",
        "--ngl-url",
        "https://example.org/not-a-state",
        "--size",
        10,
        10,
        "-o",
        tmp_path / "x.png",
    )
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "no '#!' state" in res.stderr


def test_viewer_screenshot_from_a_datastack(cave, token_file, tmp_path):
    out = tmp_path / "shot.png"
    res = run(
        "--datastack",
        "test_stack",
        "--server-address",
        cave.url,
        "--auth-token-file",
        token_file,
        "--center",
        2192,
        4160,
        103,
        "--screenshot",
        out,
        env_extra={"QT_QPA_PLATFORM": "offscreen"},
    )
    assert res.returncode == 0, res.stderr
    assert Image.open(out).size == (1280, 800)
