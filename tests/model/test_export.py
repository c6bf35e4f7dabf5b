"""Figure export (model) and the headless ``imagery-gui export`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageryclient as icref
import numpy as np
import pytest
from PIL import Image

import imagery_gui as ig
from imagery_gui.model import io as mio
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.errors import ExportError
from imagery_gui.model.export import EXPORT_STYLE, FigureSpec, export, make_figure, redact_url
from imagery_gui.model.scalebar import ScaleBar, nice_length
from imagery_gui.model.style import Selection


def run_cli(*args, timeout=180):
    env = dict(os.environ)
    env.pop("DISPLAY", None)  # export must not need a display
    return subprocess.run(
        [sys.executable, "-m", "imagery_gui", "export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _src(pair):
    return ["--image-source", pair.image, "--segmentation-source", pair.segmentation]


def _png(path):
    return np.asarray(Image.open(path).convert("RGBA"))


@pytest.mark.parametrize("pair_name", ["synthetic_big", "demo_pair"])
def test_cli_png_equals_composite_of_split_cutout(request, tmp_path, pair_name):
    pair = request.getfixturevalue(pair_name)
    c = pair.center
    out = tmp_path / "fig.png"
    # --color-by order: ImageryClient's colouring rule (the default colours by id)
    res = run_cli(*_src(pair), "--center", *c, "--size", 120, 90, "--color-by", "order", "-o", out)
    assert res.returncode == 0, res.stderr
    client = ig.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation)
    image, segs = client.image_and_segmentation_cutout(
        list(c), bbox_size=(120, 90), split_segmentations=True
    )
    expected = np.asarray(ig.composite_overlay(segs, imagery=image))
    np.testing.assert_array_equal(_png(out), expected)
    # ...and equals what the real ImageryClient makes of its own cutout.
    ref = icref.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation)
    image_r, segs_r = ref.image_and_segmentation_cutout(
        list(c), bbox_size=(120, 90), split_segmentations=True
    )
    np.testing.assert_array_equal(
        _png(out), np.asarray(icref.composite_overlay(segs_r, imagery=image_r))
    )
    assert (tmp_path / "fig.json").is_file()


def test_cli_mips_ids_and_bounds(synthetic_small, tmp_path):
    pair = synthetic_small
    c = np.asarray(pair.center)
    b = [*(c - [50, 40, 0]), *(c + [51, 40, 1])]
    client = ig.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation)
    ids = [int(k) for k in client.split_segmentation_cutout([b[:3], b[3:]], scale_to_bounds=False)][
        :3
    ]
    out = tmp_path / "mips.png"
    res = run_cli(
        *_src(pair),
        "--bounds",
        *b,
        "--image-mip",
        1,
        "--segmentation-mip",
        1,
        "--root-ids",
        *ids,
        "--color-by",
        "order",
        "-o",
        out,
    )
    assert res.returncode == 0, res.stderr
    image, segs = client.image_and_segmentation_cutout(
        [b[:3], b[3:]], image_mip=1, segmentation_mip=1, root_ids=ids, split_segmentations=True
    )
    assert sorted(int(k) for k in segs) == sorted(ids)
    np.testing.assert_array_equal(_png(out), np.asarray(ig.composite_overlay(segs, imagery=image)))


def test_style_scale_bar_dpi_and_upscale(demo, tmp_path):
    ds = Dataset(demo.image_source, demo.segmentation_source)
    base = FigureSpec.from_center(demo.center, (200, 160))
    plain = make_figure(ds, base).slices[0]
    spec = FigureSpec.from_center(
        demo.center, (200, 160), scale=3, scale_bar=ScaleBar(length_nm=200), dpi=600
    )
    files = export(ds, spec, tmp_path / "big.png")
    img = Image.open(files[0])
    assert img.size == (600, 480)
    assert tuple(round(v) for v in img.info["dpi"]) == (600, 600)
    arr = np.asarray(img.convert("RGB"))
    up = np.asarray(plain.convert("RGB")).repeat(3, 0).repeat(3, 1)
    differs = np.any(arr != up, axis=-1)
    # Only the scale bar corner differs from an exact 3x pixel replication.
    ys, xs = np.nonzero(differs)
    assert ys.min() > 480 * 0.6 and xs.min() > 600 * 0.4
    # The white bar is 200 nm / (4 nm / 3 px) = 150 px long.
    white_rows = np.all(arr == 255, axis=-1).sum(axis=1)
    assert abs(white_rows.max() - 150) <= 2
    prov = json.loads((tmp_path / "big.json").read_text())
    assert prov["scale_bar_nm"] == 200 and prov["scale_factor"] == 3
    assert prov["pixel_size_nm"] == [4 / 3, 4 / 3]


def test_nice_lengths():
    assert [nice_length(v) for v in (9, 240, 999, 1000, 4300)] == [5, 200, 500, 1000, 2000]


def test_provenance_contents(synthetic_big, tmp_path):
    ds = Dataset(synthetic_big.image, synthetic_big.segmentation)
    colors = ((864691135000000003, (255, 0, 0)),)
    spec = FigureSpec.from_center(
        synthetic_big.center,
        (80, 60),
        style=EXPORT_STYLE.replace(alpha=0.5, outline=True, width=2),
        selection=Selection.of([c[0] for c in colors], dict(colors)),
    )
    export(ds, spec, tmp_path / "p.png")
    prov = json.loads((tmp_path / "p.json").read_text())
    assert prov["sources"]["segmentation"] == synthetic_big.segmentation
    assert prov["bounds"]["resolution_nm"] == [4.0, 4.0, 40.0]
    assert prov["mips"]["segmentation_resolution_nm"] == [8.0, 8.0, 40.0]
    ids = [s["id"] for s in prov["segments"]]
    assert all(isinstance(i, str) and int(i) > 2**53 for i in ids)  # exact, as strings
    if "864691135000000003" in ids:
        assert {"id": "864691135000000003", "color": "#ff0000"} in prov["segments"]
    assert prov["style"]["outline"] is True and prov["software"]["name"] == "imagery-gui"


def test_tokens_never_in_provenance():
    url = "precomputed://https://user:pw@host/em?middle_auth_token=SECRET&x=1"
    assert redact_url(url) == "precomputed://https://host/em?x=1"
    assert "SECRET" not in redact_url("graphene://https://h/t?token=SECRET")


def test_z_series_montage_and_masks(synthetic_big, tmp_path):
    c = synthetic_big.center
    res = run_cli(
        *_src(synthetic_big),
        "--center",
        *c,
        "--size",
        60,
        40,
        3,
        "--masks",
        "-o",
        tmp_path / "s.png",
    )
    assert res.returncode == 0, res.stderr
    names = sorted(os.listdir(tmp_path))
    z0 = c[2] - 1
    for z in (z0, z0 + 1, z0 + 2):
        assert f"s_z{z}.png" in names
    assert "s_montage.png" in names and "s.json" in names
    montage = Image.open(tmp_path / "s_montage.png")
    assert montage.size == (2 * 60 + 10, 2 * 40 + 10)  # 2x2 grid for 3 slices
    # Mask files use ImageryClient's save_* names.
    client = ig.ImageryClient(
        image_source=synthetic_big.image, segmentation_source=synthetic_big.segmentation
    )
    _, segs = client.image_and_segmentation_cutout(
        list(c), bbox_size=(60, 40, 3), split_segmentations=True
    )
    for k in segs:
        assert f"s_slice_0_root_id_{k}.png" in names
    assert "3/" in res.stderr or "/3" in res.stderr or "/" in res.stderr  # progress was shown
    assert not [n for n in names if n.endswith(".part")]


def test_no_overwrite_without_force(synthetic_small, tmp_path):
    out = tmp_path / "o.png"
    args = [
        *_src(synthetic_small),
        "--center",
        *synthetic_small.center,
        "--size",
        40,
        30,
        "-o",
        out,
    ]
    assert run_cli(*args).returncode == 0
    before = out.read_bytes()
    res = run_cli(*args, "--alpha", 0.9)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "--force" in res.stderr
    assert out.read_bytes() == before
    res = run_cli(*args, "--alpha", 0.9, "--force")
    assert res.returncode == 0 and out.read_bytes() != before


def test_series_checks_every_target_first(synthetic_small, tmp_path):
    c = synthetic_small.center
    (tmp_path / f"s_z{c[2]}.png").write_bytes(b"keep me")
    res = run_cli(
        *_src(synthetic_small), "--center", *c, "--size", 40, 30, 3, "-o", tmp_path / "s.png"
    )
    assert res.returncode == 2
    assert sorted(os.listdir(tmp_path)) == [f"s_z{c[2]}.png"]  # nothing else was written


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["-o", "/proc/forbidden/fig.png"], "does not exist"),
        (["-o", "/sys/fig.png"], "cannot write /sys/fig.png"),  # unwritable even for root
        (["-o", "{tmp}"], "folder"),
        (["-o", "{tmp}/fig.jpg"], "PNG"),
        (["--image-source", "/no/such/layer", "-o", "{tmp}/x.png"], "no such folder"),
        (["--bounds", 0, 0, 0, 10, 10, 1, "-o", "{tmp}/x.png"], "outside"),
        # (no valid id at all is an error; a line with some valid ids only warns, below)
        (["--root-ids", "12x", "-o", "{tmp}/x.png"], "'12x' (not a number)"),
        (["--alpha", 3, "-o", "{tmp}/x.png"], "alpha"),
        (["--palette", "nope", "-o", "{tmp}/x.png"], "palette"),
        (["--segmentation-source", "zarr://file:///x", "-o", "{tmp}/x.png"], "not supported"),
    ],
)
def test_bad_input_one_line_exit_2(synthetic_small, tmp_path, extra, needle):
    extra = [str(e).replace("{tmp}", str(tmp_path)) for e in extra]
    args = [*_src(synthetic_small)]
    if "--bounds" not in extra:
        args += ["--center", *synthetic_small.center, "--size", 40, 30]
    # later options override earlier ones (argparse), so extra sources replace the good ones
    res = run_cli(*args, *extra)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert needle in lines[0] and "Traceback" not in res.stderr
    assert not [p for p in tmp_path.iterdir()]
    assert not os.path.exists("/.png")


def test_unwritable_folder(synthetic_small, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
        res = run_cli(
            *_src(synthetic_small),
            "--center",
            *synthetic_small.center,
            "--size",
            40,
            30,
            "-o",
            ro / "f.png",
        )
        assert res.returncode == 2 and "permission" in res.stderr
    finally:
        ro.chmod(0o700)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    class Boom(Exception):
        pass

    def writer(fh):
        fh.write(b"partial")
        raise Boom()

    with pytest.raises(Boom):
        mio._write_with(tmp_path / "f.png", writer, overwrite=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match="already exists"):
        (tmp_path / "g.png").write_bytes(b"x")
        mio.save_png_atomic(np.zeros((2, 2, 3), np.uint8), tmp_path / "g.png")


def test_export_without_display_and_without_qt(synthetic_small, tmp_path):
    code = (
        "import sys; from imagery_gui.cli import main; "
        f"rc = main(['export', '--image-source', {synthetic_small.image!r}, '--segmentation-source', "
        f"{synthetic_small.segmentation!r}, '--center', '2192', '4160', '106', '--size', '30', '20', "
        f"'-o', {str(tmp_path / 'q.png')!r}, '--quiet']); "
        "assert rc == 0; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt')]"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr


def test_root_ids_absent_or_invalid_warn_and_still_write(synthetic_small, tmp_path):
    pair = synthetic_small
    c = pair.center
    client = ig.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation)
    present = [
        int(k)
        for k in client.split_segmentation_cutout(
            ig.bounds_from_center(np.asarray(c), 40, 30, 1), scale_to_bounds=False
        )
    ]
    in_volume_elsewhere = 86  # one of the synthetic volume's 90 labels, far from this box
    assert in_volume_elsewhere not in present
    out = tmp_path / "w.png"
    res = run_cli(
        *_src(pair),
        "--center",
        *c,
        "--size",
        40,
        30,
        "--root-ids",
        f"{present[0]},abc",
        "-5",
        "0",
        in_volume_elsewhere,
        "864691135999999999",
        "-o",
        out,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2, res.stderr
    bad, absent = lines
    assert bad.startswith("imagery-gui export: warning: ignored 3 entries of the root ids")
    assert "'abc' (not a number)" in bad and "'-5' (negative" in bad
    assert "'0' (0 means no segment)" in bad
    assert absent.startswith("imagery-gui export: warning: 2 ids asked for are not in the figure")
    named = absent.split("nothing is drawn for them: ")[1].split(" (check the ids")[0]
    assert named.split(", ") == [str(in_volume_elsewhere), "864691135999999999"]
    info = json.loads((tmp_path / "w.json").read_text())
    assert [s["id"] for s in info["segments"]] == [str(present[0])]
    assert info["root_ids_requested"] == [
        str(present[0]),
        str(in_volume_elsewhere),
        "864691135999999999",
    ]
    assert _png(out).shape == (30, 40, 4)
    # Every id present: no warning at all.
    res = run_cli(
        *_src(pair),
        "--center",
        *c,
        "--size",
        40,
        30,
        "--root-ids",
        *present[:2],
        "-o",
        tmp_path / "ok.png",
    )
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_encode_png_reads_back_the_same_pixels_and_dpi(tmp_path, channels):
    import io as pyio

    rng = np.random.default_rng(channels)
    shape = (37, 53) if channels == 1 else (37, 53, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    data = mio.encode_png(pixels, level=1, dpi=(300, 300))
    back = Image.open(pyio.BytesIO(data))
    back.load()  # Pillow checks every chunk's CRC
    assert back.mode == {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    assert np.array_equal(np.asarray(back), pixels)
    assert [round(v) for v in back.info["dpi"]] == [300, 300]
    # the writer batch figures use: same pixels and dpi as Pillow's, and no bigger on EM-like
    # images (smooth grey with structure), where Pillow's per-row filters buy nothing
    path = mio.save_png_atomic(Image.fromarray(pixels), tmp_path / "f.png", fast=True,
                               compress_level=1, dpi=(300, 300))  # fmt: skip
    ref = mio.save_png_atomic(Image.fromarray(pixels), tmp_path / "r.png", dpi=(300, 300))
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(ref)))
    assert Image.open(path).info["dpi"] == Image.open(ref).info["dpi"]


def test_encode_png_refuses_what_it_cannot_write_and_the_fast_path_falls_back(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        mio.encode_png(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        mio.encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="level of 0 to 12"):
        mio.encode_png(np.zeros((4, 4), np.uint8), level=13)
    # a palette image is not one encode_png writes: Pillow writes it, palette and all
    pal = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4)).convert("P")
    path = mio.save_png_atomic(pal, tmp_path / "p.png", fast=True, compress_level=1)
    assert Image.open(path).mode == "P"
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(pal))


def test_batch_png_level_is_no_bigger_than_zlib_on_em(tmp_path):
    """Batch's PNGs of real EM (the demo's image, a 256x256 RGB figure-like crop with a
    coloured overlay) are no bigger than zlib's level 1, which batch used before, nor
    than Pillow's writer at its default level; and they hold the same pixels."""
    import io as pyio
    import zlib

    from cloudvolume import CloudVolume

    from imagery_gui.model.batch import PNG_COMPRESS_LEVEL
    from imagery_gui.model.demo import ensure_demo

    cv = CloudVolume(ensure_demo().image_source.replace("precomputed://", ""), progress=False)
    x0, y0, z0 = (int(v) for v in cv.bounds.minpt)
    em = np.asarray(cv[x0 : x0 + 256, y0 : y0 + 256, z0 : z0 + 1])[:, :, 0, 0].T
    rgb = np.repeat(em[..., None], 3, axis=2)
    rgb[40:120, 60:200] = (rgb[40:120, 60:200] * 0.7 + np.array([0, 120, 200]) * 0.3).astype(
        np.uint8
    )
    data = mio.encode_png(rgb, level=PNG_COMPRESS_LEVEL)
    assert np.array_equal(np.asarray(Image.open(pyio.BytesIO(data))), rgb)
    rows = np.zeros((256, 1 + 256 * 3), np.uint8)
    rows[:, 1:] = rgb.reshape(256, -1)
    assert len(data) <= len(zlib.compress(rows.tobytes(), 1)) + 100  # (+ the PNG chunks)
    ref = mio.save_png_atomic(rgb, tmp_path / "r.png")  # Pillow, its filters and level 6
    assert len(data) <= os.path.getsize(ref)


