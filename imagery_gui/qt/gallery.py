"""View > Gallery: the site table as a grid of figures, judged by keyboard.

One tile per site of the Sites dock's order (its sort and filter), in a virtualised
``QListView`` (only the tiles on screen are painted; 100,000 rows cost a few arrays). Each
tile is the site's figure as export and batch make it (:func:`imagery_gui.model.batch.site_spec`
with the window's style and selection, one voxel per pixel), rendered by a worker thread,
nearest the viewport first, into a cache with a byte budget: tiles far from the viewport are
evicted, decisions never are. Hovering a tile scrubs it through +-k sections (the stack is
rendered once, on first hover).

Decisions live in a :class:`~imagery_gui.model.review.Review`, saved to its file as each is
made. The controller only turns keys into calls on it and shows what it holds.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QSpinBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from .workers import _Threaded

Index = QModelIndex | QPersistentModelIndex

#: Bytes of tile images kept (the rest are made again when scrolled back to).
TILE_CACHE_BYTES = 256 << 20
LABEL_H = 18
SPACING = 6
#: Tiles rendered beyond the viewport, in screens, in the direction of travel.
AHEAD_SCREENS = 1.5
#: Verdict colours, in the order of the configured verdicts (then grey).
VERDICT_COLORS = ("#2e9d4a", "#d03b3b", "#e0a21a", "#3a76d0", "#9b59b6", "#16a3a3")

SiteRole = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True, slots=True)
class TileKey:
    """One tile picture: a table row at a section offset, for one style epoch."""

    epoch: int
    row: int
    dz: int = 0


@dataclass(frozen=True, slots=True)
class TileJob:
    """What tiles are made from: the data, the table and how a site's figure is made."""

    epoch: int
    dataset: Any  # the window's Dataset (tiles made in this process)
    dataset_args: dict  # its replica arguments (tiles made by the pool's processes)
    table: Any
    figure: Any  # batch.SiteFigure
    scrub: int  # k: a stack is +-k sections


#: Worker processes that make tiles: rendering is Python and numpy work that would hold the
#: GIL against the GUI thread, so it runs beside the window, as the slab reads do.
TILE_PROCESSES = 2
#: Tiles per call to a worker process, made there by as many threads: a remote source's
#: reads wait on the network, so they overlap.
TILES_PER_CALL = 4


