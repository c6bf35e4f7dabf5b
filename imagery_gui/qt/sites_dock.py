"""The Sites dock: the current site table, sortable and filterable, the current site
highlighted; click a row (or press ``]`` / ``[``) to go there.

The table model reads cells from the site table's numpy columns when Qt asks for them
(only the rows on screen), and sorting or filtering replaces one index array, so tens of
thousands of rows stay responsive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from .. import startlog

_ROLE_TEXT = ("", "input", "output")
_BASE_COLUMNS = ("id", "role", "x", "y", "z", "pre_root", "post_root")
#: Properties shown after the base columns (the rest are searchable, not shown).
MAX_PROP_COLUMNS = 6

Index = QModelIndex | QPersistentModelIndex


class SiteTableModel(QAbstractTableModel):
    """A view of a SiteTable through ``rows`` (the sorted, filtered order)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.table: Any = None
        self.rows = np.zeros(0, dtype=np.intp)
        self.columns: tuple[str, ...] = _BASE_COLUMNS
        self.current: int | None = None

    def set_table(self, table: Any, rows: np.ndarray) -> None:
        self.beginResetModel()
        self.table = table
        props: tuple[str, ...] = ()
        if table is not None and table.props is not None:
            props = tuple(str(c) for c in table.props.columns[:MAX_PROP_COLUMNS])
        self.columns = _BASE_COLUMNS + props
        self.rows = np.asarray(rows, dtype=np.intp)
        self.endResetModel()

    def set_rows(self, rows: np.ndarray) -> None:
        self.beginResetModel()
        self.rows = np.asarray(rows, dtype=np.intp)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's API
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation, role: int = 0) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return str(section + 1)

    def data(self, index: Index, role: int = 0) -> Any:
        if not index.isValid() or self.table is None:
            return None
        row = int(self.rows[index.row()])
        if role == Qt.ItemDataRole.BackgroundRole and row == self.current:
            return QColor(255, 255, 255, 60)
        if role == Qt.ItemDataRole.UserRole:
            return row
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return self.cell(row, self.columns[index.column()])

    def cell(self, row: int, name: str) -> str:
        t = self.table
        if name == "id":
            return str(t.id_of(row))
        if name == "role":
            return _ROLE_TEXT[int(t.role_codes[row])] if 0 <= int(t.role_codes[row]) < 3 else ""
        if name in ("x", "y", "z"):
            v = float(t.centers[row, "xyz".index(name)])
            return f"{v:.0f}" if v == int(v) else f"{v:.1f}"
        if name in ("pre_root", "post_root"):
            v = int(getattr(t, name)[row])
            return str(v) if v else ""
        value = t.props[name].iloc[row]
        return "" if value is None else str(value)


