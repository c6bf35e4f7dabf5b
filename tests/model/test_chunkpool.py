"""The read process's one pool of chunk downloads: jobs served by the rank of their read and
then in the order reads started, a failed read's other chunks dropped, nested scheduling
inline; and in the real read process over loopback HTTP, the slab the view waits for
arrives before slabs read ahead that started earlier."""

from __future__ import annotations

import threading
import time

import pytest

from imagery_gui.model import chunkpool, fetchproc
from imagery_gui.model.chunkpool import AHEAD, UNWANTED, URGENT, ChunkPool
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.view import fetch_slab
from tests.helpers.http_server import LoopbackServer
from tests.model.test_fetchproc import _key, _same


class _Gate:
    """A job that holds the pool's only thread until released."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.running.set()
        assert self.release.wait(10)
        return "gate"


def _submit(pool: ChunkPool, ticket, names, ran, lock) -> threading.Thread:
    def job(name):
        def run():
            with lock:
                ran.append(name)
            return name

        return run

    t = threading.Thread(target=pool.run, args=([job(n) for n in names], ticket))
    t.start()
    return t


def _wait_queued(pool: ChunkPool, n: int) -> None:
    deadline = time.monotonic() + 5
    while pool.queued() < n:
        assert time.monotonic() < deadline, pool.queued()
        time.sleep(0.005)


def _held_pool() -> tuple[ChunkPool, _Gate, threading.Thread]:
    """A pool of one thread, held by a gate job (release: ``gate.release.set()``)."""
    pool = ChunkPool(1)
    gate = _Gate()
    holder = threading.Thread(target=pool.run, args=([gate], pool.ticket(AHEAD)))
    holder.start()
    assert gate.running.wait(5)
    return pool, gate, holder


def test_jobs_run_by_rank_then_in_the_order_reads_started():
    pool, gate, holder = _held_pool()
    ran: list[str] = []
    lock = threading.Lock()
    first = pool.ticket(AHEAD)  # started first, read ahead
    second = pool.ticket(AHEAD)
    urgent = pool.ticket(URGENT)  # started last, on screen now
    threads = [
        _submit(pool, second, ["b1", "b2"], ran, lock),
        _submit(pool, first, ["a1", "a2"], ran, lock),
        _submit(pool, urgent, ["u1", "u2"], ran, lock),
    ]
    _wait_queued(pool, 6)
    gate.release.set()
    for t in [holder, *threads]:
        t.join(5)
    assert ran == ["u1", "u2", "a1", "a2", "b1", "b2"]


def test_a_read_no_longer_wanted_waits_for_the_others():
    pool, gate, holder = _held_pool()
    ran: list[str] = []
    lock = threading.Lock()
    old, new = pool.ticket(AHEAD), pool.ticket(AHEAD)
    threads = [
        _submit(pool, old, ["o1", "o2"], ran, lock),
        _submit(pool, new, ["n1"], ran, lock),
    ]
    _wait_queued(pool, 3)
    old.rerank(UNWANTED)
    gate.release.set()
    for t in [holder, *threads]:
        t.join(5)
    assert ran == ["n1", "o1", "o2"]


def test_a_failed_job_fails_its_call_and_drops_the_rest_of_it():
    pool = ChunkPool(1)
    ran: list[int] = []

    def fail():
        raise KeyError("chunk 3")

    jobs = [lambda: ran.append(1), fail] + [lambda i=i: ran.append(i) for i in range(10, 20)]
    with pytest.raises(KeyError, match="chunk 3"):
        pool.run(jobs, pool.ticket(AHEAD))
    assert ran == [1]  # nothing after the failure ran
    assert pool.queued() == 0
    assert pool.run([lambda: 5, lambda: 6], pool.ticket(AHEAD)) in ([5, 6], [6, 5])


def test_a_read_given_up_on_drops_its_waiting_chunks_and_schedules_no_more():
    pool, gate, holder = _held_pool()
    ran: list[str] = []
    lock = threading.Lock()
    given_up = pool.ticket(AHEAD)
    errors: list[BaseException] = []

    def read():
        try:
            pool.run([lambda: ran.append("x")] * 3, given_up)
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    t = threading.Thread(target=read)
    t.start()
    _wait_queued(pool, 3)
    given_up.rerank(chunkpool.DROPPED)
    t.join(5)  # ended at once: nothing of it was running
    assert not t.is_alive() and isinstance(errors[0], chunkpool.ReadCancelled)
    assert pool.queued() == 0
    with pytest.raises(chunkpool.ReadCancelled):
        pool.run([lambda: ran.append("late")], given_up)
    other = _submit(pool, pool.ticket(AHEAD), ["o"], ran, lock)
    gate.release.set()
    for th in (holder, other):
        th.join(5)
    assert ran == ["o"]


def test_jobs_stuck_on_a_hung_server_do_not_hold_up_the_next_read(monkeypatch):
    """All threads waiting on requests that never end (a server that hangs): after
    STUCK_S the pool starts another thread for a new read's chunks."""
    monkeypatch.setattr(chunkpool, "STUCK_S", 0.2)
    pool = ChunkPool(2)
    gates = [_Gate(), _Gate()]
    holders = [threading.Thread(target=pool.run, args=([g], pool.ticket(AHEAD))) for g in gates]
    for h in holders:
        h.start()
    assert all(g.running.wait(5) for g in gates)
    assert pool.run([lambda: "next"], pool.ticket(URGENT)) == ["next"]
    assert all(h.is_alive() for h in holders)  # done while both threads were still held
    for g in gates:
        g.release.set()
    for h in holders:
        h.join(5)
    assert len(pool._workers) == 3


