"""CAVE datastacks and graphene segmentation through the real caveclient and cloud-volume,
against a local CAVE server process on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from caveclient import CAVEclient

import imagery_gui as ig
from imagery_gui.model import cave as cavemod
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.errors import (
    AuthenticationError,
    SourceNotFoundError,
    SourceUnavailableError,
)
from imagery_gui.model.inputs import resolve
from tests.conftest import CAVE_TOKEN
from tests.helpers.cave_server import EDIT_TIME, NEW_ROOT, T0

BOX = [[2100, 4100, 103], [2260, 4220, 104]]  # at 4 x 4 x 40 nm


def test_connect_reads_the_info_service(cave, token_file):
    _client, info = cavemod.connect("test_stack", cave.url, auth_token_file=str(token_file))
    assert info.image_source == cave.image_source
    assert info.segmentation_source == cave.graphene_source
    assert info.resolution == (4.0, 4.0, 40.0)
    assert (
        "GET",
        "/info/api/v2/datastack/full/test_stack",
        f"Bearer {CAVE_TOKEN}",
    ) in cave.requests


def test_token_from_caveclients_usual_place(cave, tmp_path):
    CAVEclient(server_address=cave.url, auth_token="x", global_only=True).auth.save_token(
        token=CAVE_TOKEN, overwrite=True
    )
    _, info = cavemod.connect("test_stack", cave.url)
    assert info.resolution == (4.0, 4.0, 40.0)


def test_missing_token_says_how_to_set_one_up(cave):
    with pytest.raises(AuthenticationError) as exc:
        cavemod.connect("test_stack", cave.url)
    msg = str(exc.value)
    assert "no CAVE token" in msg and "create_token" in msg and "save_token" in msg
    assert not any("/info/api" in r[1] for r in cave.requests)  # asked nothing without a token


def test_rejected_token_is_explained_and_never_shown(cave, tmp_path):
    bad = "deadbeefdeadbeefdeadbeefdeadbeef"
    (tmp_path / "bad.json").write_text(json.dumps({"token": bad}))
    with pytest.raises(AuthenticationError) as exc:
        cavemod.connect("test_stack", cave.url, auth_token_file=str(tmp_path / "bad.json"))
    assert "rejected" in str(exc.value) and "create_token" in str(exc.value)
    assert bad not in str(exc.value)


def test_unknown_datastack_and_unreachable_server(cave, token_file):
    with pytest.raises(SourceNotFoundError, match="not found"):
        cavemod.connect("no_such_stack", cave.url, auth_token_file=str(token_file))
    with pytest.raises(SourceUnavailableError, match="cannot reach"):
        cavemod.connect("test_stack", "http://127.0.0.1:9", auth_token_file=str(token_file))


def test_imageryclient_with_a_caveclient(cave, token_file, synthetic_small, synthetic_big):
    """ImageryClient(client=CAVEclient(...)): sources, resolution and token from CAVE."""
    client = CAVEclient(
        "test_stack", server_address=cave.url, auth_token=CAVE_TOKEN, write_server_cache=False
    )
    ic = ig.ImageryClient(client=client, timestamp=T0 + dt.timedelta(days=1))
    np.testing.assert_array_equal(ic.resolution, [4, 4, 40])
    assert ic.token == CAVE_TOKEN
    img, seg = ic.image_and_segmentation_cutout(BOX)
    ref = ig.ImageryClient(
        image_source=synthetic_big.image, segmentation_source=synthetic_big.segmentation
    )
    img_r, seg_r = ref.image_and_segmentation_cutout(BOX)
    np.testing.assert_array_equal(img, img_r)
    np.testing.assert_array_equal(seg, seg_r)  # before the edit, graphene roots = the volume's ids


def test_graphene_roots_at_a_timestamp(cave, synthetic_big, graphene_table):
    before = Dataset(
        None,
        cave.graphene_source,
        resolution=[4, 4, 40],
        secrets=CAVE_TOKEN,
        timestamp=T0 + dt.timedelta(days=1),
    )
    after = Dataset(None, cave.graphene_source, resolution=[4, 4, 40], secrets=CAVE_TOKEN)
    plain = Dataset(None, synthetic_big.segmentation, resolution=[4, 4, 40])
    box = [[2000, 4000, 100], [2384, 4320, 102]]
    truth = plain.read_segmentation(box)
    np.testing.assert_array_equal(before.read_segmentation(box), truth)
    now = after.read_segmentation(box)
    a, b = graphene_table.merged
    merged = np.isin(truth, [a, b])
    assert merged.any()
    assert (now[merged] == NEW_ROOT).all()
    np.testing.assert_array_equal(now[~merged], truth[~merged])
    sv = after.read_segmentation(box, root_ids=None)  # supervoxels
    assert (sv[truth > 0] >> np.uint64(56) == 1).all()  # layer-1 ids
    assert len(np.unique(sv)) > len(np.unique(truth))
    only = after.read_segmentation(box, root_ids=[NEW_ROOT])
    assert set(np.unique(only).tolist()) == {0, NEW_ROOT}


def test_outdated_roots_and_successors(cave, graphene_table):
    cg = cavemod.chunkedgraph_for(cave.graphene_source, CAVE_TOKEN)
    a, b = graphene_table.merged
    other = next(r for r in set(graphene_table.sv_to_root_before.values()) if r not in (a, b))
    assert cavemod.outdated_roots(cg, [a, other]) == {a: [NEW_ROOT]}
    assert cavemod.outdated_roots(cg, [a, other], timestamp=T0 + dt.timedelta(days=1)) == {}


def test_materialization_version_timestamp(cave, token_file):
    inputs = resolve(
        datastack="test_stack",
        server_address=cave.url,
        auth_token_file=str(token_file),
        materialization_version=1,
    )
    assert inputs.timestamp < EDIT_TIME
    assert inputs.segmentation_source == cave.graphene_source and inputs.token == CAVE_TOKEN


def test_graphene_source_without_token_explains(cave):
    with pytest.raises(AuthenticationError, match="needs a CAVE token"):
        resolve(segmentation_source=cave.graphene_source)


def test_scrub_removes_tokens():
    text = f"GET https://h/x?middle_auth_token={CAVE_TOKEN}&a=1 Authorization: Bearer {CAVE_TOKEN}"
    assert CAVE_TOKEN not in cavemod.scrub(text)
    assert "secret-value" not in cavemod.scrub("boom secret-value", "secret-value")
