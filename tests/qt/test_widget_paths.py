"""The window's widget paths driven as a user drives them: real clicks and keys, real
18-digit ids (issue: one viewer state, the GUI bugs)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QColorDialog

from tests.qt.conftest import pick_pixel, scene_point, voxel_center_nm


def _select_by_typing(qtbot, win, sid: int) -> None:
    qtbot.keyClicks(win.segments.entry, str(sid))
    qtbot.keyClick(win.segments.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: sid in win.state.selection.ids)


def test_recolour_an_18_digit_id_through_the_dialog(qtbot, window, capfd):
    slab, zi = window.display.current_slab()
    y, x, sid = pick_pixel(slab, zi)
    assert sid > 2**53  # an 18-digit id, as MICrONS root ids are
    _select_by_typing(qtbot, window, sid)
    drawn = window.state.segment_colors()[sid]
    seen = {}

    def answer() -> None:
        dlg = QApplication.activeModalWidget()
        if not isinstance(dlg, QColorDialog):
            QTimer.singleShot(20, answer)
            return
        seen["title"] = dlg.windowTitle()
        seen["start"] = dlg.currentColor().getRgb()[:3]
        dlg.setCurrentColor(QColor(255, 0, 0))
        dlg.accept()

    QTimer.singleShot(20, answer)
    item = window.segments.list.item(0)
    rect = window.segments.list.visualItemRect(item)
    view = window.segments.list.viewport()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=rect.center())  # as a real double
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=rect.center())  # click: press first
    qtbot.waitUntil(lambda: "title" in seen, timeout=10000)
    assert seen["title"] == f"Colour of {sid}"
    assert seen["start"] == drawn  # opens at the colour it is drawn with, not white
    qtbot.waitUntil(lambda: window.state.selection.explicit.get(sid) == (255, 0, 0))
    qtbot.waitUntil(lambda: window.display.complete)
    qtbot.wait(40)
    assert tuple(window.canvas.overlay.image[y, x, :3]) == (255, 0, 0)
    assert "Overflow" not in capfd.readouterr().err


def test_palette_box_applies_only_a_complete_valid_name(qtbot, window):
    errors: list[str] = []
    window.errorShown.connect(errors.append)
    edit = window.overlay.palette.lineEdit()
    before = window.display.coloring.style.palette
    edit.selectAll()
    qtbot.keyClicks(edit, "notapalett")  # keystrokes alone change nothing
    assert window.display.coloring.style.palette == before and errors == []
    qtbot.keyClicks(edit, "e")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert len(errors) == 1 and "notapalette" in errors[0]
    assert window.overlay.palette.currentText() == before  # back to what is drawn
    assert window.state.style.palette == before
    names = [window.overlay.palette.itemText(i) for i in range(window.overlay.palette.count())]
    assert "notapalette" not in names
    edit.selectAll()
    qtbot.keyClicks(edit, "Set2")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.display.coloring.style.palette == "Set2")
    assert window.overlay.values()["palette"] == "Set2"


def test_hover_readout_follows_every_z_change(qtbot, window):
    slab, zi = window.display.current_slab()
    y, x, _sid = pick_pixel(slab, zi)
    pos = scene_point(window, *voxel_center_nm(window, slab, zi, y, x))
    qtbot.mouseMove(window.canvas.viewport(), pos)
    qtbot.waitUntil(lambda: f"z {window.state.z} " in window.readout.text())

    def steps_to(z: int) -> None:
        qtbot.waitUntil(lambda: f"z {z} " in window.readout.text(), timeout=30000)

    z0 = window.state.z
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Up)  # keys
    steps_to(z0 + 1)
    window.zpanel.slider.setValue(z0 + 3)  # the slider
    steps_to(z0 + 3)
    window.zpanel.play.click()  # Play
    qtbot.waitUntil(lambda: window.state.z != z0 + 3, timeout=10000)
    window.zpanel.play.click()
    steps_to(window.state.z)
    qtbot.waitUntil(lambda: window.display.complete, timeout=30000)
    # the segment part is of the slice shown now
    slab, zi = window.display.current_slab()
    assert f"segment {slab.id_at(zi, y, x) or '-'}" in window.readout.text()


def test_errors_never_hide_or_truncate_the_readout(qtbot, window):
    slab, zi = window.display.current_slab()
    y, x, sid = pick_pixel(slab, zi)
    pos = scene_point(window, *voxel_center_nm(window, slab, zi, y, x))
    qtbot.mouseMove(window.canvas.viewport(), pos)
    qtbot.waitUntil(lambda: str(sid) in window.readout.text())
    window.resize(900, 600)
    window.show_error("the server answered HTTP 503 " * 20)
    assert window.status.error_label.toolTip().startswith("the server answered")  # all of it
    window.status.show_message("retrying a very long list of chunks " * 10)
    qtbot.wait(50)
    r = window.readout
    assert r.isVisible()
    assert r.width() >= r.fontMetrics().horizontalAdvance(r.text())  # all of it is shown
    assert str(sid) in r.text()


def test_delete_key_removes_selected_entries(qtbot, window):
    slab, _zi = window.display.current_slab()
    ids = [int(v) for v in slab.ids[1:4]]
    qtbot.keyClicks(window.segments.entry, " ".join(map(str, ids)))
    qtbot.keyClick(window.segments.entry, Qt.Key.Key_Return)
    lst = window.segments.list
    lst.setFocus()
    lst.setCurrentRow(1)
    qtbot.keyClick(lst, Qt.Key.Key_Delete)
    assert list(window.state.selection.ids) == [ids[0], ids[2]]
    assert np.all([lst.item(i).text() != str(ids[1]) for i in range(lst.count())])
