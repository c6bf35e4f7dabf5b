"""The split cutout's lazy mask dict behaves as ImageryClient's dict, at 1x the labels.

``split_segmentation_cutout`` / ``image_and_segmentation_cutout(split_segmentations=True)``
return a :class:`SplitMasks`: every dict operation a script may use is compared with the
real ``imageryclient`` 1.0.4's plain dict from the same volume, and the renderers are
checked after the dict is changed (values assigned, keys deleted, masks edited in place).
"""

from __future__ import annotations

import copy
import gc
import json
import pickle
import tracemalloc

import imageryclient as icref
import numpy as np
import pytest

import imagery_gui as ig
from imagery_gui.model.segments import SplitMasks

# (The test suite's pinky40 crop holds one cell only, so the 18-digit ids come from
# synthetic_big; medulla is real FIB-SEM with dense bodies.)
PAIRS = ["synthetic_small", "synthetic_big", "demo_pair", "medulla"]


@pytest.fixture(scope="module", params=PAIRS)
def split_pair(request):
    """(ours, theirs) split cutouts of the same 2D view, with the image."""
    pair = request.getfixturevalue(request.param)
    kw = dict(image_source=pair.image, segmentation_source=pair.segmentation)
    bounds = ig.bounds_from_center(np.array(pair.center), 240, 200, 1)
    img, ours = ig.ImageryClient(**kw).image_and_segmentation_cutout(
        bounds, split_segmentations=True
    )
    _, theirs = icref.ImageryClient(**kw).image_and_segmentation_cutout(
        bounds, split_segmentations=True
    )
    assert isinstance(ours, SplitMasks) and len(ours) >= 3
    return img, ours, theirs


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


def _same_dict(ours, theirs):
    assert isinstance(ours, dict)
    assert [(type(k), int(k)) for k in ours] == [(type(k), int(k)) for k in theirs]
    for (ko, vo), (kt, vt) in zip(ours.items(), theirs.items()):
        assert ko == kt
        _same(vo, vt)


def _pixels(img):
    return np.asarray(img)


def test_reading_like_a_dict(split_pair):
    _, ours, theirs = split_pair
    assert isinstance(ours, dict)
    assert len(ours) == len(theirs) and bool(ours)
    assert list(ours) == list(theirs)
    assert list(ours.keys()) == list(theirs.keys())
    assert list(reversed(ours)) == list(reversed(theirs))
    _same_dict(ours, theirs)
    for v_o, v_t in zip(ours.values(), theirs.values()):
        _same(v_o, v_t)
    for v_o, v_t in zip(reversed(ours.values()), reversed(theirs.values())):
        _same(v_o, v_t)
    assert len(ours.values()) == len(theirs.values())
    assert len(ours.items()) == len(theirs.items())
    k = list(theirs)[1]
    _same(ours[k], theirs[k])
    _same(ours[int(k)], theirs[int(k)])  # a Python int finds a numpy key, as in a dict
    _same(ours.get(k), theirs.get(k))
    assert k in ours and int(k) in ours and 123 not in ours
    assert ours.get(123) is None and ours.get(123, "x") == "x"
    with pytest.raises(KeyError):
        ours[123]
    assert sorted(ours) == sorted(theirs)
    assert repr(ours) == repr(theirs)
    assert str(ours) == str(theirs)
    assert repr(ours.values()) == repr(theirs.values())
    assert repr(ours.items()) == repr(theirs.items())
    assert ours.keys() == theirs.keys()
    assert ours.keys() & {k} == {k}


