"""How fast the data comes, and how far ahead to read because of it (Qt-free).

:class:`LinkMeter` records the slab reads of one viewer: how long each took from start to
delivery (round trips, retries and stragglers included) and how many bytes arrived per
second while reads were in flight. :class:`ScrubMeter` records how fast the user moves
through z. :func:`plan_prefetch` turns both into what to ask for:

* how many slabs to read ahead, and how many at once: by Little's law, a scrub consuming
  ``c`` slabs a second with reads taking ``T`` seconds needs ``c * T`` of them under way,
  plus one for the one being shown, within the memory bound;
* whether the link cannot carry the data at this rate (the bytes a second the scrub needs
  at full resolution against those the connection delivers), and then which coarser
  level to read ahead instead, so each step shows the coarser slice until the full one
  arrives (as Neuroglancer does) rather than nothing.

What a link can deliver is only seen while it is kept busy (a prefetch that is ahead asks
for one slab at a time), and a link that waits on round trips delivers more the more reads
are under way, so the bytes a second seen so far say little by themselves. What tells the
two apart is where the time of each chunk read goes (:func:`netwatch.body_share`): waiting
for the answer to start (round trips, a busy server: read further ahead, more at once) or
receiving its body (the bandwidth is the limit: then the bytes a second seen while reading
are what the link carries, and only smaller reads help). Slab reads are recorded with how
many reads ran beside them, so that the time a slab takes alone is known.

Byte counts are decoded slab bytes on both sides of the comparison, so the ratio is the
network's whatever the chunks' compression.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

#: Slabs read ahead without measurements (and never fewer, unless the memory bound holds
#: no more): two chunks in the direction of travel and one behind held the demo and 24
#: grid conditions (benchmarks/README.md).
MIN_AHEAD = 2
MAX_AHEAD = 16
#: Slab reads under way at once, without measurements and at most.
MIN_PARALLEL = 3
MAX_PARALLEL = 8
#: The link is called too slow when the scrub needs more than this share of what it
#: delivered; it is called fast enough again below the second share (no flapping).
BEHIND_ENTER = 0.9
BEHIND_LEAVE = 0.6
#: A coarser level is chosen so that its reads need at most this share of the link.
COARSE_SHARE = 0.6
#: Seconds a snapshot of the measurements is reused while no read starts or ends.
SNAPSHOT_S = 0.1
#: Seconds of reads the measurements look back over, and the reads they keep at least
#: (over a slow link a slab can take longer than the window).
WINDOW_S = 8.0
KEEP_READS = 6
#: Reads kept at most for the quantile of read times.
MAX_READS = 64
#: Seconds of reads over which decoded bytes are weighed against the bytes on the wire
#: (the chunks' compression): longer than WINDOW_S, as the mix of layers and levels read
#: in a few seconds swings it by half.
RATIO_WINDOW_S = 30.0
#: Seconds after a read ended before the wire bytes of its chunks are all known (the read
#: process forwards them every 0.2 s).
SETTLE_S = 0.6
#: A scrub is z steps of at most SCRUB_STEP slices (Shift+arrow steps 10), each at most
#: SCRUB_GAP_S after the previous one.
SCRUB_GAP_S = 1.0
SCRUB_STEP = 10
#: Reads beside which fewer than this many others ran, on average, count as alone.
ALONE_K = 1.5
#: A link whose chunk reads spend at least this share of their time receiving bodies is
#: limited by its bandwidth.
BODY_BOUND = 0.5
#: The scrub rate assumed before the user scrubs (the rate the viewer is built for), so
#: that a slow link is known before the first step of a scrub needs it.
NOMINAL_RATE = 10.0
#: Slab reads taking this share of the time a scrub spends in a slab, or more, over a link
#: that waits on round trips: the slabs ahead are read beside the first after a jump.
BESIDE_SHARE = 1.0


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    """What :class:`LinkMeter` measured, for :func:`plan_prefetch`."""

    slab_seconds: float | None  # a slab read alone (80th percentile); None: not known
    bytes_per_s: float | None  # decoded bytes delivered per second with reads under way
    reads: int  # reads kept
    body_share: float | None = None  # netwatch.body_share(): None, not known
    body_bytes_per_s: float | None = None  # decoded bytes a second while bodies arrived

    @property
    def bandwidth_bound(self) -> bool:
        return self.body_share is not None and self.body_share >= BODY_BOUND

    @property
    def capacity(self) -> float | None:
        """Decoded bytes a second the link carries, when its bandwidth is the limit (None:
        not known to be limited: more reads at once would deliver more)."""
        if not self.bandwidth_bound:
            return None
        return self.body_bytes_per_s or self.bytes_per_s


def _quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(q * len(values)), len(values) - 1)]


class LinkMeter:
    """Slab reads' durations, bytes and company over the last WINDOW_S (at least the
    last KEEP_READS). Thread-safe: the fetch worker records, the GUI thread reads."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        clock=time.monotonic,
        body_share=None,
        body_rate=None,
        wire_bytes=None,
    ) -> None:
        """``body_share``, ``body_rate`` and ``wire_bytes``: where chunk reads' time goes,
        the wire bytes a second while their bodies arrived, and the wire bytes of the chunk
        reads that ended between two times (default: this process's
        :func:`netwatch.body_share`, :func:`netwatch.body_rate` and
        :func:`netwatch.wire_bytes`, fed by the read process too)."""
        self.window_s = window_s
        self._clock = clock
        from . import netwatch

        #: The hosts whose chunk reads are this link's (None: every host's): set_hosts.
        self.hosts: frozenset[str] | None = None
        self._body_share = (
            body_share if body_share is not None else lambda: netwatch.body_share(hosts=self.hosts)
        )
        self._body_rate = (
            body_rate
            if body_rate is not None
            else lambda w: netwatch.body_rate(w, hosts=self.hosts)
        )
        self._wire_bytes = (
            wire_bytes
            if wire_bytes is not None
            else lambda a, b: netwatch.wire_bytes(a, b, hosts=self.hosts)
        )
        self._lock = threading.Lock()
        # (end, seconds, bytes, mean number of reads under way during it, itself included)
        self._reads: deque[tuple[float, float, int, float]] = deque()
        # (end, bytes) of the reads of the last RATIO_WINDOW_S
        self._delivered: deque[tuple[float, int]] = deque()
        # (start, end, bytes) of those that ran alone, until their chunks are all known
        self._alone: deque[tuple[float, float, int]] = deque()
        # (end, decoded bytes per wire byte) of those, once known (each counted once)
        self._alone_ratios: deque[tuple[float, float]] = deque()
        self._busy: deque[tuple[float, float]] = deque()  # closed intervals with reads
        self._open: dict[int, tuple[float, float]] = {}  # token -> (start, area then)
        self._token = 0
        self._busy_since = 0.0
        self._area = 0.0  # integral over time of the number of reads under way
        self._area_t = clock()
        self._memo: tuple[float, LinkSnapshot] | None = None

    def set_hosts(self, hosts: frozenset[str] | None) -> None:
        """The link is now to ``hosts`` (a dataset's sources): only their chunk reads are
        measured, and the slab reads measured over another link are forgotten (a narrow
        link to one server says nothing of the next)."""
        with self._lock:
            if hosts == self.hosts:
                return
            self.hosts = hosts
            self._reads.clear()
            self._delivered.clear()
            self._alone.clear()
            self._alone_ratios.clear()
            self._busy.clear()
            self._memo = None

    def _advance(self, now: float) -> None:
        self._memo = None  # a read starts or ends: measured anew
        self._area += len(self._open) * (now - self._area_t)
        self._area_t = now

    def started(self) -> int:
        """A read started; returns its token for :meth:`ended`."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            if not self._open:
                self._busy_since = now
            self._token += 1
            self._open[self._token] = (now, self._area)
            return self._token

    def ended(self, token: int, nbytes: int | None = None) -> None:
        """Read ``token`` ended: it delivered ``nbytes`` (None: it failed or is no longer
        wanted; its time still counts as time the link was busy)."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            opened = self._open.pop(token, None)
            if opened is None:
                return
            began, area = opened
            if not self._open:
                self._busy.append((self._busy_since, now))
            seconds = now - began
            if nbytes is not None and seconds > 0:
                company = (self._area - area) / seconds
                self._reads.append((now, seconds, int(nbytes), max(company, 1.0)))
                self._delivered.append((now, int(nbytes)))
                if company < 1.0 + 1e-6:
                    self._alone.append((began, now, int(nbytes)))
            self._prune(now)

    def _prune(self, now: float) -> None:
        cut = now - self.window_s
        while len(self._reads) > MAX_READS or (
            len(self._reads) > KEEP_READS and self._reads[0][0] < cut
        ):
            self._reads.popleft()
        while self._delivered and self._delivered[0][0] < now - RATIO_WINDOW_S:
            self._delivered.popleft()
        while self._alone_ratios and self._alone_ratios[0][0] < now - RATIO_WINDOW_S:
            self._alone_ratios.popleft()
        keep_from = min(cut, self._reads[0][0] - self._reads[0][1]) if self._reads else cut
        while self._busy and self._busy[0][1] < keep_from:
            self._busy.popleft()

    def snapshot(self) -> LinkSnapshot:
        """What was measured (the same for SNAPSHOT_S unless a read starts or ends: it is
        asked at every z step, and netwatch's measures go over thousands of reads)."""
        with self._lock:
            memo = self._memo
        now = self._clock()
        if memo is not None and now - memo[0] < SNAPSHOT_S:
            return memo[1]
        snap = self._snapshot()
        with self._lock:
            self._memo = (now, snap)
        return snap

    def _snapshot(self) -> LinkSnapshot:
        with self._lock:
            now = self._clock()
            self._prune(now)
            reads = list(self._reads)
            # the reads' bytes over the time with reads under way since the first of them
            # started (kept reads may be older than the window over a slow link)
            since = reads[0][0] - reads[0][1] if reads else now
            busy = self._busy_within(now, since)
            # a read under way longer than the others took is evidence too (the link
            # slowing down), shared with the reads beside it
            waiting = (
                (now - min(t for t, _ in self._open.values())) / len(self._open)
                if self._open
                else 0.0
            )
            delivered = list(self._delivered)
            settled = []
            while self._alone and now - self._alone[0][1] >= SETTLE_S:
                read = self._alone.popleft()
                if read[1] >= now - RATIO_WINDOW_S:
                    settled.append(read)
        if not reads:
            return LinkSnapshot(waiting or None, None, 0)
        share = self._body_share()
        if share is not None and share >= BODY_BOUND:
            # reads beside others shared the bandwidth: the time of one alone is what
            # matters (reads that ran alone, else the others' by their company)
            alone = [r[1] for r in reads if r[3] < ALONE_K]
            seconds = _quantile(alone or [r[1] / r[3] for r in reads], 0.8)
        else:  # waiting on round trips: reads take as long beside others as alone
            seconds = _quantile([r[1] for r in reads], 0.8)
        # The wire's bytes a second while bodies arrived, in decoded bytes: scaled by the
        # decoded bytes per wire byte of the slab reads of the last RATIO_WINDOW_S (the
        # chunks' compression).
        body = None
        wire = self._body_rate(self.window_s)
        self._weigh_alone(settled)
        if wire is not None and delivered:
            ratio = self._ratio(now, delivered)
            if ratio is not None:
                body = wire[0] * ratio
        return LinkSnapshot(
            max(seconds, waiting),
            sum(r[2] for r in reads) / busy if busy > 0.2 else None,
            len(reads),
            share,
            body,
        )

    def _weigh_alone(self, settled: list[tuple[float, float, int]]) -> None:
        """Of reads that ran alone and whose chunks are all known now, the decoded bytes
        per wire byte: the wire bytes are those of the chunks that ended while each ran.
        Worked out once per read (a snapshot is asked for at every z step)."""
        got = []
        for began, end, nbytes in settled:
            on_wire = self._wire_bytes(began, end)
            if on_wire > 0:
                got.append((end, nbytes / on_wire))
        if got:
            with self._lock:
                self._alone_ratios.extend(got)

    def _ratio(self, now: float, delivered: list[tuple[float, int]]) -> float | None:
        """Decoded bytes per wire byte: the median of those of the reads that ran alone
        in the last RATIO_WINDOW_S (:meth:`_weigh_alone`). Otherwise the decoded bytes of
        all reads over the wire bytes of the chunks that ended up to the last of them (the
        chunks that arrived since are of reads under way); that also counts the chunks of
        reads dropped on the way (a scrub that moved on), and comes out up to a third low
        where reads are dropped often."""
        with self._lock:
            ratios = [r for _end, r in self._alone_ratios]
        if ratios:
            ratios.sort()
            mid = len(ratios) // 2
            return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
        decoded = sum(b for _t, b in delivered)
        on_wire = self._wire_bytes(now - RATIO_WINDOW_S, delivered[-1][0])
        return decoded / on_wire if on_wire > 0 and decoded > 0 else None

    def _busy_within(self, now: float, cut: float) -> float:
        busy = sum(e - max(s, cut) for s, e in self._busy if e > cut)
        if self._open:
            busy += now - max(self._busy_since, cut)
        return busy


