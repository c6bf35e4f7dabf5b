"""Neuroglancer links in and out, checked against the neuroglancer package itself."""

from __future__ import annotations

import json
from urllib.parse import quote

import neuroglancer
import numpy as np
import pytest
from neuroglancer import segment_colors as ngsc
from neuroglancer.url_state import json_to_url_safe, parse_url

from imagery_gui.model.errors import IdWarning, ImageryGuiError, UnsupportedSourceError
from imagery_gui.model.inputs import resolve
from imagery_gui.model.ngl import NglLinkError, make_link, make_state, ng_colors, parse_link

# The MICrONS link from ImageryClient's README (../shared/seeds/002_*).
MICRONS = "https://ngl.microns-explorer.org/#!%7B%22dimensions%22:%7B%22x%22:%5B4e-9%2C%22m%22%5D%2C%22y%22:%5B4e-9%2C%22m%22%5D%2C%22z%22:%5B4e-8%2C%22m%22%5D%7D%2C%22position%22:%5B240640.5%2C207872.5%2C21360.5%5D%2C%22crossSectionScale%22:0.9700751861624107%2C%22projectionOrientation%22:%5B0.021348824724555016%2C-0.17453671991825104%2C-0.007549765054136515%2C-0.9843902587890625%5D%2C%22projectionScale%22:489587.6696286937%2C%22layers%22:%5B%7B%22type%22:%22image%22%2C%22source%22:%7B%22url%22:%22precomputed://https://bossdb-open-data.s3.amazonaws.com/iarpa_microns/minnie/minnie65/em%22%2C%22subsources%22:%7B%22default%22:true%7D%2C%22enableDefaultSubsources%22:false%7D%2C%22tab%22:%22source%22%2C%22shaderControls%22:%7B%22normalized%22:%7B%22range%22:%5B86%2C172%5D%7D%7D%2C%22name%22:%22img65%22%7D%2C%7B%22type%22:%22image%22%2C%22source%22:%7B%22url%22:%22precomputed://https://bossdb-open-data.s3.amazonaws.com/iarpa_microns/minnie/minnie35/em%22%2C%22subsources%22:%7B%22default%22:true%7D%2C%22enableDefaultSubsources%22:false%7D%2C%22tab%22:%22source%22%2C%22shaderControls%22:%7B%22normalized%22:%7B%22range%22:%5B112%2C172%5D%7D%7D%2C%22name%22:%22img35%22%7D%2C%7B%22type%22:%22segmentation%22%2C%22source%22:%22precomputed://gs://iarpa_microns/minnie/minnie65/seg%22%2C%22tab%22:%22segments%22%2C%22annotationColor%22:%22#8f8f8a%22%2C%22selectedAlpha%22:0.41%2C%22notSelectedAlpha%22:0.06%2C%22colorSeed%22:1689220695%2C%22name%22:%22seg65%22%7D%2C%7B%22type%22:%22segmentation%22%2C%22source%22:%22precomputed://gs://iarpa_microns/minnie/minnie35/seg%22%2C%22tab%22:%22segments%22%2C%22annotationColor%22:%22#8a8a8a%22%2C%22segments%22:%5B%22864691137827278437%22%2C%22864691138020403235%22%2C%22864691138081021535%22%2C%22864691138134948293%22%2C%22864691138142870469%22%2C%22864691138153699060%22%2C%22864691138178964470%22%2C%22864691138345166401%22%5D%2C%22name%22:%22seg35%22%7D%5D%2C%22showSlices%22:false%2C%22selectedLayer%22:%7B%22visible%22:true%2C%22layer%22:%22seg65%22%7D%2C%22layout%22:%7B%22type%22:%22xy%22%2C%22orthographicProjection%22:true%7D%7D"
EIGHT = [
    864691137827278437,
    864691138020403235,
    864691138081021535,
    864691138134948293,
    864691138142870469,
    864691138153699060,
    864691138178964470,
    864691138345166401,
]


def test_microns_link():
    v = parse_link(MICRONS)
    assert list(v.center) == [240640, 207872, 21360]
    assert list(v.resolution) == [4, 4, 40]
    assert (
        v.image_source
        == "precomputed://https://bossdb-open-data.s3.amazonaws.com/iarpa_microns/minnie/minnie65/em"
    )
    assert v.segmentation_source == "precomputed://gs://iarpa_microns/minnie/minnie35/seg"
    assert list(v.segments) == EIGHT
    assert v.contrast == (86.0, 172.0)
    assert v.image_layer == "img65" and v.segmentation_layer == "seg35"
    assert [lay.name for lay in v.layers] == ["img65", "img35", "seg65", "seg35"]
    # The neuroglancer package reads the same position and segments.
    ref = parse_url(MICRONS)
    np.testing.assert_allclose(np.floor(ref.position), v.center)
    assert sorted(int(s) for s in ref.layers["seg35"].segments) == sorted(EIGHT)