class TileWorker(QObject):
    """Hands tiles to the pool's processes (at most two each in flight) and turns what comes
    back into QImages, in its own thread. ``queue`` is replaced by the GUI thread (a new
    deque, nearest first); the worker takes from whichever is current, so a scroll
    re-orders the work at once. A ``dz`` of None asks for the whole +-k stack of a row.
    Until the pool's processes have started (a second or two), tiles are made here."""

    ready = Signal(object, object)  # TileKey, QImage
    failed = Signal(object, str)  # TileKey, message

    def __init__(self, processes: int) -> None:
        super().__init__()
        self.stopping = False
        self.job: TileJob | None = None
        self.queue: collections.deque[tuple[int, int, int | None]] = collections.deque()
        self.processes = processes
        self.pool: Any = None
        self._warming: list[Any] = []
        self._in_flight: dict[Any, tuple[TileJob, list[tuple[int, int | None]]]] = {}

    def _start_pool(self) -> None:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        from ..model.tiles import TILE_NICE, warm
        from ..model.workerinit import init_tile_process

        try:
            self.pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_tile_process,
                initargs=(TILE_NICE, os.getpid()),
            )
            self._warming = [self.pool.submit(warm) for _ in range(self.processes)]
        except (OSError, RuntimeError):  # no processes here: tiles are made in this thread
            self.pool, self._warming = None, []

    @property
    def pool_ready(self) -> bool:
        if self.pool is None:
            return False
        if self._warming and all(f.done() for f in self._warming):
            self._warming = []
        return not self._warming

    @Slot(object)
    def process(self, _wake: object) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait

        if self.pool is None and self.processes > 0:
            self._start_pool()
        while not self.stopping:
            job = self.job
            while job is not None and len(self._in_flight) < 2 * max(1, self.processes):
                batch: list[tuple[int, int | None]] = []
                newer = False
                while len(batch) < TILES_PER_CALL:
                    try:
                        epoch, row, dz = self.queue.popleft()
                    except IndexError:
                        break
                    if epoch == job.epoch:
                        batch.append((row, dz))
                    elif epoch > job.epoch:
                        # The GUI thread set a newer job (a restyle) after ``job`` was read
                        # here, and asked for its tiles: they are kept for it, not dropped
                        # as stale (nothing would ask for them again until the next scroll).
                        self.queue.appendleft((epoch, row, dz))
                        newer = True
                        break
                if newer and not batch:
                    job = self.job
                    continue
                if not batch:
                    break
                if not self.pool_ready:
                    for row, dz in batch:
                        self._render_here(job, row, dz)
                    continue
                self._submit(job, batch)
            if not self._in_flight:
                if not self.queue or self.job is None:
                    return
                continue
            done, _ = wait(list(self._in_flight), timeout=0.05, return_when=FIRST_COMPLETED)
            for fut in done:
                fjob, batch = self._in_flight.pop(fut)
                if fjob is not self.job or self.stopping:
                    continue
                try:
                    results = fut.result()
                except Exception as exc:  # noqa: BLE001 - a broken pool: shown on the tiles
                    results = [(False, _one_line(exc))] * len(batch)
                for (row, dz), (ok, got) in zip(batch, results):
                    if not ok:
                        self.failed.emit(TileKey(fjob.epoch, row, dz or 0), got)
                        continue
                    for off, arr in got:
                        self.ready.emit(TileKey(fjob.epoch, row, off), _qimage(arr))

    def _offsets(self, job: TileJob, dz: int | None) -> tuple[int, ...]:
        return tuple(range(-job.scrub, job.scrub + 1)) if dz is None else (dz,)

    def _submit(self, job: TileJob, batch: list[tuple[int, int | None]]) -> None:
        from ..model.tiles import render_tiles, tile_task

        try:
            tasks = [
                tile_task(job.dataset_args, job.figure, job.table, row, self._offsets(job, dz))
                for row, dz in batch
            ]
            fut = self.pool.submit(render_tiles, tasks)
        except Exception as exc:  # noqa: BLE001 - a broken pool: shown on the tiles
            for row, dz in batch:
                self.failed.emit(TileKey(job.epoch, row, dz or 0), _one_line(exc))
            return
        self._in_flight[fut] = (job, batch)

    def _render_here(self, job: TileJob, row: int, dz: int | None) -> None:
        from ..model.tiles import site_pictures

        try:
            pictures = site_pictures(
                job.dataset, job.figure, job.table, row, self._offsets(job, dz)
            )
        except Exception as exc:  # noqa: BLE001 - shown on the tile, never fatal
            self.failed.emit(TileKey(job.epoch, row, dz or 0), _one_line(exc))
            return
        for off, arr in pictures:
            if self.stopping or job is not self.job:
                return
            self.ready.emit(TileKey(job.epoch, row, off), _qimage(arr))

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


