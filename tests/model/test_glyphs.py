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


def test_export_draws_the_glyphs_at_their_voxels(demo, tmp_path):
    """A site put at a known voxel shows its ring around that voxel's pixel in an export
    (at scale 1 and 3), fades on the next section, and --no-annotate leaves the figure as
    without sites; the provenance names the table and the sites drawn."""
    import json

    from imagery_gui.model.dataset import Dataset
    from imagery_gui.model.export import FigureSpec, export, make_figure
    from imagery_gui.model.sites import SiteSource, SiteTable

    ds = Dataset(demo.image_source, demo.segmentation_source)
    cx, cy, cz = (int(v) for v in demo.center)
    # the table is at 8x8x40 nm (half the figure's 4 nm): a voxel there is 2 figure pixels
    table = SiteTable(
        centers=[[(cx + 20) / 2, (cy - 30) / 2, cz], [(cx - 40) / 2, (cy + 10) / 2, cz + 1]],
        pre=[[(cx + 10) / 2, (cy - 30) / 2, cz], [np.nan] * 3],
        post=[[(cx + 30) / 2, (cy - 30) / 2, cz], [np.nan] * 3],
        role_codes=[ROLE_OUTPUT, ROLE_INPUT],
        ids=[864691135000000011, 7],
        resolution=(8, 8, 40),
        resolution_from="test",
        source=SiteSource("file", path="synapses.csv"),
    )
    style = GlyphStyle(radius=8, width=2)
    plain = FigureSpec.from_center(demo.center, (160, 120))
    spec = FigureSpec.from_center(demo.center, (160, 120), sites=table, glyph_style=style)
    base = np.asarray(make_figure(ds, plain).slices[0].convert("RGB"))
    fig = make_figure(ds, spec)
    img = np.asarray(fig.slices[0].convert("RGB"))
    x0, y0 = cx - 80, cy - 60  # the figure's corner voxel
    sx, sy = cx + 20 - x0 + 1, cy - 30 - y0 + 1  # pixel of the site's voxel centre
    assert (img[sy, sx] == base[sy, sx]).all()  # the centre stays visible
    assert tuple(img[sy - 7, sx]) == style.output_color  # on the ring, not the pixels'
    assert fig.site_rows == [0, 1]  # the second one faded (next section), still drawn
    tx, ty = cx - 40 - x0 + 1, cy + 10 - y0 + 1
    faded = img[ty, tx - 7].astype(int)
    assert np.abs(faded - base[ty, tx - 7]).max() > 0 and tuple(faded) != style.input_color

    big = make_figure(ds, FigureSpec.from_center(demo.center, (160, 120), sites=table, scale=3))
    arr = np.asarray(big.slices[0].convert("RGB"))
    assert tuple(arr[sy * 3 + 1 - 3 * 9 + 3, sx * 3 + 1]) != tuple(base[sy, sx])  # ring, 3x

    off = FigureSpec.from_center(demo.center, (160, 120), sites=table, annotate=False)
    np.testing.assert_array_equal(np.asarray(make_figure(ds, off).slices[0].convert("RGB")), base)
    export(ds, spec, tmp_path / "s.png")
    prov = json.loads((tmp_path / "s.json").read_text())
    assert prov["sites"]["drawn_ids"] == ["864691135000000011", "7"]
    assert prov["sites"]["source"]["path"] == "synapses.csv"
