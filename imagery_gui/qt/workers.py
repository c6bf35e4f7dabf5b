"""Background workers: the slab fetcher and the outline renderer. Latest request wins.

Each worker is a ``QObject`` moved to its own long-lived ``QThread``; requests go in by a
queued signal and carry a generation number. The GUI thread writes the newest generation
straight into the worker (a plain attribute, atomic under the GIL), so a request that was
superseded while it waited in the queue is skipped without being started, and a running
one is abandoned at the next check. Results carry their generation; the GUI drops stale
ones.

The fetcher runs each blocking read in a daemon thread and polls it, so it can give up on
a read (timeout, close) without waiting for cloud-volume's retries: closing the window
never hangs on a download. ``synchronous=True`` runs the same code inline, for tests.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import traceback
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from ..model import chunkpool, netwatch, render
from ..model.errors import ImageryGuiError, SourceTimeoutError, SourceUnavailableError
from ..model.fetchproc import Outcome
from ..model.linkmeter import MIN_PARALLEL, LinkMeter
from ..model.view import SlabKey, outline_display_banded

POLL_S = 0.02
#: Seconds after which a read no request wants any more is no longer waited for.
ORPHAN_WAIT_S = 60.0
#: Reads no longer waited for (they outlived their timeout, or no request wants them) keep
#: running until cloud-files gives up on them; no more than this many may be pending at
#: once besides a request's own, so a dead server cannot multiply threads.
MAX_PENDING_READS = 4
#: Coarser slabs (FetchRequest.light) read at once beside the full ones.
LIGHT_PARALLEL = 4
#: Worker threads run at this nice value (Linux: per thread), so on a busy machine the
#: GUI thread gets the CPU first and a frame does not wait for an outline in the works.
WORKER_NICE = 10


def lower_this_thread() -> None:
    """Lower the CPU priority of the calling thread (Linux only; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), WORKER_NICE))
    except OSError:
        pass


@dataclass(frozen=True, slots=True)
class FetchRequest:
    generation: int
    keys: tuple[SlabKey, ...]  # in order of need (prefetch after the first)
    source: Any  # what to read through (display.ReadSource: ``source.load(key)``)
    first_alone: bool = False  # the first is on screen now: read it before the others
    parallel: int = MIN_PARALLEL  # slabs read at once (linkmeter.plan_prefetch)
    # Coarser slabs (a sixteenth of the requests of a full one) read beside the full ones,
    # up to LIGHT_PARALLEL at once, not counted in ``parallel``: long full reads under
    # way never hold up the fallback a scrub step may need.
    light: frozenset[SlabKey] = frozenset()
    # With ``first_alone``: the slabs ahead start beside the first all the same (up to
    # ``parallel``; the chunk pool serves the first's chunks before theirs), where reading
    # the first alone would cost them a whole read's time that a scrub starting after a
    # jump does not have (linkmeter.plan_prefetch: ``ahead_beside``).
    beside: bool = False


@dataclass(frozen=True, slots=True)
class OverlayItem:
    """One slice for the overlay worker. ``index`` is the slice's local ids, or when
    ``outlined`` its outline image already; with a ``rgba_key`` the result is also coloured
    through the job's LUT (a big slice, whose colouring would hold up a frame)."""

    outline_key: Any
    index: np.ndarray  # (height, width)
    outlined: bool = False
    rgba_key: Any = None


@dataclass(frozen=True, slots=True)
class OverlayResult:
    outline_key: Any
    outline: np.ndarray | None  # the outline image, when this item computed one
    rgba_key: Any = None
    rgba: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class OutlineJob:
    """Slices to outline and/or colour, in order (the first one is on screen)."""

    generation: int
    items: tuple[OverlayItem, ...]
    visible: np.ndarray  # bool per local id
    geometry: render.Geometry
    lut: np.ndarray | None = None  # (n, 4) RGBA per local id, for items with a rgba_key


