"""Settings for a process that runs the viewer (not for scripts using the model)."""

from __future__ import annotations

import contextlib
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


def warm_up() -> None:
    """Import cloud-volume and its codecs now, while the window is being built.

    Otherwise the first open imports them in its thread (about a second, some 30,000
    objects, and a garbage collection or two on the way) while the first data arrives,
    and the GUI thread waits for the GIL: stalls of 50-60 ms at launch
    (``benchmarks/bench_remote.py``, fresh viewer). The open needs them before its first
    request anyway, so the first image comes no later."""
    from ..model import source

    # only a head start: a problem here is reported by the open that meets it
    with contextlib.suppress(Exception):
        source.warm_up()


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


def settle_heap(everything: bool = False) -> None:
    """Collect, then exempt every object alive now from future garbage collections.

    After the imports and an open there are some 290,000 long-lived objects (modules,
    functions, Qt wrappers, cloud-volume's, seaborn's and caveclient's state); a full
    collection, which any thread may trigger, walks all of them while holding the GIL:
    60-240 ms with every thread stopped, a visible hitch in the middle of scrubbing.

    Called with ``everything`` once the window is built (before it is shown): all of
    them are frozen. Called without when data is opened: only what appeared since (the
    modules the first read imports, the dataset) is collected and frozen, a few ms,
    whereas unfreezing everything again made each open stall the GUI for 220-280 ms.
    Frozen objects are still freed by reference counting; garbage cycles among them are
    not collected until the next ``everything`` call. The objects alive at an open that
    later end up in such cycles are the replaced dataset's cloud-volume bookkeeping,
    about 100 objects and 13 KB per open: the viewer's own dataset keeps no chunk LRU
    (its reads go to the read process), the one cycle that could have held chunk data.
    """
    if everything:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
