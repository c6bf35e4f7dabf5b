"""Side panels: segment picker, overlay style, z position, contrast.

Panels only show state and emit intents (``...Requested`` / ``...Changed``); the main
window decides. State is pushed in under ``QSignalBlocker`` so it never echoes back.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledRangeSlider, QLabeledSlider

from ..model.style import SEED_MAX, WIDTH_MAX, WIDTH_MIN

PALETTES = [
    "neuroglancer",
    "husl",
    "hls",
    "tab10",
    "tab20",
    "Set1",
    "Set2",
    "Set3",
    "Paired",
    "deep",
    "bright",
    "colorblind",
    "viridis",
]


def _swatch(rgb: tuple[int, int, int], size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


class SegmentPanel(QGroupBox):
    """Selected segments: add by typing or pasting ids, remove, clear, copy, recolour."""

    addRequested = Signal(str)  # raw text with one or more ids
    removeRequested = Signal(object)  # list of ids (Python ints: exact above 2**63)
    clearRequested = Signal()
    copyRequested = Signal()
    colorRequested = Signal(object)  # id whose colour to change (a Python int, never int32)
    showAllChanged = Signal(bool)
    supervoxelsChanged = Signal(bool)
    updateRequested = Signal()  # replace outdated root ids by their successors

    def __init__(self, parent=None) -> None:
        super().__init__("Segments", parent)
        self.entry = QLineEdit()
        self.entry.setPlaceholderText("Paste or type root ids (comma, space or newline separated)")
        self.entry.setObjectName("idEntry")
        add = QPushButton("Add")
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setObjectName("segmentList")
        self.list.setMinimumHeight(70)
        self.list.setMaximumHeight(110)
        self.remove_btn = QPushButton("Remove")
        self.clear_btn = QPushButton("Clear")
        self.copy_btn = QPushButton("Copy ids")
        self.color_btn = QPushButton("Colour...")
        self.show_selected = QCheckBox("Show selected only")
        self.supervoxels = QCheckBox("Show supervoxels (graphene)")
        self.supervoxels.setEnabled(False)
        self.supervoxels.setToolTip("graphene sources: draw supervoxel ids instead of root ids")
        self.outdated = QLabel("")
        self.outdated.setWordWrap(True)
        self.outdated.setStyleSheet("color: #d35400")
        self.outdated.setObjectName("outdatedLabel")
        self.update_btn = QPushButton("Update to latest ids")
        self.update_btn.setVisible(False)
        self.count = QLabel("none selected; click a segment to select it")
        self.count.setWordWrap(True)
        self.notice = QLabel("")  # what the last ids typed left out, and why
        self.notice.setObjectName("idNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #d35400")
        self.notice.setVisible(False)

        row = QHBoxLayout()
        row.addWidget(self.entry, 1)
        row.addWidget(add)
        buttons = QHBoxLayout()
        for b in (self.remove_btn, self.clear_btn, self.copy_btn, self.color_btn):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.notice)
        lay.addWidget(self.list)
        lay.addLayout(buttons)
        lay.addWidget(self.show_selected)
        lay.addWidget(self.supervoxels)
        lay.addWidget(self.outdated)
        lay.addWidget(self.update_btn)
        lay.addWidget(self.count)

        add.clicked.connect(self._on_add)
        self.entry.returnPressed.connect(self._on_add)
        self.remove_btn.clicked.connect(self._on_remove)
        self.clear_btn.clicked.connect(self.clearRequested)
        self.copy_btn.clicked.connect(self.copyRequested)
        self.color_btn.clicked.connect(self._on_color)
        self.list.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.list.installEventFilter(self)
        self.show_selected.toggled.connect(lambda on: self.showAllChanged.emit(not on))
        self.supervoxels.toggled.connect(self.supervoxelsChanged)
        self.update_btn.clicked.connect(self.updateRequested)

    def _on_item_double_clicked(self, item: QListWidgetItem) -> None:
        self.colorRequested.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def eventFilter(self, obj, ev) -> bool:
        if (
            obj is self.list
            and ev.type() == QEvent.Type.KeyPress
            and ev.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)
        ):
            self._on_remove()
            return True
        return super().eventFilter(obj, ev)

    def _on_add(self) -> None:
        text = self.entry.text().strip()
        if text:
            self.addRequested.emit(text)

    def _selected_ids(self) -> list[int]:
        return [int(i.data(Qt.ItemDataRole.UserRole)) for i in self.list.selectedItems()]

    def _on_remove(self) -> None:
        ids = self._selected_ids()
        if ids:
            self.removeRequested.emit(ids)

    def _on_color(self) -> None:
        ids = self._selected_ids() or [
            int(self.list.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(min(1, self.list.count()))
        ]
        if ids:
            self.colorRequested.emit(ids[0])

    def set_segments(self, items: list[tuple[int, tuple[int, int, int]]]) -> None:
        """Show the selection: (id, colour) pairs in selection order."""
        with QSignalBlocker(self.list):
            self.list.clear()
            for sid, rgb in items:
                it = QListWidgetItem(_swatch(rgb), str(sid))
                it.setData(Qt.ItemDataRole.UserRole, str(sid))  # str: ids exceed Qt's int range
                it.setToolTip(
                    f"{sid}\ncolour #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x} (double-click to change)"
                )
                self.list.addItem(it)
        n = len(items)
        self.count.setText(f"{n} selected" if n else "none selected; click a segment to select it")

    def set_graphene(self, graphene: bool) -> None:
        with QSignalBlocker(self.supervoxels):
            self.supervoxels.setChecked(False)
        self.supervoxels.setEnabled(graphene)
        self.set_outdated({})

    def set_outdated(self, outdated: dict[int, list[int]]) -> None:
        """Tell which selected root ids were edited since, and offer their successors."""
        if not outdated:
            self.outdated.setText("")
            self.update_btn.setVisible(False)
            return
        lines = [
            f"{old} was edited; now {', '.join(str(n) for n in new) or 'gone'}"
            for old, new in outdated.items()
        ]
        self.outdated.setText(
            f"{len(outdated)} selected id(s) are no longer the latest:\n" + "\n".join(lines)
        )
        self.update_btn.setVisible(True)

    def set_show_all(self, show_all: bool) -> None:
        with QSignalBlocker(self.show_selected):
            self.show_selected.setChecked(not show_all)

    def clear_entry(self) -> None:
        self.entry.clear()

    def set_entry(self, text: str) -> None:
        """Leave ``text`` in the entry (the tokens that were not ids, to correct)."""
        self.entry.setText(text)

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))


class OverlayPanel(QGroupBox):
    """Alpha, fill or outline, outline width / side / merge, palette, colour seed.

    Shows an :class:`~imagery_gui.model.style.OverlayStyle` (:meth:`show_style`) and asks
    for one change at a time (``styleChanged({name: value})``); the window validates it
    and shows the style that is drawn. The palette box applies a name only when it is
    complete (chosen from the list, or Enter / leaving the box after typing).
    """

    styleChanged = Signal(object)  # {field: value}, one field of OverlayStyle

    def __init__(self, parent=None) -> None:
        super().__init__("Overlay", parent)
        self.alpha = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.alpha.setRange(0.0, 1.0)
        self.alpha.setDecimals(2)
        self.alpha.setObjectName("alphaSlider")
        self.selected_alpha = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.selected_alpha.setRange(0.0, 1.0)
        self.selected_alpha.setDecimals(2)
        self.selected_alpha.setObjectName("selectedAlphaSlider")
        self.mode = QComboBox()
        self.mode.addItems(["fill", "outline"])
        self.mode.setObjectName("modeCombo")
        self.width = QSpinBox()
        self.width.setRange(WIDTH_MIN, WIDTH_MAX)
        self.width.setSuffix(" px")
        self.width.setObjectName("widthSpin")
        self.side = QComboBox()
        self.side.addItems(["in", "out"])
        self.merge = QCheckBox("Merge touching outlines")
        self.palette = QComboBox()
        self.palette.setObjectName("paletteCombo")
        self.palette.setEditable(True)
        self.palette.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.palette.addItems(PALETTES)
        self.palette.setToolTip(
            "'neuroglancer': the colours Neuroglancer gives each id for the seed; or type "
            "any seaborn palette or matplotlib colormap name and press Enter"
        )
        self.seed = QDoubleSpinBox()  # a uint32 (Neuroglancer's colorSeed) exceeds QSpinBox
        self.seed.setDecimals(0)
        self.seed.setRange(0, SEED_MAX)
        self.seed.setObjectName("seedSpin")
        self.seed.setToolTip("Neuroglancer's colorSeed (a link's seed is used when you open it)")
        form = QFormLayout(self)
        form.addRow("Alpha", self.alpha)
        form.addRow("Selected alpha", self.selected_alpha)
        form.addRow("Draw", self.mode)
        form.addRow("Outline width", self.width)
        form.addRow("Outline side", self.side)
        form.addRow("", self.merge)
        form.addRow("Palette", self.palette)
        form.addRow("Colour seed", self.seed)
        self._widgets = (
            self.alpha,
            self.selected_alpha,
            self.mode,
            self.width,
            self.side,
            self.merge,
            self.palette,
            self.seed,
        )
        emit = self.styleChanged.emit
        self.alpha.valueChanged.connect(lambda v: emit({"alpha": round(float(v), 3)}))
        self.selected_alpha.valueChanged.connect(
            lambda v: emit({"selected_alpha": round(float(v), 3)})
        )
        self.mode.currentTextChanged.connect(lambda t: emit({"outline": t == "outline"}))
        self.width.valueChanged.connect(lambda v: emit({"width": int(v)}))
        self.side.currentTextChanged.connect(lambda t: emit({"side": t}))
        self.merge.toggled.connect(lambda on: emit({"merge_outline": bool(on)}))
        self.palette.textActivated.connect(self._on_palette_committed)
        self.palette.lineEdit().editingFinished.connect(self._on_palette_committed)
        self.seed.valueChanged.connect(lambda v: emit({"color_seed": int(v)}))
        self._shown_palette = ""

    def _on_palette_committed(self, *args) -> None:
        name = self.palette.currentText().strip()
        if name and name != self._shown_palette:
            self.styleChanged.emit({"palette": name})

    def show_style(self, style) -> None:
        """Show ``style`` (an OverlayStyle) without emitting anything."""
        blockers = [QSignalBlocker(w) for w in self._widgets]
        self.alpha.setValue(float(style.alpha))
        self.selected_alpha.setValue(float(style.selected_alpha))
        self.mode.setCurrentText("outline" if style.outline else "fill")
        self.width.setValue(int(style.width))
        self.side.setCurrentText(style.side)
        self.merge.setChecked(bool(style.merge_outline))
        if self.palette.findText(style.palette) < 0:
            self.palette.addItem(style.palette)  # a valid name typed or from a link
        self.palette.setCurrentText(style.palette)
        self._shown_palette = style.palette
        self.seed.setValue(int(style.color_seed))
        outline = bool(style.outline)
        for w in (self.width, self.side, self.merge):
            w.setEnabled(outline)
        self.seed.setEnabled(style.palette == "neuroglancer")
        del blockers

    def values(self) -> dict:
        """What the controls show (for tests and checks)."""
        return {
            "alpha": round(float(self.alpha.value()), 3),
            "selected_alpha": round(float(self.selected_alpha.value()), 3),
            "outline": self.mode.currentText() == "outline",
            "width": int(self.width.value()),
            "side": self.side.currentText(),
            "merge_outline": self.merge.isChecked(),
            "palette": self.palette.currentText().strip(),
            "color_seed": int(self.seed.value()),
        }


class ZPanel(QGroupBox):
    """z slider, spin box and play button."""

    zRequested = Signal(int)
    playTicked = Signal()  # Play: the next slice, please (the window wraps at the end)

    def __init__(self, parent=None) -> None:
        super().__init__("z", parent)
        self.slider = QLabeledSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("zSlider")
        self.play = QToolButton()
        self.play.setText("Play")
        self.play.setCheckable(True)
        self.play.setObjectName("playButton")
        self.fps = QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setValue(10)
        self.fps.setSuffix(" slices/s")
        self.timer = QTimer(self)
        lay = QVBoxLayout(self)
        lay.addWidget(self.slider)
        row = QHBoxLayout()
        row.addWidget(self.play)
        row.addWidget(self.fps)
        row.addStretch(1)
        lay.addLayout(row)
        self.slider.valueChanged.connect(self.zRequested)
        self.play.toggled.connect(self._on_play)
        self.fps.valueChanged.connect(lambda v: self.timer.setInterval(int(1000 / v)))
        self.timer.timeout.connect(self._on_tick)
        self.slider.setToolTip("z (slices); Home / End: first / last")

    def set_range(self, lo: int, hi: int) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setRange(lo, hi)

    def set_z(self, z: int) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setValue(z)

    def _on_play(self, on: bool) -> None:
        self.play.setText("Pause" if on else "Play")
        if on:
            self.timer.start(int(1000 / self.fps.value()))
        else:
            self.timer.stop()

    def _on_tick(self) -> None:
        self.playTicked.emit()


class ContrastPanel(QGroupBox):
    """A fixed contrast window for the EM (never re-levelled per slice)."""

    levelsChanged = Signal(float, float)
    autoRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("Contrast", parent)
        self.range = QLabeledRangeSlider(Qt.Orientation.Horizontal)
        self.range.setRange(0, 255)
        self.range.setValue((0, 255))
        self.range.setHandleLabelPosition(QLabeledRangeSlider.LabelPosition.NoLabel)
        self.range.setEdgeLabelMode(QLabeledRangeSlider.EdgeLabelMode.LabelIsValue)
        self.auto = QPushButton("Auto (from this view)")
        lay = QVBoxLayout(self)
        lay.addWidget(self.range)
        lay.addWidget(self.auto)
        self.range.valueChanged.connect(lambda v: self.levelsChanged.emit(float(v[0]), float(v[1])))
        self.auto.clicked.connect(self.autoRequested)

    def set_bounds(self, lo: float, hi: float) -> None:
        with QSignalBlocker(self.range):
            self.range.setRange(int(lo), int(hi))

    def set_levels(self, lo: float, hi: float) -> None:
        with QSignalBlocker(self.range):
            self.range.setValue((int(lo), int(hi)))


def panel_dock(title: str, panels, parent) -> QDockWidget:
    """A movable dock holding ``panels`` one under the other, scrollable."""
    side = QWidget()
    lay = QVBoxLayout(side)
    lay.setContentsMargins(4, 4, 4, 4)
    lay.setSpacing(6)
    for w in panels:
        lay.addWidget(w)
    lay.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(side)
    scroll.setWidgetResizable(True)
    scroll.setMinimumWidth(340)
    dock = QDockWidget(title, parent)
    dock.setObjectName(title.lower() + "Dock")
    dock.setWidget(scroll)
    dock.setFeatures(
        QDockWidget.DockWidgetFeature.DockWidgetMovable
        | QDockWidget.DockWidgetFeature.DockWidgetFloatable
    )
    return dock