class FetchWorker(QObject):
    """Reads slabs, newest request first; lives in the fetch thread."""

    slabReady = Signal(int, object)  # generation, SlabData
    slabFailed = Signal(int, object, object)  # generation, SlabKey, exception
    activity = Signal(bool, str)  # busy, message

    def __init__(self, timeout_s: float | None, link: LinkMeter | None = None) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.link = link if link is not None else LinkMeter()
        self.latest: tuple[int, frozenset] = (0, frozenset())
        self.stopping = False
        self._readers: list[threading.Thread] = []
        # Reads under way when a newer request arrived: it takes over those it wants.
        self._carried: list[_Read] = []
        # Reads no request wants any more: they still use the link until they end.
        self._orphans: list[_Read] = []
        # key -> newest generation known when it was delivered: a request made no later
        # than that could not know the slab had arrived, so it is not read again.
        self._delivered: OrderedDict[SlabKey, int] = OrderedDict()

    def _wanted(self, generation: int, key: SlabKey) -> bool:
        gen, wanted = self.latest
        return generation >= gen or key in wanted

    def _note_retries(self, window_s: float) -> bool:
        """Tell the status bar that requests failed and are retried; True if any did."""
        status = netwatch.recent(window_s)
        if status.retrying:
            span = f"{window_s:.0f} s" if window_s >= 1 else f"{window_s:.1f} s"
            self.activity.emit(
                True,
                f"{status.host} answered {status.last_error} ({status.errors} failed "
                f"requests in {span}); retrying",
            )
        return status.retrying

    def _timeout_error(self) -> SourceTimeoutError:
        status = netwatch.recent(self.timeout_s or 3.0)
        if status.errors:
            what = f"no usable answer ({status.host} answered {status.last_error})"
        else:
            what = "no answer"
        return SourceTimeoutError(
            f"{what} from the data source within {self.timeout_s:g} s (the server may be down "
            "or very slow); change the limit in Settings > Fetch timeout"
        )

    def _start(self, key: SlabKey, source: Any, rank: int = chunkpool.AHEAD) -> Outcome:
        """Start reading one slab in a daemon thread; ``rank``: its chunks' place in the
        read process's queue, for sources that rank reads (display.ReadSource)."""
        outcome = Outcome()
        ranked = hasattr(source, "rerank")

        def target() -> None:
            try:
                # tagged by its outcome: a retry of the same slab is another read
                outcome.value = source.load(key, rank, outcome) if ranked else source.load(key)
            except BaseException as exc:  # noqa: BLE001 - handed to the GUI as a message
                outcome.error = exc
            finally:
                outcome.done.set()

        reader = threading.Thread(target=target, name="imagery-gui-read", daemon=True)
        reader.start()
        self._readers.append(reader)
        return outcome

    def _adopt(self, request: FetchRequest) -> list[_Read]:
        """The reads under way that this request wants (started for an earlier one); the
        others are left to finish on their own."""
        carried, self._carried = self._carried, []
        keep = []
        for read in carried:
            if read.key in request.keys and not self.stopping:
                read.adopted = True
                keep.append(read)
                if request.first_alone and read.key == request.keys[0]:
                    read.rerank(chunkpool.URGENT)  # now on screen: its chunks first
            else:
                self._orphans.append(read)
                read.rerank(chunkpool.UNWANTED)
        self._settle_orphans()
        return keep

    def _settle_orphans(self) -> None:
        """Reads no longer wanted that have ended: the link meter hears of them (their
        bytes came over the link all the same), and their slabs are delivered (the view
        keeps them if they are still of use, e.g. after a scrub back)."""
        if not self._orphans:
            return
        still = []
        now = time.monotonic()
        for read in self._orphans:
            if now - read.started > ORPHAN_WAIT_S:
                self.link.ended(read.token)  # given up on (it may still end, unheard)
                read.rerank(chunkpool.DROPPED)
            elif read.outcome.done.is_set():
                value = read.outcome.value
                self.link.ended(read.token, getattr(value, "nbytes", None))
                if value is not None and read.outcome.error is None:
                    self.slabReady.emit(self.latest[0], value)
            else:
                still.append(read)
        self._orphans = still

    @Slot(object)
    def process(self, request: FetchRequest) -> None:
        """Read the request's slabs, up to ``request.parallel`` at once (started in the
        request's order: the one needed now first, then prefetch), each delivered when it
        is there. Over a slow or failing network one slab's read is mostly waiting (round
        trips, a retried chunk), so reading the next slabs meanwhile is what keeps a scrub
        ahead. A newer request takes over the reads it still wants, at once."""
        if self.stopping or self.latest[0] > request.generation:
            return  # superseded while queued: never started (the newer one takes over)
        active = self._adopt(request)
        if not request.keys:
            self.activity.emit(False, "")  # (an earlier request may have handed over)
            return
        self.activity.emit(True, "fetching")
        todo = [k for k in request.keys if all(r.key != k for r in active)]
        failed = False
        handed_over = False
        last_note = 0.0
        blocked_since: float | None = None
        try:
            while todo or active or self._orphans:
                if self.stopping:
                    return
                if self.latest[0] > request.generation:
                    # a newer request waits in the queue: it continues these reads
                    self._carried = active
                    handed_over = True
                    return
                # start what may start
                # A slab the view waits for is read first: only coarser slabs (a sixteenth
                # of its requests) start beside it, the network is its own.
                first = request.keys[0]
                waiting_for_first = (
                    request.first_alone
                    and not request.beside
                    and ((todo and todo[0] == first) or any(r.key == first for r in active))
                )
                limit = max(int(request.parallel), 1)
                heavy = sum(1 for r in active if r.key not in request.light)
                lights = len(active) - heavy
                i = 0
                while i < len(todo) and not failed:
                    key = todo[i]
                    if not self._wanted(request.generation, key):
                        todo.pop(i)
                        continue
                    if self._delivered.get(key, -1) >= request.generation:
                        todo.pop(i)  # delivered after this request was made
                        continue
                    if not (request.first_alone and key == first):
                        if key in request.light:
                            if lights >= LIGHT_PARALLEL:
                                i += 1  # full slabs after it may still start
                                continue
                        elif waiting_for_first or heavy >= limit:
                            # (while the view waits for the first, only coarser slabs
                            # start beside it: a sixteenth of its requests)
                            i += 1
                            continue
                    self._readers = [t for t in self._readers if t.is_alive()]
                    if len(self._readers) - len(active) >= MAX_PENDING_READS:
                        # Reads no request wants hold up this one: their chunks not yet
                        # asked for are dropped (served last, they might wait for long).
                        for orphan in self._orphans:
                            orphan.rerank(chunkpool.DROPPED)
                        if not active:
                            self.activity.emit(
                                True,
                                f"waiting: {len(self._readers)} earlier reads have not been "
                                "answered yet",
                            )
                        break
                    todo.pop(i)
                    # The user's fetch timeout bounds the whole wait for this slab, tries
                    # below included.
                    deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
                    rank = (
                        chunkpool.URGENT
                        if (request.first_alone and key == first) or key in request.light
                        else chunkpool.AHEAD
                    )
                    read = _Read(
                        key, self._start(key, request.source, rank), deadline, request.source, rank
                    )
                    active.append(read)
                    if key in request.light:
                        lights += 1  # (not measured: a slab read's time is a full one's)
                    else:
                        heavy += 1
                        read.token = self.link.started()
                if not active:
                    if failed or not todo:
                        if not self._orphans:
                            return
                        # reads no longer wanted: their slabs may still be of use
                        self._orphans[0].outcome.done.wait(POLL_S)
                        self._settle_orphans()
                        continue
                    # At the limit of pending reads (earlier ones a slow or hung server has
                    # not answered): wait for one to end, within the fetch timeout.
                    if blocked_since is None:
                        blocked_since = time.monotonic()
                    elif self.timeout_s and time.monotonic() - blocked_since > self.timeout_s:
                        self.slabFailed.emit(request.generation, todo[0], self._timeout_error())
                        return
                    time.sleep(0.1)
                    continue
                blocked_since = None
                active[0].outcome.done.wait(POLL_S)
                self._settle_orphans()
                now = time.monotonic()
                if now - last_note > 0.25:
                    last_note = now
                    if self._note_retries(3.0):
                        for r in active:
                            r.noted = True
                for read in list(active):
                    if not self._wanted(request.generation, read.key):
                        active.remove(read)  # superseded: left to finish on its own
                        self._orphans.append(read)
                        read.rerank(chunkpool.UNWANTED)
                        continue
                    if not read.outcome.done.is_set():
                        if read.deadline is not None and now > read.deadline:
                            if read.adopted and self.timeout_s:
                                # Started for an earlier request (while the server was
                                # down, say): this request's wait began when it took the
                                # read over, so it gets one read of its own first.
                                rank = read.rank
                                read.rerank(chunkpool.DROPPED)
                                read.rank = rank
                                read.outcome = self._start(read.key, request.source, rank)
                                read.deadline = now + self.timeout_s
                                read.adopted = False
                                continue
                            read.outcome.error = self._timeout_error()
                            read.rerank(chunkpool.DROPPED)  # its chunks not yet asked for
                        else:
                            continue
                    err = read.outcome.error
                    if (
                        isinstance(err, SourceUnavailableError)
                        and not isinstance(err, SourceTimeoutError)
                        and read.attempts < 3
                    ):
                        # A server error that survived cloud-files' retries (a bad moment
                        # for one chunk among many) gets two more tries before the user
                        # hears of it.
                        self.activity.emit(True, f"{err}; trying again")
                        read.outcome = self._start(read.key, request.source, read.rank)
                        read.attempts += 1
                        read.noted = True
                        continue
                    active.remove(read)
                    if not read.noted:  # it retried between two looks: still say so, once
                        read.noted = self._note_retries(now - read.started + POLL_S)
                    if err is not None:
                        self.link.ended(read.token)
                        failed = True  # no new reads; the ones under way are delivered
                        self.slabFailed.emit(request.generation, read.key, err)
                        if not isinstance(err, ImageryGuiError):
                            traceback.print_exception(err)
                        continue
                    slab = read.outcome.value
                    self.link.ended(read.token, getattr(slab, "nbytes", 0))
                    self._delivered[read.key] = self.latest[0]
                    self._delivered.move_to_end(read.key)
                    while len(self._delivered) > 64:
                        self._delivered.popitem(last=False)
                    self.slabReady.emit(request.generation, slab)
                    if request.first_alone and read.key == request.keys[0]:
                        # The slab the view waited for is there: the view asks again,
                        # planned with what this read measured, before more reads start
                        # (reads under way cannot be taken back). Those under way are
                        # carried over to that request.
                        self._carried = active
                        handed_over = True
                        return
        finally:
            if not self.stopping and not handed_over:
                self.activity.emit(False, "")
            if self.stopping:
                for read in active:
                    self.link.ended(read.token)
                    read.rerank(chunkpool.DROPPED)


