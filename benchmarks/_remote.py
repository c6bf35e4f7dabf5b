"""Helpers for the remote-source benchmarks: an HTTP server process and an offscreen viewer."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("IMAGERY_GUI_SETTINGS_DIR", tempfile.mkdtemp(prefix="bench-settings-"))


#: Another server script to use instead of tests/helpers/http_server.py, called as
#: ``SCRIPT ROOT 0 --latency-ms MS --fail-rate F --seed N --spare-metadata --seconds S``
#: (the interface of ../shared/tools/serve_http.py); set by the benchmarks' --server.
SERVER_SCRIPT: Path | None = None


def add_server_option(ap) -> None:
    ap.add_argument(
        "--server",
        type=Path,
        metavar="SCRIPT",
        help="serve with this script instead (e.g. ../shared/tools/serve_http.py)",
    )


def use_server(args) -> None:
    global SERVER_SCRIPT
    if args.server:
        SERVER_SCRIPT = args.server.resolve()


@contextlib.contextmanager
def http_server(
    root: Path,
    latency_ms: float = 0,
    fail_rate: float = 0,
    seed: int = 0,
    jitter_ms: float = 0,
    bandwidth_mbps: float = 0,
    straggle: tuple[float, float] = (0.0, 0.0),
):
    """The loopback server (tests/helpers/http_server.py, or SERVER_SCRIPT) as a separate
    process. Failures spare info/provenance in both, so a layer opens and chunks fail.
    ``jitter_ms``: each answer waits a further uniform random 0-jitter ms;
    ``bandwidth_mbps``: all answers share a link of that many MB/s; ``straggle`` = (share,
    ms): that share of requests waits that much longer (the project's server only)."""
    opts = ["--latency-ms", str(latency_ms), "--fail-rate", str(fail_rate), "--seed", str(seed)]
    if jitter_ms:
        opts += ["--jitter-ms", str(jitter_ms)]
    extra = []
    if bandwidth_mbps:
        extra += ["--bandwidth-mbps", str(bandwidth_mbps)]
    if straggle[0]:
        extra += ["--straggle-rate", str(straggle[0]), "--straggle-ms", str(straggle[1])]
    if extra and SERVER_SCRIPT is not None:
        raise SystemExit("--server: bandwidth limits and stragglers need the project's server")
    opts += extra
    if SERVER_SCRIPT is not None:
        cmd = [sys.executable, str(SERVER_SCRIPT), str(root), "0", *opts]
        cmd += ["--spare-metadata", "--seconds", "3600"]
    else:
        cmd = [sys.executable, "-m", "tests.helpers.http_server", str(root), *opts]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("serving "):
            raise RuntimeError(f"the HTTP server did not start: {line!r}")
        yield line.split()[1].rstrip("/")
    finally:
        proc.terminate()
        proc.wait(10)


def rechunked_demo(chunk: tuple[int, int, int] = (128, 128, 16), depth: int = 64) -> Path:
    """The demo volume written again with ``chunk``-sized chunks in both layers, ``depth``
    slices deep (the demo's 64, then again mirrored, back and forth: a scrub of 64 slices
    through the demo crosses the whole volume, and a prefetch of it would hold all of it;
    a deeper volume is what real data is). Made once, cached: the same voxels, other
    requests. (64, 64, 64) is igneous's default."""
    import numpy as np
    from cloudvolume import CloudVolume

    from imagery_gui.model.demo import cache_root, ensure_demo
    from imagery_gui.model.writer import write_precomputed

    deep = f"-z{depth}" if depth != 64 else ""
    root = cache_root() / f"bench-demo-{'x'.join(str(c) for c in chunk)}{deep}-v1"
    if (root / "image" / "info").is_file():
        return root
    demo = ensure_demo()
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for name, encoding in (("image", "jpeg"), ("segmentation", "compressed_segmentation")):
        cv = CloudVolume(f"file://{demo.root / name}", progress=False)
        arr = np.asarray(cv[cv.bounds])[..., 0]
        n = arr.shape[2]
        there_and_back = np.concatenate([np.arange(n), np.arange(n)[::-1]])
        arr = arr[:, :, np.resize(there_and_back, depth)]
        write_precomputed(
            tmp / name,
            arr,
            layer_type=name,
            resolution=tuple(float(v) for v in cv.resolution),
            voxel_offset=tuple(int(v) for v in cv.bounds.minpt),
            chunk_size=chunk,
            encoding=encoding,
            num_mips=len(cv.available_mips),
        )
    tmp.rename(root)
    return root


def sharded_demo(depth: int = 64, chunk: tuple[int, int, int] = (128, 128, 16)) -> Path:
    """The demo volume with its coarser scales (``depth`` slices deep, as
    :func:`rechunked_demo`) written again as sharded Precomputed (both layers, every scale,
    in ``chunk``-sized chunks, by default the demo's 128x128x16; about 8 MB of voxels per
    shard), as H01 and MICrONS serve theirs (made once, cached)."""
    from imagery_gui.model.demo import cache_root, ensure_demo
    from tests.helpers.volumes import sharded_copy

    chunk = (int(chunk[0]), int(chunk[1]), int(chunk[2]))
    deep = f"-z{depth}" if depth != 64 else ""
    shape = "" if chunk == (128, 128, 16) else "-c" + "x".join(str(c) for c in chunk)
    root = cache_root() / f"bench-demo-sharded{deep}{shape}-v2"
    if (root / "image" / "info").is_file():
        return root
    if depth == 64 and not shape:
        src = ensure_demo().root
    else:
        src = rechunked_demo(chunk, depth=depth)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in ("image", "segmentation"):
        sharded_copy(f"file://{src / name}", tmp / name, mips=99)
    tmp.rename(root)
    return root


def big_volume() -> Path:
    """A bigger volume than the demo (made once, cached): image 3072 x 3072 x 16 at 4 nm
    (JPEG), segmentation 1536 x 1536 x 16 at 8 nm with ~1,500 cells, so that a 1920x1080
    window asks for multi-megapixel regions as real data does."""
    import numpy as np
    from scipy.spatial import cKDTree

    from imagery_gui.model.demo import cache_root
    from imagery_gui.model.writer import write_precomputed

    root = cache_root() / "bench-big-v1"
    if (root / "image" / "info").is_file():
        return root
    tmp = root.with_name(root.name + ".partial")
    rng = np.random.default_rng(1)
    nz, sx = 16, 1536
    pts = rng.integers(0, sx, (1500, 2))
    yy, xx = np.mgrid[0:sx, 0:sx]
    _, idx = cKDTree(pts).query(np.stack([xx.ravel(), yy.ravel()], 1))
    cells = (idx.reshape(sx, sx).T + 1).astype(np.uint64) + np.uint64(864691135000000000)  # x, y
    edge = np.zeros(cells.shape, dtype=bool)
    edge[:-1] |= cells[:-1] != cells[1:]
    edge[:, :-1] |= cells[:, :-1] != cells[:, 1:]
    base = np.where(np.repeat(np.repeat(edge, 2, 0), 2, 1), 60, 170).astype(np.int16)
    noise = rng.integers(-30, 30, (2 * sx, 2 * sx, nz), dtype=np.int16)
    image = np.clip(base[:, :, None] + noise, 0, 255).astype(np.uint8)
    seg = np.repeat(cells[:, :, None], nz, axis=2)
    common = {"chunk_size": (128, 128, 16), "num_mips": 3}
    write_precomputed(
        tmp / "segmentation",
        seg,
        layer_type="segmentation",
        resolution=(8, 8, 40),
        encoding="compressed_segmentation",
        **common,
    )
    write_precomputed(
        tmp / "image", image, layer_type="image", resolution=(4, 4, 40), encoding="jpeg", **common
    )
    tmp.rename(root)
    return root


def viewer_window(settings, size: tuple[int, int]):
    from imagery_gui.app import create_window

    win = create_window(settings=settings)
    win.persist_settings = False
    win.resize(*size)
    win.show()
    return win


def open_served_demo(win, url: str, demo) -> None:
    """Open the demo volume as served at ``url`` (returns at once)."""
    from imagery_gui.qt.dialogs import OpenRequest

    win.open_sources(
        OpenRequest(
            f"precomputed://{url}/image",
            f"precomputed://{url}/segmentation",
            list(demo.center),
            None,
        )
    )


def pump(app, cond, timeout: float = 120.0) -> None:
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.0005)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the viewer did not finish in time")


