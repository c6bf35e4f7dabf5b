"""Slab reads in a separate process, so that downloading never competes with the GUI.

A read over the network runs twenty download threads, and each takes Python's GIL to
handle its request and decode its chunk. In the viewer's own process the GUI thread then
waits its turn for the GIL at every step of a frame: scrubbing with 100 ms latency and 20%
of requests failing, single frames took 50-100 ms (``benchmarks/bench_remote.py``). Here
the reads run in a child process with a GIL of its own; the viewer's process only
receives finished slabs, straight into numpy arrays (the bytes are read from a local
socket with the GIL released), whatever amount of work the child does.

``FetchProcess.fetch(key)`` blocks until the slab is there (or raises the error the read
raised, as the same exception type); callers that give up on a read simply stop waiting.
HTTP outcomes seen in the child are forwarded to this process's :mod:`netwatch`, so
"the server answered 503, retrying" is reported as before. If the child dies, pending and
later reads fail with :class:`SourceUnavailableError` and :func:`shared` starts a new
one. Qt-free. The child is a fresh interpreter (never a fork of the threaded GUI process)
that connects back over 127.0.0.1 with a random key.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pickle
import socket
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import startlog
from . import chunkpool, netwatch, pages, shardindex
from .errors import SourceError, SourceUnavailableError

#: Datasets the child keeps open (the newest ones); older reads of a dropped one fail.
CHILD_DATASETS = 4
#: Seconds the child may take to start (Python, then connect back) before it counts as dead.
CONNECT_TIMEOUT_S = 30.0
#: glibc's allocator, for the read process: by default each of its 20 download threads
#: gets an arena, and after a few large frees the threshold above which memory is mapped
#: (and given back when freed) rises to 32 MiB, so decoded chunks and slab arrays stay in
#: the heap. The reader then grew to 450 MiB within a minute of browsing; with a fixed
#: threshold and two arenas it stays near 150 MiB (benchmarks/bench_longrun.py).
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}
#: The bundled app's argument that makes it the read process.
READER_FLAG = "--imagery-gui-read-process"
#: Slabs each way around a read of a sharded layer whose shard indexes are fetched beside it.
SHARD_WARM_SLABS = 4
#: How often the child forwards HTTP outcomes to the parent.
NET_FORWARD_S = 0.2


@dataclass(frozen=True)
class ChildConfig:
    # chunks in flight per layer read: a 1024x1024 view at 4 nm over 128x128 chunks is 64
    # image chunks per slab, so one round trip brings the whole slab (20 took four)
    download_threads: int = 64
    # every read's chunks in one pool, the slab on screen first (chunkpool);
    # IMAGERY_GUI_NO_CHUNK_POOL=1: cloud-volume's threads per read (for benchmarks' A/B)
    chunk_pool: bool = field(
        default_factory=lambda: not os.environ.get("IMAGERY_GUI_NO_CHUNK_POOL")
    )
    chunk_threads: int = chunkpool.THREADS
    # shard and minishard indexes fetched once per session (shardindex);
    # IMAGERY_GUI_NO_SHARD_INDEXES=1: fetched again by every read (for benchmarks' A/B)
    shard_indexes: bool = field(
        default_factory=lambda: not os.environ.get("IMAGERY_GUI_NO_SHARD_INDEXES")
    )
    viewer_retries: bool = True
    nice: int = 10  # lower CPU priority than the viewer (POSIX; ignored elsewhere)


class Outcome:
    """The result of work done elsewhere: ``done`` is set when ``value`` or ``error`` is."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class FetchProcess:
    """Parent-side handle of the read process. Thread-safe."""

    def __init__(self, config: ChildConfig | None = None) -> None:
        import secrets
        import subprocess
        from multiprocessing.connection import Listener

        authkey = secrets.token_bytes(32)
        # A loopback socket rather than multiprocessing's spawn: the child starts as
        # ``python -m imagery_gui.model.fetchproc`` (or the bundled app with a flag) and
        # never re-imports the parent's main module, the same on every platform.
        self._listener = Listener(("127.0.0.1", 0), authkey=authkey)
        host, port = self._listener.address
        env = dict(os.environ, IMAGERY_GUI_READER_KEY=authkey.hex(), **MALLOC_ENV)
        env.setdefault(pages.HUGEPAGE_ENV, "0")  # as the viewer's (pages.small_pages)
        self._proc = subprocess.Popen(
            [*child_command(), f"{host}:{port}"],
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self._config = config or ChildConfig()
        self._conn: Any = None
        self._backlog: list[tuple] = []  # sent once the child connects
        self._ready = threading.Event()  # connected, or dead
        self._warm = threading.Event()  # the child has imported and warmed up its readers
        self._send_lock = threading.Lock()
        self._pending: dict[int, Outcome] = {}
        self._tags: dict[int, Any] = {}  # rid -> its caller's tag (rerank), while pending
        self._pending_lock = threading.Lock()
        self._rids = itertools.count(1)
        self.dead: str | None = None  # why the child is gone
        self.slabs_received = 0
        self._receiver = threading.Thread(
            target=self._receive, name="imagery-gui-reader-pipe", daemon=True
        )
        self._receiver.start()

    # -- requests ----------------------------------------------------------------------------
    def _send(self, msg: tuple) -> None:
        """Send now, or queue until the child has connected (never blocks on its start)."""
        if self.dead is not None:
            raise SourceUnavailableError(f"the read process stopped ({self.dead})")
        try:
            with self._send_lock:
                if self._conn is None:
                    self._backlog.append(msg)
                else:
                    self._conn.send(msg)
        except (OSError, ValueError) as exc:
            self._die(f"cannot reach it: {exc}")
            raise SourceUnavailableError(f"the read process stopped ({self.dead})") from None

    def set_dataset(self, serial: int, dataset_args: dict) -> None:
        """Make the dataset built from ``dataset_args`` readable as ``serial``."""
        self._send(("open", serial, dataset_args))

    def fetch(self, key: Any, rank: int = chunkpool.AHEAD, tag: Any = None) -> Any:
        """Read one slab (a :class:`~imagery_gui.model.view.SlabKey`); blocks until done.
        ``rank``: its chunks' place in the child's queue (chunkpool.URGENT: the view waits
        for it; AHEAD: read ahead, served in the order reads started); ``tag``: what
        :meth:`rerank` knows this read by (default: its key)."""
        rid = next(self._rids)
        pending = Outcome()
        with self._pending_lock:
            self._pending[rid] = pending
            self._tags[rid] = key if tag is None else tag
        try:
            self._send(("fetch", rid, key, int(rank)))
        except BaseException:
            with self._pending_lock:
                self._pending.pop(rid, None)
                self._tags.pop(rid, None)
            raise
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.value

    def rerank(self, tag: Any, rank: int) -> None:
        """Serve the chunks of the reads tagged ``tag`` under way by ``rank`` from now on
        (chunkpool.UNWANTED: no view wants it any more, its chunks wait for the others;
        DROPPED: given up on, its chunks not yet asked for are not)."""
        with self._pending_lock:
            rids = [rid for rid, t in self._tags.items() if t == tag]
        for rid in rids:
            with contextlib.suppress(SourceUnavailableError):
                self._send(("rank", rid, int(rank)))

    def is_warm(self) -> bool:
        """Whether reads here are fast now: connected, alive, and the child has imported
        cloud-volume and its codecs (until then the viewer reads its first views itself)."""
        return self._warm.is_set() and self.dead is None

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Wait until reads here are fast (:meth:`is_warm`); False if it died or time ran out."""
        return self._warm.wait(timeout) and self.dead is None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the child has started and connected; False if it died or time ran out."""
        return self._ready.wait(timeout) and self.dead is None

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self.dead is None and self._proc.poll() is None

    def close(self, timeout: float = 2.0) -> None:
        """Stop the child (politely, then by force) and fail anything still pending."""
        import subprocess

        if self.dead is None and self._conn is not None:
            try:
                with self._send_lock:
                    self._conn.send(("quit",))
            except (OSError, ValueError):
                pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout)
        self._die("closed")
        self._listener.close()
        if self._conn is not None:
            self._conn.close()
        self._receiver.join(timeout)

    # -- results -----------------------------------------------------------------------------
    def _die(self, why: str) -> None:
        if self.dead is None:
            self.dead = why
        self._ready.set()
        self._warm.set()  # nobody waits for a dead child to warm up (is_warm() stays False)
        with self._pending_lock:
            pending, self._pending = self._pending, {}
            self._tags.clear()
        for p in pending.values():
            p.error = SourceUnavailableError(f"the read process stopped ({self.dead})")
            p.done.set()

    def _finish(self, rid: int, value: Any = None, error: BaseException | None = None) -> None:
        with self._pending_lock:
            p = self._pending.pop(rid, None)
            self._tags.pop(rid, None)
        if p is not None:
            p.value, p.error = value, error
            p.done.set()

    def _accept(self) -> bool:
        """Wait for the child to connect; False if it exited or never did."""
        # multiprocessing's Listener keeps its SocketListener private (not in typeshed).
        sock = self._listener._listener._socket  # type: ignore[attr-defined]
        sock.settimeout(0.2)
        t0 = time.monotonic()
        while self.dead is None:
            try:
                conn = self._listener.accept()
            except TimeoutError:
                if self._proc.poll() is not None:
                    self._die(f"it exited with code {self._proc.returncode} before starting")
                    return False
                if time.monotonic() - t0 > CONNECT_TIMEOUT_S:
                    self._die(f"it did not start within {CONNECT_TIMEOUT_S:g} s")
                    return False
                continue
            except OSError as exc:
                self._die(f"it could not connect: {exc}")
                return False
            with self._send_lock:
                conn.send(self._config)
                for msg in self._backlog:
                    conn.send(msg)
                self._backlog.clear()
                self._conn = conn
            self._ready.set()
            return True
        return False

    def _receive(self) -> None:
        from .view import SlabData

        if not self._accept():
            return
        conn = self._conn
        sock = _raw_socket(conn)
        while True:
            try:
                msg = conn.recv()
                kind = msg[0]
                if kind == "slab":
                    _, rid, key, layout = msg
                    arrays = {}
                    for name, shape, dtype in layout:
                        arr = np.empty(shape, dtype=dtype)
                        _recv_exact(sock, arr)
                        arrays[name] = arr
                    self.slabs_received += 1
                    slab = SlabData(
                        key,
                        arrays.get("image"),
                        arrays.get("local"),
                        arrays.get("ids", np.zeros(1, dtype=np.uint64)),
                        arrays.get("missing"),
                    )
                    self._finish(rid, slab)
                elif kind == "error":
                    _, rid, blob, text = msg
                    self._finish(rid, error=_unpickle_error(blob, text))
                elif kind == "net":
                    for url, status, error, transfer in msg[1]:
                        netwatch.record(url, status, error, transfer)
                elif kind == "warm":
                    self._warm.set()
            except (EOFError, OSError) as exc:
                code = self._proc.poll()
                self._die(
                    ("it exited" + (f" with code {code}" if code is not None else ""))
                    if isinstance(exc, EOFError)
                    else str(exc)
                )
                return
            except BaseException as exc:  # a bug here: fail loudly, never leave reads waiting
                self._die(f"{type(exc).__name__}: {exc}")
                self._proc.kill()
                raise


