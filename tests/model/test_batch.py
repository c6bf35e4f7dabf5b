"""``imagery-gui batch``: export per site, resumable, on real Dask processes.

Every volume is the real demo volume on disk read by cloud-volume; the cluster tests start
a real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 and kill them with
SIGKILL. Figures are compared pixel for pixel with ``imagery-gui export``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagery_gui.cli import main

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("DASK_DISTRIBUTED__DASHBOARD__LINK", None)
    return env


def _sites_csv(demo, path: Path, n: int, extra_lines: tuple[str, ...] = ()) -> Path:
    """The first ``n`` sites of the demo's synapse table (CAVE columns, 4x4x40 nm)."""
    lines = Path(demo.synapses).read_text().splitlines()
    path.write_text("\n".join(lines[: n + 1] + list(extra_lines)) + "\n")
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def _manifest(folder: Path):
    import pandas as pd

    return pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)


def _visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def _batch(*args: str) -> int:
    return main(["batch", "--quiet", *args])


@pytest.fixture(scope="module")
def sites(demo, tmp_path_factory) -> Path:
    return _sites_csv(demo, tmp_path_factory.mktemp("sites") / "sites.csv", 24)


OPTION_SETS = {
    "defaults": ["--size", "96", "96"],
    "styled": [
        "--size", "64", "80", "--outline", "--width", "3", "--alpha", "0.4", "--scale", "2",
        "--scale-bar", "--palette", "neuroglancer",
    ],
    "root-ids-no-glyphs": [
        "--size", "96", "96", "--root-ids", "864691135611984218", "--all-segments",
        "--selected-alpha", "0.8", "--no-annotate", "--colors", "864691135611984218=#ff0000",
    ],
    "z-series": ["--size", "64", "64", "3", "--color-by", "order"],
}  # fmt: skip


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_every_figure_is_exports_figure_for_that_site(demo, sites, tmp_path, name):
    opts = OPTION_SETS[name]
    out = tmp_path / "batch"
    assert _batch("--demo", "--sites", str(sites), *opts, "-o", str(out), "--workers", "0") == 0
    frame = _manifest(out)
    assert len(frame) == 24 and set(frame.status) == {"done"}

    def drawn(sid: str) -> int:
        return len(json.loads((out / f"{sid}.json").read_text())["sites"]["drawn_ids"])

    ids = frame.id.tolist()
    crowded = [sid for sid in ids if drawn(sid) > 1][:3]  # neighbours' glyphs in them
    picks = crowded + [sid for sid in ids[::5] if sid not in crowded][: 5 - len(crowded)]
    if "--no-annotate" not in opts:
        assert crowded
    for sid in picks:
        ref = tmp_path / "export" / f"{sid}.png"
        ref.parent.mkdir(exist_ok=True)
        args = ["export", "--quiet", "--demo", "--sites", str(sites), "--site", sid, *opts]
        assert main([*args, "-o", str(ref)]) == 0
        pngs = sorted(p.name for p in ref.parent.glob(f"{sid}*.png"))
        assert pngs == sorted(p.name for p in out.glob(f"{sid}*.png"))
        for png in pngs:
            assert np.array_equal(_pixels(ref.parent / png), _pixels(out / png)), (sid, png)
        mine = json.loads((out / f"{sid}.json").read_text())
        theirs = json.loads(ref.with_suffix(".json").read_text())
        for key in ("bounds", "segments", "selection", "style", "sites", "neuroglancer_link"):
            assert mine[key] == theirs[key], key
        assert mine["site"]["id"] == sid
        assert mine["batch"]["run"]


def test_rerun_redoes_only_missing_and_failed_figures(demo, tmp_path):
    outside = "999,True,0,0,10,[1 1 1],[1 1 1],[1 1 1]"  # far outside the volume
    table = _sites_csv(demo, tmp_path / "s.csv", 20, (outside,))
    out = tmp_path / "out"
    args = ["--demo", "--sites", str(table), "--size", "64", "64", "-o", str(out), "--workers", "0"]
    assert _batch(*args) == 1  # one site failed
    first = _manifest(out)
    assert (first.status == "done").sum() == 20
    bad = first[first.id == "999"].iloc[0]
    assert bad.status == "failed" and "outside" in bad.error and not (out / "999.png").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    runs = {p.stem: json.loads(p.read_text())["batch"]["run"] for p in out.glob("*.json")}
    gone = first.id.tolist()[3:6]
    for sid in gone:
        (out / f"{sid}.png").unlink()
        (out / f"{sid}.json").unlink()
    (out / f"{first.id[8]}.png").unlink()  # a JSON without its figure is not finished
    (out / f"{first.id[9]}.json").unlink()  # nor a figure without its JSON
    time.sleep(0.01)
    assert _batch(*args) == 1
    again = _manifest(out)
    assert again.id.tolist() == first.id.tolist()
    assert (again.status == "done").sum() == 20 and again[
        again.id == "999"
    ].status.item() == "failed"
    redone = {p.stem for p in out.glob("*.json") if p.stat().st_mtime_ns != stamps.get(p.name)}
    assert redone == set(gone) | {first.id[8], first.id[9]}
    for p in out.glob("*.json"):
        run = json.loads(p.read_text())["batch"]["run"]
        assert (run == runs[p.stem]) == (p.stem not in redone)
    # kept rows keep their time; redone ones have a new one
    kept = again[~again.id.isin(list(redone) + ["999"])]
    assert (kept.seconds.values == first.set_index("id").loc[kept.id, "seconds"].values).all()
    # --force remakes every figure, once
    assert _batch(*args, "--force") == 1
    assert all(p.stat().st_mtime_ns != stamps.get(p.name) for p in out.glob("*.json"))
    assert _temp_files(out) == []


