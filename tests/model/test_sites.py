"""Site tables: readers on real-shaped data, the model's queries, Neuroglancer annotation
layers both ways, CAVE synapse queries through the real caveclient against the local
server, and the demo volume's synapse table."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from imagery_gui.model.sites import (
    KIND_BOX,
    KIND_ELLIPSOID,
    KIND_LINE,
    KIND_POINT,
    ROLE_INPUT,
    ROLE_OUTPUT,
    SiteIndex,
    SiteTableError,
    parse_position_strings,
    read_sites,
    sites_provenance,
)
from imagery_gui.model.sites_ngl import add_annotation_layer, annotation_layer, annotation_layers

ROOT_A = 864691135012345678
ROOT_B = 864691136999999999  # > 2**53: exactness matters


def cave_frame(n: int = 40, seed: int = 3) -> pd.DataFrame:
    """A frame shaped like caveclient's synapse_query(split_positions=False)."""
    rng = np.random.default_rng(seed)
    ctr = rng.integers([100000, 80000, 15000], [140000, 120000, 25000], size=(n, 3))
    step = rng.integers(-30, 30, size=(n, 3))
    step[:, 2] = rng.integers(-1, 2, n)
    df = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64) + 150_000_000,
            "created": pd.Timestamp("2021-07-01", tz="UTC"),
            "superceded_id": np.nan,
            "valid": True,
            "pre_pt_supervoxel_id": rng.integers(2**55, 2**62, n),
            "pre_pt_root_id": np.where(np.arange(n) % 2 == 0, ROOT_A, ROOT_B).astype(np.int64),
            "post_pt_supervoxel_id": rng.integers(2**55, 2**62, n),
            "post_pt_root_id": np.int64(ROOT_A + 7),
            "size": rng.integers(50, 5000, n),
            "pre_pt_position": list(ctr - step),
            "post_pt_position": list(ctr + step),
            "ctr_pt_position": list(ctr),
        }
    )
    df.attrs["dataframe_resolution"] = [4.0, 4.0, 40.0]
    return df


def assert_matches(table, df):
    np.testing.assert_array_equal(table.centers, np.stack(df["ctr_pt_position"].to_numpy()))
    np.testing.assert_array_equal(table.pre, np.stack(df["pre_pt_position"].to_numpy()))
    np.testing.assert_array_equal(table.post, np.stack(df["post_pt_position"].to_numpy()))
    assert table.pre_root.tolist() == [int(v) for v in df["pre_pt_root_id"]]
    assert table.post_sv.tolist() == [int(v) for v in df["post_pt_supervoxel_id"]]
    assert table.ids.tolist() == df["id"].tolist()
    assert (table.kind_codes == KIND_LINE).all()


# -- readers --------------------------------------------------------------------------------
def test_cave_frame_saved_with_to_csv(tmp_path):
    df = cave_frame()
    path = tmp_path / "syn.csv"
    df.to_csv(path)  # as people save it: with the index, positions as "[x y  z]" strings
    text = path.read_text()
    assert "[1" in text and "  " in text.split("\n")[1]  # numpy's padded array strings
    table = read_sites(path, default_resolution=(4, 4, 40))
    assert len(table) == len(df) and not table.skipped
    assert_matches(table, df)
    assert table.site(1).pre_root == ROOT_B  # 18 digits, exact
    assert table.resolution == (4, 4, 40) and "viewer" in table.resolution_from
    assert set(table.props.columns) == {"created", "superceded_id", "valid", "size"}
    assert table.site(0).props["size"] == int(df["size"][0])
    assert table.source.kind == "file" and table.source.path == str(path)


def test_position_strings_as_people_have_them():
    pts, bad = parse_position_strings(
        [
            "[5375 3437  156]",
            "[5375, 3437, 156]",
            "[ 1253376   987136\n   21040]",  # numpy wraps long arrays
            "(1.5, 2, 3e2)",
            [1, 2, 3],
            np.array([4, 5, 6]),
            "[1 2]",
            "",
            float("nan"),
            "[1 2 x]",
        ]
    )
    np.testing.assert_array_equal(pts[0], [5375, 3437, 156])
    np.testing.assert_array_equal(pts[1], [5375, 3437, 156])
    np.testing.assert_array_equal(pts[2], [1253376, 987136, 21040])
    np.testing.assert_array_equal(pts[3], [1.5, 2, 300])
    np.testing.assert_array_equal(pts[4:6], [[1, 2, 3], [4, 5, 6]])
    assert bad == [6, 7, 8, 9]


