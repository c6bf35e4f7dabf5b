"""The viewer's own launch (``app.run_viewer``'s path: ``quick``): the window first, the
first view read by the read process, the rest of the warm-up after it, and the window
still driven by keys while and after that runs."""

from __future__ import annotations

import gc

from PySide6.QtCore import Qt


def test_quick_launch_then_warm_up_after_the_first_view(qtbot, settings, demo):
    from imagery_gui import app as appmod
    from imagery_gui.cli import viewer_parser
    from imagery_gui.model import fetchproc

    # A launch's own process has not imported cloud-volume, so its first view waits for the
    # read process; this test process may have (earlier tests), and would then read here
    # while a read process started by an earlier test's close is still starting.
    assert fetchproc.shared().wait_warm(60)
    args = viewer_parser().parse_args(["--size", "1000", "700"])
    win = appmod.window_from_args(args, settings=settings, quick=True)
    qtbot.addWidget(win)
    warmed = []
    win.firstViewShown.connect(lambda: warmed.append(win.display.complete))
    win.firstViewShown.connect(lambda: appmod.finish_start(win))
    assert win.while_opening is not appmod.settle_heap  # left to finish_start
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: bool(warmed), timeout=120_000)
    assert warmed == [True]  # emitted once, with the view complete
    reader = fetchproc.current()
    assert reader is not None and reader.slabs_received >= 1  # read by the read process
    # the background warm-up ends by freezing the heap and handing opens the settle
    # (the freezing itself is handed to the GUI thread: imagery_gui.qt.heap)
    qtbot.waitUntil(lambda: win.while_opening is appmod.settle_heap, timeout=120_000)
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=10_000)
    # the view answers keys as usual, and firstViewShown does not come again
    z0 = win.state.z
    qtbot.keyClick(win.canvas, Qt.Key.Key_Up)
    qtbot.waitUntil(lambda: win.state.z == z0 + 1 and win.display.complete, timeout=60_000)
    qtbot.keyClick(win.canvas, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: win.state.z == z0 and win.display.complete, timeout=60_000)
    assert warmed == [True]
    win.close()
