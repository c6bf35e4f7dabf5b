"""A link too slow for full-resolution slices at a scrub's rate: the real window over the
loopback server with a bandwidth limit, scrubbed with real key presses at 10 slices/s.
The view shows coarser slices instead of nothing, the status bar says why, and when the
scrub stops the full slice arrives and the notice goes. Behaviour only: timings are
measured in benchmarks/bench_remote.py."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import Qt

from imagery_gui.model.writer import write_precomputed
from imagery_gui.qt.dialogs import OpenRequest
from tests.helpers.http_server import LoopbackServer

BIG = 864691135000000000
DEPTH = 96
OFFSET = (2000, 4000, 100)


@pytest.fixture(scope="module")
def deep_raw(tmp_path_factory):
    """Image 512x512x96 at 4 nm, raw (its bytes on the wire are its voxels), chunks of
    128x128x8, 3 mips; segmentation at 8 nm with 18-digit ids, 3 mips."""
    root = tmp_path_factory.mktemp("deep-raw")
    rng = np.random.default_rng(5)
    cells = rng.integers(0, 40, (256, 256), dtype=np.uint64)
    cells = np.repeat(np.repeat(cells[::16, ::16], 16, 0), 16, 1) + np.uint64(BIG)
    seg = np.repeat(cells[:, :, None], DEPTH, axis=2)
    write_precomputed(
        root / "segmentation",
        seg,
        layer_type="segmentation",
        resolution=(8, 8, 40),
        voxel_offset=(OFFSET[0] // 2, OFFSET[1] // 2, OFFSET[2]),
        chunk_size=(128, 128, 8),
        encoding="compressed_segmentation",
        num_mips=3,
    )
    image = rng.integers(0, 255, (512, 512, DEPTH), dtype=np.uint8)
    write_precomputed(
        root / "image",
        image,
        layer_type="image",
        resolution=(4, 4, 40),
        voxel_offset=OFFSET,
        chunk_size=(128, 128, 8),
        encoding="raw",
        num_mips=3,
    )
    return root


def _open(qtbot, settings, srv):
    """The real window on the server's layers, its first view complete."""
    from imagery_gui.app import create_window

    settings.fetch_timeout_s = 60.0
    win = create_window(settings=settings)
    qtbot.addWidget(win)
    win.resize(900, 650)
    win.show()
    center = [OFFSET[0] + 256, OFFSET[1] + 256, OFFSET[2] + 4]
    with qtbot.waitSignal(win.datasetOpened, timeout=60_000):
        win.open_sources(OpenRequest(srv.source("image"), srv.source("segmentation"), center, None))
    qtbot.waitUntil(lambda: win.display.complete, timeout=60_000)
    return win


def _scrub(qtbot, win, steps: int) -> tuple[int, int]:
    """``steps`` presses of Up at 10 slices/s: (steps that showed nothing, steps that
    showed a coarser slice)."""
    d = win.display
    blank = coarser = 0
    z0 = win.state.z
    for i in range(steps):
        qtbot.keyClick(win.canvas, Qt.Key.Key_Up)
        qtbot.wait(100)
        assert win.state.z == z0 + i + 1
        got = d.current_slab()
        if got is None:
            blank += 1
        elif got[0].key.region != d.region:
            coarser += 1
    return blank, coarser


