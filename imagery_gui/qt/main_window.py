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
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QColorDialog,
    QMainWindow,
    QMessageBox,
)

from .. import startlog
from .._version import __version__
from ..model import diskcache
from ..model.errors import SourceTimeoutError
from ..model.export import FigureSpec
from ..model.inputs import OpenRequest, open_dataset
from ..model.segments import entry_notice, parse_ids
from ..model.state import Camera, ViewerState
from ..model.style import StyleError
from ..model.view import Coloring, auto_levels, describe_bytes
from ..settings import Settings
from .actions import BIG_STEP, VIEW_KEYS, build_menus
from .canvas import SliceCanvas
from .dialogs import OpenDialog, show_open_dialog
from .display import SliceDisplay
from .figures import FigureActions
from .gallery_controller import GalleryController
from .graphene import RootStatus
from .images import Screenshot
from .jobs import Job, Jobs
from .navigation import Navigation
from .panels import ContrastPanel, OverlayPanel, SegmentPanel, ZPanel, panel_dock
from .settings_menu import SettingsActions
from .sites_dock import SitesController
from .status import StatusLine

SCREENSHOT_TIMEOUT_MS = 180_000


def app_icon() -> QIcon:
    from importlib.resources import files

    path = files("imagery_gui") / "resources" / "imagery-gui.png"
    return QIcon(str(path)) if path.is_file() else QIcon()


def _nothing(*_args: Any) -> None:
    pass


