"""View > Gallery in the real window on the demo volume and its real synapse table (300
sites, 18-digit pre/post root ids), driven by menu actions, key presses and mouse moves."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import psutil
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest


@pytest.fixture
def table_csv(demo, tmp_path):
    """The demo's synapse table, copied so each test has its own review file beside it."""
    path = tmp_path / "tables" / "synapses.csv"
    path.parent.mkdir()
    shutil.copy(demo.synapses, path)
    return path


def _open_table(qtbot, win, path):
    win.sites.open_table(str(path))
    qtbot.waitUntil(
        lambda: win.state.sites is not None and win.state.sites.source.path == str(path),
        timeout=20000,
    )


@pytest.fixture
def gallery(qtbot, window, table_csv):
    """The window with the copied table open and View > Gallery chosen from the menu."""
    _open_table(qtbot, window, table_csv)
    window.act_gallery.trigger()
    g = window.gallery
    qtbot.waitUntil(lambda: g.window is not None and g.window.isVisible(), timeout=5000)
    qtbot.waitExposed(g.window)
    _wait_tiles(qtbot, g)
    return window, g


def _wait_tiles(qtbot, g, timeout=60000):
    """Until every tile on screen has its picture."""

    def drawn():
        first, last = g.window.grid.visible_positions()
        rows = g.window.model.rows[first : last + 1]
        return len(rows) > 0 and all(g.picture(int(r)) is not None for r in rows)

    qtbot.waitUntil(drawn, timeout=timeout)


def _key(qtbot, widget, key, text=""):
    QTest.keyClick(widget, key)
    qtbot.wait(10)


