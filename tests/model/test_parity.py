"""Parity with the real ``imageryclient`` 1.0.4 on the same local volumes.

Both libraries read the same Precomputed volumes from disk through cloud-volume; outputs
must be equal (values, shapes and dtypes). Where ImageryClient is wrong, the difference is
asserted in ``test_deviations.py`` instead.
"""

from __future__ import annotations

import imageryclient as icref
import numpy as np
import pytest

import imagery_gui as ig
from tests.helpers.volumes import em_data_dir

# Volume pairs: synthetic with small ids, the same with 18-digit ids, the demo volume, real
# pinky40 segmentation (18-digit ids) and real medulla FIB-SEM (image and segmentation at
# the same resolution). The real ones are the crops committed in tests/data/em; the full
# medulla cube is one more case where ../shared/em_data (or $IMAGERY_GUI_EM_DATA) exists.
ALL_PAIRS = ["synthetic_small", "synthetic_big", "demo_pair", "pinky_pair", "medulla"]
if em_data_dir() is not None:
    ALL_PAIRS.append("medulla_full")
# Pairs whose ids ImageryClient's float64 zoom keeps intact (so every output is comparable).
EXACT_PAIRS = ["synthetic_small", "pinky_pair_small", "medulla_small"]


@pytest.fixture(params=ALL_PAIRS)
def pair(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(params=EXACT_PAIRS)
def exact_pair(request):
    return request.getfixturevalue(request.param)


def _clients(pair, **kw):
    ref = icref.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation, **kw)
    new = ig.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation, **kw)
    return ref, new


