"""File > Export, Copy image and Copy Neuroglancer link: the current view as a figure.

Everything here goes through the model's exporter with the viewer state's figure spec, so
a PNG from the window equals ``imagery-gui export`` of the same view pixel for pixel.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QProgressDialog

from ..model.errors import ImageryGuiError
from ..model.export import FigureSpec, export, make_figure
from ..model.io import unused_path
from ..model.navigate import local_link_warning
from ..model.scalebar import ScaleBar
from .dialogs import ExportDialog
from .images import to_qimage
from .jobs import Job


class FigureActions(QObject):
    """The window's export, copy and link actions."""

    def __init__(self, win: Any) -> None:  # the MainWindow (not imported: no cycle)
        super().__init__(win)
        self.win = win

    def export_png(self) -> None:
        self.export_dialog(series=False)

    def export_series(self) -> None:
        self.export_dialog(series=True)

    def export_dialog(self, series: bool) -> None:
        win, st = self.win, self.win.state
        if st.dataset is None:
            return
        if not st.style.show_unselected and not st.selection.ids:
            win.show_error(
                "nothing selected: select segments or turn off 'Show selected only'", dialog=True
            )
            return
        dlg = ExportDialog(self.default_path(), series, win)
        if not dlg.exec():
            return
        o = dlg.options()
        bar = ScaleBar(length_nm=o.scale_bar_nm, corner=o.scale_bar_corner) if o.scale_bar else None
        try:
            spec = win.figure_spec(depth=o.depth, scale=o.scale, scale_bar=bar, dpi=o.dpi)
        except (ValueError, ImageryGuiError) as exc:
            win.show_error(str(exc), dialog=True)
            return
        win.settings.export_dir = os.path.dirname(os.path.abspath(o.path))
        self.run_export(spec, o.path, force=o.force, masks=o.masks)

    def default_path(self) -> str:
        """In the folder of the last export (else home), a name no export has used yet."""
        folder = self.win.settings.export_dir
        if not folder or not os.path.isdir(folder):
            folder = os.path.expanduser("~")
        return unused_path(folder, "figure.png")

    def run_export(
        self, spec: FigureSpec, path: str, force: bool = False, masks: bool = False
    ) -> Job:
        """Export in the background with a progress dialog; returns the job."""
        win = self.win
        ds, extra = win.state.dataset, win.state.provenance_extra()
        job = win.jobs.run(
            lambda progress: export(
                ds, spec, path, force=force, masks=masks, extra_provenance=extra, progress=progress
            ),
            "export",
        )
        dialog = QProgressDialog("Exporting...", "Cancel", 0, 0, win)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(job.cancel)
        job.progressed.connect(
            lambda d, t, m: (dialog.setMaximum(t), dialog.setValue(d), dialog.setLabelText(m))
        )
        job.done.connect(dialog.reset)
        job.done.connect(dialog.deleteLater)  # one dialog per export: not kept after it
        job.succeeded.connect(lambda files: win.status.show_message(f"exported {files[0]}", 6000))
        job.failed.connect(lambda exc: win.show_error(f"Export failed: {exc}", dialog=True))
        job.cancelled.connect(lambda: win.status.show_message("export cancelled", 4000))
        return job

    def copy_image(self) -> Job | None:
        """Copy the current view (rendered by the exporter) to the clipboard as an image."""
        win = self.win
        if win.state.dataset is None:
            return None
        spec, ds = win.figure_spec(), win.state.dataset
        job = win.jobs.run(lambda progress: make_figure(ds, spec).slices[0], "copy image")
        job.succeeded.connect(self._on_copy_image_done)
        job.failed.connect(lambda exc: win.show_error(f"Copy failed: {exc}"))
        return job

    @Slot(object)
    def _on_copy_image_done(self, img) -> None:
        QGuiApplication.clipboard().setImage(to_qimage(img))
        self.win.status.show_message(f"copied a {img.width}x{img.height} image", 4000)

    def copy_neuroglancer_link(self) -> None:
        ds = self.win.state.dataset
        if ds is None:
            return
        QGuiApplication.clipboard().setText(self.win.neuroglancer_link())
        warning = local_link_warning(
            [layer.url if layer else None for layer in (ds.image, ds.segmentation)]
        )
        if warning:
            self.win.status.show_message(f"copied a Neuroglancer link; but {warning}", 20000)
        else:
            self.win.status.show_message("copied a Neuroglancer link for this view", 4000)
