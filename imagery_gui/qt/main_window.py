"""The main window: a thin controller that wires the canvas, the panels and the display.

It owns the user's choices (dataset, selection, style, contrast) and turns them into
calls on :class:`~imagery_gui.qt.display.SliceDisplay`; everything slow happens in the
display's workers or in background jobs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import sys
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QColor, QGuiApplication, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QColorDialog,
    QDockWidget,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .._version import __version__
from ..model import render
from ..model.dataset import Dataset
from ..model.errors import ImageryGuiError, SourceTimeoutError
from ..model.export import FigureSpec, FigureStyle, export, make_figure
from ..model.inputs import Inputs
from ..model.ngl import DEFAULT_NGL_URL, make_link, make_state, ng_colors
from ..model.palette import NEUROGLANCER, check_palette, colors_for_ids
from ..model.scalebar import ScaleBar
from ..model.segments import parse_root_ids
from ..model.view import Coloring, describe_bytes
from ..settings import Settings
from .canvas import SliceCanvas
from .dialogs import BackgroundJob, ExportDialog, OpenDialog, OpenRequest
from .display import SliceDisplay
from .graphene import RootStatus
from .panels import ContrastPanel, OverlayPanel, SegmentPanel, ZPanel
from .process import configure_gui_process, settle_heap, warm_up

SCREENSHOT_TIMEOUT_MS = 180_000


def app_icon() -> QIcon:
    from importlib.resources import files

    path = files("imagery_gui") / "resources" / "imagery-gui.png"
    return QIcon(str(path)) if path.is_file() else QIcon()


class MainWindow(QMainWindow):
    """The viewer window."""

    datasetOpened = Signal()
    errorShown = Signal(str)
    screenshotDone = Signal(int)  # exit code

    def __init__(self, settings: Settings | None = None, synchronous: bool = False) -> None:
        super().__init__()
        self.settings = settings if settings is not None else Settings.load()
        configure_gui_process()
        self.setWindowTitle("imagery-gui")
        self.setWindowIcon(app_icon())
        self.resize(1280, 800)
        self.dataset: Dataset | None = None
        self.inputs: Inputs | None = None
        self.selection: dict[int, tuple[int, int, int] | None] = {}  # id -> explicit colour
        self.last_error = ""
        self.persist_settings = True
        self._jobs: list[BackgroundJob] = []
        self._screenshot_path: str | None = None

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
        self.segments = SegmentPanel()
        self.overlay = OverlayPanel()
        self.zpanel = ZPanel()
        self.contrast = ContrastPanel()
        side = QWidget()
        lay = QVBoxLayout(side)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(6)
        for w in (self.segments, self.overlay, self.zpanel, self.contrast):
            lay.addWidget(w)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(340)
        dock = QDockWidget("Controls", self)
        dock.setObjectName("controlsDock")
        dock.setWidget(scroll)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

        self.readout = QLabel("")
        self.readout.setObjectName("readout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #e74c3c")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(14)
        self.busy.setVisible(False)
        self.cache_label = QLabel("")
        self.missing_label = QLabel("")
        self.missing_label.setStyleSheet("color: #e67e22")
        self.missing_label.setObjectName("missingLabel")
        sb = self.statusBar()
        sb.addWidget(self.readout, 1)
        sb.addPermanentWidget(self.error_label)
        sb.addPermanentWidget(self.busy)
        sb.addPermanentWidget(self.missing_label)
        sb.addPermanentWidget(self.cache_label)

        self._build_menus()
        self._apply_settings_to_panels()

        self.canvas.hovered.connect(self._on_canvas_hovered)
        self.canvas.clicked.connect(self._on_canvas_clicked)
        self.canvas.viewChanged.connect(self._on_canvas_view_changed)
        self.canvas.zStepRequested.connect(self.step_z)
        self.display.busyChanged.connect(self._on_display_busy)
        self.display.activity.connect(self._on_display_activity)
        self.display.missingChanged.connect(self._on_display_missing)
        self.display.failed.connect(self._on_display_failed)
        self.display.drawn.connect(self._on_display_drawn)
        self.segments.addRequested.connect(self._on_segments_add)
        self.segments.removeRequested.connect(self.remove_ids)
        self.segments.clearRequested.connect(self.clear_selection)
        self.segments.copyRequested.connect(self.copy_ids)
        self.segments.colorRequested.connect(self._on_segments_color)
        self.segments.showAllChanged.connect(self.set_show_all)
        self.segments.supervoxelsChanged.connect(self._on_segments_supervoxels)
        self.segments.updateRequested.connect(self._on_segments_update)
        self.roots = RootStatus(self)
        self.roots.outdated.connect(self._on_roots_outdated)
        self.roots.failed.connect(self.show_error)
        self.overlay.styleChanged.connect(self._on_overlay_style)
        self.zpanel.zRequested.connect(self.set_z)
        self.contrast.levelsChanged.connect(self.canvas.set_levels)
        self.contrast.autoRequested.connect(self._on_contrast_auto)
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.setInterval(30)
        self._view_timer.timeout.connect(self.display.update_view)
        if self.settings.geometry:
            with contextlib.suppress(ValueError):  # a damaged entry: keep the default size
                self.restoreGeometry(QByteArray(base64.b64decode(self.settings.geometry)))
        warm_up()
        settle_heap(everything=True)  # after every import the window and the first read make

    # -- construction --------------------------------------------------------------------------
    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self.act_open = QAction("&Open...", self, shortcut=QKeySequence.StandardKey.Open)
        self.act_open.triggered.connect(self.open_dialog)
        m.addAction(self.act_open)
        act = QAction("Open &demo volume", self)
        act.triggered.connect(
            lambda: self.open_sources(OpenRequest(None, None, None, None, demo=True))
        )
        m.addAction(act)
        self.recent_menu = m.addMenu("Recent sources")
        self._fill_recent_menu()
        m.addSeparator()
        self.act_export = QAction("&Export PNG...", self, shortcut=QKeySequence("Ctrl+E"))
        self.act_export.triggered.connect(lambda: self.export_dialog(series=False))
        m.addAction(self.act_export)
        act = QAction("Export &z-series...", self, shortcut=QKeySequence("Ctrl+Shift+E"))
        act.triggered.connect(lambda: self.export_dialog(series=True))
        m.addAction(act)
        act = QAction("&Copy image to clipboard", self, shortcut=QKeySequence("Ctrl+Shift+C"))
        act.triggered.connect(self.copy_image)
        m.addAction(act)
        m.addSeparator()
        e = self.menuBar().addMenu("&Edit")
        act = QAction("Copy &Neuroglancer link", self, shortcut=QKeySequence("Ctrl+L"))
        act.triggered.connect(self.copy_neuroglancer_link)
        e.addAction(act)
        act = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        act.triggered.connect(self.close)
        m.addAction(act)
        v = self.menuBar().addMenu("&View")
        act = QAction(
            "Zoom to full resolution (1 voxel = 1 pixel)", self, shortcut=QKeySequence("Ctrl+1")
        )
        act.triggered.connect(self.zoom_one_to_one)
        v.addAction(act)
        s = self.menuBar().addMenu("&Settings")
        act = QAction("Memory cache size...", self)
        act.triggered.connect(self._ask_cache_size)
        s.addAction(act)
        act = QAction("Fetch timeout...", self)
        act.triggered.connect(self._ask_timeout)
        s.addAction(act)
        s.addSeparator()
        self.act_disk_cache = QAction("Disk cache for remote data", self, checkable=True)
        self.act_disk_cache.setChecked(self.settings.disk_cache)
        self.act_disk_cache.toggled.connect(self.set_disk_cache)
        s.addAction(self.act_disk_cache)
        self.act_clear_cache = QAction("Clear disk cache", self)
        self.act_clear_cache.triggered.connect(self.clear_disk_cache)
        s.addAction(self.act_clear_cache)
        s.aboutToShow.connect(self._update_cache_menu)
        h = self.menuBar().addMenu("&Help")
        act = QAction("About imagery-gui", self)
        act.triggered.connect(
            lambda: QMessageBox.about(self, "imagery-gui", f"imagery-gui {__version__}")
        )
        h.addAction(act)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for img, seg in self.settings.recent:
            act = QAction(f"{img or '-'}  |  {seg or '-'}", self)
            act.triggered.connect(
                lambda _=False, i=img, s=seg: self.open_sources(OpenRequest(i, s, None, None))
            )
            self.recent_menu.addAction(act)
        self.recent_menu.setEnabled(bool(self.settings.recent))

    def _apply_settings_to_panels(self) -> None:
        s = self.settings
        self.overlay.set_values(
            {
                "alpha": s.alpha,
                "selected_alpha": s.selected_alpha,
                "outline": s.outline,
                "width": s.width,
                "side": s.side if s.side in ("in", "out") else "in",
                "merge_outline": s.merge_outline,
                "palette": s.palette,
                "color_seed": s.color_seed,
            }
        )
        self.segments.set_show_all(s.show_all)
        self._push_style()

    @classmethod
    def from_args(cls, args: argparse.Namespace, synchronous: bool = False) -> MainWindow:
        win = cls(synchronous=synchronous)
        if args.screenshot:
            # A screenshot has a fixed size and leaves the user's settings alone.
            win.persist_settings = False
            win.resize(*(args.size or (1280, 800)))
        elif args.size:
            win.resize(*args.size)
        given = (args.image_source, args.segmentation_source, args.datastack, args.ngl_url)
        req = OpenRequest.from_args(args, demo=args.demo or not any(given))
        win.open_sources(req, root_ids=args.root_ids)
        return win

    # -- opening -------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        dlg = OpenDialog(self.settings.recent, self)
        if dlg.exec():
            self.open_sources(dlg.request())

    def open_sources(self, req: OpenRequest, root_ids: Any = None) -> None:
        """Open a dataset in the background; errors are shown and the current view stays."""
        self.statusBar().showMessage(f"opening {req.describe()}...")
        self.busy.setVisible(True)

        def work(progress):
            if req.demo:
                progress(0, 1, "generating the demo volume (first run only)...")
            inputs = req.resolve(root_ids)
            # Metadata now, in the background: errors surface here. The heap is settled
            # while the first requests are on the wire (it holds the GIL for a moment).
            from ..model.dataset import start_thread

            ds = self._dataset_for(inputs)
            opened = start_thread(ds.open)
            settle_heap()
            try:
                return opened(timeout=self.settings.fetch_timeout_s or None), inputs, req
            except SourceTimeoutError as exc:
                raise SourceTimeoutError(
                    f"{exc}; change the limit in Settings > Fetch timeout"
                ) from None

        job = BackgroundJob(work, self)
        job.progressed.connect(self._on_job_progress)
        job.finished.connect(self._on_open_finished)
        job.failed.connect(self._on_open_failed)
        self._jobs.append(job)
        job.start()

    def _dataset_for(self, inputs: Inputs) -> Dataset:
        """The dataset this process reads metadata (and, without a read process, data)
        through. With a read process, chunks are cached there: this process's own reads
        (the first views while it starts, exports) go without a chunk LRU."""
        lru = 0 if self.display.reader is not None else self.display.budget.chunk_lru_per_layer
        return inputs.dataset(disk_cache=self.disk_cache_path(), lru_bytes=lru)

    @Slot(int, int, str)
    def _on_job_progress(self, done: int, total: int, message: str) -> None:
        self.statusBar().showMessage(message)

    @Slot(object)
    def _on_open_finished(self, result) -> None:
        ds, inputs, req = result
        self.busy.setVisible(False)
        self.statusBar().clearMessage()
        self.dataset = ds
        self.inputs = inputs
        self.display.set_dataset(ds, inputs.timestamp)
        res = ds.resolution
        center = inputs.center
        if center is None:
            vb = ds.volume_bounds(res)
            center = ((vb[0] + vb[1]) / 2).tolist()
        c_nm = np.asarray(center, dtype=np.float64) * res
        layer = ds.image or ds.segmentation
        mip = ds.image_mip if ds.image else ds.segmentation_mip
        self.display.z = int(np.floor(c_nm[2] / res[2]))
        lo, hi = self.display.z_bounds()
        self.zpanel.set_range(lo, hi)
        self.display.z = int(min(max(self.display.z, lo), hi))
        self.zpanel.set_z(self.display.z)
        if ds.image is not None:
            info = np.iinfo(ds.image.dtype) if ds.image.dtype.kind in "ui" else None
            top = float(info.max) if info else 1.0
            self.contrast.set_bounds(0, top)
            levels = inputs.contrast or (0, top)
            self.contrast.set_levels(*levels)
            self.canvas.set_levels(*levels)
        self.canvas.show_nm(c_nm[0], c_nm[1], inputs.nm_per_px or float(layer.resolution(mip)[0]))
        graphene = ds.segmentation is not None and ds.segmentation.spec.is_graphene
        self.segments.set_graphene(graphene)
        self.roots.configure(
            ds.segmentation.url if graphene else None, inputs.token, inputs.timestamp, inputs.client
        )
        name = inputs.datastack or os.path.basename((ds.image or ds.segmentation).url.rstrip("/"))
        self.setWindowTitle(f"imagery-gui - {name}")
        if not req.demo:
            self.settings.image_source = inputs.image_source
            self.settings.segmentation_source = inputs.segmentation_source
            self.settings.add_recent(inputs.image_source, inputs.segmentation_source)
            self._fill_recent_menu()
        if req.ngl_url:  # show it as colleagues see it in Neuroglancer
            values = self.overlay.values()
            values["palette"] = NEUROGLANCER
            values["color_seed"] = inputs.color_seed or 0
            if inputs.selected_alpha is not None:
                values["selected_alpha"] = inputs.selected_alpha
            self.overlay.set_values(values)
            self.set_show_all(not inputs.root_ids)
        self.selection = {int(i): inputs.segment_colors.get(int(i)) for i in inputs.root_ids}
        self._selection_changed()
        self.display.update_view()
        self.datasetOpened.emit()

    @Slot(str)
    def _on_open_failed(self, message: str) -> None:
        self.busy.setVisible(False)
        self.statusBar().clearMessage()
        self.show_error(f"Could not open the data: {message}", dialog=True)
        if self._screenshot_path:
            print(f"imagery-gui: {message}", file=sys.stderr)
            self.screenshotDone.emit(1)

    def show_error(self, message: str, dialog: bool = False) -> None:
        self.last_error = message
        self.error_label.setText(message if len(message) < 120 else message[:117] + "...")
        self.error_label.setToolTip(message)
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
        self.error_label.setText("")

    # -- z and view ----------------------------------------------------------------------------
    @Slot(int)
    def set_z(self, z: int) -> None:
        if self.dataset is None:
            return
        self.display.set_z(z)
        self.zpanel.set_z(self.display.z)

    @Slot(int)
    def step_z(self, dz: int) -> None:
        self.set_z(self.display.z + dz)

    def keyPressEvent(self, ev) -> None:
        key = ev.key()
        big = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        steps = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_PageUp: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_PageDown: -1,
        }
        if key in steps:
            self.step_z(steps[key] * (10 if big else 1))
            ev.accept()
            return
        super().keyPressEvent(ev)

    @Slot()
    def _on_canvas_view_changed(self) -> None:
        self._view_timer.start()

    def zoom_one_to_one(self) -> None:
        if self.dataset is None:
            return
        layer = self.dataset.image or self.dataset.segmentation
        mip = self.dataset.image_mip if self.dataset.image else self.dataset.segmentation_mip
        cx, cy = self.canvas.center_nm()
        self.canvas.show_nm(cx, cy, float(layer.resolution(mip)[0]))

    # -- hover and click -------------------------------------------------------------------------
    @Slot(float, float)
    def _on_canvas_hovered(self, x_nm: float, y_nm: float) -> None:
        if self.dataset is None:
            return
        res = self.display.view_res
        z = self.display.z
        sid = self.display.id_at_nm(x_nm, y_nm)
        if self.display.missing_at_nm(x_nm, y_nm):
            what = "no data (missing chunk)"
        else:
            what = str(sid) if sid else "-"
        zn = (z + 0.5) * res[2]
        self.readout.setText(
            f"x {x_nm / res[0]:.0f}  y {y_nm / res[1]:.0f}  z {z}   "
            f"({x_nm / 1000:.3f}, {y_nm / 1000:.3f}, {zn / 1000:.3f}) µm   "
            f"segment {what}"
        )

    @Slot(float, float, object)
    def _on_canvas_clicked(self, x_nm: float, y_nm: float, modifiers) -> None:
        sid = self.display.id_at_nm(x_nm, y_nm)
        if sid == 0:
            return  # 0 is "no segment": never selectable
        if sid in self.selection:
            self.remove_ids([sid])
        else:
            self.add_ids([sid])

    # -- selection --------------------------------------------------------------------------------
    @Slot(str)
    def _on_segments_add(self, text: str) -> None:
        try:
            ids = parse_root_ids(text)
        except ImageryGuiError as exc:
            self.show_error(str(exc), dialog=True)
            return
        if 0 in ids:
            self.show_error("0 means 'no segment' and cannot be selected", dialog=True)
            ids = [i for i in ids if i != 0]
        self.segments.clear_entry()
        self.add_ids(ids)

    def add_ids(self, ids) -> None:
        for i in ids:
            if int(i) != 0 and int(i) not in self.selection:
                self.selection[int(i)] = None
        self._selection_changed()

    @Slot(list)
    def remove_ids(self, ids) -> None:
        for i in ids:
            self.selection.pop(int(i), None)
        self._selection_changed()

    @Slot()
    def clear_selection(self) -> None:
        self.selection.clear()
        self._selection_changed()

    @Slot()
    def copy_ids(self) -> None:
        QGuiApplication.clipboard().setText("\n".join(str(i) for i in self.selection))
        self.statusBar().showMessage(f"copied {len(self.selection)} ids", 3000)

    def segment_colors(self) -> dict[int, tuple[int, int, int]]:
        """Colour of each selected id as drawn (explicit, else the palette's colour for it)."""
        v = self.overlay.values()
        ids = list(self.selection)
        if not ids:
            return {}
        if v["palette"] == NEUROGLANCER:
            base = {
                i: tuple(int(c) for c in rgb)
                for i, rgb in zip(ids, ng_colors(ids, v["color_seed"]))
            }
        else:
            base = colors_for_ids(ids, v["palette"])
        return {i: (c if c is not None else base[i]) for i, c in self.selection.items()}

    @Slot(int)
    def _on_segments_color(self, sid: int) -> None:
        current = self.segment_colors().get(sid, (255, 255, 255))
        col = QColorDialog.getColor(QColor(*current), self, f"Colour of {sid}")
        if col.isValid():
            self.set_color(sid, (col.red(), col.green(), col.blue()))

    def set_color(self, sid: int, rgb: tuple[int, int, int]) -> None:
        if sid in self.selection:
            self.selection[sid] = tuple(int(c) for c in rgb)  # type: ignore[assignment]
            self._selection_changed()

    @Slot(bool)
    def set_show_all(self, show_all: bool) -> None:
        self.settings.show_all = show_all
        self.segments.set_show_all(show_all)
        self._push_style()

    def _selection_changed(self) -> None:
        self.segments.set_segments(list(self.segment_colors().items()))
        self._push_style()
        self.roots.check(list(self.selection))

    @Slot(bool)
    def _on_segments_supervoxels(self, on: bool) -> None:
        self.display.set_agglomerate(not on, self.inputs.timestamp if self.inputs else None)

    @Slot(object)
    def _on_roots_outdated(self, outdated: dict) -> None:
        self.segments.set_outdated({k: v for k, v in outdated.items() if k in self.selection})

    @Slot()
    def _on_segments_update(self) -> None:
        """Replace outdated root ids by their latest successors (keeping order)."""
        replaced: dict[int, tuple[int, int, int] | None] = {}
        for i, color in self.selection.items():
            for new in self.roots.last_outdated.get(i, [i]):
                replaced.setdefault(int(new), color)
        self.selection = replaced
        self.segments.set_outdated({})
        self._selection_changed()

    # -- style ---------------------------------------------------------------------------------
    @Slot(object)
    def _on_overlay_style(self, values: dict) -> None:
        for k, v in values.items():
            setattr(self.settings, k, v)
        self._push_style()
        self.segments.set_segments(list(self.segment_colors().items()))

    def _push_style(self) -> None:
        v = self.overlay.values()
        try:
            geometry = render.Geometry(
                outline=v["outline"],
                width=v["width"],
                side=v["side"],
                merge_outline=v["merge_outline"],
            )
            check_palette(v["palette"])  # validate the name before using it
        except ValueError as exc:
            self.show_error(str(exc))
            return
        explicit = tuple((i, c) for i, c in self.selection.items() if c is not None)
        self.display.set_coloring(
            Coloring(
                palette=v["palette"],
                colors=explicit,
                selected=tuple(self.selection),
                show_all=self.settings.show_all,
                alpha=v["alpha"],
                selected_alpha=v["selected_alpha"],
                color_seed=v["color_seed"],
            )
        )
        self.display.set_geometry(geometry)

    @Slot()
    def _on_contrast_auto(self) -> None:
        img = self.display.current_image()
        if img is None:
            return
        lo, hi = np.percentile(img, [0.5, 99.5])
        self.contrast.set_levels(lo, hi)
        self.canvas.set_levels(lo, hi)

    # -- status ----------------------------------------------------------------------------------
    @Slot(bool)
    def _on_display_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        if not busy:
            self.statusBar().clearMessage()

    @Slot(str)
    def _on_display_activity(self, message: str) -> None:
        if message:
            self.statusBar().showMessage(message)

    @Slot(float)
    def _on_display_missing(self, fraction: float) -> None:
        if fraction > 0:
            self.missing_label.setText(
                f"no data in {max(fraction, 0.001):.1%} of this slice (hatched: missing chunks)"
            )
        else:
            self.missing_label.setText("")

    @Slot(str)
    def _on_display_failed(self, message: str) -> None:
        self.show_error(message)

    @Slot()
    def _on_display_drawn(self) -> None:
        if self.display.complete and self.last_error:
            self.clear_error()
        self.cache_label.setText(f"cache {describe_bytes(self.display.cache.nbytes)}")
        if self._screenshot_path and self.display.complete:
            QTimer.singleShot(100, self._take_screenshot)

    # -- export -----------------------------------------------------------------------------------
    def figure_spec(
        self, depth: int = 1, scale: int = 1, scale_bar: ScaleBar | None = None, dpi: int = 300
    ) -> FigureSpec:
        """The current view as a figure: visible area at the displayed mips, current style."""
        assert self.dataset is not None
        reg = self.display.region
        res = self.display.view_res
        x0, y0, x1, y1 = self.canvas.visible_nm()
        vb = self.dataset.volume_bounds(res) * np.r_[res[:2], res[2]]
        x0, y0 = max(x0, vb[0][0]), max(y0, vb[0][1])
        x1, y1 = min(x1, vb[1][0]), min(y1, vb[1][1])
        z = self.display.z
        lo = [np.floor(x0 / res[0]), np.floor(y0 / res[1]), z]
        hi = [np.ceil(x1 / res[0]), np.ceil(y1 / res[1]), z + depth]
        v = self.overlay.values()
        show_all = self.settings.show_all
        style = FigureStyle(
            alpha=v["alpha"],
            outline=v["outline"],
            width=v["width"],
            side=v["side"],
            merge_outline=v["merge_outline"],
            palette=v["palette"],
            colors=tuple((i, c) for i, c in self.selection.items() if c is not None),
            color_by_id=True,
            selected=tuple(self.selection),
            selected_alpha=v["selected_alpha"],
            color_seed=v["color_seed"],
        )
        return FigureSpec(
            bounds=(tuple(lo), tuple(hi)),  # type: ignore[arg-type]
            resolution=tuple(float(r) for r in res),  # type: ignore[arg-type]
            image_mip=reg.image_mip if reg and self.dataset.image else None,
            segmentation_mip=reg.segmentation_mip if reg and self.dataset.segmentation else None,
            root_ids="all" if show_all else tuple(self.selection),
            style=style,
            scale=scale,
            scale_bar=scale_bar,
            dpi=dpi,
        )

    def export_dialog(self, series: bool) -> None:
        if self.dataset is None:
            return
        if not self.settings.show_all and not self.selection:
            self.show_error(
                "nothing selected: select segments or turn off 'Show selected only'", dialog=True
            )
            return
        dlg = ExportDialog(os.path.join(os.getcwd(), "figure.png"), series, self)
        if not dlg.exec():
            return
        o = dlg.options()
        bar = ScaleBar(length_nm=o.scale_bar_nm, corner=o.scale_bar_corner) if o.scale_bar else None
        try:
            spec = self.figure_spec(depth=o.depth, scale=o.scale, scale_bar=bar, dpi=o.dpi)
        except (ValueError, ImageryGuiError) as exc:
            self.show_error(str(exc), dialog=True)
            return
        self.run_export(spec, o.path, force=o.force, masks=o.masks)

    def run_export(
        self, spec: FigureSpec, path: str, force: bool = False, masks: bool = False
    ) -> BackgroundJob:
        """Export in the background with a progress dialog; returns the job."""
        ds = self.dataset
        extra = self.provenance_extra()
        job = BackgroundJob(
            lambda progress: export(
                ds, spec, path, force=force, masks=masks, extra_provenance=extra, progress=progress
            ),
            self,
        )
        dialog = QProgressDialog("Exporting...", "Cancel", 0, 0, self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(job.cancel)
        job.progressed.connect(
            lambda d, t, m: (dialog.setMaximum(t), dialog.setValue(d), dialog.setLabelText(m))
        )
        job.finished.connect(
            lambda files: (
                dialog.reset(),
                self.statusBar().showMessage(f"exported {files[0]}", 6000),
            )
        )
        job.failed.connect(
            lambda msg: (
                dialog.reset(),
                self.show_error(f"Export failed: {msg}", dialog=msg != "cancelled"),
            )
        )
        self._jobs.append(job)
        job.start()
        return job

    def copy_image(self) -> BackgroundJob | None:
        """Copy the current view (rendered by the exporter) to the clipboard as an image."""
        if self.dataset is None:
            return None
        spec = self.figure_spec()
        ds = self.dataset
        job = BackgroundJob(lambda progress: make_figure(ds, spec).slices[0], self)

        def done(img) -> None:
            arr = np.ascontiguousarray(np.asarray(img.convert("RGBA")))
            qimg = QImage(
                arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_RGBA8888
            ).copy()
            QGuiApplication.clipboard().setImage(qimg)
            self.statusBar().showMessage(f"copied a {arr.shape[1]}x{arr.shape[0]} image", 4000)

        job.finished.connect(done)
        job.failed.connect(lambda msg: self.show_error(f"Copy failed: {msg}"))
        self._jobs.append(job)
        job.start()
        return job

    # -- Neuroglancer -----------------------------------------------------------------------------
    def neuroglancer_link(self) -> str:
        """A Neuroglancer link for the current view: position, zoom, layers, selection."""
        assert self.dataset is not None
        res = self.display.view_res
        cx, cy = self.canvas.center_nm()
        v = self.overlay.values()
        if v["palette"] != NEUROGLANCER:
            colors = self.segment_colors()
        else:
            colors = {i: c for i, c in self.selection.items() if c is not None}
        state = make_state(
            center=[np.floor(cx / res[0]), np.floor(cy / res[1]), self.display.z],
            resolution=res,
            image_source=self.dataset.image.url if self.dataset.image else None,
            segmentation_source=self.dataset.segmentation.url
            if self.dataset.segmentation
            else None,
            segments=list(self.selection),
            segment_colors=colors or None,
            selected_alpha=v["selected_alpha"],
            color_seed=v["color_seed"] if v["palette"] == NEUROGLANCER else None,
            contrast=self.canvas.levels if self.dataset.image else None,
            nm_per_px=self.canvas.nm_per_px(),
        )
        site = self.inputs.viewer_site if self.inputs and self.inputs.viewer_site else None
        return make_link(state, site or DEFAULT_NGL_URL)

    def copy_neuroglancer_link(self) -> None:
        if self.dataset is None:
            return
        QGuiApplication.clipboard().setText(self.neuroglancer_link())
        self.statusBar().showMessage("copied a Neuroglancer link for this view", 4000)

    def provenance_extra(self) -> dict:
        extra = {"neuroglancer_link": self.neuroglancer_link()}
        if self.inputs and self.inputs.datastack:
            extra["datastack"] = {
                "name": self.inputs.datastack,
                "server": self.inputs.server_address,
            }
        return extra

    # -- settings ------------------------------------------------------------------------------
    def _ask_cache_size(self) -> None:
        mb, ok = QInputDialog.getInt(
            self,
            "Memory cache",
            "Memory for caches: decoded slices, outlines, chunk files (MiB):",
            self.settings.cache_mb,
            64,
            65536,
            64,
        )
        if ok:
            self.settings.cache_mb = mb
            self.display.set_memory(mb * 1024**2)

    def disk_cache_path(self) -> str | bool:
        """Where cloud-volume caches chunk files on disk, or False when the cache is off."""
        if not self.settings.disk_cache:
            return False
        from ..model.demo import cache_root

        path = cache_root() / "chunks"
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def disk_cache_bytes(self) -> int:
        from ..model.demo import cache_root

        total = 0
        for root, _, files in os.walk(cache_root() / "chunks"):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.path.getsize(os.path.join(root, f))
        return total

    def _update_cache_menu(self) -> None:
        self.act_clear_cache.setText(
            f"Clear disk cache ({describe_bytes(self.disk_cache_bytes())})"
        )

    @Slot(bool)
    def set_disk_cache(self, on: bool) -> None:
        """Turn cloud-volume's disk cache on or off; the open data is reopened to use it."""
        self.settings.disk_cache = bool(on)
        if self.dataset is not None and self.inputs is not None:
            ds = self._dataset_for(self.inputs)
            self.dataset = ds
            z = self.display.z
            self.display.set_dataset(ds)
            self.display.z = z
            self.display.update_view()

    def clear_disk_cache(self) -> None:
        import shutil

        from ..model.demo import cache_root

        shutil.rmtree(cache_root() / "chunks", ignore_errors=True)
        self.statusBar().showMessage("disk cache cleared", 3000)

    def _ask_timeout(self) -> None:
        s, ok = QInputDialog.getDouble(
            self,
            "Fetch timeout",
            "Report a source as not answering after (s):",
            self.settings.fetch_timeout_s,
            1,
            600,
            1,
        )
        if ok:
            self.settings.fetch_timeout_s = s
            self.display.fetcher.set_timeout(s)

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
        from ..model.errors import ExportError
        from ..model.io import save_png_atomic

        QApplication.processEvents()
        qimg = self.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
        arr = np.frombuffer(qimg.constBits(), dtype=np.uint8).reshape(
            qimg.height(), qimg.bytesPerLine()
        )
        arr = arr[:, : qimg.width() * 4].reshape(qimg.height(), qimg.width(), 4)
        try:
            save_png_atomic(arr[..., :3].copy(), path, overwrite=True)
        except ExportError as exc:
            print(f"imagery-gui: {exc}", file=sys.stderr)
            self.screenshotDone.emit(2)
            return
        print(path)
        self.screenshotDone.emit(0)

    def closeEvent(self, ev) -> None:
        if self.persist_settings:
            self.settings.geometry = base64.b64encode(bytes(self.saveGeometry())).decode("ascii")
            self.settings.save()
        for job in self._jobs:
            job.cancel()
        self.display.close()
        super().closeEvent(ev)
