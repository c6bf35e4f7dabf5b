"""The real window and its one viewer state: File > Export equals ``imagery-gui export``
pixel for pixel, finished jobs are released, the disk-cache toggle does no I/O on the GUI
thread, and damaged settings never make the controls disagree with the picture.

pytest-qt on real Precomputed volumes, the real command line in a subprocess; no mocks."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QColorDialog, QProgressDialog

from imagery_gui.model.export import FigureSpec
from imagery_gui.model.inputs import OpenRequest
from imagery_gui.model.ngl import make_link, make_state
from imagery_gui.model.palette import to_hex
from tests.helpers.http_server import LoopbackServer
from tests.qt.conftest import open_and_wait, pick_pixel


def _run_export(*args, timeout=180):
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    res = subprocess.run(
        [sys.executable, "-m", "imagery_gui", "export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    return res


def _png(path):
    return np.asarray(Image.open(path).convert("RGBA"))


def _export_from_window(qtbot, win, spec, path):
    job = win.figures.run_export(spec, str(path))
    with qtbot.waitSignal(job.done, timeout=60000):
        pass
    assert path.is_file(), win.last_error
    return _png(path)


def _cli_for(win, spec) -> list:
    """The ``imagery-gui export`` options for the same sources, ids, style and region."""
    st, inputs = spec.style, win.state.inputs
    (x0, y0, z0), (x1, y1, z1) = spec.bounds
    args: list = [
        "--image-source", inputs.image_source,
        "--segmentation-source", inputs.segmentation_source,
        "--bounds", x0, y0, z0, x1, y1, z1,
        "--resolution", *spec.resolution,
        "--image-mip", spec.image_mip,
        "--segmentation-mip", spec.segmentation_mip,
        "--alpha", st.alpha,
        "--selected-alpha", st.selected_alpha,
        "--palette", st.palette,
    ]  # fmt: skip
    if spec.selection.ids:
        args += ["--root-ids", *spec.selection.ids]
        if st.show_unselected:
            args.append("--all-segments")
    if st.outline:
        args += ["--outline", "--width", st.width, "--side", st.side]
        if not st.merge_outline:
            args.append("--no-merge-outline")
    if st.palette == "neuroglancer":
        args += ["--color-seed", st.color_seed]
    if spec.selection.colors:
        args += ["--colors", *(f"{sid}={to_hex(rgb)}" for sid, rgb in spec.selection.colors)]
    return args


def _two_ids(win):
    """Two segments in the visible area: the one at the centre and another near it."""
    x0, y0, x1, y1 = win.canvas.visible_nm()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    found: list[int] = []
    for f in (0.0, 0.1, -0.1, 0.2, -0.2, 0.3):
        sid = win.display.id_at_nm(cx + f * (x1 - x0), cy + f * (y1 - y0))
        if sid and sid not in found:
            found.append(sid)
    assert len(found) >= 2, found
    return found[0], found[1]


def _type_ids(qtbot, win, ids):
    entry = win.segments.entry
    entry.clear()
    qtbot.keyClicks(entry, ", ".join(str(i) for i in ids))
    qtbot.keyClick(entry, Qt.Key.Key_Return)
    assert win.state.selection.ids == tuple(ids)


def _choose_palette(qtbot, win, name):
    edit = win.overlay.palette.lineEdit()
    edit.selectAll()
    qtbot.keyClicks(edit, name)
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert win.state.style.palette == name


def _recolour_through_the_dialog(qtbot, win, sid, hex_color):
    """Double-click the id in the Segments list and pick a colour in the real dialog."""
    lst = win.segments.list
    item = next(
        lst.item(i) for i in range(lst.count()) if lst.item(i).text() == str(sid)
    )  # the list shows the id in full
    chosen = []

    def pick(tries=200):
        dlg = QApplication.activeModalWidget()
        if not isinstance(dlg, QColorDialog):
            if tries:
                QTimer.singleShot(20, lambda: pick(tries - 1))
            return
        chosen.append((dlg.windowTitle(), dlg.currentColor().name()))
        dlg.setCurrentColor(QColor(hex_color))
        dlg.accept()

    QTimer.singleShot(20, pick)
    pos = lst.visualItemRect(item).center()
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=pos)  # a double click
    qtbot.mouseDClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=pos)  # is press + dbl
    assert chosen and chosen[0][0] == f"Colour of {sid}", chosen
    return chosen[0][1]


def _set_style(qtbot, win, case, ids):
    ov = win.overlay
    if case == "fill husl":
        ov.alpha.setValue(0.35)
        ov.selected_alpha.setValue(0.7)
    elif case == "outline in width 3":
        ov.mode.setCurrentText("outline")
        ov.width.setValue(3)
        ov.side.setCurrentText("in")
        ov.merge.setChecked(False)
        ov.selected_alpha.setValue(0.9)
    elif case == "neuroglancer seed 7":
        _choose_palette(qtbot, win, "neuroglancer")
        ov.seed.setValue(7)
        win.segments.show_selected.setChecked(True)  # only the selected ones
    elif case == "explicit colour":
        before = to_hex(win.state.segment_colors()[ids[1]])
        opened_at = _recolour_through_the_dialog(qtbot, win, ids[1], "#12ab34")
        assert opened_at == before  # the dialog opens at the colour the id is drawn in
        assert win.state.selection.explicit == {ids[1]: (0x12, 0xAB, 0x34)}


@pytest.mark.parametrize(
    "case", ["fill husl", "outline in width 3", "neuroglancer seed 7", "explicit colour"]
)
def test_file_export_equals_the_command_line(qtbot, window, tmp_path, case):
    win = window
    ids = _two_ids(win)
    _type_ids(qtbot, win, ids)
    _set_style(qtbot, win, case, ids)
    qtbot.waitUntil(lambda: win.display.complete, timeout=30000)
    spec = win.figure_spec()
    drawn = win.display.coloring
    assert drawn.style == spec.style and drawn.selection == spec.selection  # what is shown
    gui = _export_from_window(qtbot, win, spec, tmp_path / "gui.png")
    _run_export(*_cli_for(win, spec), "-o", tmp_path / "cli.png")
    cli = _png(tmp_path / "cli.png")
    np.testing.assert_array_equal(gui, cli)
    # the two provenance files describe the same figure
    pg = json.loads((tmp_path / "gui.json").read_text())
    pc = json.loads((tmp_path / "cli.json").read_text())
    assert pg["segments"] == pc["segments"] and pg["selection"] == pc["selection"]
    assert pg["bounds"] == pc["bounds"] and pg["mips"] == pc["mips"]
    colours = {s["id"]: s["color"] for s in pg["segments"]}
    shown = win.state.segment_colors()  # the swatches
    assert {str(k): to_hex(v) for k, v in shown.items()} == {str(i): colours[str(i)] for i in ids}


def test_a_link_opened_in_the_window_and_exported_equals_export_ngl_url(
    qtbot, settings, demo, tmp_path
):
    from imagery_gui.app import create_window
    from imagery_gui.model.dataset import Dataset
    from imagery_gui.model.export import make_figure

    center = [int(v) for v in demo.center]
    ids = make_figure(
        Dataset(demo.image_source, demo.segmentation_source),
        FigureSpec.from_center(center, (160, 120)),
    ).ids
    state = make_state(
        center=center,
        resolution=list(demo.resolution),
        image_source=demo.image_source,
        segmentation_source=demo.segmentation_source,
        segments=ids[:3],
        segment_colors={ids[1]: (255, 0, 0)},
        selected_alpha=0.75,
        not_selected_alpha=0.15,
        color_seed=7,
    )
    state["layers"][-1]["segments"].append(f"!{ids[3]}")  # a hidden one
    link = make_link(state)

    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.resize(900, 650)
    win.show()
    with qtbot.waitSignal(win.datasetOpened, timeout=60000):
        win.open_sources(OpenRequest(None, None, None, None, ngl_url=link))
    qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
    st = win.state.style
    assert (st.palette, st.color_seed, st.selected_alpha, st.alpha) == (
        "neuroglancer", 7, 0.75, 0.15,
    )  # fmt: skip
    assert win.state.selection.ids == tuple(ids[:3])
    assert win.overlay.values()["palette"] == "neuroglancer"
    assert win.overlay.values()["color_seed"] == 7

    view = win.figure_spec()
    box = FigureSpec.from_center(win.state.inputs.center, (160, 120)).bounds
    spec = dataclasses.replace(view, bounds=box)
    gui = _export_from_window(qtbot, win, spec, tmp_path / "gui.png")
    _run_export(
        "--ngl-url", link, "--size", 160, 120,
        "--image-mip", spec.image_mip, "--segmentation-mip", spec.segmentation_mip,
        "-o", tmp_path / "cli.png",
    )  # fmt: skip
    np.testing.assert_array_equal(gui, _png(tmp_path / "cli.png"))
    win.close()


def test_fifty_exports_and_copies_leave_no_jobs_or_old_datasets(
    qtbot, window, tmp_path, synthetic_big
):
    win = window
    cx, cy = win.canvas.center_nm()
    win.canvas.show_nm(cx, cy, 1.0)  # zoomed in: small figures, quick jobs
    qtbot.waitUntil(lambda: win.display.complete, timeout=30000)
    win.add_ids(_two_ids(win))
    first = weakref.ref(win.state.dataset)
    jobs = []
    for i in range(50):
        if i % 2:
            job = win.figures.copy_image()
        else:
            job = win.figures.run_export(win.figure_spec(), str(tmp_path / f"f{i}.png"))
        jobs.append(weakref.ref(job))
        with qtbot.waitSignal(job.done, timeout=60000):
            pass
        del job
    assert len(list(tmp_path.glob("f*.png"))) == 25
    assert not win.last_error
    qtbot.waitUntil(lambda: not win.jobs.active, timeout=10000)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert win.findChildren(QProgressDialog) == []  # each export's dialog went with it

    open_and_wait(qtbot, win, synthetic_big.image, synthetic_big.segmentation, [2192, 4160, 103])
    qtbot.waitUntil(lambda: not win.jobs.active, timeout=10000)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    from imagery_gui.qt.jobs import Job

    assert [j for j in jobs if j() is not None] == []
    assert [o for o in gc.get_objects() if isinstance(o, Job)] == []
    assert first() is None, gc.get_referrers(first())


@pytest.fixture
def disk_cache():
    """The disk cache folder is the test session's: leave it empty for the other tests."""
    from imagery_gui.model import diskcache

    diskcache.clear_cache()
    yield
    diskcache.clear_cache()