@dataclass(slots=True)
class _Read:
    """A slab read under way in :meth:`FetchWorker.process`."""

    key: SlabKey
    outcome: Outcome
    deadline: float | None
    source: Any = None  # what it reads through
    rank: int = chunkpool.AHEAD  # its chunks' place in the read process's queue
    attempts: int = 1
    started: float = field(default_factory=time.monotonic)
    noted: bool = False  # the status bar was told of retries while it ran
    adopted: bool = False  # taken over from an earlier request, not yet read again for it
    token: int = 0  # its LinkMeter token

    def rerank(self, rank: int) -> None:
        """Serve its chunks not yet started by ``rank`` (sources that rank reads)."""
        if rank == self.rank:
            return
        self.rank = rank
        rerank = getattr(self.source, "rerank", None)
        if rerank is not None:
            rerank(self.outcome, rank)


class OutlineWorker(QObject):
    """Computes outline images (and, for big slices, the coloured overlay) for single
    slices; lives in its own thread. numpy's gathers release the GIL here."""

    done = Signal(int, object)  # generation, OverlayResult

    def __init__(self) -> None:
        super().__init__()
        self.latest = 0
        self.stopping = False

    @Slot(object)
    def process(self, job: OutlineJob) -> None:
        for item in job.items:
            if self.stopping or job.generation < self.latest:
                return
            outline = None
            index = item.index
            if job.geometry.outline and not item.outlined:
                index = outline = outline_display_banded(index, job.visible, job.geometry)
            rgba = None
            if item.rgba_key is not None and job.lut is not None:
                rgba = render.apply_lut(job.lut, index)
            if not self.stopping:
                self.done.emit(
                    job.generation, OverlayResult(item.outline_key, outline, item.rgba_key, rgba)
                )