def run_for(app, seconds: float) -> None:
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.001)


#: Gaps at least this long are also kept with when they ended, to compare across processes.
STALL_S = 0.05


class Heartbeat:
    """Largest gap between ticks of a 2 ms timer in the GUI thread: the longest stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.gaps: list[float] = []
        self.stalls: list[tuple[float, float]] = []  # (perf_counter at the end, seconds)
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(2)
        self._timer.timeout.connect(self._tick)
        self._last = 0

        self.last_tick = 0.0  # perf_counter of the last tick (for StallTracer)
        self.tracer: StallTracer | None = StallTracer(self) if TRACE_STALLS else None

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed()
        gap = (now - self._last) / 1e9
        self.gaps.append(gap)
        self.last_tick = time.perf_counter()
        if gap >= STALL_S:
            self.stalls.append((self.last_tick, gap))
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self.stalls.clear()
        self._clock.start()
        self._last = self._clock.nsecsElapsed()
        self.last_tick = time.perf_counter()
        self._timer.start()
        if self.tracer is not None:
            self.tracer.start()

    def stop(self) -> float:
        self._timer.stop()
        if self.tracer is not None:
            self.tracer.stop()
        return max(self.gaps) if self.gaps else 0.0


#: Innermost functions of a thread that is waiting, not running Python.
_PARKED = {"wait", "_wait_for_tstate_lock", "select", "poll", "get", "accept", "recv_into",
           "readinto", "_recv", "recv", "read", "sleep", "run_forever", "_run_once"}  # fmt: skip

#: ``--trace-stalls``: every Heartbeat also runs a StallTracer.
TRACE_STALLS = False


class StallTracer:
    """What the GUI thread was doing when it stalled: a thread that wakes every 5 ms and,
    when the heartbeat is 30 ms overdue, records the GUI thread's innermost frames and how
    late the tracer itself woke (late too: the GIL was held elsewhere, or no CPU was free);
    and every garbage collection of 2 ms or more, in any thread. Costs a little GIL time,
    so it is off unless asked for."""

    def __init__(self, beat: Heartbeat) -> None:
        import threading

        self._beat = beat
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread: Any = None
        self.samples: list[dict] = []
        self.collections: list[tuple[float, float, int]] = []  # (end, seconds, generation)
        self._gc_t0 = 0.0

    def _on_gc(self, phase: str, info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_t0 = now
        elif now - self._gc_t0 >= 0.002:
            self.collections.append((now, now - self._gc_t0, int(info.get("generation", -1))))

    def _loop(self) -> None:
        import threading
        import traceback

        period = 0.005
        due = time.perf_counter() + period
        while not self._stop.wait(max(0.0, due - time.perf_counter())):
            now = time.perf_counter()
            late = now - due
            due = now + period
            overdue = now - self._beat.last_tick
            if overdue < 0.03:
                continue
            frames = sys._current_frames()
            frame = frames.get(self._main)
            stack = [
                f"{Path(f.filename).name}:{f.lineno} {f.name}"
                for f in (traceback.extract_stack(frame)[-6:] if frame is not None else [])
            ]
            names = {t.ident: t.name for t in threading.enumerate()}
            busy = []  # other threads not parked in a wait: (name, innermost frame)
            for ident, f in frames.items():
                if ident in (self._main, threading.get_ident()):
                    continue
                top = f"{Path(f.f_code.co_filename).name}:{f.f_lineno} {f.f_code.co_name}"
                if f.f_code.co_name not in _PARKED:
                    busy.append(f"{names.get(ident, ident)}: {top}")
            self.samples.append(
                {"t": now, "overdue_ms": overdue * 1e3, "tracer_late_ms": late * 1e3,
                 "gui_stack": stack, "busy_threads": sorted(busy)}
            )  # fmt: skip

    def start(self) -> None:
        import gc
        import threading

        self.samples.clear()
        self.collections.clear()
        gc.callbacks.append(self._on_gc)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="stall-tracer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        import gc

        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def during(self, end: float, gap: float) -> dict:
        """What was seen during the stall that ended at ``end`` after ``gap`` seconds."""
        lo = end - gap - 0.005
        seen = [s for s in self.samples if lo <= s["t"] <= end + 0.005]
        gcs = [
            (round(g * 1e3, 1), gen) for e, g, gen in self.collections if e >= lo and e - g <= end
        ]
        stacks: list[list[str]] = []
        busy: list[str] = []
        for s in seen:
            if s["gui_stack"] not in stacks:
                stacks.append(s["gui_stack"])
            busy += [b for b in s["busy_threads"] if b not in busy]
        return {
            "busy_threads": busy[:8],
            "tracer_latest_ms": round(max((s["tracer_late_ms"] for s in seen), default=0.0), 1),
            "gc_ms_and_generation": gcs,
            "gui_stacks": stacks[:3],
        }


_IDLE_CODE = """
import os, sys, time
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {int(sys.argv[1])})
last = time.perf_counter()
while True:
    time.sleep(0.002)
    now = time.perf_counter()
    if now - last >= 0.02:
        print(f"{now:.4f} {now - last:.4f}", flush=True)
    last = now
