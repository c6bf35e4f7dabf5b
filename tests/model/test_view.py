"""The viewer's Qt-free model: regions, slabs, cache, colouring."""

from __future__ import annotations

import numpy as np

from imagery_gui.model import render
from imagery_gui.model.colors import colors_for_ids
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.style import OverlayStyle, Selection
from imagery_gui.model.view import (
    Coloring,
    Region,
    SlabCache,
    SlabData,
    SlabKey,
    choose_mips,
    fetch_slab,
    localize,
    outline_display,
    plan_region,
    prefetch_order,
    z_slab,
)


def test_localize_roundtrip():
    rng = np.random.default_rng(0)
    lab = rng.choice(np.array([0, 5, 864691135000000007, 2**63 + 3], np.uint64), size=(3, 40, 30))
    local, ids = localize(lab)
    assert ids[0] == 0 and local.dtype == np.uint16
    np.testing.assert_array_equal(ids[local], lab)
    assert localize(np.zeros((2, 4, 4), np.uint64))[1].tolist() == [0]


def test_choose_mips(demo):
    ds = Dataset(demo.image_source, demo.segmentation_source)
    assert choose_mips(ds, 2.0) == (0, 0)  # zoomed in: finest image, finest segmentation
    assert choose_mips(ds, 4.0) == (0, 0)
    assert choose_mips(ds, 8.5) == (1, 0)  # image 8 nm, segmentation 8 nm
    assert choose_mips(ds, 20.0) == (2, 1)  # 16 nm each
    assert choose_mips(ds, 1000.0) == (2, 1)  # coarsest image; segmentation no coarser than it


def test_plan_region_is_chunk_aligned_and_clipped(demo):
    ds = Dataset(demo.image_source, demo.segmentation_source)
    lo, _hi = ds.image.bounds(0)
    cx, cy = (lo[0] + 300) * 4.0, (lo[1] + 300) * 4.0
    reg = plan_region(ds, (cx - 400, cy - 300, cx + 400, cy + 300), 0, 0)
    assert reg.lo[0] >= lo[0] and reg.lo[1] >= lo[1]  # clipped to the volume
    assert (reg.lo[0] - lo[0]) % 128 == 0 and (reg.hi[0] - lo[0]) % 128 == 0
    assert reg.contains_nm(cx - 400, cy - 300, cx + 400, cy + 300)
    assert plan_region(ds, (0, 0, 10, 10), 0, 0) is None  # far outside


def test_z_slab_and_prefetch(demo):
    ds = Dataset(demo.image_source, demo.segmentation_source)
    lo, hi = ds.image.bounds(0)
    reg = Region(
        0, 0, (int(lo[0]), int(lo[1])), (int(lo[0]) + 128, int(lo[1]) + 128), (4.0, 4.0, 40.0)
    )
    assert z_slab(ds, reg, int(lo[2]) + 17) == (int(lo[2]) + 16, int(lo[2]) + 32)  # 16-deep chunks
    assert z_slab(ds, reg, int(hi[2])) is None
    z0 = int(lo[2])
    assert prefetch_order((z0 + 16, z0 + 32), +1, z0, z0 + 64) == [
        (z0 + 32, z0 + 48),
        (z0 + 48, z0 + 64),
        (z0, z0 + 16),
    ]
    assert prefetch_order((z0 + 16, z0 + 32), -1, z0, z0 + 64) == [
        (z0, z0 + 16),
        (z0 + 32, z0 + 48),
    ]
    assert prefetch_order((z0 + 16, z0 + 32), +1, z0, z0 + 64, ahead=1, back=0) == [
        (z0 + 32, z0 + 48)
    ]


def test_fetch_slab_matches_aligned_cutout(demo):
    ds = Dataset(demo.image_source, demo.segmentation_source)
    lo, _ = ds.image.bounds(0)
    reg = Region(
        0, 0, (int(lo[0]) + 128, int(lo[1])), (int(lo[0]) + 384, int(lo[1]) + 256), (4.0, 4.0, 40.0)
    )
    slab = fetch_slab(ds, SlabKey(reg, int(lo[2]), int(lo[2]) + 16))
    box = [[reg.lo[0], reg.lo[1], lo[2]], [reg.hi[0], reg.hi[1], lo[2] + 16]]
    img, seg = ds.aligned_cutout(box, resolution=[4, 4, 40])
    np.testing.assert_array_equal(slab.image, img)
    np.testing.assert_array_equal(slab.ids[slab.local], seg)