def test_plain_dict_copies_and_pickling(split_pair):
    _, ours, theirs = split_pair
    for plain in (dict(ours), {**ours}, dict(ours.items()), {k: v for k, v in ours.items()}):
        assert type(plain) is dict
        _same_dict(plain, theirs)
    merged = {}
    merged.update(ours)
    _same_dict(merged, theirs)
    for dup in (ours.copy(), copy.copy(ours), copy.deepcopy(ours)):
        assert type(dup) is SplitMasks
        _same_dict(dup, theirs)
    back = pickle.loads(pickle.dumps(ours))
    assert type(back) is SplitMasks
    _same_dict(back, theirs)
    # Pickled as the label image: far smaller than ImageryClient's N masks.
    assert len(pickle.dumps(ours)) < len(pickle.dumps(theirs)) / 2
    _same_dict(ours | {}, theirs | {})
    _same_dict({} | ours, {} | theirs)
    # json cannot take numpy keys, for either.
    with pytest.raises(TypeError):
        json.dumps(theirs)
    with pytest.raises(TypeError):
        json.dumps(ours)


def test_equality_like_a_dict(split_pair):
    _, ours, theirs = split_pair
    empty: dict = {}
    assert ours != empty and empty != ours and (ours == empty) is False
    assert ours != {1: 2} and ours != [1]
    other_keys = dict.fromkeys(range(-1, -len(theirs) - 1, -1), 0)
    assert (ours == other_keys) is False and (theirs == other_keys) is False
    # Equal keys, different array objects: a dict's comparison asks an array for its truth.
    with pytest.raises(ValueError):
        assert theirs == {k: v.copy() for k, v in theirs.items()}
    with pytest.raises(ValueError):
        assert ours == theirs
    with pytest.raises(ValueError):
        assert theirs == ours
    # While a script holds the masks, reading them again gives the same objects, so a
    # copy of the dict compares equal, as a dict and its copy do.
    same_objects = dict(ours.items())
    assert all(ours[k] is v for k, v in same_objects.items())
    assert ours == same_objects and same_objects == ours
    assert (ours != same_objects) is False
    with pytest.raises(TypeError):
        hash(ours)


def test_changing_it_like_a_dict(split_pair):
    img, ours, theirs = split_pair
    ours, theirs = ours.copy(), dict(theirs)
    keys = list(theirs)
    # delete, pop, popitem
    del ours[keys[0]], theirs[keys[0]]
    _same(ours.pop(keys[1]), theirs.pop(keys[1]))
    assert ours.pop(keys[1], "gone") == "gone"
    with pytest.raises(KeyError):
        ours.pop(keys[1])
    ko, vo = ours.popitem()
    kt, vt = theirs.popitem()
    assert ko == kt
    _same(vo, vt)
    _same_dict(ours, theirs)
    # assign, setdefault, update, |=
    new = np.zeros_like(theirs[keys[2]])
    new[:5, :5] = 1
    ours[keys[2]] = new
    theirs[keys[2]] = new
    assert ours[keys[2]] is new
    _same(ours.setdefault(keys[3]), theirs.setdefault(keys[3]))
    extra = {777: new.copy()}
    ours.update(extra)
    theirs.update(extra)
    ours |= {778: new}
    theirs |= {778: new}
    _same_dict(ours, theirs)
    for kw in ({}, dict(outline=True, width=3, side="in", merge_outline=False)):
        np.testing.assert_array_equal(
            _pixels(ig.composite_overlay(ours, imagery=img, **kw)),
            _pixels(icref.composite_overlay(theirs, imagery=img, **kw)),
        )
    ours.clear()
    assert len(ours) == 0 and ours == {}


def test_deleted_keys_render_from_labels(split_pair):
    img, ours, theirs = split_pair
    ours, theirs = ours.copy(), dict(theirs)
    for k in list(theirs)[::2]:
        del ours[k], theirs[k]
    assert ours.label_image() is not None  # still drawn from the label image
    for kw in ({}, dict(outline=True, width=15, side="out", merge_outline=True)):
        np.testing.assert_array_equal(
            _pixels(ig.composite_overlay(ours, imagery=img, **kw)),
            _pixels(icref.composite_overlay(theirs, imagery=img, **kw)),
        )