def test_every_distinct_id_gets_a_figure_of_its_own(demo, tmp_path):
    """Ids whose file names would clash (unsafe characters, case on macOS and Windows),
    run too long for the file system, or name a Windows device: each gets a file of its
    own, named the same on a rerun (nothing redone); only a repeated id is skipped."""
    import pandas as pd

    ids = ["a b", "a:b", "Syn1", "syn1", "CON", "x" * 300, "dup", "dup", ".hidden", "ü-ß", "ä-ö"]
    demo_rows = pd.read_csv(demo.synapses).head(len(ids))
    table = tmp_path / "ids.csv"
    demo_rows.assign(id=ids).to_csv(table, index=False)
    out = tmp_path / "out"
    args = ["--demo", "--sites", str(table), "--size", "48", "48", "-o", str(out), "--workers", "0"]
    assert _batch(*args) == 0
    m = _manifest(out)
    assert m.id.tolist() == ids
    done = m[m.status == "done"]
    assert len(done) == len(ids) - 1 and m.status.tolist()[7] == "skipped"
    assert "the same id as row 6" in m.error.tolist()[7]
    files = done.file.tolist()
    assert len({f.casefold() for f in files}) == len(files)  # distinct, even ignoring case
    assert files[0] == "a_b.png" and files[2] == "Syn1.png"  # the first keeps the plain name
    assert files[1].startswith("a_b-") and files[3].startswith("syn1-")
    assert files[4].startswith("CON-") and all(len(f) <= 170 for f in files)
    for f in files:
        assert (out / f).is_file() and (out / f).with_suffix(".json").is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert _batch(*args) == 0  # the same names again: every figure is finished
    assert _manifest(out).file.tolist() == m.file.tolist()
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == {
        k: v for k, v in stamps.items() if k.endswith(".png")
    }


