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

import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

#: (connect, read) seconds for requests that came without a timeout.
DEFAULT_TIMEOUT = (10.0, 60.0)

_lock = threading.Lock()
_events: deque[tuple[float, str, int | None, str | None]] = deque(maxlen=4096)
_installed = False
_totals = {"requests": 0, "errors": 0}
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


def record(url: str, status: int | None, error: str | None = None) -> None:
    host = urlsplit(url).netloc
    bad = error is not None or (status is not None and (status >= 500 or status == 429))
    with _lock:
        _events.append((time.monotonic(), host, status, error))
        _totals["requests"] += 1
        _totals["errors"] += int(bad)
    if _forward is not None:
        _forward(url, status, error)


def set_forward(fn) -> None:
    """Also hand every outcome to ``fn(url, status, error)`` (the read process sends them
    on to the viewer's process)."""
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
            wrapped = getattr(HttpInterface, name).retry_with(**policy)
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
        try:
            resp = original(request, *args, **kwargs)
        except Exception as exc:
            record(request.url, None, type(exc).__name__)
            raise
        record(request.url, resp.status_code)
        return resp

    adaptor.send = send
    _installed = True
