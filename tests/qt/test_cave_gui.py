"""The viewer with CAVE datastacks, graphene segmentation and Neuroglancer links (local CAVE
server on 127.0.0.1, real caveclient, real cloud-volume)."""

from __future__ import annotations

import json

import numpy as np
from neuroglancer.url_state import parse_url
from PySide6.QtWidgets import QMessageBox

from imagery_gui.model.ngl import make_link, make_state
from imagery_gui.qt.dialogs import OpenRequest
from tests.conftest import CAVE_TOKEN
from tests.helpers.cave_server import NEW_ROOT


def _open(qtbot, win, req, timeout=60000):
    with qtbot.waitSignal(win.datasetOpened, timeout=timeout):
        win.open_sources(req)
    qtbot.waitUntil(lambda: win.display.complete, timeout=timeout)


def _window(qtbot, settings):
    from imagery_gui.app import create_window

    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    return win


def test_open_a_datastack_with_graphene(qtbot, settings, cave, token_file, graphene_table):
    win = _window(qtbot, settings)
    _open(
        qtbot,
        win,
        OpenRequest(
            None,
            None,
            [2192, 4160, 103],
            None,
            datastack="test_stack",
            server_address=cave.url,
            auth_token_file=str(token_file),
        ),
    )
    assert win.state.dataset.segmentation.spec.is_graphene
    assert win.display.view_res.tolist() == [4.0, 4.0, 40.0]
    assert "test_stack" in win.windowTitle()
    slab, _zi = win.display.current_slab()
    shown = set(int(v) for v in slab.ids[1:])
    a, _b = graphene_table.merged
    assert NEW_ROOT in shown and a not in shown  # roots agglomerated now, after the edit
    assert win.segments.supervoxels.isEnabled()

    # An outdated root id is flagged with its successor, and can be updated.
    win.add_ids([a])
    qtbot.waitUntil(lambda: win.segments.update_btn.isVisible(), timeout=20000)
    assert str(NEW_ROOT) in win.segments.outdated.text()
    win.segments.update_btn.click()
    assert list(win.state.selection.ids) == [NEW_ROOT]
    qtbot.waitUntil(lambda: not win.segments.update_btn.isVisible(), timeout=20000)

    # Supervoxels instead of roots.
    win.segments.supervoxels.setChecked(True)
    qtbot.waitUntil(
        lambda: (
            win.display.complete
            and win.display.current_slab() is not None
            and not win.display.current_slab()[0].key.agglomerate
        ),
        timeout=30000,
    )
    slab, _ = win.display.current_slab()
    assert all(int(v) >> 56 == 1 for v in slab.ids[1:])
    win.close()


def test_missing_token_in_the_gui(qtbot, settings, cave):
    win = _window(qtbot, settings)
    with qtbot.waitSignal(win.errorShown, timeout=20000) as sig:
        win.open_sources(
            OpenRequest(None, None, None, None, datastack="test_stack", server_address=cave.url)
        )
    assert "no CAVE token" in sig.args[0] and "save_token" in sig.args[0]
    assert win.state.dataset is None
    for box in win.findChildren(QMessageBox):
        box.close()
    win.close()


def test_open_a_neuroglancer_link(qtbot, settings, synthetic_big):
    ids = [864691135000000003, 864691135000000007]
    state = make_state(
        center=[2192, 4160, 104],
        resolution=[4, 4, 40],
        image_source=synthetic_big.image,
        segmentation_source=synthetic_big.segmentation,
        segments=ids,
        segment_colors={ids[0]: (255, 0, 0)},
        selected_alpha=0.8,
        color_seed=99,
        contrast=(30, 220),
        nm_per_px=8.0,
    )
    link = make_link(state)
    win = _window(qtbot, settings)
    _open(qtbot, win, OpenRequest(None, None, None, None, ngl_url=link))
    assert win.display.z == 104 and list(win.state.selection.ids) == ids
    v = win.overlay.values()
    assert v["palette"] == "neuroglancer" and v["color_seed"] == 99 and v["selected_alpha"] == 0.8
    assert not win.state.style.show_unselected  # Neuroglancer shows the selected segments
    assert win.canvas.levels == (30.0, 220.0)
    assert abs(win.canvas.nm_per_px() - 8.0) < 0.5
    assert win.state.segment_colors()[ids[0]] == (255, 0, 0)

    # ...and the link back out describes the same view.
    out = win.neuroglancer_link()
    ref = parse_url(out)
    assert [int(s) for s in ref.layers["segmentation"].segments] == ids
    assert int(np.floor(ref.position[2])) == 104
    assert ref.layers["segmentation"].color_seed == 99
    win.close()


def test_copy_link_and_provenance_never_hold_the_token(qtbot, settings, cave, token_file, tmp_path):
    from PySide6.QtGui import QGuiApplication

    win = _window(qtbot, settings)
    _open(
        qtbot,
        win,
        OpenRequest(
            None,
            None,
            [2192, 4160, 103],
            None,
            datastack="test_stack",
            server_address=cave.url,
            auth_token_file=str(token_file),
        ),
    )
    win.figures.copy_neuroglancer_link()
    link = QGuiApplication.clipboard().text()
    assert link.startswith("https://neuroglancer.example.org/#!")  # the datastack's viewer site
    assert CAVE_TOKEN not in link
    job = win.figures.run_export(win.figure_spec(), str(tmp_path / "fig.png"))
    with qtbot.waitSignal(job.done, timeout=60000):
        pass
    prov = (tmp_path / "fig.json").read_text()
    assert CAVE_TOKEN not in prov
    data = json.loads(prov)
    assert data["datastack"] == {"name": "test_stack", "server": cave.url}
    assert data["neuroglancer_link"].startswith("https://neuroglancer.example.org/#!")
    win.close()