def test_a_scrub_over_a_slow_link_shows_coarser_slices_and_says_so(qtbot, settings, deep_raw):
    # A full slab of the view (512x512x8 image voxels, raw) is 2 MB: at 1 MB/s the link
    # carries about 4 slices a second of it, the scrub asks for 10; 4x coarser, 0.3 MB/s.
    with LoopbackServer(deep_raw, latency=0.02, bandwidth=1e6, seed=2) as srv:
        win = _open(qtbot, settings, srv)
        d = win.display
        assert d.region is not None and d.region.image_mip == 0  # the view is at full res
        assert d.coarser, "the volume has coarser mips to fall back to"
        # after the first read the viewer knows the link's bandwidth is the limit, and
        # reads coarser slabs ahead for a scrub
        qtbot.waitUntil(lambda: d.plan.slow and d.plan.level > 0, timeout=30_000)
        qtbot.wait(1000)

        notices: list[str] = []
        d.linkNotice.connect(notices.append)
        blank, coarser = _scrub(qtbot, win, 40)
        assert blank == 0, f"{blank} of 40 steps showed nothing"
        assert coarser > 0  # the scrub left the full slab it started in
        text = win.status.link_label.text()
        assert "network too slow" in text and "coarser" in text, text
        assert d.plan.behind and not d.complete  # a coarser slice is not the final view
        # the scrub stops: the full slice comes, the notice goes
        t_stop = time.monotonic()
        # Qt's default (coarse) timers may fire up to 5% early: the pause timer's end then
        # finds the scrub not yet paused; the view must still ask for the full slice
        d._pause_timer.stop()
        d._pause_timer.timeout.emit()
        qtbot.waitUntil(lambda: d.complete and not d.showing_coarser, timeout=60_000)
        qtbot.waitUntil(lambda: win.status.link_label.text() == "", timeout=10_000)
        assert notices and notices[-1] == ""
        assert time.monotonic() - t_stop < 60
        shown = d.current_slab()
        assert shown is not None and shown[0].key.region == d.region
        assert d.id_at_nm(*d.camera.center_nm[:2]) >= BIG  # the full slab's real ids
        win.close()


def test_a_link_wide_enough_for_the_scrub_is_not_called_slow(qtbot, settings, deep_raw):
    """The same full slabs (2 MB of raw image for 8 slices) over a 5 MB/s link 250 ms
    away: a scrub at 10/s needs half of it. Reads ahead ride beside each other and some
    are dropped as the scrub moves on; while the scrub runs the link is never called too
    slow for it, and the scrub is never told so. (At rest, before the reads that ran alone
    have settled, a busy machine can give one low reading, as in 1 of ~20 full runs of the
    suite: it only reads a coarser level ahead, and is not what this checks.)"""
    with LoopbackServer(deep_raw, latency=0.25, bandwidth=5e6, seed=6) as srv:
        win = _open(qtbot, settings, srv)
        d = win.display
        notices: list[str] = []
        d.linkNotice.connect(notices.append)
        plans = []
        d.fetcher.signals.slabReady.connect(lambda g, s: plans.append(d.plan))
        qtbot.wait(1500)  # the open's reads ahead, measured
        for _ in range(3):
            _scrub(qtbot, win, 30)
            qtbot.keyClick(win.canvas, Qt.Key.Key_Home)  # a jump: reads dropped on the way
            qtbot.wait(300)
        measured = [p for p in plans if p.delivered is not None]
        assert measured, "the link's bandwidth was measured as the limit"
        scrubbing = [p for p in measured if p.wanted > 0]
        assert scrubbing, "plans were made while the scrub ran"
        assert not any(p.slow for p in scrubbing), [
            (round(p.delivered, 1), p.wanted) for p in scrubbing if p.slow
        ]
        assert not any(p.behind for p in plans)
        assert not any("too slow" in n for n in notices), notices
        win.close()


def test_over_a_link_slow_to_answer_coarser_slabs_are_read_ahead_and_no_step_is_blank(
    qtbot, settings, deep_raw
):
    """Slab reads that wait on round trips and retries (400 ms, 30% of requests failing)
    take longer than a scrub spends in a slab: the slabs of the 4x coarser slice are read
    ahead too, already before the scrub, in a lane of their own, so a step whose full
    slice is late shows the coarser one, never nothing."""
    from dataclasses import replace

    from imagery_gui.qt.display import LATE_LEVEL

    with LoopbackServer(deep_raw, latency=0.4, fail_rate=0.3, seed=4) as srv:
        srv.spare_metadata = True
        win = _open(qtbot, settings, srv)
        d = win.display
        assert not d.plan.slow  # the bandwidth is not the limit: the answers are late
        key = d.key_for(d.region)
        lkey = d.key_for(d.coarser[LATE_LEVEL - 1])
        assert key is not None and lkey is not None
        ahead = [
            replace(lkey, z0=lkey.z0 + k * lkey.depth, z1=lkey.z1 + k * lkey.depth) for k in (1, 2)
        ]
        # at rest, the coarser slabs of the next slices are read ahead
        qtbot.waitUntil(lambda: all(k in d.cache for k in ahead), timeout=30_000)

        blank, coarser = _scrub(qtbot, win, 3 * key.depth)  # through three slabs
        assert blank == 0, f"{blank} of {3 * key.depth} steps showed nothing ({coarser} coarser)"
        # when the scrub stops, the full slice
        qtbot.waitUntil(lambda: d.complete and not d.showing_coarser, timeout=60_000)
        assert d.id_at_nm(*d.camera.center_nm[:2]) >= BIG
        win.close()