def test_masks_changed_in_place_stay_changed(split_pair):
    img, ours, theirs = split_pair
    ours, theirs = ours.copy(), copy.deepcopy(theirs)
    keys = list(theirs)
    # A change through a temporary: the dict keeps it, as ImageryClient's does.
    ours[keys[0]][:10, :] = 1
    theirs[keys[0]][:10, :] = 1
    for k in keys:  # read every other mask, so the changed one leaves the small cache
        ours[k].sum()
    # A change through a mask the script holds on to.
    held = ours[keys[1]]
    held[:, :4] = 1
    theirs[keys[1]][:, :4] = 1
    for k in keys[2:]:
        ours[k].sum()
    assert ours[keys[1]] is held
    assert ours.label_image() is None  # the values are the truth now
    _same_dict(ours, theirs)
    np.testing.assert_array_equal(
        _pixels(ig.composite_overlay(ours, imagery=img, alpha=0.5)),
        _pixels(icref.composite_overlay(theirs, imagery=img, alpha=0.5)),
    )


def test_stack_images_of_masks(split_pair):
    _, ours, theirs = split_pair
    want = [(np.asarray(theirs[k]) > 0).astype(np.uint8) * 255 for k in theirs]
    for arg in (ours, ours.values()):
        out = np.asarray(ig.stack_images(arg, spacing=2).convert("L"))
        width = want[0].shape[0]
        for i, w in enumerate(want):
            np.testing.assert_array_equal(out[:, i * (width + 2) : i * (width + 2) + width], w.T)


def test_include_null_root_renders_zero(synthetic_small):
    pair = synthetic_small
    kw = dict(image_source=pair.image, segmentation_source=pair.segmentation)
    ref = icref.ImageryClient(**kw)
    lo = np.asarray(ref.image_cv.bounds.minpt)  # half outside the volume: id 0 there
    bounds = [(lo - [30, 20, 0]).tolist(), (lo + [34, 26, 1]).tolist()]
    img, ours = ig.ImageryClient(**kw).image_and_segmentation_cutout(
        bounds, split_segmentations=True, include_null_root=True
    )
    _, theirs = ref.image_and_segmentation_cutout(
        bounds, split_segmentations=True, include_null_root=True
    )
    assert int(next(iter(ours))) == 0
    _same_dict(ours, theirs)
    np.testing.assert_array_equal(
        _pixels(ig.composite_overlay(ours, imagery=img)),
        _pixels(icref.composite_overlay(theirs, imagery=img)),
    )


def _traced(fn):
    """(result, bytes still allocated by fn, peak bytes during fn), by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, current - base, peak - base


def test_split_cutout_memory_many_segments(demo_pair):
    """Holding a split cutout of hundreds of segments costs about its label image, not N
    masks; reading every mask (one at a time) does not make it grow."""
    client = ig.ImageryClient(
        image_source=demo_pair.image, segmentation_source=demo_pair.segmentation
    )
    bounds = ig.bounds_from_center(np.array(demo_pair.center), 512, 512, 1)
    client.split_segmentation_cutout(bounds)  # warm the chunk cache outside the figure
    segs, held, peak = _traced(lambda: client.split_segmentation_cutout(bounds))
    labels_bytes = 512 * 512 * 8
    assert len(segs) >= 100
    assert held <= 2 * labels_bytes, (held, labels_bytes)
    # The peak includes the read itself; the masks ImageryClient would hold are 100+ x.
    assert peak <= 6 * labels_bytes, (peak, labels_bytes)

    def read_all():
        return sum(int(v.sum()) for v in segs.values())

    total, grown, _ = _traced(read_all)
    assert total == int((np.asarray(segs.label_image()[0]) != 0).sum())
    assert grown <= 1.1 * labels_bytes  # at most the one mask kept as "last read"

    _, both = client.image_and_segmentation_cutout(bounds, split_segmentations=True)
    _, held2, _ = _traced(
        lambda: client.image_and_segmentation_cutout(bounds, split_segmentations=True)
    )
    assert len(both) >= 100 and held2 <= 2 * labels_bytes + 512 * 512  # + the uint8 image