class SitesPanel(QWidget):
    """The dock's contents (see the module docstring)."""

    siteActivated = Signal(object)  # row of the table (a Python int)
    stepRequested = Signal(int)  # +1 next, -1 previous
    orderChanged = Signal(object)  # the rows in their shown order (np.ndarray)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = SiteTableModel(self)
        self.view = QTableView()
        self.view.setObjectName("sitesTable")
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setSortingEnabled(False)  # sorted by the table's own index arrays
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.view.verticalHeader().setDefaultSectionSize(20)
        self.view.horizontalHeader().setSectionsClickable(True)
        self.view.horizontalHeader().setDefaultSectionSize(96)
        self.view.setMinimumHeight(120)
        self.view.horizontalHeader().setSortIndicatorShown(True)
        self.filter_text = QLineEdit()
        self.filter_text.setObjectName("sitesFilter")
        self.filter_text.setPlaceholderText("filter: id, root id, any column")
        self.role = QComboBox()
        self.role.addItems(["all roles", "input", "output"])
        self.partner = QLineEdit()
        self.partner.setPlaceholderText("partner root id")
        self.prev_btn = QPushButton("[ Previous")
        self.next_btn = QPushButton("Next ]")
        self.summary = QLabel("no site table: File > Open site table...")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("sitesSummary")
        row = QHBoxLayout()
        row.addWidget(self.filter_text, 2)
        row.addWidget(self.role)
        row.addWidget(self.partner, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        row.insertWidget(0, self.summary, 3)
        row.addWidget(self.prev_btn)
        row.addWidget(self.next_btn)
        lay.addLayout(row)
        lay.addWidget(self.view, 1)
        self._sort: tuple[str, bool] | None = None
        self._filter_timer = QTimer(self, singleShot=True, interval=150)
        self._filter_timer.timeout.connect(self._refresh_rows)
        self.filter_text.textChanged.connect(lambda _t: self._filter_timer.start())
        self.partner.textChanged.connect(lambda _t: self._filter_timer.start())
        self.role.currentIndexChanged.connect(lambda _i: self._refresh_rows())
        self.view.horizontalHeader().sectionClicked.connect(self._on_header_clicked)
        self.view.clicked.connect(self._on_clicked)
        self.view.activated.connect(self._on_clicked)
        self.prev_btn.clicked.connect(lambda: self.stepRequested.emit(-1))
        self.next_btn.clicked.connect(lambda: self.stepRequested.emit(1))

    # -- state -> panel -------------------------------------------------------------------
    def set_table(self, table: Any) -> None:
        self._sort = None
        self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        rows = np.arange(len(table) if table is not None else 0, dtype=np.intp)
        self.model.set_table(table, rows)
        header = self.view.horizontalHeader()
        for c, name in enumerate(self.model.columns):  # 18-digit ids shown whole
            header.resizeSection(c, 150 if name in ("id", "pre_root", "post_root") else 80)
        self._refresh_rows()

    def show_current(self, row: int | None) -> None:
        """Highlight the current site and scroll it into view."""
        self.model.current = row
        if row is None:
            self.view.clearSelection()
            self.view.viewport().update()
            return
        pos = np.flatnonzero(self.model.rows == row)
        if len(pos):
            index = self.model.index(int(pos[0]), 0)
            self.view.selectRow(int(pos[0]))
            self.view.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)
        self.view.viewport().update()

    # -- sorting and filtering ------------------------------------------------------------
    def _on_header_clicked(self, section: int) -> None:
        name = self.model.columns[section]
        desc = self._sort == (name, False)
        self._sort = (name, desc)
        self.view.horizontalHeader().setSortIndicator(
            section, Qt.SortOrder.DescendingOrder if desc else Qt.SortOrder.AscendingOrder
        )
        self._refresh_rows()

    def sort_by(self, name: str, descending: bool = False) -> None:
        self._sort = (name, descending)
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        table = self.model.table
        if table is None:
            self.summary.setText("no site table: File > Open site table...")
            return
        base = table.sorted_by(*self._sort) if self._sort else None
        role = {1: "input", 2: "output"}.get(self.role.currentIndex())
        partner_text = self.partner.text().strip()
        partner = int(partner_text) if partner_text.isdigit() else None
        rows = table.filtered(
            text=self.filter_text.text() or None, role=role, partner=partner, indices=base
        )
        self.model.set_rows(rows)
        self.show_current(self.model.current)
        res = "x".join(f"{v:g}" for v in table.resolution)
        shown = f"{len(rows)} shown, " if len(rows) != len(table) else ""
        skipped = f", {len(table.skipped)} rows skipped" if table.skipped else ""
        self.summary.setText(
            f"{len(table)} sites ({shown}{res} nm, {table.resolution_from}){skipped}\n"
            f"{table.source.describe()}"
        )
        self.orderChanged.emit(rows)

    def _on_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.siteActivated.emit(int(self.model.rows[index.row()]))


def sites_dock(panel: SitesPanel, parent: QWidget) -> QDockWidget:
    dock = QDockWidget("Sites", parent)
    dock.setObjectName("sitesDock")
    dock.setWidget(panel)
    return dock


