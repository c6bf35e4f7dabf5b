"""The viewer window, driven as a user would with pytest-qt, on real Precomputed volumes."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from imagery_gui.model.dataset import Dataset
from tests.qt.conftest import open_and_wait, pick_pixel, scene_point, voxel_center_nm


def _truth_slice(win, slab, zi):
    """The same slice read independently through the model (not through the viewer)."""
    key = slab.key
    reg = key.region
    ds = Dataset(win.state.dataset.image.url, win.state.dataset.segmentation.url)
    box = [[reg.lo[0], reg.lo[1], key.z0 + zi], [reg.hi[0], reg.hi[1], key.z0 + zi + 1]]
    img, seg = ds.aligned_cutout(
        box,
        image_mip=reg.image_mip,
        segmentation_mip=reg.segmentation_mip,
        resolution=reg.resolution,
    )
    return img[0], seg[0]


def test_window_and_taskbar_icon(window):
    from PySide6.QtWidgets import QApplication

    from imagery_gui.app import make_app

    app = make_app()
    assert isinstance(app, QApplication)
    # The taskbar finds the desktop entry (resources/imagery-gui.desktop) by this name on
    # Wayland, and takes the window icon on X11.
    assert app.desktopFileName() == "imagery-gui"
    icon = window.windowIcon()
    assert not icon.isNull()
    img = icon.pixmap(64, 64).toImage()
    assert img.width() == 64 and img.pixelColor(32, 32).alpha() == 255
    assert img.pixelColor(0, 0).alpha() == 0  # the rounded corner


def test_first_image_appears(window):
    em = window.canvas.em.image
    ov = window.canvas.overlay.image
    assert em is not None and ov is not None
    slab, zi = window.display.current_slab()
    img, seg = _truth_slice(window, slab, zi)
    np.testing.assert_array_equal(em, img)  # the EM shown is the data, unchanged
    assert ov.shape == em.shape + (4,)
    assert (ov[..., 3][seg > 0] > 0).all() and (ov[..., 3][seg == 0] == 0).all()
    assert window.display.view_res.tolist() == [4.0, 4.0, 40.0]


def test_closing_the_window_gives_its_slabs_back(window):
    # Qt's connections keep a closed window's Python objects alive (and an open may have
    # exempted them from garbage collection): the data must go at close regardless.
    disp = window.display
    assert len(disp.cache) > 0 and disp.cache.nbytes > 0 and disp.shown is not None
    window.close()
    assert len(disp.cache) == 0 and disp.cache.nbytes == 0
    assert disp.shown is None and not disp._outlines
    assert window.canvas.em.image is None and window.canvas.overlay.image is None


def test_click_selects_the_segment_under_the_cursor(qtbot, window):
    slab, zi = window.display.current_slab()
    y, x, expected = pick_pixel(slab, zi)
    _, seg = _truth_slice(window, slab, zi)
    assert int(seg[y, x]) == expected  # checked against an independent read
    pos = scene_point(window, *voxel_center_nm(window, slab, zi, y, x))
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: expected in window.state.selection.ids)
    assert window.segments.list.count() == 1
    assert window.segments.list.item(0).text() == str(expected)
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)  # toggles off
    qtbot.waitUntil(lambda: expected not in window.state.selection.ids)


def test_clicking_background_selects_nothing(qtbot, window):
    slab, zi = window.display.current_slab()
    ys, xs = np.nonzero(slab.local[zi] == 0)
    assert len(ys), "the demo has unsegmented pixels"
    pos = scene_point(window, *voxel_center_nm(window, slab, zi, int(ys[0]), int(xs[0])))
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.wait(50)
    assert len(window.state.selection) == 0


def test_hover_readout(qtbot, window):
    slab, zi = window.display.current_slab()
    y, x, expected = pick_pixel(slab, zi)
    pos = scene_point(window, *voxel_center_nm(window, slab, zi, y, x))
    qtbot.mouseMove(window.canvas.viewport(), pos=pos)
    qtbot.waitUntil(lambda: str(expected) in window.readout.text())
    assert f"z {window.display.z}" in window.readout.text()


def test_typing_and_pasting_ids(qtbot, window):
    slab, _zi = window.display.current_slab()
    ids = [int(v) for v in slab.ids[1:4]]
    qtbot.keyClicks(window.segments.entry, f"{ids[0]}, {ids[1]}\n{ids[2]}".replace("\n", " "))
    qtbot.keyClick(window.segments.entry, Qt.Key.Key_Return)
    assert list(window.state.selection.ids) == ids  # exact 18-digit ids, in order
    window.segments.list.item(1).setSelected(True)
    window.segments.remove_btn.click()
    assert list(window.state.selection.ids) == [ids[0], ids[2]]
    window.copy_ids()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text().split() == [str(ids[0]), str(ids[2])]
    window.segments.clear_btn.click()
    assert len(window.state.selection) == 0 and window.segments.list.count() == 0


def test_bad_ids_give_a_message(qtbot, window):
    """A bad token is named with its reason (no modal box); the valid ids of the line are
    added (tests/qt/test_first_hour_gui.py covers a whole mixed line)."""
    with qtbot.waitSignal(window.errorShown) as sig:
        qtbot.keyClicks(window.segments.entry, "86469113abc")
        qtbot.keyClick(window.segments.entry, Qt.Key.Key_Return)
    assert "'86469113abc' (not a number)" in sig.args[0]
    assert len(window.state.selection) == 0
    assert window.segments.notice.text() == sig.args[0]
    with qtbot.waitSignal(window.errorShown) as sig:
        window._on_segments_add("0")
    assert "'0' (0 means no segment)" in sig.args[0] and len(window.state.selection) == 0
    assert not window.findChildren(QMessageBox, "errorBox")  # the notice is in the panel


def test_style_changes_rerender_without_fetching(qtbot, window):
    before = window.canvas.overlay.image.copy()
    requests = window.display.fetch_requests
    window.overlay.alpha.setValue(0.8)
    qtbot.waitUntil(lambda: not np.array_equal(window.canvas.overlay.image, before))
    a = window.canvas.overlay.image[..., 3]
    assert set(np.unique(a).tolist()) <= {0, int(0.8 * 255)}
    window.overlay.mode.setCurrentText("outline")
    window.overlay.width.setValue(2)
    qtbot.waitUntil(
        lambda: window.display.complete and (window.canvas.overlay.image[..., 3] == 0).mean() > 0.5
    )
    outlined = window.canvas.overlay.image.copy()
    window.overlay.side.setCurrentText("out")
    qtbot.waitUntil(
        lambda: (
            window.display.complete and not np.array_equal(window.canvas.overlay.image, outlined)
        )
    )
    edit = window.overlay.palette.lineEdit()
    edit.selectAll()
    qtbot.keyClicks(edit, "tab10")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.display.coloring.style.palette == "tab10")
    qtbot.wait(50)
    assert window.display.fetch_requests == requests  # nothing was fetched again


def test_show_selected_only_and_colour(qtbot, window):
    slab, zi = window.display.current_slab()
    y, x, sid = pick_pixel(slab, zi)
    window.add_ids([sid])
    window.segments.show_selected.setChecked(True)
    qtbot.waitUntil(lambda: window.display.complete)
    qtbot.wait(40)
    ov = window.canvas.overlay.image
    local = slab.local[zi]
    mine = slab.ids[local] == np.uint64(sid)
    assert (ov[..., 3][mine] == int(0.6 * 255)).all()
    assert (ov[..., 3][~mine] == 0).all()
    window.state.set_color(sid, (255, 0, 0))
    qtbot.wait(40)
    assert tuple(window.canvas.overlay.image[y, x, :3]) == (255, 0, 0)


def test_scrubbing_500_steps_ends_on_the_last_slice(qtbot, window):
    lo, hi = window.display.z_bounds()
    rng = np.random.default_rng(5)
    z = window.display.z
    for _ in range(500):
        z = int(np.clip(z + rng.choice([-3, -1, 1, 2, 10]), lo, hi))
        window.set_z(z)  # no waiting between steps
    qtbot.waitUntil(
        lambda: (
            window.display.complete
            and window.display.shown is not None
            and window.display.shown.key.z0 + window.display.shown.zi
            == window.display.z_at_mip(window.display.region)
        ),
        timeout=60000,
    )
    assert window.display.z == z and window.zpanel.slider.value() == z
    slab, zi = window.display.current_slab()
    img, _ = _truth_slice(window, slab, zi)
    np.testing.assert_array_equal(window.canvas.em.image, img)
    assert window.display.draw_count < 500  # redraws were coalesced, not queued


def test_keyboard_and_wheel_step_z(qtbot, window):
    z0 = window.display.z
    window.canvas.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Up)
    assert window.display.z == z0 + 1
    qtbot.keyClick(window, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ShiftModifier)
    assert window.display.z == z0 + 1 - 10
    window.canvas.zStepRequested.emit(1)
    assert window.display.z == z0 - 8


def test_play_advances_z(qtbot, window):
    z0 = window.display.z
    window.zpanel.fps.setValue(60)
    window.zpanel.play.setChecked(True)
    qtbot.waitUntil(lambda: window.display.z >= z0 + 3, timeout=5000)
    window.zpanel.play.setChecked(False)


def test_bad_source_shows_error_and_window_stays_usable(qtbot, window, tmp_path):
    from imagery_gui.qt.dialogs import OpenRequest

    shown_before = window.display.shown
    with qtbot.waitSignal(window.errorShown, timeout=20000) as sig:
        window.open_sources(OpenRequest(str(tmp_path / "nope"), None, None, None))
    assert "no such folder" in sig.args[0]
    assert window.display.shown == shown_before  # the old view is still there
    z = window.display.z
    window.step_z(1)
    qtbot.waitUntil(lambda: window.display.complete and window.display.z == z + 1)
    for box in window.findChildren(QMessageBox, "errorBox"):
        box.close()


def test_export_from_window_matches_the_exporter(qtbot, window, tmp_path):
    from PIL import Image

    from imagery_gui.model.export import make_figure

    slab, _zi = window.display.current_slab()
    window.add_ids([int(slab.ids[1]), int(slab.ids[2])])
    spec = window.figure_spec()
    job = window.figures.run_export(spec, str(tmp_path / "view.png"))
    with qtbot.waitSignal(job.done, timeout=60000):
        pass
    png = np.asarray(Image.open(tmp_path / "view.png").convert("RGB"))
    expected = np.asarray(make_figure(window.state.dataset, spec).slices[0].convert("RGB"))
    np.testing.assert_array_equal(png, expected)
    assert (tmp_path / "view.json").is_file()
    # The figure shows what the window shows: same EM pixels for the visible area.
    reg = window.display.region
    assert spec.image_mip == reg.image_mip


def test_copy_image_to_clipboard(qtbot, window):
    from PySide6.QtGui import QGuiApplication

    job = window.figures.copy_image()
    with qtbot.waitSignal(job.done, timeout=60000):
        pass
    qtbot.waitUntil(lambda: not QGuiApplication.clipboard().image().isNull())
    img = QGuiApplication.clipboard().image()
    spec = window.figure_spec()
    w = int(spec.bounds[1][0] - spec.bounds[0][0])
    assert img.width() == w


def test_zoom_out_uses_a_coarser_mip(qtbot, window):
    mip0 = window.display.region.image_mip
    cx, cy = window.canvas.center_nm()
    window.canvas.show_nm(cx, cy, 4 * 4.0)  # 16 nm per screen pixel
    qtbot.waitUntil(
        lambda: window.display.region.image_mip == 2 and window.display.complete, timeout=30000
    )
    assert window.display.region.image_mip > mip0
    assert window.canvas.em.image.shape[0] < 1024


@pytest.mark.parametrize(
    "corrupt", ["{not json", "[1, 2]", '{"alpha": "high", "width": 3.7, "recent": 5}']
)
def test_bad_settings_never_block_startup(qtbot, tmp_path, monkeypatch, corrupt):
    import warnings

    from imagery_gui.app import create_window
    from imagery_gui.settings import Settings

    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "settings.json").write_text(corrupt)
    monkeypatch.setenv("IMAGERY_GUI_SETTINGS_DIR", str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Settings.load()
    win = create_window(settings=s)
    qtbot.addWidget(win)
    assert win.state.style.alpha == 0.2 and isinstance(win.state.style.width, int)
    win.close()
    assert Settings.load().style["alpha"] == 0.2  # rewritten as valid JSON


def test_settings_persist(qtbot, settings, demo, tmp_path):
    from imagery_gui.app import create_window
    from imagery_gui.settings import Settings

    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.show()
    open_and_wait(qtbot, win, demo.image_source, demo.segmentation_source, list(demo.center))
    win.overlay.alpha.setValue(0.45)
    win.overlay.mode.setCurrentText("outline")
    win.close()
    again = Settings.load()
    assert again.style["alpha"] == pytest.approx(0.45) and again.style["outline"] is True
    assert again.recent[0] == [demo.image_source, demo.segmentation_source]
    assert again.geometry


def test_segmentation_only_dataset(qtbot, settings, synthetic_big):
    from imagery_gui.app import create_window

    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.show()
    open_and_wait(qtbot, win, None, synthetic_big.segmentation, [1096, 2080, 106])
    assert win.canvas.em.image is None and win.canvas.overlay.image is not None
    assert win.display.view_res.tolist() == [8.0, 8.0, 40.0]
    win.close()


def test_big_slices_are_coloured_and_outlined_off_the_gui_thread(qtbot, window, monkeypatch):
    """Slices whose colouring would hold up a frame (a big volume in a big window; here the
    threshold is lowered so that the demo's count) are outlined and coloured by the overlay
    worker, the next one in the direction of travel ahead of time, with the same pixels."""
    import threading

    from imagery_gui.model import render
    from imagery_gui.model.view import outline_display
    from imagery_gui.qt import display as display_mod

    d = window.display
    apply_lut = render.apply_lut
    gui_thread = threading.get_ident()
    in_gui: list[bool] = []

    def spy(lut, index):
        in_gui.append(threading.get_ident() == gui_thread)
        return apply_lut(lut, index)

    monkeypatch.setattr(display_mod, "LUT_GUI_MS", 0.0)
    monkeypatch.setattr(render, "apply_lut", spy)
    window.step_z(1)
    qtbot.waitUntil(lambda: d.complete and d.shown.overlay_ok, timeout=20000)
    slab, zi = d.current_slab()
    np.testing.assert_array_equal(
        window.canvas.overlay.image, apply_lut(d._lut(slab), slab.local[zi])
    )
    assert zi + 1 < slab.key.depth
    qtbot.waitUntil(lambda: d._rgba_key(d._outline_key(slab, zi + 1)) in d._outlines)

    window.overlay.mode.setCurrentText("outline")
    window.overlay.width.setValue(2)
    qtbot.waitUntil(lambda: d.complete and d.geometry.outline and d.geometry.width == 2)
    outline = outline_display(slab.local[zi], d.coloring.visible(slab.ids), d.geometry)
    np.testing.assert_array_equal(window.canvas.overlay.image, apply_lut(d._lut(slab), outline))

    window.overlay.alpha.setValue(0.8)
    qtbot.waitUntil(
        lambda: d.complete and window.canvas.overlay.image[..., 3].max() == int(0.8 * 255)
    )
    assert in_gui and not any(in_gui)  # every colouring ran in the worker