def _move(widget, point):
    """A mouse move as the window system delivers it (QTest.mouseMove only moves the cursor,
    which the offscreen platform does not turn into events)."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    local = QPointF(point)
    event = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        local,
        QPointF(widget.mapToGlobal(point)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


def _review_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _qimage_rgb(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGBA8888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4)[..., :3].copy()


def test_view_gallery_shows_a_tile_per_site_as_export_makes_it(qtbot, gallery, table_csv, tmp_path):
    """Each tile is the site's figure exactly as `imagery-gui export --sites --site` makes it
    with the window's style (one voxel per pixel, the site's partners selected)."""
    win, g = gallery
    table = win.state.sites
    assert g.window.model.rowCount() == len(table) == 300
    # the first tiles may be made in this process while the pool starts: once it has,
    # make them all again there
    qtbot.waitUntil(lambda: g.renderer.signals.pool_ready, timeout=60000)
    g.restyle()
    _wait_tiles(qtbot, g)
    first, last = g.window.grid.visible_positions()
    assert last - first + 1 >= 12  # a grid, not a list
    row = int(g.window.model.rows[3])
    tile = _qimage_rgb(g.picture(row))
    st = win.state.style
    out = tmp_path / "site.png"
    argv = [
        "--demo",
        "--sites",
        str(table_csv),
        "--site",
        str(table.id_of(row)),
        "--size",
        str(g.window.tile.value()),
        str(g.window.tile.value()),
        "--selected-alpha",
        str(st.selected_alpha),
        "--alpha",
        str(st.alpha),
        "--palette",
        st.palette,
        "--color-seed",
        str(st.color_seed),
        "--color-by",
        st.color_by,
        "--quiet",
        "-o",
        str(out),
    ]
    if st.show_unselected:
        argv.append("--all-segments")
    if st.outline:
        argv += ["--outline", "--width", str(st.width), "--side", st.side]
        if not st.merge_outline:
            argv.append("--no-merge-outline")
    res = subprocess.run(
        [sys.executable, "-m", "imagery_gui", "export", *argv],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr
    want = np.asarray(Image.open(out).convert("RGB"))
    assert tile.shape == want.shape
    assert np.array_equal(tile, want)


def test_verdict_keys_mark_tiles_and_save_each_decision_at_once(qtbot, gallery, table_csv):
    win, g = gallery
    grid = g.window.grid
    grid.setFocus()
    grid.setCurrentIndex(g.window.model.index(0))
    table = win.state.sites
    _key(qtbot, grid, Qt.Key.Key_1)  # real, and on to the next tile
    assert grid.currentIndex().row() == 1
    _key(qtbot, grid, Qt.Key.Key_2)  # false positive
    _key(qtbot, grid, Qt.Key.Key_Left)
    _key(qtbot, grid, Qt.Key.Key_Down)  # one row of tiles further
    down = grid.currentIndex().row()
    assert down == 1 + grid.columns()
    _key(qtbot, grid, Qt.Key.Key_3)  # unsure
    assert grid.currentIndex().row() == down + 1
    _key(qtbot, grid, Qt.Key.Key_Left)
    review_file = table_csv.with_name("synapses.review.csv")
    rows = {r["site_id"]: r for r in _review_rows(review_file)}  # on disk already
    names = [str(table.id_of(int(g.window.model.rows[p]))) for p in (0, 1, down)]
    assert [rows[n]["verdict"] for n in names] == ["real", "false positive", "unsure"]
    assert g.window.grid.verdict_codes[int(g.window.model.rows[0])] == 1
    assert "Reviewed 3 of 300" in g.window.progress.text()
    _key(qtbot, grid, Qt.Key.Key_0)  # clears the focused one
    rows = {r["site_id"]: r for r in _review_rows(review_file)}
    assert names[2] not in rows and "Reviewed 2 of 300" in g.window.progress.text()


def test_a_note_and_tags_by_keyboard(qtbot, gallery, table_csv):
    win, g = gallery
    grid = g.window.grid
    grid.setFocus()
    grid.setCurrentIndex(g.window.model.index(5))
    _key(qtbot, grid, Qt.Key.Key_N)
    assert g.window.note.hasFocus()
    QTest.keyClicks(g.window.note, 'cleft unclear, "maybe" two')
    _key(qtbot, g.window.note, Qt.Key.Key_Return)
    assert grid.hasFocus()
    _key(qtbot, grid, Qt.Key.Key_T)
    QTest.keyClicks(g.window.tags, "figure, check-later")
    _key(qtbot, g.window.tags, Qt.Key.Key_Return)
    _key(qtbot, grid, Qt.Key.Key_N)  # Esc leaves the note as it was
    QTest.keyClicks(g.window.note, " and more")
    _key(qtbot, g.window.note, Qt.Key.Key_Escape)
    row = int(g.window.model.rows[5])
    d = g.review.decision(row)
    assert d.note == 'cleft unclear, "maybe" two' and d.tags == ("figure", "check-later")
    saved = {r["site_id"]: r for r in _review_rows(g.review.path)}
    site = str(win.state.sites.id_of(row))
    assert saved[site]["note"] == 'cleft unclear, "maybe" two'
    assert g.window.note.text() == 'cleft unclear, "maybe" two'


def test_a_review_resumes_after_a_restart(qtbot, gallery, settings, table_csv):
    from imagery_gui.app import create_window
    from tests.qt.conftest import open_and_wait

    win, g = gallery
    grid = g.window.grid
    grid.setFocus()
    for p, key in ((0, Qt.Key.Key_1), (1, Qt.Key.Key_2), (7, Qt.Key.Key_1)):
        grid.setCurrentIndex(g.window.model.index(p))
        _key(qtbot, grid, key)
    picked = [int(g.window.model.rows[p]) for p in (0, 1, 7)]
    win.close()

    again = create_window(settings=settings)
    qtbot.addWidget(again)
    again.show()
    demo = win.opened_request
    open_and_wait(qtbot, again, demo.image_source, demo.segmentation_source)
    _open_table(qtbot, again, table_csv)
    again.act_gallery.trigger()
    g2 = again.gallery
    qtbot.waitUntil(lambda: g2.review is not None, timeout=5000)
    assert [int(g2.window.grid.verdict_codes[r]) for r in picked] == [1, 2, 1]
    assert "Reviewed 3 of 300" in g2.window.progress.text()
    grid2 = g2.window.grid
    assert grid2.currentIndex().row() == 2  # resumed on the first site not judged
    grid2.setFocus()
    grid2.setCurrentIndex(g2.window.model.index(6))
    _key(qtbot, grid2, Qt.Key.Key_U)  # the next not judged: 7 was
    assert grid2.currentIndex().row() == 8
    again.close()


def test_a_review_file_of_another_table_is_refused(qtbot, gallery, table_csv, tmp_path):
    from imagery_gui.model.review import Review
    from imagery_gui.model.sites import read_sites

    win, g = gallery
    other_csv = tmp_path / "other.csv"
    df = pd.read_csv(table_csv).iloc[:40]
    df["id"] = df["id"] + 5000
    df.to_csv(other_csv, index=False)
    other = read_sites(str(other_csv), resolution=win.state.sites.resolution)
    foreign = tmp_path / "foreign.review.csv"
    Review.open(other, foreign).set_verdict(0, "real")
    before = foreign.read_bytes()
    current = g.review.path
    assert g.open_review(str(foreign)) is False
    assert "another table" in win.last_error or "other table" in win.last_error
    assert g.review.path == current  # the review goes on where it was
    assert foreign.read_bytes() == before  # and the foreign file is untouched
    grid = g.window.grid
    grid.setFocus()
    grid.setCurrentIndex(g.window.model.index(0))
    _key(qtbot, grid, Qt.Key.Key_1)  # still usable
    assert g.review.progress()[0] == 1


def test_the_gallery_follows_the_dock_sort_and_filter(qtbot, gallery):
    win, g = gallery
    panel = win.sites.panel
    panel.sort_by("size", descending=True)
    assert list(g.window.model.rows) == list(panel.model.rows)
    sizes = win.state.sites.column("size")[g.window.model.rows]
    assert (np.diff(sizes.astype(float)) <= 0).all()
    pre = str(win.state.sites.pre_root[int(panel.model.rows[0])])
    panel.filter_text.setFocus()
    QTest.keyClicks(panel.filter_text, pre)
    qtbot.waitUntil(lambda: len(g.window.model.rows) < 300, timeout=5000)
    assert list(g.window.model.rows) == list(panel.model.rows)
    assert f"{len(panel.model.rows)} shown" in g.window.progress.text()
    _wait_tiles(qtbot, g)


def test_enter_opens_the_site_and_the_main_view_keeps_the_gallery_in_step(qtbot, gallery):
    win, g = gallery
    grid = g.window.grid
    grid.setFocus()
    grid.setCurrentIndex(g.window.model.index(4))
    _key(qtbot, grid, Qt.Key.Key_Return)
    row = int(g.window.model.rows[4])
    assert win.state.current_site == row
    assert win.state.z == int(np.floor(win.state.site_center_nm(row)[2] / win.state.resolution[2]))
    win.state.step_site(1)  # the main view's ]
    assert grid.currentIndex().row() == 5


def test_hovering_a_tile_scrubs_through_sections(qtbot, gallery):
    from imagery_gui.model.state import z_bounds

    win, g = gallery
    grid = g.window.grid
    k = g.window.scrub.value()
    lo, hi = z_bounds(win.state.dataset)
    rz = win.state.resolution[2]
    pos = next(  # a tile whose site is at least k sections from the volume's ends
        p
        for p in range(len(g.window.model.rows))
        if lo + k
        <= int(np.floor(win.state.site_center_nm(int(g.window.model.rows[p]))[2] / rz))
        <= hi - k
    )
    index = g.window.model.index(pos)
    grid.scrollTo(index)
    _wait_tiles(qtbot, g)
    rect = grid.visualRect(index)
    row = int(g.window.model.rows[pos])
    flat = _qimage_rgb(g.picture(row))
    y = rect.y() + rect.height() // 2
    _move(grid.viewport(), QPoint(rect.x() + 2, y))
    qtbot.waitUntil(lambda: g.hover is not None and g.hover[0] == row)
    from imagery_gui.qt.gallery import TileKey

    qtbot.waitUntil(lambda: TileKey(g.epoch, row, -k) in g.cache, timeout=30000)
    left = _qimage_rgb(g.picture(row))
    assert not np.array_equal(left, flat)  # k sections above, not the site's own
    _move(grid.viewport(), QPoint(rect.x() + rect.width() // 2, y))
    qtbot.waitUntil(lambda: g.hover is not None and abs(g.hover[1] - 0.5) < 0.1)
    assert np.array_equal(_qimage_rgb(g.picture(row)), flat)
    epoch, tiles = g.epoch, len([k for k in g.cache._items if k.dz == 0])
    g.window.scrub.setValue(2)  # a smaller range: the stack is made again, the tiles kept
    assert g.epoch == epoch and len([k for k in g.cache._items if k.dz == 0]) == tiles
    _move(grid.viewport(), QPoint(rect.x() + 2, y))
    qtbot.waitUntil(lambda: TileKey(g.epoch, row, -2) in g.cache, timeout=30000)
    assert TileKey(g.epoch, row, -k) not in g.cache


def test_contact_sheet_and_reviewed_table_from_the_gallery(qtbot, gallery, tmp_path):
    win, g = gallery
    grid = g.window.grid
    grid.setFocus()
    grid.setCurrentIndex(g.window.model.index(0))
    _key(qtbot, grid, Qt.Key.Key_1)
    for p in (0, 1, 2, 3):
        grid.selectionModel().select(
            g.window.model.index(p), grid.selectionModel().SelectionFlag.Select
        )
    assert len(g.sheet_rows()) == 4
    sheet = tmp_path / "sheet.png"
    job = g.contact_sheet(str(sheet))
    qtbot.waitUntil(lambda: not job.running, timeout=60000)
    with Image.open(sheet) as im:
        assert im.info.get("dpi", (0, 0))[0] == pytest.approx(300, abs=1)
        t = g.window.tile.value()
        assert im.width >= 2 * t and im.height >= 2 * t
    out = tmp_path / "reviewed.parquet"
    job = g.export_table(str(out))
    qtbot.waitUntil(lambda: not job.running, timeout=30000)
    df = pd.read_parquet(out)
    assert len(df) == 300
    first = str(win.state.sites.id_of(int(g.window.model.rows[0])))
    assert df.loc[df["id"].astype(str) == first, "verdict"].tolist() == ["real"]


def test_gallery_on_the_command_line(qtbot, settings, table_csv, monkeypatch):
    from imagery_gui.app import window_from_args
    from imagery_gui.cli import viewer_parser

    args = viewer_parser().parse_args(["--demo", "--sites", str(table_csv), "--gallery"])
    win = window_from_args(args)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(
        lambda: win.gallery.window is not None and win.gallery.window.isVisible(), timeout=60000
    )
    assert win.gallery.window.model.rowCount() == 300
    assert str(win.gallery.review.path) == str(table_csv.with_name("synapses.review.csv"))
    win.close()


def test_without_a_site_table_the_gallery_says_what_to_do(qtbot, window):
    window.state.set_sites(None)
    window.act_gallery.trigger()
    assert "open one first" in window.last_error
    assert window.gallery.window is None or not window.gallery.window.isVisible()


_REVIEWER = """
import sys
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from imagery_gui.app import make_app, window_from_args
from imagery_gui.cli import viewer_parser

