"""Going places without Qt: points typed or pasted, the volume's centre, local-data links,
the id entry's notice and the export dialog's default name."""

from __future__ import annotations

import numpy as np
import pytest

from imagery_gui.model import navigate
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.io import unused_path
from imagery_gui.model.segments import entry_notice, parse_ids


@pytest.mark.parametrize(
    "text",
    ["1024, 2048, 40", "[1024 2048 40]", "1024 2048 40", "(1024, 2048, 40)", "1024\t2048\t40\n"],
)
def test_points_as_users_type_and_paste_them(text):
    assert navigate.parse_point(text) == (1024.0, 2048.0, 40.0)


def test_fractional_and_signed_points():
    assert navigate.parse_point("[1.5, -2, 3e2]") == (1.5, -2.0, 300.0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "three numbers"),
        ("1 2", "got 2"),
        ("1 2 3 4", "got 4"),
        ("1 abc 3", "'abc' is not a number"),
        ("x=1 y=2 z=3", "'x=1' is not a number"),
    ],
)
def test_bad_points_say_what_is_wrong(text, says):
    with pytest.raises(navigate.PointError, match=says) as exc:
        navigate.parse_point(text)
    assert isinstance(exc.value, ValueError) and "\n" not in str(exc.value)


def test_voxels_and_nm():
    res = (4.0, 4.0, 40.0)
    np.testing.assert_array_equal(
        navigate.point_nm((10, 20, 3), navigate.VOXELS, res), [42.0, 82.0, 140.0]
    )
    np.testing.assert_array_equal(navigate.point_nm((10, 20, 3), navigate.NM, res), [10, 20, 3])
    t = navigate.target_of(navigate.point_nm((10, 20, 3), navigate.VOXELS, res), res)
    assert (t.x_nm, t.y_nm, t.z) == (42.0, 82.0, 3)
    with pytest.raises(navigate.PointError):
        navigate.point_nm((1, 2, 3), "furlongs", res)


def test_volume_centre_and_outside(demo):
    ds = Dataset(demo.image_source, demo.segmentation_source).open()
    res = ds.resolution
    c = navigate.volume_center_nm(ds, res)
    vb = ds.volume_bounds(res) * np.asarray(res)
    np.testing.assert_allclose(c, (vb[0] + vb[1]) / 2)
    assert navigate.outside_description(c, ds, res) is None
    note = navigate.outside_description((0, 0, 0), ds, res)
    assert note is not None and "outside the volume" in note and "204800" in note


def test_local_link_warning():
    assert navigate.local_link_warning(["precomputed://https://host/em", None]) is None
    assert navigate.local_link_warning(["graphene://https://host/seg"]) is None
    w = navigate.local_link_warning(
        ["precomputed://file:///data/em", "precomputed://file:///data/seg"]
    )
    assert w is not None
    assert "file:///data/em" in w and "1 more" in w and "browser cannot open" in w
    assert "http" in w
    assert navigate.local_link_warning(["/data/em"]) is not None


def test_docs_url_is_the_readme_of_this_checkout():
    url = navigate.docs_url()
    assert url.endswith("README.md") or url == navigate.DOCS_URL


def test_entry_notice_names_each_rejected_token_and_ids_not_in_view():
    parsed = parse_ids("abc 864691135105009228 -5 0 12")
    assert parsed.ids == (864691135105009228, 12)
    text = entry_notice(parsed, present=[12, 99])
    assert "'abc' (not a number)" in text and "'-5' (negative" in text and "'0'" in text
    assert "not in this view (added anyway): 864691135105009228" in text
    assert entry_notice(parse_ids("12"), present=[12]) == ""
    assert entry_notice(parse_ids("12"), present=None) == ""


def test_unused_path_never_names_an_earlier_export(tmp_path):
    assert unused_path(tmp_path) == str(tmp_path / "figure.png")
    (tmp_path / "figure.png").write_bytes(b"")
    assert unused_path(tmp_path) == str(tmp_path / "figure-2.png")
    (tmp_path / "figure-2.json").write_text("{}")  # a z-series leaves its JSON
    assert unused_path(tmp_path) == str(tmp_path / "figure-3.png")
