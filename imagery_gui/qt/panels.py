"""Side panels: segment picker, overlay style, z position, contrast.

Panels only show state and emit intents (``...Requested`` / ``...Changed``); the main
window decides. State is pushed in under ``QSignalBlocker`` so it never echoes back.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
)
from superqt import QLabeledDoubleSlider, QLabeledRangeSlider, QLabeledSlider

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
    removeRequested = Signal(list)  # ids
    clearRequested = Signal()
    copyRequested = Signal()
    colorRequested = Signal(int)  # id whose colour to change
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

        row = QHBoxLayout()
        row.addWidget(self.entry, 1)
        row.addWidget(add)
        buttons = QHBoxLayout()
        for b in (self.remove_btn, self.clear_btn, self.copy_btn, self.color_btn):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
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
        self.list.itemDoubleClicked.connect(
            lambda item: self.colorRequested.emit(int(item.data(Qt.ItemDataRole.UserRole)))
        )
        self.show_selected.toggled.connect(lambda on: self.showAllChanged.emit(not on))
        self.supervoxels.toggled.connect(self.supervoxelsChanged)
        self.update_btn.clicked.connect(self.updateRequested)

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


class OverlayPanel(QGroupBox):
    """Alpha, fill or outline, outline width / side / merge, palette."""

    styleChanged = Signal(object)  # dict of style values

    def __init__(self, parent=None) -> None:
        super().__init__("Overlay", parent)
        self.alpha = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.alpha.setRange(0.0, 1.0)
        self.alpha.setDecimals(2)
        self.alpha.setObjectName("alphaSlider")
        self.selected_alpha = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.selected_alpha.setRange(0.0, 1.0)
        self.selected_alpha.setDecimals(2)
        self.mode = QComboBox()
        self.mode.addItems(["fill", "outline"])
        self.mode.setObjectName("modeCombo")
        self.width = QSpinBox()
        self.width.setRange(1, 50)
        self.width.setSuffix(" px")
        self.side = QComboBox()
        self.side.addItems(["in", "out"])
        self.merge = QCheckBox("Merge touching outlines")
        self.palette = QComboBox()
        self.palette.setEditable(True)
        self.palette.addItems(PALETTES)
        self.palette.setToolTip(
            "'neuroglancer': the colours Neuroglancer gives each id for the seed"
        )
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
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
        self.alpha.valueChanged.connect(self._emit)
        self.selected_alpha.valueChanged.connect(self._emit)
        self.mode.currentTextChanged.connect(self._emit)
        self.width.valueChanged.connect(self._emit)
        self.side.currentTextChanged.connect(self._emit)
        self.merge.toggled.connect(self._emit)
        self.palette.currentTextChanged.connect(self._emit)
        self.seed.valueChanged.connect(self._emit)

    def values(self) -> dict:
        return {
            "alpha": round(float(self.alpha.value()), 3),
            "selected_alpha": round(float(self.selected_alpha.value()), 3),
            "outline": self.mode.currentText() == "outline",
            "width": int(self.width.value()),
            "side": self.side.currentText(),
            "merge_outline": self.merge.isChecked(),
            "palette": self.palette.currentText().strip() or "husl",
            "color_seed": int(self.seed.value()),
        }

    def set_values(self, v: dict) -> None:
        widgets = (
            self.alpha,
            self.selected_alpha,
            self.mode,
            self.width,
            self.side,
            self.merge,
            self.palette,
            self.seed,
        )
        blockers = [QSignalBlocker(w) for w in widgets]
        self.alpha.setValue(float(v["alpha"]))
        self.selected_alpha.setValue(float(v["selected_alpha"]))
        self.mode.setCurrentText("outline" if v["outline"] else "fill")
        self.width.setValue(int(v["width"]))
        self.side.setCurrentText(v["side"])
        self.merge.setChecked(bool(v["merge_outline"]))
        self.palette.setCurrentText(v["palette"])
        self.seed.setValue(int(v.get("color_seed", 0)) & 0x7FFFFFFF)
        self._update_enabled()
        del blockers

    def _update_enabled(self) -> None:
        outline = self.mode.currentText() == "outline"
        for w in (self.width, self.side, self.merge):
            w.setEnabled(outline)
        self.seed.setEnabled(self.palette.currentText() == "neuroglancer")

    def _emit(self, *args) -> None:
        self._update_enabled()
        self.styleChanged.emit(self.values())


class ZPanel(QGroupBox):
    """z slider, spin box and play button."""

    zRequested = Signal(int)

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
        z = self.slider.value() + 1
        if z > self.slider.maximum():
            z = self.slider.minimum()
        self.zRequested.emit(z)


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
