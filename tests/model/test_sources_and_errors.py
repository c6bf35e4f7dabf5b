"""Opening sources, the data contract, and the errors a user can cause."""

from __future__ import annotations

import json

import numpy as np
import pytest

import imagery_gui as ig
from imagery_gui.model import errors as E
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.source import Layer, parse_source
from tests.helpers.http_server import LoopbackServer


@pytest.mark.parametrize(
    "given,url,fmt,proto",
    [
        ("precomputed://file:///data/em", "precomputed://file:///data/em", "precomputed", "file"),
        ("file:///data/em", "precomputed://file:///data/em", "precomputed", "file"),
        ("/data/em", "precomputed://file:///data/em", "precomputed", "file"),
        ("https://host/em", "precomputed://https://host/em", "precomputed", "https"),
        (
            "precomputed://http://127.0.0.1:9/x",
            "precomputed://http://127.0.0.1:9/x",
            "precomputed",
            "http",
        ),
        ("precomputed://gs://bucket/em", "precomputed://gs://bucket/em", "precomputed", "gs"),
        ("s3://bucket/em", "precomputed://s3://bucket/em", "precomputed", "s3"),
        (
            "graphene://https://host/segmentation/table/t",
            "graphene://https://host/segmentation/table/t",
            "graphene",
            "https",
        ),
        (
            "graphene://middleauth+https://host/segmentation/table/t",
            "graphene://middleauth+https://host/segmentation/table/t",
            "graphene",
            "https",
        ),
    ],
)
def test_parse_source_forms(given, url, fmt, proto):
    spec = parse_source(given)
    assert (spec.url, spec.format, spec.protocol) == (url, fmt, proto)


def test_parse_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_source("./layer").url == f"precomputed://file://{tmp_path / 'layer'}"


@pytest.mark.parametrize(
    "bad",
    [
        "zarr://file:///x",
        "n5://https://h/x",
        "precomputed://ftp://h/x",
        "graphene:///local",
        "",
        "  ",
        "https://",
    ],
)
def test_unsupported_sources(bad):
    with pytest.raises(E.UnsupportedSourceError):
        parse_source(bad)


def test_missing_folder_message(tmp_path):
    layer = Layer(str(tmp_path / "nope"), "image")
    with pytest.raises(E.SourceNotFoundError, match="no such folder"):
        layer.open()
    assert isinstance(E.SourceNotFoundError("x"), FileNotFoundError)


def test_folder_without_info_suggests_layers(synthetic_small):
    dataset_folder = synthetic_small.image_path.parent
    with pytest.raises(E.NotPrecomputedError, match="not a Neuroglancer Precomputed") as exc:
        Layer(str(dataset_folder), "image").open()
    assert str(synthetic_small.image_path) in str(exc.value)


def test_unreadable_and_incomplete_info(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "info").write_text("{not json")
    with pytest.raises(E.InfoUnreadableError):
        Layer(str(bad)).open()
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "info").write_text(
        json.dumps(
            {
                "type": "image",
                "data_type": "uint8",
                "num_channels": 1,
                "scales": [{"key": "4_4_40", "size": [1, 1, 1]}],
            }
        )
    )
    with pytest.raises(E.InfoUnreadableError, match="lacks"):
        Layer(str(partial)).open()
    noscales = tmp_path / "noscales"
    noscales.mkdir()
    (noscales / "info").write_text(json.dumps({"type": "image", "data_type": "uint8"}))
    with pytest.raises(E.InfoUnreadableError, match="lacks num_channels, scales"):
        Layer(str(noscales)).open()


def test_segmentation_must_be_integer(tmp_path):
    from imagery_gui.model.writer import write_precomputed

    write_precomputed(
        tmp_path / "f", np.zeros((8, 8, 1), np.float32), layer_type="image", resolution=(4, 4, 40)
    )
    with pytest.raises(E.NotPrecomputedError, match="integer ids"):
        Layer(str(tmp_path / "f"), "segmentation").open()


def test_data_contract_zyx_c_contiguous(synthetic_big):
    ds = Dataset(synthetic_big.image, synthetic_big.segmentation)
    box = [[2100, 4100, 100], [2164, 4148, 103]]
    img = ds.read_image(box)
    seg = ds.read_segmentation(box, resolution=[4, 4, 40])
    assert img.shape == (3, 48, 64) and img.flags.c_contiguous and img.dtype == np.uint8
    assert seg.shape == (3, 24, 32) and seg.flags.c_contiguous and seg.dtype == np.uint64
    assert seg.max() > 2**53
    # One slice deep keeps its z axis (never squeezed).
    assert ds.read_image([[2100, 4100, 100], [2164, 4148, 101]]).shape == (1, 48, 64)