class MainWindow(QMainWindow):
    """The viewer window."""

    datasetOpened = Signal()
    errorShown = Signal(str)
    screenshotDone = Signal(int)  # exit code
    firstViewShown = Signal()  # the first complete view of the first data opened is drawn

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
        # (ditto) called first in the open's thread, with the OpenRequest
        self.before_open: Callable[[OpenRequest], None] = _nothing
        self._first_view_shown = False
        self._screenshot: Screenshot | None = None  # a --screenshot being taken
        self._hover: tuple[float, float] | None = None
        self.opened_request: OpenRequest | None = None  # what the open data was asked as
        self._open_dialog: OpenDialog | None = None  # File > Open while its open runs

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
        panels = (self.segments, self.overlay, self.zpanel, self.contrast)
        self.addDockWidget(
            Qt.DockWidgetArea.RightDockWidgetArea, panel_dock("Controls", panels, self)
        )
        self.status = StatusLine()
        self.statusBar().addPermanentWidget(self.status, 1)
        self.readout, self.busy = self.status.readout, self.status.busy
        self.missing_label = self.status.missing_label
        self.roots = RootStatus(self.jobs, self)
        self.figures, self.settings_menu = FigureActions(self), SettingsActions(self)
        self.sites = SitesController(self)
        self.gallery = GalleryController(self, synchronous=synchronous)
        self.nav = Navigation(self)  # View > Go to..., the view's keys, Help > shortcuts
        build_menus(self)
        self.menu_view.addAction(self.sites.dock.toggleViewAction())
        self.act_disk_cache.setChecked(self.settings.disk_cache)
        self.menu_settings.aboutToShow.connect(self.settings_menu.update_cache_menu)
        self._fill_recent_menu()
        self._view_timer = QTimer(self, singleShot=True, interval=30)
        self._view_timer.timeout.connect(self.sync_camera)
        self._connect_widgets()
        self._connect_state()
        self.state.restore_style(self.settings.style)
        self._on_state_style(self.state.style)
        if self.settings.geometry:
            with contextlib.suppress(ValueError):  # a damaged entry: keep the default size
                self.restoreGeometry(QByteArray(base64.b64decode(self.settings.geometry)))

    # -- construction --------------------------------------------------------------------------
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
        d.noticeChanged.connect(self.status.set_missing)
        d.linkNotice.connect(self.status.set_link)
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
    def open_dialog(self) -> OpenDialog:
        return show_open_dialog(self)

    def open_demo(self) -> None:
        self.open_sources(OpenRequest(None, None, None, None, demo=True))

    def dataset_kw(self) -> dict[str, Any]:
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
        kw = self.dataset_kw()

        def work(progress):
            self.before_open(req)
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
        startlog.mark("data opened")
        ds, inputs, req = result
        self.status.set_busy(False)
        self.status.show_message("")
        self.opened_request = req
        self.state.open(inputs, ds, from_link=bool(req.ngl_url))
        self.settings.image_source = inputs.image_source  # (the demo's too: Recent has it)
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
        self.show_error(f"Could not open the data: {message}", dialog=self._open_dialog is None)
        if self._screenshot is not None:
            self._screenshot.fail(message)

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
        if not self.sync_camera():  # (the display was told when it moved)
            self.display.set_camera(st.camera)

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
        """Add the valid ids of a line; one notice names each rejected token (with its
        reason, as the command line does) and the ids not in the loaded view."""
        parsed = parse_ids(text)
        got = self.display.current_slab()
        notice = entry_notice(parsed, got[0].ids if got is not None else None)
        self.segments.set_entry(" ".join(tok for tok, _why in parsed.rejected))
        if self.status.error() == self.segments.notice.text():
            self.status.show_error("")  # the previous entry's notice
        self.segments.show_notice(notice)
        self.state.select(parsed.ids)
        if notice:  # (not last_error: the redraw after selecting must not clear it)
            self.status.show_error(notice)
        if parsed.rejected:
            self.errorShown.emit(notice)

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

    def sync_camera(self) -> bool:
        """The canvas's view into the state; returns whether it moved."""
        c = self.canvas
        return self.state.set_camera(Camera(c.center_nm(), c.nm_per_px(), c.visible_nm()))

    def zoom_one_to_one(self) -> None:
        if self.state.dataset is not None:
            from ..model.state import base_nm_per_px

            self.canvas.show_nm(*self.canvas.center_nm(), base_nm_per_px(self.state.dataset))
            self.sync_camera()

    @Slot(float, float)
    def _on_canvas_hovered(self, x_nm: float, y_nm: float) -> None:
        self._hover = (x_nm, y_nm)
        self._update_readout()

    def _update_readout(self) -> None:
        """x, y, z and the segment under the pointer, for the slice now shown."""
        if self._hover is None or self.state.dataset is None:
            return
        x_nm, y_nm = self._hover
        missing = self.display.missing_at_nm(x_nm, y_nm)
        sid = self.display.id_at_nm(x_nm, y_nm)
        self.status.set_readout(self.state.readout(x_nm, y_nm, sid, missing))

    @Slot(float, float, object)
    def _on_canvas_clicked(self, x_nm: float, y_nm: float, modifiers) -> None:
        site = self.sites.site_at(x_nm, y_nm)  # a click on a glyph goes to its site
        if site is not None:
            self.state.go_to_site(site)
        else:
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
        if self.display.complete and not self._first_view_shown and self.state.dataset is not None:
            self._first_view_shown = True
            startlog.mark("first view drawn")
            self.firstViewShown.emit()
        if self._screenshot is not None and self.display.complete:
            QTimer.singleShot(0, self._screenshot.take)

    def show_error(self, message: str, dialog: bool = False) -> None:
        self.last_error = message
        self.status.show_error(message)
        self.errorShown.emit(message)
        if dialog and (self._screenshot is None or self._screenshot.finished):
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
        self.sync_camera()
        return self.state.figure_spec(**kw)

    def neuroglancer_link(self) -> str:
        self.sync_camera()
        return self.state.neuroglancer_link()

    def about(self) -> None:
        QMessageBox.about(self, "imagery-gui", f"imagery-gui {__version__}")

    # -- screenshot and closing ------------------------------------------------------------------
    def request_screenshot(self, path: str) -> None:
        """Save a PNG of the window once the view is loaded; ``screenshotDone(code)`` then
        (see :class:`~imagery_gui.qt.images.Screenshot`: every path ends)."""
        self._screenshot = Screenshot(self, path, SCREENSHOT_TIMEOUT_MS)
        self._screenshot.done.connect(self.screenshotDone)

    def closeEvent(self, ev) -> None:
        if self.persist_settings:
            self.settings.geometry = base64.b64encode(bytes(self.saveGeometry())).decode("ascii")
            self.settings.save()
        self.gallery.close()
        self.jobs.close()  # a job still running (a hung server) is given up on after 3 s
        self.display.close()
        super().closeEvent(ev)