def test_over_a_link_slow_to_answer_a_jump_reads_the_next_slabs_beside_its_own(
    qtbot, settings, deep_raw
):
    """Once the viewer has measured that the link waits on round trips (900 ms an answer)
    and that a read takes longer than a scrub at 10/s spends in a slab (8 slices), a jump
    (the End key) asks for the slabs read ahead at once, beside the slab on screen,
    instead of a whole read later: their requests reach the server before the slab on
    screen is delivered."""
    with LoopbackServer(deep_raw, latency=0.9, seed=3) as srv:
        win = _open(qtbot, settings, srv)
        d = win.display
        qtbot.waitUntil(lambda: d.plan.ahead_beside, timeout=30_000)
        delivered: dict = {}
        d.fetcher.signals.slabReady.connect(
            lambda g, s: delivered.setdefault(s.key, time.monotonic())
        )
        qtbot.keyClick(win.canvas, Qt.Key.Key_End)
        key = d.key_for(d.region)
        assert key is not None and key not in d.cache
        others = [k for k in d._slabs_from(key, d.plan.ahead) if k != key]
        assert others, "the last slab has one behind it to read"
        qtbot.waitUntil(lambda: key in delivered, timeout=30_000)
        qtbot.waitUntil(lambda: all(k in delivered for k in others), timeout=30_000)

        def first_request(k) -> float:
            """When the first image chunk of slab ``k`` was asked for (chunk names end in
            ``_z0-z1``; the slabs are one chunk deep)."""
            times = [
                t
                for t, path in list(srv.arrivals)
                if path.startswith("/image/4_4_40/") and path.endswith(f"_{k.z0}-{k.z1}")
            ]
            assert times, f"no request for the image chunks of {k}"
            return min(times)

        for k in others:
            assert first_request(k) < delivered[key], (k, key)
        win.close()


def test_reads_ahead_never_push_the_slab_on_screen_out_of_a_tight_memory_bound(
    qtbot, settings, deep_raw
):
    """With memory for only two slabs (and their coarser ones), a jump reads one slab
    ahead rather than the usual two and none behind, and the slab on screen stays in memory after the
    one ahead arrives, rather than being evicted by them (it then had to be read again, and a
    scrub starting meanwhile showed nothing)."""
    from imagery_gui.model.view import MemoryBudget

    with LoopbackServer(deep_raw, latency=0.05, seed=6) as srv:
        win = _open(qtbot, settings, srv)
        d = win.display
        key = d.key_for(d.region)
        assert key is not None
        slab_bytes = d._slab_bytes(key)
        total = 1
        while MemoryBudget(total).slabs < int(2.3 * slab_bytes):
            total += slab_bytes // 8
        d.set_memory(total)
        delivered: list = []
        d.fetcher.signals.slabReady.connect(lambda g, s: delivered.append(s.key))
        # a jump (View > Go to) to the middle of the volume, far from what the open read
        dlg = win.nav.go_to_dialog()
        cx, cy, _ = win.state.center_voxel()
        dlg.point.clear()
        qtbot.keyClicks(dlg.point, f"{cx}, {cy}, {OFFSET[2] + 52}")
        qtbot.keyClick(dlg.point, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: win.state.z == OFFSET[2] + 52, timeout=5_000)
        key = d.key_for(d.region)
        assert key is not None and key not in d.cache
        qtbot.waitUntil(lambda: d.complete, timeout=30_000)
        assert (d.plan.ahead, d.plan.back) == (1, 0)  # the next slab, none behind
        ahead = [k for k in d._slabs_from(key, d.plan.ahead) if k != key]
        qtbot.waitUntil(lambda: all(k in delivered for k in ahead) or not ahead, timeout=30_000)
        qtbot.wait(300)  # anything else under way lands
        assert key in d.cache, "the slab on screen was evicted by the reads ahead"
        assert d.cache.nbytes <= d.cache.max_bytes
        full = [k for k in delivered if k.region == d.region]
        assert len(full) == len(set(full)), "a slab was read twice"
        win.close()
