"""The status line: the cursor readout, messages, errors, the busy indicator, missing data
and the cache size.

One widget spans the whole status bar (``QStatusBar.showMessage`` is never used: a
temporary message hides the bar's other widgets, the readout among them). The readout
always gets the width its text needs; messages and errors take what is left and are
elided, with the full text in their tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    """A one-line label that shrinks to nothing and elides its text (tooltip: all of it)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(0)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self):
        hint = super().minimumSizeHint()
        hint.setWidth(0)
        return hint

    def paintEvent(self, ev) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        elided = self.fontMetrics().elidedText(
            self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width()
        )
        painter.drawText(self.contentsRect(), int(self.alignment()), elided)

    def shown_text(self) -> str:
        """The text as drawn (elided to the label's width)."""
        return self.fontMetrics().elidedText(
            self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width()
        )


class StatusLine(QWidget):
    """See the module docstring."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.readout = QLabel("")
        self.readout.setObjectName("readout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = ElidedLabel()
        self.message_label.setObjectName("statusMessage")
        self.error_label = ElidedLabel()
        self.error_label.setObjectName("errorLabel")
        self.error_label.setStyleSheet("color: #e74c3c")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(14)
        self.busy.setVisible(False)
        self.missing_label = ElidedLabel()
        self.missing_label.setStyleSheet("color: #e67e22")
        self.missing_label.setObjectName("missingLabel")
        self.cache_label = QLabel("")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 0, 2, 0)
        lay.addWidget(self.readout)
        lay.addWidget(self.message_label, 2)
        lay.addWidget(self.error_label, 3)
        lay.addWidget(self.busy)
        lay.addWidget(self.missing_label, 1)
        lay.addWidget(self.cache_label)
        self._clear_timer = QTimer(self)
        self._clear_timer.setSingleShot(True)
        self._clear_timer.timeout.connect(lambda: self.message_label.setText(""))

    def set_readout(self, text: str) -> None:
        self.readout.setText(text)
        # never squeezed: the readout keeps the width its text needs
        self.readout.setMinimumWidth(self.readout.fontMetrics().horizontalAdvance(text) + 8)

    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        """A message; with a timeout it clears itself."""
        self.message_label.setText(text)
        if timeout_ms:
            self._clear_timer.start(timeout_ms)
        else:
            self._clear_timer.stop()

    def message(self) -> str:
        return self.message_label.text()

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)

    def error(self) -> str:
        return self.error_label.text()

    def set_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)

    def set_missing(self, text: str) -> None:
        self.missing_label.setText(text)

    def set_cache(self, text: str) -> None:
        self.cache_label.setText(text)
