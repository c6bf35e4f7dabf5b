"""Shard and minishard indexes kept across the read process's sharded reads
(``model.shardindex``): fetched once, the same voxels, scales never mixed.

Real cloud-volume reading sharded Precomputed layers written by cloud-volume, over the
loopback HTTP server, which logs every request and its byte range."""

from __future__ import annotations

import numpy as np
import pytest

from imagery_gui.model import shardindex
from tests.helpers.http_server import LoopbackServer
from tests.helpers.volumes import sharded_copy


@pytest.fixture(scope="module")
def sharded2(synthetic_big, tmp_path_factory):
    """The synthetic image sharded at its first two scales (small shards: several each)."""
    root = tmp_path_factory.mktemp("sharded2")
    sharded_copy(f"file://{synthetic_big.image_path}", root / "image", 256 * 1024, mips=2)
    return root


@pytest.fixture
def installed():
    """shardindex installed for the test, and taken out again (the pytest process reads
    sharded layers elsewhere with cloud-volume's own readers)."""
    from cloudvolume.datasource.precomputed import sharding

    original = sharding.ShardReader
    shardindex.SHARD_INDEXES.clear()
    shardindex.MINISHARD_INDEXES.clear()
    shardindex.install()
    try:
        yield
    finally:
        sharding.ShardReader = original
        shardindex._installed = False
        shardindex.SHARD_INDEXES.clear()
        shardindex.MINISHARD_INDEXES.clear()


def _index_length(cv, mip: int) -> int:
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

    return ShardingSpecification.from_dict(cv.scales[mip]["sharding"]).index_length()


def _index_paths(ranges, index_length: int) -> set[str]:
    """The shards whose index was asked for."""
    return {p for p, r in ranges if p.endswith(".shard") and r == f"bytes=0-{index_length - 1}"}


def _kinds(ranges, index_length: int) -> dict[str, int]:
    """Shard requests by kind: a shard's index (its first index_length bytes) or other
    byte ranges (minishard indexes and chunks)."""
    out = {"index": 0, "other": 0}
    for path, rng in ranges:
        if path.endswith(".shard"):
            out["index" if rng == f"bytes=0-{index_length - 1}" else "other"] += 1
    return out


# Two boxes in the same shards (64x64x8 chunks, shards of 128x128x16 voxels), different
# chunks: the second needs no index the first did not fetch.
FIRST = ((2112, 4112, 100), (2240, 4240, 104))
SECOND = ((2112, 4112, 105), (2240, 4240, 110))


