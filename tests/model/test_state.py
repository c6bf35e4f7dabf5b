"""The viewer state without a window: one validated style, one colour rule, links both ways,
``imagery-gui export --ngl-url`` and the controller logic of :class:`ViewerState`.

Real volumes (tests/helpers/volumes.py), the real ``neuroglancer`` package and the real
ImageryClient as independent oracles; no mocks."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from imageryclient import composite as ic_composite
from imageryclient import utils as ic_utils
from neuroglancer import segment_colors as ngsc
from neuroglancer.url_state import parse_url
from PIL import Image

from imagery_gui.model import colors
from imagery_gui.model.export import EXPORT_STYLE, FigureSpec, make_figure
from imagery_gui.model.inputs import open_dataset, resolve
from imagery_gui.model.ngl import make_link, make_state
from imagery_gui.model.palette import to_hex
from imagery_gui.model.state import (
    Camera,
    ViewerState,
    link_state,
    selection_from_inputs,
    style_from_link,
)
from imagery_gui.model.style import (
    SEED_MAX,
    OverlayStyle,
    Selection,
    StyleError,
    validate_style,
)
from imagery_gui.model.view import Coloring, choose_mips
from tests.helpers.volumes import BIG_OFFSET

# 18-digit ids, as real root ids are (above 2**53, so float64 would round them)
IDS = [864691135694342906, 864691135012345678, 864691136999999999, 864691135000000001]


# -- validation ---------------------------------------------------------------------------
STRICT_REFUSED = [
    # (values, words that must be in the message: the field and what is allowed)
    ({"alpha": 7}, ["alpha", "0 to 1"]),
    ({"selected_alpha": -0.5}, ["selected alpha", "0 to 1"]),
    ({"width": -3}, ["outline width", "1 to 100"]),
    ({"width": 2.5}, ["outline width", "whole number", "1 to 100"]),
    ({"palette": "notapalette"}, ["palette", "notapalette", "husl"]),
    ({"side": "up"}, ["side", "'in' or 'out'"]),
    ({"color_seed": -1}, ["colour seed", f"0 to {SEED_MAX}"]),
    ({"color_seed": "abc"}, ["colour seed", "number"]),
    ({"color_by": "size"}, ["colour rule", "'id' or 'order'"]),
    ({"outline": "yes"}, ["outline", "true or false"]),
    ({"bogus": 1}, ["bogus", "alpha", "palette"]),  # the known names are listed
]


@pytest.mark.parametrize("values, words", STRICT_REFUSED, ids=lambda v: str(v)[:24])
def test_strict_validation_refuses_with_the_field_and_what_is_allowed(values, words):
    base = OverlayStyle(alpha=0.3)
    with pytest.raises(StyleError) as err:
        validate_style(values, base=base, strict=True)
    for w in words:
        assert w in str(err.value), (w, str(err.value))
    # nothing half-applied: a good value beside the bad one is not applied either
    with pytest.raises(StyleError):
        base.replace(**{"outline": True, **values})
    assert base.alpha == 0.3 and not base.outline


LENIENT = [
    ({"alpha": 7}, {"alpha": 1.0}),
    ({"alpha": -2}, {"alpha": 0.0}),
    ({"width": -3}, {"width": 1}),
    ({"width": 250}, {"width": 100}),
    ({"width": 2.5}, {"width": 2}),
    ({"palette": "notapalette"}, {"palette": "tab10"}),  # the base's is kept
    ({"side": "up"}, {"side": "out"}),
    ({"color_seed": -1}, {"color_seed": 0}),
    ({"color_seed": "abc"}, {"color_seed": 5}),
    ({"show_unselected": "no"}, {"show_unselected": False}),
    ({"bogus": 1}, {}),
]


@pytest.mark.parametrize("values, expected", LENIENT, ids=lambda v: str(v)[:24])
def test_lenient_validation_clamps_or_keeps_with_a_warning(values, expected):
    base = OverlayStyle(palette="tab10", side="out", color_seed=5, show_unselected=False)
    style, warnings = validate_style(values, base=base, strict=False)
    assert len(warnings) == 1, warnings  # one warning for the one bad value
    name = next(iter(values))
    assert name.replace("_", " ").split()[0] in warnings[0] or "seed" in warnings[0]
    assert dataclasses.replace(base, **expected) == style
    # and what was kept or clamped is itself valid
    assert OverlayStyle(**style.to_dict()) == style


@pytest.mark.parametrize(
    "kw",
    [
        {"alpha": 7},
        {"width": -3},
        {"width": 2.5},
        {"palette": "notapalette"},
        {"side": "up"},
        {"color_seed": -1},
        {"color_seed": SEED_MAX + 1},
        {"color_by": "size"},
        {"merge_outline": 1},
        {"alpha": float("nan")},
    ],
    ids=str,
)
def test_an_invalid_overlay_style_cannot_be_constructed(kw):
    with pytest.raises(StyleError):
        OverlayStyle(**kw)


def test_an_overlay_style_holds_its_values_in_their_own_types():
    """What passes validation is stored as the field's type: "0.5" is not an alpha."""
    style = OverlayStyle(alpha="0.5", width=3.0, color_seed="7")  # type: ignore[arg-type]
    assert style == OverlayStyle(alpha=0.5, width=3, color_seed=7)
    assert type(style.alpha) is float and type(style.width) is int
    assert type(style.color_seed) is int
    assert colors.alpha_to_uint8(style.alpha) == 127


