"""Garbage collection in the viewer process runs on the GUI thread, and only there.

Python's cyclic collector runs in whichever thread happens to allocate past its
threshold: in the viewer that is often a download, tile or job thread. A garbage cycle
that holds a Qt wrapper (a closed dialog, a finished job, a timer with a lambda on its
owner) then has its C++ object destroyed in that thread while the GUI thread may be
using it, and the process segfaults later in the event loop. Counted in the gallery's
GUI tests: 51 collections ran in worker threads (12 of them full: the open's heap
settling) and freed some 7,000 objects there; ``make test`` had segfaulted in the event
loop in 2 of 3 runs.

So the GUI process turns automatic collection off and collects on a timer on the GUI
thread instead, by the same generation thresholds Python uses (the scheme of pyqtgraph's
``GarbageCollector``), and a heap settling asked for by another thread (see
:func:`imagery_gui.app.settle_heap`) is carried out on the GUI thread too.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

#: How often the GUI thread looks at the allocation counts. Young collections of what a
#: quarter second allocates take well under a millisecond.
CHECK_INTERVAL_MS = 250


class GuiThreadCollector(QObject):
    """Collects by Python's thresholds on a GUI-thread timer; runs handed-over work there."""

    requested = Signal(object)  # a callable, run on the GUI thread

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.collections = [0, 0, 0]  # by generation, for tests and diagnostics
        self.requested.connect(self._run)  # queued when emitted from another thread
        self.timer = QTimer(self)
        self.timer.setInterval(CHECK_INTERVAL_MS)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        """One collection of the oldest generation whose threshold is passed, as Python's
        own collector would have done at the allocation that passed it."""
        counts = gc.get_count()
        gen = -1
        for g in range(3):
            if counts[g] > self.threshold[g]:
                gen = g
            else:
                break
        if gen >= 0:
            gc.collect(gen)
            self.collections[gen] += 1

    def _run(self, fn: Callable[[], None]) -> None:
        fn()


_collector: GuiThreadCollector | None = None


def install() -> GuiThreadCollector:
    """Turn automatic collection off and collect on the GUI thread from now on (once per
    process; the QApplication must exist and this must be called on its thread)."""
    global _collector
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("heap.install() needs the QApplication first")
    if _collector is None:
        _collector = GuiThreadCollector(app)
    gc.disable()
    return _collector


def collector() -> GuiThreadCollector | None:
    return _collector


def on_gui_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` now if this is the GUI thread (or there is no collector), else hand it
    to the GUI thread and return at once."""
    if _collector is None or threading.current_thread() is threading.main_thread():
        fn()
    else:
        _collector.requested.emit(fn)
