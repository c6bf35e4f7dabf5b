"""The Sites dock and site glyphs in the real window, driven by clicks and keys; the
viewer's --synapses-of against the local CAVE server; the link out carries the sites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from neuroglancer.url_state import parse_url
from PySide6.QtCore import Qt

from imagery_gui.qt.dialogs import OpenRequest
from tests.qt.conftest import scene_point


def _cave_csv(path, demo, n=30, seed=4):
    """A CAVE-shaped synapse frame near the demo's centre, saved as people save it."""
    rng = np.random.default_rng(seed)
    cx, cy, cz = (int(v) for v in demo.center)
    rows = []
    for i in range(n):
        c = np.array([cx + rng.integers(-300, 300), cy + rng.integers(-200, 200), cz + i % 5])
        d = np.r_[rng.normal(size=2) * 12, 0].astype(int)
        rows.append(
            {
                "id": 864691135000000100 + i,
                "ctr_pt_position": c,
                "pre_pt_position": c - d,
                "post_pt_position": c + d,
                "pre_pt_root_id": 0,
                "post_pt_root_id": 0,
                "size": int(rng.integers(40, 900)),
            }
        )
    pd.DataFrame(rows).to_csv(path)  # positions become "[205312 164352  21032]" strings
    return rows


@pytest.fixture
def sites_window(qtbot, window, demo, tmp_path):
    rows = _cave_csv(tmp_path / "syn.csv", demo)
    window.sites.open_table(str(tmp_path / "syn.csv"), resolution=(4, 4, 40))
    qtbot.waitUntil(lambda: window.state.sites is not None, timeout=20000)
    qtbot.waitUntil(lambda: window.display.complete, timeout=30000)
    return window, rows


def _site_nm(win, row):
    return win.state.site_center_nm(row)


def test_click_a_row_goes_to_the_site(qtbot, sites_window):
    win, rows = sites_window
    view = win.sites.panel.view
    assert win.sites.dock.isVisible() and view.model().rowCount() == len(rows)
    index = view.model().index(7, 0)
    rect = view.visualRect(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: win.state.current_site == 7)
    c = _site_nm(win, 7)
    qtbot.waitUntil(lambda: abs(win.canvas.center_nm()[0] - c[0]) < 5, timeout=10000)
    assert win.state.z == int(rows[7]["ctr_pt_position"][2])
    assert (
        "30 sites" in win.sites.panel.summary.text()
        and "4x4x40 nm" in win.sites.panel.summary.text()
    )


def test_bracket_keys_walk_the_sorted_table(qtbot, sites_window):
    win, rows = sites_window
    header = win.sites.panel.view.horizontalHeader()
    size_col = win.sites.panel.model.columns.index("size")
    qtbot.mouseClick(
        header.viewport(),
        Qt.MouseButton.LeftButton,
        pos=header.rect().topLeft() + _section_center(header, size_col),
    )
    order = np.argsort([r["size"] for r in rows], kind="stable")
    assert list(win.sites.panel.model.rows) == list(order)
    view = win.sites.panel.view  # the first row of the sorted table
    qtbot.mouseClick(
        view.viewport(),
        Qt.MouseButton.LeftButton,
        pos=view.visualRect(view.model().index(0, 0)).center(),
    )
    qtbot.waitUntil(lambda: win.state.current_site == order[0])
    win.activateWindow()  # shortcuts go to the active window, as a user's keys do
    qtbot.waitUntil(win.isActiveWindow)
    win.canvas.setFocus()
    qtbot.keyClick(win.canvas, Qt.Key.Key_BracketRight)  # next in the sorted order
    qtbot.waitUntil(lambda: win.state.current_site == order[1])
    qtbot.keyClick(win.canvas, Qt.Key.Key_BracketRight)
    qtbot.waitUntil(lambda: win.state.current_site == order[2])
    qtbot.keyClick(win.canvas, Qt.Key.Key_BracketLeft)
    qtbot.waitUntil(lambda: win.state.current_site == order[1])
    # the dock shows it: its row is the selected one
    sel = win.sites.panel.view.selectionModel().selectedRows()
    assert [win.sites.panel.model.rows[i.row()] for i in sel] == [order[1]]


def _section_center(header, section):
    from PySide6.QtCore import QPoint

    x = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
    return QPoint(x, header.height() // 2)


def test_filter_by_text_and_the_glyph_click(qtbot, sites_window):
    win, rows = sites_window
    panel = win.sites.panel
    target = str(rows[12]["id"])
    qtbot.keyClicks(panel.filter_text, target[-4:])
    qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=5000)
    assert panel.model.cell(int(panel.model.rows[0]), "id") == target
    # a click on the site's glyph (on its section) makes it the current site
    win.state.go_to_site(3)
    qtbot.waitUntil(lambda: win.display.complete, timeout=30000)
    win.state.set_z(int(rows[12]["ctr_pt_position"][2]))
    qtbot.waitUntil(lambda: win.display.complete, timeout=30000)
    c = _site_nm(win, 12)
    win.canvas.show_nm(float(c[0]), float(c[1]), win.canvas.nm_per_px())
    win.sync_camera()
    qtbot.waitUntil(lambda: win.display.complete, timeout=30000)
    pos = scene_point(win, float(c[0]) + 2, float(c[1]) + 2)
    qtbot.mouseClick(win.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: win.state.current_site == 12)


def test_glyphs_drawn_in_the_view_and_the_link_out_carries_the_sites(qtbot, sites_window):
    win, rows = sites_window
    win.state.go_to_site(0)
    qtbot.waitUntil(lambda: win.display.complete, timeout=30000)
    glyphs = win.canvas.glyphs.image
    assert glyphs is not None and glyphs[..., 3].max() == 255
    link = win.neuroglancer_link()
    state = parse_url(link)
    layer = state.layers["sites"]
    assert layer.type == "annotation" and len(layer.annotations) == len(rows)
    first = layer.annotations[0]
    assert first.type == "line"
    assert [int(v) for v in np.floor(first.point_a)] == [int(v) for v in rows[0]["pre_pt_position"]]


def test_synapses_of_a_root_in_the_viewer(qtbot, settings, cave, token_file, graphene_table):
    from imagery_gui.app import create_window

    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.show()
    a, _b = graphene_table.merged
    req = OpenRequest(
        None,
        None,
        [2192, 4160, 103],
        None,
        datastack="test_stack",
        server_address=cave.url,
        auth_token_file=str(token_file),
        materialization_version=1,
    )
    with qtbot.waitSignal(win.datasetOpened, timeout=60000):
        win.open_sources(req)
    win.sites.request(synapses_of=a)
    qtbot.waitUntil(lambda: win.state.sites is not None, timeout=30000)
    table = win.state.sites
    assert len(table) > 0 and set(table.role_codes.tolist()) <= {1, 2}
    assert cave.queries and cave.queries[-1][0] == 1  # pinned to the version shown
    assert win.state.current_site == 0  # and the view went to the first synapse
    assert (
        int(table.pre_root[0]) in win.state.selection.ids
        or int(table.post_root[0]) in win.state.selection.ids
    )
    win.close()
