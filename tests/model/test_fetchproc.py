"""The read process: the same slabs as reading in-process, errors with their types, HTTP
outcomes forwarded, and nothing left waiting when the child dies."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from imagery_gui.model import fetchproc, netwatch
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.errors import DataCorruptError, SourceUnavailableError
from imagery_gui.model.view import SlabKey, fetch_slab, plan_region, z_slab
from tests.helpers.http_server import LoopbackServer


def _key(ds: Dataset, center_vx, serial: int, half_nm: float = 1500.0) -> SlabKey:
    c = np.asarray(center_vx, dtype=float) * ds.resolution
    reg = plan_region(
        ds,
        (c[0] - half_nm, c[1] - half_nm, c[0] + half_nm, c[1] + half_nm),
        ds.image_mip,
        ds.segmentation_mip,
    )
    z0, z1 = z_slab(ds, reg, int(center_vx[2]))
    return SlabKey(reg, z0, z1, True, None, serial)


@pytest.fixture
def reader():
    proc = fetchproc.FetchProcess()
    yield proc
    proc.close()
    assert proc.dead is not None
    assert proc._proc.poll() is not None  # the child is gone


def _same(a, b) -> None:
    assert a.key == b.key
    for name in ("image", "local", "ids", "missing"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_slabs_read_in_the_child_equal_slabs_read_here(reader, demo_pair, synthetic_big):
    for serial, pair in enumerate((demo_pair, synthetic_big), start=1):
        ds = Dataset(pair.image, pair.segmentation).open()
        reader.set_dataset(serial, ds.replica_args())
        key = _key(ds, pair.center, serial)
        _same(reader.fetch(key), fetch_slab(ds, key))
    assert reader.slabs_received == 2


def test_segmentation_only_and_missing_chunks_cross_over(reader, synthetic_big, tmp_path):
    root = tmp_path / "holes"
    shutil.copytree(synthetic_big.image_path.parent, root)
    removed = [p for p in (root / "image" / "4_4_40").iterdir() if "_100-108" in p.name]
    assert removed
    for p in removed:
        p.unlink()
    ds = Dataset(f"file://{root / 'image'}", f"file://{root / 'segmentation'}").open()
    reader.set_dataset(1, ds.replica_args())
    key = _key(ds, [2192, 4160, 101], 1)
    got = reader.fetch(key)
    assert got.missing is not None and got.missing.any()
    _same(got, fetch_slab(ds, key))
    seg_only = Dataset(None, f"file://{root / 'segmentation'}").open()
    reader.set_dataset(2, seg_only.replica_args())
    key2 = _key(seg_only, [1096, 2080, 101], 2)
    got2 = reader.fetch(key2)
    assert got2.image is None
    _same(got2, fetch_slab(seg_only, key2))


def test_errors_keep_their_type_and_message(reader, synthetic_big, tmp_path):
    root = tmp_path / "corrupt"
    shutil.copytree(synthetic_big.image_path.parent, root)
    for p in (root / "image" / "4_4_40").iterdir():
        if "_100-108" in p.name:
            p.write_bytes(b"\x1f\x8b not really gzip")
    ds = Dataset(f"file://{root / 'image'}", f"file://{root / 'segmentation'}").open()
    reader.set_dataset(1, ds.replica_args())
    with pytest.raises(DataCorruptError, match="could not be decoded"):
        reader.fetch(_key(ds, [2192, 4160, 101], 1))
    with pytest.raises(SourceUnavailableError, match="open it again"):
        reader.fetch(_key(ds, [2192, 4160, 101], 99))  # never opened there
    # and the child goes on serving
    assert reader.fetch(_key(ds, [2192, 4160, 110], 1)).image is not None


def test_http_outcomes_are_forwarded_to_this_process(reader, synthetic_big):
    netwatch.install()
    with LoopbackServer(synthetic_big.image_path.parent, latency=0.0, seed=4) as srv:
        srv.fail_rate = 0.3
        ds = Dataset(srv.source("image"), srv.source("segmentation"))
        before = netwatch.totals()
        ds.open()
        reader.set_dataset(1, ds.replica_args())
        reader.fetch(_key(ds, [2192, 4160, 101], 1))
        failed = srv.counts["failed"]
        assert failed > 0
        # Every failure the server injected (all in the child: metadata is spared) reaches
        # this process's netwatch, within moments.
        deadline = time.monotonic() + 5
        while netwatch.totals()["errors"] - before["errors"] < failed:
            assert time.monotonic() < deadline, (netwatch.totals(), before, failed)
            time.sleep(0.02)
        assert netwatch.totals()["errors"] - before["errors"] == failed


def test_a_killed_child_fails_waiting_reads_and_shared_restarts(synthetic_big):
    first = fetchproc.shared()
    with LoopbackServer(synthetic_big.image_path.parent) as srv:
        ds = Dataset(srv.source("image"), srv.source("segmentation")).open()
        srv.hang = 5.0  # chunk requests now hang: the read is in flight when we kill
        first.set_dataset(1, ds.replica_args())
        outcome = {}

        def wait_for_it():
            try:
                first.fetch(_key(ds, [2192, 4160, 101], 1))
            except SourceUnavailableError as exc:
                outcome["error"] = exc

        t = threading.Thread(target=wait_for_it)
        t.start()
        os.kill(first.pid, signal.SIGKILL)
        t.join(10)
        assert not t.is_alive(), "a read was left waiting on a dead process"
        assert "stopped" in str(outcome["error"])
        assert not first.alive
        second = fetchproc.shared()
        assert second is not first and second.alive
        srv.hang = 0.0
        second.set_dataset(1, ds.replica_args())
        assert second.fetch(_key(ds, [2192, 4160, 101], 1)).local is not None
    fetchproc.close_shared()
    assert second._proc.poll() is not None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
def test_the_read_process_starts_with_numpys_huge_pages_off(monkeypatch):
    # small pages, as the viewer's (tests/test_pages.py), even where this process never
    # set the switch (earlier tests may have: batch's command sets it)
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    proc = fetchproc.FetchProcess()
    try:
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    finally:
        proc.close()
    assert b"NUMPY_MADVISE_HUGEPAGE=0" in environ


def test_the_bundle_flag_starts_a_reader(monkeypatch):
    """A frozen app has no ``python -m``: it starts itself with the reader flag, which the
    CLI hands to the reader before anything else."""
    import sys

    from imagery_gui import cli

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    cmd = fetchproc.child_command()
    assert cmd == [sys.executable, fetchproc.READER_FLAG]
    called = []
    monkeypatch.setattr(fetchproc, "child_entry", called.append)
    assert cli.main([fetchproc.READER_FLAG, "127.0.0.1:1"]) == 0
    assert called == ["127.0.0.1:1"]
