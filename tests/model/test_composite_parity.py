"""The renderer gives the same pixels as ``imageryclient.composite_overlay`` 1.0.4."""

from __future__ import annotations

import imageryclient as icref
import numpy as np
import pytest

import imagery_gui as ig

STYLES = {
    "fill": dict(),
    "fill_alpha": dict(alpha=0.55),
    "fill_alpha1": dict(alpha=1.0),
    "fill_no_overlap": dict(overlap=False),
    "out_merge_15": dict(outline=True, width=15, side="out", merge_outline=True, alpha=0.5),
    "out_nomerge_7": dict(outline=True, width=7, side="out", merge_outline=False, alpha=0.6),
    "out_nomerge_alpha1": dict(outline=True, width=4, side="out", merge_outline=False, alpha=1.0),
    "out_no_overlap": dict(outline=True, width=6, side="out", merge_outline=False, overlap=False),
    "in_nomerge_3": dict(outline=True, width=3, side="in", merge_outline=False, alpha=1.0),
    "in_merge_5": dict(outline=True, width=5, side="in", merge_outline=True, alpha=0.7),
    "tab10": dict(palette="tab10", alpha=0.4),
    "hls": dict(palette="hls", alpha=0.3, h=0.3, l=0.5, s=0.8),
}


@pytest.fixture(scope="module", params=["synthetic_big", "pinky_pair", "demo_pair"])
def cutout(request):
    pair = request.getfixturevalue(request.param)
    client = ig.ImageryClient(image_source=pair.image, segmentation_source=pair.segmentation)
    bounds = ig.bounds_from_center(np.array(pair.center), 200, 160, 1)
    img, masks = client.image_and_segmentation_cutout(bounds, split_segmentations=True)
    _, labels = client.image_and_segmentation_cutout(bounds, convert_to_int64=False)
    return img, masks, labels


def _eq(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    diff = np.any(a != b, axis=-1)
    assert not diff.any(), f"{diff.sum()} of {diff.size} pixels differ"


@pytest.mark.parametrize("style", list(STYLES))
def test_masks_with_imagery(cutout, style):
    img, masks, _ = cutout
    kw = STYLES[style]
    _eq(
        ig.composite_overlay(masks, imagery=img, **kw),
        icref.composite_overlay(masks, imagery=img, **kw),
    )


@pytest.mark.parametrize("style", ["fill", "out_merge_15", "out_nomerge_7", "in_merge_5"])
def test_masks_without_imagery(cutout, style):
    """Without imagery the RGBA overlay itself is compared, including hidden colour."""
    _, masks, _ = cutout
    kw = STYLES[style]
    _eq(ig.composite_overlay(masks, **kw), icref.composite_overlay(masks, **kw))


@pytest.mark.parametrize("style", ["fill", "out_nomerge_7", "in_nomerge_3"])
def test_label_array_input(cutout, style):
    """A label array (uint64, 18-digit ids) renders like ImageryClient renders its masks."""
    img, masks, labels = cutout
    kw = STYLES[style]
    _eq(
        ig.composite_overlay(labels, imagery=img, **kw),
        icref.composite_overlay(masks, imagery=img, **kw),
    )


def test_colors_dict_and_list(cutout):
    img, masks, _ = cutout
    keys = list(masks)
    rng = np.random.default_rng(3)
    colors = {k: tuple(rng.random(3)) for k in keys}
    _eq(
        ig.composite_overlay(masks, imagery=img, colors=colors, alpha=0.5),
        icref.composite_overlay(masks, imagery=img, colors=colors, alpha=0.5),
    )
    lst = [colors[k] for k in keys]
    _eq(
        ig.composite_overlay(list(masks.values()), imagery=img, colors=lst, outline=True, width=3),
        icref.composite_overlay(
            list(masks.values()), imagery=img, colors=lst, outline=True, width=3
        ),
    )


def test_hex_colors_match_float_colors(cutout):
    img, masks, _ = cutout
    keys = list(masks)[:3]
    sub = {k: masks[k] for k in keys}
    hexes = dict(zip(keys, ["#ff0000", "#00ffff", "#ffff00"]))
    floats = dict(zip(keys, [(1, 0, 0), (0, 1, 1), (1, 1, 0)]))
    _eq(
        ig.composite_overlay(sub, imagery=img, colors=hexes, alpha=0.6),
        icref.composite_overlay(sub, imagery=img, colors=floats, alpha=0.6),
    )


def _overlapping_masks(shape=(90, 70)):
    """Masks that overlap each other (not a label image): the general, slow path."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = {}
    for i, (cy, cx, r) in enumerate([(30, 30, 18), (45, 40, 20), (60, 25, 14), (20, 55, 10)]):
        out[i + 1] = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(int).T
    return out


@pytest.mark.parametrize("style", list(STYLES))
def test_overlapping_masks(style):
    masks = _overlapping_masks()
    img = (np.arange(90 * 70).reshape(90, 70) % 251).astype(np.uint8).T  # (x, y) like masks
    kw = STYLES[style]
    _eq(
        ig.composite_overlay(masks, imagery=img, **kw),
        icref.composite_overlay(masks, imagery=img, **kw),
    )
    _eq(ig.composite_overlay(masks, **kw), icref.composite_overlay(masks, **kw))


@pytest.mark.parametrize("dim", [2, 0])
def test_3d_stack_list(pinky_pair, dim):
    client = ig.ImageryClient(
        image_source=pinky_pair.image, segmentation_source=pinky_pair.segmentation
    )
    bounds = ig.bounds_from_center(np.array(pinky_pair.center), 80, 60, 3)
    img, masks = client.image_and_segmentation_cutout(bounds, split_segmentations=True)
    kw = dict(outline=True, width=3, side="in", merge_outline=False, alpha=0.3, dim=dim)
    ours = ig.composite_overlay(masks, imagery=img, **kw)
    theirs = icref.composite_overlay(masks, imagery=img, **kw)
    assert isinstance(ours, list) and len(ours) == len(theirs) == img.shape[dim]
    for a, b in zip(ours, theirs):
        _eq(a, b)
    _eq(ig.stack_images(ours), icref.stack_images(theirs))
    _eq(
        ig.stack_images(ours, direction="vertical", spacing=3),
        icref.stack_images(theirs, direction="vertical", spacing=3),
    )


def test_stack_images_bad_direction():
    with pytest.raises(ValueError, match="horizontal"):
        ig.stack_images([], direction="diagonal")
