"""Sharded Precomputed layers (as H01 and MICrONS serve theirs), on disk and over HTTP on
127.0.0.1: the same voxels as the unsharded layer they were written from, a missing shard
reported as missing, and the viewer's batch of reads (``holding``) the same."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from imagery_gui.model.dataset import Dataset
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
