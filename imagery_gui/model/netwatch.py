"""What the network is doing: HTTP outcomes of cloud-volume's reads, for the status bar.

cloud-files retries a failing request up to 7 times with random exponential waits of up
to a minute, silently. To tell the user "the server answered 503, retrying" the viewer
needs to see those outcomes, so :func:`install` wraps the ``send`` of the one HTTP adapter
cloud-files shares between its sessions: every response status (or connection error) is
recorded, nothing is changed except that a request without a timeout gets one (a server
that accepts a connection and never answers would otherwise hold a reader forever; with a
timeout the request fails and cloud-files retries it as usual).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

#: (connect, read) seconds for requests that came without a timeout.
DEFAULT_TIMEOUT = (10.0, 60.0)

_lock = threading.Lock()
_events: deque[tuple[float, str, int | None, str | None]] = deque(maxlen=4096)
#: Successful chunk reads: (when it ended, host, seconds, seconds waiting for the answer to
#: start, bytes). The rest of each read's time is its body arriving. Enough for the link
#: meter's RATIO_WINDOW_S at a few hundred chunk reads a second.
_transfers: deque[tuple[float, str, float, float, int]] = deque(maxlen=16384)
#: Reads forwarded by the read process are recorded up to this long after they ended.
FORWARD_SLACK_S = 1.0
_local = threading.local()  # the time to the answer's start of this thread's last request
_installed = False
_totals = {"requests": 0, "errors": 0, "hedges": 0, "hedges_won": 0}
_forward = None


@dataclass(frozen=True)
class NetStatus:
    requests: int  # in the window
    errors: int  # 5xx, 429 or connection failures in the window
    last_error: str | None
    host: str | None

    @property
    def retrying(self) -> bool:
        return self.errors > 0


def record(
    url: str, status: int | None, error: str | None = None, transfer: tuple | None = None
) -> None:
    """One HTTP outcome; ``transfer`` = (seconds, seconds to the answer's start, bytes[,
    when it ended]) for a chunk read that succeeded. The end is ``time.monotonic()``'s,
    which is the same clock in every process of the machine: the read process forwards its
    reads in batches, and they keep the time they ended."""
    host = urlsplit(url).netloc
    if transfer is not None:
        ended = transfer[3] if len(transfer) > 3 else time.monotonic()
        with _lock:
            _transfers.append((ended, host, *transfer[:3]))
        if _forward is not None:
            _forward(url, status, error, transfer)
        return
    bad = error is not None or (status is not None and (status >= 500 or status == 429))
    with _lock:
        _events.append((time.monotonic(), host, status, error))
        _totals["requests"] += 1
        _totals["errors"] += int(bad)
    if _forward is not None:
        _forward(url, status, error, None)


def set_forward(fn) -> None:
    """Also hand every outcome to ``fn(url, status, error, transfer)`` (the read process
    sends them on to the viewer's process)."""
    global _forward
    _forward = fn


def recent(window_s: float = 3.0) -> NetStatus:
    """Requests and failures of the last ``window_s`` seconds."""
    cutoff = time.monotonic() - window_s
    n = errors = 0
    last = host = None
    with _lock:
        for t, h, status, error in reversed(_events):
            if t < cutoff:
                break
            n += 1
            if error is not None or (status is not None and (status >= 500 or status == 429)):
                errors += 1
                if last is None:
                    last = error or f"HTTP {status}"
                    host = h
    return NetStatus(n, errors, last, host)


def host_of(url: str) -> str:
    """The host (``name:port``) of a Precomputed source's URL (``precomputed://https://...``),
    as netwatch keys its measures; "" for one not read over HTTP from that host (a file,
    a cloud bucket, a graphene source, whose chunks come from elsewhere)."""
    inner = url.split("://", 1)[1] if url.startswith("precomputed://") else url
    if not inner.startswith(("http://", "https://")):
        return ""
    return urlsplit(inner).netloc


def _recent_transfers(
    window_s: float, hosts: frozenset[str] | None
) -> list[tuple[float, float, float, int]]:
    """(end, seconds, seconds to the answer's start, bytes) of the chunk reads of the last
    ``window_s`` seconds (from ``hosts`` only, when given), newest first."""
    cutoff = time.monotonic() - window_s
    out = []
    with _lock:
        for t, host, seconds, wait, nbytes in reversed(_transfers):
            if t < cutoff:
                break
            if hosts is None or host in hosts:
                out.append((t, seconds, wait, nbytes))
    return out


def body_share(
    window_s: float = 8.0, least: int = 8, hosts: frozenset[str] | None = None
) -> float | None:
    """Of the time recent chunk reads took (from ``hosts`` only, when given), the share
    spent receiving their bodies (the rest is waiting for the answer to start: round
    trips, the server). Near 0 the link waits on round trips, and more reads at once
    deliver more; near 1 its bandwidth is the limit. None with fewer than ``least`` reads
    in the window."""
    reads = _recent_transfers(window_s, hosts)
    total = sum(seconds for _t, seconds, _w, _b in reads)
    waiting = sum(min(wait, seconds) for _t, seconds, wait, _b in reads)
    if len(reads) < least or total <= 0:
        return None
    return (total - waiting) / total


def body_rate(
    window_s: float = 8.0, hosts: frozenset[str] | None = None
) -> tuple[float, int] | None:
    """(bytes a second while bodies were arriving, bytes) of recent chunk reads (from
    ``hosts`` only, when given): the bytes over the union of the times their bodies took.
    When the bandwidth is the limit (see :func:`body_share`) that is what the link
    carries. None without reads."""
    reads = _recent_transfers(window_s, hosts)
    spans = [(t - max(seconds - wait, 0.0), t) for t, seconds, wait, _b in reads]
    nbytes = sum(size for _t, _s, _w, size in reads)
    if not spans:
        return None
    spans.sort()
    covered, end = 0.0, -1e300
    for a, b in spans:
        if b <= end:
            continue
        covered += b - max(a, end)
        end = b
    return (nbytes / covered if covered > 0 else float("inf")), nbytes


def wire_bytes(since: float, until: float, hosts: frozenset[str] | None = None) -> int:
    """Bytes of the chunk reads (from ``hosts`` only, when given) that ended between
    ``since`` and ``until`` (``time.monotonic()`` seconds)."""
    total = 0
    with _lock:
        for t, host, _seconds, _wait, nbytes in reversed(_transfers):
            if t < since - FORWARD_SLACK_S:  # (forwarded reads come in a little late)
                break
            if t < since:
                continue
            if t <= until and (hosts is None or host in hosts):
                total += nbytes
    return total


def totals() -> dict[str, int]:
    with _lock:
        return dict(_totals)


#: The viewer's retry policy for HTTP reads: cloud-files' own (7 attempts, waits of up
#: to a minute) keeps a read against a dead server alive for minutes after the viewer has
#: given up on it. Here a failed chunk is tried again after a random wait of up to 60 ms,
#: then up to 120, 240, 480 ms and 1 s (random exponential: backoff with jitter), 8
#: attempts in all: a small chunk lost to a busy server costs tens of ms rather than the
#: 0.25-4 s of before, which held up whole slabs with 20-30% of requests failing
#: (benchmarks/bench_remote.py), and with 30% failing a chunk still fails for good only
#: once in 15,000. The fetch timeout bounds what the user waits for either way.
VIEWER_ATTEMPTS = 8
#: Connections kept per host: the read process has up to 64 download threads per layer.
POOL_MAXSIZE = 128
VIEWER_WAIT = (0.03, 1.0)


def install(viewer_retries: bool = False) -> None:
    """Observe cloud-files' HTTP traffic (idempotent); optionally use the viewer's retry
    policy for HTTP reads in this process (scripts keep cloud-files' defaults)."""
    with _install_lock:  # the viewer may install from two threads at launch
        _install(viewer_retries)


_install_lock = threading.Lock()


def _install(viewer_retries: bool) -> None:
    global _installed
    from cloudfiles.interfaces import HttpInterface

    if viewer_retries and not getattr(HttpInterface.get_file, "_imagery_gui_policy", False):
        import tenacity

        policy = dict(
            stop=tenacity.stop_after_attempt(VIEWER_ATTEMPTS),
            wait=tenacity.wait_random_exponential(*VIEWER_WAIT),
        )
        for name in ("get_file", "head"):
            original = getattr(HttpInterface, name)
            inner = original.__wrapped__
            if name == "get_file":
                inner = _hedged(_timed(inner))
            wrapped = original.retry.copy(**policy).wraps(inner)
            wrapped._imagery_gui_policy = True
            setattr(HttpInterface, name, wrapped)
        # cloud-volume reads chunks with ~20 threads but the shared adapter keeps only 10
        # connections per host, so the rest are closed and reopened (a TLS handshake each
        # time on a real server). Keep enough of them.
        HttpInterface.adaptor.init_poolmanager(10, POOL_MAXSIZE)
        HttpInterface.adaptor._pool_maxsize = POOL_MAXSIZE
    if _installed:
        return

    adaptor = HttpInterface.adaptor
    original = adaptor.send

    def send(request, *args, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = DEFAULT_TIMEOUT
        t0 = time.monotonic()
        try:
            resp = original(request, *args, **kwargs)
        except Exception as exc:
            record(request.url, None, type(exc).__name__)
            raise
        _local.waited = time.monotonic() - t0  # (the body is read after this returns)
        record(request.url, resp.status_code)
        return resp

    adaptor.send = send
    _installed = True


def _timed(get_file):
    """``HttpInterface.get_file`` recording each successful read's time, time to the
    answer's start (from the adapter's ``send`` in the same thread) and bytes."""
    import functools

    @functools.wraps(get_file)
    def timed(self, *args, **kwargs):
        _local.waited = None
        t0 = time.monotonic()
        out = get_file(self, *args, **kwargs)
        seconds = time.monotonic() - t0
        content = out[0] if isinstance(out, tuple) and out else None
        waited = _local.waited
        if content and waited is not None:
            record(self._path.host, 200, None, (seconds, waited, len(content), t0 + seconds))
        return out

    return timed


#: Hedged requests (Dean and Barroso, "The Tail at Scale"): a chunk read that has taken
#: longer than nearly all recent ones is asked for a second time, and the first answer is
#: used. Over a link that waits on round trips a straggler (a slow server replica, a lost
#: packet) holds up its whole slab; a second request usually comes back in one round trip.
#: Not when bodies take the time (the bandwidth is the limit: a second copy would only
#: share it), and at most HEDGE_BUDGET of requests, so a slow server is not doubled.
HEDGE_QUANTILE = 0.95
HEDGE_MIN_S = 0.05
HEDGE_SAMPLES = 20
HEDGE_BUDGET = 0.05
_hedge_pool = None
_hedge_lock = threading.Lock()


def hedge_delay(host: str | None = None) -> float | None:
    """Seconds after which a chunk read (from ``host``: each server is judged by its own
    reads; None: any) is asked for again: the HEDGE_QUANTILE of the last 200 reads'
    times, at least twice their median and HEDGE_MIN_S; None when there are too few
    reads, the bandwidth is the limit, or the budget is spent."""
    if os.environ.get("IMAGERY_GUI_NO_HEDGE"):  # (for benchmarks: the same without)
        return None
    recent: list[float] = []
    with _lock:
        for _t, h, seconds, _w, _b in reversed(_transfers):
            if host is None or h == host:
                recent.append(seconds)
                if len(recent) == 200:
                    break
        budget = HEDGE_BUDGET * _totals["requests"] + 2 - _totals["hedges"]
    if len(recent) < HEDGE_SAMPLES or budget < 1:
        return None
    share = body_share(hosts=None if host is None else frozenset([host]))
    if share is not None and share >= 0.5:
        return None
    recent.sort()
    q = recent[min(int(HEDGE_QUANTILE * len(recent)), len(recent) - 1)]
    return max(q, 2 * recent[len(recent) // 2], HEDGE_MIN_S)


def _hedged(get_file):
    """``get_file`` with a second request for stragglers (see HEDGE_QUANTILE)."""
    import concurrent.futures as cf
    import functools

    @functools.wraps(get_file)
    def hedged(self, *args, **kwargs):
        global _hedge_pool
        delay = hedge_delay(urlsplit(self._path.host).netloc)
        if delay is None:
            return get_file(self, *args, **kwargs)
        with _hedge_lock:
            if _hedge_pool is None:
                _hedge_pool = cf.ThreadPoolExecutor(1024, thread_name_prefix="imagery-gui-get")
        first = _hedge_pool.submit(get_file, self, *args, **kwargs)
        try:
            return first.result(timeout=delay)
        except cf.TimeoutError:
            pass
        with _lock:
            _totals["hedges"] += 1
        second = _hedge_pool.submit(get_file, self, *args, **kwargs)
        pending = {first, second}
        error: BaseException | None = None
        while pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                if fut.exception() is None:
                    if fut is second:
                        with _lock:
                            _totals["hedges_won"] += 1
                    return fut.result()
                error = error or fut.exception()
        assert error is not None
        raise error

    return hedged