def _state(**seg) -> dict:
    layer = {"type": "segmentation", "source": "precomputed://gs://bucket/seg", "name": "seg"}
    layer.update(seg)
    return {
        "dimensions": {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [3.3e-8, "m"]},
        "position": [100.5, 200.7, 30.0],
        "layers": [
            {"type": "image", "source": [{"url": "precomputed://https://h/em"}], "name": "em"},
            layer,
        ],
    }


def test_forms_of_the_same_state():
    state = _state(
        segments=["864691135000000001", "!864691135000000002"],
        segmentColors={"864691135000000001": "#ff8800"},
        colorSeed=42,
        selectedAlpha=0.7,
    )
    text = json.dumps(state)
    forms = [
        "https://neuroglancer-demo.appspot.com/#!" + quote(text),
        "https://neuroglancer-demo.appspot.com/#!" + text,
        "https://neuroglancer-demo.appspot.com/#!" + json_to_url_safe(text),  # legacy url-safe
        text,  # a bare state
    ]
    for link in forms:
        v = parse_link(link)
        assert list(v.center) == [100, 200, 30] and list(v.resolution) == [8, 8, 33]
        assert v.image_source == "precomputed://https://h/em"  # list-of-objects source form
        assert v.segments == (864691135000000001,) and v.hidden_segments == (864691135000000002,)
        assert v.segment_colors == {864691135000000001: (255, 136, 0)}
        assert v.color_seed == 42 and v.selected_alpha == 0.7


def test_legacy_dict_layers_and_first_segmentation_without_segments():
    state = {
        "dimensions": {"x": [4e-9, "m"], "y": [4e-9, "m"], "z": [4e-8, "m"]},
        "position": [1, 2, 3],
        "layers": {
            "a": {"type": "segmentation", "source": "precomputed://https://h/a"},
            "b": {"type": "segmentation", "source": "precomputed://https://h/b"},
        },
    }
    v = parse_link(json.dumps(state))
    assert v.segmentation_source == "precomputed://https://h/a" and v.image_source is None


@pytest.mark.parametrize(
    "text,err,match",
    [
        ("hello there", NglLinkError, "not a Neuroglancer"),
        ("https://neuroglancer-demo.appspot.com/", NglLinkError, "no '#!' state"),
        ("https://x/#!{not json", NglLinkError, "not a Neuroglancer link or state"),
        (
            json.dumps(
                {
                    "layers": [
                        {"type": "image", "source": "precomputed://https://h/em", "name": "em"}
                    ]
                }
            ),
            NglLinkError,
            "no segmentation layer",
        ),
        (
            json.dumps(_state(source="zarr://https://h/seg")),
            UnsupportedSourceError,
            "not supported",
        ),
    ],
)
def test_bad_links(text, err, match):
    with pytest.raises(err, match=match):
        parse_link(text)


def test_state_server_links_through_caveclient(cave, token_file):
    state = _state(segments=["864691135000000001"])
    state["layers"][1]["source"] = cave.graphene_source
    cave.states[5678] = state
    for link in (
        f"https://neuroglancer.example.org/?json_url={cave.url}/nglstate/api/v1/5678",
        f"https://neuroglancer.example.org/#!middleauth+{cave.url}/nglstate/api/v1/5678",
    ):
        inputs = resolve(ngl_url=link, auth_token_file=str(token_file))
        assert inputs.segmentation_source == cave.graphene_source
        assert inputs.root_ids == [864691135000000001] and inputs.center == [100, 200, 30]
    assert any(r[1] == "/nglstate/api/v1/5678" for r in cave.requests)


def test_link_out_round_trip_and_no_token():
    token = "0123456789abcdef"
    state = make_state(
        center=[240640, 207872, 21360],
        resolution=[4, 4, 40],
        image_source="precomputed://https://h/em?middle_auth_token=" + token,
        segmentation_source="graphene://https://h/segmentation/table/t",
        segments=EIGHT[:2],
        segment_colors={EIGHT[0]: (255, 0, 0)},
        selected_alpha=0.5,
        color_seed=1689220695,
        contrast=(86, 172),
        nm_per_px=8.0,
    )
    link = make_link(state, "https://ngl.example.org")
    assert token not in link
    ref = parse_url(link)  # the neuroglancer package reads our link
    assert list(ref.position) == [240640.5, 207872.5, 21360.5]
    assert ref.layers["segmentation"].type == "segmentation"
    assert sorted(int(s) for s in ref.layers["segmentation"].segments) == sorted(EIGHT[:2])
    assert ref.cross_section_scale == pytest.approx(2.0)
    back = parse_link(link)
    assert list(back.center) == [240640, 207872, 21360] and list(back.resolution) == [4, 4, 40]
    assert back.segments == tuple(EIGHT[:2]) and back.segment_colors == {EIGHT[0]: (255, 0, 0)}
    assert back.color_seed == 1689220695 and back.contrast == (86.0, 172.0)
    assert isinstance(
        neuroglancer.ViewerState(json.loads(json.dumps(state))), neuroglancer.ViewerState
    )


