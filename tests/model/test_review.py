"""Reviews: decisions on sites saved as they are made, resumed, refused for other tables.

Every table is a real CSV read by ``read_sites``; every review is a real file in tmp_path.
The kill test SIGKILLs a real child process while it saves verdicts in a tight loop.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imagery_gui.model.review import (
    DEFAULT_VERDICTS,
    REVIEW_COLUMNS,
    Review,
    ReviewError,
    default_review_path,
    table_identity,
)
from imagery_gui.model.sites import read_sites

ROOT = Path(__file__).resolve().parents[2]
SITE0 = 900_000_000_000_000_001  # 18-digit site ids, above 2**53 (a float would round them)
ROOT0 = 864_691_135_012_345_678
SV0 = 88_946_092_000_000_000 + 7


def _read(source):
    return read_sites(source, resolution=(4, 4, 40))


def _write_table(path: Path, n: int, sv_change: dict[int, str] | None = None) -> Path:
    """A CAVE-like synapse CSV: 18-digit site, root and supervoxel ids, positions as text."""
    sv_change = sv_change or {}
    lines = [
        "id,ctr_pt_position,pre_pt_root_id,post_pt_root_id,"
        "pre_pt_supervoxel_id,post_pt_supervoxel_id,size"
    ]
    for k in range(n):
        pre_sv = sv_change.get(k, str(SV0 + 2 * k))
        lines.append(
            f"{SITE0 + k},[{100 + k} {200 + k} {k % 50}],{ROOT0 + k},{ROOT0 + 10**6 + k},"
            f"{pre_sv},{SV0 + 2 * k + 1},{k}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _string_table(path: Path, n: int) -> Path:
    """Neuroglancer-style annotation ids: 40 hex characters."""
    ids = [hashlib.sha1(str(k).encode()).hexdigest() for k in range(n)]
    lines = ["id,x,y,z"] + [f"{a},{k},{k + 1},{k % 7}" for k, a in enumerate(ids)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


NOTE = 'looks like a "double" contact, see z 12,\nsecond line; é'


def test_decisions_round_trip_and_resume(tmp_path):
    table = _read(_write_table(tmp_path / "synapses.csv", 20))
    path = default_review_path(table, tmp_path / "fallback")
    assert path == tmp_path / "synapses.review.csv"
    review = Review.open(table, path)
    assert review.progress() == (0, 20) and review.stale == 0
    assert not path.exists()  # a new review writes nothing until its first decision
    d = review.set_verdict(3, "real")
    assert d is not None and d.verdict == "real" and d.site_id == str(SITE0 + 3)
    assert d.pre_sv == SV0 + 6 and d.post_sv == SV0 + 7 and d.time.endswith("Z")
    assert path.exists()  # saved before set_verdict returned
    review.set_verdict(5, "false positive")
    review.set_note(5, NOTE)
    review.set_tags(5, ["bouton", " spine; shaft ", "bouton", ""])
    review.set_verdict(7, "my own verdict")  # not one of the configured verdicts: kept
    review.set_note(9, "only a note")
    review.set_verdict(11, "unsure")
    assert review.set_verdict(11, None) is None  # cleared: nothing left on that row
    assert review.progress() == (3, 20)

    again = Review.open(table, path)
    assert again.identity == review.identity == table_identity(table)
    assert again.progress() == (3, 20) and again.stale == 0
    assert again.decision(3) == review.decision(3)
    five = again.decision(5)
    assert five is not None
    assert (five.verdict, five.note, five.tags) == (
        "false positive",
        NOTE,
        ("bouton", "spine", "shaft"),
    )
    assert again.decision(7).verdict == "my own verdict"
    nine = again.decision(9)
    assert nine is not None and (nine.verdict, nine.note) == ("", "only a note")
    assert again.decision(11) is None and again.decision(0) is None
    codes = again.verdict_codes()
    assert codes.dtype == np.int8 and len(codes) == 20
    assert (codes[3], codes[5], codes[7], codes[9], codes[0]) == (1, 2, -1, 0, 0)
    rows = _rows(path)
    assert [r["site_id"] for r in rows] == [str(SITE0 + k) for k in (3, 5, 7, 9)]  # table order
    with open(path, encoding="utf-8") as fh:
        assert fh.readline().rstrip("\n") == ",".join(REVIEW_COLUMNS)
    assert rows[1]["tags"] == "bouton;spine;shaft" and rows[1]["note"] == NOTE
    assert {r["table_identity"] for r in rows} == {table_identity(table)}
    assert {r["table_source"] for r in rows} == {str(tmp_path / "synapses.csv")}


def test_18_digit_ids_are_exact_in_the_file_and_back(tmp_path):
    table = _read(_write_table(tmp_path / "t.csv", 10))
    path = tmp_path / "t.review.csv"
    review = Review.open(table, path)
    for k in range(10):
        review.set_verdict(k, DEFAULT_VERDICTS[k % 3])
    text = path.read_text()
    for k in range(10):
        assert f"{SITE0 + k},{SV0 + 2 * k},{SV0 + 2 * k + 1}," in text
    assert "e+" not in text and ".0," not in text  # never a float
    back = Review.open(table, path)
    for k in range(10):
        d = back.decision(k)
        assert d is not None and d.site_id == str(SITE0 + k)
        assert (d.pre_sv, d.post_sv) == (SV0 + 2 * k, SV0 + 2 * k + 1)
    # A decision needs the site's own id: neighbours that a float would merge stay apart.
    assert float(SITE0) == float(SITE0 + 1)
    assert back.decision(0).verdict != back.decision(1).verdict


def test_string_ids_round_trip(tmp_path):
    table = _read(_string_table(tmp_path / "ann.csv", 6))
    assert isinstance(table.id_of(0), str)
    path = tmp_path / "ann.review.csv"
    review = Review.open(table, path)
    review.set_verdict(2, "real")
    review.set_tags(4, ["keep"])
    rows = _rows(path)
    assert [r["site_id"] for r in rows] == [str(table.id_of(2)), str(table.id_of(4))]
    assert len(rows[0]["site_id"]) == 40
    assert rows[0]["pre_sv"] == "" and rows[0]["post_sv"] == ""
    back = Review.open(table, path)
    assert back.decision(2).verdict == "real" and back.decision(4).tags == ("keep",)
    assert back.progress() == (1, 6)


def test_default_path_for_tables_without_a_writable_folder(tmp_path):
    table = _read(_write_table(tmp_path / "s.csv", 3))
    frame = _read(pd.read_csv(tmp_path / "s.csv", dtype=str))
    assert frame.source.kind == "frame"
    assert table_identity(frame) == table_identity(table)  # the same sites, however read
    fallback = tmp_path / "reviews"
    assert default_review_path(frame, fallback) == fallback / f"review-{table_identity(table)}.csv"
    # The fallback folder is made by the first save.
    review = Review.open(frame, default_review_path(frame, fallback))
    review.set_verdict(0, "real")
    assert (fallback / f"review-{table_identity(table)}.csv").is_file()
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        t = _read(_write_table(ro / "s.csv", 3))
        ro.chmod(0o555)
        try:
            assert default_review_path(t, fallback) == fallback / f"review-{table_identity(t)}.csv"
        finally:
            ro.chmod(0o755)


def test_identity_is_stable_across_processes(tmp_path):
    csv_path = _write_table(tmp_path / "t.csv", 50)
    here = table_identity(_read(csv_path))
    code = (
        "from imagery_gui.model.review import table_identity;"
        "from imagery_gui.model.sites import read_sites;"
        f"print(table_identity(read_sites({str(csv_path)!r}, resolution=(4, 4, 40))))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="12345")
    there = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert len(here) == 16 and int(here, 16) >= 0
    assert there == here
    assert table_identity(_read(_write_table(tmp_path / "u.csv", 49))) != here


def test_a_review_of_another_table_is_refused_and_left_alone(tmp_path):
    a = _read(_write_table(tmp_path / "a.csv", 10))
    b_path = tmp_path / "b.csv"
    b_path.write_text("id,ctr_pt_position\n" + "".join(f"{k},[{k} {k} {k}]\n" for k in range(10)))
    b = _read(b_path)
    path = tmp_path / "review.csv"
    Review.open(a, path).set_verdict(1, "real")
    before = path.read_bytes()
    with pytest.raises(ReviewError) as err:
        Review.open(b, path)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "a.csv") in message and str(b_path) in message
    assert "another table" in message
    assert path.read_bytes() == before
    # The same sites in another order are another table too (rows would be misread).
    c = _read(a.to_frame().iloc[::-1].reset_index(drop=True))
    with pytest.raises(ReviewError, match="another table"):
        Review.open(c, path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [
        b"id,ctr_pt_position\n1,[1 2 3]\n",  # a site table, not a review
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",  # binary
        ",".join(REVIEW_COLUMNS).encode() + b"\n1,2\n",  # a broken row
        ",".join(REVIEW_COLUMNS).encode() + b"\n1,x,,real,,,,abc,src\n",  # not an sv id
        ",".join(REVIEW_COLUMNS).encode() + b'\n1,,,real,"open quote\n',  # truncated quoting
    ],
    ids=["site-table", "binary", "short-row", "bad-sv", "open-quote"],
)
def test_a_file_that_is_not_a_review_is_refused_and_not_overwritten(tmp_path, content):
    table = _read(_write_table(tmp_path / "t.csv", 5))
    path = tmp_path / "t.review.csv"
    path.write_bytes(content)
    with pytest.raises(ReviewError) as err:
        Review.open(table, path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == content


def test_stale_decisions_are_counted_kept_and_not_applied(tmp_path):
    csv_path = _write_table(tmp_path / "t.csv", 8)
    path = tmp_path / "t.review.csv"
    review = Review.open(_read(csv_path), path)
    for k in range(4):
        review.set_verdict(k, "real")
    review.set_note(1, "was real before the table changed")
    # The table is recomputed: row 1's pre supervoxel changed, row 2's is no longer known.
    changed = _read(_write_table(csv_path, 8, sv_change={1: str(SV0 + 999), 2: ""}))
    assert table_identity(changed) != review.identity  # its supervoxel half differs
    again = Review.open(changed, path)
    assert again.stale == 1
    assert again.decision(1) is None  # not applied to the changed site
    assert again.decision(2).verdict == "real"  # an unknown supervoxel is no evidence
    assert again.progress() == (3, 8)
    # The stale decision is kept in the file while new ones are saved...
    again.set_verdict(1, "unsure")
    rows = [r for r in _rows(path) if r["site_id"] == str(SITE0 + 1)]
    assert sorted((r["verdict"], r["pre_sv"]) for r in rows) == [
        ("real", str(SV0 + 2)),
        ("unsure", str(SV0 + 999)),
    ]
    # ... and resumes as stale again, until the user drops it.
    third = Review.open(changed, path)
    assert third.stale == 1 and third.decision(1).verdict == "unsure"
    assert third.discard_stale() == 1 and third.stale == 0
    assert Review.open(changed, path).stale == 0
    assert len(_rows(path)) == 4


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".feather"])
def test_export_round_trips_verdicts_notes_tags_and_exact_ids(tmp_path, ext):
    table = _read(_write_table(tmp_path / "t.csv", 6))
    review = Review.open(table, tmp_path / "t.review.csv")
    review.set_verdict(0, "real")
    review.set_note(0, NOTE)
    review.set_tags(0, ["a", "b"])
    review.set_verdict(4, "false positive")
    out = review.export(tmp_path / f"reviewed{ext}")
    assert out == str(tmp_path / f"reviewed{ext}")
    if ext == ".csv":
        df = pd.read_csv(out, dtype=str, keep_default_na=False)
    elif ext == ".parquet":
        df = pd.read_parquet(out)
    else:
        df = pd.read_feather(out)
    assert len(df) == 6
    assert [str(v) for v in df["id"]] == [str(SITE0 + k) for k in range(6)]
    assert [str(v) for v in df["pre_pt_supervoxel_id"]] == [str(SV0 + 2 * k) for k in range(6)]
    assert [str(v) for v in df["post_pt_root_id"]] == [str(ROOT0 + 10**6 + k) for k in range(6)]
    assert list(df["verdict"]) == ["real", "", "", "", "false positive", ""]
    assert df["note"][0] == NOTE and df["tags"][0] == "a;b"
    assert df["reviewed_at"][0] == review.decision(0).time and df["reviewed_at"][1] == ""
    # The exported table reads back as a site table with the same sites.
    assert table_identity(_read(out)) == table_identity(table)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


def test_export_refuses_bad_names_in_one_line(tmp_path):
    table = _read(_write_table(tmp_path / "t.csv", 3))
    review = Review.open(table, tmp_path / "r.csv")
    with pytest.raises(ReviewError, match=r"\.csv, \.parquet, \.feather"):
        review.export(tmp_path / "reviewed.xlsx")
    with pytest.raises(ReviewError) as err:
        review.export(tmp_path / "no" / "such" / "folder.csv")
    assert "\n" not in str(err.value) and "does not exist" in str(err.value)


def test_a_failed_save_keeps_the_decision_in_memory(tmp_path):
    table = _read(_write_table(tmp_path / "t.csv", 3))
    blocker = tmp_path / "reviews"
    blocker.write_text("a file where the review's folder should be")  # fails even as root
    review = Review.open(table, blocker / "r.csv")
    with pytest.raises(ReviewError, match="not saved") as err:
        review.set_verdict(1, "real")
    assert "\n" not in str(err.value)
    assert review.unsaved and review.decision(1).verdict == "real"
    blocker.unlink()
    review.save()  # the retry writes what was kept in memory
    assert not review.unsaved
    assert Review.open(table, blocker / "r.csv").decision(1).verdict == "real"


# -- a kill while saving --------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys
    from imagery_gui.model.review import DEFAULT_VERDICTS as V, Review
    from imagery_gui.model.sites import read_sites

    table_path, review_path, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
    review = Review.open(read_sites(table_path, resolution=(4, 4, 40)), review_path)
    print("ready", flush=True)
    for i in range(len(review.table)):
        if review.decision(i) is None or not review.decision(i).note:
            review.set_note(i, f"row {i}, \\"quoted\\"\\nsecond line")
        review.set_verdict(i, V[(i + run) % 3])
    print("done", flush=True)
    """
)