def test_split_position_columns(tmp_path):
    df = cave_frame()
    split = df.drop(columns=["pre_pt_position", "post_pt_position", "ctr_pt_position"])
    for name in ("pre_pt_position", "post_pt_position", "ctr_pt_position"):
        arr = np.stack(df[name].to_numpy())
        for k, a in enumerate("xyz"):
            split[f"{name}_{a}"] = arr[:, k]
    table = read_sites(split)  # a DataFrame straight from caveclient, attrs included
    assert_matches(table, df)
    assert table.resolution == (4, 4, 40)
    assert table.resolution_from == "the table's metadata (dataframe_resolution)"
    split.to_csv(tmp_path / "split.csv", index=False)
    again = read_sites(tmp_path / "split.csv", default_resolution=(8, 8, 40))
    assert_matches(again, df)
    assert again.resolution == (8, 8, 40)  # a CSV keeps no attrs: the viewer's


def test_parquet_keeps_caveclients_resolution(tmp_path):
    df = cave_frame()
    df.attrs["dataframe_resolution"] = [8, 8, 40]
    df.to_parquet(tmp_path / "syn.parquet")
    table = read_sites(tmp_path / "syn.parquet", default_resolution=(4, 4, 40))
    assert_matches(table, df)
    assert table.resolution == (8, 8, 40) and "dataframe_resolution" in table.resolution_from
    # The explicit resolution wins over the metadata.
    given = read_sites(tmp_path / "syn.parquet", resolution=(1, 1, 1))
    assert given.resolution == (1, 1, 1) and "given" in given.resolution_from


def test_feather_with_schema_metadata(tmp_path):
    df = cave_frame().drop(columns=["created", "superceded_id"])
    tbl = pa.Table.from_pandas(df, preserve_index=False)
    tbl = tbl.replace_schema_metadata({**tbl.schema.metadata, b"voxel_resolution": b"4,4,40"})
    feather.write_feather(tbl, tmp_path / "syn.feather")
    table = read_sites(tmp_path / "syn.feather", default_resolution=(8, 8, 40))
    assert_matches(table, df)
    assert table.resolution == (4, 4, 40) and "voxel_resolution" in table.resolution_from
    # A plain to_feather (no resolution kept): the viewer's.
    df.to_feather(tmp_path / "plain.feather")
    plain = read_sites(tmp_path / "plain.feather", default_resolution=(8, 8, 40))
    assert plain.resolution == (8, 8, 40) and "viewer" in plain.resolution_from


def test_plain_xyz_columns(tmp_path):
    (tmp_path / "pts.csv").write_text("x,y,z,note\n10,20,3,a\n11.5,21,4,b\n")
    table = read_sites(tmp_path / "pts.csv", default_resolution=(4, 4, 40))
    np.testing.assert_array_equal(table.centers, [[10, 20, 3], [11.5, 21, 4]])
    assert (table.kind_codes == KIND_POINT).all() and not table.has_pre_post.any()
    assert table.ids.tolist() == [0, 1] and table.props["note"].tolist() == ["a", "b"]


def test_midpoint_when_the_schema_has_no_centre(tmp_path):
    df = cave_frame().drop(columns=["ctr_pt_position"])  # e.g. BuhmannSynapseSchema
    df.to_csv(tmp_path / "noctr.csv", index=False)
    table = read_sites(tmp_path / "noctr.csv", resolution=(4, 4, 40))
    mid = (np.stack(df["pre_pt_position"].to_numpy()) + np.stack(df["post_pt_position"])) / 2
    np.testing.assert_array_equal(table.centers, mid)


