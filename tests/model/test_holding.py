"""Dataset.holding: reads inside a held region come from one read, with the same results.

Batch reads each run of neighbouring figures as one box (``model.batch._compact_runs``);
every cutout inside it must be exactly what a read of its own gives: voxels, missing-chunk
masks, ``root_ids`` masking, boxes past the volume's edge, both layers aligned.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from imagery_gui.model.dataset import Dataset


@pytest.fixture(scope="module")
def holes(synthetic_big, tmp_path_factory):
    """synthetic_big with the image chunks of z 100-107 at mip 0 removed."""
    root = tmp_path_factory.mktemp("holding") / "holes"
    shutil.copytree(synthetic_big.image_path.parent, root)
    for p in (root / "image" / "4_4_40").iterdir():
        if "_100-108" in p.name:
            p.unlink()
    return root


def _count_downloads(layer, monkeypatch) -> list[int]:
    """Count cloud-volume downloads of ``layer`` (both its CloudVolumes), reading for real."""
    calls = [0]
    for cv in (layer.open(), layer._strict()):
        real = cv.download

        def counted(*a, _real=real, **k):
            calls[0] += 1
            return _real(*a, **k)

        monkeypatch.setattr(cv, "download", counted)
    return calls


BOXES = [  # (x, y, z) at the image's 4 nm mip 0: inside, across chunk edges, over the holes
    [[2100, 4100, 106], [2164, 4148, 110]],
    [[2130, 4090, 100], [2230, 4190, 104]],
    [[2050, 4060, 108], [2114, 4124, 111]],
    [[2180, 4150, 101], [2182, 4152, 102]],  # one voxel of the 8 nm segmentation
]
HELD = [[2040, 4050, 100], [2240, 4200, 111]]


def test_cutouts_inside_a_held_region_equal_their_own_reads(holes, monkeypatch):
    ds = Dataset(f"file://{holes / 'image'}", f"file://{holes / 'segmentation'}")
    big = int(ds.read_segmentation(BOXES[0]).max())
    own = [
        (
            ds.aligned_cutout_with_missing(box),
            ds.read_image_with_missing(box),
            ds.read_segmentation(box, root_ids=[big]),
            ds.read_segmentation_with_missing(box, resolution=[4, 4, 40]),
        )
        for box in BOXES
    ]
    assert any(o[0][2] is not None for o in own) and any(o[0][2] is None for o in own)
    image_reads = _count_downloads(ds.image, monkeypatch)
    seg_reads = _count_downloads(ds.segmentation, monkeypatch)
    with ds.holding(HELD):
        held_reads = (image_reads[0], seg_reads[0])
        assert held_reads[0] >= 1 and held_reads[1] == 1
        for box, ref in zip(BOXES, own):
            got = (
                ds.aligned_cutout_with_missing(box),
                ds.read_image_with_missing(box),
                ds.read_segmentation(box, root_ids=[big]),
                ds.read_segmentation_with_missing(box, resolution=[4, 4, 40]),
            )
            for g, r in zip(got, ref):
                g, r = (g, r) if isinstance(g, tuple) else ((g,), (r,))
                for a, b in zip(g, r):
                    if b is None:
                        assert a is None
                    else:
                        assert a.dtype == b.dtype and a.flags.c_contiguous
                        np.testing.assert_array_equal(a, b)
        # every read inside was served from the held region
        assert (image_reads[0], seg_reads[0]) == held_reads
        outside = [[2300, 4300, 104], [2340, 4340, 106]]  # not inside: read as usual
        np.testing.assert_array_equal(
            ds.read_image(outside), Dataset(ds.image.url).read_image(outside)
        )
        assert image_reads[0] > held_reads[0]
    # the region is let go at the end of the block
    before = image_reads[0]
    ds.read_image(BOXES[0])
    assert image_reads[0] > before and not ds.image._held


def test_a_held_region_past_the_volume_edge_reads_zeros_there_as_its_own_reads(demo):
    ds = Dataset(demo.image_source, demo.segmentation_source)
    lo, _hi = ds.volume_bounds()
    z = int(lo[2]) + 2
    box = [[int(lo[0]) - 40, int(lo[1]) - 30, z], [int(lo[0]) + 60, int(lo[1]) + 50, z + 1]]
    ref = ds.aligned_cutout(box, fill_outside=True)
    held = [[int(lo[0]) - 100, int(lo[1]) - 100, z], [int(lo[0]) + 200, int(lo[1]) + 200, z + 1]]
    with ds.holding(held):
        assert ds.image._held and ds.segmentation._held
        got = ds.aligned_cutout(box, fill_outside=True)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)


def test_holding_what_cannot_be_read_holds_nothing_and_reads_report_it(tmp_path, demo):
    ds = Dataset(demo.image_source, demo.segmentation_source)
    lo, hi = ds.volume_bounds()
    far = [
        [int(hi[0]) + 1000, int(hi[1]) + 1000, int(lo[2])],
        [int(hi[0]) + 1100, int(hi[1]) + 1100, int(lo[2]) + 1],
    ]
    with ds.holding(far):  # entirely outside: nothing to hold, no error
        assert not ds.image._held and not ds.segmentation._held
    with ds.holding([[0, 0, 0], [0, 0, 0]]):  # an empty box: nothing held
        assert not ds.image._held


def test_a_box_too_deep_for_section_reads_is_not_held(demo_pair, monkeypatch):
    """A layer read by sections does not hold a box deeper than the section reader takes
    (cloud-volume would decode each of its chunks whole): its cutouts read their own
    sections, never through cloud-volume, with the same voxels as a plain read; a box
    within the reader's depth is held as before."""
    from imagery_gui.model.sections import MAX_DEPTH
    from imagery_gui.model.source import Layer

    plain = Layer(demo_pair.segmentation, "segmentation")
    ours = Layer(demo_pair.segmentation, "segmentation", lru_bytes=2**26, section_reads=True)
    lo = np.asarray(plain.bounds(0)[0]) + [10, 10, 0]
    calls = _count_downloads(ours, monkeypatch)
    deep = (lo, lo + [120, 100, MAX_DEPTH + 4])
    with ours.holding(*deep, 0):
        assert not ours._held
        for z in (0, MAX_DEPTH + 3):
            box = (lo + [5, 5, z], lo + [60, 70, z + 1])
            np.testing.assert_array_equal(ours.read(*box, 0), plain.read(*box, 0))
    assert calls[0] == 0  # every read went through the section reader
    with ours.holding(lo, lo + [120, 100, MAX_DEPTH], 0):
        assert len(ours._held) == 1
        box = (lo + [5, 5, 2], lo + [60, 70, 3])
        np.testing.assert_array_equal(ours.read(*box, 0), plain.read(*box, 0))
    assert calls[0] == 0
