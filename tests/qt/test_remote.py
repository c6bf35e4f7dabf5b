"""Remote sources over a loopback HTTP server with latency, failures, missing and corrupt
chunks; long-session bounds. Behaviour only: timings are measured in benchmarks/."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from imagery_gui.model import diskcache
from imagery_gui.qt.dialogs import OpenRequest
from tests.helpers.http_server import LoopbackServer


def _window(qtbot, settings, timeout_s=60.0):
    from imagery_gui.app import create_window

    settings.fetch_timeout_s = timeout_s
    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.resize(900, 650)
    win.show()
    return win


def _open(qtbot, win, image, seg, center, timeout=90000):
    with qtbot.waitSignal(win.datasetOpened, timeout=timeout):
        win.open_sources(OpenRequest(image, seg, center, None))
    qtbot.waitUntil(lambda: win.display.complete, timeout=timeout)


def _quiet(qtbot, server, seconds=0.6):
    """Wait until the server has had no request for ``seconds``."""
    state = {"n": -1, "since": 0}

    def settled():
        import time

        if len(server.log) != state["n"]:
            state["n"], state["since"] = len(server.log), time.monotonic()
            return False
        return time.monotonic() - state["since"] > seconds

    qtbot.waitUntil(settled, timeout=60000)


def _close_boxes(win):
    for box in win.findChildren(QMessageBox):
        box.close()


@pytest.fixture
def served(synthetic_big):
    with LoopbackServer(synthetic_big.image_path.parent, latency=0.01, seed=3) as srv:
        yield srv


def test_failing_requests_are_retried_and_the_view_completes(
    qtbot, settings, synthetic_big, served
):
    served.fail_rate = 0.2
    win = _window(qtbot, settings)
    notes = []
    win.display.activity.connect(notes.append)
    _open(qtbot, win, served.source("image"), served.source("segmentation"), [2192, 4160, 103])
    assert served.counts["failed"] > 0
    assert any("retrying" in n or "trying again" in n for n in notes), notes
    slab, zi = win.display.current_slab()
    from imagery_gui.model.dataset import Dataset

    reg = slab.key.region
    truth = Dataset(synthetic_big.image, synthetic_big.segmentation).read_image(
        [[reg.lo[0], reg.lo[1], slab.key.z0 + zi], [reg.hi[0], reg.hi[1], slab.key.z0 + zi + 1]],
        resolution=reg.resolution,
    )
    np.testing.assert_array_equal(win.canvas.em.image, truth[0])  # complete and correct
    win.close()


def test_leaving_the_volume_while_the_slab_on_screen_is_read_ends_the_busy_state(
    qtbot, settings, served
):
    """A slab the view waits for is read first, and the view then asks for the rest; when
    the view has left the volume meanwhile there is no rest to ask for, and the status
    bar's busy mark must still go."""
    win = _window(qtbot, settings)
    _open(qtbot, win, served.source("image"), served.source("segmentation"), [2192, 4160, 101])
    served.latency = 0.5
    win.display.cache.clear()
    win.step_z(9)  # a slab not in memory: read first, alone
    qtbot.waitUntil(lambda: win.busy.isVisible(), timeout=5000)
    win.nav.go_to((0, 0, 101))  # outside the volume before it arrives
    qtbot.waitUntil(lambda: win.display.complete and win.display.outside, timeout=5000)
    qtbot.waitUntil(lambda: not win.busy.isVisible(), timeout=20000)
    win.close()


def test_a_down_server_gives_an_error_in_bounded_time_and_recovery(qtbot, settings, served):
    win = _window(qtbot, settings, timeout_s=1.5)
    _open(qtbot, win, served.source("image"), served.source("segmentation"), [2192, 4160, 101])
    served.down = True
    win.display.cache.clear()
    with qtbot.waitSignal(win.errorShown, timeout=30000) as sig:
        win.step_z(9)  # a slab that is not in memory
    assert "within 1.5 s" in sig.args[0] or "did not answer" in sig.args[0]
    # The window stays usable: once the server is back, the view loads.
    served.down = False
    win.step_z(1)
    qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
    assert win.display.current_slab() is not None
    _close_boxes(win)
    win.close()


def test_a_hung_server_times_out(qtbot, settings, served):
    win = _window(qtbot, settings, timeout_s=1.0)
    _open(qtbot, win, served.source("image"), served.source("segmentation"), [2192, 4160, 101])
    served.hang = 5.0
    win.display.cache.clear()
    with qtbot.waitSignal(win.errorShown, timeout=30000) as sig:
        win.step_z(9)
    assert "within 1 s" in sig.args[0]
    served.hang = 0.0
    win.close()


def test_opening_a_hung_server_times_out_and_the_window_stays_usable(
    qtbot, settings, served, synthetic_big
):
    win = _window(qtbot, settings, timeout_s=1.0)
    served.hang = 30.0
    with qtbot.waitSignal(win.errorShown, timeout=20000) as sig:
        win.open_sources(
            OpenRequest(
                served.source("image"), served.source("segmentation"), [2192, 4160, 101], None
            )
        )
    assert "Could not open the data" in sig.args[0] and "within 1 s" in sig.args[0]
    assert win.state.dataset is None
    _close_boxes(win)
    served.hang = 0.0
    _open(qtbot, win, served.source("image"), served.source("segmentation"), [2192, 4160, 101])
    assert win.display.current_slab() is not None
    win.close()