def _qimage(arr: np.ndarray) -> QImage:
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGBA8888).copy()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class TileRenderer(_Threaded):
    """GUI-side handle of the tile worker and its pool of processes (none when
    ``synchronous`` or ``processes`` is 0: tiles are made in the worker's thread)."""

    def __init__(
        self,
        synchronous: bool = False,
        parent: QObject | None = None,
        processes: int = TILE_PROCESSES,
    ) -> None:
        n = 0 if synchronous else max(0, int(processes))
        super().__init__(TileWorker(n), "imagery-gui-tiles", synchronous, parent)

    @property
    def signals(self) -> TileWorker:
        return self.worker  # type: ignore[return-value]

    @property
    def ready(self) -> Any:
        return self.signals.ready

    @property
    def failed(self) -> Any:
        return self.signals.failed

    def set_job(self, job: TileJob | None) -> None:
        self.signals.job = job
        self.signals.queue = collections.deque()

    def want(self, items: Sequence[tuple[int, int, int | None]]) -> None:
        """Render these (epoch, row, dz) next, in this order; replaces what was wanted."""
        self.signals.queue = collections.deque(items)
        if items:
            self._send(None)

    def close(self, wait_ms: int = 5000) -> bool:
        ended = super().close(wait_ms)
        self.signals.shutdown()
        return ended


class TileCache:
    """Tile pictures by key, least recently used first out, within a byte budget."""

    def __init__(self, budget: int = TILE_CACHE_BYTES) -> None:
        self.budget = budget
        self.bytes = 0
        self._items: collections.OrderedDict[TileKey, QImage] = collections.OrderedDict()

    def __contains__(self, key: TileKey) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: TileKey) -> QImage | None:
        img = self._items.get(key)
        if img is not None:
            self._items.move_to_end(key)
        return img

    def put(self, key: TileKey, img: QImage) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old.sizeInBytes()
        self._items[key] = img
        self.bytes += img.sizeInBytes()
        while self.bytes > self.budget and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= dropped.sizeInBytes()

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def drop_stacks(self) -> None:
        """Forget every picture but the sites' own sections (the scrub range changed)."""
        for key in [k for k in self._items if k.dz != 0]:
            self.bytes -= self._items.pop(key).sizeInBytes()