@pytest.mark.parametrize("case", ["mixed", "no_zero", "all_zero", "huge_ids", "3d"])
def test_ids_and_index_is_label_index_of_the_unique_ids(case):
    """The figure's ids and pixel index in one renumbering equal the two-pass answer."""
    from imagery_gui.model.render import ids_and_index, label_index
    from imagery_gui.model.segments import unique_ids

    rng = np.random.default_rng(7)
    big = np.uint64(864691135611984218)
    labels = {
        "mixed": rng.choice(np.array([0, 5, 3, 900, 17], dtype=np.uint64), (64, 48)),
        "no_zero": rng.choice(np.array([2, 1, 8], dtype=np.uint64), (32, 32)),
        "all_zero": np.zeros((16, 16), dtype=np.uint64),
        "huge_ids": rng.choice(np.array([0, big, big + 7, 2**64 - 1], dtype=np.uint64), (40, 40)),
        "3d": rng.choice(np.array([0, 4, 4000, 11], dtype=np.uint64), (3, 20, 30)),
    }[case]
    ids, index = ids_and_index(labels)
    want_ids = [int(v) for v in unique_ids(labels)]
    assert ids == want_ids
    assert index.dtype == np.int32 and index.shape == labels.shape
    np.testing.assert_array_equal(index, label_index(labels, want_ids))
