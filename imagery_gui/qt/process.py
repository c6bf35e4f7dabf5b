"""Settings for a process that runs the viewer (not for scripts using the model)."""

from __future__ import annotations

import gc
import sys

#: Seconds a thread may hold the GIL before another may run. Python's default (5 ms) lets
#: background threads (exports, metadata, reads when ``read_process`` is off) keep the GUI
#: thread waiting for several frames in a row.
GUI_SWITCH_INTERVAL = 0.001


def configure_gui_process() -> None:
    """GIL hand-over for a responsive GUI thread, and the viewer's network policy."""
    from ..model import netwatch

    sys.setswitchinterval(GUI_SWITCH_INTERVAL)
    netwatch.install(viewer_retries=True)
    tune_malloc()
    settle_heap()


def tune_malloc() -> None:
    """What ``fetchproc.MALLOC_ENV`` does for the read process, for this one (glibc only):
    arrays above 128 KiB are always mapped, so freeing a slab gives its memory back."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (also ends its dynamic growth)
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc


def settle_heap() -> None:
    """Collect, then exempt every object alive now from future garbage collections.

    After the imports and an open there are some 300,000 long-lived objects (modules,
    functions, Qt wrappers, cloud-volume's and caveclient's state); each full collection,
    which any thread may trigger, walked all of them while holding the GIL: 50-160 ms with
    every thread stopped, a visible hitch in the middle of scrubbing. Frozen objects are
    still freed by reference counting; only cycles among them wait for the next call here,
    which is made when the user opens data (while the first requests are on the wire).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
