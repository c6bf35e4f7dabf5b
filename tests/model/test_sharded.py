"""Sharded Precomputed layers (as H01 and MICrONS serve theirs), on disk and over HTTP on
127.0.0.1: the same voxels as the unsharded layer they were written from, a missing shard
reported as missing, and the viewer's batch of reads (``holding``) the same.

A chunk absent from a shard that exists (written from a source that lacked it), or a whole
shard missing among present ones, reads as 0 and is reported missing exactly over its own
region: :meth:`Layer.missing_mask` asks the shards' indexes (cloud-volume's
``ImageSource.exists`` looks for unsharded chunk files, which a sharded layer never has, and
would mark the whole box missing)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from imagery_gui.model.dataset import Dataset
from imagery_gui.model.view import Region, SlabKey, fetch_slab
from tests.helpers.http_server import LoopbackServer
from tests.helpers.volumes import sharded_copy


@pytest.fixture(scope="module")
def sharded(synthetic_big, tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    for name, path in (
        ("image", synthetic_big.image_path),
        ("segmentation", synthetic_big.segmentation_path),
    ):
        sharded_copy(f"file://{path}", root / name, shard_bytes=256 * 1024)
    return root


BOX = [[2100, 4100, 100], [2260, 4230, 104]]


def test_sharded_layers_read_as_the_layers_they_were_written_from(synthetic_big, sharded):
    plain = Dataset(synthetic_big.image, synthetic_big.segmentation)
    disk = Dataset(f"file://{sharded / 'image'}", f"file://{sharded / 'segmentation'}")
    assert len(list((sharded / "image").rglob("*.shard"))) > 1  # several shards
    assert disk.image.info["scales"][0]["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    want = plain.aligned_cutout(BOX)
    for a, b in zip(disk.aligned_cutout(BOX), want):
        np.testing.assert_array_equal(a, b)
    with LoopbackServer(sharded, latency=0.005, seed=2) as srv:
        http = Dataset(srv.source("image"), srv.source("segmentation"))
        got = http.aligned_cutout(BOX)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        with http.holding([[2080, 4080, 100], [2300, 4260, 104]]):  # not held: read through
            for a, b in zip(http.aligned_cutout(BOX), want):
                np.testing.assert_array_equal(a, b)
        assert srv.counts["requests"] > 0


def test_a_missing_shard_reads_as_missing(sharded, tmp_path):
    holes = tmp_path / "holes"
    shutil.copytree(sharded, holes)
    shards = sorted((holes / "image").rglob("*.shard"))
    img, gap = Dataset(f"file://{holes / 'image'}").read_image_with_missing(BOX)
    assert gap is None and img.any()
    for p in shards:
        p.unlink()
    img, gap = Dataset(f"file://{holes / 'image'}").read_image_with_missing(BOX)
    assert gap is not None and gap.all() and not img.any()


# -- a chunk absent from a shard that exists ------------------------------------------------
# One 64x64x8 image chunk (x, y, z half-open, mip-0 voxels) inside BOX. Its shard (128x128x16
# voxels: x 2128-2256, y 4128-4256, z 100-112) holds 7 other chunks, three of them in BOX.
ABSENT = ((2128, 4128, 100), (2192, 4192, 108))
SHARD_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def holey(synthetic_big, sharded, tmp_path_factory):
    """``image``: the synthetic image, sharded, with the chunk ABSENT left out of its shard;
    ``segmentation``: the complete sharded segmentation."""
    root = tmp_path_factory.mktemp("holey")
    source = root / "unsharded-source"
    shutil.copytree(synthetic_big.image_path, source)
    (lo, hi) = ABSENT
    name = f"{lo[0]}-{hi[0]}_{lo[1]}-{hi[1]}_{lo[2]}-{hi[2]}"
    (chunk_file,) = (source / "4_4_40").glob(name + "*")  # raw chunks are stored as .gz
    chunk_file.unlink()
    sharded_copy(f"file://{source}", root / "image", SHARD_BYTES, skip_absent=True)
    shutil.copytree(sharded / "segmentation", root / "segmentation")
    return root


def _mask(lo, hi, box=ABSENT) -> np.ndarray:
    """``(z, y, x)`` over ``[lo, hi)``: True over ``box``."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    a = np.clip(np.asarray(box[0]) - lo, 0, hi - lo)
    b = np.clip(np.asarray(box[1]) - lo, 0, hi - lo)
    out = np.zeros(tuple((hi - lo)[::-1]), dtype=bool)
    out[a[2] : b[2], a[1] : b[1], a[0] : b[0]] = True
    return out


@contextlib.contextmanager
def _opened(root: Path, where: str, layers=("image", "segmentation")):
    """A Dataset on ``root``'s layers, on disk or through the loopback server (and it)."""
    if where == "file":
        yield Dataset(*(f"file://{root / n}" for n in layers)), None
        return
    with LoopbackServer(root, latency=0.002, seed=3) as srv:
        yield Dataset(*(srv.source(n) for n in layers)), srv


def _absent_code(cv) -> int:
    from cloudvolume.datasource.precomputed.common import compressed_morton_code

    chunk = np.asarray(cv.chunk_size)
    grid = np.ceil(np.asarray(cv.bounds.size3()) / chunk).astype(np.uint32)
    gpt = (np.asarray(ABSENT[0]) - np.asarray(cv.bounds.minpt)) // chunk
    return int(compressed_morton_code([gpt], grid)[0])


