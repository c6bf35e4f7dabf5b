"""One way to run a one-shot job (an open, an export, a copy, a chunkedgraph check) off the
GUI thread, on superqt's ``create_worker``.

A job is a function ``fn(progress) -> result``; ``progress(done, total, message)`` reports
and, once the job is cancelled, raises :class:`Cancelled` so the function stops at its next
step. The :class:`Job` reports by signal, in the GUI thread: ``progressed``, then exactly
one of ``succeeded(result)``, ``failed(exception)`` (the exception itself, not its text) or
``cancelled()``, then ``done()``. :class:`Jobs` keeps the running ones and lets go of each
(and of everything its function held, such as a dataset) once it is done.

The latest-wins fetch and overlay workers (:mod:`imagery_gui.qt.workers`) are not jobs:
they are long-lived and skip superseded requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from superqt.utils import create_worker

#: Jobs run on Qt's global thread pool; a hung source must not make an export wait for a
#: free thread (the pool's default size is the number of CPUs).
MIN_POOL_THREADS = 8

Progress = Callable[[int, int, str], None]


class Cancelled(Exception):
    """Raised inside a job's function by ``progress`` once the job was cancelled."""


class Job(QObject):
    """One running job (see the module docstring)."""

    progressed = Signal(int, int, str)
    succeeded = Signal(object)
    failed = Signal(object)  # the exception
    cancelled = Signal()
    done = Signal()

    def __init__(self, fn: Callable[[Progress], Any], name: str, parent: QObject) -> None:
        super().__init__(parent)
        self.name = name
        self._cancel_requested = False
        self._worker: Any = create_worker(
            _call, fn, self._progress, _start_thread=False, _ignore_errors=True
        )
        self._worker.returned.connect(self._on_worker_returned)
        self._worker.errored.connect(self._on_worker_errored)
        self._worker.finished.connect(self._on_worker_finished)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self) -> None:
        self._worker.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next progress report (nothing is reported after)."""
        self._cancel_requested = True
        if self._worker is not None:
            self._worker.quit()

    def _progress(self, done: int, total: int, message: str) -> None:  # worker thread
        if self._cancel_requested:
            raise Cancelled()
        self.progressed.emit(int(done), int(total), str(message))

    @Slot(object)
    def _on_worker_returned(self, result: Any) -> None:
        if not self._cancel_requested:
            self.succeeded.emit(result)

    @Slot(object)
    def _on_worker_errored(self, exc: object) -> None:
        if isinstance(exc, Cancelled) or self._cancel_requested:
            self.cancelled.emit()
        else:
            self.failed.emit(exc)

    @Slot()
    def _on_worker_finished(self) -> None:
        if self._cancel_requested and self._worker is not None and not self._worker.abort_requested:
            self.cancelled.emit()  # pragma: no cover - quit() always sets abort_requested
        self._worker = None  # the function and what it holds go with it
        self.done.emit()


def _call(fn: Callable[[Progress], Any], progress: Progress) -> Any:
    return fn(progress)


class Jobs(QObject):
    """The running jobs of a window."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.active: set[Job] = set()
        pool = QThreadPool.globalInstance()
        if pool.maxThreadCount() < MIN_POOL_THREADS:
            pool.setMaxThreadCount(MIN_POOL_THREADS)

    def run(self, fn: Callable[[Progress], Any], name: str = "job") -> Job:
        """Start ``fn(progress)`` in the background; connect to the returned job's signals
        before control returns to the event loop (results arrive by queued signal)."""
        job = Job(fn, name, self)
        self.active.add(job)
        job.done.connect(self._on_job_done)
        job.start()
        return job

    @Slot()
    def _on_job_done(self) -> None:
        job = self.sender()
        if isinstance(job, Job):
            self.active.discard(job)
            job.deleteLater()

    def cancel_all(self) -> None:
        for job in list(self.active):
            job.cancel()

    def close(self, wait_ms: int = 3000) -> bool:
        """Cancel every job and wait (at most ``wait_ms``) for their threads to end, so none
        reports to a window that is gone; True if all ended."""
        self.cancel_all()
        if not self.active:
            return True
        return bool(QThreadPool.globalInstance().waitForDone(wait_ms))
