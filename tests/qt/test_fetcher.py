"""The background fetcher: latest request wins, stale results are dropped, closing is safe.

A fake source gated on ``threading.Event`` makes every ordering deterministic: a read only
finishes when the test opens its gate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from imagery_gui.model.errors import SourceNotFoundError
from imagery_gui.model.view import Region, SlabData, SlabKey
from imagery_gui.qt.workers import Fetcher

REGION = Region(0, 0, (0, 0), (8, 8), (4.0, 4.0, 40.0))


def key(z: int) -> SlabKey:
    return SlabKey(REGION, z, z + 1)


class GatedSource:
    """load(key) blocks until its gate is opened; records every call."""

    def __init__(self) -> None:
        self.gates: dict[SlabKey, threading.Event] = {}
        self.started: list[SlabKey] = []
        self.lock = threading.Lock()

    def gate(self, k: SlabKey) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(k, threading.Event())

    def open(self, k: SlabKey) -> None:
        self.gate(k).set()

    def load(self, k: SlabKey) -> SlabData:
        with self.lock:
            self.started.append(k)
        self.gate(k).wait(30)
        return SlabData(k, np.full((1, 8, 8), k.z0, np.uint8), None)


@pytest.fixture
def make_fetcher():
    made = []

    def make(src, *args, **kw):
        f = Fetcher(*args, **kw)
        real = f.request
        f.request = lambda keys: real(keys, src)  # every request carries its source
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


@pytest.fixture
def source():
    src = GatedSource()
    yield src
    for g in list(src.gates.values()):
        g.set()  # never leave a reader thread blocked


def test_latest_request_wins_and_queued_ones_never_start(qtbot, source, make_fetcher):
    fetcher = make_fetcher(source, timeout_s=None)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append((g, s.key.z0)))
    fetcher.request([key(0)])
    qtbot.waitUntil(lambda: key(0) in source.started)
    for z in range(1, 6):  # queued behind the running read, each superseding the last
        fetcher.request([key(z)])
    source.open(key(5))
    qtbot.waitUntil(lambda: any(z == 5 for _, z in got), timeout=5000)
    source.open(key(0))
    qtbot.wait(100)
    assert key(0) in source.started and key(5) in source.started
    assert not any(key(z) in source.started for z in (1, 2, 3, 4)), source.started
    # the superseded read's slab still comes (its bytes were paid for), after the newest
    # one; the view keeps it only if it is of use there
    qtbot.waitUntil(lambda: [z for _, z in got] == [5, 0], timeout=5000)
    assert fetcher.close()


def test_a_still_wanted_read_is_kept(qtbot, source, make_fetcher):
    """Re-requesting a slab that is already being read does not start it again."""
    fetcher = make_fetcher(source, timeout_s=None)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append(s.key.z0))
    fetcher.request([key(3)])
    qtbot.waitUntil(lambda: key(3) in source.started)
    fetcher.request([key(3), key(4)])
    source.open(key(3))
    source.open(key(4))
    qtbot.waitUntil(lambda: got == [3, 4], timeout=5000)
    assert source.started.count(key(3)) == 1
    # Asked for again later (say, after panning back), it is read again.
    fetcher.request([key(3)])
    qtbot.waitUntil(lambda: got == [3, 4, 3], timeout=5000)
    assert fetcher.close()


def test_prefetch_order_and_results_carry_generation(qtbot, source, make_fetcher):
    fetcher = make_fetcher(source, timeout_s=None)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append((g, s.key.z0)))
    for k in (key(1), key(2), key(0)):
        source.open(k)
    gen = fetcher.request([key(1), key(2), key(0)])
    qtbot.waitUntil(lambda: len(got) == 3, timeout=5000)
    assert source.started == [key(1), key(2), key(0)]  # started in the request's order
    assert sorted(got) == [(gen, 0), (gen, 1), (gen, 2)]  # each delivered once, when there
    assert fetcher.close()


def test_slabs_are_read_several_at_once_and_each_delivered_when_there(qtbot, source, make_fetcher):
    from imagery_gui.model.linkmeter import MIN_PARALLEL as PARALLEL_SLABS

    fetcher = make_fetcher(source, timeout_s=None)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append(s.key.z0))
    keys = [key(z) for z in range(PARALLEL_SLABS + 2)]
    fetcher.request(keys)
    # the first PARALLEL_SLABS are under way together, none finished
    qtbot.waitUntil(lambda: len(source.started) == PARALLEL_SLABS, timeout=5000)
    qtbot.wait(100)
    assert source.started == keys[:PARALLEL_SLABS] and got == []
    source.open(keys[1])  # a later one first: delivered at once, and the next one starts
    qtbot.waitUntil(lambda: got == [1], timeout=5000)
    qtbot.waitUntil(lambda: len(source.started) == PARALLEL_SLABS + 1, timeout=5000)
    assert source.started[-1] == keys[PARALLEL_SLABS]
    for k in keys:
        source.open(k)
    qtbot.waitUntil(lambda: sorted(got) == list(range(len(keys))), timeout=5000)
    assert fetcher.close()


def test_close_during_a_read_does_not_hang(qtbot, source, make_fetcher):
    fetcher = make_fetcher(source, timeout_s=None)
    fetcher.request([key(7)])
    qtbot.waitUntil(lambda: key(7) in source.started)
    assert fetcher.close(wait_ms=3000)  # the thread stopped although the read never ended
    assert not fetcher.thread.isRunning()


def test_timeout_reports_an_error(qtbot, source, make_fetcher):
    fetcher = make_fetcher(source, timeout_s=0.2)
    failures = []
    fetcher.signals.slabFailed.connect(lambda g, k, e: failures.append((k, e)))
    fetcher.request([key(9)])
    qtbot.waitUntil(lambda: bool(failures), timeout=5000)
    k, err = failures[0]
    assert k == key(9) and "within 0.2 s" in str(err)
    assert fetcher.close()


def test_errors_are_reported_not_raised(qtbot, make_fetcher):
    class Broken:
        def load(self, k):
            raise SourceNotFoundError("no such layer")

    fetcher = make_fetcher(Broken(), timeout_s=None)
    failures = []
    fetcher.signals.slabFailed.connect(lambda g, k, e: failures.append(e))
    fetcher.request([key(1)])
    qtbot.waitUntil(lambda: bool(failures), timeout=5000)
    assert isinstance(failures[0], SourceNotFoundError)
    assert fetcher.close()


def test_synchronous_mode_runs_inline(qtbot, source, make_fetcher):
    fetcher = make_fetcher(source, timeout_s=None, synchronous=True)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append(s.key.z0))
    source.open(key(2))
    fetcher.request([key(2)])
    assert got == [2]  # delivered before request() returned
    assert fetcher.thread is None


def test_closing_the_window_during_a_fetch(qtbot, settings, demo):
    """The window closes promptly while its fetcher is blocked in a read."""
    from imagery_gui.app import create_window
    from tests.qt.conftest import open_and_wait

    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.show()
    open_and_wait(qtbot, win, demo.image_source, demo.segmentation_source, list(demo.center))
    gate = threading.Event()
    real = win.display._source

    class Slow:  # the display's read source, held up until the gate opens
        def __init__(self, inner):
            self.inner = inner

        def load(self, k):
            gate.wait(30)
            return self.inner.load(k)

    win.display._source = lambda: Slow(real())
    win.display.cache.clear()
    win.step_z(3)
    qtbot.waitUntil(lambda: win.busy.isVisible())
    win.close()
    assert not win.display.fetcher.thread.isRunning()
    assert not win.display.outliner.thread.isRunning()
    gate.set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_worker_threads_run_at_lower_cpu_priority(qtbot):
    from imagery_gui.qt.workers import WORKER_NICE, Outliner

    fetcher = Fetcher(timeout_s=1.0, synchronous=False)
    outliner = Outliner(synchronous=False)

    def nice_of(prefix):
        for tid in os.listdir("/proc/self/task"):
            try:  # a thread of another test may end between listdir and open
                with open(f"/proc/self/task/{tid}/comm") as fh:
                    if fh.read().startswith(prefix):
                        return os.getpriority(os.PRIO_PROCESS, int(tid))
            except (FileNotFoundError, ProcessLookupError):
                continue
        return None

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())  # the GUI thread's
    want = max(base, WORKER_NICE)
    try:
        qtbot.waitUntil(lambda: nice_of("imagery-gui-out") == want, timeout=5000)
        qtbot.waitUntil(lambda: nice_of("imagery-gui-fet") == want, timeout=5000)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # unchanged
    finally:
        fetcher.close()
        outliner.close()


def test_a_worker_handle_dropped_while_its_thread_runs_does_not_abort_the_process():
    """Qt aborts the whole process when a QThread is destroyed while it runs. A fetcher or
    outliner that is garbage collected without close() (a window torn down by an error, or
    a thread that outlived the wait in close()) must stop its thread instead; the process
    goes on and exits 0. Run in a child process, since the failure is an abort."""
    script = textwrap.dedent(
        """
        import gc
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from imagery_gui.qt import workers
        for make in (lambda: workers.Fetcher(timeout_s=1.0), workers.Outliner):
            handle = make()
            thread = handle.thread
            assert thread.isRunning()
            del handle
            gc.collect()
            assert thread.wait(5000), "the dropped handle's thread did not stop"
        closed = workers.Fetcher(timeout_s=1.0)
        closed.close()
        del closed
        gc.collect()
        live = workers.Fetcher(timeout_s=1.0)  # still running at exit: stopped by atexit
        print("survived")
        """
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "survived" in proc.stdout
    assert "Destroyed while thread" not in proc.stderr


def test_the_gui_thread_outline_estimate_learns_from_slow_outlines(qtbot, monkeypatch):
    """An outline that went over the budget in the GUI thread makes later estimates larger
    by how far it was off (so similar ones go to the worker), by at most
    OUTLINE_SCALE_STEP at a time; one within the budget changes nothing."""
    from imagery_gui.model import render
    from imagery_gui.qt import display as display_mod
    from imagery_gui.qt.canvas import SliceCanvas

    canvas = SliceCanvas()
    qtbot.addWidget(canvas)
    display = display_mod.SliceDisplay(canvas, cache_bytes=64 << 20, synchronous=True)
    display.set_geometry(render.Geometry(outline=True, width=2, side="in"))
    local = np.random.default_rng(0).integers(0, 50, (256, 256)).astype(np.uint32)
    visible = np.ones(50, dtype=bool)
    first = display._outline_estimate_ms(visible, local.size)
    monkeypatch.setattr(display_mod, "OUTLINE_GUI_MS", float("inf"))  # within any budget
    display._outline_now(local, visible, estimate_ms=first / 1e4)
    assert display._outline_estimate_ms(visible, local.size) == pytest.approx(first)
    monkeypatch.setattr(display_mod, "OUTLINE_GUI_MS", 0.0)  # over it, and far off
    display._outline_now(local, visible, estimate_ms=first / 1e4)
    assert display._outline_estimate_ms(visible, local.size) == pytest.approx(
        first * display_mod.OUTLINE_SCALE_STEP
    )
    display.set_geometry(render.Geometry(outline=True, width=2, side="out"))
    assert display._outline_estimate_ms(visible, local.size) == float("inf")  # 50 segments
    display.close()


def test_a_slab_on_screen_now_is_read_alone_then_the_prefetch_together(qtbot, source, make_fetcher):
    fetcher = make_fetcher(source, timeout_s=None)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append(s.key.z0))
    keys = [key(5), key(6), key(7)]
    Fetcher.request(fetcher, keys, source, first_alone=True)
    qtbot.waitUntil(lambda: source.started == [key(5)], timeout=5000)
    qtbot.wait(150)
    assert source.started == [key(5)]  # the prefetch waits for it
    source.open(key(5))
    qtbot.waitUntil(lambda: got == [5], timeout=5000)
    # then it stops: the view asks again, planned with what that read measured
    qtbot.wait(150)
    assert source.started == [key(5)]
    Fetcher.request(fetcher, keys[1:], source)
    qtbot.waitUntil(lambda: set(source.started) == set(keys), timeout=5000)
    source.open(key(6))
    source.open(key(7))
    qtbot.waitUntil(lambda: sorted(got) == [5, 6, 7], timeout=5000)
    assert fetcher.close()


def test_over_a_link_waiting_on_round_trips_the_prefetch_starts_beside_the_first(
    qtbot, source, make_fetcher
):
    """``beside``: the slabs ahead start with the one on screen (up to ``parallel``), not
    a whole read later; the fetcher still hands over once the first is there."""
    fetcher = make_fetcher(source, timeout_s=None)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append(s.key.z0))
    keys = [key(5), key(6), key(7), key(8)]
    Fetcher.request(fetcher, keys, source, first_alone=True, parallel=3, beside=True)
    qtbot.waitUntil(lambda: len(source.started) == 3, timeout=5000)
    qtbot.wait(150)
    assert source.started == keys[:3]  # the first, then two ahead: parallel 3
    source.open(key(6))  # one ahead ends first: delivered, and the fourth starts
    qtbot.waitUntil(lambda: got == [6] and key(8) in source.started, timeout=5000)
    source.open(key(5))
    qtbot.waitUntil(lambda: got == [6, 5], timeout=5000)
    # the first is there: the view asks again; the reads under way are carried over
    Fetcher.request(fetcher, keys[2:], source, parallel=3)
    source.open(key(7))
    source.open(key(8))
    qtbot.waitUntil(lambda: sorted(got) == [5, 6, 7, 8], timeout=5000)
    assert sorted(k.z0 for k in source.started) == [5, 6, 7, 8]  # each read once
    assert fetcher.close()


COARSE = Region(2, 2, (0, 0), (2, 2), (16.0, 16.0, 40.0))


def coarse(z: int) -> SlabKey:
    return SlabKey(COARSE, z, z + 1)


def test_coarser_slabs_are_read_beside_full_ones_and_not_measured(qtbot, source, make_fetcher):
    """The coarser slabs of a request's ``light`` lane start beside the full slab the view
    waits for and beside full reads at their limit (a slow full read never holds up a
    scrub's fallback), up to LIGHT_PARALLEL at once; the link meter times full reads only."""
    from imagery_gui.qt.workers import LIGHT_PARALLEL

    fetcher = make_fetcher(source, timeout_s=None)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append(s.key))
    light = [coarse(z) for z in range(LIGHT_PARALLEL + 1)]
    keys = [key(0), key(1), *light]
    Fetcher.request(fetcher, keys, source, first_alone=True, parallel=1, light=frozenset(light))
    # the full slab on screen, and LIGHT_PARALLEL coarser ones beside it; not the next full
    qtbot.waitUntil(lambda: len(source.started) == 1 + LIGHT_PARALLEL, timeout=5000)
    qtbot.wait(150)
    assert source.started == [key(0), *light[:LIGHT_PARALLEL]]
    source.open(light[0])  # a coarser one ends: the last one starts, the full one still not
    qtbot.waitUntil(lambda: light[-1] in source.started, timeout=5000)
    qtbot.wait(100)
    assert key(1) not in source.started
    for k in light[1:]:
        source.open(k)
    qtbot.waitUntil(lambda: len(got) == len(light), timeout=5000)
    assert fetcher.link.snapshot().reads == 0  # coarser reads are not slab reads' times
    source.open(key(0))
    qtbot.waitUntil(lambda: key(0) in got, timeout=5000)
    assert fetcher.link.snapshot().reads == 1
    # the view asks again: the next full slab (parallel 1, so alone) and a coarser one
    # beside it although the full lane is at its limit
    Fetcher.request(
        fetcher, [key(1), key(2), coarse(9)], source, parallel=1, light=frozenset([coarse(9)])
    )
    qtbot.waitUntil(lambda: coarse(9) in source.started, timeout=5000)
    qtbot.wait(100)
    assert key(1) in source.started and key(2) not in source.started
    for k in (key(1), key(2), coarse(9)):
        source.open(k)
    qtbot.waitUntil(lambda: key(2) in got and coarse(9) in got, timeout=5000)
    assert fetcher.close()


