"""Where ImageryClient 1.0.4 is wrong, imagery-gui is right: each case, shown on both.

Every test runs the real ImageryClient too, so if a future ImageryClient fixes a bug the
test says so instead of silently passing.
"""

from __future__ import annotations

import warnings

import imageryclient as icref
import numpy as np
import pytest

import imagery_gui as ig
from imagery_gui.model.writer import write_precomputed
from tests.helpers.volumes import BIG_OFFSET


def _both(pair, **kw):
    return (
        icref.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation, **kw),
        ig.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation, **kw),
    )


def _bounds(pair, odd=True):
    c = np.asarray(pair.center)
    return [(c - [41, 31, 0]).tolist(), (c + [40, 30, 1]).tolist()]


def test_ids_above_2_53_survive_alignment(synthetic_small, synthetic_big):
    """ImageryClient resizes label arrays through float64 and changes 18-digit ids."""
    bounds = _bounds(synthetic_big)
    ref_big, new_big = _both(synthetic_big)
    _, new_small = _both(synthetic_small)
    _, seg_small = new_small.image_and_segmentation_cutout(bounds)
    _, seg_big = new_big.image_and_segmentation_cutout(bounds)
    expected = np.where(seg_small > 0, seg_small + BIG_OFFSET, 0)
    np.testing.assert_array_equal(seg_big, expected)
    _, seg_ref = ref_big.image_and_segmentation_cutout(bounds)
    assert not np.array_equal(seg_ref, expected), "ImageryClient no longer corrupts ids?"
    present = set(np.unique(seg_ref).tolist()) - {0}
    assert present - set(np.unique(expected).tolist()), "their ids should not exist in the data"


def test_ids_above_2_53_survive_scale_to_bounds(synthetic_small, synthetic_big):
    ref_big, new_big = _both(synthetic_big, resolution=[2, 2, 40])
    _, new_small = _both(synthetic_small, resolution=[2, 2, 40])
    c = (np.asarray(synthetic_big.center) * [2, 2, 1]).astype(int)
    bounds = ig.bounds_from_center(c, 60, 40, 1)
    small = new_small.segmentation_cutout(bounds, scale_to_bounds=True)
    big = new_big.segmentation_cutout(bounds, scale_to_bounds=True)
    np.testing.assert_array_equal(big, np.where(small > 0, small + BIG_OFFSET, 0))
    theirs = ref_big.segmentation_cutout(bounds, scale_to_bounds=True)
    assert not np.array_equal(theirs, big)


@pytest.fixture(scope="module")
def huge_ids(tmp_path_factory):
    """A segmentation whose ids do not fit in int64 (>= 2**63)."""
    folder = tmp_path_factory.mktemp("huge")
    labels = np.zeros((32, 32, 2), dtype=np.uint64)
    labels[:16] = np.uint64(2**63 + 5)
    labels[16:] = np.uint64(7)
    image = np.full((32, 32, 2), 100, dtype=np.uint8)
    write_precomputed(folder / "seg", labels, layer_type="segmentation", resolution=(8, 8, 40))
    write_precomputed(folder / "img", image, layer_type="image", resolution=(8, 8, 40))
    return f"precomputed://file://{folder / 'img'}", f"precomputed://file://{folder / 'seg'}"