#: Every worker thread not known to have finished, with its worker. A QThread destroyed while
#: it runs aborts the whole process (Qt's qFatal), so the threads have no Qt parent and are
#: held here, not by their handle: a handle that is dropped or garbage collected without
#: ``close()`` (or whose thread outlived the wait in ``close()``) stops its thread, and the
#: thread object lives on until it has finished. Pruned as new threads start; the rest are
#: stopped and waited for at exit.
_THREADS: dict[QThread, QObject] = {}


def _stop_thread(thread: QThread, worker: QObject) -> None:
    worker.stopping = True  # type: ignore[attr-defined]
    thread.quit()


def _prune_threads() -> None:
    for thread in [t for t in _THREADS if t.isFinished()]:
        del _THREADS[thread]


@atexit.register
def _stop_all_threads(wait_ms: int = 5000) -> None:
    for thread, worker in list(_THREADS.items()):
        _stop_thread(thread, worker)
    for thread in list(_THREADS):
        thread.wait(wait_ms)
    _prune_threads()


class _Threaded(QObject):
    """Owns a worker and its thread; ``close()`` stops both without hanging."""

    _submit = Signal(object)

    def __init__(
        self, worker: QObject, name: str, synchronous: bool, parent: QObject | None
    ) -> None:
        super().__init__(parent)
        self.worker = worker
        self.synchronous = synchronous
        self.generation = 0
        self.thread: QThread | None = None
        if not synchronous:
            _prune_threads()
            self.thread = QThread()  # no parent: see _THREADS
            _THREADS[self.thread] = worker
            weakref.finalize(self, _stop_thread, self.thread, worker)
            self.thread.setObjectName(name)
            worker.moveToThread(self.thread)
            # started is emitted in the new thread: a direct call lowers that thread.
            self.thread.started.connect(lower_this_thread, Qt.ConnectionType.DirectConnection)
            self._submit.connect(worker.process)  # queued: runs in the worker thread
            self.thread.start()

    def _send(self, request: Any) -> None:
        if self.synchronous:
            self.worker.process(request)
        else:
            self._submit.emit(request)

    def close(self, wait_ms: int = 5000) -> bool:
        """Stop the worker; True if its thread finished within ``wait_ms``."""
        self.worker.stopping = True
        if self.thread is None:
            return True
        self.thread.quit()
        return self.thread.wait(wait_ms)