def test_bad_inputs_exit_2_with_one_line_before_any_work(demo, sites, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    nm_table = tmp_path / "nm.csv"  # positions in nm read as 4x4x40 voxels
    import pandas as pd

    from imagery_gui.model.sites import read_sites

    t = read_sites(sites, default_resolution=(4, 4, 40))
    nm = t.centers * np.asarray(t.resolution)
    pd.DataFrame({"id": t.ids, "x": nm[:, 0], "y": nm[:, 1], "z": nm[:, 2]}).to_csv(
        nm_table, index=False
    )
    cases = {
        "output is a file": ["--sites", str(sites), "--size", "64", "64", "-o", str(a_file)],
        "no table": ["--sites", str(tmp_path / "nope.csv"), "--size", "64", "64"],
        "no size": ["--sites", str(sites)],
        "bad size": ["--sites", str(sites), "--size", "64"],
        "bad style": ["--sites", str(sites), "--size", "64", "64", "--alpha", "3"],
        "wrong unit": ["--sites", str(nm_table), "--size", "64", "64"],
        "no state file": ["--ngl-url", str(tmp_path / "saved.json"), "--size", "64", "64"],
    }
    for what, args in cases.items():
        out = tmp_path / what.replace(" ", "_")
        if "-o" not in args:
            args = [*args, "-o", str(out)]
        capsys.readouterr()
        assert _batch("--demo", "--workers", "0", *args) == 2, what
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("imagery-gui batch: error: "), (what, err)
        assert not (out / "manifest.csv").exists(), what


def test_the_annotations_of_a_saved_link_are_the_sites(demo, tmp_path):
    """--ngl-url with a Neuroglancer state saved to a file: its sources, and its annotation
    layer as the site table (a colleague's picks), each point's segment drawn."""
    import pandas as pd

    rows = pd.read_csv(demo.synapses).head(5)
    points = [[int(v) for v in p.strip("[]").split()] for p in rows.ctr_pt_position]
    state = {
        "dimensions": {"x": [4e-9, "m"], "y": [4e-9, "m"], "z": [4e-8, "m"]},
        "position": points[0],
        "layers": [
            {"type": "image", "name": "em", "source": demo.image_source},
            {"type": "segmentation", "name": "seg", "source": demo.segmentation_source},
            {
                "type": "annotation",
                "name": "picks",
                "source": "local://annotations",
                "annotations": [
                    {"type": "point", "id": f"pick{k}", "point": p, "segments": [[str(r)]]}
                    for k, (p, r) in enumerate(zip(points, rows.pre_pt_root_id))
                ],
            },
        ],
    }
    saved = tmp_path / "state.json"
    saved.write_text(json.dumps(state))
    out = tmp_path / "out"
    assert (
        _batch("--ngl-url", str(saved), "--size", "48", "48", "-o", str(out), "--workers", "0") == 0
    )
    m = _manifest(out)
    assert m.id.tolist() == [f"pick{k}" for k in range(5)] and (m.status == "done").all()
    first = json.loads((out / "pick0.json").read_text())
    assert first["root_ids_requested"] == [str(rows.pre_pt_root_id[0])]
    assert first["sites"]["source"] == {"kind": "link", "layer": "picks"}
    assert first["sources"]["image"].endswith(demo.image_source.split("://")[-1])


def test_local_cluster_of_processes_makes_the_same_files(demo, tmp_path):
    table = _sites_csv(demo, tmp_path / "s.csv", 16)
    common = ["--demo", "--sites", str(table), "--size", "64", "64"]
    assert _batch(*common, "-o", str(tmp_path / "here"), "--workers", "0") == 0
    assert _batch(*common, "-o", str(tmp_path / "dask"), "--workers", "2", "--task-size", "4") == 0
    names = _visible_files(tmp_path / "here")
    assert names == _visible_files(tmp_path / "dask")
    for n in names:
        if n.endswith(".png"):
            assert np.array_equal(_pixels(tmp_path / "here" / n), _pixels(tmp_path / "dask" / n))


def test_python_api_returns_the_manifest(demo, sites, tmp_path):
    import imagery_gui

    frame = imagery_gui.batch(
        tmp_path / "api", sites, demo=True, size=(64, 64), workers=0, outline=True,
        contact_sheet=4,
    )  # fmt: skip
    assert list(frame.columns) == ["id", "file", "status", "error", "seconds"]
    assert len(frame) == 24 and set(frame.status) == {"done"}
    assert (tmp_path / "api" / frame.file[0]).is_file()
    sheet = Image.open(tmp_path / "api" / "contact_sheet.png")
    assert sheet.width == 2 * 64 + 3 * 6  # the first 4 figures: 2 x 2
    with pytest.raises(TypeError):
        imagery_gui.batch(tmp_path / "api", sites, demo=True, no_such_option=1)


def test_morton_tasks_hold_neighbours_and_each_site_once(demo, sites):
    from imagery_gui.batch_cli import batch_parser, prepare
    from imagery_gui.model.batch import make_tasks, morton_order, site_names

    pts = np.array([[0, 0, 0], [100, 100, 100], [1, 0, 0], [101, 100, 100], [0, 1, 0]])
    order = morton_order(pts).tolist()
    assert {order.index(0), order.index(2), order.index(4)} == {0, 1, 2}
    args = batch_parser().parse_args(
        ["--demo", "--sites", str(sites), "--size", "96", "96", "-o", "/tmp/unused-batch"]
    )
    ds, fig, table = prepare(args)
    names, _ = site_names(table)
    tasks = make_tasks(ds, fig, table, range(len(table)), names, "/x", task_size=5, run_id="r")
    assert sorted(n for t in tasks for n in t.names) == sorted(names)
    for t in tasks:
        ids = [t.table.id_of(r) for r in t.rows]
        assert len(set(ids)) == len(ids)
        # the task's table is in the whole table's order (glyphs stack the same)
        pos = [table.index_of(t.table.id_of(i)) for i in range(len(t.table))]
        assert pos == sorted(pos)
    # The workers' last tasks a quarter the size: the same sites in the same order, once.
    n = len(table)  # 24: 8 sites in a task, the last 16 in tasks of 4 (at least 4)
    tail = make_tasks(ds, fig, table, range(n), names, "/x", task_size=8, run_id="r", tail=2)
    assert [len(t.names) for t in tail] == [8, 4, 4, 4, 4]
    assert [t.number for t in tail] == list(range(len(tail)))
    whole = make_tasks(ds, fig, table, range(n), names, "/x", task_size=8, run_id="r")
    assert len(whole) == 3
    assert [nm for t in tail for nm in t.names] == [nm for t in whole for nm in t.names]


def test_each_worker_makes_a_run_of_neighbouring_tasks():
    """Tasks in Morton order go to workers as runs of consecutive tasks (a worker keeps the
    chunks its last task read); a worker whose run is done takes the back of the longest
    other run, and a worker that joins late (or stands in for a dead one) does the same."""
    from imagery_gui.model.batch import _Runs

    tasks = list(range(10))
    runs = _Runs(tasks, ["a", "b"])  # type: ignore[arg-type]
    assert [runs.take("a") for _ in range(3)] == [0, 1, 2]
    assert [runs.take("b") for _ in range(2)] == [5, 6]
    assert [runs.take("a") for _ in range(2)] == [3, 4]
    assert runs.take("a") == 9 and runs.take("a") == 8  # b's run, from its far end
    assert runs.take("c") == 7  # a new worker: the back of the longest run
    assert len(runs) == 0 and runs.take("b") is None
    from types import SimpleNamespace

    sized = [SimpleNamespace(names=("s",) * n) for n in (4, 4, 4, 4, 1)]  # the last is short
    split = _Runs(sized, ["a", "b"])  # type: ignore[arg-type]
    assert [len(split.runs[w]) for w in "ab"] == [2, 3]  # 8 and 9 sites
    waiting = _Runs([1, 2, 3], [])  # type: ignore[list-item]  # a scheduler without workers yet
    assert [waiting.take(""), waiting.take("d"), waiting.take("")] == [1, 3, 2]


# -- real processes ------------------------------------------------------------------------
def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),
        env=env or _env(),
        start_new_session=True,  # its own process group: kill it with everything it started
    )


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def _dask_processes(
    tmp_path: Path, worker_envs: list[dict[str, str]], wrap: dict[int, list[str]] | None = None
):
    """A ``dask scheduler`` and a ``dask worker`` process per environment, all on
    127.0.0.1 (the scheduler's HTTP server too: Dask's default is every interface);
    ``wrap[k]``: the command worker k's command is given to, as its last argument."""
    procs: list[subprocess.Popen] = []
    sched_file = tmp_path / "scheduler.json"
    try:
        procs.append(
            _start(
                [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                 "--scheduler-file", str(sched_file)],
                tmp_path / "scheduler.log",
            )
        )  # fmt: skip
        _wait_for(lambda: sched_file.is_file() and sched_file.stat().st_size, 60, "the scheduler")
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for k, env in enumerate(worker_envs):
            cmd = [str(DASK), "worker", address, "--host", "127.0.0.1", "--no-dashboard",
                   "--dashboard-address", "127.0.0.1:0",
                   "--nworkers", "1", "--nthreads", "1", "--death-timeout", "30"]  # fmt: skip
            if wrap and k in wrap:
                cmd = [*wrap[k], shlex.join(cmd)]
            procs.append(_start(cmd, tmp_path / f"worker{k}.log", env))
        import distributed

        if worker_envs:
            with distributed.Client(address, timeout="30s") as client:
                client.wait_for_workers(len(worker_envs), timeout=60)
        yield address, procs[1:]
    finally:
        for p in reversed(procs):
            _kill(p)


