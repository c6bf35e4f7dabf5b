"""The first hour in the window (issue 18): Go to, Centre on the volume, a view outside
the volume, Home / End, Delete, the shortcuts dialog, where keys go, File > Open,
the export dialog's defaults, id entry notices and links of local data.

Driven with real key presses and clicks (pytest-qt) on the demo volume."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import QObject, QPoint, Qt, QTimer, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QPushButton

from imagery_gui.model import navigate
from imagery_gui.qt.actions import MENUS, OTHER_KEYS, VIEW_KEY_SPECS, key_text
from imagery_gui.qt.dialogs import ExportDialog, GoToDialog, OpenDialog
from imagery_gui.qt.navigation import ShortcutsDialog

CTRL = Qt.KeyboardModifier.ControlModifier


def _press(qtbot, key, mods=Qt.KeyboardModifier.NoModifier):
    """A key as the user presses it: to whatever has the keyboard focus."""
    target = QApplication.focusWidget()
    assert target is not None
    qtbot.keyClick(target, key, mods)


def _click_button(qtbot, box: QDialogButtonBox, which) -> None:
    qtbot.mouseClick(box.button(which), Qt.MouseButton.LeftButton)


def _pointer_over_canvas(qtbot, win) -> None:
    vp = win.canvas.viewport()
    qtbot.mouseMove(vp, QPoint(vp.width() // 2, vp.height() // 2))
    qtbot.waitUntil(win.canvas.underMouse)


def _pointer_over_dock(qtbot, win) -> None:
    qtbot.mouseMove(win.segments.count, QPoint(5, 5))
    qtbot.waitUntil(lambda: not win.canvas.underMouse())


def _focus(qtbot, widget) -> None:
    widget.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is widget)


def _activate(qtbot, win) -> None:
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win)


# -- 1. Go to, Centre on the volume ----------------------------------------------------------
def test_go_to_typed_or_pasted_in_voxels_and_nm(qtbot, window):
    _activate(qtbot, window)
    _focus(qtbot, window.canvas)
    _press(qtbot, Qt.Key.Key_G, CTRL)
    dlg = window.findChild(GoToDialog, "goToDialog")
    assert dlg is not None and dlg.isVisible()
    cx, cy, cz = window.state.center_voxel()  # prefilled with where the view is
    assert navigate.parse_point(dlg.point.text()) == (cx, cy, cz)
    # a bad point: the dialog stays, with the text and a clear message
    dlg.point.clear()
    qtbot.keyClicks(dlg.point, "205100, abc, 21010")
    box = dlg.findChild(QDialogButtonBox)
    _click_button(qtbot, box, QDialogButtonBox.StandardButton.Ok)
    assert dlg.isVisible() and "'abc' is not a number" in dlg.error.text()
    assert dlg.point.text() == "205100, abc, 21010"
    # pasted from Neuroglancer, in voxels
    dlg.point.clear()
    qtbot.keyClicks(dlg.point, "[205100 164000 21010]")
    _click_button(qtbot, box, QDialogButtonBox.StandardButton.Ok)
    assert not dlg.isVisible()
    assert window.state.z == 21010 and window.display.z == 21010
    x, y = window.state.camera.center_nm
    assert abs(x - 205100.5 * 4) < 4 and abs(y - 164000.5 * 4) < 4
    qtbot.waitUntil(lambda: window.display.complete)
    # in nm (the unit is remembered for the next time)
    dlg = window.nav.go_to_dialog()
    dlg.unit.setCurrentText("nm")
    dlg.point.clear()
    qtbot.keyClicks(dlg.point, "821000, 656500, 841300")
    qtbot.keyClick(dlg.point, Qt.Key.Key_Return)
    assert window.state.z == 21032  # floor(841300 / 40)
    x, y = window.state.camera.center_nm
    assert abs(x - 821000) < 4 and abs(y - 656500) < 4
    assert window.nav.unit == "nm"


def test_outside_the_volume_renders_empty_with_a_notice_and_centre_brings_it_back(qtbot, window):
    window.nav.go_to((0, 0, 0))
    qtbot.waitUntil(lambda: window.display.complete and window.display.outside)
    assert window.canvas.notice.isVisible()
    assert window.canvas.notice.text() == navigate.OUTSIDE_NOTICE
    assert window.canvas.em.image is None and window.canvas.overlay.image is None
    assert "outside the volume" in window.status.missing_label.text()
    assert "outside the volume" in window.status.message()  # what Go to said
    assert window.state.z == window.state.z_range[0]  # z is clamped to the volume
    _activate(qtbot, window)
    _focus(qtbot, window.canvas)
    _press(qtbot, Qt.Key.Key_0, CTRL)  # View > Centre on the volume
    qtbot.waitUntil(lambda: window.display.complete and not window.display.outside)
    assert not window.canvas.notice.isVisible()
    assert window.status.missing_label.text() == ""
    ds, res = window.state.dataset, window.state.resolution
    c = navigate.volume_center_nm(ds, res)
    assert window.state.z == int(c[2] // res[2])
    np.testing.assert_allclose(window.state.camera.center_nm, c[:2], atol=res[0])
    assert window.canvas.em.image is not None


# -- 2. outside the volume from the command line ---------------------------------------------
@pytest.mark.parametrize("size", [(900, 600)])
def test_outside_view_screenshot_exits(demo, tmp_path, size):
    """``--center`` far outside: the PNG shows the notice, exit 1 with one line."""
    from PIL import Image

    from tests.qt.test_cli_viewer import _run

    out = tmp_path / "out.png"
    res = _run(
        ["--center", "0", "0", "0", "--screenshot", str(out), "--size", *map(str, size)],
        {"QT_QPA_PLATFORM": "offscreen"},
        timeout=120,
    )
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "outside the volume" in lines[0] and "204800" in lines[0]
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (size[1], size[0], 3)


def test_export_outside_the_volume_is_one_line(demo, tmp_path):
    from tests.qt.test_cli_viewer import _run

    res = _run(
        [
            "export",
            "--demo",
            "--center",
            "0",
            "0",
            "0",
            "--size",
            "100",
            "100",
            "-o",
            str(tmp_path / "x.png"),
        ],
        timeout=120,
    )
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "entirely outside" in lines[0]
    assert not (tmp_path / "x.png").exists()


# -- 3. Home / End, Delete, Help ---------------------------------------------------------------
def test_home_and_end_go_to_the_first_and_last_slice(qtbot, window):
    _activate(qtbot, window)
    _focus(qtbot, window.canvas)
    lo, hi = window.state.z_range
    _press(qtbot, Qt.Key.Key_End)
    assert window.state.z == hi and window.zpanel.slider.value() == hi
    _press(qtbot, Qt.Key.Key_Home)
    assert window.state.z == lo and window.display.z == lo
    qtbot.waitUntil(lambda: window.display.complete)


def test_delete_removes_the_selected_list_entries(qtbot, window):
    slab, _zi = window.display.current_slab()
    ids = [int(v) for v in slab.ids[1:4]]
    window.add_ids(ids)
    lst = window.segments.list
    item = lst.item(1)
    qtbot.mouseClick(
        lst.viewport(), Qt.MouseButton.LeftButton, pos=lst.visualItemRect(item).center()
    )
    assert QApplication.focusWidget() is lst
    _press(qtbot, Qt.Key.Key_Delete)
    assert list(window.state.selection.ids) == [ids[0], ids[2]]
    assert lst.count() == 2


def test_shortcuts_dialog_lists_every_key_of_the_tables(qtbot, window):
    _activate(qtbot, window)
    _focus(qtbot, window.canvas)
    _press(qtbot, Qt.Key.Key_F1)
    dlg = window.findChild(ShortcutsDialog, "shortcutsDialog")
    assert dlg is not None and dlg.isVisible()
    keys_shown = " | ".join(k for k, _ in dlg.rows())
    does_shown = " | ".join(d for _, d in dlg.rows())
    listed = 0
    for spec in MENUS:
        if spec.shortcut is not None and key_text(spec.shortcut):  # (Quit: none offscreen)
            assert key_text(spec.shortcut) in keys_shown, spec
            assert spec.text.replace("&", "") in does_shown
            listed += 1
    assert listed >= 8 and all(k for k, _ in dlg.rows())
    for spec in VIEW_KEY_SPECS:
        assert key_text(spec.key) in keys_shown and spec.does in does_shown, spec
    for keys, does in OTHER_KEYS:
        assert keys in keys_shown and does in does_shown
    # the actions really have the shortcuts the dialog lists
    assert window.act_go_to.shortcut().toString() == "Ctrl+G"
    assert "Escape" in dlg.rule.text() and "pointer" in dlg.rule.text()
    dlg.close()


class _UrlRecorder(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    @Slot("QUrl")
    def handle(self, url) -> None:
        self.urls.append(url.toString())


def test_online_documentation_opens_the_readme(qtbot, window):
    rec = _UrlRecorder()
    for scheme in ("file", "https"):
        QDesktopServices.setUrlHandler(scheme, rec, "handle")
    try:
        window.menu_help.actions()  # built from the table
        window.act_docs.trigger()
    finally:
        for scheme in ("file", "https"):
            QDesktopServices.unsetUrlHandler(scheme)
    assert rec.urls == [navigate.docs_url()]


# -- 4. where keys go ------------------------------------------------------------------------
def test_navigation_keys_act_on_the_view_under_the_pointer(qtbot, window):
    _activate(qtbot, window)
    pal = window.overlay.palette  # an editable combobox: Up used to change the palette
    palette = window.state.style.palette
    _focus(qtbot, pal)
    _pointer_over_canvas(qtbot, window)
    z = window.state.z
    _press(qtbot, Qt.Key.Key_Up)
    assert window.state.z == z + 1 and window.state.style.palette == palette
    _press(qtbot, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ShiftModifier)
    assert window.state.z == z + 1 - 10
    # a plain combobox: with the pointer over the view the view gets the key ...
    mode = window.overlay.mode
    _focus(qtbot, mode)
    z = window.state.z
    _press(qtbot, Qt.Key.Key_Down)
    assert window.state.z == z - 1 and mode.currentText() == "fill"
    # ... with the pointer elsewhere the control does
    _pointer_over_dock(qtbot, window)
    _press(qtbot, Qt.Key.Key_Down)
    assert window.state.z == z - 1 and mode.currentText() == "outline"
    qtbot.waitUntil(lambda: window.state.style.outline)


def test_text_fields_keep_their_editing_keys_and_escape_returns_to_the_view(qtbot, window):
    _activate(qtbot, window)
    entry = window.segments.entry
    _focus(qtbot, entry)
    _pointer_over_canvas(qtbot, window)
    z = window.state.z
    qtbot.keyClicks(entry, "12 [3]")
    assert entry.text() == "12 [3]"  # [ and ] are typed, not sites
    _press(qtbot, Qt.Key.Key_Home)
    assert entry.cursorPosition() == 0 and window.state.z == z
    _press(qtbot, Qt.Key.Key_Right)
    assert entry.cursorPosition() == 1 and window.state.z == z
    _press(qtbot, Qt.Key.Key_End)
    assert entry.cursorPosition() == len("12 [3]") and window.state.z == z
    _press(qtbot, Qt.Key.Key_Up)  # not a text key: the view under the pointer
    assert window.state.z == z + 1
    _press(qtbot, Qt.Key.Key_Escape)
    assert QApplication.focusWidget() is window.canvas
    assert entry.text() == "12 [3]"
    _pointer_over_dock(qtbot, window)  # the view has the focus: its keys work anywhere
    _press(qtbot, Qt.Key.Key_Left)
    assert window.state.z == z
    _press(qtbot, Qt.Key.Key_Home)
    assert window.state.z == window.state.z_range[0]


def test_a_click_on_the_view_gives_it_the_keys(qtbot, window):
    _activate(qtbot, window)
    _focus(qtbot, window.zpanel.fps)  # a spin box
    vp = window.canvas.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert QApplication.focusWidget() is window.canvas
    _pointer_over_dock(qtbot, window)
    z, fps = window.state.z, window.zpanel.fps.value()
    _press(qtbot, Qt.Key.Key_Up)
    assert window.state.z == z + 1 and window.zpanel.fps.value() == fps


# -- 5. File > Open --------------------------------------------------------------------------
def test_open_dialog_keeps_what_was_typed_and_shows_the_error(qtbot, window, demo, tmp_path):
    _activate(qtbot, window)
    _focus(qtbot, window.canvas)
    _press(qtbot, Qt.Key.Key_O, CTRL)
    dlg = window.findChild(OpenDialog, "openDialog")
    assert dlg is not None and dlg.isVisible()
    assert dlg.image.text() == demo.image_source  # prefilled with what is open
    assert dlg.segmentation.text() == demo.segmentation_source
    bad = str(tmp_path / "nope")
    dlg.image.clear()
    qtbot.keyClicks(dlg.image, bad)
    qtbot.keyClicks(dlg.center, "1 2 3")
    open_button = dlg.buttons.button(QDialogButtonBox.StandardButton.Open)
    with qtbot.waitSignal(window.errorShown, timeout=20000):
        qtbot.mouseClick(open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "no such folder" in dlg.error.text())
    assert dlg.isVisible() and dlg.image.text() == bad and dlg.center.text() == "1 2 3"
    assert not [
        b for b in window.findChildren(QPushButton) if b.window().objectName() == "errorBox"
    ]
    # fixed in place, it opens and closes
    dlg.image.setText(demo.image_source)
    dlg.center.clear()
    with qtbot.waitSignal(window.datasetOpened, timeout=60000):
        qtbot.mouseClick(open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.isVisible())


def test_recent_includes_the_demo(qtbot, window, demo):
    texts = [a.text() for a in window.menu_recent.actions()]
    assert any(demo.image_source in t for t in texts)
    assert window.menu_recent.isEnabled()
    with qtbot.waitSignal(window.datasetOpened, timeout=60000):
        window.open_demo()
    assert [demo.image_source, demo.segmentation_source] in window.settings.recent


# -- 6. the export dialog ----------------------------------------------------------------------
def _inspect_modal(found: list, accept_to: str | None = None):
    def look():
        dlg = QApplication.activeModalWidget()
        if not isinstance(dlg, ExportDialog):
            QTimer.singleShot(50, look)
            return
        found.append((dlg.path.text(), dlg.depth_label.text(), dlg.depth.value()))
        dlg.depth.setValue(1)
        found.append(dlg.depth_label.text())
        if accept_to:
            dlg.path.setText(accept_to)
            dlg.accept()
        else:
            dlg.reject()

    QTimer.singleShot(50, look)


def test_export_dialog_defaults_to_the_last_folder_and_a_new_name(qtbot, window, tmp_path):
    window.settings.export_dir = str(tmp_path)
    (tmp_path / "figure.png").write_bytes(b"")
    found: list = []
    _inspect_modal(found)
    window.figures.export_series()
    path, label, depth = found[0]
    assert path == str(tmp_path / "figure-2.png")  # never the earlier export
    assert depth == 8 and label == "slices from the current z"
    assert found[1] == "slice from the current z"
    # an export elsewhere: the next dialog starts there
    shots = tmp_path / "shots"
    shots.mkdir()
    found.clear()
    _inspect_modal(found, accept_to=str(shots / "view.png"))
    window.figures.export_png()
    assert found[0][1] == "slice from the current z"
    qtbot.waitUntil(lambda: (shots / "view.png").is_file(), timeout=60000)
    assert window.settings.export_dir == str(shots)
    found.clear()
    _inspect_modal(found)
    window.figures.export_png()
    assert found[0][0] == str(shots / "figure.png")
    window.settings.export_dir = str(tmp_path / "gone")  # a folder that went away: home
    found.clear()
    _inspect_modal(found)
    window.figures.export_png()
    assert os.path.dirname(found[0][0]) == os.path.expanduser("~")


# -- 7. id entry -------------------------------------------------------------------------------
def test_id_entry_adds_the_valid_ids_and_names_each_rejected_token(qtbot, window):
    slab, _zi = window.display.current_slab()
    here = int(slab.ids[1])
    entry = window.segments.entry
    with qtbot.waitSignal(window.errorShown) as sig:
        qtbot.keyClicks(entry, f"abc {here} -5 0 12345")
        qtbot.keyClick(entry, Qt.Key.Key_Return)
    text = sig.args[0]
    assert "'abc' (not a number)" in text and "'-5' (negative" in text and "'0'" in text
    assert "not in this view (added anyway): 12345" in text
    assert list(window.state.selection.ids) == [here, 12345]
    assert window.segments.notice.isVisible() and window.segments.notice.text() == text
    qtbot.waitUntil(lambda: window.display.complete)  # the redraw keeps the notice up
    assert window.status.error() == text
    assert entry.text() == "abc -5 0"  # what is left to correct
    # a clean line: no notice left behind
    entry.clear()
    qtbot.keyClicks(entry, str(int(slab.ids[2])))
    qtbot.keyClick(entry, Qt.Key.Key_Return)
    assert not window.segments.notice.isVisible() and entry.text() == ""
    assert window.status.error() == ""


# -- 8. links of local data ----------------------------------------------------------------------
def test_copy_link_of_local_data_warns(qtbot, window):
    _activate(qtbot, window)
    _focus(qtbot, window.canvas)
    _press(qtbot, Qt.Key.Key_L, CTRL)
    link = QGuiApplication.clipboard().text()
    from urllib.parse import unquote

    assert link.startswith("https://") and "file:///" in unquote(link)
    msg = window.status.message()
    assert "local files" in msg and "file:///" in msg and "browser cannot open" in msg