class Fetcher(_Threaded):
    """GUI-side handle of the fetch worker."""

    def __init__(
        self,
        timeout_s: float | None = 10.0,
        synchronous: bool = False,
        parent: QObject | None = None,
    ) -> None:
        self.link = LinkMeter()  # what the reads measured (the display plans with it)
        super().__init__(
            FetchWorker(timeout_s, self.link), "imagery-gui-fetch", synchronous, parent
        )

    @property
    def signals(self) -> FetchWorker:
        return self.worker  # type: ignore[return-value]

    def request(
        self,
        keys: list[SlabKey],
        source: Any,
        first_alone: bool = False,
        parallel: int = MIN_PARALLEL,
        light: frozenset[SlabKey] = frozenset(),
        beside: bool = False,
    ) -> int:
        """Ask for slabs (in order of need) read through ``source``, up to ``parallel`` at
        once (and up to LIGHT_PARALLEL of the coarser ones in ``light`` beside them);
        supersedes every earlier request. ``first_alone``: the first is on screen now, so
        it is read before the others start (they would share its network), unless
        ``beside`` (see FetchRequest)."""
        self.generation += 1
        self.worker.latest = (self.generation, frozenset(keys))
        # (sent even without keys: the worker then lets go of the reads under way)
        self._send(
            FetchRequest(self.generation, tuple(keys), source, first_alone, parallel, light, beside)
        )
        return self.generation

    def set_timeout(self, seconds: float | None) -> None:
        self.worker.timeout_s = seconds


class Outliner(_Threaded):
    """GUI-side handle of the outline worker."""

    def __init__(self, synchronous: bool = False, parent: QObject | None = None) -> None:
        super().__init__(OutlineWorker(), "imagery-gui-outline", synchronous, parent)

    @property
    def signals(self) -> OutlineWorker:
        return self.worker  # type: ignore[return-value]

    def request(
        self,
        items: list[OverlayItem],
        visible: np.ndarray,
        geometry: render.Geometry,
        lut: np.ndarray | None = None,
    ) -> int:
        """Outline and/or colour these slices in order; supersedes earlier jobs."""
        self.generation += 1
        self.worker.latest = self.generation
        self._send(OutlineJob(self.generation, tuple(items), visible, geometry, lut))
        return self.generation
