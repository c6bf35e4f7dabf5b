"""One pool of chunk downloads for the read process, served most urgent slab first
(Qt-free).

cloud-volume reads a box's chunks with a new pool of threads per read, and the viewer runs
several slab reads at once: the one on screen and those read ahead. Each then gets an
equal share of the threads, the connections and, on a machine with few cores, the CPU that
decodes the chunks. Where reads beside each other slow each other down (two cores shared
by the viewer, the decoding and a busy link; a link whose bandwidth is the limit) every
slab under way arrives late together: with four 80-chunk slabs at 400 ms and 20% of
requests failing each took 3.5-5.9 s, against 2 s alone, and the slab the scrub needed
next came no sooner than the fourth.

Here every chunk job of every read goes to one pool of THREADS threads, served by the
rank of the read it belongs to and then in the order reads started (Neuroglancer orders
its chunk queue by priority the same way): the slab on screen first, then the slabs
ahead in the order they are needed. A slab's chunks are all in flight at once when the
pool has room, so a read alone is as fast as before; when it has not, the most urgent slab
is finished first instead of all of them late. A read no longer wanted is given the
lowest rank (:meth:`Ticket.rerank`): its chunks wait for the wanted ones.

:func:`install` puts :func:`schedule_jobs` in place of cloud-volume's and cloud-files'
schedulers in this process (the read process only: scripts and batch keep theirs). A read
is ranked by running it inside :func:`ranked`; chunk jobs started by a job run inline
(a pool thread never waits for the pool).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: Threads of the pool: every chunk of a 1024x1024 view over 128x128 chunks (64 image and
#: 16 segmentation chunks a slab) in flight at once, with room for the next slab's.
THREADS = 128
#: Ranks: the slab the view waits for, slabs read ahead, slabs no longer wanted (their
#: slabs kept if they arrive), reads given up on (their chunks not yet started dropped).
URGENT, AHEAD, UNWANTED, DROPPED = 0, 1, 2, 3
#: A job running this long (a request to a server that hangs, retried) no longer holds
#: its place: the pool starts another thread for the jobs waiting, up to MAX_THREADS, so
#: reads given up on over a hung server never keep the next ones waiting.
STUCK_S = 1.0
MAX_THREADS = 4 * THREADS


class ReadCancelled(Exception):
    """The read was given up on (rank DROPPED) before all its chunks were read."""


class Ticket:
    """A read's place in the queue: its rank, then the order reads started."""

    __slots__ = ("_pool", "rank", "seq")

    def __init__(self, pool: ChunkPool, rank: int, seq: int) -> None:
        self._pool = pool
        self.rank = rank
        self.seq = seq

    def rerank(self, rank: int) -> None:
        """Serve this read's chunks not yet started by ``rank`` from now on."""
        self._pool.rerank(self, rank)

    def order(self) -> tuple[int, int]:
        return self.rank, self.seq


_TICKET: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
    "imagery_gui_chunk_ticket", default=None
)
_IN_POOL = threading.local()


class _Call:
    """The jobs of one ``schedule_jobs`` call: results, the first error, what remains."""

    __slots__ = ("count_return", "done", "error", "left", "progress", "results", "ticket")

    def __init__(self, ticket: Ticket, n: int, progress: Any, count_return: bool) -> None:
        self.ticket = ticket
        self.left = n
        self.results: list[Any] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.progress = progress if hasattr(progress, "update") else None
        self.count_return = count_return
        if n == 0:
            self.done.set()


