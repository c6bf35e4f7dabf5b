"""Garbage cycles are collected on the GUI thread, never in a worker thread."""

from __future__ import annotations

import gc
import threading

from imagery_gui.qt import heap

FREED_IN: list[str] = []  # names of the threads the cycles below were freed in


class _Marked:
    """A cycle member that records the thread it was freed in."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        FREED_IN.append(threading.current_thread().name)


def _make_garbage(n_cycles: int) -> None:
    for _ in range(n_cycles):
        _Marked()  # unreachable at once, freed only by a collection


def test_collections_forced_by_a_worker_thread_run_on_the_gui_thread(qapp, qtbot):
    heap.install()
    FREED_IN.clear()
    n = 3 * gc.get_threshold()[0]  # past the young generation's threshold, with automatic
    # collection on, Python would collect some of them in the worker
    t = threading.Thread(target=_make_garbage, args=(n,), name="worker")
    t.start()
    t.join()
    assert FREED_IN == []  # the worker's allocations collected nothing
    col = heap.collector()
    assert col is not None
    before = list(col.collections)
    qtbot.waitUntil(lambda: len(FREED_IN) == n, timeout=10_000)
    assert set(FREED_IN) == {threading.main_thread().name}
    assert col.collections != before


def test_heap_settling_asked_for_by_another_thread_runs_on_the_gui_thread(qapp, qtbot):
    from imagery_gui.app import settle_heap

    heap.install()
    FREED_IN.clear()
    _make_garbage(5)
    t = threading.Thread(target=settle_heap, name="opener")
    t.start()
    t.join()
    assert FREED_IN == []  # handed over, not done in the opener
    qtbot.waitUntil(lambda: len(FREED_IN) == 5, timeout=10_000)
    assert set(FREED_IN) == {threading.main_thread().name}
    gc.unfreeze()  # settle_heap froze this test's heap; leave the rest of the run as it was