@pytest.fixture
def dask_cluster(tmp_path):
    """A ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1."""
    with _dask_processes(tmp_path, [_env(), _env()]) as cluster:
        yield cluster


def _env_without_imagery_gui(tmp_path: Path) -> dict[str, str]:
    """A worker's environment where ``import imagery_gui`` fails, as on a cluster where
    it was never installed (a sitecustomize that refuses it, first in sys.path)."""
    site = tmp_path / "no_imagery_gui"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'imagery_gui':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Refuse())\n"
    )
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    return env


def _json_count(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*.json")) if folder.is_dir() else 0


def test_scheduler_and_workers_a_worker_killed_mid_run(demo, tmp_path, dask_cluster):
    address, workers = dask_cluster
    n = 120
    table = _sites_csv(demo, tmp_path / "s.csv", n)
    common = ["--demo", "--sites", str(table), "--size", "96", "96"]
    out = tmp_path / "cluster"
    batch = _start(
        [sys.executable, "-m", "imagery_gui", "batch", *common, "-o", str(out),
         "--scheduler", address, "--task-size", "2", "--quiet"],
        tmp_path / "batch.log",
    )  # fmt: skip
    try:
        _wait_for(lambda: _json_count(out) >= 4, 120, "the first figures")
        _kill(workers[0])  # SIGKILL, mid-run
        done_at_kill = _json_count(out)
        assert done_at_kill < n, "the batch finished before the worker was killed"
        rc = batch.wait(timeout=180)
        assert rc == 0, (tmp_path / "batch.log").read_text() + (out / "manifest.csv").read_text()
    finally:
        _kill(batch)
    frame = _manifest(out)
    assert sorted(frame.id) == sorted(set(frame.id)) and len(frame) == n
    assert set(frame.status) == {"done"}
    assert _temp_files(out) == []
    # the same files as a run in this process, pixel for pixel
    here = tmp_path / "here"
    assert _batch(*common, "-o", str(here), "--workers", "0") == 0
    assert _visible_files(out) == _visible_files(here)
    for name in _visible_files(here):
        if name.endswith(".png"):
            assert np.array_equal(_pixels(out / name), _pixels(here / name)), name
    # and a rerun does nothing: every figure is finished
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert _batch(*common, "-o", str(out), "--scheduler", address) == 0
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in out.iterdir() if p.suffix == ".json")