def test_jobs_scheduled_from_a_job_run_inline_and_concurrency_zero_runs_here(monkeypatch):
    pool = ChunkPool(1)  # a nested call waiting for the pool would wait forever
    monkeypatch.setattr(chunkpool, "_pool", pool)
    here = threading.get_ident()
    inner_threads: list[int] = []

    def outer():
        return sum(
            chunkpool.schedule_jobs(
                [lambda: inner_threads.append(threading.get_ident()) or 1] * 3, concurrency=20
            )
        )

    with chunkpool.ranked(URGENT):
        assert chunkpool.schedule_jobs([outer, outer], concurrency=20) == [3, 3]
    assert len(set(inner_threads)) == 1 and here not in inner_threads
    assert chunkpool.schedule_jobs([threading.get_ident], concurrency=0) == [here]
    with pytest.raises(ValueError):
        chunkpool.schedule_jobs([], concurrency=-1)
    with pytest.raises(ValueError):
        ChunkPool(0)


def _fetch_in_order(reader, keys_and_ranks):
    """Start the reads in this order, a moment apart; when each one ended."""
    ended: dict[int, float] = {}
    errors: list[BaseException] = []

    def one(i, key, rank):
        try:
            reader.fetch(key, rank)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        ended[i] = time.monotonic()

    threads = []
    for i, (key, rank) in enumerate(keys_and_ranks):
        t = threading.Thread(target=one, args=(i, key, rank))
        t.start()
        threads.append(t)
        time.sleep(0.05)
    for t in threads:
        t.join(60)
    assert not errors, errors
    return ended


@pytest.mark.parametrize("last_rank", [URGENT, AHEAD])
def test_in_the_read_process_the_slab_on_screen_comes_first(synthetic_big, last_rank):
    """Two slabs read ahead, then the one the view waits for: with a pool of 2 threads
    and 40 ms a request, the urgent one ends first, though started last; ranked as the
    others, it ends last (what every read got before: an equal share)."""
    reader = fetchproc.FetchProcess(fetchproc.ChildConfig(chunk_threads=2))
    try:
        with LoopbackServer(synthetic_big.image_path.parent, latency=0.04) as srv:
            ds = Dataset(srv.source("image"), srv.source("segmentation")).open()
            reader.set_dataset(1, ds.replica_args())
            keys = [
                _key(ds, c, 1, half_nm=300.0)
                for c in ([2100, 4080, 101], [2300, 4240, 101], [2100, 4240, 109])
            ]
            assert len(set(keys)) == 3
            ended = _fetch_in_order(
                reader, [(keys[0], AHEAD), (keys[1], AHEAD), (keys[2], last_rank)]
            )
            if last_rank == URGENT:
                assert ended[2] < ended[0] < ended[1]
            else:
                assert ended[0] < ended[1] < ended[2]
            # and what came through the pool is what reading here gives
            _same(reader.fetch(keys[2], URGENT), fetch_slab(ds, keys[2]))
    finally:
        reader.close()