app = make_app()
win = window_from_args(viewer_parser().parse_args(["--demo", "--sites", sys.argv[1], "--gallery"]))
win.show()
keys = (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3)

def review():
    g = win.gallery
    if g.window is None or g.review is None:
        QTimer.singleShot(100, review)
        return
    grid = g.window.grid
    for i in range(len(g.window.model.rows)):
        grid.setCurrentIndex(g.window.model.index(i))
        QTest.keyClick(grid, keys[i % 3])  # returns once the decision is saved
        row = int(g.window.model.rows[i])
        print(g.window.model.names[row], g.verdicts[i % 3], flush=True)
        app.processEvents()

QTimer.singleShot(100, review)
app.exec()
"""


def test_killing_the_app_mid_review_loses_no_decision_it_made(tmp_path, table_csv, demo):
    """The real app reviews by key presses in a child process and is SIGKILLed mid-review:
    the review file reads back, and every decision the app had made (printed after its
    key press returned) is in it; the app's tile processes end soon after it."""
    import os
    import signal

    from imagery_gui.model.review import Review
    from imagery_gui.model.sites import read_sites

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env["IMAGERY_GUI_SETTINGS_DIR"] = str(tmp_path / "child-settings")
    proc = subprocess.Popen(
        [sys.executable, "-c", _REVIEWER, str(table_csv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    made = []
    try:
        while len(made) < 60:
            line = proc.stdout.readline()
            assert line, "the reviewing app ended before it was killed"
            made.append(line.split(" ", 1))
        # the gallery's tile processes (the pool starts with the first tiles asked for)
        workers: list[psutil.Process] = []
        deadline = time.monotonic() + 60
        while not workers and time.monotonic() < deadline:
            workers = [p for p in psutil.Process(proc.pid).children() if _is_tile_process(p)]
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert workers, "the app had no tile processes to leave behind"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(p) for p in workers):
        time.sleep(0.2)
    assert not [p for p in workers if _running(p)], "tile processes outlived the killed app"
    table = read_sites(str(table_csv), resolution=(4, 4, 40))
    review = Review.open(table, table_csv.with_name("synapses.review.csv"))
    for name, verdict in made:
        d = review.decision(table.index_of(int(name)))
        assert d is not None and d.verdict == verdict.strip(), name
    assert review.progress()[0] >= len(made)


def _is_tile_process(p: psutil.Process) -> bool:
    try:
        return "spawn_main" in " ".join(p.cmdline())
    except psutil.Error:  # gone meanwhile
        return False


def _running(p: psutil.Process) -> bool:
    """Running: not gone, and not a zombie waiting for its new parent to reap it."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_the_tile_cache_keeps_to_its_budget():
    from imagery_gui.qt.gallery import TileCache, TileKey

    img = QImage(100, 100, QImage.Format.Format_RGBA8888)  # 40,000 bytes
    cache = TileCache(budget=200_000)
    for k in range(20):
        cache.put(TileKey(1, k), img)
        cache.get(TileKey(1, 0))  # the first one stays in use
    assert cache.bytes <= 200_000 and len(cache) == 5
    assert TileKey(1, 0) in cache and TileKey(1, 19) in cache and TileKey(1, 1) not in cache
    cache.put(TileKey(1, 19, -2), img)
    cache.drop_stacks()  # another scrub range: the sections either side go, the tiles stay
    assert TileKey(1, 19, -2) not in cache and TileKey(1, 19) in cache
    assert cache.bytes == 40_000 * len(cache)
