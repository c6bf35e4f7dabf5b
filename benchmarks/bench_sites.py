"""The Sites dock with a large table (offscreen), beside the usual Qt way in the same run.

imagery-gui's dock reads cells from the site table's numpy columns when Qt paints them,
and sorting or filtering replaces one index array. The reference is what a Qt programmer
writes first: every cell as a ``QStandardItem`` in a ``QStandardItemModel`` behind a
``QSortFilterProxyModel`` (sorting and a fixed-string filter on every column), in a
``QTableView`` of the same size. Each figure is the time from the action to the view
repainted: loading the table, sorting by a column (both directions), filtering by text
(a match and no match), scrolling a page and jumping to the end; medians of 5.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_sites.py [--rows 50000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def synapse_frame(n: int, seed: int = 0):
    """A CAVE synapse_query-shaped frame of ``n`` rows (MICrONS-like ids and positions)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    ctr = np.c_[
        rng.integers(100_000, 300_000, n),
        rng.integers(80_000, 250_000, n),
        rng.integers(15_000, 27_000, n),
    ]
    d = np.c_[rng.integers(-30, 30, (n, 2)), np.zeros(n, int)]
    roots = 864691135000000000 + rng.integers(0, 10**9, (n, 2))
    return pd.DataFrame(
        {
            "id": np.arange(n) + 100_000_000,
            "ctr_pt_position": list(ctr),
            "pre_pt_position": list(ctr - d),
            "post_pt_position": list(ctr + d),
            "pre_pt_root_id": roots[:, 0],
            "post_pt_root_id": roots[:, 1],
            "size": rng.integers(20, 5000, n),
            "cell_type": rng.choice(["23P", "4P", "BC", "MC", "BPC", "NGC"], n),
        }
    )


def timed(app, view, action, reps: int = 5) -> float:
    """Median ms from ``action()`` to the view repainted."""
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        action()
        app.processEvents()
        view.viewport().repaint()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from PySide6.QtCore import QSortFilterProxyModel, Qt
    from PySide6.QtGui import QStandardItem, QStandardItemModel
    from PySide6.QtWidgets import QAbstractItemView, QTableView

    from imagery_gui.app import make_app
    from imagery_gui.model.sites import read_sites
    from imagery_gui.qt.sites_dock import SitesPanel

    app = make_app()
    df = synapse_frame(args.rows)
    rows: dict[str, dict[str, float]] = {}

    # -- imagery-gui ---------------------------------------------------------------------
    t = time.perf_counter()
    table = read_sites(df, resolution=(4, 4, 40))
    table.prepare_search()
    t_read = (time.perf_counter() - t) * 1e3
    panel = SitesPanel()
    panel.resize(1200, 420)
    panel.show()
    view = panel.view
    ours: dict[str, float] = {"read + index the table (model, no Qt)": t_read}
    ours["load into the view"] = timed(app, view, lambda: panel.set_table(table), reps=3)
    size_col = panel.model.columns.index("size")
    header = view.horizontalHeader()
    ours["sort by a column (click the header)"] = timed(
        app, view, lambda: header.sectionClicked.emit(size_col)
    )

    def filter_to(text):
        panel.filter_text.setText(text)
        panel._filter_timer.stop()  # the 150 ms typing pause, not part of the work
        panel._refresh_rows()

    ours["filter by text (a match)"] = timed(app, view, lambda: filter_to("BPC"))
    ours["filter by text (no match)"] = timed(app, view, lambda: filter_to("no such text"))
    filter_to("")
    bar = view.verticalScrollBar()
    ours["scroll a page"] = timed(app, view, lambda: bar.setValue(bar.value() + bar.pageStep()))
    ours["jump to the end"] = timed(
        app, view, lambda: (bar.setValue(0), bar.setValue(bar.maximum()))
    )
    ours["highlight a site (current row)"] = timed(
        app, view, lambda: panel.show_current(int(panel.model.rows[len(panel.model.rows) // 2]))
    )
    panel.close()
    rows["imagery-gui"] = ours

    # -- reference: QStandardItemModel + QSortFilterProxyModel ---------------------------
    ref: dict[str, float] = {}
    cols = ["id", "role", "x", "y", "z", "pre_root", "post_root", "size", "cell_type"]
    t = time.perf_counter()
    model = QStandardItemModel(len(df), len(cols))
    model.setHorizontalHeaderLabels(cols)
    values = {
        "id": df["id"].astype(str).tolist(),
        "role": [""] * len(df),
        "x": [str(v[0]) for v in df["ctr_pt_position"]],
        "y": [str(v[1]) for v in df["ctr_pt_position"]],
        "z": [str(v[2]) for v in df["ctr_pt_position"]],
        "pre_root": df["pre_pt_root_id"].astype(str).tolist(),
        "post_root": df["post_pt_root_id"].astype(str).tolist(),
        "size": df["size"].astype(str).tolist(),
        "cell_type": df["cell_type"].tolist(),
    }
    for c, name in enumerate(cols):
        for r, text in enumerate(values[name]):
            model.setItem(r, c, QStandardItem(text))
    ref["read + index the table (model, no Qt)"] = (time.perf_counter() - t) * 1e3
    proxy = QSortFilterProxyModel()
    proxy.setFilterKeyColumn(-1)  # every column, as the dock's text filter
    proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    rview = QTableView()
    rview.resize(1200, 380)
    rview.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    rview.show()
    ref["load into the view"] = timed(
        app, rview, lambda: (proxy.setSourceModel(model), rview.setModel(proxy)), reps=1
    )
    order = [Qt.SortOrder.AscendingOrder]

    def ref_sort():
        proxy.sort(cols.index("size"), order[0])
        order[0] = (
            Qt.SortOrder.DescendingOrder
            if order[0] == Qt.SortOrder.AscendingOrder
            else Qt.SortOrder.AscendingOrder
        )

    ref["sort by a column (click the header)"] = timed(app, rview, ref_sort)
    ref["filter by text (a match)"] = timed(app, rview, lambda: proxy.setFilterFixedString("BPC"))
    ref["filter by text (no match)"] = timed(
        app, rview, lambda: proxy.setFilterFixedString("no such text")
    )
    proxy.setFilterFixedString("")
    rbar = rview.verticalScrollBar()
    ref["scroll a page"] = timed(app, rview, lambda: rbar.setValue(rbar.value() + rbar.pageStep()))
    ref["jump to the end"] = timed(
        app, rview, lambda: (rbar.setValue(0), rbar.setValue(rbar.maximum()))
    )
    ref["highlight a site (current row)"] = timed(app, rview, lambda: rview.selectRow(len(df) // 2))
    rows["QStandardItemModel + QSortFilterProxyModel"] = ref

    print(f"{args.rows} rows; ms, median of 5 (loads: of 3 / 1)")
    print(f"{'action':42s} {'imagery-gui':>12s} {'Qt items':>12s} {'ratio':>8s}")
    for k in ours:
        r = ref.get(k, float("nan"))
        print(f"{k:42s} {ours[k]:12.1f} {r:12.1f} {r / max(ours[k], 1e-3):7.1f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": args.rows, "ms": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
