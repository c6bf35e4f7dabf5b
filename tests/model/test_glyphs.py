"""Site glyphs drawn by the model: rings (not discs), arrows, role colours, fading."""

from __future__ import annotations

import numpy as np
import pytest

from imagery_gui.model.glyphs import (
    KIND_BOX,
    KIND_LINE,
    KIND_POINT,
    ROLE_INPUT,
    ROLE_OUTPUT,
    Glyphs,
    GlyphStyle,
    draw_glyphs,
    fade,
    in_view,
)

NAN3 = [np.nan] * 3


def _glyphs(rows):
    """rows: (center, pre, post, role, kind, extent)"""
    c = np.array([r[0] for r in rows], float)
    return Glyphs(
        center=c,
        pre=np.array([r[1] for r in rows], float),
        post=np.array([r[2] for r in rows], float),
        role=np.array([r[3] for r in rows], np.int8),
        kind=np.array([r[4] for r in rows], np.int8),
        extent=np.array([r[5] for r in rows], float),
        index=np.arange(len(rows)),
    )


def test_ring_leaves_the_centre_free_and_has_the_role_colour():
    style = GlyphStyle(radius=10, width=2)
    g = _glyphs([((50, 50, 3), NAN3, NAN3, ROLE_INPUT, KIND_POINT, [np.nan, np.nan])])
    img = np.asarray(draw_glyphs((100, 100), g, 3, style))
    assert img[50, 50, 3] == 0  # a ring, not a disc: the cleft stays visible
    ring = img[50, 59]  # on the stroke, just inside the radius
    assert tuple(ring[:3]) == style.input_color and ring[3] == 255
    assert tuple(img[50, 61, :3]) == style.halo_color  # the halo just outside it
    assert img[50, 75, 3] == 0  # nothing far away


def test_outputs_read_apart_from_inputs_in_grey_too():
    style = GlyphStyle(radius=10, width=2)
    rows = [
        ((30, 30, 0), NAN3, NAN3, ROLE_INPUT, KIND_POINT, [np.nan, np.nan]),
        ((80, 30, 0), NAN3, NAN3, ROLE_OUTPUT, KIND_POINT, [np.nan, np.nan]),
    ]
    img = np.asarray(draw_glyphs((110, 60), _glyphs(rows), 0, style))
    a, b = img[:, :55, 3] > 0, img[:, 55:, 3] > 0
    # a circle and a diamond: different shapes, so not only the hue tells them apart
    assert a.sum() != b.sum() or not np.array_equal(a, b[:, : a.shape[1]])
    assert a[30, 30 - 10 + 1] and not b[30 - 7, 80 - 55 - 7]  # circle edge / diamond's gap


def test_arrow_from_pre_to_post_and_fading_on_neighbouring_sections():
    style = GlyphStyle(radius=6, width=2, fade_sections=2)
    g = _glyphs([((50, 50, 10), (20, 50, 10), (80, 50, 10), ROLE_OUTPUT, KIND_LINE, [np.nan] * 2)])
    own = np.asarray(draw_glyphs((100, 100), g, 10, style))
    assert tuple(own[50, 30, :3]) == style.output_color  # the shaft, outside the ring
    assert own[50, 50, 3] == 0  # not through the centre
    assert own[50, 78, 3] == 255  # the head at the post point
    near = np.asarray(draw_glyphs((100, 100), g, 11, style))
    far = np.asarray(draw_glyphs((100, 100), g, 13, style))
    assert 0 < near[50, 30, 3] < 255 and far[..., 3].max() == 0
    assert fade(np.array([0, 1, 2, 3]), 2).tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0])


def test_boxes_and_only_glyphs_in_view_are_considered():
    style = GlyphStyle()
    g = _glyphs([((50, 40, 0), NAN3, NAN3, 0, KIND_BOX, [20, 10])])
    img = np.asarray(draw_glyphs((100, 100), g, 0, style))
    assert tuple(img[30, 50, :3]) == style.other_color  # the top edge at y = 40 - 10
    assert img[40, 50, 3] == 0
    rng = np.random.default_rng(0)
    centers = np.c_[rng.uniform(-5e5, 5e5, (100_000, 2)), rng.integers(0, 50, 100_000)]
    centers[:3] = [[10, 10, 5], [90, 90, 6], [50, 50, 20]]
    nan = np.full_like(centers, np.nan)
    idx = in_view(centers, nan, nan, (100, 100), 5, style)
    assert set(idx.tolist()) >= {0, 1} and 2 not in idx and len(idx) < 10