@pytest.fixture
def holey(synthetic_big, tmp_path):
    """A copy of the volumes with some chunk files deleted."""
    root = tmp_path / "holey"
    shutil.copytree(synthetic_big.image_path.parent, root)
    removed = []
    for layer, key in (("image", "4_4_40"), ("segmentation", "8_8_40")):
        chunks = sorted(
            p
            for p in (root / layer / key).iterdir()
            if p.name.endswith("_100-108") or "_100-108." in p.name
        )
        victim = chunks[len(chunks) // 2]
        victim.unlink()
        removed.append((layer, victim.name))
    return root, removed


def test_missing_chunks_are_shown_as_missing(qtbot, settings, holey):
    root, _removed = holey
    win = _window(qtbot, settings)
    _open(
        qtbot,
        win,
        f"precomputed://file://{root / 'image'}",
        f"precomputed://file://{root / 'segmentation'}",
        [2192, 4160, 103],
    )
    slab, zi = win.display.current_slab()
    assert slab.missing is not None and slab.missing[zi].any()
    frac = slab.missing_fraction(zi)
    assert 0 < frac < 1
    assert win.canvas.missing.image is not None  # the hatch is drawn
    assert (win.canvas.missing.image[..., 3][slab.missing[zi]] > 0).all()
    assert (win.canvas.missing.image[..., 3][~slab.missing[zi]] == 0).all()
    assert "no data in" in win.missing_label.text()
    # Hovering over missing data says so, rather than "no segment".
    from tests.qt.conftest import scene_point

    ys, xs = np.nonzero(slab.missing[zi])
    reg = slab.key.region
    pos = scene_point(
        win, (reg.lo[0] + xs[len(xs) // 2] + 0.5) * 4, (reg.lo[1] + ys[len(ys) // 2] + 0.5) * 4
    )
    qtbot.mouseMove(win.canvas.viewport(), pos=pos)
    qtbot.waitUntil(lambda: "no data (missing chunk)" in win.readout.text())
    win.close()


def test_missing_chunks_over_http(qtbot, settings, holey):
    root, _ = holey
    with LoopbackServer(root) as srv:
        win = _window(qtbot, settings)
        _open(qtbot, win, srv.source("image"), srv.source("segmentation"), [2192, 4160, 103])
        slab, zi = win.display.current_slab()
        assert slab.missing is not None and slab.missing[zi].any()
        win.close()


def test_a_corrupt_chunk_is_a_clear_error_for_that_view_only(
    qtbot, settings, synthetic_big, tmp_path
):
    root = tmp_path / "corrupt"
    shutil.copytree(synthetic_big.image_path.parent, root)
    for p in (root / "image" / "4_4_40").iterdir():
        if "_100-108" in p.name:
            p.write_bytes(b"\x1f\x8b not really gzip")
    win = _window(qtbot, settings)
    with qtbot.waitSignal(win.errorShown, timeout=60000) as sig:
        win.open_sources(
            OpenRequest(
                f"precomputed://file://{root / 'image'}",
                f"precomputed://file://{root / 'segmentation'}",
                [2192, 4160, 101],
                None,
            )
        )
    assert "could not be decoded" in sig.args[0]
    # Other slices are fine: the window goes on.
    win.set_z(110)
    qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
    _close_boxes(win)
    win.close()


def test_wrong_dtype_is_a_clear_error(synthetic_big, tmp_path):
    import json

    from imagery_gui.model.dataset import Dataset
    from imagery_gui.model.errors import DataCorruptError

    root = tmp_path / "wrong"
    shutil.copytree(synthetic_big.image_path, root / "image")
    info = json.loads((root / "image" / "info").read_text())
    info["data_type"] = "uint16"
    (root / "image" / "info").write_text(json.dumps(info))
    with pytest.raises(DataCorruptError, match=r"could not be decoded|shape"):
        Dataset(str(root / "image")).read_image([[2100, 4100, 100], [2164, 4164, 101]])


def test_long_walk_stays_within_the_cache_bound(qtbot, settings, demo):
    settings.cache_mb = 64
    win = _window(qtbot, settings)
    _open(qtbot, win, demo.image_source, demo.segmentation_source, list(demo.center))
    threads0 = threading.active_count()
    fds0 = len(os.listdir("/proc/self/fd"))
    child = win.display.reader.pid
    child_threads0, child_fds0 = _proc_counts(child)
    rng = np.random.default_rng(9)
    lo, hi = win.display.z_bounds()
    for _step in range(60):
        kind = rng.integers(3)
        if kind == 0:
            win.set_z(int(rng.integers(lo, hi + 1)))
        elif kind == 1:
            cx, cy = win.canvas.center_nm()
            win.canvas.show_nm(
                cx + rng.normal(0, 1500), cy + rng.normal(0, 1500), win.canvas.nm_per_px()
            )
        else:
            cx, cy = win.canvas.center_nm()
            win.canvas.show_nm(cx, cy, float(rng.choice([2.0, 4.0, 8.0, 16.0])))
        qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
        assert (
            win.display.cache.nbytes <= win.display.cache.max_bytes or len(win.display.cache) == 1
        )
    qtbot.waitUntil(lambda: not win.busy.isVisible(), timeout=60000)
    qtbot.wait(300)
    assert threading.active_count() <= threads0 + 4  # no thread growth
    assert len(os.listdir("/proc/self/fd")) <= fds0 + 16  # no descriptor growth
    assert win.display.reader.pid == child  # the same read process all along
    threads, fds = _proc_counts(child)
    assert threads <= child_threads0 + 4 and fds <= child_fds0 + 16  # nor in the reader
    win.close()


def test_the_heap_is_frozen_and_a_replaced_dataset_is_freed(qtbot, settings, served):
    """A full garbage collection (any thread may start one, and it holds the GIL) walks
    only what was made since the last open, not the ~290,000 objects of the imports; and
    freezing keeps nothing of a dataset once another replaces it."""
    import gc
    import weakref

    win = _window(qtbot, settings)
    src = served.source("image"), served.source("segmentation")
    _open(qtbot, win, *src, [2192, 4160, 103])
    win.step_z(1)
    qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
    assert gc.get_freeze_count() > 100_000  # imports, Qt wrappers, cloud-volume
    assert len(gc.get_objects()) < 30_000  # what a full collection walks
    first = weakref.ref(win.state.dataset)
    first_cv = weakref.ref(win.state.dataset.image.open())
    _open(qtbot, win, *src, [2192, 4160, 90])
    assert win.state.dataset is not first()
    gc.collect()
    assert first() is None and first_cv() is None
    win.close()


def _proc_counts(pid: int) -> tuple[int, int]:
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


def test_reading_in_the_viewer_process_still_works(qtbot, settings, demo):
    """Settings.read_process = False: reads in threads of this process, same pixels."""
    from imagery_gui.model.dataset import Dataset

    settings.read_process = False
    win = _window(qtbot, settings)
    assert win.display.reader is None
    _open(qtbot, win, demo.image_source, demo.segmentation_source, list(demo.center))
    win.set_z(win.display.z_bounds()[0])  # another slab
    qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
    slab, zi = win.display.current_slab()
    reg = slab.key.region
    truth = Dataset(demo.image_source, demo.segmentation_source).read_image(
        [[reg.lo[0], reg.lo[1], slab.key.z0 + zi], [reg.hi[0], reg.hi[1], slab.key.z0 + zi + 1]],
        resolution=reg.resolution,
    )
    np.testing.assert_array_equal(win.canvas.em.image, truth[0])
    win.close()


def test_a_killed_read_process_is_replaced(qtbot, settings, demo):
    import signal

    win = _window(qtbot, settings)
    _open(qtbot, win, demo.image_source, demo.segmentation_source, list(demo.center))
    old = win.display.reader
    os.kill(old.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not old.alive, timeout=10000)
    lo, hi = win.display.z_bounds()
    win.set_z(hi if win.display.z - lo < (hi - lo) // 2 else lo)  # a slab not yet read
    qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
    assert win.display.reader is not old and win.display.reader.alive
    assert win.canvas.em.image is not None
    _close_boxes(win)
    win.close()


def test_disk_cache_option(qtbot, settings, served, tmp_path):
    win = _window(qtbot, settings)
    assert not win.act_disk_cache.isChecked()  # off by default
    _open(qtbot, win, served.source("image"), served.source("segmentation"), [2192, 4160, 103])
    assert diskcache.cache_bytes() == 0
    win.act_disk_cache.setChecked(True)  # reopens the data in the background
    qtbot.waitUntil(lambda: not win.jobs.active, timeout=60000)
    qtbot.waitUntil(lambda: win.display.complete and diskcache.cache_bytes() > 0, timeout=60000)
    _quiet(qtbot, served)  # the reopened view and its prefetch are done

    before = len(served.log)
    job = win.settings_menu.set_disk_cache(True)  # reopen: chunks now come from the disk cache
    with qtbot.waitSignal(job.done, timeout=60000):
        pass
    qtbot.waitUntil(lambda: win.display.complete, timeout=60000)
    _quiet(qtbot, served)

    def chunks(log):
        return {p for p in log if not p.endswith(("/info", "/provenance"))}

    # Nothing downloaded before is downloaded again. (Chunks never read before may be: on
    # a loaded machine a prefetch can still be under way when the server was quiet 0.6 s.)
    assert chunks(served.log[:before])
    assert chunks(served.log[before:]) & chunks(served.log[:before]) == set()
    win.settings_menu.update_cache_menu()
    assert "MiB" in win.act_clear_cache.text() or "KiB" in win.act_clear_cache.text()
    win.settings_menu.clear_disk_cache()
    assert diskcache.cache_bytes() == 0
    win.close()
