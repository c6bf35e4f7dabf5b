"""The status line: the cursor readout, messages, errors, the busy indicator, missing data
and the cache size.

One widget spans the whole status bar (``QStatusBar.showMessage`` is never used: a
temporary message hides the bar's other widgets, the readout among them). The readout
always gets the width its text needs; messages and errors take what is left and are
elided, with the full text in their tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QWidget


class ElidedLabel(QWidget):
    """One line of text, elided to the width it is given (tooltip: all of it).

    Not a QLabel: a label's ``setText`` asks its layout to recompute the status bar, and
    the window's with it; status messages change many times a second while a server is
    failing, and each relayout made the GUI thread stall. This only repaints itself."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = text
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.setToolTip(text)
            self.update()

    def sizeHint(self):
        return QSize(0, self.fontMetrics().height() + 2)

    def minimumSizeHint(self):
        return QSize(0, self.fontMetrics().height() + 2)

    def paintEvent(self, ev) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(
            self.rect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            self.shown_text(),
        )  # fmt: skip

    def shown_text(self) -> str:
        """The text as drawn (elided to the widget's width)."""
        return self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, self.width())


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
        self.link_label = ElidedLabel()
        self.link_label.setStyleSheet("color: #e67e22")
        self.link_label.setObjectName("linkLabel")
        self.cache_label = QLabel("")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 0, 2, 0)
        lay.addWidget(self.readout)
        lay.addWidget(self.message_label, 2)
        lay.addWidget(self.error_label, 3)
        lay.addWidget(self.busy)
        lay.addWidget(self.missing_label, 1)
        lay.addWidget(self.link_label, 4)
        lay.addWidget(self.cache_label)
        self._clear_timer = QTimer(self)
        self._clear_timer.setSingleShot(True)
        self._clear_timer.timeout.connect(lambda: self.message_label.setText(""))

    def set_readout(self, text: str) -> None:
        self.readout.setText(text)
        # never squeezed: the readout keeps the width its text needs (grown, never shrunk,
        # so moving the pointer does not relayout the window at every step)
        need = self.readout.fontMetrics().horizontalAdvance(text) + 8
        if need > self.readout.minimumWidth():
            self.readout.setMinimumWidth(need)

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

    def set_link(self, text: str) -> None:
        """What the network cannot keep up with ('' when it does); the full text is the
        tooltip when the label is too narrow for it."""
        self.link_label.setText(text)
        self.link_label.setToolTip(text)

    def set_cache(self, text: str) -> None:
        self.cache_label.setText(text)
