"""Pictures between Qt and the rest: a window grabbed to a PNG, a figure to a QImage."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

from .. import startlog


def save_widget_png(widget: QWidget, path: str) -> str:
    """Render ``widget`` (a window, with its frame contents) to a PNG, atomically.
    Raises :class:`~imagery_gui.model.errors.ExportError` when it cannot be written."""
    from ..model.io import save_png_atomic

    QApplication.processEvents()
    qimg = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    arr = np.frombuffer(qimg.constBits(), dtype=np.uint8).reshape(
        qimg.height(), qimg.bytesPerLine()
    )
    arr = arr[:, : qimg.width() * 4].reshape(qimg.height(), qimg.width(), 4)
    # zlib level 1: 3-4x faster than PIL's default (6) on a window, and no bigger
    return save_png_atomic(arr[..., :3].copy(), path, overwrite=True, compress_level=1)


def to_qimage(img) -> QImage:
    """A PIL image as a QImage (copied, so it owns its pixels)."""
    arr = np.ascontiguousarray(np.asarray(img.convert("RGBA")))
    return QImage(
        arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_RGBA8888
    ).copy()


class Screenshot(QObject):
    """``--screenshot``: a PNG of the window once its view is loaded, then ``done(code)``.

    Every path ends: loaded (0); outside the volume (1: the PNG shows the notice, as
    ``export`` refuses such a region); a failed open or read (1); not loaded within
    ``timeout_ms`` (1); the PNG could not be written (2). Each prints one line."""

    done = Signal(int)

    def __init__(self, win: Any, path: str, timeout_ms: int) -> None:  # the MainWindow
        super().__init__(win)
        self.win, self.path, self.timeout_ms = win, path, timeout_ms
        self.finished = False
        win.display.failed.connect(self._on_read_failed)
        win.sites.settled.connect(lambda: QTimer.singleShot(0, self.take))
        QTimer.singleShot(timeout_ms, self._on_timeout)

    def _end(self, code: int, line: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        if line:
            print(f"imagery-gui: {line}", file=sys.stderr)
        self.done.emit(code)

    def fail(self, message: str) -> None:
        self._end(1, message)

    def _on_read_failed(self, message: str) -> None:
        self._end(1, f"could not read the view: {message}; no screenshot")

    def _on_timeout(self) -> None:
        self._end(
            1, f"the view did not finish loading in {self.timeout_ms // 1000} s; no screenshot"
        )

    def take(self) -> None:
        """Save the PNG if the view is complete and the site table asked for at launch
        has arrived (called after each complete redraw, and when the table is there)."""
        win = self.win
        if self.finished or not win.display.complete or win.sites.loading:
            return
        from ..model.errors import ImageryGuiError

        try:
            print(save_widget_png(win, self.path))
            startlog.mark("screenshot saved")
        except ImageryGuiError as exc:
            self._end(2, str(exc))
            return
        if win.display.outside:
            from ..model.navigate import volume_span

            span = volume_span(win.state.dataset, win.state.resolution)
            self._end(
                1, f"the view is outside the volume ({span}); the screenshot shows only that notice"
            )
            return
        self._end(0)
