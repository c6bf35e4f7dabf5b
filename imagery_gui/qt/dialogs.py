"""Dialogs: File > Open, File > Export and View > Go to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..model import navigate
from ..model.inputs import OpenRequest


def _floats(text: str, n: int, what: str) -> list[float] | None:
    text = text.replace(",", " ").strip()
    if not text:
        return None
    try:
        vals = [float(v) for v in text.split()]
    except ValueError:
        raise ValueError(f"{what} must be {n} numbers, got {text!r}") from None
    if len(vals) != n:
        raise ValueError(f"{what} must be {n} numbers, got {text!r}")
    return vals


class OpenDialog(QDialog):
    """Image source, segmentation source, centre and resolution (recent sources offered;
    prefilled with ``current``, the sources open now).

    Open emits ``requested``; the dialog stays up (with what was typed) until the window
    reports the result: :meth:`opened` closes it, :meth:`open_failed` shows the error in
    it, so a typo is fixed in place."""

    requested = Signal(object)  # OpenRequest

    def __init__(
        self,
        recent: list[list[str | None]],
        parent: QWidget | None = None,
        current: tuple[str | None, str | None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open data")
        self.setMinimumWidth(640)
        self.recent = QComboBox()
        self.recent.addItem("(recent sources)")
        for img, seg in recent:
            self.recent.addItem(f"{img or '-'}  |  {seg or '-'}", (img, seg))
        self.image = QLineEdit()
        self.image.setObjectName("imageSource")
        self.image.setPlaceholderText("precomputed://https://... or a local folder")
        self.segmentation = QLineEdit()
        self.segmentation.setObjectName("segmentationSource")
        self.segmentation.setPlaceholderText("precomputed://... or graphene://https://...")
        self.center = QLineEdit()
        self.center.setPlaceholderText("x y z in voxels (default: the middle of the volume)")
        self.resolution = QLineEdit()
        self.resolution.setPlaceholderText(
            "nm per voxel of the centre, e.g. 4 4 40 (default: the image's)"
        )
        self.datastack = QLineEdit()
        self.datastack.setObjectName("datastack")
        self.datastack.setPlaceholderText(
            "CAVE datastack, e.g. minnie65_public (sources come from CAVE)"
        )
        self.server = QLineEdit()
        self.server.setPlaceholderText("CAVE server (default https://global.daf-apis.com)")
        self.token_file = QLineEdit()
        self.token_file.setPlaceholderText(
            "token file (default: caveclient's ~/.cloudvolume/secrets)"
        )
        self.ngl = QLineEdit()
        self.ngl.setObjectName("nglLink")
        self.ngl.setPlaceholderText(
            "paste a Neuroglancer link: position, sources, segments, colours"
        )
        self.when = QLineEdit()
        self.when.setPlaceholderText(
            "graphene: ISO time, unix seconds, or v<N> for a materialization version"
        )
        self.error = QLabel()
        self.error.setObjectName("openError")
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        if current is not None:
            self.image.setText(current[0] or "")
            self.segmentation.setText(current[1] or "")
        form = QFormLayout()
        form.addRow("Recent", self.recent)
        form.addRow("Image source", self.image)
        form.addRow("Segmentation source", self.segmentation)
        form.addRow("Centre", self.center)
        form.addRow("Resolution", self.resolution)
        form.addRow("CAVE datastack", self.datastack)
        form.addRow("CAVE server", self.server)
        form.addRow("Token file", self.token_file)
        form.addRow("Neuroglancer link", self.ngl)
        form.addRow("Time", self.when)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons = buttons
        self.demo_button = buttons.addButton("Demo volume", QDialogButtonBox.ButtonRole.ActionRole)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self._demo = False
        self.recent.currentIndexChanged.connect(self._on_recent)
        buttons.accepted.connect(self._on_accept)
        buttons.rejected.connect(self.reject)
        self.demo_button.clicked.connect(self._on_demo)

    def _on_recent(self, i: int) -> None:
        data = self.recent.itemData(i)
        if data:
            self.image.setText(data[0] or "")
            self.segmentation.setText(data[1] or "")

    def _on_demo(self) -> None:
        self._demo = True
        self._submit(self.request())
        self._demo = False

    def _on_accept(self) -> None:
        try:
            req = self.request()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        given = (self.image, self.segmentation, self.datastack, self.ngl)
        if not any(w.text().strip() for w in given):
            self.error.setText("give sources, a CAVE datastack or a Neuroglancer link")
            return
        self._submit(req)

    def _submit(self, req: OpenRequest) -> None:
        self.error.setText(f"opening {req.describe()}...")
        self.buttons.setEnabled(False)
        self.demo_button.setEnabled(False)
        self.requested.emit(req)

    def opened(self) -> None:
        self.accept()

    def open_failed(self, message: str) -> None:
        """Keep everything typed; say what went wrong, ready for another try."""
        self.error.setText(message)
        self.buttons.setEnabled(True)
        self.demo_button.setEnabled(True)

    def request(self) -> OpenRequest:
        when = self.when.text().strip()
        version = None
        if when.lower().startswith("v") and when[1:].isdigit():
            version, when = int(when[1:]), ""
        return OpenRequest(
            image_source=self.image.text().strip() or None,
            segmentation_source=self.segmentation.text().strip() or None,
            center=_floats(self.center.text(), 3, "the centre"),
            resolution=_floats(self.resolution.text(), 3, "the resolution"),
            demo=self._demo,
            datastack=self.datastack.text().strip() or None,
            server_address=self.server.text().strip() or None,
            auth_token_file=self.token_file.text().strip() or None,
            ngl_url=self.ngl.text().strip() or None,
            timestamp=when or None,
            materialization_version=version,
        )


def show_open_dialog(win: Any) -> OpenDialog:
    """File > Open for the window ``win`` (window-modal, not blocking), prefilled with
    the sources open now; the open's error is shown in the dialog, not in a second box
    (``win._open_dialog`` tells the window while the open runs)."""
    inputs = win.state.inputs
    current = (inputs.image_source, inputs.segmentation_source) if inputs else None
    dlg = OpenDialog(win.settings.recent, win, current=current)
    dlg.setObjectName("openDialog")

    def submit(req: OpenRequest) -> None:
        win._open_dialog = dlg
        job = win.open_sources(req)
        job.succeeded.connect(lambda _result: dlg.opened())
        job.failed.connect(lambda _exc: dlg.open_failed(win.last_error))
        job.done.connect(lambda: setattr(win, "_open_dialog", None))

    dlg.requested.connect(submit)
    dlg.finished.connect(dlg.deleteLater)
    dlg.open()
    return dlg


@dataclass
class ExportOptions:
    path: str
    depth: int
    scale: int
    scale_bar: bool
    scale_bar_nm: float | None
    scale_bar_corner: str
    dpi: int
    masks: bool
    force: bool


class ExportDialog(QDialog):
    """Where and how to export the current view (one slice or a z-series)."""

    def __init__(self, default_path: str, series: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export z-series" if series else "Export PNG")
        self.path = QLineEdit(default_path)
        browse = QPushButton("Browse...")
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.depth = QSpinBox()
        self.depth.setObjectName("exportDepth")
        self.depth.setRange(1, 2000)
        self.depth.setValue(8 if series else 1)
        self.depth.setEnabled(series)
        # a label, not a suffix: a suffix cannot say "1 slice" and "8 slices"
        self.depth_label = QLabel()
        self.depth_label.setObjectName("exportDepthLabel")
        depth_row = QHBoxLayout()
        depth_row.addWidget(self.depth)
        depth_row.addWidget(self.depth_label, 1)
        self.depth.valueChanged.connect(self._on_depth)
        self._on_depth(self.depth.value())
        self.scale = QSpinBox()
        self.scale.setRange(1, 16)
        self.scale.setSuffix("x (pixel replication)")
        self.scale_bar = QCheckBox("Scale bar")
        self.scale_bar.setChecked(True)
        self.bar_nm = QDoubleSpinBox()
        self.bar_nm.setRange(0, 1e6)
        self.bar_nm.setSpecialValueText("automatic")
        self.bar_nm.setSuffix(" nm")
        self.corner = QComboBox()
        self.corner.addItems(["lower right", "lower left", "upper right", "upper left"])
        self.dpi = QSpinBox()
        self.dpi.setRange(30, 2400)
        self.dpi.setValue(300)
        self.masks = QCheckBox("Also a mask PNG per segment")
        self.force = QCheckBox("Overwrite existing files")
        form = QFormLayout()
        form.addRow("File", row)
        form.addRow("Slices", depth_row)
        form.addRow("Upscale", self.scale)
        form.addRow("", self.scale_bar)
        form.addRow("Scale bar length", self.bar_nm)
        form.addRow("Scale bar corner", self.corner)
        form.addRow("DPI", self.dpi)
        form.addRow("", self.masks)
        form.addRow("", self.force)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)
        browse.clicked.connect(self._on_browse)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

    def _on_depth(self, n: int) -> None:
        self.depth_label.setText(f"{'slice' if n == 1 else 'slices'} from the current z")

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export to", self.path.text(), "PNG images (*.png)"
        )
        if path:
            self.path.setText(path)
            if os.path.exists(path):
                self.force.setChecked(True)  # the file dialog already asked

    def options(self) -> ExportOptions:
        return ExportOptions(
            path=self.path.text().strip(),
            depth=self.depth.value(),
            scale=self.scale.value(),
            scale_bar=self.scale_bar.isChecked(),
            scale_bar_nm=self.bar_nm.value() or None,
            scale_bar_corner=self.corner.currentText(),
            dpi=self.dpi.value(),
            masks=self.masks.isChecked(),
            force=self.force.isChecked(),
        )


class GoToDialog(QDialog):
    """View > Go to...: a point typed or pasted (``x, y, z``, ``[x y z]``, ``x y z``), in
    voxels of the view or in nm. A bad point is reported here and the dialog stays open
    with what was typed."""

    def __init__(
        self, current: tuple[float, float, float], unit: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Go to")
        self.setMinimumWidth(420)
        self.point = QLineEdit(", ".join(f"{v:g}" for v in current))
        self.point.setObjectName("goToPoint")
        self.point.setPlaceholderText("x, y, z  (or paste [x y z] from Neuroglancer)")
        self.point.selectAll()
        self.unit = QComboBox()
        self.unit.setObjectName("goToUnit")
        self.unit.addItems(list(navigate.UNITS))
        self.unit.setCurrentText(unit)
        self.error = QLabel()
        self.error.setObjectName("goToError")
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Point", self.point)
        form.addRow("Unit", self.unit)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        buttons.accepted.connect(self._on_accept)
        buttons.rejected.connect(self.reject)
        self.value: tuple[float, float, float] | None = None

    def _on_accept(self) -> None:
        try:
            self.value = navigate.parse_point(self.point.text())
        except navigate.PointError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