def test_disk_cache_toggle_does_no_io_on_the_gui_thread(qtbot, settings, synthetic_big, disk_cache):
    """The reopen reads ``info`` again, in the background: with 300 ms per request, an
    ``info`` read on the GUI thread would stop it for at least that long."""
    from imagery_gui.app import create_window

    latency = 0.3
    with LoopbackServer(synthetic_big.image_path.parent, latency=latency) as srv:
        win = create_window(settings=settings)
        qtbot.addWidget(win)
        win.resize(800, 600)
        win.show()
        with qtbot.waitSignal(win.datasetOpened, timeout=90000):
            win.open_sources(
                OpenRequest(
                    srv.source("image"),
                    srv.source("segmentation"),
                    [2192, 4160, 103],
                    None,
                    timestamp="2024-06-01T12:00:00Z",
                )
            )
        qtbot.waitUntil(lambda: win.display.complete, timeout=90000)
        # Not a graphene volume, so the checkbox is disabled; the state still goes to
        # supervoxel mode, and a reopen must keep it.
        win.segments.supervoxels.setChecked(True)
        assert win.state.supervoxels and not win.display.agglomerate
        win.set_z(105)
        qtbot.waitUntil(lambda: win.display.complete, timeout=90000)
        before = (win.display.agglomerate, win.display.timestamp, win.state.z, win.display.z)
        assert before[1] is not None
        n_log = len(srv.log)

        beats: list[float] = []
        heart = QTimer()
        heart.setInterval(5)
        heart.timeout.connect(lambda: beats.append(time.perf_counter()))
        heart.start()
        qtbot.wait(50)
        reopened = []
        assert not win.act_disk_cache.isChecked()
        win.act_disk_cache.trigger()  # the real menu action
        assert win.act_disk_cache.isChecked() and settings.disk_cache
        job = next(j for j in win.jobs.active if j.name == "reopen")
        job.succeeded.connect(reopened.append)
        with qtbot.waitSignal(job.done, timeout=90000):
            pass
        qtbot.waitUntil(lambda: win.display.complete, timeout=90000)
        heart.stop()
        gaps = np.diff(beats)
        assert reopened and win.state.dataset is reopened[0]
        assert gaps.max() < 0.25, (
            f"the GUI thread stopped for {gaps.max() * 1000:.0f} ms while the data was "
            f"reopened: the info read (served with {latency * 1000:.0f} ms latency) must not "
            "run on the GUI thread (a behaviour check, not a speed benchmark)"
        )
        infos = [p for p in srv.log[n_log:] if p.endswith("/info")]
        assert any(p.endswith("image/info") for p in infos), srv.log[n_log:]
        assert any(p.endswith("segmentation/info") for p in infos), srv.log[n_log:]
        after = (win.display.agglomerate, win.display.timestamp, win.state.z, win.display.z)
        assert after == before
        assert win.segments.supervoxels.isChecked() and win.state.supervoxels
        assert win.zpanel.slider.value() == 105
        win.close()