"""


def steal_ticks() -> int:
    """CPU time the hypervisor gave to others while this (virtual) machine wanted it, in
    clock ticks, summed over CPUs (Linux; 0 elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return 0


class IdleReference:
    """One process per CPU, pinned to it, that only sleeps 2 ms at a time, running beside
    the viewer: how late they wake is what the machine does to any thread at that moment
    (a virtual machine's host taking a CPU, other processes), measured in the same run as
    the heartbeat. Also counts the CPU time stolen by the host meanwhile.

    ``perf_counter`` is the system's monotonic clock on Linux, so a GUI stall can be
    matched with a late wake-up at the same time."""

    def __init__(self) -> None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-c", _IDLE_CODE, str(cpu)], stdout=subprocess.PIPE, text=True
            )
            for cpu in cpus
        ]
        self._steal0 = steal_ticks()
        self._t0 = time.perf_counter()
        self.steal_s = 0.0
        self.seconds = 0.0
        self.late: list[tuple[float, float]] = []

    def stop(self) -> list[tuple[float, float]]:
        """Late wake-ups of 20 ms or more on any CPU: (perf_counter at the end, seconds)."""
        self.steal_s = (steal_ticks() - self._steal0) / os.sysconf("SC_CLK_TCK")
        self.seconds = time.perf_counter() - self._t0
        late = []
        for proc in self._procs:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
            late += [tuple(float(v) for v in line.split()) for line in out.splitlines() if line]
        self.late = sorted(late)
        return self.late