def test_scheduler_with_a_worker_lacking_imagery_gui_is_refused_up_front(demo, tmp_path):
    """A cluster where one worker cannot import imagery_gui: before, Dask dropped that
    worker on its first task and the batch waited for workers forever. Now the batch
    exits 2 with one line naming the worker, before any figure, and every worker lives."""
    table = _sites_csv(demo, tmp_path / "s.csv", 6)
    envs = [_env(), _env_without_imagery_gui(tmp_path)]
    with _dask_processes(tmp_path, envs) as (address, workers):
        out = tmp_path / "out"
        run = subprocess.run(
            [sys.executable, "-m", "imagery_gui", "batch", "--demo", "--sites", str(table),
             "--size", "64", "64", "-o", str(out), "--scheduler", address, "--quiet"],
            env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 2, run.stdout + run.stderr
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, run.stderr
        assert "1 of the 2 Dask workers" in lines[0] and address in lines[0]
        assert "No module named 'imagery_gui'" in lines[0]
        assert "install imagery-gui" in lines[0]
        assert not list(out.glob("*.png")) and _temp_files(out) == []
        assert all(w.poll() is None for w in workers), "a worker died"
        import distributed

        with distributed.Client(address, timeout="30s") as client:
            assert len(client.scheduler_info()["workers"]) == 2


def test_scheduler_with_a_worker_that_sees_another_output_folder_is_refused(demo, tmp_path):
    """A worker on a node without the shared file system: here, a worker in its own mount
    namespace with an empty file system mounted over the output folder. It would write
    the figures where nobody looks while the manifest called them done; the batch exits
    2 first, with one line, and leaves only its manifest and lock in the folder."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -m (root, or user namespaces) for a worker's own mounts")
    table = _sites_csv(demo, tmp_path / "s.csv", 4)
    out = tmp_path / "out"
    out.mkdir()
    # sh -c '...' WORKER-COMMAND: the worker's command is $0, one word, run by a shell
    elsewhere = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 f"mount -t tmpfs none {shlex.quote(str(out))} && exec sh -c \"$0\""]  # fmt: skip
    with _dask_processes(tmp_path, [_env(), _env()], wrap={1: elsewhere}) as (address, workers):
        run = subprocess.run(
            [sys.executable, "-m", "imagery_gui", "batch", "--demo", "--sites", str(table),
             "--size", "64", "64", "-o", str(out), "--scheduler", address, "--quiet"],
            env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert all(w.poll() is None for w in workers), "a worker died"
    assert run.returncode == 2, run.stdout + run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, run.stderr
    assert "1 of the 2 Dask workers" in lines[0]
    assert f"does not see the output folder {out}" in lines[0]
    assert "a file system the workers share" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == [".imagery-gui-batch.lock", "manifest.csv"]


@pytest.mark.parametrize("content", [None, "{}", "not json"])
def test_a_scheduler_file_that_names_no_scheduler_exits_2(demo, tmp_path, sites, capsys, content):
    path = tmp_path / "scheduler.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "out"
    args = ["--demo", "--sites", str(sites), "--size", "64", "64", "-o", str(out)]
    assert _batch(*args, "--scheduler", str(path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot read the Dask scheduler file {path}" in err[0], err
    assert "dask scheduler --scheduler-file" in err[0]
    assert not out.exists()  # nothing written


def _worker_cmd(address: str) -> list[str]:
    return [str(DASK), "worker", address, "--host", "127.0.0.1", "--no-dashboard",
            "--dashboard-address", "127.0.0.1:0", "--nworkers", "1", "--nthreads", "1"]  # fmt: skip


def _batch_then_a_worker(batch: list[str], worker: list[str], log: Path, tmp_path: Path) -> int:
    """Start ``batch`` against a scheduler with no workers, wait for it to say so, start
    ``worker``; the batch's exit code (both processes gone after)."""
    proc = _start(batch, log)
    joined = None
    try:
        _wait_for(lambda: b"no workers at" in log.read_bytes(), 60, "the batch's notice")
        joined = _start(worker, tmp_path / "late-worker.log")
        code = proc.wait(timeout=120)
    finally:
        _kill(proc)
        if joined is not None:
            _kill(joined)
    return code


def test_scheduler_without_workers_says_so_and_the_batch_runs_when_one_joins(demo, tmp_path):
    """A scheduler with no workers yet: the batch says it waits for them (it used to say
    "1 workers"), and finishes once a worker joins."""
    table = _sites_csv(demo, tmp_path / "s.csv", 4)
    out = tmp_path / "out"
    with _dask_processes(tmp_path, []) as (address, _none):
        log = tmp_path / "batch.log"  # its notices go to stderr
        batch = [sys.executable, "-m", "imagery_gui", "batch", "--demo", "--sites", str(table),
                 "--size", "64", "64", "-o", str(out), "--scheduler", address]  # fmt: skip
        assert _batch_then_a_worker(batch, _worker_cmd(address), log, tmp_path) == 0, (
            log.read_text()
        )
        assert f"no workers at {address} yet" in log.read_text()
    assert (_manifest(out).status == "done").all() and len(list(out.glob("*.png"))) == 4


def test_a_worker_that_joins_later_without_the_output_folder_fails_its_sites(demo, tmp_path):
    """A worker that joins after the batch checked its workers (here: the scheduler had
    none yet) and does not see the output folder (its own mount namespace, an empty file
    system over the folder) fails every site it is given, with the reason; none is called
    done, the batch exits 1, and a rerun on a worker that sees the folder makes them."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -m (root, or user namespaces) for a worker's own mounts")
    table = _sites_csv(demo, tmp_path / "s.csv", 4)
    out = tmp_path / "out"
    out.mkdir()
    with _dask_processes(tmp_path, []) as (address, _none):
        worker_cmd = _worker_cmd(address)
        batch_cmd = [sys.executable, "-m", "imagery_gui", "batch", "--demo", "--sites",
                     str(table), "--size", "64", "64", "-o", str(out), "--scheduler", address]  # fmt: skip
        log = tmp_path / "batch.log"
        mount = f'mount -t tmpfs none {shlex.quote(str(out))} && exec sh -c "$0"'
        elsewhere = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount,
                     shlex.join(worker_cmd)]  # fmt: skip
        assert _batch_then_a_worker(batch_cmd, elsewhere, log, tmp_path) == 1, log.read_text()
        manifest = _manifest(out)
        assert (manifest.status == "failed").all() and len(manifest) == 4
        assert all(f"does not see the output folder {out}" in e for e in manifest.error)
        assert not list(out.glob("*.png")) and not list(out.glob("*.json"))
        assert "4 failed" in log.read_text()
        good = _start(worker_cmd, tmp_path / "good-worker.log")
        try:
            again = subprocess.run(
                batch_cmd, env=_env(), capture_output=True, text=True, timeout=120
            )
        finally:
            _kill(good)
    assert again.returncode == 0, again.stderr
    assert (_manifest(out).status == "done").all() and len(list(out.glob("*.png"))) == 4
    assert not list(out.glob(".*.part"))  # the runs' markers are gone


def test_scheduler_with_a_worker_of_another_version_is_named_in_a_warning(demo, tmp_path):
    """A worker whose imagery_gui says another version makes the figures, and the batch
    says so once, before the figures. The scheduler is given by its scheduler file (as
    dask-jobqueue and dask-mpi users have it); a file that names no scheduler exits 2."""
    table = _sites_csv(demo, tmp_path / "s.csv", 4)
    site = tmp_path / "old_version"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import imagery_gui\nimagery_gui.__version__ = '0.0.9'\n"
    )
    old = _env()
    old["PYTHONPATH"] = os.pathsep.join([str(site), old["PYTHONPATH"]])
    with _dask_processes(tmp_path, [_env(), old]) as (address, _workers):
        run = subprocess.run(
            [sys.executable, "-m", "imagery_gui", "batch", "--demo", "--sites", str(table),
             "--size", "64", "64", "-o", str(tmp_path / "out"),
             "--scheduler", str(tmp_path / "scheduler.json")],
            env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    said = run.stdout + run.stderr
    from imagery_gui import __version__

    assert f"Dask: 2 workers, 2 tasks at once, at {address}" in said
    assert said.count(f"warning: Dask workers at {address}") == 1, said
    assert f"run imagery-gui 0.0.9, this is {__version__}" in said
    assert (_manifest(tmp_path / "out").status == "done").all()


def test_batch_over_http_with_local_workers_makes_the_figures_of_the_files(demo, tmp_path):
    """The demo on a loopback HTTP server (20 ms a request), two local workers: the
    figures are those read from the files, pixel for pixel."""
    from tests.helpers.http_server import LoopbackServer

    table = _sites_csv(demo, tmp_path / "s.csv", 16)
    root = Path(demo.image_source.split("file://", 1)[1]).parent
    common = ["--sites", str(table), "--size", "96", "96", "--task-size", "2"]
    here = tmp_path / "here"
    files = ["--image-source", demo.image_source, "--segmentation-source", demo.segmentation_source]
    assert _batch(*files, *common, "-o", str(here), "--workers", "0") == 0
    with LoopbackServer(root, latency=0.02) as srv:
        img, seg = f"precomputed://{srv.url}/image", f"precomputed://{srv.url}/segmentation"
        out = tmp_path / "remote"
        run = subprocess.run(
            [sys.executable, "-m", "imagery_gui", "batch", "--image-source", img,
             "--segmentation-source", seg, *common, "-o", str(out), "--workers", "2"],
            env=_env(), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Dask: 2 workers, 2 tasks at once" in run.stderr
    pngs = sorted(p.name for p in here.glob("*.png"))
    assert len(pngs) == 16 and sorted(p.name for p in out.glob("*.png")) == pngs
    for name in pngs:
        assert np.array_equal(_pixels(out / name), _pixels(here / name)), name


def test_batch_killed_mid_run_and_restarted_finishes_once(demo, tmp_path):
    n = 120
    table = _sites_csv(demo, tmp_path / "s.csv", n)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "imagery_gui", "batch", "--demo", "--sites", str(table),
           "--size", "96", "96", "-o", str(out), "--workers", "0", "--task-size", "8", "--quiet"]  # fmt: skip
    batch = _start(cmd, tmp_path / "batch1.log")
    try:
        _wait_for(lambda: _json_count(out) >= 10, 120, "the first figures", poll=0.005)
        _kill(batch)
    finally:
        _kill(batch)
    killed_at = _json_count(out)
    assert 10 <= killed_at < n, "the batch finished before it was killed"
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    # every visible file is whole: each PNG decodes, each JSON parses
    for p in out.iterdir():
        if p.suffix == ".png":
            Image.open(p).load()
        elif p.suffix == ".json":
            json.loads(p.read_text())
    mid = _manifest(out)  # written as tasks completed: never more done than there are files
    assert (mid.status == "done").sum() <= killed_at
    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    frame = _manifest(out)
    assert len(frame) == n and sorted(set(frame.id)) == sorted(frame.id)
    assert set(frame.status) == {"done"}
    assert _temp_files(out) == []
    assert len(list(out.glob("*.png"))) == n and _json_count(out) == n
    # figures finished before the kill were not made again
    assert all(
        p.stat().st_mtime_ns == before[p.name] for p in out.glob("*.json") if p.name in before
    )


def test_synapses_of_a_root_from_a_datastack(cave, token_file, graphene_table, tmp_path):
    # The site table comes from the datastack's synapse table (one query, in this
    # process); every site is one of the root's synapses and gets its figure.
    a, _b = graphene_table.merged
    out = tmp_path / "syn"
    rc = _batch(
        "--datastack", "test_stack", "--server-address", cave.url,
        "--auth-token-file", str(token_file), "--synapses-of", str(a),
        "--materialization-version", "1", "--size", "48", "48", "-o", str(out), "--workers", "0",
    )  # fmt: skip
    frame = _manifest(out)
    assert len(frame) > 0 and rc == (0 if set(frame.status) == {"done"} else 1)
    assert (frame.status == "done").sum() > 0
    meta = json.loads((out / f"{frame[frame.status == 'done'].id.iloc[0]}.json").read_text())
    assert str(a) in (meta["site"]["pre_root"], meta["site"]["post_root"])
    assert meta["datastack"]["name"] == "test_stack"


def _run_script(
    path: Path, code: str, variable: str | None = None, value: str | None = None
) -> str:
    """Run ``code`` as a script of its own (a fresh process: no thread but its own, and
    glibc reading its environment at start) with ``variable`` unset or set to ``value``;
    its stdout."""
    path.write_text(code)
    env = _env()
    if variable is not None:
        env.pop(variable, None)
        if value is not None:
            env[variable] = value
    out = subprocess.run(
        [sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


_WORKER_ENV = """
import os, sys, distributed
from imagery_gui.model.batch import local_cluster
def environ(key):
    return os.environ.get(key)
if __name__ == "__main__":
    with local_cluster(1) as cluster, distributed.Client(cluster) as client:
        for key in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS"):
            print(key, list(client.run(environ, key).values()))
"""


def test_local_cluster_workers_start_without_dasks_malloc_trim(tmp_path):
    """The local cluster's workers keep glibc's own malloc thresholds (Dask's
    MALLOC_TRIM_THRESHOLD_ makes every figure-sized array a fresh mmap); a value the user
    sets in the environment of the program still reaches them. (A program each: glibc
    reads the variable when a process starts, and the workers are forked from a server
    that starts with the first local cluster.)"""
    for value in (None, "131072"):
        out = _run_script(tmp_path / "env.py", _WORKER_ENV, "MALLOC_TRIM_THRESHOLD_", value)
        assert f"MALLOC_TRIM_THRESHOLD_ [{value!r}]" in out
        assert "OMP_NUM_THREADS ['1']" in out  # the rest of Dask's worker environment is kept


_START_METHODS = """
import os, sys, threading, distributed
from imagery_gui.model.batch import FORKSERVER_PRELOAD, local_cluster, worker_start_method
def parent():
    return os.getppid()
def imported():
    return sorted(m for m in FORKSERVER_PRELOAD if m in sys.modules)
def report(label):
    method = worker_start_method()
    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        parents = set(client.run(parent).values())
        modules = list(client.run(imported).values())
    print(label, method, "from-this-process" if parents == {os.getpid()} else "elsewhere",
          "preloaded" if modules == [sorted(FORKSERVER_PRELOAD)] * 2 else modules, flush=True)
if __name__ == "__main__":
    report("alone")
    report("alone-again")  # Dask's offload thread now runs beside this one
    stop = threading.Event()
    kernel = threading.Thread(target=stop.wait, name="like-a-notebook-kernel")
    kernel.start()
    report("beside-a-thread")
    stop.set()
    kernel.join()
"""


def test_local_workers_are_forked_from_this_process_unless_other_threads_run(tmp_path):
    """On Linux a process that runs no other thread (a script, the command line) forks its
    workers: they are up at once with everything imported. With another thread running (a
    notebook's kernel) a copy could wait forever on a lock that thread held, so the workers
    come from a fork server that imported what a task needs once."""
    if not sys.platform.startswith("linux"):
        pytest.skip("fork and the fork server are used on Linux only")
    lines = _run_script(tmp_path / "methods.py", _START_METHODS).split("\n")
    assert "alone fork from-this-process preloaded" in lines
    assert "alone-again fork from-this-process preloaded" in lines
    assert "beside-a-thread forkserver elsewhere preloaded" in lines


_PROFILER = """
import distributed
from imagery_gui.model.batch import local_cluster
def profiling(dask_worker):
    return "profile" in dask_worker.periodic_callbacks
if __name__ == "__main__":
    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        print("profiling", sorted(client.run(profiling).values()))
"""


def test_local_workers_run_without_dasks_profiler_unless_asked(tmp_path):
    """Dask's statistical profiler (a walk of each worker's stacks every 10 ms, for the
    dashboard's Profile page) is off in a local cluster's workers; Dask's own variable
    turns it on."""
    variable = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"
    for value, expect in ((None, "[False, False]"), ("True", "[True, True]")):
        out = _run_script(tmp_path / "profiler.py", _PROFILER, variable, value)
        assert f"profiling {expect}" in out


def test_a_forked_worker_opens_its_own_dataset(demo):
    """What the process that forks a worker had open (connections included) is not used by
    the worker: its first task opens the dataset afresh."""
    from imagery_gui.model import batch as engine

    args = {"image_source": demo.image_source, "segmentation_source": demo.segmentation_source}
    engine._DATASETS.clear()
    first = engine._dataset(args)
    assert engine._dataset(args) is first  # kept in one process
    pid = engine._DATASETS_PID[0]
    try:
        engine._DATASETS_PID[0] = -1  # as in a copy of this process: another pid
        again = engine._dataset(args)
        assert again is not first and engine._DATASETS_PID[0] == os.getpid()
    finally:
        engine._DATASETS_PID[0] = pid
        engine._DATASETS.clear()


@contextlib.contextmanager
def _another_thread():
    """A thread beside the test's, as a notebook's kernel runs them."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="like-a-notebook-kernel", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_this_process_makes_figures_while_the_local_cluster_starts(demo, tmp_path):
    """With the fork server (another thread runs here), the first tasks are made here while
    the cluster starts, the rest on its workers; every site once, each figure the same as
    in a run in this process alone."""
    from imagery_gui.batch_cli import batch_parser, prepare
    from imagery_gui.model.batch import BatchSummary, run_batch

    table = _sites_csv(demo, tmp_path / "s.csv", 48)
    args = batch_parser().parse_args(
        ["--demo", "--sites", str(table), "--size", "64", "64", "-o", str(tmp_path / "x")]
    )
    dataset, figure, sites = prepare(args)
    from imagery_gui.model import batch as engine

    frames, summaries = {}, {}
    for name, workers in (("here", 0), ("cluster", 2)):
        engine._DATASETS.clear()
        summaries[name] = BatchSummary()
        with _another_thread():
            frames[name] = run_batch(
                dataset, figure, sites, tmp_path / name, workers=workers, task_size=4,
                summary=summaries[name],
            )  # fmt: skip
        assert set(frames[name].status) == {"done"} and len(frames[name]) == 48
    assert engine._DATASETS == {}  # the helper let go of the dataset (and LRU) it opened
    here, cluster = summaries["here"], summaries["cluster"]
    assert here.made_here == 0  # only a cluster's run counts what this process made
    assert 4 <= cluster.made_here <= 48 and cluster.made_here % 4 == 0  # whole tasks
    assert "made here while the cluster started" in cluster.line()
    assert _visible_files(tmp_path / "here") == _visible_files(tmp_path / "cluster")
    for n in _visible_files(tmp_path / "here"):
        if n.endswith(".png"):
            a, b = tmp_path / "here" / n, tmp_path / "cluster" / n
            assert np.array_equal(_pixels(a), _pixels(b)), n
