"""Getting around: View > Go to..., View > Centre on the volume, first / last slice, the
slice view's keys and where they go (:data:`~imagery_gui.qt.actions.FOCUS_RULE`), and
Help > Keyboard shortcuts / Online documentation.

The keys are dispatched from the tables in :mod:`~imagery_gui.qt.actions` by one event
filter on the focused control (it sees key presses before the control does), so a
combobox or a spin box with the focus no longer takes Up from the view under the pointer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from ..model import navigate
from .actions import BIG_STEP, FOCUS_RULE, VIEW_KEY_SPECS, KeySpec, shortcut_rows
from .dialogs import GoToDialog

_KEYS: dict[int, KeySpec] = {s.key: s for s in VIEW_KEY_SPECS}
_KEY_PRESS = QEvent.Type.KeyPress


def is_text_field(w: QWidget | None) -> bool:
    """A control the user types text into (its editing keys are its own)."""
    if w is None:
        return False
    if isinstance(w, QComboBox):
        return w.isEditable()
    return isinstance(w, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox))


class ShortcutsDialog(QDialog):
    """Help > Keyboard shortcuts: the rows of :func:`~imagery_gui.qt.actions.shortcut_rows`
    (the same tables that define the keys) and the focus rule."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.setMinimumSize(620, 560)
        rows = shortcut_rows()
        self.table = QTableWidget(len(rows), 2)
        self.table.setObjectName("shortcutsTable")
        self.table.setHorizontalHeaderLabels(["Keys", "Does"])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # a list to read, not to edit
        self.table.setAlternatingRowColors(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        for r, (keys, does) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(keys))
            self.table.setItem(r, 1, QTableWidgetItem(does))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.rule = QLabel(FOCUS_RULE)
        self.rule.setObjectName("focusRule")
        self.rule.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.rule)
        lay.addWidget(buttons)

    def rows(self) -> list[tuple[str, str]]:
        t = self.table
        return [(t.item(r, 0).text(), t.item(r, 1).text()) for r in range(t.rowCount())]


class Navigation(QObject):
    """The window's navigation actions and its key routing (see the module docstring)."""

    def __init__(self, win: Any) -> None:  # the MainWindow (not imported: no cycle)
        super().__init__(win)
        self.win = win
        self.unit = navigate.VOXELS
        # Key presses go to the focus widget: the filter sits on the window and on each
        # of its widgets once it has had the focus (not on the application, where it
        # would run for every event of every object, ~3.6 us each here).
        win.installEventFilter(self)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._on_focus_changed)

    # -- going places ------------------------------------------------------------------------
    def go_to_dialog(self) -> GoToDialog | None:
        """Ask for a point (non-blocking: returns the dialog, shown window-modal)."""
        st = self.win.state
        if st.dataset is None:
            return None
        self.win.sync_camera()
        current: Sequence[float] = st.center_voxel()
        if self.unit == navigate.NM:
            cx, cy = st.camera.center_nm
            current = [cx, cy, (st.z + 0.5) * float(st.resolution[2])]
        dlg = GoToDialog((current[0], current[1], current[2]), self.unit, self.win)
        dlg.setObjectName("goToDialog")
        dlg.accepted.connect(lambda: self._on_go_to_accepted(dlg))
        dlg.finished.connect(dlg.deleteLater)
        dlg.open()
        return dlg

    def _on_go_to_accepted(self, dlg: GoToDialog) -> None:
        self.unit = dlg.unit.currentText()
        if dlg.value is not None:
            self.go_to(dlg.value, self.unit)

    def go_to(self, point: Sequence[float], unit: str = navigate.VOXELS) -> None:
        """Centre the view on ``point`` (x, y) and show its slice (z clamped to the volume);
        a point outside the volume is gone to, with a note (the view says how to return)."""
        st = self.win.state
        if st.dataset is None:
            return
        p = navigate.point_nm(point, unit, st.resolution)
        self._look_at(navigate.target_of(p, st.resolution))
        notes = []
        if st.z != navigate.target_of(p, st.resolution).z:
            notes.append(f"z is limited to the volume's {st.z_range[0]}-{st.z_range[1]}")
        outside = navigate.outside_description(p, st.dataset, st.resolution)
        if outside:
            notes.append(outside)
        text = "went to " + ", ".join(f"{v:g}" for v in point) + f" {unit}"
        self.win.status.show_message("; ".join([text, *notes]), 8000)

    def centre_on_volume(self) -> None:
        """The middle of the volume, in x, y and z."""
        st = self.win.state
        if st.dataset is not None:
            c = navigate.volume_center_nm(st.dataset, st.resolution)
            self._look_at(navigate.target_of(c, st.resolution))

    def _look_at(self, target: navigate.Target) -> None:
        canvas = self.win.canvas
        canvas.show_nm(target.x_nm, target.y_nm, canvas.nm_per_px())
        self.win.sync_camera()
        self.win.set_z(target.z)

    def first_slice(self) -> None:
        self.win.set_z(self.win.state.z_range[0])

    def last_slice(self) -> None:
        self.win.set_z(self.win.state.z_range[1])

    # -- help --------------------------------------------------------------------------------
    def show_shortcuts(self) -> ShortcutsDialog:
        dlg = ShortcutsDialog(self.win)
        dlg.setObjectName("shortcutsDialog")
        dlg.finished.connect(dlg.deleteLater)
        dlg.open()
        return dlg

    def open_docs(self) -> str:
        url = navigate.docs_url()
        if not QDesktopServices.openUrl(QUrl(url)):
            self.win.status.show_message(f"could not open a browser; the documentation: {url}")
        return url

    # -- keys --------------------------------------------------------------------------------
    def _on_focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        if new is not None and self.win.isAncestorOf(new):
            new.installEventFilter(self)  # (again: Qt keeps one; removed when either goes)

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:
        if ev.type() != _KEY_PRESS:
            return False
        return self._route_key(obj, ev)  # type: ignore[arg-type]

    def _route_key(self, obj: QObject, ev: QKeyEvent) -> bool:
        win = self.win
        if not isinstance(obj, QWidget) or not (obj is win or win.isAncestorOf(obj)):
            return False  # another window, a dialog or a popup: not ours to route
        focus = QApplication.focusWidget()
        if ev.key() == Qt.Key.Key_Escape:
            if focus is not win.canvas:
                win.canvas.setFocus(Qt.FocusReason.ShortcutFocusReason)
                return True
            return False
        spec = _KEYS.get(ev.key())
        if spec is None or win.state.dataset is None:
            return False
        mods = ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods & ~Qt.KeyboardModifier.ShiftModifier:
            return False  # Ctrl/Alt + key: a shortcut or the control's own
        in_view = focus is win.canvas or (focus is not None and win.canvas.isAncestorOf(focus))
        if not in_view:
            if not win.canvas.underMouse():
                return False
            if spec.edits_text and is_text_field(focus):
                return False  # typing: the field keeps the keys that edit text
        self.run(spec, shift=bool(mods & Qt.KeyboardModifier.ShiftModifier))
        return True

    def run(self, spec: KeySpec, shift: bool = False) -> None:
        """Do what a view key does."""
        target: Any = self.win
        for part in spec.slot.split("."):
            target = getattr(target, part)
        if spec.arg is None:
            target()
        else:
            target(spec.arg * (BIG_STEP if shift and spec.slot == "step_z" else 1))
