"""The slice view: EM below, the segmentation overlay above, in one aspect-locked view.

The only module that imports pyqtgraph. World coordinates are nanometres, so anisotropic
voxels are shown with their true aspect. Both images are set with ``levels`` fixed (EM) or
None (RGBA overlay) and C-contiguous data, the fast paths of ``ImageItem``.

Mouse: drag pans, Ctrl+wheel zooms, the wheel steps through z (Shift: 10 slices), a click
without drag reports the point (to select the segment under it).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QLabel

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


class _ViewBox(pg.ViewBox):
    """A ViewBox whose plain wheel steps z; Ctrl+wheel zooms."""

    def __init__(self, canvas: SliceCanvas) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._canvas = canvas

    def wheelEvent(self, ev, axis=None):
        mods = ev.modifiers()
        if mods & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if delta:
            step = 10 if mods & Qt.KeyboardModifier.ShiftModifier else 1
            self._canvas.zStepRequested.emit(step if delta > 0 else -step)
        ev.accept()


class SliceCanvas(pg.GraphicsLayoutWidget):
    """EM + overlay view. Coordinates in signals are nanometres."""

    hovered = Signal(float, float)  # x_nm, y_nm
    clicked = Signal(float, float, object)  # x_nm, y_nm, Qt.KeyboardModifiers
    viewChanged = Signal()  # visible range or size changed
    zStepRequested = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground((24, 24, 24))
        self.ci.setContentsMargins(0, 0, 0, 0)
        self.viewbox = _ViewBox(self)
        self.addItem(self.viewbox)
        self.em = pg.ImageItem()
        self.overlay = pg.ImageItem()
        self.overlay.setZValue(10)
        self.missing = pg.ImageItem()  # hatch over parts with no data (missing chunks)
        self.missing.setZValue(20)
        self.glyphs = pg.ImageItem()  # site glyphs (drawn by the model's glyph renderer)
        self.glyphs.setZValue(30)
        for item in (self.em, self.overlay, self.missing, self.glyphs):
            self.viewbox.addItem(item)
        self.levels: tuple[float, float] = (0.0, 255.0)
        # The view asked for by show_nm, re-applied when the widget is resized until the
        # user pans or zooms (the first layout happens after the data is opened).
        self._anchor: tuple[float, float, float] | None = None
        # A notice over the view (e.g. that it is outside the volume): a child label, so a
        # window screenshot shows it too.
        self.notice = QLabel(self)
        self.notice.setObjectName("viewNotice")
        self.notice.setWordWrap(True)
        self.notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.notice.setStyleSheet(
            "color: #f0f0f0; background: rgba(0, 0, 0, 170); padding: 10px; border-radius: 6px"
        )
        self.notice.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.notice.hide()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a click gives the view the keys
        self.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        self.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)
        self.viewbox.sigRangeChanged.connect(self._on_range_changed)
        self.viewbox.sigResized.connect(self._on_resized)

    # -- content -----------------------------------------------------------------------------
    def set_em(self, image: np.ndarray | None, rect_nm: tuple[float, float, float, float]) -> None:
        if image is None:
            self.em.clear()
            return
        self.em.setImage(np.ascontiguousarray(image), levels=self.levels, autoLevels=False)
        self.em.setRect(QRectF(*rect_nm))

    def set_overlay(
        self, rgba: np.ndarray | None, rect_nm: tuple[float, float, float, float]
    ) -> None:
        if rgba is None:
            self.overlay.clear()
            return
        self.overlay.setImage(np.ascontiguousarray(rgba), levels=None, autoLevels=False)
        self.overlay.setRect(QRectF(*rect_nm))

    def set_missing(
        self, rgba: np.ndarray | None, rect_nm: tuple[float, float, float, float]
    ) -> None:
        if rgba is None:
            self.missing.clear()
            return
        self.missing.setImage(np.ascontiguousarray(rgba), levels=None, autoLevels=False)
        self.missing.setRect(QRectF(*rect_nm))

    def set_glyphs(
        self, rgba: np.ndarray | None, rect_nm: tuple[float, float, float, float]
    ) -> None:
        if rgba is None:
            self.glyphs.clear()
            return
        self.glyphs.setImage(np.ascontiguousarray(rgba), levels=None, autoLevels=False)
        self.glyphs.setRect(QRectF(*rect_nm))

    def set_notice(self, text: str) -> None:
        """Show ``text`` over the middle of the view ('' hides it)."""
        if text == self.notice.text() and self.notice.isVisible() == bool(text):
            return
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self._place_notice()

    def _place_notice(self) -> None:
        w = min(max(self.width() - 40, 100), 560)
        self.notice.setFixedWidth(w)
        self.notice.adjustSize()
        self.notice.move((self.width() - w) // 2, (self.height() - self.notice.height()) // 2)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)  # (pyqtgraph calls this with None before __init__ ends)
        notice = getattr(self, "notice", None)
        if notice is not None and notice.isVisible():
            self._place_notice()

    def set_levels(self, lo: float, hi: float) -> None:
        self.levels = (float(lo), float(max(hi, lo + 1)))
        if self.em.image is not None:
            self.em.setLevels(self.levels)

    # -- view --------------------------------------------------------------------------------
    def visible_nm(self) -> tuple[float, float, float, float]:
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def nm_per_px(self) -> float:
        x0, _, x1, _ = self.visible_nm()
        w = max(1.0, self.viewbox.width())
        return (x1 - x0) / w

    def show_nm(self, cx: float, cy: float, nm_per_px: float) -> None:
        """Centre the view on (cx, cy) with the given zoom."""
        self._anchor = (cx, cy, nm_per_px)
        self._apply_anchor()

    def _apply_anchor(self) -> None:
        cx, cy, nm_per_px = self._anchor  # type: ignore[misc]
        w = max(1.0, self.viewbox.width()) * nm_per_px / 2
        h = max(1.0, self.viewbox.height()) * nm_per_px / 2
        self.viewbox.setRange(xRange=(cx - w, cx + w), yRange=(cy - h, cy + h), padding=0)

    def center_nm(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.visible_nm()
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    # -- events ------------------------------------------------------------------------------
    def _on_range_changed(self, *args) -> None:
        self.viewChanged.emit()

    def _on_resized(self, *args) -> None:
        if self._anchor is not None:
            self._apply_anchor()
        self.viewChanged.emit()

    def mousePressEvent(self, ev) -> None:
        self._anchor = None  # the user takes over the view
        super().mousePressEvent(ev)

    def wheelEvent(self, ev) -> None:
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._anchor = None
        super().wheelEvent(ev)

    def _on_scene_mouse_moved(self, pos) -> None:
        p = self.viewbox.mapSceneToView(pos)
        self.hovered.emit(p.x(), p.y())

    def _on_scene_mouse_clicked(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double():
            return
        p = self.viewbox.mapSceneToView(ev.scenePos())
        self.clicked.emit(p.x(), p.y(), ev.modifiers())