class ScrubMeter:
    """How fast the user moves through z: slices a second over the steps of the last two
    seconds, 0 when the last step is older than SCRUB_GAP_S (not scrubbing)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._steps: deque[tuple[float, int]] = deque(maxlen=32)

    def step(self, z: int) -> None:
        now = self._clock()
        if self._steps and (
            now - self._steps[-1][0] > SCRUB_GAP_S or abs(z - self._steps[-1][1]) > SCRUB_STEP
        ):
            self._steps.clear()  # a pause or a jump: what follows is a new scrub
        self._steps.append((now, int(z)))

    def idle_s(self) -> float:
        """Seconds since the last step (infinite before the first)."""
        return self._clock() - self._steps[-1][0] if self._steps else math.inf

    def rate(self) -> float:
        now = self._clock()
        recent = [s for s in self._steps if now - s[0] <= 2.0]
        if len(recent) < 3 or now - recent[-1][0] > SCRUB_GAP_S:
            return 0.0
        span = recent[-1][0] - recent[0][0]
        moved = sum(abs(b[1] - a[1]) for a, b in itertools.pairwise(recent))
        return moved / span if span > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PrefetchPlan:
    """What to read for a view, from :func:`plan_prefetch`."""

    ahead: int  # slabs ahead in the direction of travel
    parallel: int  # slab reads under way at once
    slow: bool  # the link cannot carry full slices at the scrub's (or the nominal) rate
    level: int  # coarser level to read ahead (0: none; k: the k-th coarser in ``ratios``)
    delivered: float | None  # full-resolution slices a second the link can carry
    wanted: float  # slices a second the scrub asks for (0: not scrubbing)
    slab_seconds: float | None = None  # what a slab read takes (LinkSnapshot)
    # Read the slabs ahead beside the one the view waits for, not after it (the fetcher):
    # see plan_prefetch.
    ahead_beside: bool = False
    # Slabs read behind, against the direction of travel (0 when the memory bound holds
    # only the slab on screen and the next).
    back: int = 1

    @property
    def behind(self) -> bool:
        """Scrubbing faster than the link carries full slices (what the user is told)."""
        return self.slow and self.delivered is not None and self.wanted > self.delivered * 0.9


def plan_prefetch(
    link: LinkSnapshot,
    scrub_rate: float,
    depth: int,
    slab_bytes: int,
    fit_slabs: int,
    coarse_ratios: tuple[float, ...] = (),
    was_slow: bool = False,
) -> PrefetchPlan:
    """Prefetch for a scrub of ``scrub_rate`` slices/s (0: not scrubbing) through slabs
    ``depth`` slices deep of ``slab_bytes`` each, of which ``fit_slabs`` fit the memory
    bound. ``coarse_ratios``: the bytes of a slab at each coarser level available, as a
    share of the full one's (e.g. (0.25, 0.0625)); ``was_slow``: the last plan's ``slow``.

    Reads under way: ``c * T + 1`` for a scrub using up ``c`` slabs a second of reads
    taking ``T`` alone (Little's law), within MIN/MAX_PARALLEL; as many ahead, within the
    memory bound. The link is slow when its bandwidth is the limit (see the module) and
    the scrub, or before one NOMINAL_RATE, needs more than BEHIND_ENTER of what it carries
    (it stays slow above BEHIND_LEAVE); then the coarsest level needed is read ahead.

    ``ahead_beside``: after a jump the slabs ahead are read beside the one the view waits
    for, instead of once it is there, when the link is known to wait on round trips (its
    bandwidth not the limit: reads beside each other do not slow each other down) and a
    read takes BESIDE_SHARE or more of the time a scrub (at its rate, or NOMINAL_RATE)
    spends in a slab: otherwise a scrub starting at once would reach the next slab before
    a read started after the first could deliver it (thin slabs over a link slow to
    answer). Deep slabs read fast enough need not compete with the first for the CPU
    that decodes them."""
    depth = max(int(depth), 1)
    # the memory bound first: the current slab, one behind when three fit, then what is
    # read ahead (fewer than MIN_AHEAD when slabs are that big, none when only one fits:
    # more would push out each other, and the one on screen, and be read again and again)
    fit = int(fit_slabs)
    back = 1 if fit >= 3 else 0
    room = max(0, min(MAX_AHEAD, fit - 1 - back))
    ahead, parallel = min(MIN_AHEAD, room), MIN_PARALLEL
    if scrub_rate > 0 and link.slab_seconds is not None:
        need = math.ceil(scrub_rate / depth * link.slab_seconds) + 1
        ahead = max(min(MIN_AHEAD, room), min(room, need))
        parallel = max(MIN_PARALLEL, min(MAX_PARALLEL, need, ahead + 1))
    capacity = link.capacity
    if capacity is None or slab_bytes <= 0:
        beside = (
            link.body_share is not None
            and not link.bandwidth_bound
            and link.slab_seconds is not None
            and link.slab_seconds * max(scrub_rate, NOMINAL_RATE) / depth >= BESIDE_SHARE
        )
        return PrefetchPlan(
            ahead, parallel, False, 0, None, scrub_rate, link.slab_seconds, beside, back
        )
    delivered = capacity / slab_bytes * depth
    share = max(scrub_rate, NOMINAL_RATE) / delivered if delivered > 0 else math.inf
    slow = share > (BEHIND_LEAVE if was_slow else BEHIND_ENTER)
    level = 0
    if slow and coarse_ratios:
        # more reads at once do not help a link whose bandwidth is the limit
        parallel = MIN_PARALLEL
        level = len(coarse_ratios)  # the coarsest, unless a finer one fits
        for k, ratio in enumerate(coarse_ratios, start=1):
            if share * ratio <= COARSE_SHARE:
                level = k
                break
    return PrefetchPlan(
        ahead, parallel, slow, level, delivered, scrub_rate, link.slab_seconds, back=back
    )