BAD_STYLES = {
    "alpha 7": {"version": 2, "style": {"alpha": 7}},
    "width -3": {"version": 2, "style": {"outline": True, "width": -3}},
    "palette notapalette": {"version": 2, "style": {"palette": "notapalette"}},
    "side x": {"version": 2, "style": {"outline": True, "side": "x"}},
    "color_seed abc": {"version": 2, "style": {"palette": "neuroglancer", "color_seed": "abc"}},
    "v1 alpha 7": {"alpha": 7, "width": 4, "show_all": True},
}


@pytest.mark.parametrize("case", list(BAD_STYLES))
def test_bad_settings_controls_show_what_is_drawn(qtbot, demo, tmp_path, monkeypatch, case):
    from imagery_gui.app import create_window
    from imagery_gui.settings import Settings

    folder = tmp_path / "settings"
    folder.mkdir()
    (folder / "settings.json").write_text(json.dumps(BAD_STYLES[case]))
    monkeypatch.setenv("IMAGERY_GUI_SETTINGS_DIR", str(folder))
    win = create_window(settings=Settings.load())
    qtbot.addWidget(win)
    assert win.status.message().startswith("settings: ")  # the user is told what was fixed
    win.resize(900, 650)
    win.show()
    open_and_wait(qtbot, win, demo.image_source, demo.segmentation_source, list(demo.center))
    drawn = win.display.coloring.style
    assert drawn == win.state.style
    shown = win.overlay.values()
    assert shown == {k: getattr(drawn, k) for k in shown}, (shown, drawn)
    assert win.segments.show_selected.isChecked() == (not drawn.show_unselected)
    assert win.display.geometry == drawn.geometry()
    # the picture: nothing is selected, so a segment is drawn at the unselected alpha
    slab, zi = win.display.current_slab()
    y, x, _sid = pick_pixel(slab, zi)
    ov = win.canvas.overlay.image
    expected = int(drawn.alpha * 255) if drawn.show_unselected else 0
    if drawn.outline:  # the pixel may be inside, away from the outline
        assert set(np.unique(ov[..., 3]).tolist()) <= {0, expected}
        assert (ov[..., 3] == expected).any()
    else:
        assert ov[y, x, 3] == expected
    win.persist_settings = False
    win.close()


def test_a_reopen_that_finishes_after_another_open_does_not_replace_it(
    qtbot, settings, synthetic_big, demo, disk_cache
):
    """Disk cache toggled on slow data, then other data opened before the reopen is back:
    the window keeps showing the data opened last."""
    from imagery_gui.app import create_window

    with LoopbackServer(synthetic_big.image_path.parent, latency=0.3) as srv:
        win = create_window(settings=settings)
        qtbot.addWidget(win)
        win.resize(800, 600)
        win.show()
        open_and_wait(
            qtbot, win, srv.source("image"), srv.source("segmentation"), [2192, 4160, 103]
        )
        reopen = win.settings_menu.set_disk_cache(True)
        with qtbot.waitSignal(win.datasetOpened, timeout=60000):
            win.open_sources(OpenRequest(demo.image_source, demo.segmentation_source, None, None))
        assert reopen.running, "the reopen was expected to be slower than a local open"
        demo_ds = win.state.dataset
        with qtbot.waitSignal(reopen.done, timeout=90000):
            pass
        assert win.state.dataset is demo_ds and win.display.dataset is demo_ds
        assert win.state.inputs.image_source == demo.image_source
        qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
        win.close()