def _reads(srv, cv_factory, boxes, mip=0):
    out = []
    for lo, hi in boxes:
        cv = cv_factory(mip)  # a CloudVolume per read, as every slab read makes a reader
        before = len(srv.ranges)
        data = np.asarray(cv[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
        out.append((data, list(srv.ranges[before:])))
    return out


def _factory(url):
    from cloudvolume import CloudVolume

    def make(mip):
        return CloudVolume(url, mip=mip, progress=False, fill_missing=False)

    return make


def test_a_second_read_of_the_same_shards_fetches_no_index(sharded2, synthetic_big):
    """Without the shared caches the second read fetches its shards' indexes again; with
    them it asks for nothing but chunks, and both give the unsharded layer's voxels."""
    from cloudvolume import CloudVolume

    plain = CloudVolume(f"file://{synthetic_big.image_path}", progress=False)
    want = [np.asarray(plain[a[0] : b[0], a[1] : b[1], a[2] : b[2]]) for a, b in (FIRST, SECOND)]
    with LoopbackServer(sharded2, latency=0.0, seed=1) as srv:
        make = _factory(srv.source("image").replace("precomputed://", ""))
        length = _index_length(make(0), 0)
        without = _reads(srv, make, [FIRST, SECOND])
        shardindex.SHARD_INDEXES.clear()
        shardindex.MINISHARD_INDEXES.clear()
        from cloudvolume.datasource.precomputed import sharding

        original = sharding.ShardReader
        shardindex.install()
        try:
            with_ = _reads(srv, make, [FIRST, SECOND])
        finally:
            sharding.ShardReader = original
            shardindex._installed = False
    for (a, _), (b, _), w in zip(without, with_, want):
        np.testing.assert_array_equal(a, w)
        np.testing.assert_array_equal(b, w)
    second_without = _kinds(without[1][1], length)
    second_with = _kinds(with_[1][1], length)
    assert second_without["index"] > 0  # cloud-volume alone: the indexes again
    # the first read: the same shards' indexes (which ones: a busy machine can see one
    # asked for twice, a retry or two threads missing at once, with either reader)
    assert _index_paths(with_[0][1], length) == _index_paths(without[0][1], length) != set()
    assert second_with["index"] == 0
    # and fewer requests in all: the minishard indexes are not asked for again either
    assert second_with["other"] < second_without["other"]
    assert len(shardindex.SHARD_INDEXES) > 0 and len(shardindex.MINISHARD_INDEXES) > 0


def test_scales_and_layers_never_share_an_index(sharded2, synthetic_big, installed, tmp_path):
    """Reads of both scales, and of a second layer with the same shard names and spec,
    interleaved through the shared caches, each give its own voxels."""
    import shutil

    from cloudvolume import CloudVolume

    twin = tmp_path / "twin"  # the same layout, other voxels: the image inverted
    src = CloudVolume(f"file://{synthetic_big.image_path}", progress=False)
    inv = tmp_path / "inverted"
    shutil.copytree(synthetic_big.image_path, inv)
    cv_inv = CloudVolume(f"file://{inv}", progress=False, fill_missing=True)
    for mip in (0, 1):
        cv_inv.mip = mip
        src.mip = mip
        cv_inv[cv_inv.bounds] = 255 - np.asarray(src[src.bounds])
    sharded_copy(f"file://{inv}", twin / "image", 256 * 1024, mips=2)
    (sharded2 / "twin").mkdir(exist_ok=True)
    if not (sharded2 / "twin" / "image").exists():
        shutil.copytree(twin / "image", sharded2 / "twin" / "image")
    boxes = [FIRST, SECOND]
    with LoopbackServer(sharded2, latency=0.0, seed=1) as srv:
        layers = {
            "image": _factory(srv.source("image").replace("precomputed://", "")),
            "twin": _factory(srv.source("twin/image").replace("precomputed://", "")),
        }
        for _ in range(2):
            for name, make in layers.items():
                for mip in (0, 1):
                    truth = CloudVolume(
                        f"file://{inv if name == 'twin' else synthetic_big.image_path}",
                        mip=mip,
                        progress=False,
                    )
                    for lo, hi in boxes:
                        f = np.asarray(truth.downsample_ratio, dtype=int)
                        a, b = np.asarray(lo) // f, -(-np.asarray(hi) // f)
                        got = np.asarray(make(mip)[a[0] : b[0], a[1] : b[1], a[2] : b[2]])
                        want = np.asarray(truth[a[0] : b[0], a[1] : b[1], a[2] : b[2]])
                        np.testing.assert_array_equal(got, want, err_msg=f"{name} mip {mip}")


def test_the_caches_are_bounded_and_keep_what_was_just_found():
    cache = shardindex.SharedIndexCache(max_entries=4)
    token = shardindex._PLACE.set(("layer", "4_4_40"))
    try:
        for k in range(4):
            cache[k] = k
        assert 0 in cache
        for k in range(4, 8):  # a second generation: the first still found
            cache[k] = k
        assert cache[0] == 0  # used: carried into the newest generation
        assert 1 not in cache and cache[1] == 1  # no longer held, still readable once found
        for k in range(8, 12):
            cache[k] = k
        assert 4 not in cache and 0 in cache and len(cache) <= 8
        with pytest.raises(KeyError):
            cache[2]  # two generations on: gone
    finally:
        shardindex._PLACE.reset(token)
    token = shardindex._PLACE.set(("layer", "8_8_40"))
    try:
        assert 0 not in cache  # another scale's key of the same name
    finally:
        shardindex._PLACE.reset(token)


def test_warmed_indexes_leave_a_later_read_its_chunks_alone(sharded2, synthetic_big, installed):
    """What the read process does beside a read of a sharded layer: the indexes of the
    slabs around it fetched first, a later read there then asks for chunks alone, and its
    voxels are the layer's. An unsharded layer says so and asks for nothing."""
    from imagery_gui.model.dataset import Dataset
    from imagery_gui.model.view import Region, SlabKey, warm_slab_indexes

    with LoopbackServer(sharded2, latency=0.0, seed=1) as srv:
        ds = Dataset(srv.source("image"))
        res = tuple(float(v) for v in ds.image.resolution(0))
        region = Region(0, 0, (2112, 4112), (2240, 4240), res)
        key = SlabKey(region, 100, 104)
        before = len(srv.ranges)
        assert warm_slab_indexes(ds, key, 96, 112)
        length = _index_length(ds.image.open(), 0)
        assert _kinds(srv.ranges[before:], length)["index"] > 0
        before = len(srv.ranges)
        got = ds.read_image([[2112, 4112, 105], [2240, 4240, 110]], 0, res)
        kinds = _kinds(srv.ranges[before:], length)
        assert kinds["index"] == 0 and kinds["other"] > 0
    plain = Dataset(synthetic_big.image)
    np.testing.assert_array_equal(
        got, plain.read_image([[2112, 4112, 105], [2240, 4240, 110]], 0, res)
    )
    assert not warm_slab_indexes(plain, key, 96, 112)
