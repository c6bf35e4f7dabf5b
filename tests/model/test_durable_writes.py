"""Batch's writes count as durable only after ``io.fsync_files``: every file and the
folders of the renames that made them are fsynced, and nothing of it outlives the call."""

from __future__ import annotations

import os
import threading

import pytest

from imagery_gui.model import io


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fds through /proc")
def test_fsync_files_syncs_every_file_and_its_folder_and_leaves_no_thread(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    files = [tmp_path / f"f{k}.png" for k in range(20)] + [tmp_path / "sub" / "g.json"]
    for f in files:
        f.write_bytes(b"x" * 1000)
    synced: list[str] = []
    lock = threading.Lock()
    real = os.fsync

    def fsync(fd: int) -> None:  # the real call, and which file it was for
        real(fd)
        with lock:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", fsync)
    before = set(threading.enumerate())
    io.fsync_files([*files, tmp_path / "gone.png"])  # a file that is gone is skipped
    assert sorted(synced) == sorted(
        [str(f) for f in files] + [str(tmp_path), str(tmp_path / "sub")]
    )
    # the folders after their files (a rename is durable once its folder is synced)
    assert set(synced[-2:]) == {str(tmp_path), str(tmp_path / "sub")}
    # the threads that synced are gone: a batch started next may still fork its workers
    assert set(threading.enumerate()) == before
