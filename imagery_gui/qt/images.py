"""Pictures between Qt and the rest: a window grabbed to a PNG, a figure to a QImage."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget


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
    return save_png_atomic(arr[..., :3].copy(), path, overwrite=True)


def to_qimage(img) -> QImage:
    """A PIL image as a QImage (copied, so it owns its pixels)."""
    arr = np.ascontiguousarray(np.asarray(img.convert("RGBA")))
    return QImage(
        arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_RGBA8888
    ).copy()
