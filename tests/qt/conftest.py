"""Fixtures for driving the real window with pytest-qt on real Precomputed volumes."""

from __future__ import annotations

import numpy as np
import pytest

from imagery_gui.settings import Settings


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("IMAGERY_GUI_SETTINGS_DIR", str(tmp_path / "settings"))
    return Settings()


def open_and_wait(
    qtbot, win, image_source, segmentation_source, center=None, root_ids=None, timeout=60000
):
    from imagery_gui.qt.dialogs import OpenRequest

    with qtbot.waitSignal(win.datasetOpened, timeout=timeout):
        win.open_sources(
            OpenRequest(image_source, segmentation_source, center, None), root_ids=root_ids
        )
    qtbot.waitUntil(lambda: win.display.complete, timeout=timeout)


@pytest.fixture
def window(qtbot, settings, demo):
    """The main window on the demo volume, first slice drawn."""
    from imagery_gui.app import create_window

    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.resize(1100, 760)
    win.show()
    qtbot.waitExposed(win)
    open_and_wait(qtbot, win, demo.image_source, demo.segmentation_source, list(demo.center))
    yield win
    win.close()


def scene_point(win, x_nm: float, y_nm: float):
    """Widget coordinates (in the canvas viewport) of a point given in nm."""
    from PySide6.QtCore import QPointF

    scene = win.canvas.viewbox.mapViewToScene(QPointF(x_nm, y_nm))
    return win.canvas.mapFromScene(scene)


def voxel_center_nm(win, slab, zi, y, x):
    reg = slab.key.region
    return ((reg.lo[0] + x + 0.5) * reg.resolution[0], (reg.lo[1] + y + 0.5) * reg.resolution[1])


def pick_pixel(slab, zi, rng=None):
    """A pixel well inside a large segment (so a click cannot miss it)."""
    from scipy import ndimage

    local = slab.local[zi]
    counts = np.bincount(local.ravel())
    counts[0] = 0
    big = int(np.argmax(counts))
    inside = ndimage.binary_erosion(local == big, iterations=6)
    ys, xs = np.nonzero(inside)
    k = len(ys) // 2
    return int(ys[k]), int(xs[k]), int(slab.ids[big])