class ChunkPool:
    """A fixed set of daemon threads running queued jobs by their ticket's order."""

    def __init__(self, threads: int = THREADS) -> None:
        if threads < 1:
            raise ValueError(f"a chunk pool needs at least one thread, got {threads}")
        self.threads = threads
        self._cond = threading.Condition()
        # ticket -> its queued jobs (fn, call); tickets without jobs are dropped
        self._queues: dict[Ticket, deque[tuple[Callable[[], Any], _Call]]] = {}
        self._seq = itertools.count()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._running: dict[int, float] = {}  # worker thread id -> when its job started
        self.started = 0  # jobs started, for tests and benchmarks

    def ticket(self, rank: int = AHEAD) -> Ticket:
        return Ticket(self, int(rank), next(self._seq))

    def rerank(self, ticket: Ticket, rank: int) -> None:
        with self._cond:
            ticket.rank = int(rank)
            if rank == DROPPED:
                for _fn, call in list(self._queues.get(ticket, ())):
                    if call.error is None:
                        call.error = ReadCancelled("the read was given up on")
                    self._drop(call)

    def queued(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def run(
        self,
        fns: Iterable[Callable[[], Any]],
        ticket: Ticket,
        progress: Any = None,
        count_return: bool = False,
    ) -> list[Any]:
        """Run ``fns`` in the pool under ``ticket``; their results (in the order they
        ended). The first error is raised once the jobs already running have ended; the
        call's jobs not yet started are dropped then."""
        jobs = list(fns)
        call = _Call(ticket, len(jobs), progress, count_return)
        if jobs:
            with self._cond:
                if ticket.rank == DROPPED:
                    raise ReadCancelled("the read was given up on")
                queue = self._queues.setdefault(ticket, deque())
                queue.extend((fn, call) for fn in jobs)
                self._spawn(len(jobs))
                self._cond.notify(len(jobs))
        while not call.done.wait(STUCK_S / 2):
            with self._cond:  # jobs of others stuck on a hung server: more threads
                if call.ticket in self._queues:
                    self._spawn(self.queued_for(call))
        if call.error is not None:
            raise call.error
        return call.results

    def queued_for(self, call: _Call) -> int:
        """The call's jobs waiting (lock held)."""
        return sum(1 for job in self._queues.get(call.ticket, ()) if job[1] is call)

    def _spawn(self, wanted: int) -> None:
        """Start threads so that ``wanted`` more jobs can run: up to ``threads``, not
        counting threads whose job has run for STUCK_S or more, and MAX_THREADS in all
        (lock held)."""
        now = time.monotonic()
        stuck = sum(1 for t in self._running.values() if now - t >= STUCK_S)
        room = min(self.threads + stuck, max(MAX_THREADS, self.threads)) - len(self._workers)
        short = min(wanted - self._idle, room)
        for _ in range(max(short, 0)):
            worker = threading.Thread(target=self._work, name="imagery-gui-chunk", daemon=True)
            self._workers.append(worker)
            self._idle += 1
            worker.start()

    def _next(self) -> tuple[Callable[[], Any], _Call]:
        """The first job of the ticket first in order (call with the lock held)."""
        while True:
            best = min(self._queues, key=Ticket.order, default=None)
            if best is None:
                self._cond.wait()
                continue
            queue = self._queues[best]
            fn, call = queue.popleft()
            if not queue:
                del self._queues[best]
            return fn, call

    def _drop(self, call: _Call) -> None:
        """Take the call's jobs not yet started off the queue (lock held)."""
        queue = self._queues.get(call.ticket)
        if queue is None:
            return
        kept = deque(job for job in queue if job[1] is not call)
        call.left -= len(queue) - len(kept)
        if call.left == 0:
            call.done.set()
        if kept:
            self._queues[call.ticket] = kept
        else:
            del self._queues[call.ticket]

    def _finish_one(self, call: _Call) -> None:
        call.left -= 1
        if call.left == 0:
            call.done.set()

    def _work(self) -> None:
        _IN_POOL.active = True
        me = threading.get_ident()
        while True:
            with self._cond:
                fn, call = self._next()
                self._idle -= 1
                self.started += 1
                self._running[me] = time.monotonic()
            error: BaseException | None = None
            result: Any = None
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
                error = exc
            with self._cond:
                self._idle += 1
                del self._running[me]
                if error is not None:
                    if call.error is None:
                        call.error = error
                    self._drop(call)  # the read fails: its other chunks are not needed
                else:
                    call.results.append(result)
                    if call.progress is not None:
                        with contextlib.suppress(Exception):
                            call.progress.update(result if call.count_return else 1)
                self._finish_one(call)


_pool: ChunkPool | None = None
_pool_lock = threading.Lock()


def pool() -> ChunkPool:
    """This process's pool (made on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ChunkPool()
        return _pool


@contextlib.contextmanager
def ranked(rank: int = AHEAD) -> Iterator[Ticket]:
    """Chunk jobs scheduled inside the block (in this thread, and in threads started by
    :func:`~imagery_gui.model.dataset.start_thread` from it) run under one new ticket."""
    ticket = pool().ticket(rank)
    token = _TICKET.set(ticket)
    try:
        yield ticket
    finally:
        _TICKET.reset(token)


def schedule_jobs(
    fns: Iterable[Callable[[], Any]],
    concurrency: int = 0,
    progress: Any = None,
    total: int | None = None,
    green: Any = None,
    count_return: bool = False,
) -> list[Any]:
    """cloud-volume's and cloud-files' ``schedule_jobs``, served by the pool. As theirs,
    ``concurrency`` 0 (local files, chunks all in memory) runs the jobs here, one after
    the other; so do jobs scheduled from a pool thread (a chunk read reading its file),
    and calls outside any :func:`ranked` block get a ticket of their own (rank AHEAD)."""
    if concurrency < 0:
        raise ValueError(f"concurrency value cannot be negative: {concurrency}")
    if concurrency == 0 or getattr(_IN_POOL, "active", False):
        results = []
        for fn in fns:
            res = fn()
            if hasattr(progress, "update"):
                progress.update(res if count_return else 1)
            results.append(res)
        return results
    ticket = _TICKET.get()
    if ticket is None:
        ticket = pool().ticket(AHEAD)
    return pool().run(fns, ticket, progress, count_return)


_installed = False


def install(threads: int = THREADS) -> None:
    """Route cloud-volume's chunk reads (unsharded and sharded) and cloud-files' multi-file
    reads in this process through the pool, of ``threads`` threads (idempotent: the first
    call's pool stays)."""
    global _installed, _pool
    with _pool_lock:
        if _installed:
            return
        if _pool is None:
            _pool = ChunkPool(threads)
        import cloudfiles.cloudfiles as cf_module
        import cloudvolume.datasource.precomputed.image.rx as rx

        rx.schedule_jobs = schedule_jobs
        cf_module.schedule_jobs = schedule_jobs  # type: ignore[assignment]
        _installed = True