class GalleryModel(QAbstractListModel):
    """The rows of the gallery: positions in the dock's order, each a table row."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.table: Any = None
        self.rows = np.zeros(0, dtype=np.intp)
        self.names: list[str] = []

    def set_table(self, table: Any, rows: np.ndarray | None = None) -> None:
        self.beginResetModel()
        self.table = table
        n = 0 if table is None else len(table)
        self.names = [str(table.id_of(i)) for i in range(n)] if table is not None else []
        self.rows = np.arange(n, dtype=np.intp) if rows is None else np.asarray(rows, np.intp)
        self.endResetModel()

    def set_rows(self, rows: np.ndarray) -> None:
        self.beginResetModel()
        self.rows = np.asarray(rows, dtype=np.intp)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's API
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: Index, role: int = 0) -> Any:
        if not index.isValid():
            return None
        row = int(self.rows[index.row()])
        if role == Qt.ItemDataRole.DisplayRole:
            return self.names[row]
        if role == SiteRole:
            return row
        return None


class TileDelegate(QStyledItemDelegate):
    """Paints a tile: its picture (or a placeholder), the site id and the verdict."""

    def __init__(self, gallery: GalleryView) -> None:
        super().__init__(gallery)
        self.gallery = gallery
        self.font = QFont()
        self.font.setPointSizeF(8.5)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        t = self.gallery.tile_px
        return QSize(t, t + LABEL_H)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        g = self.gallery
        row = int(index.data(SiteRole))
        rect = option.rect  # type: ignore[attr-defined]
        t = g.tile_px
        pic = QRect(rect.x(), rect.y() + LABEL_H, t, t)
        painter.save()
        img = g.picture(row)
        if img is not None:
            painter.drawImage(pic, img)
        else:
            painter.fillRect(pic, QColor(40, 40, 44))
            painter.setPen(QColor(150, 150, 150))
            painter.setFont(self.font)
            text = g.errors.get(row, "rendering...")
            painter.drawText(pic.adjusted(4, 4, -4, -4), Qt.AlignmentFlag.AlignCenter, text)
        code = int(g.verdict_codes[row]) if row < len(g.verdict_codes) else 0
        label = QRect(rect.x(), rect.y(), t, LABEL_H)
        painter.fillRect(label, QColor(30, 30, 30))
        painter.setFont(self.font)
        painter.setPen(QColor(230, 230, 230))
        painter.drawText(
            label.adjusted(3, 0, -3, 0),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            str(index.data(Qt.ItemDataRole.DisplayRole)),
        )
        if code:
            verdict = g.verdict_name(code)
            color = QColor(VERDICT_COLORS[(code - 1) % len(VERDICT_COLORS)])
            fm = painter.fontMetrics()
            w = fm.horizontalAdvance(verdict) + 8
            badge = QRect(rect.x() + t - w, rect.y() + 1, w, LABEL_H - 2)
            painter.fillRect(badge, color)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, verdict)
            painter.setPen(QPen(color, 3))
            painter.drawRect(pic.adjusted(1, 1, -2, -2))
        if row in g.noted:
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(
                pic.adjusted(3, 0, -3, -2),
                Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft,
                "note" if row not in g.tagged else "note, tags",
            )
        elif row in g.tagged:
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(
                pic.adjusted(3, 0, -3, -2),
                Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft,
                "tags",
            )
        state = option.state  # type: ignore[attr-defined]
        if state & QStyle.StateFlag.State_Selected or state & QStyle.StateFlag.State_HasFocus:
            focus = bool(state & QStyle.StateFlag.State_HasFocus)
            painter.setPen(QPen(QColor("#ffffff" if focus else "#6aa0ff"), 3 if focus else 2))
            painter.drawRect(rect.adjusted(1, 1, -2, -2))
        painter.restore()


class GalleryView(QListView):
    """The grid. Keys it does not take itself (verdicts, notes) go to ``keyPressed``."""

    keyPressed = Signal(object)  # QKeyEvent
    hovered = Signal(object, float)  # table row | None, x fraction across the tile
    viewportChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("galleryGrid")
        self.tile_px = 160
        self.picture: Any = lambda row: None  # set by the gallery: row -> QImage | None
        self.errors: dict[int, str] = {}
        self.verdict_codes = np.zeros(0, dtype=np.int8)
        self.verdicts: tuple[str, ...] = ()
        self.noted: set[int] = set()
        self.tagged: set[int] = set()
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setMouseTracking(True)
        self.setStyleSheet("QListView { background: #18181b; }")
        self.setItemDelegate(TileDelegate(self))
        self.set_tile_px(self.tile_px)
        self.verticalScrollBar().valueChanged.connect(lambda _v: self.viewportChanged.emit())

    def set_tile_px(self, px: int) -> None:
        self.tile_px = int(px)
        self.setGridSize(QSize(self.tile_px + SPACING, self.tile_px + LABEL_H + SPACING))
        self.verticalScrollBar().setSingleStep(max(8, self.tile_px // 4))
        self.doItemsLayout()
        self.viewportChanged.emit()

    def verdict_name(self, code: int) -> str:
        return self.verdicts[code - 1] if 0 < code <= len(self.verdicts) else "?"

    def columns(self) -> int:
        return max(1, self.viewport().width() // self.gridSize().width())

    def visible_positions(self) -> tuple[int, int]:
        """First and last position (in the model's order) with any part on screen."""
        n = self.model().rowCount() if self.model() is not None else 0
        if n == 0:
            return 0, -1
        gh = self.gridSize().height()
        top = self.verticalScrollBar().value()
        cols = self.columns()
        first = (top // gh) * cols
        last = ((top + self.viewport().height()) // gh + 1) * cols - 1
        return min(first, n - 1), min(last, n - 1)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.viewportChanged.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        nav = {
            Qt.Key.Key_Left,
            Qt.Key.Key_Right,
            Qt.Key.Key_Up,
            Qt.Key.Key_Down,
            Qt.Key.Key_Home,
            Qt.Key.Key_End,
            Qt.Key.Key_PageUp,
            Qt.Key.Key_PageDown,
        }
        if event.key() in nav:
            super().keyPressEvent(event)
            self.viewportChanged.emit()
            return
        self.keyPressed.emit(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        index = self.indexAt(event.position().toPoint())
        if not index.isValid():
            self.hovered.emit(None, 0.5)
            return
        rect = self.visualRect(index)
        fx = (event.position().x() - rect.x()) / max(1, self.tile_px)
        self.hovered.emit(int(index.data(SiteRole)), float(min(max(fx, 0.0), 1.0)))

    def leaveEvent(self, event: Any) -> None:
        super().leaveEvent(event)
        self.hovered.emit(None, 0.5)


class GalleryWindow(QWidget):
    """The gallery's own window: controls, the grid, the note and tag fields."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("galleryWindow")
        self.setWindowTitle("Gallery - imagery-gui")
        self.grid = GalleryView()
        self.model = GalleryModel(self)
        self.grid.setModel(self.model)
        self.tile = QSpinBox()
        self.tile.setObjectName("galleryTile")
        self.tile.setRange(64, 512)
        self.tile.setSingleStep(32)
        self.tile.setSuffix(" px")
        self.tile.setToolTip("tile size: voxels of the view's resolution, one per pixel")
        self.scrub = QSpinBox()
        self.scrub.setRange(0, 20)
        self.scrub.setPrefix("+-")
        self.scrub.setSuffix(" sections")
        self.scrub.setToolTip("hovering a tile scrubs it through this many sections each way")
        self.progress = QLabel()
        self.progress.setObjectName("galleryProgress")
        self.export_btn = QPushButton("Export table...")
        self.sheet_btn = QPushButton("Contact sheet...")
        self.review_btn = QPushButton("Review file...")
        self.note = QLineEdit()
        self.note.setObjectName("galleryNote")
        self.note.setPlaceholderText("note (N): Enter saves, Esc leaves it")
        self.tags = QLineEdit()
        self.tags.setObjectName("galleryTags")
        self.tags.setPlaceholderText("tags (T), comma separated")
        self.keys = QLabel()
        self.keys.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.progress, 1)
        top.addWidget(QLabel("Tile"))
        top.addWidget(self.tile)
        top.addWidget(QLabel("Scrub"))
        top.addWidget(self.scrub)
        top.addWidget(self.review_btn)
        top.addWidget(self.export_btn)
        top.addWidget(self.sheet_btn)
        bottom = QHBoxLayout()
        bottom.addWidget(self.note, 2)
        bottom.addWidget(self.tags, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(top)
        lay.addWidget(self.grid, 1)
        lay.addLayout(bottom)
        lay.addWidget(self.keys)
        self.resize(1180, 820)


def figure_for_tiles(state: Any, tile_px: int, table: Any) -> Any:
    """How the gallery's figures are made: export's site figure at the view's resolution,
    one voxel per pixel, in the window's style. A table with pre/post roots shows each
    site's own partners selected (the window's selection would follow every site opened);
    one without shows the window's selection."""
    from ..model.batch import SiteFigure
    from ..model.export import FigureSpec
    from ..model.style import Selection

    partners = table is not None and bool(table.pre_root.any() or table.post_root.any())

    res = tuple(float(v) for v in state.resolution)
    spec = FigureSpec(
        bounds=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # each site's box replaces it
        resolution=res,  # type: ignore[arg-type]
        image_mip=None,
        segmentation_mip=None,
        selection=Selection() if partners else state.selection,
        timestamp=state.timestamp,
        style=state.style,
        annotate=True,
    )
    return SiteFigure(
        size=(int(tile_px), int(tile_px), 1),
        resolution=res,  # type: ignore[arg-type]
        spec=spec,
        partner_style=state.style if partners else None,
    )


__all__ = [
    "GalleryModel",
    "GalleryView",
    "GalleryWindow",
    "TileCache",
    "TileKey",
    "TileRenderer",
    "figure_for_tiles",
]