# -- one colour rule ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_dataset(synthetic_big):
    inputs = resolve(
        image_source=synthetic_big.image,
        segmentation_source=synthetic_big.segmentation,
        center=list(synthetic_big.center),
    )
    return inputs, open_dataset(inputs)


def _seg_layer(state):
    return next(layer for layer in state["layers"] if layer["type"] == "segmentation")


def _hex_to_rgb(text):
    return tuple(int(text[k : k + 2], 16) for k in (1, 3, 5))


CASES = {
    "husl by id": (OverlayStyle(palette="husl"), {}),
    "tab10 by id": (OverlayStyle(palette="tab10"), {}),
    "neuroglancer seed 7": (OverlayStyle(palette="neuroglancer", color_seed=7), {}),
    "explicit": (OverlayStyle(palette="husl"), {IDS[1]: (255, 0, 0), IDS[3]: (1, 2, 3)}),
    "explicit over neuroglancer": (
        OverlayStyle(palette="neuroglancer", color_seed=1689220695),
        {IDS[0]: (0, 128, 255)},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_colour_rule_view_link_and_swatches(case):
    style, explicit = CASES[case]
    sel = Selection.of(IDS, explicit)
    expected = colors.segment_colors(IDS, style, explicit)
    assert expected.shape == (len(IDS), 3) and expected.dtype == np.uint8
    # explicit colours win; the rest follow the palette rule
    for i, sid in enumerate(IDS):
        if sid in explicit:
            assert tuple(expected[i]) == explicit[sid]
        elif style.palette == "neuroglancer":
            # the neuroglancer package's colour (its float64 rounding differs from the
            # browser's float32 one at exact ties only: tests/model/test_ngl.py)
            ref = ngsc.hex_string_from_segment_id(style.color_seed, sid)
            assert np.abs(expected[i].astype(int) - _hex_to_rgb(ref)).max() <= 1
    # the view's colour table (row 0 is background)
    lut = Coloring(style, sel).lut(np.asarray([0, *IDS], dtype=np.uint64))
    np.testing.assert_array_equal(lut[1:, :3], expected)
    assert (lut[0] == 0).all()
    # the swatches of the Segments panel
    assert list(colors.colors_of(sel, style).values()) == [tuple(c) for c in expected.tolist()]
    # the link out: every colour as drawn, unless Neuroglancer computes it from the seed
    state = link_state(
        image_source=None,
        segmentation_source="precomputed://gs://bucket/seg",
        center=[1, 2, 3],
        resolution=[4, 4, 40],
        style=style,
        selection=sel,
    )
    seg = _seg_layer(state)
    given = {int(k): _hex_to_rgb(v) for k, v in seg.get("segmentColors", {}).items()}
    if style.palette == "neuroglancer":
        assert given == explicit and seg["colorSeed"] == style.color_seed
    else:
        assert given == {sid: tuple(c) for sid, c in zip(IDS, expected.tolist())}
        assert "colorSeed" not in seg
    # ...as the neuroglancer package reads it
    ref = parse_url(make_link(state)).layers["segmentation"]
    assert {int(k): v for k, v in ref.segment_colors.items()} == {
        k: to_hex(v) for k, v in given.items()
    }


def test_colour_by_id_does_not_depend_on_the_other_ids():
    style = OverlayStyle(palette="husl")
    alone = colors.segment_colors(IDS[2:3], style)
    among = colors.segment_colors(IDS, style)
    np.testing.assert_array_equal(alone[0], among[2])


@pytest.mark.parametrize("palette", ["husl", "hls", "tab10", "Set2"])
def test_colour_by_order_is_imageryclients_palette_order(palette):
    style = OverlayStyle(palette=palette, color_by="order")
    ours = colors.segment_colors(IDS, style)
    segs = {sid: None for sid in IDS}  # discrete_colors only looks at the keys' order
    theirs = ic_utils.colors_to_uint8(list(ic_composite.discrete_colors(segs, palette).values()))
    np.testing.assert_array_equal(ours, np.asarray(theirs, dtype=np.uint8))


@pytest.mark.parametrize(
    "case", ["husl by id", "neuroglancer seed 7", "explicit over neuroglancer"]
)
def test_one_colour_rule_export_figure(big_dataset, case):
    """The exporter's Figure.colors (a real cutout of a volume with 18-digit ids) are the
    colour rule's, and the view's table gives each drawn id the same colour."""
    inputs, ds = big_dataset
    style, _ = CASES[case]
    probe = make_figure(
        ds, FigureSpec.from_center(inputs.center, (64, 48), style=style.replace(outline=False))
    )
    ids = probe.ids
    assert len(ids) >= 3 and all(i > BIG_OFFSET for i in ids)
    explicit = {ids[1]: (10, 200, 30)}
    sel = Selection.of([ids[0], ids[1]], explicit)
    spec = FigureSpec.from_center(inputs.center, (64, 48), style=style, selection=sel)
    fig = make_figure(ds, spec)
    assert fig.ids == ids
    expected = colors.segment_colors(ids, style, explicit)
    np.testing.assert_array_equal(fig.colors, expected)
    lut = Coloring(style, sel).lut(np.asarray([0, *ids], dtype=np.uint64))
    np.testing.assert_array_equal(lut[1:, :3], fig.colors)
    # selected ones at the selected alpha, the others at alpha
    assert lut[1, 3] == int(style.selected_alpha * 255) and lut[3, 3] == int(style.alpha * 255)


def test_export_by_order_colours_the_drawn_segments_in_imageryclients_order(big_dataset):
    inputs, ds = big_dataset
    style = EXPORT_STYLE.replace(color_by="order")
    fig = make_figure(ds, FigureSpec.from_center(inputs.center, (64, 48), style=style))
    segs = {sid: None for sid in fig.ids}
    theirs = ic_utils.colors_to_uint8(list(ic_composite.discrete_colors(segs, "husl").values()))
    np.testing.assert_array_equal(fig.colors, np.asarray(theirs, dtype=np.uint8))


# -- links in ---------------------------------------------------------------------------------
def _link(
    segments,
    hidden=(),
    segment_colors=None,
    color_seed=None,
    selected_alpha=None,
    not_selected_alpha=None,
    center=(100, 200, 30),
    image="precomputed://gs://bucket/em",
    seg="precomputed://gs://bucket/seg",
    resolution=(8, 8, 40),
):
    state = make_state(
        center=list(center),
        resolution=list(resolution),
        image_source=image,
        segmentation_source=seg,
        segments=segments,
        segment_colors=segment_colors,
        selected_alpha=selected_alpha,
        not_selected_alpha=not_selected_alpha,
        color_seed=color_seed,
    )
    # Neuroglancer writes a hidden (unchecked) segment as "!id" in the same list
    _seg_layer(state)["segments"] += [f"!{h}" for h in hidden]
    return make_link(state, "https://ngl.example.org")


@pytest.mark.parametrize("not_selected", [None, 0.0, 0.35])
def test_style_and_selection_from_a_link(not_selected):
    link = _link(
        IDS[:2],
        hidden=IDS[2:3],
        segment_colors={IDS[1]: (255, 0, 0)},
        color_seed=1689220695,
        selected_alpha=0.8,
        not_selected_alpha=not_selected,
    )
    inputs = resolve(ngl_url=link)
    base = OverlayStyle(alpha=0.2, selected_alpha=0.6, outline=True, width=7)
    style = style_from_link(inputs, base)
    shows_others = bool(not_selected)  # Neuroglancer's notSelectedAlpha (default 0)
    assert style == dataclasses.replace(
        base,
        palette="neuroglancer",
        color_seed=1689220695,
        selected_alpha=0.8,
        show_unselected=shows_others,
        alpha=not_selected if shows_others else base.alpha,
    )
    sel = selection_from_inputs(inputs)
    assert sel.ids == tuple(IDS[:2])  # the hidden one is not selected
    assert IDS[2] not in sel and sel.explicit == {IDS[1]: (255, 0, 0)}
    lut = Coloring(style, sel).lut(np.asarray([0, *IDS[:3]], dtype=np.uint64))
    assert lut[1, 3] == lut[2, 3] == int(0.8 * 255)
    assert lut[3, 3] == (int(not_selected * 255) if shows_others else 0)  # the hidden one


def test_a_link_without_segments_or_alphas_gets_neuroglancers_defaults():
    style = style_from_link(resolve(ngl_url=_link([])), EXPORT_STYLE)
    assert style.show_unselected  # nothing selected: everything is shown
    assert style.selected_alpha == 0.5 and style.palette == "neuroglancer"
    assert style.color_seed == 0


def test_a_link_with_values_out_of_range_is_clamped():
    state = make_state(
        center=[1, 2, 3],
        resolution=[8, 8, 40],
        image_source=None,
        segmentation_source="precomputed://gs://b/seg",
        segments=IDS[:1],
        selected_alpha=3.0,
        not_selected_alpha=-1.0,
    )
    style = style_from_link(resolve(ngl_url=make_link(state)), EXPORT_STYLE)
    assert style.selected_alpha == 1.0 and not style.show_unselected


@pytest.mark.parametrize(
    "style",
    [
        OverlayStyle(palette="neuroglancer", color_seed=7, alpha=0.3, selected_alpha=0.9),
        OverlayStyle(palette="husl", alpha=0.25, selected_alpha=0.75),
        OverlayStyle(palette="neuroglancer", color_seed=99, show_unselected=False),
    ],
    ids=["ng", "husl", "selected-only"],
)
def test_link_state_round_trip(style):
    sel = Selection.of(IDS, {IDS[2]: (9, 8, 7)})
    state = link_state(
        image_source="precomputed://gs://bucket/em",
        segmentation_source="precomputed://gs://bucket/seg",
        center=[100, 200, 30],
        resolution=[4, 4, 40],
        style=style,
        selection=sel,
        contrast=(10.0, 200.0),
        nm_per_px=8.0,
    )
    link = make_link(state)
    ref = parse_url(link).layers["segmentation"]  # the neuroglancer package, independently
    assert [int(s) for s in ref.segments] == IDS  # in selection order
    assert ref.selected_alpha == pytest.approx(style.selected_alpha)
    other = style.alpha if style.show_unselected else 0.0
    assert ref.not_selected_alpha == pytest.approx(other)
    drawn = colors.colors_of(sel, style)
    if style.palette == "neuroglancer":
        assert ref.color_seed == style.color_seed
        assert {int(k): v for k, v in ref.segment_colors.items()} == {IDS[2]: "#090807"}
    else:
        assert {int(k): v for k, v in ref.segment_colors.items()} == {
            k: to_hex(v) for k, v in drawn.items()
        }
    # and back in: the same selection, and the same colours drawn
    inputs = resolve(ngl_url=link)
    back = style_from_link(inputs, style)
    assert back.selected_alpha == style.selected_alpha
    assert back.show_unselected == style.show_unselected
    if style.show_unselected:
        assert back.alpha == style.alpha
    back_sel = selection_from_inputs(inputs)
    assert back_sel.ids == sel.ids
    assert colors.colors_of(back_sel, back) == drawn


# -- imagery-gui export --ngl-url -------------------------------------------------------------
def _run_export(*args, timeout=180):
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-m", "imagery_gui", "export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize("not_selected", [0.0, 0.3])
def test_export_ngl_url_draws_the_links_segments_colours_and_alphas(
    big_dataset, synthetic_big, tmp_path, not_selected
):
    inputs, ds = big_dataset
    center = [int(v) for v in inputs.center]
    ids = make_figure(ds, FigureSpec.from_center(center, (96, 64))).ids
    shown, hidden = ids[:3], ids[3:4]
    explicit = {shown[1]: (255, 0, 0)}
    link = _link(
        shown,
        hidden=hidden,
        segment_colors=explicit,
        color_seed=7,
        selected_alpha=0.8,
        not_selected_alpha=not_selected,
        center=center,
        image=synthetic_big.image,
        seg=synthetic_big.segmentation,
        resolution=(4, 4, 40),
    )
    out = tmp_path / "link.png"
    res = _run_export("--ngl-url", link, "--size", 96, 64, "-o", out)
    assert res.returncode == 0, res.stderr
    # what the link asks for, written out by hand (not through style_from_link)
    style = dataclasses.replace(
        EXPORT_STYLE,
        palette="neuroglancer",
        color_seed=7,
        selected_alpha=0.8,
        alpha=not_selected or EXPORT_STYLE.alpha,
        show_unselected=not_selected > 0,
    )
    spec = FigureSpec.from_center(
        center, (96, 64), resolution=(4.0, 4.0, 40.0), style=style,
        selection=Selection.of(shown, explicit),
    )  # fmt: skip
    fig = make_figure(ds, spec)
    png = np.asarray(Image.open(out).convert("RGBA"))
    np.testing.assert_array_equal(png, np.asarray(fig.slices[0].convert("RGBA")))
    # the hidden one is drawn only when unselected ones are
    lab = fig.labels[0]
    if not not_selected:
        em_only = np.asarray(
            make_figure(ds, dataclasses.replace(spec, selection=Selection.of([ids[-1]])))
            .slices[0].convert("RGBA")
        )  # fmt: skip
        np.testing.assert_array_equal(png[lab == hidden[0]], em_only[lab == hidden[0]])
    prov = json.loads((tmp_path / "link.json").read_text())
    ref = parse_url(prov["neuroglancer_link"]).layers["segmentation"]
    assert ref.not_selected_alpha == pytest.approx(not_selected)
    assert ref.selected_alpha == pytest.approx(0.8) and ref.color_seed == 7
    assert {int(k): v for k, v in ref.segment_colors.items()} == {shown[1]: "#ff0000"}
    assert [int(s) for s in ref.segments] == shown
    assert prov["style"] == style.to_dict()


# -- ViewerState, no window -------------------------------------------------------------------
@pytest.fixture
def viewer(big_dataset):
    inputs, ds = big_dataset
    st = ViewerState()
    seen: list[tuple[str, object]] = []
    for name in ("opened", "selection", "style", "z", "camera", "segmentation", "warning"):
        getattr(st.events, name).connect(lambda *a, n=name: seen.append((n, a[0] if a else None)))
    st.open(inputs, ds)
    return st, seen


def test_viewer_state_open(viewer, big_dataset):
    st, seen = viewer
    inputs, _ds = big_dataset
    assert seen == [("opened", st)]
    assert st.z == inputs.center[2] and st.z_range == (100, 111)
    assert st.camera.center_nm == (inputs.center[0] * 4.0, inputs.center[1] * 4.0)
    assert st.camera.nm_per_px == 4.0 and st.contrast == (0.0, 255.0)
    assert st.selection == Selection() and st.style == OverlayStyle()


def test_viewer_state_selection_events(viewer):
    st, seen = viewer
    seen.clear()
    a, b, c, d = IDS
    st.select([a, b, a, 0])  # duplicates and 0 are not selections
    assert st.selection.ids == (a, b)
    st.toggle(c)
    st.toggle(a)
    st.toggle(0)  # background: nothing happens
    assert st.selection.ids == (b, c)
    st.set_color(c, (1, 2, 3))
    st.set_color(d, (4, 5, 6))  # not selected: nothing happens
    assert st.selection.explicit == {c: (1, 2, 3)}
    assert st.segment_colors()[c] == (1, 2, 3)
    st.replace_ids({c: [d, a]})  # an edited root: its successors keep its colour
    assert st.selection.ids == (b, d, a)
    assert st.selection.explicit == {d: (1, 2, 3), a: (1, 2, 3)}
    st.deselect([b, 12345])
    assert st.selection.ids == (d, a)
    st.set_color(d, None)
    assert st.selection.explicit == {a: (1, 2, 3)}
    st.select([d])  # already selected: no event
    st.clear_selection()
    st.clear_selection()  # already empty: no event
    assert st.selection == Selection()
    events = [n for n, _ in seen]
    assert events == ["selection"] * 8
    assert [v.ids for _, v in seen] == [
        (a, b), (a, b, c), (b, c), (b, c), (b, d, a), (d, a), (d, a), (),
    ]  # fmt: skip


def test_viewer_state_style_strict_and_lenient(viewer):
    st, seen = viewer
    seen.clear()
    st.set_style(alpha=0.5, outline=True)
    with pytest.raises(StyleError, match="outline width"):
        st.set_style(alpha=0.9, width=0)
    assert st.style.alpha == 0.5 and st.style.width == 3  # nothing half-applied
    warnings = st.restore_style({"alpha": 7, "palette": "notapalette"})
    assert st.style.alpha == 1.0 and st.style.palette == "husl"
    assert len(warnings) == 2
    assert [n for n, _ in seen] == ["style", "warning", "warning", "style"]
    st.set_style(alpha=1.0)  # no change: no event
    assert len(seen) == 4


def test_viewer_state_z_clamps(viewer):
    st, seen = viewer
    seen.clear()
    lo, hi = st.z_range
    assert st.set_z(10_000) == hi and st.z == hi
    assert st.set_z(-5) == lo
    assert st.step_z(3) == lo + 3
    assert st.set_z(lo + 3) == lo + 3  # no change: no event
    assert seen == [("z", hi), ("z", lo), ("z", lo + 3)]
    st.set_contrast(300, -20)
    assert st.contrast == (0.0, 255.0)
    st.set_supervoxels(True)
    assert st.supervoxels and seen[-1] == ("segmentation", True)


def test_viewer_state_figure_spec_of_a_camera(viewer, big_dataset):
    st, _ = viewer
    _inputs, ds = big_dataset
    cx, cy = st.camera.center_nm
    # 200 x 100 screen pixels at 4 nm per pixel (mip 0) around the centre
    st.set_camera(Camera((cx, cy), 4.0, (cx - 400, cy - 200, cx + 400, cy + 200)))
    st.set_z(104)
    st.select(IDS[:1])
    spec = st.figure_spec()
    assert spec.bounds == ((cx / 4 - 100, cy / 4 - 50, 104.0), (cx / 4 + 100, cy / 4 + 50, 105.0))
    assert spec.resolution == (4.0, 4.0, 40.0)
    assert (spec.image_mip, spec.segmentation_mip) == (0, 0)
    assert spec.style is st.style and spec.selection is st.selection
    # zoomed out: the mips the view would show, and the box clipped to the volume
    st.set_camera(Camera((cx, cy), 16.0, (0.0, 0.0, 1e9, 1e9)))
    spec = st.figure_spec(depth=3)
    assert (spec.image_mip, spec.segmentation_mip) == choose_mips(ds, 16.0) == (2, 1)
    vb = ds.volume_bounds(ds.resolution)
    assert spec.bounds == (
        (float(vb[0][0]), float(vb[0][1]), 104.0),
        (float(vb[1][0]), float(vb[1][1]), 107.0),
    )
    fig = make_figure(ds, spec)
    assert len(fig.slices) == 3 and fig.image_mip == 2


def test_viewer_state_neuroglancer_link(viewer, big_dataset):
    st, _ = viewer
    inputs, _ds = big_dataset
    st.set_style(palette="neuroglancer", color_seed=42, alpha=0.3, selected_alpha=0.7)
    st.select(IDS[:2])
    st.set_color(IDS[1], (0, 255, 0))
    st.set_z(103)
    link = st.neuroglancer_link()
    ref = parse_url(link)
    assert [float(v) for v in ref.position] == [
        inputs.center[0] + 0.5,
        inputs.center[1] + 0.5,
        103.5,
    ]
    seg = ref.layers["segmentation"]
    assert [int(s) for s in seg.segments] == IDS[:2]
    assert seg.color_seed == 42 and seg.selected_alpha == pytest.approx(0.7)
    assert seg.not_selected_alpha == pytest.approx(0.3)
    assert {int(k): v for k, v in seg.segment_colors.items()} == {IDS[1]: "#00ff00"}
    assert ref.layers["image"].type == "image"
    prov = st.provenance_extra()
    assert prov["neuroglancer_link"] == link and "datastack" not in prov