def test_flywire_and_neuprint_synapse_columns(tmp_path):
    """FlyWire's and fafbseg's synapse tables (``pre_x``... in nm, ``pre``/``post`` root
    ids, neurotransmitter scores) and neuPrint's (``x_pre``..., ``bodyId_pre``): their pre
    and post points and ids, the centre at the midpoint, the scores kept as properties."""
    pre = np.array([[820848, 655400, 840000], [400000, 300000, 80000]])
    post = pre + [16, -8, 0]
    roots = ["720575940621039145", "720575940613583001"]
    flywire = pd.DataFrame(
        {"pre_x": pre[:, 0], "pre_y": pre[:, 1], "pre_z": pre[:, 2],
         "post_x": post[:, 0], "post_y": post[:, 1], "post_z": post[:, 2],
         "pre": [int(r) for r in roots], "post": [int(roots[1]), int(roots[0])],
         "cleft_score": [140, 61], "gaba": [0.1, 0.7], "ach": [0.8, 0.2]}
    )  # fmt: skip
    flywire.to_parquet(tmp_path / "fw.parquet")
    table = read_sites(tmp_path / "fw.parquet", resolution=(1, 1, 1))
    np.testing.assert_array_equal(table.pre, pre)
    np.testing.assert_array_equal(table.post, post)
    np.testing.assert_array_equal(table.centers, (pre + post) / 2)
    assert [str(v) for v in table.pre_root] == roots  # exact 64-bit ids
    assert [str(v) for v in table.post_root] == roots[::-1]
    assert (table.kind_codes == KIND_LINE).all()
    assert list(table.props.columns) == ["cleft_score", "gaba", "ach"]
    neuprint = pd.DataFrame(
        {"bodyId_pre": [1234567, 7654321], "bodyId_post": [42, 43],
         "x_pre": pre[:, 0] // 8, "y_pre": pre[:, 1] // 8, "z_pre": pre[:, 2] // 8,
         "x_post": post[:, 0] // 8, "y_post": post[:, 1] // 8, "z_post": post[:, 2] // 8,
         "roi_pre": ["ME(R)", "LO(R)"], "confidence_pre": [0.9, 0.95]}
    )  # fmt: skip
    table = read_sites(neuprint, resolution=(8, 8, 8))
    np.testing.assert_array_equal(table.pre, pre // 8)
    assert table.pre_root.tolist() == [1234567, 7654321] and table.post_root.tolist() == [42, 43]
    assert list(table.props.columns) == ["roi_pre", "confidence_pre"]
    # A column named like an id but holding something else stays a property.
    odd = flywire.assign(pre=["yes", "no"])
    table = read_sites(odd, resolution=(1, 1, 1))
    assert not table.pre_root.any() and table.props["pre"].tolist() == ["yes", "no"]


def test_whole_number_ids_written_as_floats(tmp_path):
    """An id column that pandas made float (it once held a NaN) reads as the integers."""
    (tmp_path / "f.csv").write_text("id,x,y,z\n100000001.0,1,2,3\n864691135611984218.00,4,5,6\n")
    table = read_sites(tmp_path / "f.csv", resolution=(4, 4, 40))
    assert [str(v) for v in table.ids] == ["100000001", "864691135611984218"]
    frame = pd.DataFrame({"id": [3.0, 4.0], "x": [1, 2], "y": [1, 2], "z": [1, 2]})
    assert read_sites(frame, resolution=(4, 4, 40)).ids.tolist() == [3, 4]
    fractions = pd.DataFrame({"id": [3.5, 4.0], "x": [1, 2], "y": [1, 2], "z": [1, 2]})
    assert read_sites(fractions, resolution=(4, 4, 40)).ids.tolist() == ["3.5", "4.0"]


def test_a_cell_table_draws_its_cell(demo, tmp_path):
    """CAVE's cell and nucleus tables (one point on one cell: ``pt_position``,
    ``pt_root_id``): the cell is the site's root, as for a Neuroglancer point on one
    segment (its pre root), and a batch figure draws it."""
    df = pd.DataFrame(
        {"id": [5, 6], "valid": [True, True], "volume": [301.2, 250.0],
         "pt_supervoxel_id": ["88459937892655367", "88459937892655368"],
         "pt_root_id": ["864691135611984218", "0"],
         "pt_position": ["[205212 163848  21000]", "[205332 164194  21000]"]}
    )  # fmt: skip
    df.to_csv(tmp_path / "nuclei.csv", index=False)
    table = read_sites(tmp_path / "nuclei.csv", resolution=(4, 4, 40))
    assert table.pre_root.tolist() == [864691135611984218, 0]
    assert table.pre_sv.tolist() == [88459937892655367, 88459937892655368]
    assert not table.post_root.any() and (table.kind_codes == KIND_POINT).all()
    assert list(table.props.columns) == ["valid", "volume"]
    from imagery_gui.cli import main

    out = tmp_path / "figs"
    argv = ["batch", "--quiet", "--demo", "--sites", str(tmp_path / "nuclei.csv")]
    assert main([*argv, "--size", "48", "48", "-o", str(out), "--workers", "0"]) == 0
    drawn = json.loads((out / "5.json").read_text())
    assert drawn["root_ids_requested"] == ["864691135611984218"]
    assert [s["id"] for s in drawn["segments"]] == ["864691135611984218"]
    assert json.loads((out / "6.json").read_text())["root_ids_requested"] == "all"  # no cell


def test_resolution_precedence_and_none(tmp_path):
    df = cave_frame(5)
    assert read_sites(df, resolution=(2, 2, 2)).resolution == (2, 2, 2)
    assert read_sites(df, default_resolution=(9, 9, 9)).resolution == (4, 4, 40)
    df.attrs.clear()
    assert read_sites(df, default_resolution=(9, 9, 9)).resolution == (9, 9, 9)
    with pytest.raises(SiteTableError, match="--sites-resolution"):
        read_sites(df)


# -- bad tables -----------------------------------------------------------------------------
def test_no_position_columns(tmp_path):
    (tmp_path / "bad.csv").write_text("id,pre_pt_root_id,size\n1,2,3\n")
    with pytest.raises(SiteTableError) as exc:
        read_sites(tmp_path / "bad.csv", default_resolution=(4, 4, 40))
    msg = str(exc.value)
    assert "no position columns" in msg and "ctr_pt_position" in msg
    assert "pre_pt_root_id" in msg  # says what the table does have


def test_unparseable_rows_are_skipped_and_counted(tmp_path):
    lines = [
        "id,ctr_pt_position,pre_pt_root_id",
        f'1,"[10 20  3]",{ROOT_A}',
        '2,"[10 20]",5',  # two numbers
        f'3,"[11 21  4]",{ROOT_B}',
        '4,"[12 22 5]",not-an-id',
        '5,"",6',  # empty centre
    ]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    table = read_sites(tmp_path / "rows.csv", default_resolution=(4, 4, 40))
    assert table.ids.tolist() == [1, 3]
    assert table.pre_root.tolist() == [ROOT_A, ROOT_B]
    assert [s.row for s in table.skipped] == [1, 3, 4]
    reasons = [s.reason for s in table.skipped]
    assert reasons[0] == "row 1 (line 3): ctr_pt_position is not three numbers"
    assert "pre_pt_root_id" in reasons[1] and "line 5" in reasons[1]
    assert table.warnings[0].startswith("3 of 5 rows skipped")


def test_all_rows_bad_and_empty_table(tmp_path):
    (tmp_path / "allbad.csv").write_text('ctr_pt_position\n"[1 2]"\n"junk"\n')
    with pytest.raises(SiteTableError, match=r"none of its 2 rows is usable \(row 0 \(line 2\)"):
        read_sites(tmp_path / "allbad.csv", default_resolution=(4, 4, 40))
    (tmp_path / "empty.csv").write_text("ctr_pt_position,pre_pt_root_id\n")
    with pytest.raises(SiteTableError, match="has no rows"):
        read_sites(tmp_path / "empty.csv", default_resolution=(4, 4, 40))
    with pytest.raises(SiteTableError, match="does not exist"):
        read_sites(tmp_path / "missing.csv")
    with pytest.raises(SiteTableError, match="unknown table format"):
        (tmp_path / "x.xlsx").write_text("")
        read_sites(tmp_path / "x.xlsx")


def test_a_unit_that_cannot_be_right(demo):
    """Positions in nm read as 4x4x40 voxels: the check names the likely resolution."""
    lo = np.array([204800, 163840, 21000]) * [4, 4, 40]  # the demo's bounds, nm
    hi = lo + np.array([1024, 1024, 64]) * [4, 4, 40]
    rng = np.random.default_rng(0)
    nm = rng.uniform(lo, hi, size=(50, 3))
    df = pd.DataFrame({"ctr_pt_position": list(nm)})
    wrong = read_sites(df, default_resolution=(4, 4, 40))
    with pytest.raises(SiteTableError) as exc:
        wrong.check_against([lo, hi])
    msg = str(exc.value)
    assert "100% of the 50 sites lie outside" in msg and "--sites-resolution 1 1 1" in msg
    right = read_sites(df, resolution=(1, 1, 1))
    assert right.check_against([lo, hi]) is None
    # Voxels read as nm: the other way round.
    vox = read_sites(pd.DataFrame({"ctr_pt_position": list(nm / [4, 4, 40])}), resolution=(1, 1, 1))
    with pytest.raises(SiteTableError, match="--sites-resolution 4 4 40"):
        vox.check_against([lo, hi])
    # A table for a bigger volume (half inside... or beyond): a warning, not an error.
    mixed = np.concatenate([nm[:20], nm[20:] + (hi - lo) * 1.5]) / [4, 4, 40]
    part = read_sites(pd.DataFrame({"ctr_pt_position": list(mixed)}), resolution=(4, 4, 40))
    warning = part.check_against([lo, hi])
    assert warning is not None and "60% of the 50 sites lie outside" in warning


# -- the model's queries ----------------------------------------------------------------------
def test_in_box_centres_and_segments():
    df = pd.DataFrame(
        {
            "ctr_pt_position": [[5, 5, 5], [50, 50, 5], [50, 50, 5], [50, 50, 50]],
            "pre_pt_position": [[5, 5, 5], [-10, 5, 5], [50, 60, 5], [0, 0, 0]],
            "post_pt_position": [[5, 5, 5], [20, 5, 5], [60, 60, 5], [1, 1, 1]],
        }
    )
    t = read_sites(df, resolution=(4, 4, 40))
    # Row 1's centre is outside but its pre->post segment crosses the box; row 3's
    # segment ends just inside.
    assert t.in_box([0, 0, 0], [10, 10, 10]).tolist() == [0, 1, 3]
    # The same box given at 8x8x40 nm (half the numbers).
    assert t.in_box([0, 0, 0], [5, 5, 10], resolution=(8, 8, 40)).tolist() == [0, 1, 3]
    assert t.in_box([100, 100, 100], [200, 200, 200]).tolist() == []
    half = t.to_resolution((8, 8, 40))
    np.testing.assert_array_equal(half.centers, t.centers / [2, 2, 1])
    assert half.in_box([0, 0, 0], [5, 5, 10]).tolist() == [0, 1, 3]


def test_sort_filter_and_frame():
    df = cave_frame(30)
    df["cell_type"] = np.where(np.arange(30) % 3 == 0, "23P", "BC")
    t = read_sites(df)
    order = t.sorted_by("size", descending=True)
    assert (np.diff(df["size"].to_numpy()[order]) <= 0).all()
    assert (np.diff(t.centers[t.sorted_by("z"), 2]) >= 0).all()
    by_id = t.sorted_by("id", descending=True)
    assert t.ids[by_id].tolist() == sorted(t.ids.tolist(), reverse=True)
    assert t.filtered(partner=ROOT_B).tolist() == list(range(1, 30, 2))
    assert t.filtered(text="23p").tolist() == list(range(0, 30, 3))
    assert t.filtered(text=str(ROOT_B)[-6:], partner=ROOT_B, indices=order[:10]).tolist() == [
        i for i in order[:10] if i % 2 == 1
    ]
    assert t.filtered(role="input").tolist() == []
    with pytest.raises(SiteTableError, match="role"):
        t.filtered(role="sideways")
    frame = t.to_frame()
    assert frame["pre_pt_root_id"].tolist() == t.pre_root.tolist()
    assert frame.attrs["dataframe_resolution"] == [4.0, 4.0, 40.0]
    again = read_sites(frame)
    np.testing.assert_array_equal(again.post, t.post)


def test_provenance_is_json_with_exact_ids(tmp_path):
    df = cave_frame(4)
    df.to_csv(tmp_path / "s.csv")
    t = read_sites(tmp_path / "s.csv", default_resolution=(4, 4, 40))
    prov = sites_provenance(t, [t.id_of(0), 864691135012345678])
    text = json.dumps(prov)
    assert json.loads(text)["drawn_ids"] == ["150000000", "864691135012345678"]
    assert prov["source"] == {"kind": "file", "path": str(tmp_path / "s.csv")}
    assert prov["resolution"] == [4.0, 4.0, 40.0] and "viewer" in prov["resolution_from"]


# -- Neuroglancer annotation layers -----------------------------------------------------------
COLLEAGUE_STATE = {
    "dimensions": {"x": [4e-9, "m"], "y": [4e-9, "m"], "z": [4e-8, "m"]},
    "position": [100, 200, 30],
    "layers": [
        {"type": "image", "source": "precomputed://gs://bucket/em", "name": "em"},
        {"type": "segmentation", "source": "precomputed://gs://bucket/seg", "name": "seg"},
        {
            "type": "annotation",
            "name": "points",
            "source": "local://annotations",  # no transform: the state's dimensions
            "annotations": [
                {"type": "point", "id": "a1", "point": [100.5, 200.5, 30], "description": "x"},
                {"type": "point", "id": "a2", "point": [110, 210, 31], "segments": [str(ROOT_A)]},
                {"type": "polyline", "id": "p", "points": [[1, 2, 3], [4, 5, 6]]},
            ],
        },
        {
            "type": "annotation",
            "name": "synapses",
            "source": {
                "url": "local://annotations",
                "transform": {
                    "outputDimensions": {
                        "x": [8e-9, "m"],
                        "y": [8e-9, "m"],
                        "z": [40, "nm"],
                        "t": [1, "s"],
                    }
                },
            },
            "annotationProperties": [{"id": "score", "type": "float32"}],
            "annotationRelationships": ["pre_synaptic_cell", "post_synaptic_cell"],
            "annotations": [
                {
                    "type": "line",
                    "id": "s1",
                    "pointA": [50, 100, 30, 0],
                    "pointB": [54, 100, 30, 0],
                    "segments": [[str(ROOT_A)], [str(ROOT_B)]],
                    "props": [0.75],
                },
                {
                    "type": "axis_aligned_bounding_box",
                    "id": "b1",
                    "pointA": [60, 110, 32, 0],
                    "pointB": [40, 90, 28, 0],
                    "props": [0.5],
                },
                {
                    "type": "ellipsoid",
                    "id": "e1",
                    "center": [10, 20, 30, 0],
                    "radii": [3, 4, 1, 0],
                    "props": [0.25],
                },
            ],
        },
        {"type": "annotation", "name": "remote", "source": "precomputed://gs://bucket/ann"},
    ],
}


def test_annotation_layers_from_a_link():
    layers = dict(annotation_layers(COLLEAGUE_STATE, link="https://ng.example/#!..."))
    assert set(layers) == {"points", "synapses"}  # remote (precomputed) layers are not read
    pts = layers["points"]
    assert pts.resolution == (4, 4, 40)
    np.testing.assert_array_equal(pts.centers, [[100.5, 200.5, 30], [110, 210, 31]])
    assert pts.ids.tolist() == ["a1", "a2"]
    assert pts.site(1).pre_root == ROOT_A and pts.props["description"].iloc[0] == "x"
    assert [s.row for s in pts.skipped] == [2] and "polyline" in pts.skipped[0].reason
    syn = layers["synapses"]
    assert syn.resolution == (8, 8, 40) and syn.source.layer == "synapses"
    assert syn.kind_codes.tolist() == [KIND_LINE, KIND_BOX, KIND_ELLIPSOID]
    s1 = syn.site(0)
    assert s1.pre == (50, 100, 30) and s1.post == (54, 100, 30) and s1.center == (52, 100, 30)
    assert (s1.pre_root, s1.post_root) == (ROOT_A, ROOT_B)
    assert s1.props["score"] == 0.75 and s1.props["segments_pre_synaptic_cell"] == str(ROOT_A)
    assert syn.site(1).box == ((40, 90, 28), (60, 110, 32)) and syn.site(1).center == (50, 100, 30)
    assert syn.site(2).radii == (3, 4, 1)
    # Sites are found by their boxes too.
    assert syn.in_box([58, 108, 31], [70, 120, 40]).tolist() == [1]


def test_annotation_layer_round_trip_through_neuroglancer():
    import neuroglancer

    from imagery_gui.model.ngl import make_state

    df = cave_frame(6)
    t = read_sites(df)
    t.role_codes[:3] = ROLE_INPUT
    t.role_codes[3:] = ROLE_OUTPUT
    pts = read_sites(pd.DataFrame({"x": [1, 2], "y": [3, 4], "z": [5, 6]}), resolution=(8, 8, 40))
    state = make_state(
        center=(1, 2, 3),
        resolution=(4, 4, 40),
        image_source="precomputed://gs://a/em",
        segmentation_source="precomputed://gs://a/seg",
    )
    add_annotation_layer(state, t)
    add_annotation_layer(state, pts, name="sites")  # a second one gets its own name
    vs = neuroglancer.viewer_state.ViewerState(json.loads(json.dumps(state)))
    layer = vs.layers["sites"].layer
    assert type(layer).__name__ == "AnnotationLayer"
    assert dict(layer.linked_segmentation_layer) == {"segments": "segmentation"}
    anns = layer.annotations
    assert [type(a).__name__ for a in anns] == ["LineAnnotation"] * 6
    np.testing.assert_array_equal(anns[0].point_a, df["pre_pt_position"][0])
    np.testing.assert_array_equal(anns[0].point_b, df["post_pt_position"][0])
    assert [int(v) for v in anns[1].segments[0]] == [ROOT_B, ROOT_A + 7]
    second = vs.layers["sites 2"].layer
    assert [type(a).__name__ for a in second.annotations] == ["PointAnnotation"] * 2
    np.testing.assert_array_equal(second.annotations[1].point, [2, 4, 6])
    dims = second.source[0].transform.output_dimensions.to_json()
    assert dims["x"] == [8e-9, "m"] and dims["z"] == [4e-8, "m"]
    # And back: what Neuroglancer holds reads as the same sites.
    back = dict(annotation_layers(vs.to_json()))
    b = back["sites"]
    np.testing.assert_array_equal(b.centers, t.centers)  # the cleft, not the midpoint
    np.testing.assert_array_equal(b.pre, t.pre)
    assert b.pre_root.tolist() == t.pre_root.tolist()
    assert b.role_codes.tolist() == t.role_codes.tolist()
    assert b.ids.tolist() == t.ids.tolist()
    np.testing.assert_array_equal(back["sites 2"].centers, pts.centers)
    # A subset for a link that must stay small.
    sub = annotation_layer(t, indices=[4, 0], linked_segmentation=None)
    assert [a["id"] for a in sub["annotations"]] == [str(t.ids[4]), str(t.ids[0])]
    assert "linkedSegmentationLayer" not in sub and "segments" not in sub["annotations"][0]


# -- CAVE -----------------------------------------------------------------------------------
@pytest.fixture
def client(cave):
    from caveclient import CAVEclient

    from tests.conftest import CAVE_TOKEN

    return CAVEclient(
        "test_stack", server_address=cave.url, auth_token=CAVE_TOKEN, write_server_cache=False
    )


def _truth(graphene_table, root, ts):
    syn = graphene_table.synapses
    pre = np.array([graphene_table.root_of(int(s), ts) for s in syn.pre_sv])
    post = np.array([graphene_table.root_of(int(s), ts) for s in syn.post_sv])
    ok = pre != post
    return set(syn.ids[(pre == root) & ok].tolist()), set(syn.ids[(post == root) & ok].tolist())


def test_synapses_of_a_root_through_caveclient(cave, client, graphene_table, synthetic_big):
    from imagery_gui.model.sites_cave import synapses_of
    from tests.helpers.cave_server import SYNAPSE_TABLE, T0

    a, _b = graphene_table.merged
    t = synapses_of(client, a, materialization_version=1)
    outs, ins = _truth(graphene_table, a, (T0 + dt.timedelta(days=1)).timestamp())
    assert outs and ins
    out_rows = t.role_codes == ROLE_OUTPUT
    assert set(t.ids[out_rows].tolist()) == outs
    assert set(t.ids[t.role_codes == ROLE_INPUT].tolist()) == ins
    assert (t.pre_root[out_rows] == a).all() and (t.post_root[~out_rows] == a).all()
    assert (t.partners[out_rows] == t.post_root[out_rows]).all()
    assert t.resolution == (4, 4, 40) and SYNAPSE_TABLE in t.resolution_from
    assert t.source.as_dict() == {
        "kind": "cave",
        "datastack": "test_stack",
        "table": SYNAPSE_TABLE,
        "version": 1,
        "timestamp": (T0 + dt.timedelta(days=1)).isoformat(),
        "query": t.source.query,
    }
    assert {v for v, _ in cave.queries} == {1}  # pinned to the version asked
    assert any(
        body.get("filter_equal_dict", {}).get(SYNAPSE_TABLE) == {"pre_pt_root_id": a}
        for _, body in cave.queries
    )
    # The points lie in their cells (the 8 nm segmentation; positions at 4 nm).
    from cloudvolume import CloudVolume

    seg = np.asarray(
        CloudVolume(f"file://{synthetic_big.segmentation_path}", progress=False)[:, :, :]
    )[..., 0]
    off = np.array([1000, 2000, 100])

    def label(p):
        return seg[tuple(((p // [2, 2, 1]).astype(int) - off).T)]

    assert (label(t.pre) == t.pre_root).all() and (label(t.post) == t.post_root).all()
    assert t.pre_sv.all() and t.props["size"].gt(0).all()


def test_synapses_at_a_timestamp_follow_the_edit(cave, client, graphene_table):
    """A live query after the edit: the merged root's synapses are both parents'."""
    from imagery_gui.model.sites_cave import synapses_of
    from tests.helpers.cave_server import EDIT_TIME, NEW_ROOT

    when = EDIT_TIME + dt.timedelta(days=3)
    t = synapses_of(client, NEW_ROOT, timestamp=when)
    outs, ins = _truth(graphene_table, NEW_ROOT, when.timestamp())
    assert set(t.ids[t.role_codes == ROLE_OUTPUT].tolist()) == outs
    assert set(t.ids[t.role_codes == ROLE_INPUT].tolist()) == ins
    assert t.source.version is None and t.source.timestamp == when.isoformat()


def test_a_caveclient_frame_from_python(cave, client, graphene_table):
    """``read_sites(client.materialize.synapse_query(...))``: resolution and table from attrs."""
    from tests.helpers.cave_server import SYNAPSE_TABLE

    a, _b = graphene_table.merged
    df = client.materialize.synapse_query(post_ids=a, materialization_version=1)
    t = read_sites(df, default_resolution=(8, 8, 40))
    assert len(t) == len(df) > 0
    assert t.resolution == (4, 4, 40) and "dataframe_resolution" in t.resolution_from
    assert t.source.table == SYNAPSE_TABLE and t.source.version == 1
    assert t.post_root.tolist() == [a] * len(t)


def test_outdated_and_future_roots_offer_what_to_use(cave, client, graphene_table):
    from imagery_gui.model.sites_cave import OutdatedRootError, synapses_of
    from tests.helpers.cave_server import NEW_ROOT

    a, _b = graphene_table.merged
    with pytest.raises(OutdatedRootError) as exc:
        synapses_of(client, a, materialization_version=2)
    assert exc.value.successors == [NEW_ROOT]
    assert f"root {a} is not valid at materialization version 2" in str(exc.value)
    assert str(NEW_ROOT) in str(exc.value)
    with pytest.raises(OutdatedRootError, match="did not exist yet at materialization version 1"):
        synapses_of(client, NEW_ROOT, materialization_version=1)
    assert not cave.queries  # nothing was queried with an id that cannot be right


def test_empty_query_and_missing_table(cave, client):
    from imagery_gui.model.sites_cave import synapses_of

    with pytest.raises(SiteTableError, match="has no synapses of root 864691135999999999"):
        synapses_of(client, 864691135999999999, materialization_version=1)
    with pytest.raises(SiteTableError, match="not both"):
        synapses_of(client, 1, materialization_version=1, timestamp=dt.datetime.now(dt.UTC))


# -- the demo's synapse table ---------------------------------------------------------------
def test_demo_synapse_table(demo):
    from cloudvolume import CloudVolume

    from imagery_gui.model import demo as demo_mod

    assert demo.synapses is not None and demo.synapses.name == "synapses.csv"
    t = read_sites(demo.synapses, default_resolution=demo.resolution)
    assert 200 <= len(t) <= 400 and not t.skipped
    assert t.resolution == (4, 4, 40)
    seg = np.asarray(CloudVolume(f"file://{demo.root / 'segmentation'}", progress=False)[:, :, :])[
        ..., 0
    ]
    off = np.asarray(demo_mod.SEG_OFFSET)

    def label(p):
        return seg[tuple(((p // [2, 2, 1]).astype(int) - off).T)]

    assert (label(t.pre) == t.pre_root).all()  # every pre point inside its pre cell
    assert (label(t.post) == t.post_root).all()
    assert (label(t.centers) == t.pre_root).all()  # the centre at the contact, pre side
    assert (t.pre_root != t.post_root).all() and t.pre_root.all() and t.post_root.all()
    # Close pairs: pre and post within ~100 nm, on either side of the contact.
    dist = np.linalg.norm((t.post - t.pre) * [4, 4, 40], axis=1)
    assert (dist > 0).all() and dist.max() <= 120
    lo = np.asarray(demo_mod.IMAGE_OFFSET) * [4, 4, 40]
    hi = lo + np.asarray(demo_mod.IMAGE_SHAPE) * [4, 4, 40]
    assert t.check_against([lo, hi]) is None
    assert len(np.unique(t.centers[:, 2])) > 30  # spread through the sections
    # Deterministic: written again from the same labels, byte for byte.
    text = demo.synapses.read_text()
    demo_mod.write_synapses(demo.root, seg, demo_mod._scene())
    assert demo.synapses.read_text() == text


def test_site_index_finds_exactly_what_in_box_finds():
    """Batch asks SiteIndex once per task; it must give in_box's rows, whatever reaches
    into the box: centres, pre->post segments, boxes (one spanning the table), ellipsoids,
    and rows without a centre."""
    rng = np.random.default_rng(7)
    n = 3000
    c = np.c_[rng.uniform(0, 20000, (n, 2)), rng.uniform(0, 200, n)]
    df = pd.DataFrame(
        {
            "ctr_pt_position": list(c),
            "pre_pt_position": list(c + rng.normal(0, 30, (n, 3))),
            "post_pt_position": list(c + rng.normal(0, 30, (n, 3))),
        }
    )
    t = read_sites(df, resolution=(4, 4, 40))
    boxes = np.full((n, 2, 3), np.nan)
    boxes[::50] = np.stack([c[::50] - 40, c[::50] + 60], axis=1)
    boxes[7] = [[0, 0, 0], [20000, 20000, 200]]  # wider than SiteIndex.WIDE: every box's
    radii = np.full((n, 3), np.nan)
    radii[3::40] = rng.uniform(5, 300, (len(radii[3::40]), 3))
    centers = t.centers.copy()
    centers[11] = np.nan  # no centre: found by its segment only
    t = t._replace(boxes=boxes, radii=radii, centers=centers)
    index = SiteIndex(t)
    found_any = 0
    for k in range(200):
        lo = rng.uniform(-500, 20000, 3) * [1, 1, 0.01]
        hi = lo + rng.uniform(10, 3000, 3) * [1, 1, 0.02]
        res = [(4, 4, 40), (8, 8, 40), (1, 1, 1)][k % 3]
        if res == (1, 1, 1):
            lo, hi = lo * [4, 4, 40], hi * [4, 4, 40]
        elif res == (8, 8, 40):
            lo, hi = lo / [2, 2, 1], hi / [2, 2, 1]
        want = t.in_box(lo, hi, res)
        np.testing.assert_array_equal(index.in_box(lo, hi, res), want)
        found_any += len(want) > 1
    assert found_any > 100  # the boxes find sites besides the table-wide one
    row11 = t.pre[11]
    assert 11 in index.in_box(row11 - 1, row11 + 1).tolist()
