"""cloud-volume's disk cache of chunk files for remote data (Settings > Disk cache)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


def chunk_cache_dir() -> Path:
    from .demo import cache_root

    return cache_root() / "chunks"


def cache_path(enabled: bool) -> str | bool:
    """cloud-volume's ``cache=`` argument: the folder (created) when enabled, else False."""
    if not enabled:
        return False
    path = chunk_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def cache_bytes() -> int:
    """Bytes held by the disk cache (0 when there is none)."""
    total = 0
    for root, _, files in os.walk(chunk_cache_dir()):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total


def clear_cache() -> None:
    shutil.rmtree(chunk_cache_dir(), ignore_errors=True)