def test_a_newer_request_takes_over_the_reads_it_still_wants(qtbot, source, make_fetcher):
    """Reads under way are not started again by a newer request that wants them; those
    it does not want still end, and their slabs are delivered all the same."""
    fetcher = make_fetcher(source, timeout_s=None)
    got = []
    fetcher.signals.slabReady.connect(lambda g, s: got.append(s.key.z0))
    Fetcher.request(fetcher, [key(1), key(2), key(3)], source)
    qtbot.waitUntil(lambda: len(source.started) == 3, timeout=5000)
    Fetcher.request(fetcher, [key(2), key(4)], source)  # 1 and 3 no longer wanted
    qtbot.waitUntil(lambda: len(source.started) == 4, timeout=5000)
    qtbot.wait(150)
    assert source.started == [key(1), key(2), key(3), key(4)]  # 2 was not read again
    for z in (1, 2, 3, 4):
        source.open(key(z))
    qtbot.waitUntil(lambda: sorted(got) == [1, 2, 3, 4], timeout=5000)
    assert fetcher.close()


def test_waiting_behind_unanswered_reads_still_ends_within_the_fetch_timeout(
    qtbot, source, make_fetcher
):
    from imagery_gui.model.errors import SourceTimeoutError
    from imagery_gui.qt.workers import MAX_PENDING_READS

    fetcher = make_fetcher(source, timeout_s=0.5)
    failed = []
    fetcher.signals.slabFailed.connect(lambda g, k, e: failed.append((k, e)))
    for z in range(MAX_PENDING_READS):  # reads a hung server never answers, each given up
        fetcher.request([key(z)])
        qtbot.waitUntil(lambda z=z: key(z) in source.started, timeout=5000)
    fetcher.request([key(99)])  # no reader may start now: all four still wait
    qtbot.waitUntil(lambda: bool(failed), timeout=10000)
    k, err = failed[0]
    assert k == key(99) and isinstance(err, SourceTimeoutError)
    assert key(99) not in source.started
    assert fetcher.close()