def test_neuroglancer_colours():
    """Same colours as Neuroglancer. The neuroglancer package's Python port computes the
    hash and HSV like Neuroglancer but rounds in float64 with Python's round(); the browser
    stores the channels in a Float32Array and uses Math.round. So: equal to the package
    wherever it is not a tie, and at ties equal to the browser's rule applied to the
    package's own float channels."""
    rng = np.random.default_rng(0)
    ids = rng.integers(864691135000000000, 864691139999999999, 2000, dtype=np.int64).astype(
        np.uint64
    )
    for seed in (0, 1689220695, 7, 2**32 - 1):
        ours = ng_colors(ids, seed)
        differing = 0
        for i, c in zip(ids, ours):
            ref = ngsc.hex_string_from_segment_id(seed, int(i))
            ref_rgb = tuple(int(ref[k : k + 2], 16) for k in (1, 3, 5))
            if tuple(int(v) for v in c) == ref_rgb:
                continue
            differing += 1
            h = ngsc.hash_function(ngsc.hash_function(seed, int(i)), int(i) >> 32)
            rgb = ngsc.hsv_to_rgb((h & 0xFF) / 255, 0.5 + 0.5 * ((h >> 8) & 0xFF) / 255, 1.0)
            browser = [int(np.floor(float(np.float32(x)) * 255 + 0.5)) for x in rgb]
            assert tuple(int(v) for v in c) == tuple(browser)
            for x, mine, theirs in zip(rgb, c, ref_rgb):
                if int(mine) != theirs:
                    assert abs(x * 255 % 1 - 0.5) < 1e-6  # only ties can differ
        assert differing < len(ids) // 2


def test_state_urls_with_any_scheme_are_recognised():
    """Neuroglancer's rule: ``#!`` then ``scheme://`` is the URL of a stored state."""
    seen = []

    def fetch(url):
        seen.append(url)
        return _state(segments=["864691135000000001"])

    for url in (
        "gs://bucket/states/s.json",
        "s3://bucket/s.json",
        "file:///tmp/s.json",
        "https://h/s.json",
        "middleauth+https://h/nglstate/api/v1/1",
        "python://h/state",
    ):
        v = parse_link("https://neuroglancer-demo.appspot.com/#!" + url, fetch_state=fetch)
        assert v.segments == (864691135000000001,)
        assert seen[-1] == url
    # ...but a JSON state is still a state, and no fetch is made without a URL.
    parse_link("https://x/#!" + quote(json.dumps(_state())), fetch_state=fetch)
    assert len(seen) == 6


def test_file_state_url_followed(tmp_path):
    state = _state(segments=["864691135000000001"], colorSeed=7)
    path = tmp_path / "my state.json"
    path.write_text(json.dumps(state))
    link = "https://neuroglancer-demo.appspot.com/#!file://" + quote(str(path))
    inputs = resolve(ngl_url=link)
    assert inputs.root_ids == [864691135000000001] and inputs.center == [100, 200, 30]
    assert inputs.color_seed == 7
    with pytest.raises(FileNotFoundError, match="no Neuroglancer state at"):
        resolve(ngl_url="https://x/#!file://" + str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(ImageryGuiError, match="not a Neuroglancer state"):
        resolve(ngl_url="https://x/#!file://" + str(tmp_path / "bad.json"))


def test_http_state_url_followed(tmp_path):
    from tests.helpers.http_server import LoopbackServer

    (tmp_path / "s.json").write_text(json.dumps(_state(segments=["864691135000000002"])))
    with LoopbackServer(tmp_path) as srv:
        inputs = resolve(ngl_url=f"https://neuroglancer-demo.appspot.com/#!{srv.url}/s.json")
        # And through the query form Neuroglancer also accepts.
        again = resolve(ngl_url=f"https://neuroglancer-demo.appspot.com/?json_url={srv.url}/s.json")
    assert inputs.root_ids == [864691135000000002] == again.root_ids
    assert "/s.json" in srv.log


def test_unknown_state_url_scheme_is_a_clear_error():
    with pytest.raises(UnsupportedSourceError, match=r"not ftp://") as err:
        resolve(ngl_url="https://neuroglancer-demo.appspot.com/#!ftp://host/state.json")
    msg = str(err.value)
    assert "ftp://host/state.json" in msg
    assert all(s in msg for s in ("gs://", "s3://", "file://", "https://"))


def test_link_segments_that_are_not_ids_are_named_not_fatal():
    state = _state(segments=["12ab", "864691135000000001", "0", "-3", "!864691135000000002"])
    v = parse_link(json.dumps(state))
    assert v.segments == (864691135000000001,) and v.hidden_segments == (864691135000000002,)
    assert v.rejected_segments == (
        ("12ab", "not a number"),
        ("0", "0 means no segment"),
        ("-3", "negative: ids are positive whole numbers"),
    )
    with pytest.warns(IdWarning, match=r"ignored 3 entries of the Neuroglancer link's segments"):
        inputs = resolve(ngl_url=json.dumps(state))
    assert inputs.root_ids == [864691135000000001] and len(inputs.rejected_ids) == 3
