"""Wires the gallery window to the viewer state, the tile worker and the review file.

Keys in the grid (configurable verdicts from Settings ``review_verdicts``, keys 1-9):
``1``..``9`` set a verdict, ``0``/Backspace/Delete clear it, ``U`` goes to the next site
not judged yet (a resumed review starts there), ``N`` edits the note, ``T``
the tags (Enter saves, Esc leaves them), Enter/double-click opens the site in the main
view, arrows/PageUp/PageDown/Home/End move. Every change goes to the
:class:`~imagery_gui.model.review.Review` at once, which saves it before returning.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, QTimer, Slot
from PySide6.QtGui import QImage, QKeyEvent

from .gallery import (
    AHEAD_SCREENS,
    GalleryWindow,
    TileCache,
    TileJob,
    TileKey,
    TileRenderer,
    figure_for_tiles,
)

#: A contact sheet from the gallery holds at most this many figures.
MAX_SHEET = 400


class GalleryController(QObject):
    """View > Gallery (see the module docstring)."""

    def __init__(self, win: Any, synchronous: bool = False) -> None:  # the MainWindow
        super().__init__(win)
        self.win = win
        self.synchronous = synchronous
        self.window: GalleryWindow | None = None
        self.renderer: TileRenderer | None = None
        self.review: Any = None  # model.review.Review
        self.cache = TileCache()
        self.epoch = 0
        self.hover: tuple[int, float] | None = None
        self.stacks: set[int] = set()  # rows whose +-k stack was asked for (this epoch)
        self.pos_of_row = np.zeros(0, dtype=np.intp)
        self._last_top = 0
        self._pending_open: tuple[str | None] | None = None  # --gallery: open once loaded
        self._direction = 1
        self._schedule_timer = QTimer(self, singleShot=True, interval=15)
        self._schedule_timer.timeout.connect(self.schedule)
        self._restyle_timer = QTimer(self, singleShot=True, interval=120)
        self._restyle_timer.timeout.connect(self.restyle)
        st = win.state
        st.events.sites.connect(self._on_sites)
        st.events.site_order.connect(self._on_order)
        st.events.current_site.connect(self._on_current_site)
        st.events.style.connect(lambda _s: self._restyle_soon())
        st.events.selection.connect(lambda _s: self._restyle_soon(selection=True))
        st.events.segmentation.connect(lambda *_a: self._restyle_soon())
        st.events.opened.connect(lambda _s: self._restyle_soon())

    # -- the window ----------------------------------------------------------------------
    @property
    def verdicts(self) -> tuple[str, ...]:
        from ..model.review import DEFAULT_VERDICTS

        got = self.win.settings.review_verdicts
        names = tuple(str(v).strip() for v in got if isinstance(v, str) and str(v).strip())
        return names[:9] or tuple(DEFAULT_VERDICTS)

    def open_when_loaded(self, review_file: str | None = None) -> None:
        """``--gallery``: open once the site table has been read (``review_file``: its
        review file instead of the default)."""
        self._pending_open = (review_file,)

    def open(self, review_file: str | None = None) -> None:
        """Show the gallery of the current site table (a message when there is none), with
        its review from ``review_file`` (default: the file beside the table)."""
        st = self.win.state
        if st.sites is None or len(st.sites) == 0:
            self.win.show_error(
                "the gallery shows a site table: open one first (File > Open site table...)",
                dialog=True,
            )
            return
        if self.window is None:
            self._build()
        assert self.window is not None
        if self.window.model.table is not st.sites:
            self._load_table(st.sites, review_file)
        elif review_file:
            self.open_review(review_file)
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()
        self.window.grid.setFocus()
        self._schedule_timer.start()

    def _build(self) -> None:
        w = self.window = GalleryWindow(self.win)
        s = self.win.settings
        w.tile.setValue(int(min(max(s.gallery_tile_px, 64), 512)))
        w.grid.set_tile_px(w.tile.value())
        w.scrub.setValue(int(min(max(s.gallery_scrub, 0), 20)))
        w.grid.picture = self.picture
        w.grid.verdicts = self.verdicts
        w.keys.setText(
            "Keys: "
            + ", ".join(f"{k + 1} {v}" for k, v in enumerate(self.verdicts))
            + " (then the next tile), 0 clear · U next not judged · N note · T tags · Enter open "
            "in the main view "
            "· arrows move · hover a tile to scrub through sections"
        )
        self.renderer = TileRenderer(self.synchronous, self)
        self.renderer.ready.connect(self._on_tile)
        self.renderer.failed.connect(self._on_tile_failed)
        w.grid.viewportChanged.connect(self._on_viewport)
        w.grid.keyPressed.connect(self._on_key)
        w.grid.hovered.connect(self._on_hover)
        w.grid.activated.connect(self._on_activated)
        w.grid.doubleClicked.connect(self._on_activated)
        w.grid.selectionModel().currentChanged.connect(self._on_focus_changed)
        w.tile.valueChanged.connect(self._on_tile_px)
        w.scrub.valueChanged.connect(self._on_scrub)
        w.note.returnPressed.connect(self._commit_note)
        w.tags.returnPressed.connect(self._commit_tags)
        w.note.installEventFilter(self)
        w.tags.installEventFilter(self)
        w.export_btn.clicked.connect(self.export_dialog)
        w.sheet_btn.clicked.connect(self.contact_sheet_dialog)
        w.review_btn.clicked.connect(self.review_dialog)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
        if self.window is not None:
            self.window.close()

    # -- the table and its review ------------------------------------------------------------
    def _load_table(self, table: Any, review_file: str | None = None) -> None:
        assert self.window is not None
        st = self.win.state
        self.window.model.set_table(table, st.site_order)
        self._rows_changed()
        self.restyle()
        if not (review_file and self.open_review(review_file)):
            self.open_review(None)

    def open_review(self, path: str | None) -> bool:
        """Open the review of the current table: ``path``, or the default beside the table.
        A file that belongs to another table is refused (for the default one, the review
        goes to a new file beside it); True if ``path`` (or the default) was opened."""
        from ..model.review import Review, ReviewError, default_review_path
        from ..settings import settings_dir

        table = self.window.model.table if self.window is not None else None
        if table is None:
            return False
        if path is not None:
            try:
                self.review = Review.open(table, path, self.verdicts)
            except ReviewError as exc:
                self.win.show_error(str(exc), dialog=True)
                return False
            self._review_changed()
            return True
        default = default_review_path(table, settings_dir() / "reviews")
        try:
            self.review = Review.open(table, default, self.verdicts)
        except ReviewError as exc:
            from ..model.io import unused_path

            other = unused_path(os.path.dirname(default), os.path.basename(default))
            self.review = Review.open(table, other, self.verdicts)
            self.win.show_error(f"{exc}; this review is saved to {other} instead", dialog=True)
            self._review_changed()
            return False
        self._review_changed()
        return True

    def _review_changed(self) -> None:
        assert self.window is not None
        g = self.window.grid
        r = self.review
        g.verdict_codes = r.verdict_codes()
        decided = r.decisions()
        g.noted = {row for row, d in decided.items() if d.note}
        g.tagged = {row for row, d in decided.items() if d.tags}
        self._show_progress()
        if r.progress()[0]:  # a review resumed: on where it was left, the first site not judged
            pos = self.next_unreviewed(0)
            if pos is not None:
                self._focus_position(pos)
        self._on_focus_changed(g.currentIndex(), QModelIndex())
        g.viewport().update()

    def _show_progress(self) -> None:
        assert self.window is not None
        r = self.review
        done, total = r.progress()
        codes = self.window.grid.verdict_codes
        counts = [
            f"{name} {int(np.count_nonzero(codes == k + 1))}"
            for k, name in enumerate(self.verdicts)
        ]
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        shown = len(self.window.model.rows)
        filt = f" · {shown} shown" if shown != total else ""
        stale = f" · {r.stale} earlier decisions no longer match" if getattr(r, "stale", 0) else ""
        self.window.progress.setText(
            f"Reviewed {done} of {total}{pct} · " + " · ".join(counts) + filt + stale
        )
        self.window.progress.setToolTip(f"review file: {r.path}")
        self.window.setWindowTitle(
            f"Gallery: {done} of {total} reviewed - {os.path.basename(str(r.path))} - imagery-gui"
        )

    # -- state -> gallery --------------------------------------------------------------------
    def _on_sites(self, table: Any) -> None:
        if self._pending_open is not None and table is not None:
            (review_file,), self._pending_open = self._pending_open, None
            self.open(review_file)
            return
        if self.window is None:
            return
        if table is None:
            self.window.model.set_table(None)
            self.review = None
            self.window.hide()
            return
        if self.window.isVisible():
            self._load_table(table)

    def _on_order(self, rows: Any) -> None:
        if self.window is None or self.window.model.table is None:
            return
        table = self.window.model.table
        rows = np.arange(len(table), dtype=np.intp) if rows is None else rows
        self.window.model.set_rows(rows)
        self._rows_changed()
        if self.review is not None:
            self._show_progress()

    def _rows_changed(self) -> None:
        assert self.window is not None
        m = self.window.model
        n = 0 if m.table is None else len(m.table)
        self.pos_of_row = np.full(n, -1, dtype=np.intp)
        self.pos_of_row[m.rows] = np.arange(len(m.rows), dtype=np.intp)
        cur = self.win.state.current_site
        if cur is not None:
            self._focus_row(cur)
        self._schedule_timer.start()

    def _on_current_site(self, row: Any) -> None:
        if row is not None and self.window is not None and self.window.isVisible():
            self._focus_row(int(row))

    def _focus_row(self, row: int) -> None:
        assert self.window is not None
        if not 0 <= row < len(self.pos_of_row) or self.pos_of_row[row] < 0:
            return
        g = self.window.grid
        index = self.window.model.index(int(self.pos_of_row[row]))
        if g.currentIndex() != index:
            g.setCurrentIndex(index)
        g.scrollTo(index)

    def _restyle_soon(self, selection: bool = False) -> None:
        if self.window is None:
            return
        table = self.window.model.table
        if selection and table is not None and (table.pre_root.any() or table.post_root.any()):
            return  # tiles show each site's own partners, not the window's selection
        self._restyle_timer.start()

    @Slot()
    def restyle(self) -> None:
        """A new style, selection or data: every tile is made again."""
        if self.window is None or self.renderer is None:
            return
        st, table = self.win.state, self.window.model.table
        self.epoch += 1
        self.cache.clear()
        self.stacks.clear()
        self.window.grid.errors.clear()
        if st.dataset is None or table is None:
            self.renderer.set_job(None)
            return
        from ..model.tiles import TILE_LRU_BYTES

        self.renderer.set_job(
            TileJob(
                self.epoch,
                st.dataset,
                st.dataset.replica_args(lru_bytes=TILE_LRU_BYTES, lru_encoding="raw"),
                table,
                figure_for_tiles(st, self.window.tile.value(), table),
                self.window.scrub.value(),
            )
        )
        self.window.grid.viewport().update()
        self._schedule_timer.start()

    # -- tiles -----------------------------------------------------------------------------
    def picture(self, row: int) -> QImage | None:
        if self.hover is not None and self.hover[0] == row and self.window is not None:
            k = self.window.scrub.value()
            dz = int(round((self.hover[1] - 0.5) * 2 * k))
            img = self.cache.get(TileKey(self.epoch, row, dz))
            if img is not None:
                return img
        return self.cache.get(TileKey(self.epoch, row, 0))

    def _on_viewport(self) -> None:
        if self.window is not None:
            top = self.window.grid.verticalScrollBar().value()
            if top != self._last_top:
                self._direction = 1 if top > self._last_top else -1
                self._last_top = top
        self._schedule_timer.start()

    @Slot()
    def schedule(self) -> None:
        """Ask for the tiles on screen (centre first), then those ahead, then behind."""
        if self.window is None or self.renderer is None or not self.window.isVisible():
            return
        g, rows = self.window.grid, self.window.model.rows
        first, last = g.visible_positions()
        if last < first:
            return
        cols = g.columns()
        span = last - first + 1
        centre = (first + last) / 2
        on_screen = np.arange(first, last + 1)
        dist = np.abs(on_screen // cols - centre // cols) * cols + np.abs(
            on_screen % cols - (cols - 1) / 2
        )
        order = list(on_screen[np.argsort(dist, kind="stable")])
        ahead = int(span * AHEAD_SCREENS)
        n = len(rows)
        if self._direction >= 0:
            order += list(range(last + 1, min(n, last + 1 + ahead)))
            order += list(range(first - 1, max(-1, first - 1 - span // 2), -1))
        else:
            order += list(range(first - 1, max(-1, first - 1 - ahead), -1))
            order += list(range(last + 1, min(n, last + 1 + span // 2)))
        want: list[tuple[int, int, int | None]] = []
        hover = self.hover
        if hover is not None and hover[0] not in self.stacks and self.window.scrub.value() > 0:
            self.stacks.add(hover[0])
            want.append((self.epoch, hover[0], None))
        for pos in order:
            row = int(rows[pos])
            if TileKey(self.epoch, row, 0) not in self.cache and row not in g.errors:
                want.append((self.epoch, row, 0))
        self.renderer.want(want)

    def _on_tile(self, key: TileKey, img: QImage) -> None:
        if key.epoch != self.epoch or self.window is None:
            return
        self.cache.put(key, img)
        pos = self.pos_of_row[key.row] if key.row < len(self.pos_of_row) else -1
        if pos >= 0 and (key.dz == 0 or (self.hover is not None and self.hover[0] == key.row)):
            g = self.window.grid
            g.viewport().update(g.visualRect(self.window.model.index(int(pos))))

    def _on_tile_failed(self, key: TileKey, message: str) -> None:
        if key.epoch != self.epoch or self.window is None:
            return
        self.window.grid.errors[key.row] = message
        self.window.grid.viewport().update()

    def _on_hover(self, row: Any, fx: float) -> None:
        old = self.hover
        self.hover = None if row is None else (int(row), float(fx))
        if self.window is None:
            return
        g = self.window.grid
        for r in {old[0] if old else None, row}:
            if r is not None and 0 <= r < len(self.pos_of_row) and self.pos_of_row[r] >= 0:
                g.viewport().update(g.visualRect(self.window.model.index(int(self.pos_of_row[r]))))
        if row is not None and int(row) not in self.stacks:
            self._schedule_timer.start()

    def _on_tile_px(self, px: int) -> None:
        assert self.window is not None
        self.win.settings.gallery_tile_px = int(px)
        self.window.grid.set_tile_px(int(px))
        self._restyle_timer.start()

    def _on_scrub(self, k: int) -> None:
        """Another scrub range: only the stacks are made again, not the tiles."""
        from dataclasses import replace

        self.win.settings.gallery_scrub = int(k)
        job = self.renderer.signals.job if self.renderer is not None else None
        if job is not None:
            assert self.renderer is not None
            self.renderer.set_job(replace(job, scrub=int(k)))
        self.stacks.clear()
        self.cache.drop_stacks()
        self._schedule_timer.start()

    # -- decisions ---------------------------------------------------------------------------
    def focused_row(self) -> int | None:
        if self.window is None:
            return None
        index = self.window.grid.currentIndex()
        if not index.isValid():
            return None
        return int(self.window.model.rows[index.row()])

    def _on_key(self, event: QKeyEvent) -> None:
        row = self.focused_row()
        key, text = event.key(), event.text()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if row is not None:
                self.open_in_main_view(row)
            return
        if row is None or self.review is None:
            return
        if text.isdigit() and text != "0":
            k = int(text)
            if k <= len(self.verdicts):
                self._decide(lambda: self.review.set_verdict(row, self.verdicts[k - 1]), row)
                if self.win.settings.gallery_advance:
                    self._advance()
        elif text == "0" or key in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete):
            self._decide(lambda: self.review.set_verdict(row, None), row)
        elif key == Qt.Key.Key_N:
            self.window.note.setFocus()  # type: ignore[union-attr]
            self.window.note.selectAll()  # type: ignore[union-attr]
        elif key == Qt.Key.Key_T:
            self.window.tags.setFocus()  # type: ignore[union-attr]
            self.window.tags.selectAll()  # type: ignore[union-attr]
        elif key == Qt.Key.Key_U:
            assert self.window is not None
            pos = self.next_unreviewed(self.window.grid.currentIndex().row() + 1)
            if pos is not None:
                self._focus_position(pos)

    def next_unreviewed(self, start: int) -> int | None:
        """The first position from ``start`` on (wrapping round) whose site has no verdict."""
        assert self.window is not None
        rows, codes = self.window.model.rows, self.window.grid.verdict_codes
        n = len(rows)
        if n == 0 or len(codes) == 0:
            return None
        start = min(max(int(start), 0), n)
        order = np.r_[np.arange(start, n), np.arange(0, start)]
        free = order[codes[rows[order]] == 0]
        return int(free[0]) if len(free) else None

    def _focus_position(self, pos: int) -> None:
        assert self.window is not None
        index = self.window.model.index(int(pos))
        self.window.grid.setCurrentIndex(index)
        self.window.grid.scrollTo(index)
        self._schedule_timer.start()

    def _advance(self) -> None:
        """After a verdict, the next tile (a review is one key per site)."""
        assert self.window is not None
        g = self.window.grid
        pos = g.currentIndex().row() + 1
        if 0 < pos < len(self.window.model.rows):
            index = self.window.model.index(pos)
            g.setCurrentIndex(index)
            g.scrollTo(index)
            self._schedule_timer.start()

    def _decide(self, change: Any, row: int) -> None:
        """Apply a change to the review (saved before it returns); a save that fails is
        shown, and the decision stays in memory for the next save."""
        from ..model.errors import ImageryGuiError

        try:
            change()
        except (ImageryGuiError, OSError) as exc:
            self.win.show_error(f"the review could not be saved: {exc}", dialog=True)
        assert self.window is not None
        g = self.window.grid
        g.verdict_codes[row] = self.review.verdict_code(row)  # one row changed
        d = self.review.decision(row)
        for flag, names in (
            (d is not None and bool(d.note), g.noted),
            (d is not None and bool(d.tags), g.tagged),
        ):
            (names.add if flag else names.discard)(row)
        pos = self.pos_of_row[row]
        if pos >= 0:
            g.viewport().update(g.visualRect(self.window.model.index(int(pos))))
        self._show_progress()

    def _on_focus_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self.window is None:
            return
        row = int(self.window.model.rows[current.row()]) if current.isValid() else None
        d = self.review.decision(row) if (row is not None and self.review is not None) else None
        self.window.note.setText(d.note if d else "")
        self.window.tags.setText(", ".join(d.tags) if d else "")

    def _commit_note(self) -> None:
        row = self.focused_row()
        if row is not None and self.review is not None:
            text = self.window.note.text().strip()  # type: ignore[union-attr]
            self._decide(lambda: self.review.set_note(row, text), row)
        self.window.grid.setFocus()  # type: ignore[union-attr]

    def _commit_tags(self) -> None:
        row = self.focused_row()
        if row is not None and self.review is not None:
            text = self.window.tags.text()  # type: ignore[union-attr]
            tags = [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]
            self._decide(lambda: self.review.set_tags(row, tags), row)
        self.window.grid.setFocus()  # type: ignore[union-attr]

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if (
            self.window is not None
            and obj in (self.window.note, self.window.tags)
            and event.type() == QEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Escape  # type: ignore[attr-defined]
        ):
            self._on_focus_changed(self.window.grid.currentIndex(), QModelIndex())
            self.window.grid.setFocus()
            return True
        return False

    def open_in_main_view(self, row: int) -> None:
        self.win.state.go_to_site(row)
        self.win.raise_()
        self.win.activateWindow()

    def _on_activated(self, index: QModelIndex) -> None:
        if index.isValid() and self.window is not None:
            self.open_in_main_view(int(self.window.model.rows[index.row()]))

    # -- files -----------------------------------------------------------------------------
    def review_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        start = str(self.review.path) if self.review is not None else ""
        path, _ = QFileDialog.getSaveFileName(
            self.window,
            "Review file (an existing one resumes that review)",
            start,
            "Review files (*.csv);;All files (*)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.open_review(path)

    def export_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        if self.review is None:
            return
        base = os.path.splitext(str(self.review.path))[0]
        path, _ = QFileDialog.getSaveFileName(
            self.window,
            "Export the reviewed table",
            base + "-reviewed.csv",
            "CSV (*.csv);;Parquet (*.parquet);;Feather (*.feather)",
        )
        if path:
            self.export_table(path)

    def export_table(self, path: str) -> Any:
        review = self.review
        job = self.win.jobs.run(lambda _progress: review.export(path), "export review")
        job.succeeded.connect(lambda p: self.win.status.show_message(f"exported {p}", 8000))
        job.failed.connect(lambda exc: self.win.show_error(f"export failed: {exc}", dialog=True))
        return job

    def sheet_rows(self) -> list[int]:
        """The selected tiles (two or more), else every tile shown, at most MAX_SHEET."""
        assert self.window is not None
        g, rows = self.window.grid, self.window.model.rows
        picked = sorted(i.row() for i in g.selectionModel().selectedIndexes())
        positions = picked if len(picked) >= 2 else range(len(rows))
        return [int(rows[p]) for p in list(positions)[:MAX_SHEET]]

    def contact_sheet_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        if self.window is None or self.win.state.dataset is None:
            return
        base = os.path.splitext(str(self.review.path))[0] if self.review else "sites"
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Contact sheet", base + "-sheet.png", "PNG (*.png)"
        )
        if path:
            self.contact_sheet(path)

    def contact_sheet(self, path: str) -> Any:
        """A contact sheet of :meth:`sheet_rows`, made as batch's (one shared scale bar, site
        ids as labels, 300 dpi), in the background."""
        assert self.window is not None
        from ..model.batch import site_spec
        from ..model.export import make_figure
        from ..model.sheet import contact_sheet, save_contact_sheet

        st, table = self.win.state, self.window.model.table
        rows = self.sheet_rows()
        figure = figure_for_tiles(st, self.window.tile.value(), table)
        ds = st.dataset
        names = self.window.model.names
        total = len(self.window.model.rows)

        def work(progress: Any) -> str:
            items, nm = [], None
            for k, row in enumerate(rows):
                progress(k, len(rows), f"figure {k + 1} of {len(rows)}")
                fig = make_figure(ds, site_spec(figure, table, row))
                nm = fig.nm_per_px[0]
                items.append((names[row], fig.slices[0]))
            return save_contact_sheet(contact_sheet(items, nm), path, dpi=300)

        job = self.win.jobs.run(work, "contact sheet")
        more = (
            f" (the first {MAX_SHEET} of {total})"
            if total > MAX_SHEET and len(rows) == MAX_SHEET
            else ""
        )
        job.succeeded.connect(
            lambda p: self.win.status.show_message(f"contact sheet {p}{more}", 8000)
        )
        job.failed.connect(
            lambda exc: self.win.show_error(f"contact sheet failed: {exc}", dialog=True)
        )
        return job