def test_reads_with_missing_chunks_return_the_same_voxels_and_the_mask(synthetic_big, tmp_path):
    import shutil

    root = tmp_path / "holes"
    shutil.copytree(synthetic_big.image_path.parent, root)
    # The image chunks of z 100-107 at mip 0; z 108-111 stay.
    removed = [p for p in (root / "image" / "4_4_40").iterdir() if "_100-108" in p.name]
    assert removed
    for p in removed:
        p.unlink()
    ds = Dataset(f"file://{root / 'image'}", f"file://{root / 'segmentation'}")
    box = [[2100, 4100, 106], [2164, 4148, 110]]
    img, img_gap = ds.read_image_with_missing(box)
    np.testing.assert_array_equal(img, ds.read_image(box))
    assert img_gap is not None and img_gap.shape == img.shape == (4, 48, 64)
    assert img_gap[:2].all() and not img_gap[2:].any()
    assert not img[:2].any()  # missing chunks read as 0
    seg, seg_gap = ds.read_segmentation_with_missing(box, resolution=[4, 4, 40])
    np.testing.assert_array_equal(seg, ds.read_segmentation(box, resolution=[4, 4, 40]))
    assert seg_gap is None  # the segmentation is complete
    a_img, a_seg, a_gap = ds.aligned_cutout_with_missing(box)
    p_img, p_seg = ds.aligned_cutout(box)
    np.testing.assert_array_equal(a_img, p_img)
    np.testing.assert_array_equal(a_seg, p_seg)
    assert a_gap is not None and a_gap.shape == p_img.shape
    assert a_gap[:2].all() and not a_gap[2:].any()


def test_lazy_open(synthetic_small):
    ds = Dataset(synthetic_small.image, synthetic_small.segmentation)
    assert not ds.image.is_open and not ds.segmentation.is_open
    client = ig.ImageryClient(
        image_source=synthetic_small.image, segmentation_source="/does/not/exist"
    )
    with pytest.raises(E.SourceNotFoundError):
        client.segmentation_cutout([[2100, 4100, 100], [2164, 4148, 101]])
    assert client.image_cutout([[2100, 4100, 100], [2164, 4148, 101]]).shape == (64, 48)


def test_default_mip_skips_placeholder(tmp_path):
    from imagery_gui.model.writer import write_precomputed

    write_precomputed(
        tmp_path / "ph",
        np.ones((16, 16, 2), np.uint8),
        layer_type="image",
        resolution=(4, 4, 40),
        num_mips=3,
        placeholder_mips=(0,),
    )
    layer = Layer(str(tmp_path / "ph"), "image")
    assert layer.default_mip == 1
    client = ig.ImageryClient(image_source=str(tmp_path / "ph"), segmentation=False)
    np.testing.assert_array_equal(client.resolution, [8, 8, 40])


@pytest.mark.parametrize("mip", [3, -1, "a", 1.5, [5, 5, 5]])
def test_unknown_mip(synthetic_small, mip):
    client = ig.ImageryClient(
        image_source=synthetic_small.image, segmentation_source=synthetic_small.segmentation
    )
    with pytest.raises(E.MipError, match="mip"):
        client.image_cutout([[2100, 4100, 100], [2164, 4148, 101]], mip=mip)


def test_mip_by_resolution(synthetic_small):
    layer = Layer(synthetic_small.image, "image")
    assert layer.resolve_mip([8, 8, 40]) == 1


@pytest.mark.parametrize(
    "bounds,match",
    [
        ([[0, 0, 0], [10, 10]], "bounds must be"),
        ([1, 2, 3], "a single point is a center"),
        ([[5, 5, 5], [5, 9, 9]], "zero or negative size"),
        ([[9, 9, 9], [5, 10, 10]], "zero or negative size"),
        ([[0, 0, "a"], [5, 5, 5]], "numbers"),
        ([[0, 0, np.nan], [5, 5, 5]], "finite"),
    ],
)
def test_bad_bounds(synthetic_small, bounds, match):
    client = ig.ImageryClient(
        image_source=synthetic_small.image, segmentation_source=synthetic_small.segmentation
    )
    with pytest.raises(E.BoundsError, match=match):
        client.image_cutout(bounds)


def test_bad_bbox_size(synthetic_small):
    client = ig.ImageryClient(
        image_source=synthetic_small.image, segmentation_source=synthetic_small.segmentation
    )
    with pytest.raises(E.BoundsError, match="bbox_size"):
        client.image_cutout([2100, 4100, 100], bbox_size=(0, 10))
    with pytest.raises(ValueError, match="both image size and bbox size"):
        client.image_cutout([2100, 4100, 100], bbox_size=(10, 10), image_size=(10, 10))


def test_bounds_outside_volume(synthetic_small):
    client = ig.ImageryClient(
        image_source=synthetic_small.image, segmentation_source=synthetic_small.segmentation
    )
    with pytest.raises(E.OutOfBoundsError, match="entirely outside the image volume") as exc:
        client.image_and_segmentation_cutout([[0, 0, 0], [64, 64, 1]])
    assert "2000, 4000, 100" in str(exc.value)  # says where the volume is


def test_subvoxel_box(synthetic_small):
    client = ig.ImageryClient(
        image_source=synthetic_small.image, segmentation_source=synthetic_small.segmentation
    )
    with pytest.raises(E.BoundsError, match="smaller than one voxel"):
        client.segmentation_cutout([[2101, 4100, 100], [2102, 4110, 101]], mip=2)


