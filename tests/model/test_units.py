"""Small pieces: exact resampling, root-id parsing, split masks, colours, bounds."""

from __future__ import annotations

import imageryclient as icref
import numpy as np
import pytest
from imageryclient import utils as icutils
from scipy import ndimage

import imagery_gui as ig
from imagery_gui.model.colors import colors_for_ids
from imagery_gui.model.errors import RootIdError
from imagery_gui.model.geometry import bounds_to_mip_bbox
from imagery_gui.model.palette import palette_colors, to_uint8
from imagery_gui.model.resample import resize_nearest
from imagery_gui.model.segments import (
    absent_ids,
    id_token_problem,
    parse_ids,
    parse_root_ids,
    split_masks,
)


@pytest.mark.parametrize("trial", range(30))
def test_resize_matches_ndimage_zoom_positions(trial):
    rng = np.random.default_rng(trial)
    shape = tuple(int(v) for v in rng.integers(1, 40, 3))
    out = tuple(int(v) for v in rng.integers(1, 90, 3))
    arr = rng.integers(0, 2**40, shape).astype(np.float64)  # exact in float
    factors = np.divide(out, shape)
    expected = ndimage.zoom(arr, factors, order=0, mode="nearest")
    got = resize_nearest(arr, expected.shape)
    np.testing.assert_array_equal(got, expected)


def test_zoom_index_is_ndimage_zoom_for_every_length_pair():
    from imagery_gui.model.resample import zoom_index

    pairs = [(a, b) for a in range(1, 261) for b in range(1, 261)]
    pairs += [(a, b) for a in (333, 1000, 1023, 1024, 2048, 3000, 4096) for b in range(1, 5000, 7)]
    compared = 0
    for n_in, n_out in pairs:
        ref = ndimage.zoom(np.arange(n_in, dtype=np.float64), n_out / n_in, order=0, mode="nearest")
        if ref.shape[0] != n_out:  # scipy rounds the output length its own way
            continue
        np.testing.assert_array_equal(zoom_index(n_in, n_out), ref.astype(np.intp))
        compared += 1
    assert compared > 70_000


def test_resize_keeps_big_ids_exact():
    ids = np.array([[864691135000000001, 864691135999999999]], dtype=np.uint64)
    out = resize_nearest(ids, (3, 5))
    assert out.dtype == np.uint64
    assert set(np.unique(out).tolist()) == {864691135000000001, 864691135999999999}
    # ...which scipy's zoom does not manage:
    zoomed = ndimage.zoom(ids, (3, 2.5), order=0, mode="nearest")
    assert not set(np.unique(zoomed).tolist()) <= {864691135000000001, 864691135999999999}


def test_bbox_conversion_matches_cloudvolume_truncation():
    box = np.array([[101.0, 203.0, 7.0], [201.0, 305.0, 9.0]])
    lo, hi = bounds_to_mip_bbox(box, [4, 4, 40], [8, 8, 40])
    assert lo.tolist() == [50, 101, 7] and hi.tolist() == [100, 152, 9]
    lo, hi = bounds_to_mip_bbox(np.array([[-3.0, -5, 0], [3, 5, 1]]), [4, 4, 40], [8, 8, 40])
    assert lo.tolist() == [-1, -2, 0]  # toward zero, as int64 casting does


def test_bounds_from_center_like_imageryclient():
    for ctr, w, h, d in [
        ([10, 20, 30], 5, 4, 1),
        ([0, 0, 0], 100, 101, 3),
        (np.array([7.5, 3, 2]), 4, 4, 2),
    ]:
        np.testing.assert_array_equal(
            ig.bounds_from_center(np.asarray(ctr), w, h, d),
            icref.bounds_from_center(np.asarray(ctr), w, h, d),
        )


def test_parse_root_ids():
    assert parse_root_ids("864691135012345678, 864691135012345679\n864691135012345678") == [
        864691135012345678,
        864691135012345679,
    ]
    assert parse_root_ids(["!864691135000000001", np.uint64(2**63 + 1), 5]) == [
        864691135000000001,
        2**63 + 1,
        5,
    ]
    assert parse_root_ids(np.array([3, 4], dtype=np.int64)) == [3, 4]
    for bad in ("12a", 8.64e17, -1, 2**64, "1.5", np.array([1.5])):
        with pytest.raises(RootIdError):
            parse_root_ids(bad)


