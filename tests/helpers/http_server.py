"""A loopback HTTP server for Precomputed folders, with injectable latency and failures.

Serves what cloud-volume expects over http: a request for ``<key>`` with no such file but a
``<key>.gz`` is answered with the gzip bytes and ``Content-Encoding: gzip``. Binds to
127.0.0.1 only, on a free port, and stops when the context manager exits (or after a hard
time limit, so a crashed test never leaves it running).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_ENCODINGS = ((".gz", "gzip"), (".br", "br"), (".zstd", "zstd"))


class _Server(ThreadingHTTPServer):
    # TCPServer's default listen backlog is 5: cloud-files opens about 20 connections at
    # once, and connections beyond the backlog have their SYN dropped and retried after 1,
    # 3, 7 s, which looks like a slow server. Real servers have large backlogs.
    request_queue_size = 256
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up mid-response (an abandoned read) is not a server error.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class BoundedServer:
    """Base of the tests' servers: a ThreadingHTTPServer on 127.0.0.1 (a free port) served
    from a daemon thread, which stops by itself after ``max_seconds``."""

    max_seconds: float = 600.0
    _server: ThreadingHTTPServer | None = None
    _timer: threading.Timer | None = None

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._timer = threading.Timer(self.max_seconds, self.stop)
        self._timer.daemon = True
        self._timer.start()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._timer is not None:
            self._timer.cancel()

    def __exit__(self, *exc) -> None:
        self.stop()


#: Bytes of an answer sent at a time under a ``bandwidth`` limit.
_PIECE = 16 * 1024


class LoopbackServer(BoundedServer):
    """``with LoopbackServer(root, latency=0.1, fail_rate=0.2) as srv: srv.url``.

    Attributes can be changed while running: ``latency`` (s), ``jitter`` (s), ``fail_rate``,
    ``fail_status``, ``down`` (every request fails), ``spare_metadata`` (never fail
    ``info``/``provenance``), ``hang`` (hold requests this many seconds, as a dead server),
    ``corrupt`` (a set of path substrings answered with garbage bytes), ``bandwidth``
    (bytes a second all answers share, one after another as on one link; 0: no limit),
    ``straggle_rate`` and ``straggle`` (that share of requests waits that many seconds
    more: stragglers).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        latency: float = 0.0,
        jitter: float = 0.0,
        fail_rate: float = 0.0,
        fail_status: int = 503,
        spare_metadata: bool = True,
        seed: int = 0,
        max_seconds: float = 600.0,
        bandwidth: float = 0.0,
        straggle_rate: float = 0.0,
        straggle: float = 0.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.bandwidth = bandwidth
        self.straggle_rate = straggle_rate
        self.straggle = straggle
        self._link_free = 0.0  # when the shared link has sent what it was given
        self.latency = latency
        self.jitter = jitter
        self.fail_rate = fail_rate
        self.fail_status = fail_status
        self.spare_metadata = spare_metadata
        self.down = False
        self.hang = 0.0
        self.corrupt: set[str] = set()
        self.max_seconds = max_seconds
        self.counts: Counter[str] = Counter()
        self.log: list[str] = []  # paths requested, in order
        self.ranges: list[tuple[str, str]] = []  # (path, Range header or "") in order
        # (time.monotonic() when the request came in, before any delay; path)
        self.arrivals: list[tuple[float, str]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def source(self, relpath: str) -> str:
        return f"precomputed://{self.url}/{relpath.strip('/')}"

    def _decide_failure(self, path: str) -> bool:
        if self.down:
            return True
        if self.spare_metadata and path.rsplit("/", 1)[-1] in ("info", "provenance"):
            return False
        with self._lock:
            return self._rng.random() < self.fail_rate

    def _delay(self) -> float:
        with self._lock:
            delay = self.latency + (self._rng.uniform(0, self.jitter) if self.jitter else 0.0)
            if self.straggle_rate and self._rng.random() < self.straggle_rate:
                self.counts["straggled"] += 1
                delay += self.straggle
            return delay

    def _wait_for_link(self, nbytes: int) -> None:
        """With a ``bandwidth``, wait until the shared link has room for ``nbytes`` more
        (answers are sent in pieces, each waiting its turn: concurrent answers share the
        link about equally, as flows on a bottleneck link do)."""
        if not self.bandwidth:
            return
        with self._lock:
            start = max(time.monotonic(), self._link_free)
            self._link_free = start + nbytes / self.bandwidth
            until = self._link_free
        time.sleep(max(until - time.monotonic(), 0.0))

    def __enter__(self) -> LoopbackServer:
        server_ref = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if not server_ref.bandwidth:
                    self.wfile.write(body)
                    return
                for i in range(0, len(body), _PIECE):
                    piece = body[i : i + _PIECE]
                    server_ref._wait_for_link(len(piece))
                    self.wfile.write(piece)
                    self.wfile.flush()

            def do_HEAD(self) -> None:
                self.do_GET()

            def _send_file(self, data: bytes) -> None:
                """The file, or the one byte range asked for (``bytes=a-b``, ``a-``, ``-n``):
                sharded layers read their shard indexes and chunks by range."""
                headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
                rng = self.headers.get("Range", "")
                m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
                if not m or not (m.group(1) or m.group(2)):
                    self._send(200, data, headers)
                    return
                n = len(data)
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), n - 1) if m.group(2) else n - 1
                else:
                    start, end = max(0, n - int(m.group(2))), n - 1
                if start >= n or start > end:
                    self._send(416, b"", {"Content-Range": f"bytes */{n}"})
                    return
                headers["Content-Range"] = f"bytes {start}-{end}/{n}"
                self._send(206, data[start : end + 1], headers)

            def do_GET(self) -> None:
                srv = server_ref
                path = unquote(urlsplit(self.path).path)
                with srv._lock:
                    srv.arrivals.append((time.monotonic(), path))
                if srv.hang:
                    time.sleep(srv.hang)
                delay = srv._delay()
                if delay:
                    time.sleep(delay)
                with srv._lock:
                    srv.counts["requests"] += 1
                    srv.log.append(path if self.command == "GET" else f"{self.command} {path}")
                    srv.ranges.append((path, self.headers.get("Range", "")))
                if srv._decide_failure(path):
                    with srv._lock:
                        srv.counts["failed"] += 1
                    self._send(srv.fail_status, b"injected failure")
                    return
                target = (srv.root / path.lstrip("/")).resolve()
                if srv.root not in target.parents and target != srv.root:
                    self._send(403, b"outside root")
                    return
                if any(s in path for s in srv.corrupt):
                    self._send(
                        200, b"\x00garbage\xff" * 7, {"Content-Type": "application/octet-stream"}
                    )
                    return
                if target.is_file():
                    self._send_file(target.read_bytes())
                    return
                for suffix, enc in _ENCODINGS:
                    alt = target.with_name(target.name + suffix)
                    if alt.is_file():
                        self._send(200, alt.read_bytes(), {"Content-Encoding": enc})
                        return
                with srv._lock:
                    srv.counts["missing"] += 1
                self._send(404, b"not found")

        self._serve(Handler)
        return self


def main() -> None:
    """Run as a process: ``python -m tests.helpers.http_server ROOT [options]``.

    Prints ``serving http://127.0.0.1:PORT`` and serves until killed or ``--seconds`` pass.
    """
    import argparse
    import signal

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("root")
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=1800.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bandwidth-mbps", type=float, default=0.0, help="megabytes a second")
    ap.add_argument("--straggle-rate", type=float, default=0.0)
    ap.add_argument("--straggle-ms", type=float, default=0.0)
    a = ap.parse_args()
    srv = LoopbackServer(
        a.root,
        latency=a.latency_ms / 1000,
        jitter=a.jitter_ms / 1000,
        fail_rate=a.fail_rate,
        seed=a.seed,
        max_seconds=a.seconds,
        bandwidth=a.bandwidth_mbps * 1e6,
        straggle_rate=a.straggle_rate,
        straggle=a.straggle_ms / 1000,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with srv:
        print(f"serving {srv.url}", flush=True)
        done.wait(a.seconds)


if __name__ == "__main__":
    main()