def test_the_chunk_is_absent_from_a_shard_that_exists(holey, sharded):
    """The fixture is what it claims: cloud-volume's shard reader finds every chunk of the
    layer but ABSENT, and ABSENT's shard file exists and holds its other chunks."""
    from cloudvolume import CloudVolume
    from cloudvolume.datasource.precomputed.common import compressed_morton_code
    from cloudvolume.datasource.precomputed.image.common import gridpoints

    cv = CloudVolume(f"file://{holey / 'image'}", progress=False)
    assert cv.image.is_sharded(0)
    key = cv.meta.key(0)
    reader = cv.image.shard_reader(0)
    chunk = np.asarray(cv.chunk_size)
    grid = np.ceil(np.asarray(cv.bounds.size3()) / chunk).astype(np.uint32)
    codes = [int(c) for c in compressed_morton_code(
        list(gridpoints(cv.bounds, cv.bounds, chunk)), grid)]  # fmt: skip
    assert len(codes) == 6 * 5 * 2
    absent = _absent_code(cv)
    found = reader.exists(codes, path=key)
    assert [c for c, f in found.items() if f is None] == [absent]
    shard = holey / "image" / key / reader.get_filename(absent)
    assert shard.is_file()
    in_shard = {int(c) for c in reader.list_labels(shard.name, path=key)}
    assert absent not in in_shard and len(in_shard) == 7
    # The complete sharded copy has it, in the shard of the same name.
    full = CloudVolume(f"file://{sharded / 'image'}", progress=False)
    assert full.image.shard_reader(0).exists(absent, path=key) is not None
    # And cloud-volume, strict, refuses the read; filling, gives 0 there only.
    strict = CloudVolume(f"file://{holey / 'image'}", progress=False, fill_missing=False)
    from cloudvolume.exceptions import EmptyVolumeException

    lo, hi = ABSENT
    with pytest.raises(EmptyVolumeException):
        strict[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    filled = CloudVolume(f"file://{holey / 'image'}", progress=False, fill_missing=True)
    assert not np.asarray(filled[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]).any()
    nxt = np.asarray(filled[hi[0] : hi[0] + 64, lo[1] : hi[1], lo[2] : hi[2]])  # same shard
    np.testing.assert_array_equal(nxt, full[hi[0] : hi[0] + 64, lo[1] : hi[1], lo[2] : hi[2]])


@pytest.mark.parametrize("where", ["file", "http"])
def test_a_chunk_absent_from_a_shard_reads_as_zeros_and_is_reported_missing(
    synthetic_big, holey, where
):
    """The absent chunk reads as 0 and every other voxel as the source, and the missing
    mask is exactly the absent chunk's region, in a read and in the viewer's slab."""
    want = Dataset(synthetic_big.image).read_image(BOX)
    absent = _mask(*BOX)
    assert absent.any() and not absent.all() and want[absent].all()  # real voxels there
    with _opened(holey, where) as (ds, srv):
        img, gap = ds.read_image_with_missing(BOX)
        np.testing.assert_array_equal(img[~absent], want[~absent])
        assert not img[absent].any()
        assert gap is not None
        np.testing.assert_array_equal(gap, absent)
        if srv is not None:  # the shard index was asked, not unsharded chunk files
            name = "image/4_4_40/2128-2192_4128-4192_100-108"
            assert not any(p.endswith(name) for p in srv.log)
        # The viewer's slab (image and segmentation, chunk-aligned, one z chunk deep).
        reg = Region(0, 0, (2064, 4064), (2256, 4256), (4.0, 4.0, 40.0))
        slab = fetch_slab(ds, SlabKey(reg, 100, 108))
        window = _mask((2064, 4064, 100), (2256, 4256, 108))
        np.testing.assert_array_equal(slab.missing, window)
        assert slab.missing_fraction(0) == 64 * 64 / (192 * 192)
        assert not slab.image[window].any()
        # A box of present chunks only (the rest of ABSENT's shard) reads cleanly.
        rest = [[2192, 4128, 100], [2256, 4256, 108]]
        img, gap = ds.read_image_with_missing(rest)
        assert gap is None
        np.testing.assert_array_equal(img, Dataset(synthetic_big.image).read_image(rest))


# -- one missing shard among present ones ---------------------------------------------------
# Shard 0 (x 2000-2128, y 4000-4128, z 100-112); the box spans it and the shard beside it.
SHARD0 = ((2000, 4000, 100), (2128, 4128, 112))
TWO_SHARDS = [[2000, 4000, 100], [2256, 4128, 104]]


@pytest.fixture(scope="module")
def one_shard_gone(sharded, tmp_path_factory):
    from cloudvolume import Bbox, CloudVolume

    root = tmp_path_factory.mktemp("one-shard-gone")
    shutil.copytree(sharded / "image", root / "image")
    cv = CloudVolume(f"file://{root / 'image'}", progress=False)
    name = cv.image.shard_filename(Bbox(*SHARD0), 0)
    (root / "image" / cv.meta.key(0) / name).unlink()
    assert len(list((root / "image").rglob("*.shard"))) > 1  # the others stay
    return root


@pytest.mark.parametrize("where", ["file", "http"])
def test_one_missing_shard_among_present_ones_is_reported_missing(
    synthetic_big, one_shard_gone, where
):
    want = Dataset(synthetic_big.image).read_image(TWO_SHARDS)
    gone = _mask(*TWO_SHARDS, box=SHARD0)
    assert gone.any() and not gone.all()
    with _opened(one_shard_gone, where, layers=("image",)) as (ds, _):
        img, gap = ds.read_image_with_missing(TWO_SHARDS)
        np.testing.assert_array_equal(img[~gone], want[~gone])
        assert not img[gone].any()
        assert gap is not None
        np.testing.assert_array_equal(gap, gone)
