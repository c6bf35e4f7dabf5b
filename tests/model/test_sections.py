"""Section reads (model.sections): cloud-volume's voxels to the bit, decoding less.

Batch figures read their boxes by sections (``Dataset(section_reads=True)``): every read
must equal cloud-volume's own read of the same box, on real and made volumes, every
encoding the reader serves, boxes across chunk edges and past the volume's edge, missing
chunks (the same mask), ``root_ids`` masking, over loopback HTTP as from disk.
"""

from __future__ import annotations

import gzip
import shutil

import compressed_segmentation as cseg
import numpy as np
import pytest

from imagery_gui.model import errors as E
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.sections import SectionReader, decode_cseg_sections
from imagery_gui.model.source import Layer
from tests.helpers.http_server import LoopbackServer


def _chunk_files(folder):
    for p in sorted(folder.iterdir()):
        name = p.name[:-3] if p.name.endswith(".gz") else p.name
        data = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
        box = [[int(v) for v in part.split("-")] for part in name.split("_")]
        yield data, [hi - lo for lo, hi in box]


@pytest.mark.parametrize("layer", ["pinky40", "medulla_fib"])
def test_cseg_sections_equal_the_whole_chunk_decoded(em_data, layer, rng):
    folder = em_data / "precomputed" / layer / "segmentation"
    files = [f for scale in sorted(folder.iterdir()) if scale.is_dir() for f in _chunk_files(scale)]
    checked = 0
    for data, shape in files[:12]:
        whole = cseg.decompress(data, shape + [1], np.uint64, (8, 8, 8), order="F")[..., 0]
        zs = sorted({0, shape[2] - 1, *rng.integers(0, shape[2], 3).tolist()})
        for z, plane in decode_cseg_sections(data, shape, np.uint64, (8, 8, 8), zs).items():
            np.testing.assert_array_equal(plane, whole[:, :, z].T)
        x0, y0 = int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))
        x1, y1 = int(rng.integers(x0 + 1, shape[0] + 1)), int(rng.integers(y0 + 1, shape[1] + 1))
        part = decode_cseg_sections(data, shape, np.uint64, (8, 8, 8), zs, (x0, x1, y0, y1))
        for z, plane in part.items():
            np.testing.assert_array_equal(plane, whole[x0:x1, y0:y1, z].T)
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize(
    "dtype,shape,block,labels",
    [
        (np.uint32, (37, 50, 13), (8, 8, 8), 3),  # partial blocks on every axis
        (np.uint64, (64, 64, 16), (8, 8, 8), 1),  # one label: 0 bits per value
        (np.uint64, (40, 24, 9), (4, 4, 2), 5000),  # other block size, 16 bits per value
        (np.uint32, (16, 16, 8), (8, 8, 8), 2**20),  # labels past 16 bits, few per block
    ],
)
def test_cseg_sections_of_made_chunks(dtype, shape, block, labels, rng):
    arr = rng.integers(0, labels, size=shape).astype(dtype)
    arr[: shape[0] // 2] = np.asarray(2**32 + 7 if dtype == np.uint64 else 9, dtype=dtype)
    data = cseg.compress(np.asfortranarray(arr), block_size=block, order="F")
    for z in range(shape[2]):
        plane = decode_cseg_sections(data, shape, dtype, block, [z])[z]
        assert plane.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(plane, arr[:, :, z].T)
    with pytest.raises(IndexError):
        decode_cseg_sections(data, shape, dtype, block, [shape[2]])


def _boxes(layer: Layer, mip: int, rng, n: int = 14) -> list[tuple[list[int], list[int]]]:
    lo, hi = (np.asarray(v) for v in layer.bounds(mip))
    chunk = np.asarray(layer.chunk_size(mip))
    out = []
    for k in range(n):
        size = np.array([int(rng.integers(1, 2 * chunk[0])), int(rng.integers(1, 2 * chunk[1])),
                         int(rng.integers(1, 4))])  # fmt: skip
        start = np.array([int(rng.integers(lo[i] - size[i] // 2, hi[i])) for i in range(3)])
        if k == 0:  # a corner past the volume's upper edge
            start = hi - np.maximum(size // 2, 1)
        if k == 1:  # exactly one chunk
            start, size = lo.copy(), np.minimum(chunk, hi - lo)
            size[2] = 1
        out.append((start.tolist(), (start + size).tolist()))
    return out


def _pairs(demo_pair, pinky_pair, medulla, synthetic_big):
    return {
        "demo": demo_pair,  # JPEG 128x128x16, compressed_segmentation
        "pinky40": pinky_pair,  # real segmentation (128x128x64 chunks)
        "medulla": medulla,  # JPEG and compressed_segmentation in 64^3 chunks
        "synthetic": synthetic_big,  # raw
    }


@pytest.mark.parametrize("which", ["demo", "pinky40", "medulla", "synthetic"])
def test_section_reads_equal_cloudvolumes(
    demo_pair, pinky_pair, medulla, synthetic_big, which, rng
):
    pair = _pairs(demo_pair, pinky_pair, medulla, synthetic_big)[which]
    served = 0
    for source, kind in ((pair.image, "image"), (pair.segmentation, "segmentation")):
        plain = Layer(source, kind)
        by_sections = Layer(source, kind, lru_bytes=64 * 1024**2, section_reads=True)
        for mip in range(min(2, plain.num_mips)):
            reader = by_sections._section_reader(mip)
            served += reader is not None
            for lo, hi in _boxes(plain, mip, rng):
                want = plain.read(lo, hi, mip)
                got = by_sections.read(lo, hi, mip)
                assert got.dtype == want.dtype and got.flags.c_contiguous
                np.testing.assert_array_equal(got, want, err_msg=f"{kind} mip {mip} {lo}-{hi}")
                if kind == "segmentation" and want.any():
                    keep = [int(want[want > 0][0])]
                    np.testing.assert_array_equal(
                        by_sections.read(lo, hi, mip, segids=keep),
                        plain.read(lo, hi, mip, segids=keep),
                    )
    assert served >= 2  # the reader served these layers (not cloud-volume behind it)


@pytest.fixture
def holes(synthetic_big, tmp_path):
    """synthetic_big with the image chunks of z 100-107 at mip 0 removed."""
    root = tmp_path / "holes"
    shutil.copytree(synthetic_big.image_path.parent, root)
    for p in (root / "image" / "4_4_40").iterdir():
        if "_100-108" in p.name:
            p.unlink()
    return root


def test_missing_chunks_read_as_zeros_with_the_same_mask(holes):
    box = [[2100, 4100, 106], [2164, 4148, 110]]
    plain = Dataset(f"file://{holes / 'image'}", f"file://{holes / 'segmentation'}")
    ours = Dataset(
        f"file://{holes / 'image'}", f"file://{holes / 'segmentation'}", section_reads=True
    )
    got = ours.aligned_cutout_with_missing(box)
    want_img, want_seg, want_gap = plain.aligned_cutout_with_missing(box)
    np.testing.assert_array_equal(got[0], want_img)
    np.testing.assert_array_equal(got[1], want_seg)
    assert want_gap is not None and got[2] is not None
    np.testing.assert_array_equal(got[2], want_gap)
    assert got[2][:2].all() and not got[2][2:].any()
    np.testing.assert_array_equal(ours.read_image(box), plain.read_image(box))
    # A layer that must not fill missing chunks raises as cloud-volume's strict reads do.
    strict = Layer(f"file://{holes / 'image'}", "image", fill_missing=False, section_reads=True)
    with pytest.raises(E.ImageryGuiError) as ours_err:
        strict.read(box[0], box[1], 0)
    plain_strict = Layer(f"file://{holes / 'image'}", "image", fill_missing=False)
    with pytest.raises(E.ImageryGuiError) as theirs:
        plain_strict.read(box[0], box[1], 0)
    assert type(ours_err.value) is type(theirs.value)


def test_over_loopback_http_with_gzip_and_each_chunk_fetched_once(holes):
    with LoopbackServer(holes) as srv:
        plain = Layer(srv.source("segmentation"), "segmentation")
        ours = Layer(
            srv.source("segmentation"), "segmentation", lru_bytes=2**26, section_reads=True
        )
        lo, hi = [1040, 2040, 100], [1110, 2100, 103]  # across chunk edges, 8 nm voxels
        want = plain.read(lo, hi, 0)
        before = srv.counts["requests"]
        np.testing.assert_array_equal(ours.read(lo, hi, 0), want)
        fetched = srv.counts["requests"] - before
        assert fetched > 0
        np.testing.assert_array_equal(ours.read(lo, hi, 0), want)  # kept: nothing fetched
        assert srv.counts["requests"] - before == fetched
        img = Layer(srv.source("image"), "image", lru_bytes=2**26, section_reads=True)
        box = [[2100, 4100, 106], [2164, 4148, 110]]
        got, gap = img.read_with_missing(box[0], box[1], 0)
        want_img, want_gap = Layer(srv.source("image"), "image").read_with_missing(
            box[0], box[1], 0
        )
        np.testing.assert_array_equal(got, want_img)
        assert gap is not None and want_gap is not None
        np.testing.assert_array_equal(gap, want_gap)


def test_what_the_reader_serves():
    info = {"num_channels": 1, "data_type": "uint8"}
    scale = {"encoding": "jpeg", "chunk_sizes": [[64, 64, 16]]}
    assert SectionReader.supports(info, scale)
    assert not SectionReader.supports(info, {**scale, "sharding": {"@type": "x"}})
    assert not SectionReader.supports({**info, "num_channels": 3}, scale)
    assert not SectionReader.supports(info, {**scale, "encoding": "png"})
    assert not SectionReader.supports({**info, "data_type": "uint16"}, scale)


def test_what_is_kept_stays_within_its_bytes(demo_pair):
    layer = Layer(demo_pair.image, "image", lru_bytes=3 * 128 * 128 * 16, section_reads=True)
    lo = np.asarray(layer.bounds(0)[0])
    for k in range(6):
        x = int(lo[0]) + 128 * k
        layer.read([x, int(lo[1]), int(lo[2])], [x + 128, int(lo[1]) + 128, int(lo[2]) + 1], 0)
    reader = layer._section_reader(0)
    assert reader is not None
    assert reader._kept_bytes <= 3 * 128 * 128 * 16 and len(reader._kept) == 3


@pytest.mark.parametrize("layer", ["image", "segmentation"])
def test_a_corrupt_chunk_is_reported_as_corrupt(demo_pair, tmp_path, layer):
    root = tmp_path / "corrupt"
    source = demo_pair.image if layer == "image" else demo_pair.segmentation
    folder = source.split("file://", 1)[1]
    shutil.copytree(folder, root)
    probe = Layer(f"file://{root}", layer, section_reads=True, lru_bytes=2**26)
    scale = probe.info["scales"][0]["key"]
    first = sorted((root / scale).iterdir())[0]
    box = [int(v) for part in first.name.split(".")[0].split("_") for v in part.split("-")]
    first.write_bytes(
        gzip.compress(b"\xff\x00 not a chunk " * 40) if first.suffix == ".gz" else b"x" * 64
    )
    with pytest.raises(E.DataCorruptError, match=r"decode|voxels"):
        probe.read([box[0], box[2], box[4]], [box[0] + 8, box[2] + 8, box[4] + 1], 0)
