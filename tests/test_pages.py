"""The viewer's processes keep numpy's arrays on small pages (``pages.small_pages``): with
huge pages on request, a scrub stalled the GUI thread in page faults and unmaps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

#: Prints how much of a fresh, written 64 MiB array is on huge pages (kB, from smaps).
_PROBE = """
import sys
import numpy as np
if sys.argv[1] == "viewer":
    from imagery_gui.app import configure_gui_process
    configure_gui_process(network=False)
a = np.ones(64 << 20, np.uint8)
start, end = a.ctypes.data, a.ctypes.data + a.nbytes
huge, inside = 0, False
for line in open("/proc/self/smaps"):  # the mappings under the array (numpy's madvise
    head = line.split()[0]  # splits its first page off)
    if "-" in head and ":" not in head:
        lo, hi = (int(v, 16) for v in head.split("-"))
        inside = lo < end and hi > start
    elif inside and head == "AnonHugePages:":
        huge += int(line.split()[1])
print(huge)
"""


def _huge_kb(mode: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env=environ | env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(
    not THP.exists() or "[madvise]" not in THP.read_text(),
    reason="huge pages are given on request only where the system's policy is madvise",
)
def test_the_viewer_process_keeps_big_arrays_on_small_pages():
    assert _huge_kb("plain") > 0  # numpy's default here: the check can see huge pages
    assert _huge_kb("viewer") == 0
    # the processes it starts (the read process, tiles) get numpy's switch at their start
    assert _huge_kb("plain", NUMPY_MADVISE_HUGEPAGE="0") == 0


def test_a_users_own_numpy_setting_is_left_alone(monkeypatch):
    import numpy as np

    from imagery_gui.model import pages

    core = getattr(np, "_core", None) or np.core
    before = core.multiarray._get_madvise_hugepage()
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    try:
        pages.small_pages()
        assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "1"
        assert core.multiarray._get_madvise_hugepage() == before
        monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE")
        pages.small_pages()
        assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0"  # what the read process gets
        assert core.multiarray._get_madvise_hugepage() is False
    finally:
        core.multiarray._set_madvise_hugepage(before)