def stalls_report(
    stalls: list[tuple[float, float]], ref: IdleReference, beats: tuple[Heartbeat, ...] = ()
) -> dict:
    """GUI stalls of STALL_S or more, each marked whether an idle process woke late (by 20
    ms or more) at the same time, i.e. whether a CPU stood still then; the idle processes'
    latest wake-up (0 when never 20 ms late); CPU time stolen by the host meanwhile.
    ``ref`` has been stopped."""
    idle = ref.late

    def shared(end: float, gap: float) -> bool:
        return any(e > end - gap - 0.005 and e - g < end + 0.005 for e, g in idle)

    rows = [{"ms": round(g * 1e3, 1), "machine_stalled_too": shared(e, g)} for e, g in stalls]
    for row, (e, g) in zip(rows, stalls):
        for beat in beats:  # with --trace-stalls: what the tracers saw meanwhile
            if beat.tracer is not None and (seen := beat.tracer.during(e, g))["gui_stacks"]:
                row.update(seen)
    return {
        "gui_stalls_over_50ms": rows,
        "idle_process_longest_late_wakeup_ms": round(max((g for _, g in idle), default=0) * 1e3, 1),
        "cpu_time_stolen_by_host_s": round(ref.steal_s, 1),
        "run_s": round(ref.seconds, 1),
    }


def proc_stats(pid: int | str = "self") -> dict:
    """Resident memory (MiB), threads and open file descriptors of a process (Linux)."""
    rss = 0.0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    threads = len(os.listdir(f"/proc/{pid}/task"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_mib": rss, "threads": threads, "fds": fds}