class RankedSource(GatedSource):
    """A source that ranks its reads, as display.ReadSource does for the read process:
    records each read's rank and every rerank of it."""

    def __init__(self) -> None:
        super().__init__()
        self.ranks: dict[SlabKey, list[int]] = {}
        self.tags: dict[int, SlabKey] = {}

    def load(self, k: SlabKey, rank: int = 1, tag=None) -> SlabData:
        with self.lock:
            self.ranks.setdefault(k, []).append(rank)
            self.tags[id(tag)] = k
        return super().load(k)

    def rerank(self, tag, rank: int) -> None:
        with self.lock:
            self.ranks[self.tags[id(tag)]].append(rank)


def test_reads_are_ranked_when_started_and_when_no_longer_wanted(qtbot, make_fetcher):
    from imagery_gui.model.chunkpool import AHEAD, DROPPED, UNWANTED, URGENT
    from imagery_gui.qt.workers import MAX_PENDING_READS

    src = RankedSource()
    fetcher = Fetcher(timeout_s=None)
    try:
        # the slab on screen is read first and urgent; when it is there, the view asks
        # for the rest, read ahead
        fetcher.request([key(0), key(1), key(2)], src, first_alone=True)
        qtbot.waitUntil(lambda: key(0) in src.started, timeout=5000)
        assert src.ranks[key(0)] == [URGENT]
        src.open(key(0))
        fetcher.request([key(1), key(2)], src)
        qtbot.waitUntil(lambda: key(2) in src.started, timeout=5000)
        assert src.ranks[key(1)] == [AHEAD] and src.ranks[key(2)] == [AHEAD]
        # a jump: the reads under way are wanted no more; their chunks wait for the others
        fetcher.request([key(50)], src)
        qtbot.waitUntil(lambda: key(50) in src.started, timeout=5000)
        assert src.ranks[key(1)] == [AHEAD, UNWANTED] and src.ranks[key(2)] == [AHEAD, UNWANTED]
        # more jumps, until reads no request wants would hold up the next one: they are
        # given up on (their chunks not yet asked for dropped), and the view waits for them
        # no longer than their running chunks take
        for z in range(60, 60 + MAX_PENDING_READS):
            fetcher.request([key(z)], src)
            qtbot.waitUntil(
                lambda z=z: DROPPED in src.ranks[key(1)] or key(z) in src.started, timeout=5000
            )
        qtbot.waitUntil(lambda: DROPPED in src.ranks[key(1)], timeout=5000)
        assert src.ranks[key(1)][-1] == DROPPED and src.ranks[key(2)][-1] == DROPPED
    finally:
        for g in list(src.gates.values()):
            g.set()
        assert fetcher.close()