def test_cache_is_bounded_in_bytes():
    cache = SlabCache(max_bytes=3 * 1000 + 500)
    reg = Region(0, 0, (0, 0), (10, 10), (1.0, 1.0, 1.0))
    for z in range(10):
        cache.put(SlabData(SlabKey(reg, z, z + 1), np.zeros(1000 - 8, np.uint8), None))
    assert cache.nbytes <= cache.max_bytes and len(cache) == 3
    assert cache.get(SlabKey(reg, 9, 10)) is not None and cache.get(SlabKey(reg, 0, 1)) is None
    cache.set_limit(1500)
    assert len(cache) == 1


def test_cache_evicts_the_slabs_on_screen_last():
    """Slabs read ahead arriving while the view stands still push out the others first."""
    cache = SlabCache(max_bytes=3 * 1000 + 500)
    reg = Region(0, 0, (0, 0), (10, 10), (1.0, 1.0, 1.0))
    on_screen = SlabKey(reg, 0, 1)
    cache.put(SlabData(on_screen, np.zeros(1000 - 8, np.uint8), None))
    cache.keep([on_screen])
    for z in range(1, 10):
        cache.put(SlabData(SlabKey(reg, z, z + 1), np.zeros(1000 - 8, np.uint8), None))
    assert cache.nbytes <= cache.max_bytes and len(cache) == 3
    assert on_screen in cache and SlabKey(reg, 9, 10) in cache
    assert cache.evicted == 7
    cache.keep([])  # the view moved on: an ordinary LRU again
    cache.put(SlabData(SlabKey(reg, 10, 11), np.zeros(1000 - 8, np.uint8), None))
    assert on_screen not in cache


def test_coloring_lut():
    ids = np.array([0, 11, 864691135000000007, 2**63 + 1], np.uint64)
    base = Coloring(OverlayStyle(alpha=0.2, selected_alpha=0.6))
    lut = base.lut(ids)
    assert lut[0].tolist() == [0, 0, 0, 0]
    assert (lut[1:, 3] == 51).all()
    expected = colors_for_ids([11])[11]
    assert tuple(lut[1, :3]) == expected  # same colour as the exporter's by-id rule
    sel = Coloring(OverlayStyle(show_unselected=False), Selection.of([11], {11: (255, 0, 0)}))
    lut = sel.lut(ids)
    assert lut[1].tolist() == [255, 0, 0, 153] and (lut[2:, 3] == 0).all()
    assert sel.visible(ids).tolist() == [False, True, False, False]


def test_outline_display_top_most():
    local = np.zeros((30, 30), np.uint16)
    local[5:15, 5:15] = 1
    local[5:15, 15:25] = 2
    vis = np.array([False, True, True])
    geom = render.Geometry(outline=True, width=2, side="in", merge_outline=False)
    disp = outline_display(local, vis, geom)
    assert set(np.unique(disp).tolist()) == {0, 1, 2}
    assert disp[10, 10] == 0 and disp[5, 10] == 1 and disp[10, 15] == 2
    only2 = outline_display(local, np.array([False, False, True]), geom)
    assert set(np.unique(only2).tolist()) == {0, 2}


def test_banded_outlines_equal_whole_slice_outlines():
    """Outlines computed a band of rows at a time (what the overlay worker does for big
    slices, to hold the GIL briefly) are pixel-identical to the whole-slice ones."""
    import pytest

    from imagery_gui.model.view import outline_display_banded
    from tests.helpers.volumes import blob_labels

    rng = np.random.default_rng(11)
    labels = blob_labels((150, 97, 1), 40, rng)[:, :, 0].T  # (y, x), 0 = background
    _, local = np.unique(labels, return_inverse=True)
    local = local.reshape(labels.shape).astype(np.uint32)
    n = int(local.max()) + 1
    some = rng.random(n) < 0.5
    some[0] = False
    cases = 0
    for side in ("in", "out"):
        for merge in (True, False):
            for width in (1, 3, 7):
                geom = render.Geometry(outline=True, width=width, side=side, merge_outline=merge)
                for visible in (np.r_[False, np.ones(n - 1, bool)], some):
                    whole = outline_display(local, visible, geom)
                    banded = outline_display_banded(local, visible, geom, band_px=97 * 10)
                    assert whole.any()
                    np.testing.assert_array_equal(banded, whole, err_msg=f"{geom} {visible.sum()}")
                    cases += 1
    assert cases == 24
    with pytest.raises(AssertionError):  # the context rows matter: without them, seams
        cut = np.concatenate(
            [outline_display(local[:75], some, geom), outline_display(local[75:], some, geom)]
        )
        np.testing.assert_array_equal(cut, outline_display(local, some, geom))