def _raw_socket(conn: Any) -> socket.socket:
    """The connection's socket, for array bytes sent unframed after their header message.

    ``Connection.recv_bytes_into`` reads a message into a BytesIO and copies it out, with
    the GIL held for each copy: 30 ms for a 32 MB slab, the length of a GUI frame or two.
    ``recv_into`` straight into the array releases the GIL and copies nothing."""
    return socket.socket(fileno=os.dup(conn.fileno()))


def _recv_exact(sock: socket.socket, arr: np.ndarray) -> None:
    view = arr.reshape(-1).view(np.uint8).data
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("the read process closed the connection mid-slab")
        got += k


def _send_all(sock: socket.socket, arr: np.ndarray) -> None:
    sock.sendall(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data)


def child_command() -> list[str]:
    """How to start the read process: this package's module, or the bundled app itself."""
    if getattr(sys, "frozen", False):
        return [sys.executable, READER_FLAG]
    return [sys.executable, "-m", "imagery_gui.model.fetchproc"]


_shared: FetchProcess | None = None
_shared_lock = threading.Lock()


def shared() -> FetchProcess:
    """The process-wide read process, started on first use and again if it died."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive:
            if _shared is None:
                atexit.register(close_shared)
            else:
                _shared.close()
            _shared = FetchProcess()
        return _shared


def current() -> FetchProcess | None:
    """The process-wide read process if one was started (alive or not), else None."""
    with _shared_lock:
        return _shared


def close_shared() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None


def _unpickle_error(blob: bytes | None, text: str) -> BaseException:
    if blob is not None:
        try:
            exc = pickle.loads(blob)
            if isinstance(exc, BaseException):
                return exc
        except Exception:  # noqa: BLE001 - fall back to the message
            pass
    return SourceError(text)


# -- the child -------------------------------------------------------------------------------
def _child_main(conn: Any, config: ChildConfig) -> None:
    import cloudvolume.datasource.precomputed.image.rx as rx

    from .dataset import Dataset
    from .view import fetch_slab, warm_slab_indexes

    rx.DEFAULT_THREADS = config.download_threads
    if config.chunk_pool:
        chunkpool.install(config.chunk_threads)
    if config.shard_indexes:
        shardindex.install()
    if config.nice:
        # Decoding must not take the CPU from the GUI thread when cores are scarce (on
        # two cores, with 20% of requests failing, one scrub in two without this had a
        # 57 ms frame; with it, none above 30 ms).
        with contextlib.suppress(AttributeError, OSError):
            os.nice(config.nice)
    netwatch.install(viewer_retries=config.viewer_retries)
    events: list[tuple[str, int | None, str | None, tuple | None]] = []
    events_lock = threading.Lock()
    urgent = threading.Event()

    def forward(url: str, status: int | None, error: str | None, transfer) -> None:
        with events_lock:
            events.append((url, status, error, transfer))
        if error is not None or (status is not None and (status >= 500 or status == 429)):
            urgent.set()  # failures are news now: the status bar says "retrying"

    netwatch.set_forward(forward)
    send_lock = threading.Lock()
    datasets: OrderedDict[int, Dataset | BaseException] = OrderedDict()
    parent = os.getppid()

    sock = _raw_socket(conn)

    def send(msg: tuple, buffers: list[np.ndarray] | None = None) -> None:
        with send_lock:
            conn.send(msg)
            for buf in buffers or ():
                _send_all(sock, buf)

    def flush_events() -> None:
        with events_lock:
            batch = events[:]
            events.clear()
        if batch:
            send(("net", batch))

    def forwarder() -> None:
        while True:
            urgent.wait(NET_FORWARD_S)
            urgent.clear()
            try:
                flush_events()
            except (OSError, ValueError):
                return
            if os.getppid() != parent:
                os._exit(0)  # the viewer is gone

    first_read = [True]
    indexes_asked: set[tuple[Any, ...]] = set()  # (dataset, region, z window) warmed
    unsharded: set[int] = set()  # datasets with no sharded layer

    def warm_indexes(ds: Any, key: Any) -> None:
        """At a read of a sharded layer, fetch the shard indexes of the slabs around it
        (SHARD_WARM_SLABS each way) beside it, once per window: the reads ahead then
        ask for their chunks alone instead of a chain of index, minishard index and
        chunk requests, each retried on its own (4-5 s at 400 ms with 30% failing)."""
        if not config.shard_indexes or key.dataset in unsharded:
            return
        sharded = ds.sharded_scales()
        if not sharded:
            if sharded is False:
                unsharded.add(key.dataset)
            return
        span = SHARD_WARM_SLABS * max(1, key.depth)
        window = (key.dataset, key.region, key.timestamp, key.z0 // span)
        if window in indexes_asked:
            return
        if len(indexes_asked) > 4096:
            indexes_asked.clear()
        indexes_asked.add(window)
        z_lo = (key.z0 // span - 1) * span
        z_hi = (key.z0 // span + 2) * span

        def run() -> None:
            # after every wanted read's chunks: never ahead of the slab on screen
            with contextlib.suppress(Exception), chunkpool.ranked(chunkpool.UNWANTED):
                if not warm_slab_indexes(ds, key, z_lo, z_hi):
                    unsharded.add(key.dataset)

        threading.Thread(target=run, name="shard-indexes", daemon=True).start()

    tickets: dict[int, chunkpool.Ticket] = {}  # reads under way: their place in the queue
    reranks: dict[int, int] = {}  # ranks for reads whose ticket is not made yet

    def read(rid: int, key: Any, rank: int = chunkpool.AHEAD) -> None:
        msg: tuple[Any, ...]  # ("error", rid, pickled, text) or ("slab", rid, key, layout)
        buffers: list[np.ndarray]
        try:
            ds = datasets.get(key.dataset)
            if ds is None:
                raise SourceUnavailableError("that data was closed; open it again")
            if isinstance(ds, BaseException):
                raise ds
            warm_indexes(ds, key)
            # a rerank that came before this thread made its ticket holds (reranks[rid])
            with chunkpool.ranked(reranks.pop(rid, rank)) as ticket:
                tickets[rid] = ticket
                slab = fetch_slab(ds, key)
        except BaseException as exc:  # noqa: BLE001 - handed to the parent
            try:
                blob = pickle.dumps(exc)
            except Exception:  # noqa: BLE001 - unpicklable: send the text
                blob = None
            msg, buffers = ("error", rid, blob, f"{type(exc).__name__}: {exc}"), []
        else:
            fields = [
                (name, getattr(slab, name))
                for name in ("image", "local", "ids", "missing")
                if getattr(slab, name) is not None
            ]
            layout = [(name, arr.shape, arr.dtype.str) for name, arr in fields]
            msg, buffers = ("slab", rid, key, layout), [arr for _, arr in fields]
            if first_read[0]:
                first_read[0] = False
                startlog.mark("read process first slab")
        tickets.pop(rid, None)
        reranks.pop(rid, None)
        with contextlib.suppress(OSError, ValueError):  # the parent is gone
            # the HTTP outcomes of this read first: the viewer says "retrying" by them, and
            # a read whose retries took less than one forwarding period would otherwise
            # arrive before them
            flush_events()
            send(msg, buffers)

    def warm() -> None:
        from .source import warm_up

        with contextlib.suppress(Exception):  # only a head start
            warm_up()
        startlog.mark("read process warm")
        with contextlib.suppress(OSError, ValueError):
            send(("warm",))

    threading.Thread(target=forwarder, name="net-forward", daemon=True).start()
    threading.Thread(target=warm, name="warm-up", daemon=True).start()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        kind = msg[0]
        if kind == "fetch":
            threading.Thread(target=read, args=msg[1:], name="read", daemon=True).start()
        elif kind == "rank":
            _, rid, rank = msg
            ticket = tickets.get(rid)
            if ticket is not None:
                ticket.rerank(rank)
            else:  # its read thread has not made its ticket yet (or it has ended)
                reranks[rid] = rank
        elif kind == "open":
            _, serial, args = msg
            try:
                datasets[serial] = Dataset(**args)
            except BaseException as exc:  # noqa: BLE001 - reported by every read of it
                datasets[serial] = exc
            while len(datasets) > CHILD_DATASETS:
                datasets.popitem(last=False)
        elif kind == "quit":
            break
    os._exit(0)  # daemon read threads may still be waiting on the network


def child_entry(address: str) -> None:
    """Main of the read process: connect back to the viewer, then serve it."""
    import logging
    from multiprocessing.connection import Client

    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    host, port = address.rsplit(":", 1)
    authkey = bytes.fromhex(os.environ.pop("IMAGERY_GUI_READER_KEY", ""))
    conn = Client((host, int(port)), authkey=authkey)
    config = conn.recv()
    _child_main(conn, config)


if __name__ == "__main__":
    # Run the copy imported under the package name, not this __main__ one (one set of
    # classes for pickling, one netwatch).
    from imagery_gui.model.fetchproc import child_entry as _entry

    _entry(sys.argv[1])