def assert_same(ours, theirs):
    ours = np.asarray(ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def assert_same_masks(ours: dict, theirs: dict):
    assert [int(k) for k in ours] == [int(k) for k in theirs]
    for k in theirs:
        assert_same(ours[k], theirs[k])


def _box(center, half=(40, 30, 0), odd=False, depth=1):
    c = np.asarray(center)
    lo = c - np.asarray(half) - (np.array([1, 1, 0]) if odd else 0)
    hi = c + np.asarray(half) + np.array([0, 0, depth])
    return [lo.tolist(), hi.tolist()]


def test_defaults_match(pair):
    ref, new = _clients(pair)
    np.testing.assert_array_equal(new.resolution, ref.resolution)
    assert new.image_mip == ref._base_imagery_mip
    assert new.segmentation_mip == ref._base_segmentation_mip


@pytest.mark.parametrize("odd", [False, True], ids=["even", "odd"])
def test_image_cutout(pair, odd):
    ref, new = _clients(pair)
    bounds = _box(pair.center, odd=odd)
    assert_same(new.image_cutout(bounds), ref.image_cutout(bounds))


@pytest.mark.parametrize("mip", [1, 2])
def test_image_cutout_mips(pair, mip):
    ref, new = _clients(pair)
    bounds = _box(pair.center, odd=True)
    assert_same(new.image_cutout(bounds, mip=mip), ref.image_cutout(bounds, mip=mip))


def test_image_cutout_center_forms(pair):
    ref, new = _clients(pair)
    ctr = list(pair.center)
    assert_same(
        new.image_cutout(ctr, bbox_size=(64, 48)), ref.image_cutout(ctr, bbox_size=(64, 48))
    )
    assert_same(
        new.image_cutout(ctr, image_size=(50, 40), mip=1),
        ref.image_cutout(ctr, image_size=(50, 40), mip=1),
    )
    assert new.image_bbox_size_from_dimensions((50, 40), mip=1) == (
        ref.image_bbox_size_from_dimensions((50, 40), mip=1)
    )
    assert new.segmentation_bbox_size_from_dimensions((50, 40, 2)) == (
        ref.segmentation_bbox_size_from_dimensions((50, 40, 2))
    )


@pytest.mark.parametrize("root_ids", ["all", None, "list"])
@pytest.mark.parametrize("odd", [False, True], ids=["even", "odd"])
def test_segmentation_cutout(pair, root_ids, odd):
    ref, new = _clients(pair)
    bounds = _box(pair.center, odd=odd)
    if root_ids == "list":
        ids = [
            int(v) for v in np.unique(ref.segmentation_cutout(bounds, scale_to_bounds=False)) if v
        ]
        root_ids = ids[:: max(1, len(ids) // 4)][:4]
    ours = new.segmentation_cutout(bounds, root_ids=root_ids, scale_to_bounds=False)
    theirs = ref.segmentation_cutout(bounds, root_ids=root_ids, scale_to_bounds=False)
    assert_same(ours, theirs)
    assert ours.dtype == np.int64


@pytest.mark.parametrize("mip", [1, 2])
def test_segmentation_cutout_mips(pair, mip):
    ref, new = _clients(pair)
    bounds = _box(pair.center, half=(80, 64, 0), odd=True)
    assert_same(new.segmentation_cutout(bounds, mip=mip), ref.segmentation_cutout(bounds, mip=mip))


@pytest.mark.parametrize("odd", [False, True], ids=["even", "odd"])
@pytest.mark.parametrize("root_ids", ["all", None, "list"])
def test_split_cutout_aligned(pair, odd, root_ids):
    """Image 4 nm + segmentation 8 nm: the segmentation is upsampled onto the image grid."""
    ref, new = _clients(pair)
    bounds = _box(pair.center, odd=odd)
    if root_ids == "list":
        seg = ref.segmentation_cutout(bounds, scale_to_bounds=False)
        root_ids = [int(v) for v in np.unique(seg) if v][:5]
    img_r, seg_r = ref.image_and_segmentation_cutout(
        bounds, split_segmentations=True, root_ids=root_ids
    )
    img_n, seg_n = new.image_and_segmentation_cutout(
        bounds, split_segmentations=True, root_ids=root_ids
    )
    assert_same(img_n, img_r)
    assert_same_masks(seg_n, seg_r)
    assert len(seg_n) > 0


@pytest.mark.parametrize("odd", [False, True], ids=["even", "odd"])
def test_label_cutout_aligned_exact_pairs(exact_pair, odd):
    """Non-split aligned cutouts are equal where ImageryClient's float zoom cannot hurt."""
    ref, new = _clients(exact_pair)
    bounds = _box(exact_pair.center, odd=odd)
    img_r, seg_r = ref.image_and_segmentation_cutout(bounds)
    img_n, seg_n = new.image_and_segmentation_cutout(bounds)
    assert_same(img_n, img_r)
    assert_same(seg_n, seg_r)


@pytest.mark.parametrize("image_mip,segmentation_mip", [(1, 0), (1, 1), (2, 1), (0, 2)])
def test_aligned_mips(exact_pair, image_mip, segmentation_mip):
    ref, new = _clients(exact_pair)
    bounds = _box(exact_pair.center, half=(80, 64, 0), odd=True)
    kw = dict(image_mip=image_mip, segmentation_mip=segmentation_mip)
    img_r, seg_r = ref.image_and_segmentation_cutout(bounds, **kw)
    img_n, seg_n = new.image_and_segmentation_cutout(bounds, **kw)
    assert_same(img_n, img_r)
    assert_same(seg_n, seg_r)
    img_r, seg_r = ref.image_and_segmentation_cutout(bounds, split_segmentations=True, **kw)
    img_n, seg_n = new.image_and_segmentation_cutout(bounds, split_segmentations=True, **kw)
    assert_same(img_n, img_r)
    assert_same_masks(seg_n, seg_r)


def test_3d_stack(pair):
    ref, new = _clients(pair)
    bounds = ig.bounds_from_center(np.array(pair.center), width=60, height=50, depth=3)
    np.testing.assert_array_equal(
        bounds, icref.bounds_from_center(np.array(pair.center), 60, 50, 3)
    )
    img_r, seg_r = ref.image_and_segmentation_cutout(bounds, split_segmentations=True)
    img_n, seg_n = new.image_and_segmentation_cutout(bounds, split_segmentations=True)
    assert img_n.ndim == 3 and img_n.shape[2] == 3
    assert_same(img_n, img_r)
    assert_same_masks(seg_n, seg_r)


def test_view_crossing_volume_edge(pair):
    """A box half outside the volume: the outside reads as 0, like ImageryClient."""
    ref, new = _clients(pair)
    lo = np.asarray(ref.image_cv.bounds.minpt)
    bounds = [(lo - [30, 20, 0]).tolist(), (lo + [34, 26, 1]).tolist()]
    img_n, seg_n = new.image_and_segmentation_cutout(bounds, split_segmentations=True)
    img_r, seg_r = ref.image_and_segmentation_cutout(bounds, split_segmentations=True)
    assert_same(img_n, img_r)
    assert_same_masks(seg_n, seg_r)
    assert (img_n[:30] == 0).all()


def test_explicit_resolution_and_segmentation_resolution(exact_pair):
    ref, new = _clients(exact_pair, resolution="segmentation")
    np.testing.assert_array_equal(new.resolution, ref.resolution)
    c = np.asarray(exact_pair.center) * np.asarray(ref.image_cv.resolution) / new.resolution
    bounds = ig.bounds_from_center(c.astype(int), 40, 30, 1)
    assert_same(new.image_cutout(bounds, scale_to_bounds=False), ref.image_cutout(bounds))
    # (ImageryClient ignores its documented scale_to_bounds=None default; see test_deviations.)
    img_r, seg_r = ref.image_and_segmentation_cutout(bounds, scale_to_bounds=False)
    img_n, seg_n = new.image_and_segmentation_cutout(bounds, scale_to_bounds=False)
    assert_same(img_n, img_r)
    assert_same(seg_n, seg_r)


def test_scale_to_bounds_true(exact_pair):
    """Bounds given at half the image's pixel size: rescaling doubles x and y."""
    base = icref.ImageryClient(
        image_source=exact_pair.image, segmentation_source=exact_pair.segmentation
    )
    res = (np.asarray(base.resolution) / [2, 2, 1]).tolist()
    ref, new = _clients(exact_pair, resolution=res)
    c = (np.asarray(exact_pair.center) * [2, 2, 1]).astype(int)
    bounds = ig.bounds_from_center(c, 60, 40, 1)
    for kw in ({}, {"mip": 1}):
        assert_same(
            new.image_cutout(bounds, scale_to_bounds=True, **kw),
            ref.image_cutout(bounds, scale_to_bounds=True, **kw),
        )
        assert_same(
            new.segmentation_cutout(bounds, scale_to_bounds=True, **kw),
            ref.segmentation_cutout(bounds, scale_to_bounds=True, **kw),
        )
    img_r, seg_r = ref.image_and_segmentation_cutout(bounds, scale_to_bounds=True)
    img_n, seg_n = new.image_and_segmentation_cutout(bounds, scale_to_bounds=True)
    assert_same(img_n, img_r)
    assert_same(seg_n, seg_r)


def test_include_null_root_and_convert_flag(pair):
    ref, new = _clients(pair)
    bounds = _box(pair.center)
    assert_same_masks(
        new.split_segmentation_cutout(bounds, include_null_root=True, scale_to_bounds=False),
        ref.split_segmentation_cutout(bounds, include_null_root=True, scale_to_bounds=False),
    )
    ours = new.segmentation_cutout(bounds, convert_to_int64=False, scale_to_bounds=False)
    theirs = ref.segmentation_cutout(bounds, convert_to_int64=False, scale_to_bounds=False)
    assert ours.dtype == np.uint64
    assert_same(ours, theirs)


def _read_pngs(folder):
    from PIL import Image

    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.iterdir())}


def test_save_functions_same_files_and_pixels(pair, tmp_path):
    ref, new = _clients(pair)
    bounds = _box(pair.center, depth=2)
    (tmp_path / "ref").mkdir()
    (tmp_path / "new").mkdir()
    colormap = {}
    seg = ref.split_segmentation_cutout(bounds, scale_to_bounds=False)
    first = next(iter(seg))
    colormap[first] = (255, 0, 0)
    for client, sub in ((ref, "ref"), (new, "new")):
        client.save_image_and_segmentation_masks(
            str(tmp_path / sub / "fig"), bounds=bounds, segmentation_colormap=colormap
        )
    ref_files = _read_pngs(tmp_path / "ref")
    new_files = _read_pngs(tmp_path / "new")
    assert list(new_files) == list(ref_files)
    assert any("_slice_1_" in name for name in new_files)
    for name in ref_files:
        assert_same(new_files[name], ref_files[name])