def test_a_read_past_its_timeout_is_given_up_on(qtbot, make_fetcher):
    from imagery_gui.model.chunkpool import DROPPED, URGENT

    src = RankedSource()
    fetcher = Fetcher(timeout_s=0.3)
    failed = []
    fetcher.signals.slabFailed.connect(lambda g, k, e: failed.append(k))
    try:
        fetcher.request([key(7)], src, first_alone=True)
        qtbot.waitUntil(lambda: bool(failed), timeout=10000)
        assert failed == [key(7)] and src.ranks[key(7)] == [URGENT, DROPPED]
    finally:
        for g in list(src.gates.values()):
            g.set()
        assert fetcher.close()


class FirstReadHangs(GatedSource):
    """The first read of each slab hangs (a server that was down when it started); the
    ones after it answer at once."""

    def load(self, k: SlabKey) -> SlabData:
        with self.lock:
            first = k not in self.started
            self.started.append(k)
        if first:
            self.gate(k).wait(30)
        return SlabData(k, np.full((1, 8, 8), k.z0, np.uint8), None)


def test_a_read_taken_over_from_an_earlier_request_is_read_again_at_its_timeout(
    qtbot, make_fetcher
):
    """A newer request that takes over a read started for an earlier one (while the server
    was down, say) does not fail with it at that read's deadline: it reads the slab once
    more within its own timeout, and the slab arrives. (The viewer showed the outage's
    timeout again after the server was back, and stayed blank until the next step.)"""
    src = FirstReadHangs()
    fetcher = make_fetcher(src, timeout_s=0.8)
    got, failed = [], []
    fetcher.signals.slabReady.connect(lambda g, s: got.append((g, s.key)))
    fetcher.signals.slabFailed.connect(lambda g, k, e: failed.append((g, k)))
    try:
        fetcher.request([key(5)])
        qtbot.waitUntil(lambda: src.started == [key(5)], timeout=5000)
        qtbot.wait(300)
        newer = fetcher.request([key(5), key(6)])  # takes over the read of 5
        qtbot.waitUntil(lambda: (newer, key(5)) in got, timeout=5000)
        assert not failed
        assert src.started.count(key(5)) == 2  # taken over, then read again once
        # A read that times out under the request that started it still fails.
        src.started.clear()
        last = fetcher.request([key(9)])
        qtbot.waitUntil(lambda: bool(failed), timeout=5000)
        assert failed == [(last, key(9))] and src.started == [key(9)]
    finally:
        for g in list(src.gates.values()):
            g.set()
        assert fetcher.close()