@pytest.mark.parametrize("bad", ["abc", 1.5, -3, 2**64, [1, "x"], True, np.array([1.0])])
def test_bad_root_ids(synthetic_small, bad):
    client = ig.ImageryClient(
        image_source=synthetic_small.image, segmentation_source=synthetic_small.segmentation
    )
    with pytest.raises((E.RootIdError, ValueError)):
        client.segmentation_cutout([[2100, 4100, 100], [2164, 4148, 101]], root_ids=bad)


def test_root_ids_as_strings_are_exact(synthetic_big):
    client = ig.ImageryClient(
        image_source=synthetic_big.image, segmentation_source=synthetic_big.segmentation
    )
    box = [[2100, 4100, 100], [2164, 4148, 101]]
    seg = client.segmentation_cutout(box, scale_to_bounds=False)
    target = int(seg[5, 5])
    by_int = client.segmentation_cutout(box, root_ids=[target], scale_to_bounds=False)
    by_str = client.segmentation_cutout(box, root_ids=f"{target}", scale_to_bounds=False)
    np.testing.assert_array_equal(by_int, by_str)
    assert set(np.unique(by_int).tolist()) == {0, target}


def test_resolution_errors(synthetic_small):
    with pytest.raises(E.ResolutionError):
        Dataset(synthetic_small.image, resolution="nanometres")
    with pytest.raises(E.ResolutionError):
        Dataset(synthetic_small.image, resolution=[4, 0, 40])


def test_http_source_reads_same_as_file(synthetic_big):
    root = synthetic_big.image_path.parent
    box = [[2100, 4100, 100], [2180, 4150, 102]]
    local = ig.ImageryClient(
        image_source=synthetic_big.image, segmentation_source=synthetic_big.segmentation
    )
    with LoopbackServer(root) as srv:
        remote = ig.ImageryClient(
            image_source=srv.source("image"), segmentation_source=srv.source("segmentation")
        )
        img_r, seg_r = remote.image_and_segmentation_cutout(box, split_segmentations=True)
        requests = srv.counts["requests"]
    img_l, seg_l = local.image_and_segmentation_cutout(box, split_segmentations=True)
    np.testing.assert_array_equal(img_r, img_l)
    assert list(seg_r) == list(seg_l)
    assert requests > 2  # info files and chunks really went over HTTP


def test_http_not_found(synthetic_small):
    with (
        LoopbackServer(synthetic_small.image_path.parent) as srv,
        pytest.raises(E.SourceNotFoundError, match="no 'info' file"),
    ):
        Layer(srv.source("no-such-layer"), "image").open()


def _chunk_reads(srv: LoopbackServer) -> int:
    return sum(1 for p in srv.log if "/4_4_40/" in p)


@pytest.mark.parametrize("encoding", ["same", "raw"])
def test_one_lru_serves_reads_with_and_without_the_missing_mask(synthetic_big, tmp_path, encoding):
    """A layer with an LRU decodes a chunk once whether it is read with the missing mask
    (a batch's held runs, the viewer) or without (a figure, the API): before, each kind of
    read had its own CloudVolume and LRU, and the second read of a box fetched and decoded
    every chunk again. Chunks that are missing stay missing for the mask, in either order."""
    import shutil

    root = tmp_path / "holes"
    shutil.copytree(synthetic_big.image_path.parent, root)
    for p in (root / "image" / "4_4_40").iterdir():
        if "_100-108" in p.name:
            p.unlink()
    box_lo, box_hi = [2100, 4100, 108], [2164, 4148, 111]  # complete chunks only
    holes_lo, holes_hi = [2100, 4100, 106], [2164, 4148, 110]  # half in missing chunks
    with LoopbackServer(root) as srv:
        layer = Layer(srv.source("image"), "image", lru_bytes=64 * 1024**2, lru_encoding=encoding)
        with_mask, mask = layer.read_with_missing(box_lo, box_hi, 0)
        assert mask is None
        first = _chunk_reads(srv)
        assert first > 0
        np.testing.assert_array_equal(layer.read(box_lo, box_hi, 0), with_mask)
        assert _chunk_reads(srv) == first  # served by the same LRU: nothing fetched again
        # The other order: a plain read first, then with the mask.
        other = Layer(srv.source("image"), "image", lru_bytes=64 * 1024**2, lru_encoding=encoding)
        plain = other.read(box_lo, box_hi, 0)
        before = _chunk_reads(srv)
        again, mask = other.read_with_missing(box_lo, box_hi, 0)
        assert mask is None and _chunk_reads(srv) == before
        np.testing.assert_array_equal(again, plain)
        # Missing chunks: a plain read fills them with zeros (its own CloudVolume), which a
        # later read with the mask must not take for data, whichever read came first.
        filled = layer.read(holes_lo, holes_hi, 0)
        assert not filled[:2].any() and filled[2:].any()
        got, mask = layer.read_with_missing(holes_lo, holes_hi, 0)
        np.testing.assert_array_equal(got, filled)
        assert mask is not None and mask[:2].all() and not mask[2:].any()
        assert layer.read_with_missing(holes_lo, holes_hi, 0)[1] is not None
        np.testing.assert_array_equal(layer.read(holes_lo, holes_hi, 0), filled)
