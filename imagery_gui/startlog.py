"""Start-up milestones, for ``benchmarks/bench_startup.py``: with ``IMAGERY_GUI_STARTUP_LOG``
set to a file, each :func:`mark` appends ``NAME EPOCH_SECONDS`` to it (from the viewer and
from its read process). Otherwise nothing is written. Qt-free, imports nothing heavy."""

from __future__ import annotations

import os
import time

ENV = "IMAGERY_GUI_STARTUP_LOG"


def mark(name: str) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{name} {time.time():.4f}\n")
    except OSError:
        pass  # a measurement aid: never a reason to fail
