"""Small memory pages for numpy's arrays (the viewer, its read and tile processes, batch)."""

from __future__ import annotations

import contextlib
import os

#: numpy's switch for huge pages (read at its import; the processes this one starts get it).
HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"


def small_pages() -> None:
    """No transparent huge pages for numpy's arrays in this process and the ones it starts
    (the read process, the gallery's tile processes), unless the user set numpy's own
    switch (``NUMPY_MADVISE_HUGEPAGE``).

    On Linux numpy asks for huge pages (``madvise``) for every array of 4 MiB or more.
    Where the system leaves huge pages to that request (``enabled=madvise``, as on Debian's
    and Ubuntu's desktops), the first write to each 2 MiB of such an array zeroes it at
    once, after the kernel has compacted memory to find one if it must, while holding the
    process's memory map, and freeing the array unmaps it under the same lock. The viewer
    allocates and frees slab- and frame-sized arrays at every step of a scrub, in several
    threads: the GUI thread waited in those faults and unmaps, or for the GIL held by a
    thread in one, for 50-300 ms at a time, 2-12 times in a 64-step scrub
    (``benchmarks/bench_remote.py``); with small pages, none of 50 ms or more. The arrays
    are written once and read a few times, so huge pages buy nothing measurable here:
    a batch in one process took 0.96x the time with small pages (less time in the
    kernel)."""
    if HUGEPAGE_ENV in os.environ:
        return
    os.environ[HUGEPAGE_ENV] = "0"
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # numpy 2 / 1.26
    with contextlib.suppress(AttributeError):  # not a Linux build: no such switch
        core.multiarray._set_madvise_hugepage(False)