def test_int64_check_can_fail(huge_ids):
    """ImageryClient's 'safe to convert' test compares with 2**64-1 and never fails."""
    img, seg = huge_ids
    bounds = [[0, 0, 0], [32, 32, 1]]
    theirs = icref.ImageryClient(image_source=img, segmentation_source=seg).segmentation_cutout(
        bounds
    )
    assert theirs.dtype == np.int64 and theirs.min() < 0  # wrapped to a negative id
    new = ig.ImageryClient(image_source=img, segmentation_source=seg)
    with pytest.warns(RuntimeWarning, match="int64"):
        ours = new.segmentation_cutout(bounds)
    assert ours.dtype == np.uint64
    assert set(np.unique(ours).tolist()) == {7, 2**63 + 5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert new.segmentation_cutout(bounds, convert_to_int64=False).dtype == np.uint64


def test_imagery_false_without_resolution(synthetic_small):
    with pytest.raises(AttributeError):
        icref.ImageryClient(segmentation_source=synthetic_small.segmentation, imagery=False)
    new = ig.ImageryClient(segmentation_source=synthetic_small.segmentation, imagery=False)
    np.testing.assert_array_equal(new.resolution, [8, 8, 40])
    assert new.image_cv is None
    seg = new.segmentation_cutout([[1050, 2050, 100], [1090, 2080, 101]])
    assert seg.shape == (40, 30)
    assert new.image_cutout([[1050, 2050, 100], [1090, 2080, 101]]).size == 0


def test_scale_to_bounds_none_rescales_as_documented(synthetic_small):
    """Documented: None rescales when no mip is given. ImageryClient never rescales."""
    ref, new = _both(synthetic_small)  # resolution = image (4 nm); segmentation is 8 nm
    bounds = _bounds(synthetic_small)
    ours = new.segmentation_cutout(bounds)
    assert ours.shape == (81, 61)  # one pixel per 4 nm voxel of the bounds
    np.testing.assert_array_equal(ours, ref.segmentation_cutout(bounds, scale_to_bounds=True))
    assert ref.segmentation_cutout(bounds).shape == (41, 31)  # theirs: not rescaled
    # With an explicit mip, None means "do not rescale" for both.
    np.testing.assert_array_equal(
        new.segmentation_cutout(bounds, mip=0), ref.segmentation_cutout(bounds, mip=0)
    )


def test_save_functions_accept_2d(synthetic_small, tmp_path):
    ref, new = _both(synthetic_small)
    bounds = _bounds(synthetic_small)
    img, masks = new.image_and_segmentation_cutout(bounds, split_segmentations=True)
    assert img.ndim == 2
    with pytest.raises(Exception):  # noqa: B017 - numpy raises AxisError or IndexError
        ref.save_imagery(str(tmp_path / "ref"), precomputed_image=img)
    new.save_image_and_segmentation_masks(str(tmp_path / "fig"), precomputed_data=(img, masks))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "fig_imagery.png" in names
    assert len([n for n in names if n.startswith("fig_root_id_")]) == len(masks)
    assert not [n for n in names if n.endswith(".part")]


def test_empty_masks_composite(synthetic_small):
    _, new = _both(synthetic_small)
    img = new.image_cutout(_bounds(synthetic_small))
    with pytest.raises(IndexError):
        icref.composite_overlay({}, imagery=img)
    out = ig.composite_overlay({}, imagery=img)
    assert out.size == (img.shape[0], img.shape[1])
    assert np.array_equal(np.asarray(out)[..., 0], img.T)
    with pytest.raises(ValueError, match="nothing to draw"):
        ig.composite_overlay({})


def test_outline_width_zero_is_an_error():
    """ImageryClient's width=0 means 'dilate until nothing changes': the whole frame."""
    masks = {1: np.pad(np.ones((4, 4), int), 6)}
    theirs = np.asarray(icref.composite_overlay(masks, outline=True, width=0, merge_outline=False))
    assert (theirs[..., 3] > 0).mean() > 0.8
    with pytest.raises(ValueError, match="width"):
        ig.composite_overlay(masks, outline=True, width=0)


def test_one_pixel_wide_cutout_keeps_its_axes(synthetic_small):
    ref, new = _both(synthetic_small)
    c = np.asarray(synthetic_small.center)
    bounds = [c.tolist(), (c + [1, 20, 1]).tolist()]
    assert ref.image_cutout(bounds).shape == (20,)  # squeezed to 1D
    assert new.image_cutout(bounds).shape == (1, 20)
