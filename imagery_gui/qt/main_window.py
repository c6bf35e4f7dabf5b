"""The main window: layout and wiring only.

Everything the user can change lives in :class:`~imagery_gui.model.state.ViewerState`.
Widgets emit intents; the window turns them into state changes, and the state's events
into widget updates (under ``QSignalBlocker`` in the panels) and into calls on the
:class:`~imagery_gui.qt.display.SliceDisplay`. Slow work runs in the display's workers or
as :mod:`~imagery_gui.qt.jobs`; menus are declared in :mod:`~imagery_gui.qt.actions`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QColorDialog,
    QDockWidget,
    QInputDialog,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .._version import __version__
from ..model import diskcache
from ..model.errors import ImageryGuiError, SourceTimeoutError
from ..model.export import FigureSpec, export, make_figure
from ..model.inputs import OpenRequest, open_dataset
from ..model.scalebar import ScaleBar
from ..model.segments import parse_root_ids
from ..model.state import Camera, ViewerState
from ..model.style import StyleError
from ..model.view import Coloring, auto_levels, describe_bytes
from ..settings import Settings
from .actions import BIG_STEP, VIEW_KEYS, build_menus
from .canvas import SliceCanvas
from .dialogs import ExportDialog, OpenDialog
from .display import SliceDisplay
from .graphene import RootStatus
from .images import save_widget_png, to_qimage
from .jobs import Job, Jobs
from .panels import ContrastPanel, OverlayPanel, SegmentPanel, ZPanel
from .status import StatusLine

SCREENSHOT_TIMEOUT_MS = 180_000


def app_icon() -> QIcon:
    from importlib.resources import files

    path = files("imagery_gui") / "resources" / "imagery-gui.png"
    return QIcon(str(path)) if path.is_file() else QIcon()


def _nothing() -> None:
    pass


class MainWindow(QMainWindow):
    """The viewer window."""

    datasetOpened = Signal()
    errorShown = Signal(str)
    screenshotDone = Signal(int)  # exit code

    def __init__(self, settings: Settings | None = None, synchronous: bool = False) -> None:
        super().__init__()
        self.settings = settings if settings is not None else Settings.load()
        self.setWindowTitle("imagery-gui")
        self.setWindowIcon(app_icon())
        self.resize(1280, 800)
        self.state = ViewerState()
        self.jobs = Jobs(self)
        self.persist_settings = True
        self.last_error = ""
        self.while_opening: Callable[[], None] = _nothing  # process policy (app.py) sets it
        self._screenshot_path: str | None = None
        self._hover: tuple[float, float] | None = None

        self.canvas = SliceCanvas()
        self.setCentralWidget(self.canvas)
        reader = None
        if self.settings.read_process and not synchronous:
            from ..model import fetchproc

            reader = fetchproc.shared()  # starts now: its imports overlap with ours
        self.display = SliceDisplay(
            self.canvas,
            cache_bytes=int(self.settings.cache_mb) * 1024**2,
            timeout_s=self.settings.fetch_timeout_s or None,
            synchronous=synchronous,
            parent=self,
            reader=reader,
        )
        self.segments, self.overlay = SegmentPanel(), OverlayPanel()
        self.zpanel, self.contrast = ZPanel(), ContrastPanel()
        self._add_dock("Controls", (self.segments, self.overlay, self.zpanel, self.contrast))
        self.status = StatusLine()
        self.statusBar().addPermanentWidget(self.status, 1)
        self.readout, self.busy = self.status.readout, self.status.busy
        self.missing_label = self.status.missing_label
        self.roots = RootStatus(self.jobs, self)
        build_menus(self)
        self.act_disk_cache.setChecked(self.settings.disk_cache)
        self.menu_settings.aboutToShow.connect(self._update_cache_menu)
        self._fill_recent_menu()
        self._view_timer = QTimer(self, singleShot=True, interval=30)
        self._view_timer.timeout.connect(self._sync_camera)
        self._connect_widgets()
        self._connect_state()
        self.state.restore_style(self.settings.style)
        self._on_state_style(self.state.style)
        if self.settings.geometry:
            with contextlib.suppress(ValueError):  # a damaged entry: keep the default size
                self.restoreGeometry(QByteArray(base64.b64decode(self.settings.geometry)))

    # -- construction --------------------------------------------------------------------------
    def _add_dock(self, title: str, panels: tuple[QWidget, ...]) -> None:
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
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower() + "Dock")
        dock.setWidget(scroll)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

    def _connect_widgets(self) -> None:
        """Intents: widget signals -> state changes."""
        st = self.state
        self.canvas.hovered.connect(self._on_canvas_hovered)
        self.canvas.clicked.connect(self._on_canvas_clicked)
        self.canvas.viewChanged.connect(self._view_timer.start)
        self.canvas.zStepRequested.connect(self.step_z)
        self.segments.addRequested.connect(self._on_segments_add)
        self.segments.removeRequested.connect(self.remove_ids)
        self.segments.clearRequested.connect(st.clear_selection)
        self.segments.copyRequested.connect(self.copy_ids)
        self.segments.colorRequested.connect(self._on_segments_color)
        self.segments.showAllChanged.connect(self.set_show_all)
        self.segments.supervoxelsChanged.connect(st.set_supervoxels)
        self.segments.updateRequested.connect(lambda: st.replace_ids(self.roots.last_outdated))
        self.overlay.styleChanged.connect(self._on_overlay_style)
        self.zpanel.zRequested.connect(self.set_z)
        self.zpanel.playTicked.connect(self._on_play_tick)
        self.contrast.levelsChanged.connect(st.set_contrast)
        self.contrast.autoRequested.connect(self._on_contrast_auto)
        self.roots.outdated.connect(self._on_roots_outdated)
        self.roots.failed.connect(self.show_error)
        d = self.display
        d.busyChanged.connect(self._on_display_busy)
        d.activity.connect(lambda m: m and self.status.show_message(m))
        d.missingChanged.connect(self._on_display_missing)
        d.failed.connect(self.show_error)
        d.drawn.connect(self._on_display_drawn)

    def _connect_state(self) -> None:
        """State events -> widgets and the display."""
        ev = self.state.events
        ev.opened.connect(self._on_state_opened)
        ev.selection.connect(self._on_state_selection)
        ev.style.connect(self._on_state_style)
        ev.z.connect(self._on_state_z)
        ev.camera.connect(self.display.set_camera)
        ev.contrast.connect(self._on_state_contrast)
        ev.segmentation.connect(lambda sv, ts: self.display.set_agglomerate(not sv, ts))
        ev.warning.connect(lambda w: self.status.show_message(f"settings: {w}", 8000))

    def _fill_recent_menu(self) -> None:
        self.menu_recent.clear()
        for img, seg in self.settings.recent:
            act = self.menu_recent.addAction(f"{img or '-'}  |  {seg or '-'}")
            act.triggered.connect(
                lambda _=False, i=img, s=seg: self.open_sources(OpenRequest(i, s, None, None))
            )
        self.menu_recent.setEnabled(bool(self.settings.recent))

    # -- opening -------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        dlg = OpenDialog(self.settings.recent, self)
        if dlg.exec():
            self.open_sources(dlg.request())

    def open_demo(self) -> None:
        self.open_sources(OpenRequest(None, None, None, None, demo=True))

    def _dataset_kw(self) -> dict[str, Any]:
        """How this process reads: with a read process, chunks are cached there, so this
        process's own reads (the first views while it starts, exports) keep no chunk LRU."""
        lru = 0 if self.display.reader is not None else self.display.budget.chunk_lru_per_layer
        return {
            "disk_cache": diskcache.cache_path(self.settings.disk_cache),
            "lru_bytes": lru,
            "timeout_s": self.settings.fetch_timeout_s or None,
            "while_waiting": self.while_opening,
        }

    def open_sources(self, req: OpenRequest, root_ids: Any = None) -> Job:
        """Open a dataset in the background; errors are shown and the current view stays."""
        self.status.show_message(f"opening {req.describe()}...")
        self.status.set_busy(True)
        kw = self._dataset_kw()

        def work(progress):
            if req.demo:
                progress(0, 1, "generating the demo volume (first run only)...")
            inputs = req.resolve(root_ids)
            return open_dataset(inputs, **kw), inputs, req

        job = self.jobs.run(work, "open")
        job.progressed.connect(lambda d, t, m: self.status.show_message(m))
        job.succeeded.connect(self._on_open_finished)
        job.failed.connect(self._on_open_failed)
        return job

    @Slot(object)
    def _on_open_finished(self, result) -> None:
        ds, inputs, req = result
        self.status.set_busy(False)
        self.status.show_message("")
        self.state.open(inputs, ds, from_link=bool(req.ngl_url))
        if not req.demo:
            self.settings.image_source = inputs.image_source
            self.settings.segmentation_source = inputs.segmentation_source
            self.settings.add_recent(inputs.image_source, inputs.segmentation_source)
            self._fill_recent_menu()
        self.datasetOpened.emit()

    @Slot(object)
    def _on_open_failed(self, exc: object) -> None:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, SourceTimeoutError):
            message += "; change the limit in Settings > Fetch timeout"
        self.status.set_busy(False)
        self.status.show_message("")
        self.show_error(f"Could not open the data: {message}", dialog=True)
        if self._screenshot_path:
            print(f"imagery-gui: {message}", file=sys.stderr)
            self.screenshotDone.emit(1)

    def _on_state_opened(self, st: ViewerState) -> None:
        ds, inputs = st.dataset, st.inputs
        assert ds is not None and inputs is not None
        self.display.set_dataset(ds, inputs.timestamp, z=st.z)
        self.zpanel.set_range(*st.z_range)
        self.zpanel.set_z(st.z)
        if st.contrast is not None:
            self.contrast.set_bounds(*st.contrast_bounds)
            self._on_state_contrast(st.contrast)
        self.canvas.show_nm(*st.camera.center_nm, st.camera.nm_per_px)
        graphene = ds.segmentation is not None and ds.segmentation.spec.is_graphene
        self.segments.set_graphene(graphene)
        self.roots.configure(
            ds.segmentation.url if graphene else None, inputs.token, inputs.timestamp, inputs.client
        )
        layer = ds.image or ds.segmentation
        name = inputs.datastack or os.path.basename(layer.url.rstrip("/")) if layer else ""
        self.setWindowTitle(f"imagery-gui - {name}")
        self._on_state_style(st.style)
        self._on_state_selection(st.selection)
        self._sync_camera()
        self.display.set_camera(st.camera)  # (also when the camera did not move)

    # -- state -> widgets -----------------------------------------------------------------------
    def _on_state_selection(self, selection) -> None:
        self.segments.set_segments(list(self.state.segment_colors().items()))
        self.display.set_coloring(Coloring(self.state.style, selection))
        self.roots.check(list(selection.ids))

    def _on_state_style(self, style) -> None:
        self.overlay.show_style(style)
        self.segments.set_show_all(style.show_unselected)
        self.segments.set_segments(list(self.state.segment_colors().items()))
        self.display.set_coloring(Coloring(style, self.state.selection))
        self.display.set_geometry(style.geometry())
        self.settings.style = style.to_dict()

    def _on_state_z(self, z: int) -> None:
        self.display.set_z(z)
        self.zpanel.set_z(z)
        self._update_readout()

    def _on_state_contrast(self, levels) -> None:
        self.contrast.set_levels(*levels)
        self.canvas.set_levels(*levels)

    # -- intents -------------------------------------------------------------------------------
    @Slot(object)
    def _on_overlay_style(self, change: dict) -> None:
        try:
            self.state.set_style(**change)
        except StyleError as exc:
            self.show_error(str(exc))
            self.overlay.show_style(self.state.style)  # the controls show what is drawn

    def set_show_all(self, show_all: bool) -> None:
        self.state.set_style(show_unselected=bool(show_all))

    @Slot(str)
    def _on_segments_add(self, text: str) -> None:
        try:
            ids = parse_root_ids(text)
        except ImageryGuiError as exc:
            self.show_error(str(exc), dialog=True)
            return
        if 0 in ids:
            self.show_error("0 means 'no segment' and cannot be selected", dialog=True)
        self.segments.clear_entry()
        self.state.select(i for i in ids if i != 0)

    def add_ids(self, ids) -> None:
        self.state.select(int(i) for i in ids)

    @Slot(object)
    def remove_ids(self, ids) -> None:
        self.state.deselect(int(i) for i in ids)

    def copy_ids(self) -> None:
        QGuiApplication.clipboard().setText("\n".join(str(i) for i in self.state.selection.ids))
        self.status.show_message(f"copied {len(self.state.selection)} ids", 3000)

    @Slot(object)
    def _on_segments_color(self, sid: int) -> None:
        sid = int(sid)
        current = self.state.segment_colors().get(sid, (255, 255, 255))
        col = QColorDialog.getColor(QColor(*current), self, f"Colour of {sid}")
        if col.isValid():
            self.state.set_color(sid, (col.red(), col.green(), col.blue()))

    @Slot(object)
    def _on_roots_outdated(self, outdated: dict) -> None:
        sel = self.state.selection.ids
        self.segments.set_outdated({k: v for k, v in outdated.items() if k in sel})

    def _on_contrast_auto(self) -> None:
        img = self.display.current_image()
        if img is not None:
            self.state.set_contrast(*auto_levels(img))

    # -- z, camera, hover -----------------------------------------------------------------------
    @Slot(int)
    def set_z(self, z: int) -> None:
        if self.state.dataset is not None:
            self.state.set_z(z)

    @Slot(int)
    def step_z(self, dz: int) -> None:
        self.set_z(self.state.z + dz)

    def _on_play_tick(self) -> None:
        lo, hi = self.state.z_range
        self.set_z(lo if self.state.z >= hi else self.state.z + 1)

    def keyPressEvent(self, ev) -> None:
        if ev.key() in VIEW_KEYS:
            big = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.step_z(VIEW_KEYS[ev.key()] * (BIG_STEP if big else 1))
            ev.accept()
            return
        super().keyPressEvent(ev)

    def _sync_camera(self) -> None:
        c = self.canvas
        self.state.set_camera(Camera(c.center_nm(), c.nm_per_px(), c.visible_nm()))

    def zoom_one_to_one(self) -> None:
        if self.state.dataset is not None:
            from ..model.state import base_nm_per_px

            self.canvas.show_nm(*self.canvas.center_nm(), base_nm_per_px(self.state.dataset))
            self._sync_camera()

    @Slot(float, float)
    def _on_canvas_hovered(self, x_nm: float, y_nm: float) -> None:
        self._hover = (x_nm, y_nm)
        self._update_readout()

    def _update_readout(self) -> None:
        """x, y, z and the segment under the pointer, for the slice now shown."""
        if self._hover is None or self.state.dataset is None:
            return
        x_nm, y_nm = self._hover
        res, z = self.state.resolution, self.state.z
        sid = self.display.id_at_nm(x_nm, y_nm)
        if self.display.missing_at_nm(x_nm, y_nm):
            what = "no data (missing chunk)"
        else:
            what = str(sid) if sid else "-"
        zn = (z + 0.5) * res[2]
        self.status.set_readout(
            f"x {x_nm / res[0]:.0f}  y {y_nm / res[1]:.0f}  z {z}   "
            f"({x_nm / 1000:.3f}, {y_nm / 1000:.3f}, {zn / 1000:.3f}) µm   segment {what}"
        )

    @Slot(float, float, object)
    def _on_canvas_clicked(self, x_nm: float, y_nm: float, modifiers) -> None:
        self.state.toggle(self.display.id_at_nm(x_nm, y_nm))  # 0 is never selectable

    # -- status --------------------------------------------------------------------------------
    @Slot(bool)
    def _on_display_busy(self, busy: bool) -> None:
        self.status.set_busy(busy)
        if not busy:
            self.status.show_message("")

    @Slot(float)
    def _on_display_missing(self, fraction: float) -> None:
        text = f"no data in {max(fraction, 0.001):.1%} of this slice (hatched: missing chunks)"
        self.status.set_missing(text if fraction > 0 else "")

    @Slot()
    def _on_display_drawn(self) -> None:
        if self.display.complete and self.last_error:
            self.clear_error()
        self.status.set_cache(f"cache {describe_bytes(self.display.cache.nbytes)}")
        self._update_readout()
        if self._screenshot_path and self.display.complete:
            QTimer.singleShot(100, self._take_screenshot)

    def show_error(self, message: str, dialog: bool = False) -> None:
        self.last_error = message
        self.status.show_error(message)
        self.errorShown.emit(message)
        if dialog and not self._screenshot_path:
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "imagery-gui",
                message,
                QMessageBox.StandardButton.Ok,
                self,
            )
            box.setObjectName("errorBox")
            box.open()  # not exec(): the window stays responsive

    def clear_error(self) -> None:
        self.last_error = ""
        self.status.show_error("")

    # -- export, copy, link ---------------------------------------------------------------------
    def figure_spec(self, **kw: Any) -> FigureSpec:
        """The current view as a figure (see :func:`imagery_gui.model.state.figure_spec`)."""
        self._sync_camera()
        return self.state.figure_spec(**kw)

    def export_png(self) -> None:
        self.export_dialog(series=False)

    def export_series(self) -> None:
        self.export_dialog(series=True)

    def export_dialog(self, series: bool) -> None:
        st = self.state
        if st.dataset is None:
            return
        if not st.style.show_unselected and not st.selection.ids:
            self.show_error(
                "nothing selected: select segments or turn off 'Show selected only'", dialog=True
            )
            return
        folder = self.settings.export_dir or os.path.expanduser("~")
        dlg = ExportDialog(os.path.join(folder, "figure.png"), series, self)
        if not dlg.exec():
            return
        o = dlg.options()
        bar = ScaleBar(length_nm=o.scale_bar_nm, corner=o.scale_bar_corner) if o.scale_bar else None
        try:
            spec = self.figure_spec(depth=o.depth, scale=o.scale, scale_bar=bar, dpi=o.dpi)
        except (ValueError, ImageryGuiError) as exc:
            self.show_error(str(exc), dialog=True)
            return
        self.settings.export_dir = os.path.dirname(os.path.abspath(o.path))
        self.run_export(spec, o.path, force=o.force, masks=o.masks)

    def run_export(
        self, spec: FigureSpec, path: str, force: bool = False, masks: bool = False
    ) -> Job:
        """Export in the background with a progress dialog; returns the job."""
        ds, extra = self.state.dataset, self.state.provenance_extra()
        job = self.jobs.run(
            lambda progress: export(
                ds, spec, path, force=force, masks=masks, extra_provenance=extra, progress=progress
            ),
            "export",
        )
        dialog = QProgressDialog("Exporting...", "Cancel", 0, 0, self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(job.cancel)
        job.progressed.connect(
            lambda d, t, m: (dialog.setMaximum(t), dialog.setValue(d), dialog.setLabelText(m))
        )
        job.done.connect(dialog.reset)
        job.done.connect(dialog.deleteLater)  # one dialog per export: not kept after it
        job.succeeded.connect(lambda files: self.status.show_message(f"exported {files[0]}", 6000))
        job.failed.connect(lambda exc: self.show_error(f"Export failed: {exc}", dialog=True))
        job.cancelled.connect(lambda: self.status.show_message("export cancelled", 4000))
        return job

    def copy_image(self) -> Job | None:
        """Copy the current view (rendered by the exporter) to the clipboard as an image."""
        if self.state.dataset is None:
            return None
        spec, ds = self.figure_spec(), self.state.dataset
        job = self.jobs.run(lambda progress: make_figure(ds, spec).slices[0], "copy image")
        job.succeeded.connect(self._on_copy_image_done)
        job.failed.connect(lambda exc: self.show_error(f"Copy failed: {exc}"))
        return job

    @Slot(object)
    def _on_copy_image_done(self, img) -> None:
        QGuiApplication.clipboard().setImage(to_qimage(img))
        self.status.show_message(f"copied a {img.width}x{img.height} image", 4000)

    def neuroglancer_link(self) -> str:
        self._sync_camera()
        return self.state.neuroglancer_link()

    def copy_neuroglancer_link(self) -> None:
        if self.state.dataset is not None:
            QGuiApplication.clipboard().setText(self.neuroglancer_link())
            self.status.show_message("copied a Neuroglancer link for this view", 4000)

    # -- settings ------------------------------------------------------------------------------
    def ask_cache_size(self) -> None:
        mb, ok = QInputDialog.getInt(
            self, "Memory cache", "Memory for caches: decoded slices, outlines, chunk files (MiB):",
            self.settings.cache_mb, 64, 65536, 64,
        )  # fmt: skip
        if ok:
            self.settings.cache_mb = mb
            self.display.set_memory(mb * 1024**2)

    def ask_timeout(self) -> None:
        s, ok = QInputDialog.getDouble(
            self, "Fetch timeout", "Report a source as not answering after (s):",
            self.settings.fetch_timeout_s, 1, 600, 1,
        )  # fmt: skip
        if ok:
            self.settings.fetch_timeout_s = s
            self.display.fetcher.set_timeout(s)

    def disk_cache_bytes(self) -> int:
        return diskcache.cache_bytes()

    def _update_cache_menu(self) -> None:
        self.act_clear_cache.setText(
            f"Clear disk cache ({describe_bytes(self.disk_cache_bytes())})"
        )

    @Slot(bool)
    def set_disk_cache(self, on: bool) -> Job | None:
        """Turn cloud-volume's disk cache on or off: the open data is reopened with it in the
        background, keeping z, the camera, supervoxel mode and the timestamp."""
        self.settings.disk_cache = bool(on)
        st = self.state
        if st.inputs is None or st.dataset is None:
            return None
        inputs, kw = st.inputs, self._dataset_kw()
        job = self.jobs.run(lambda progress: open_dataset(inputs, **kw), "reopen")
        job.succeeded.connect(lambda ds: self._on_reopened(ds, inputs, bool(on)))
        job.failed.connect(lambda exc: self.show_error(f"Could not reopen the data: {exc}"))
        return job

    def _on_reopened(self, ds, inputs, on: bool) -> None:
        st = self.state
        if st.inputs is not inputs or self.settings.disk_cache != on:
            return  # other data was opened, or the cache toggled again, since: keep that
        st.replace_dataset(ds)
        self.display.set_dataset(ds, st.timestamp, agglomerate=not st.supervoxels, z=st.z)
        self.display.set_camera(st.camera)

    def clear_disk_cache(self) -> None:
        diskcache.clear_cache()
        self.status.show_message("disk cache cleared", 3000)

    def about(self) -> None:
        QMessageBox.about(self, "imagery-gui", f"imagery-gui {__version__}")

    # -- screenshot and closing ------------------------------------------------------------------
    def request_screenshot(self, path: str) -> None:
        """Save a PNG of the window once the view and overlay are loaded, then report."""
        self._screenshot_path = path
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, self._screenshot_timeout)

    def _screenshot_timeout(self) -> None:
        if self._screenshot_path:
            print(
                "imagery-gui: the view did not finish loading in time; no screenshot",
                file=sys.stderr,
            )
            self._screenshot_path = None
            self.screenshotDone.emit(1)

    def _take_screenshot(self) -> None:
        path = self._screenshot_path
        if not path or not self.display.complete:
            return
        self._screenshot_path = None
        try:
            save_widget_png(self, path)
        except ImageryGuiError as exc:
            print(f"imagery-gui: {exc}", file=sys.stderr)
            self.screenshotDone.emit(2)
            return
        print(path)
        self.screenshotDone.emit(0)

    def closeEvent(self, ev) -> None:
        if self.persist_settings:
            self.settings.geometry = base64.b64encode(bytes(self.saveGeometry())).decode("ascii")
            self.settings.save()
        self.jobs.cancel_all()
        self.display.close()
        super().closeEvent(ev)