def test_parse_ids_keeps_valid_ids_and_names_each_rejected_token():
    big = "864691135012345678"
    r = parse_ids(f"abc {big}")
    assert r.ids == (864691135012345678,) and r.rejected == (("abc", "not a number"),)
    r = parse_ids("0 12345")
    assert r.ids == (12345,) and r.rejected == (("0", "0 means no segment"),)
    r = parse_ids("-5, 18446744073709551616;18446744073709551615\n1.5 8.6e17 !7 +8 7")
    assert r.ids == (2**64 - 1, 7, 8)  # order kept, duplicates dropped, '!' and '+' allowed
    assert [t for t, _ in r.rejected] == ["-5", "18446744073709551616", "1.5", "8.6e17"]
    reasons = [why for _, why in r.rejected]
    assert reasons[0] == "negative: ids are positive whole numbers"
    assert reasons[1].startswith("too large for a 64-bit id")
    assert all(w.startswith("not a whole number") for w in reasons[2:])
    assert r.message("the root ids").startswith("ignored 4 entries of the root ids that are not")
    # Lists (the command line's arguments), ints, numpy ints and floats.
    r = parse_ids(["12,13", 14, np.uint64(2**63 + 1), 2.0, True, -2])
    assert r.ids == (12, 13, 14, 2**63 + 1)
    assert [t for t, _ in r.rejected] == ["2.0", "True", "-2"]
    assert parse_ids(None).ids == () and parse_ids("  ").rejected == ()
    assert parse_ids("5").message() == ""
    # The same rules for one token, as links and the picker use them.
    assert id_token_problem("864691135012345678") == (864691135012345678, None)
    assert id_token_problem("x")[1] == "not a number"
    # The Python API's strict parser is unchanged: it raises on the first bad value.
    with pytest.raises(RootIdError):
        parse_root_ids("abc 5")
    assert parse_root_ids("0 5") == [0, 5]


def test_absent_ids():
    assert absent_ids([5, 6, 7], [7, 8]) == [5, 6] and absent_ids(None, [1]) == []


def test_split_masks_like_imageryclient():
    rng = np.random.default_rng(0)
    labels = rng.choice(np.array([0, 864691135000000007, 5, 2**62], dtype=np.uint64), size=(40, 30))
    ours = split_masks(labels)
    theirs = icutils.segmentation_masks(labels)
    assert [int(k) for k in ours] == [int(k) for k in theirs]
    for k in theirs:
        assert ours[k].dtype == theirs[k].dtype
        np.testing.assert_array_equal(ours[k], theirs[k])
    with_zero = split_masks(labels, include_null_root=True)
    assert int(next(iter(with_zero))) == 0


def test_palette_like_seaborn_and_imageryclient():
    from imageryclient.composite import discrete_colors

    for pal in ("husl", "hls", "tab10", "Set2"):
        segs = {i: None for i in range(13)}
        theirs = discrete_colors(segs, pal, 0.01, 0.65, 1.0)
        ours = palette_colors(13, pal)
        assert [icutils.colors_to_uint8([c])[0] for c in theirs.values()] == [
            list(to_uint8(c)) for c in ours
        ]
    with pytest.raises(ValueError, match="unknown palette"):
        palette_colors(3, "not-a-palette")


def test_colors():
    assert to_uint8("#ff8000") == (255, 128, 0)
    assert to_uint8("f80") == (255, 136, 0)
    assert to_uint8("cyan") == (0, 255, 255)
    assert to_uint8((0.5, 0.5, 0.5)) == (127, 127, 127)  # int(255 * c), as ImageryClient
    assert to_uint8((200, 10, 0)) == (200, 10, 0)
    with pytest.raises(ValueError):
        to_uint8("nonsense-colour")
    a = colors_for_ids([864691135000000001, 864691135000000002])
    b = colors_for_ids([864691135000000002])
    assert a[864691135000000002] == b[864691135000000002]  # stable whatever else is shown


def test_apply_lut_any_layout():
    from imagery_gui.model.render import apply_lut

    rng = np.random.default_rng(2)
    lut = rng.integers(0, 256, (7, 4)).astype(np.uint8)
    idx = rng.integers(-1, 7, (5, 9)).astype(np.int32)
    for view in (idx, idx.T, idx[:, ::2], np.asfortranarray(idx)):
        np.testing.assert_array_equal(apply_lut(lut, view), lut[view])
