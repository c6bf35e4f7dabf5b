"""The link meter and the prefetch plan (imagery_gui.model.linkmeter): what reads measure,
how far ahead a scrub reads because of it, and when the view falls back to coarser slices.
A fake clock drives the meter; the plan is a pure function."""

from __future__ import annotations

import pytest

from imagery_gui.model import linkmeter
from imagery_gui.model.linkmeter import (
    MAX_PARALLEL,
    MIN_AHEAD,
    MIN_PARALLEL,
    LinkMeter,
    LinkSnapshot,
    ScrubMeter,
    plan_prefetch,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _meter(body_share=None):
    clock = Clock()
    meter = LinkMeter(clock=clock, body_share=lambda: body_share, body_rate=lambda w: None)
    return meter, clock


def test_a_read_alone_gives_the_slab_time_and_the_rate():
    meter, clock = _meter()
    for _ in range(3):
        tok = meter.started()
        clock.t += 0.5
        meter.ended(tok, 1_000_000)
        clock.t += 0.5  # idle: not counted as time the link was busy
    snap = meter.snapshot()
    assert snap.slab_seconds == pytest.approx(0.5)
    assert snap.bytes_per_s == pytest.approx(2_000_000)
    assert snap.reads == 3


def test_reads_side_by_side_count_their_company():
    """Three reads of 1.5 s each, side by side: the link delivered 3 MB in 1.5 s. Over a
    link waiting on round trips a slab takes 1.5 s beside others as alone; over one whose
    bandwidth is the limit, one alone would have taken a third of that."""
    for share, alone in ((None, 1.5), (0.1, 1.5), (0.9, 0.5)):
        meter, clock = _meter(body_share=share)
        toks = [meter.started() for _ in range(3)]
        clock.t += 1.5
        for t in toks:
            meter.ended(t, 1_000_000)
        snap = meter.snapshot()
        assert snap.bytes_per_s == pytest.approx(2_000_000)
        assert snap.slab_seconds == pytest.approx(alone)
        assert meter._reads[0][3] == pytest.approx(3.0)


def test_a_read_that_failed_or_was_dropped_keeps_the_link_busy_but_delivers_nothing():
    meter, clock = _meter()
    a, b = meter.started(), meter.started()
    clock.t += 1.0
    meter.ended(a)  # dropped
    meter.ended(b, 1_000_000)
    snap = meter.snapshot()
    assert snap.reads == 1 and snap.bytes_per_s == pytest.approx(1_000_000)
    meter.ended(a, 5)  # a token ends once
    assert meter.snapshot().reads == 1


def test_a_read_under_way_longer_than_those_before_is_evidence():
    meter, clock = _meter()
    tok = meter.started()
    clock.t += 0.2
    meter.ended(tok, 100)
    meter.started()
    clock.t += 3.0
    assert meter.snapshot().slab_seconds == pytest.approx(3.0)


def test_old_reads_leave_the_window_but_the_last_few_stay():
    meter, clock = _meter()
    for _ in range(linkmeter.KEEP_READS + 4):
        tok = meter.started()
        clock.t += 0.1
        meter.ended(tok, 10)
    clock.t += 60
    assert meter.snapshot().reads == linkmeter.KEEP_READS


def test_bandwidth_bound_only_when_bodies_take_the_time():
    assert not LinkSnapshot(1.0, 5e6, 5, None).bandwidth_bound
    assert not LinkSnapshot(1.0, 5e6, 5, 0.1).bandwidth_bound
    assert LinkSnapshot(1.0, 5e6, 5, 0.9).capacity == 5e6
    assert LinkSnapshot(1.0, 5e6, 5, 0.1).capacity is None


def test_scrub_rate():
    clock = Clock()
    scrub = ScrubMeter(clock=clock)
    assert scrub.rate() == 0 and scrub.idle_s() == float("inf")
    for z in range(10):
        scrub.step(z)
        clock.t += 0.1
    assert scrub.rate() == pytest.approx(10.0)  # 9 slices in 0.9 s
    assert scrub.idle_s() == pytest.approx(0.1)
    clock.t += linkmeter.SCRUB_GAP_S - 0.15
    assert scrub.rate() > 0 and scrub.idle_s() < linkmeter.SCRUB_GAP_S  # not yet a pause
    clock.t += 0.25
    assert scrub.rate() == 0 and scrub.idle_s() > linkmeter.SCRUB_GAP_S  # stopped
    scrub.step(50)  # after a pause: a new scrub
    clock.t += 0.1
    scrub.step(51)
    clock.t += 0.1
    scrub.step(52)
    assert scrub.rate() == pytest.approx(10, rel=0.01)
    scrub.step(500)  # a jump (a typed z, a site) is not part of a scrub
    clock.t += 0.1
    scrub.step(501)
    assert scrub.rate() == 0  # (two steps since: too few to tell)


def test_without_measurements_or_a_scrub_the_plan_is_the_minimum():
    plan = plan_prefetch(LinkSnapshot(None, None, 0), 10, 16, 10**6, 100)
    assert (plan.ahead, plan.parallel, plan.slow, plan.level) == (MIN_AHEAD, MIN_PARALLEL, False, 0)
    plan = plan_prefetch(LinkSnapshot(5.0, 1e7, 5), 0.0, 16, 10**6, 100)  # not scrubbing
    assert (plan.ahead, plan.parallel) == (MIN_AHEAD, MIN_PARALLEL)


def test_slow_round_trips_read_further_ahead_within_the_memory_bound():
    """Little's law: 10 slices/s through 4-deep slabs taking 2 s each uses 5 slabs per
    read time, so 6 reads are under way; memory for 5 slabs caps ahead at 3."""
    link = LinkSnapshot(2.0, 1e9, 10, 0.05)  # reads wait on round trips
    plan = plan_prefetch(link, 10.0, 4, 10**6, 100)
    assert plan.ahead == 6 and plan.parallel == 6 and not plan.slow
    assert plan_prefetch(link, 10.0, 4, 10**6, 5).ahead == 3
    assert (
        plan_prefetch(LinkSnapshot(20.0, 1e9, 10, 0.05), 10.0, 1, 10**6, 10**4).parallel
        == MAX_PARALLEL
    )

    # slabs so big that the memory holds four: the one on screen, one behind, two ahead;
    # three: one ahead, fewer than the minimum (more would push out the one on screen);
    # two: one ahead and none behind; one: that one only
    def ahead_back(fit: int, link=link) -> tuple[int, int]:
        plan = plan_prefetch(link, 10.0, 4, 10**6, fit)
        return plan.ahead, plan.back

    assert [ahead_back(f) for f in (4, 3, 2, 1)] == [(2, 1), (1, 1), (1, 0), (0, 0)]
    idle = LinkSnapshot(None, None, 0)
    assert [ahead_back(f, idle) for f in (100, 4, 3, 2, 1)] == [
        (MIN_AHEAD, 1),
        (2, 1),
        (1, 1),
        (1, 0),
        (0, 0),
    ]
    # deep slabs over a fast link: the minimum
    assert plan_prefetch(LinkSnapshot(0.3, 1e9, 10, 0.05), 10.0, 64, 10**6, 100).ahead == MIN_AHEAD


def test_a_link_whose_bandwidth_is_the_limit_falls_back_to_the_coarser_level_that_fits():
    # full slabs of 10 MB, 16 deep; the link carries 2 MB/s: 3.2 slices/s against 10 wanted
    link = LinkSnapshot(5.0, 2e6, 5, 0.95)
    plan = plan_prefetch(link, 10.0, 16, 10**7, 100, coarse_ratios=(0.25, 0.0625))
    assert plan.slow and plan.behind
    assert plan.delivered == pytest.approx(3.2)
    assert plan.level == 2  # 2x coarser needs 0.78 of the link: too much; 4x: 0.2
    assert plan.parallel == MIN_PARALLEL  # more at once does not help such a link
    # a faster link of the same kind: 2x coarser is enough
    assert (
        plan_prefetch(LinkSnapshot(5.0, 6e6, 5, 0.95), 10.0, 16, 10**7, 100, (0.25, 0.0625)).level
        == 1
    )
    # no coarser level: slow all the same (the user is told), nothing to fall back to
    bare = plan_prefetch(link, 10.0, 16, 10**7, 100)
    assert bare.slow and bare.level == 0
    # not scrubbing: still slow (the coarser slabs are read ahead for a scrub), not behind
    idle = plan_prefetch(link, 0.0, 16, 10**7, 100, (0.25,))
    assert idle.slow and not idle.behind and idle.level == 1


def test_the_same_rate_over_a_link_waiting_on_round_trips_is_not_slow():
    link = LinkSnapshot(5.0, 2e6, 5, 0.1)
    plan = plan_prefetch(link, 10.0, 16, 10**7, 100, coarse_ratios=(0.25,))
    assert not plan.slow and plan.level == 0 and plan.delivered is None


def test_slabs_ahead_are_read_beside_the_first_only_over_round_trips_slower_than_a_slab():
    """A link known to wait on round trips whose slab reads take as long as a scrub at
    10/s spends in a slab, or longer: the slabs ahead are read beside the first. Deep
    slabs, an unknown link, or one whose bandwidth is the limit: the first alone."""
    rtt = LinkSnapshot(2.0, 1e9, 10, 0.05)  # 2 s a read, bodies 5% of the time
    assert plan_prefetch(rtt, 0.0, 16, 10**6, 100).ahead_beside  # 2 s against 1.6 s a slab
    assert plan_prefetch(rtt, 10.0, 16, 10**6, 100).ahead_beside
    assert plan_prefetch(rtt, 0.0, 20, 10**6, 100).ahead_beside  # 2 s, just as long
    assert not plan_prefetch(rtt, 0.0, 64, 10**6, 100).ahead_beside  # 6.4 s in a slab
    assert plan_prefetch(rtt, 40.0, 64, 10**6, 100).ahead_beside  # unless scrubbed fast
    for unknown in (LinkSnapshot(None, None, 0), LinkSnapshot(2.0, 1e9, 10, None)):
        assert not plan_prefetch(unknown, 0.0, 16, 10**6, 100).ahead_beside
    # bandwidth the limit, whether or not the link is slow for this rate
    for rate in (0.0, 10.0):
        bound = plan_prefetch(LinkSnapshot(5.0, 2e6, 5, 0.95), rate, 16, 10**7, 100, (0.25,))
        assert not bound.ahead_beside
        assert not plan_prefetch(LinkSnapshot(5.0, 1e9, 5, 0.95), rate, 16, 10**5, 100).ahead_beside


def test_slow_has_hysteresis():
    # 10 MB slabs, 16 deep: 8 MB/s carries 12.8 slices/s; 10/12.8 = 0.78
    link = LinkSnapshot(1.0, 8e6, 5, 0.9)
    assert not plan_prefetch(link, 10.0, 16, 10**7, 100, (0.25,)).slow
    assert plan_prefetch(link, 10.0, 16, 10**7, 100, (0.25,), was_slow=True).slow
    fast = LinkSnapshot(1.0, 3e7, 5, 0.9)  # 0.26 of it
    assert not plan_prefetch(fast, 10.0, 16, 10**7, 100, (0.25,), was_slow=True).slow


def test_a_link_to_other_hosts_forgets_the_slab_reads_of_the_last():
    meter, clock = _meter()
    meter.set_hosts(frozenset(["a:1"]))
    for _ in range(3):
        token = meter.started()
        clock.t += 2.0
        meter.ended(token, 1000)
    assert meter.snapshot().reads == 3
    meter.set_hosts(frozenset(["a:1"]))  # the same link: kept
    assert meter.snapshot().reads == 3
    meter.set_hosts(frozenset(["b:2"]))
    snap = meter.snapshot()
    assert snap.reads == 0 and snap.slab_seconds is None


class Wire:
    """Chunk reads that ended: (when, wire bytes), and what the meter asked of them."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, int]] = []
        self.asked: list[tuple[float, float]] = []

    def __call__(self, a: float, b: float) -> int:
        self.asked.append((a, b))
        return sum(n for t, n in self.chunks if a <= t <= b)


def _wire_meter() -> tuple[LinkMeter, Clock, Wire]:
    clock, wire = Clock(), Wire()
    meter = LinkMeter(
        clock=clock,
        body_share=lambda: 0.9,
        body_rate=lambda w: (1e6, sum(n for _t, n in wire.chunks)),
        wire_bytes=wire,
    )
    return meter, clock, wire


def test_decoded_bytes_are_weighed_against_the_wire_bytes_of_the_reads_that_ended():
    """The link carries 1 MB/s on the wire. Two reads side by side: the first, 4 MB
    decoded, ends after 1 MB of chunks came; the second has 1 MB of its chunks in and is
    under way: the link carries 4 MB/s of decoded bytes, not 2 (the chunks of the read
    under way have no decoded bytes yet). Reads older than RATIO_WINDOW_S leave the
    ratio."""
    meter, clock, wire = _wire_meter()
    first, second = meter.started(), meter.started()
    clock.t += 0.5
    wire.chunks.append((clock.t, 1_000_000))
    clock.t += 0.5
    meter.ended(first, 4_000_000)
    end = clock.t
    clock.t += 0.5
    wire.chunks.append((clock.t, 1_000_000))
    snap = meter.snapshot()
    assert wire.asked[-1] == (clock.t - linkmeter.RATIO_WINDOW_S, end)
    assert snap.body_bytes_per_s == pytest.approx(4e6)
    assert snap.capacity == pytest.approx(4e6)
    # the second ends: 2 MB decoded for the 1 MB that came after the first ended (1 MB
    # of wire bytes per 3 MB decoded over the two)
    clock.t += 0.5
    meter.ended(second, 2_000_000)
    assert meter.snapshot().body_bytes_per_s == pytest.approx(3e6)
    # past RATIO_WINDOW_S only newer reads count (none: not known in decoded bytes)
    clock.t += linkmeter.RATIO_WINDOW_S + 1
    assert meter.snapshot().body_bytes_per_s is None


def test_a_read_that_ran_alone_gives_the_ratio_once_its_chunks_are_in():
    """A read alone: 6 MB decoded from 1 MB of chunks. Three reads after it were dropped
    on the way (their 3 MB of chunks have no decoded bytes), then two side by side
    delivered 6 MB from 1 MB: over the window 12 MB for 5 MB, but the alone read's ratio
    is exact. It counts once its chunks, which the read process forwards a little later,
    are all known (SETTLE_S)."""
    meter, clock, wire = _wire_meter()
    alone = meter.started()
    clock.t += 0.5
    wire.chunks.append((clock.t, 1_000_000))
    clock.t += 0.5
    meter.ended(alone, 6_000_000)
    alone_read = (clock.t - 1.0, clock.t)
    assert meter.snapshot().body_bytes_per_s == pytest.approx(6e6)  # (the window's, so far)
    for _ in range(3):
        tok = meter.started()
        clock.t += 0.3
        wire.chunks.append((clock.t, 1_000_000))
        meter.ended(tok)  # dropped
    pair = [meter.started(), meter.started()]
    clock.t += 0.5
    wire.chunks.append((clock.t, 1_000_000))
    clock.t += 0.5
    for tok in pair:
        meter.ended(tok, 3_000_000)
    assert clock.t - alone_read[1] >= linkmeter.SETTLE_S
    assert meter.snapshot().body_bytes_per_s == pytest.approx(6e6)
    assert alone_read in wire.asked
    # without it: the window's 12 MB for 5
    meter._alone_ratios.clear()
    clock.t += 0.2
    assert meter.snapshot().body_bytes_per_s == pytest.approx(2.4e6)
    # three more alone, of 2, 4 and 8 MB per wire MB: the median of the settled ones
    for decoded in (2_000_000, 4_000_000, 8_000_000):
        tok = meter.started()
        clock.t += 0.5
        wire.chunks.append((clock.t, 1_000_000))
        meter.ended(tok, decoded)
        clock.t += linkmeter.SETTLE_S if decoded < 8_000_000 else 0.2
    assert meter.snapshot().body_bytes_per_s == pytest.approx(3e6)  # (2 + 4) / 2
    clock.t += linkmeter.SETTLE_S
    assert meter.snapshot().body_bytes_per_s == pytest.approx(4e6)  # of 2, 4, 8
