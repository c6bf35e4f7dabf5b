"""Atomic file writes: a figure is either fully written or not there at all.

Every file imagery-gui writes goes to a temporary file in the destination folder first and
is renamed into place, so an interrupted export (full disk, Ctrl-C, crash) never leaves a
truncated PNG that looks valid to a figure pipeline.

Temporary files from :func:`tempfile.mkstemp` are created 0600 whatever the umask; every
file and folder written here gets the mode a plain ``open()``/``mkdir()`` would have given
(0666 / 0777 minus the user's umask) before it is renamed into place, so collaborators on a
shared machine can read exports exactly as the user's umask allows.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import numpy as np

from .errors import ExportError, OutputExistsError


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    ``os.umask`` can only be read by setting it, which for a moment changes the mode of files
    other threads create; Linux reports it in /proc/self/status, so that is tried first.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(folder: bool = False) -> int:
    """The mode ``open()`` (0666) or ``mkdir()`` (0777) gives under the current umask."""
    return (0o777 if folder else 0o666) & ~current_umask()


def check_writable(path: str | os.PathLike, overwrite: bool) -> str:
    """Fail early, with one clear sentence, if ``path`` cannot be written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise ExportError(f"{path} is a folder; give a file name such as {path}/figure.png")
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(
            f"{path} already exists; pass force=True (overwrite=True to the save_* "
            "functions) to replace it",
            path,
        )
    if not os.path.isdir(folder):
        raise ExportError(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: no permission to write in {folder}")
    return path


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", overwrite: bool = False, fsync: bool = True
) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it to ``path``. With
    ``fsync`` the data reaches the disk before the rename (a power cut then leaves the old
    or the new file); without, a killed process still leaves one or the other (the kernel
    holds the data), and the caller syncs later (:func:`sync_later`)."""
    path = check_writable(path, overwrite)
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror}") from None
    try:
        # mkstemp makes the file 0600; give it the umask's mode, as open() would.
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if not overwrite and os.path.exists(path):
            raise ExportError(f"{path} appeared while writing; not overwriting it")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_SYNC_LOCK = threading.Lock()
_SYNC_WANTED: set[str] = set()
_SYNC_EVENT = threading.Event()
_SYNC_THREAD: threading.Thread | None = None
_SYNC_IDLE = threading.Event()  # the thread is not in the middle of a batch
_SYNC_IDLE.set()


def _fsync_path(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sync_loop() -> None:
    while True:
        _SYNC_EVENT.wait()
        with _SYNC_LOCK:
            paths = sorted(_SYNC_WANTED)
            _SYNC_WANTED.clear()
            _SYNC_EVENT.clear()
            _SYNC_IDLE.clear()
        try:
            for path in paths:
                _fsync_path(path)
        finally:
            _SYNC_IDLE.set()


def sync_pending(timeout: float = 10.0) -> None:
    """Finish every fsync asked of :func:`sync_later` (at exit: a process that ends with
    ``os._exit`` does not wait for daemon threads)."""
    with _SYNC_LOCK:
        paths = sorted(_SYNC_WANTED)
        _SYNC_WANTED.clear()
    for path in paths:
        _fsync_path(path)
    _SYNC_IDLE.wait(timeout)


def sync_later(path: str | os.PathLike) -> None:
    """fsync ``path`` soon, in a background thread (requests for one file coalesce): for
    files rewritten often from the GUI thread, where an fsync can take 10-200 ms."""
    global _SYNC_THREAD
    with _SYNC_LOCK:
        _SYNC_WANTED.add(os.fspath(path))
        if _SYNC_THREAD is None or not _SYNC_THREAD.is_alive():
            _SYNC_THREAD = threading.Thread(
                target=_sync_loop, name="imagery-gui-fsync", daemon=True
            )
            _SYNC_THREAD.start()
            atexit.register(sync_pending)
    _SYNC_EVENT.set()


#: fsyncs :func:`fsync_files` has under way at once: each mostly waits for the disk, and
#: the disk serves several at a time (128 new 3-90 KB files on this machine's ext4: 14 ms
#: with 8 at once, 36 ms one after another).
SYNC_THREADS = 8


def fsync_files(paths: Iterable[str | os.PathLike]) -> None:
    """fsync each file, then each of their folders (for the renames that made them): what
    writes made with ``fsync=False`` need before they count as durable. Files that are
    gone are skipped. Several at once, on threads that end with the call."""
    files = [os.fspath(p) for p in paths]
    folders = sorted({os.path.dirname(os.path.abspath(p)) for p in files})
    if len(files) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(SYNC_THREADS, len(files))) as pool:
            list(pool.map(_fsync_path, files))
    else:
        for path in files:
            _fsync_path(path)
    for folder in folders:
        _fsync_path(folder)


def _write_with(
    path: str | os.PathLike,
    writer: Callable[[IO[bytes]], object],
    overwrite: bool,
    fsync: bool = True,
) -> str:
    try:
        with atomic_open(path, "wb", overwrite=overwrite, fsync=fsync) as fh:
            writer(fh)
    except ExportError:
        raise
    except OSError as exc:
        raise ExportError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from None
    return os.fspath(path)


#: libdeflate's level for :func:`encode_png` when none is given (see there).
PNG_LEVEL = 2

#: PNG colour types of 8-bit images by channel count: grey, RGB, RGBA.
_PNG_COLOR_TYPES = {1: 0, 3: 2, 4: 6}


def _png_chunk(kind: bytes, data: bytes | bytearray) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(
    pixels: np.ndarray, level: int = PNG_LEVEL, dpi: tuple[float, float] | None = None
) -> bytes:
    """An 8-bit grey, RGB or RGBA PNG of ``(h, w[, c])`` uint8 ``pixels``, deflated by
    libdeflate (the ``deflate`` package) at ``level`` (0-12) with no per-row filter (filter
    type 0), and the resolution in a pHYs chunk when ``dpi`` is given (rounded as Pillow
    does).

    Batch figures are written this way. On EM imagery Pillow's writer spends more time
    choosing a filter for each row than deflating, and its files come out no smaller;
    libdeflate deflates a whole buffer at once, faster than zlib and into a smaller
    stream (a 256x256 RGB figure: level 2 in 1.0 ms and 71 KB, where zlib's level 1
    takes 1.6 ms for 77 KB).
    """
    import deflate  # here: the viewer's start does not import it

    a = np.asarray(pixels)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        raise ValueError(f"encode_png takes (h, w[, c]) uint8 pixels, got {a.dtype} {a.shape}")
    level = int(level)
    if not 0 <= level <= 12:
        raise ValueError(f"encode_png takes a level of 0 to 12, got {level!r}")
    channels = 1 if a.ndim == 2 else a.shape[2]
    if channels not in _PNG_COLOR_TYPES:
        raise ValueError(f"encode_png takes 1, 3 or 4 channels, got {channels}")
    h, w = a.shape[:2]
    rows = np.zeros((h, 1 + w * channels), dtype=np.uint8)  # a 0 (no filter) before each row
    rows[:, 1:] = a.reshape(h, w * channels)
    header = struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOR_TYPES[channels], 0, 0, 0)
    out = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header)]
    if dpi is not None:
        ppm = (int(dpi[0] / 0.0254 + 0.5), int(dpi[1] / 0.0254 + 0.5))
        out.append(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    out.append(_png_chunk(b"IDAT", deflate.zlib_compress(rows.tobytes(), level)))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def save_png_atomic(
    image: Any,
    path: str | os.PathLike,
    overwrite: bool = False,
    fsync: bool = True,
    fast: bool = False,
    **kwargs: Any,
) -> str:
    """Write a PIL image or a ``(h, w[, c])`` uint8 array as PNG, atomically (``fsync``:
    see :func:`atomic_open`).

    ``fast``: an L, RGB or RGBA image is written by :func:`encode_png` (``compress_level``
    and ``dpi`` are its only options) instead of Pillow's writer; other modes go to
    Pillow as before.
    """
    from PIL import Image

    if fast and set(kwargs) <= {"compress_level", "dpi"}:
        pixels = image if isinstance(image, np.ndarray) else None
        if pixels is None and image.mode in ("L", "RGB", "RGBA"):
            pixels = np.asarray(image)
        if pixels is not None:
            data = encode_png(
                pixels, int(kwargs.get("compress_level", PNG_LEVEL)), kwargs.get("dpi")
            )
            return _write_with(path, lambda fh: fh.write(data), overwrite, fsync)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    return _write_with(path, lambda fh: image.save(fh, format="PNG", **kwargs), overwrite, fsync)


def save_json_atomic(
    data: Any, path: str | os.PathLike, overwrite: bool = False, fsync: bool = True
) -> str:
    """Write JSON (UTF-8, indented, ids as strings by the caller), atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return _write_with(path, lambda fh: fh.write(text.encode("utf-8")), overwrite, fsync)


def unused_path(folder: str | os.PathLike, name: str = "figure.png") -> str:
    """``folder/name``, or ``folder/<stem>-2<ext>``, ``-3``... the first that does not
    exist with its JSON side file (a default that never overwrites an earlier export)."""
    stem, ext = os.path.splitext(name)
    n = 1
    while True:
        base = os.path.join(os.fspath(folder), stem if n == 1 else f"{stem}-{n}")
        if not os.path.exists(base + ext) and not os.path.exists(base + ".json"):
            return base + ext
        n += 1