def _state(path: Path, table) -> dict[int, tuple[str, str]]:
    review = Review.open(table, path)  # must open: only whole rows, this table's
    assert review.stale == 0
    return {i: (d.verdict, d.note) for i, d in review.decisions().items()}


def test_a_kill_while_saving_leaves_a_readable_file_of_the_childs_decisions(tmp_path):
    n = 10_000
    table_path = _write_table(tmp_path / "big.csv", n)
    table = _read(table_path)
    path = tmp_path / "big.review.csv"
    # A temporary file an earlier kill left behind: never read as the review.
    leftover = tmp_path / ".big.review.csv.oldrun.part"
    leftover.write_text(",".join(REVIEW_COLUMNS) + "\nnot,a,whole")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = random.Random(15)
    prev: dict[int, tuple[str, str]] = {}
    made = 0
    for run in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(table_path), str(path), str(run)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            try:
                child.wait(timeout=rng.uniform(0.2, 1.5))
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL, "the child finished before the kill"
        state = _state(path, table) if path.exists() else {}

        def expected(i: int, run: int = run) -> tuple[str, str]:
            return DEFAULT_VERDICTS[(i + run) % 3], f'row {i}, "quoted"\nsecond line'

        # This run's decisions are a prefix of the rows (the child goes in order)...
        done = 0
        while state.get(done) == expected(done):
            done += 1
        for i, got in state.items():
            if i >= done:
                # ... and the rest are as the last run left them, or (the row the kill hit)
                # with its note saved and its verdict not yet.
                assert got in (prev.get(i), (prev.get(i, ("", ""))[0], expected(i)[1])), (run, i)
        assert set(prev) <= set(state)  # nothing an earlier run saved was lost
        made = max(made, done)
        prev = state
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == list(REVIEW_COLUMNS)
        assert all(len(r) == len(REVIEW_COLUMNS) for r in rows[1:])  # whole rows only
    assert made > 0, "no kill came after a save"
    # Temporary files of killed saves may remain; they are ignored and the next save works.
    parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert leftover in parts
    review = Review.open(table, path)
    review.set_note(n - 1, "after the kills")
    assert Review.open(table, path).decision(n - 1).note == "after the kills"
    assert _rows_count(path) == len(review)


def _rows_count(path: Path) -> int:
    with open(path, encoding="utf-8", newline="") as fh:
        return sum(1 for _ in csv.reader(io.StringIO(fh.read()))) - 1