class SitesController(QObject):
    """Wires the Sites dock, the site table in the viewer state and the slice view: open a
    table (in the background), go to a site (row click, ``]`` / ``[``, a click on a
    glyph), keep the dock and the glyphs in step with the current site."""

    #: a requested table has arrived or failed, and no other is on its way
    settled = Signal()

    def __init__(self, win: Any) -> None:  # the MainWindow (not imported: no cycle)
        super().__init__(win)
        self.win = win
        self.panel = SitesPanel()
        self.dock = sites_dock(self.panel, win)
        win.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        self.dock.setVisible(False)
        st = win.state
        self.panel.siteActivated.connect(st.go_to_site)
        self.panel.stepRequested.connect(st.step_site)
        self.panel.orderChanged.connect(st.set_site_order)
        st.events.sites.connect(self._on_state_sites)
        st.events.current_site.connect(self._on_state_current_site)
        self._pending: tuple | None = None
        self._reading = 0  # tables being read
        win.datasetOpened.connect(self._on_dataset_opened)

    @property
    def loading(self) -> bool:
        """A table is asked for and not there yet (``settled`` is emitted when none is)."""
        return self._pending is not None or self._reading > 0

    def _read_done(self) -> None:
        self._reading -= 1
        if not self.loading:
            self.settled.emit()

    def open_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            self.win,
            "Open site table",
            self.win.settings.export_dir or "",
            "Site tables (*.csv *.tsv *.parquet *.pq *.feather *.arrow);;All files (*)",
        )
        if path:
            self.open_table(path)

    def open_table(self, path: str, resolution: Any = None, first_site: Any = None) -> None:
        self.request(path=path, resolution=resolution, first_site=first_site)

    def request(self, first_site: Any = None, go: bool = True, **source: Any) -> None:
        """Load a site table in the background once the data is open (a table without a
        resolution of its own takes the viewer's): ``path`` (+ ``resolution``),
        ``synapses_of`` (+ ``synapse_table``), or neither for a link's annotations. With
        ``go`` the view moves to ``first_site`` (default: the first row)."""
        st = self.win.state
        if st.dataset is None:
            self._pending = (first_site, go, source)
            return
        inputs = st.inputs
        default = tuple(float(v) for v in st.resolution)
        bounds_nm = (st.dataset.volume_bounds(st.resolution) * st.resolution).tolist()

        def work(progress):
            from ..model.site_sources import load_sites

            table = load_sites(inputs, default, **source)
            if table is None:
                return None, None
            table.prepare_search()  # the dock's first text filter then costs nothing
            return table, table.check_against(bounds_nm)

        job = self.win.jobs.run(work, "read sites")
        self._reading += 1
        job.succeeded.connect(lambda result: self._on_table_read(result, first_site, go))
        job.failed.connect(self._on_table_failed)
        job.done.connect(self._read_done)

    def _on_table_failed(self, exc: object) -> None:
        successors = getattr(exc, "successors", None)
        extra = ""
        if successors:
            extra = " Its latest successors: " + ", ".join(str(s) for s in successors) + "."
        self.win.show_error(f"Could not load the sites: {exc}{extra}", dialog=True)

    def _on_dataset_opened(self) -> None:
        if self._pending is not None:
            (first_site, go, source), self._pending = self._pending, None
            self.request(first_site, go, **source)
            return
        st, req = self.win.state, self.win.opened_request
        if st.inputs is not None and st.inputs.link_state:
            self.request(go=False)  # the link's annotation layers, if it has any
        elif req is not None and req.demo and not (req.image_source or req.segmentation_source):
            from ..model.demo import ensure_demo

            synapses = ensure_demo().synapses
            if synapses is not None:
                self.request(go=False, path=str(synapses))  # glyphs; the view stays
        else:
            st.set_sites(None)

    def _on_table_read(self, result, first_site, go: bool = True) -> None:
        startlog.mark("site table read")
        table, warning = result
        if table is None:
            return
        self.win.state.set_sites(table)
        if warning:
            self.win.status.show_message(warning, 10000)
        if not go:
            return
        row = table.index_of(first_site) if first_site is not None else (0 if len(table) else None)
        if first_site is not None and row is None:
            self.win.show_error(f"no site {first_site} in the table", dialog=True)
        if row is not None:
            self.win.state.go_to_site(row)

    def _on_state_sites(self, table) -> None:
        self.panel.set_table(table)
        shown_before = self.dock.isVisible()
        self.dock.setVisible(table is not None)
        if table is not None and not shown_before:  # a strip under the view, not half of it
            self.win.resizeDocks([self.dock], [190], Qt.Orientation.Vertical)
        self.win.display.set_sites(table)

    def _on_state_current_site(self, row) -> None:
        st = self.win.state
        self.panel.show_current(row)
        self.win.display.set_sites(st.sites, row)
        if row is not None:
            c = st.site_center_nm(row)
            self.win.canvas.show_nm(float(c[0]), float(c[1]), self.win.canvas.nm_per_px())
            self.win.sync_camera()

    def site_at(self, x_nm: float, y_nm: float) -> int | None:
        """The site whose glyph is under a click on the current section, if any."""
        st = self.win.state
        if st.sites is None or st.dataset is None:
            return None
        from ..model.state import site_near

        style = self.win.display.glyph_style
        reach = (style.radius + style.width) * self.win.canvas.nm_per_px()
        return site_near(
            st.sites, x_nm, y_nm, (st.z + 0.5) * st.resolution[2], reach, st.resolution[2]
        )

    def next_site(self) -> None:
        self.win.state.step_site(1)

    def previous_site(self) -> None:
        self.win.state.step_site(-1)
