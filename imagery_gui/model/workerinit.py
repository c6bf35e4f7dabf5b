"""The first thing a gallery tile process runs (light: no numpy, no cloud-volume yet).

It lowers the process's CPU priority before the heavy imports of the first tile, so those
too take the CPU only when the GUI thread leaves it, and caps glibc's malloc arenas: with
a thread per tile in flight, each thread's arena kept its freed chunks (about 280 MiB per
process after 10,000 tiles).

It also ends the process with the viewer: a process pool's workers hold both ends of
their call queue's pipe, so when the viewer dies without closing the pool (killed, a
crash) they never see it go and wait for work forever (about 45 MB each; found left over
by the test that kills the app mid-review).
"""

from __future__ import annotations

import contextlib
import os
import sys

#: Seconds between two looks at whether the viewer is still there.
PARENT_CHECK_S = 1.0


def exit_with_parent(parent: int, every_s: float = PARENT_CHECK_S) -> None:
    """End this process soon after process ``parent`` has ended (it is then no longer this
    process's parent: the orphan is adopted by init or a subreaper)."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="imagery-gui-parent-watch", daemon=True).start()


def init_tile_process(nice: int, parent: int | None = None) -> None:
    if parent is not None:
        exit_with_parent(parent)
    # At least ``nice``, not ``nice`` more: the process inherits the nice value of the
    # thread that started it (the gallery's worker thread already runs at 10).
    with contextlib.suppress(AttributeError, OSError):
        current = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, max(current, nice))
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: big arrays are mapped, freed back
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc
