"""Helpers for the remote-source benchmarks: an HTTP server process and an offscreen viewer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
def http_server(root: Path, latency_ms: float = 0, fail_rate: float = 0, seed: int = 0):
    """The loopback server (tests/helpers/http_server.py, or SERVER_SCRIPT) as a separate
    process. Failures spare info/provenance in both, so a layer opens and chunks fail."""
    opts = ["--latency-ms", str(latency_ms), "--fail-rate", str(fail_rate), "--seed", str(seed)]
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


def viewer_window(settings, size: tuple[int, int]):
    from imagery_gui.qt.main_window import MainWindow

    win = MainWindow(settings=settings)
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


class Heartbeat:
    """Largest gap between ticks of a 2 ms timer in the GUI thread: the longest stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.gaps: list[float] = []
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(2)
        self._timer.timeout.connect(self._tick)
        self._last = 0

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed()
        self.gaps.append((now - self._last) / 1e9)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._clock.start()
        self._last = self._clock.nsecsElapsed()
        self._timer.start()

    def stop(self) -> float:
        self._timer.stop()
        return max(self.gaps) if self.gaps else 0.0


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
