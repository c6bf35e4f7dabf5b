"""What the slice view shows, and getting it there without making the GUI wait.

``SliceDisplay`` keeps the current region, z and colouring; asks the fetcher for the slabs
the view needs (the current one first, then prefetch in the direction of travel); caches
what arrives if it still matters; and draws the current slice. Drawing a slice that is in
memory is a table lookup (fill) or a cached outline image, so z steps and style changes
never touch the network, and redraws are coalesced (at most one per frame), never queued.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from ..model import chunkpool, fetchproc, netwatch, render, source
from ..model.dataset import Dataset
from ..model.fetchproc import FetchProcess
from ..model.glyphs import GlyphStyle, Picture, draw_glyphs_cropped
from ..model.linkmeter import (
    NOMINAL_RATE,
    SCRUB_GAP_S,
    PrefetchPlan,
    ScrubMeter,
    plan_prefetch,
)
from ..model.navigate import OUTSIDE_NOTICE
from ..model.state import Camera, z_bounds
from ..model.view import (
    Coloring,
    MemoryBudget,
    Region,
    SlabCache,
    SlabData,
    SlabKey,
    choose_mips,
    coarser_regions,
    fetch_slab,
    hatch,
    outline_display,
    plan_region,
    prefetch_order,
    z_range,
    z_slab,
)
from .canvas import SliceCanvas
from .workers import Fetcher, Outliner, OverlayItem, OverlayResult

FRAME_MS = 16
#: Outlines estimated to take longer than this are computed by the outline worker (the
#: previous overlay stays up meanwhile), so a frame never waits for them. With the rest of
#: a redraw (colouring, handing images to Qt, painting) a frame stays within ~30 ms; a
#: 1024x1024 view (12.6 ms estimated) is outlined at once on an idle machine.
OUTLINE_GUI_MS = 14.0
#: Most an estimate is corrected by after one GUI-thread outline (one slow moment - a
#: collection, another process on the core - must not send every outline to the worker).
OUTLINE_SCALE_STEP = 4.0
#: Colouring a slice (a gather through its LUT) costs about this much a pixel on an idle
#: core here: 7 ms a megapixel, 60 ms for a 4096x4096 region of a big volume.
LUT_NS_PER_PX = 7.0
#: Slices estimated to take longer than this to colour (about 2 megapixels) are coloured
#: by the overlay worker, and the next ones in the direction of travel ahead of time, so
#: a frame never waits; smaller ones are coloured at once (a worker adds a hand-over).
LUT_GUI_MS = 16.0
#: Outer outlines of more segments than this are always computed in the outline worker.
OUTER_GUI_SEGMENTS = 4
#: Seconds a read waits for a starting read process (when reading here would first have to
#: import cloud-volume) before it reads here after all.
READER_WARM_WAIT_S = 10.0
#: For LATE_S after a scrub step found its slice missing, the slices of the LATE_LEVEL
#: (4x) coarser mip are read before the full ones, and the status bar says so (a link too
#: narrow for full slices at all falls back by its plan instead, linkmeter).
LATE_S = 3.0
LATE_LEVEL = 2
#: A scrub whose slab reads take this share of the time it spends in a slab, or more, has
#: no margin for a slower read (a retried chunk, a busy moment): the LATE_LEVEL coarser
#: slabs are read ahead too, beside the full ones, so that a step that finds its slice
#: missing shows the coarser one rather than nothing.
TIGHT_SHARE = 0.5
#: Dataset serials are unique in the process: displays may share one read process.
_serials = itertools.count(1)


def _corrected_scale(scale: float, ms: float, estimate_ms: float, budget_ms: float) -> float:
    """A cost estimate's scale after a GUI-thread pass that took ``ms``: unchanged within
    the budget; over it (what was estimated cheap was not), grown by how far the estimate
    was off, at most OUTLINE_SCALE_STEP at a time and 100x in all."""
    if ms <= budget_ms:
        return scale
    return min(scale * min(ms / max(estimate_ms, 1e-3), OUTLINE_SCALE_STEP), 100.0)


@dataclass(frozen=True, slots=True)
class ReadSource:
    """Where a fetch request reads from, carried by the request to the fetch worker.

    With ``use_reader`` slabs are read by the process-wide read process (a new one, told
    about the dataset, if the last one died); until it has started, and without it, they are
    read here, through ``dataset``."""

    dataset: Dataset | None
    serial: int
    replica: dict | None
    use_reader: bool

    def rerank(self, tag: Any, rank: int) -> None:
        """The read tagged ``tag`` (:meth:`load`), if under way in the read process, is
        served by ``rank`` (chunkpool) from now on; reads here are not ranked."""
        reader = fetchproc.current()
        if self.use_reader and reader is not None and reader.alive:
            reader.rerank(tag, rank)

    def load(self, key: SlabKey, rank: int = chunkpool.AHEAD, tag: Any = None) -> SlabData:
        if self.use_reader:
            reader = fetchproc.current()
            if (reader is None or not reader.alive) and self.replica is not None:
                # it died (killed, out of memory): a new one, told about this dataset
                reader = fetchproc.shared()
                reader.set_dataset(self.serial, self.replica)
            if reader is not None and (reader.is_warm() or self.dataset is None):
                return reader.fetch(key, rank, tag)
            # The read process is still starting (it imports cloud-volume and its codecs,
            # about a second at launch): if this process has them already, the first views
            # are read here rather than wait; if not, importing them here would take as
            # long and compete with the window for the GIL, so the read waits for it.
            if reader is not None and not source.is_warm() and reader.wait_warm(READER_WARM_WAIT_S):
                return reader.fetch(key, rank, tag)
        assert self.dataset is not None
        return fetch_slab(self.dataset, key)


@dataclass(frozen=True, slots=True)
class Shown:
    """What is on screen: slab key, slice index in it, and whether the overlay is final."""

    key: SlabKey
    zi: int
    overlay_ok: bool


class SliceDisplay(QObject):
    """Owns the fetcher, the caches and the canvas contents."""

    busyChanged = Signal(bool)
    activity = Signal(str)  # what the fetcher is doing or waiting for
    failed = Signal(str)  # a fetch failed for the current view
    missingChanged = Signal(float)  # fraction of the shown slice whose chunks are missing
    drawn = Signal()  # the current slice was drawn (complete when ``complete`` is True)
    zRangeChanged = Signal(int, int)  # in view-resolution z
    noticeChanged = Signal(str)  # a notice about the view ('' when none): outside the volume
    linkNotice = Signal(str)  # the network cannot keep up ('' when it does)

    def __init__(
        self,
        canvas: SliceCanvas,
        cache_bytes: int,
        timeout_s: float | None = 10.0,
        synchronous: bool = False,
        parent: QObject | None = None,
        reader: FetchProcess | None = None,
    ) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self._reader = reader  # reads in another process; None: in this one
        self._replica: dict | None = None  # how the read process rebuilds the dataset
        self.dataset: Dataset | None = None
        self.dataset_serial = 0
        self.view_res = np.array([1.0, 1.0, 1.0])
        self.z = 0  # in view-resolution voxels
        self.camera = Camera()
        self.direction = 1
        self.coloring = Coloring()
        self.geometry = render.Geometry()
        self.agglomerate = True
        self.timestamp = None
        self.budget = MemoryBudget(int(cache_bytes))
        self.cache = SlabCache(self.budget.slabs)
        self._outline_bytes = 0
        self.region: Region | None = None
        self.shown: Shown | None = None
        self.complete = False
        self.outside = False  # the view shows none of the volume (drawn empty, with a notice)
        self._outlines: OrderedDict = OrderedDict()
        self._outline_pending: tuple | None = None
        self._outline_scale = 1.0  # measured / estimated cost of GUI-thread outlines
        self._lut_scale = 1.0  # the same for colouring
        self._coloring_version = 0  # in the keys of coloured overlays the worker made
        self._luts: OrderedDict = OrderedDict()
        self.fetcher = Fetcher(timeout_s=timeout_s, synchronous=synchronous, parent=self)
        self.outliner = Outliner(synchronous=synchronous, parent=self)
        self.fetcher.signals.slabReady.connect(self._on_fetcher_slab_ready)
        self.fetcher.signals.slabFailed.connect(self._on_fetcher_slab_failed)
        self.fetcher.signals.activity.connect(self._on_fetcher_activity)
        self.outliner.signals.done.connect(self._on_outliner_done)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.timeout.connect(self._redraw_now)
        self._last_draw = 0.0
        self.sites = None  # a SiteTable whose glyphs are drawn
        self.current_site: int | None = None
        self.glyph_style = GlyphStyle()
        self._glyph_key: tuple | None = None  # what the glyph layer shows now
        self.fetch_requests = 0  # for tests and benchmarks
        self.draw_count = 0
        self.scrub = ScrubMeter()
        self.plan = plan_prefetch(self.fetcher.link.snapshot(), 0.0, 1, 0, 0)
        # Coarser regions of the view (finest first), read ahead instead of the full one
        # while the network cannot carry it, and shown until the full slice is there.
        self.coarser: list[Region] = []
        self.showing_coarser = False
        self._link_notice = ""
        self._bytes_per_voxel = 4.0  # of decoded slabs, learnt from those that arrive
        self._awaiting: SlabKey | None = None  # the first of a first_alone request
        self._misses: deque[float] = deque(maxlen=16)  # z steps that found no slice
        self._pause_timer = QTimer(self)
        self._pause_timer.setSingleShot(True)
        self._pause_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._pause_timer.timeout.connect(self._on_scrub_pause)

    # -- data --------------------------------------------------------------------------------
    def _source(self) -> ReadSource:
        """What a fetch needs, fixed when it is asked for (the worker reads nothing of
        this display): the dataset, and the read process with how to rebuild it there."""
        return ReadSource(self.dataset, self.dataset_serial, self._replica, self.reader is not None)

    @property
    def reader(self) -> FetchProcess | None:
        """The read process (the live one: a dead one is replaced on the next fetch)."""
        if self._reader is None:
            return None
        live = fetchproc.current()
        return live if live is not None else self._reader

    def set_memory(self, total_bytes: int) -> None:
        """Change the memory bound (slabs and outlines now; chunk LRUs on the next open)."""
        self.budget = MemoryBudget(int(total_bytes))
        self.cache.set_limit(self.budget.slabs)
        self._trim_outlines()

    def set_dataset(
        self, dataset: Dataset, timestamp=None, agglomerate: bool = True, z: int | None = None
    ) -> None:
        """Show another dataset (or the same one reopened): caches are dropped; the view
        keeps its camera, and z when given."""
        self.dataset = dataset
        self.dataset_serial = next(_serials)
        # the link measured is the one to this dataset's servers (all of them when its
        # chunks may come from elsewhere: a graphene or cloud-bucket source)
        hosts = frozenset(
            netwatch.host_of(layer.spec.url)
            for layer in (dataset.image, dataset.segmentation)
            if layer is not None
        )
        self.fetcher.link.set_hosts(None if "" in hosts else hosts)
        if self._reader is not None:
            self._replica = dataset.replica_args(lru_bytes=self.budget.chunk_lru_per_layer)
            fetchproc.shared().set_dataset(self.dataset_serial, self._replica)
        self.agglomerate = agglomerate
        self.timestamp = timestamp
        if z is not None:
            self.z = int(z)
        self.view_res = np.asarray(dataset.resolution, dtype=np.float64)
        self._forget()

    def _forget(self) -> None:
        """Drop every slab, outline and colour table, and clear the canvas."""
        self.cache.clear()
        self._outlines.clear()
        self._outline_bytes = 0
        self._luts.clear()
        self.region = None
        self.coarser = []
        self.shown = None
        self.complete = False
        self.canvas.set_em(None, (0, 0, 1, 1))
        self.canvas.set_overlay(None, (0, 0, 1, 1))
        self.canvas.set_glyphs(None, (0, 0, 1, 1))
        self._glyph_key = None

    def close(self) -> None:
        """Stop the workers and give the data back: a closed window keeps none of it, even
        while something still refers to the window (a closed window's objects may have been
        exempted from garbage collection, ``app.settle_heap``)."""
        self._redraw_timer.stop()
        self.fetcher.close()
        self.outliner.close()
        self._forget()

    # -- coordinates -------------------------------------------------------------------------
    def z_bounds(self) -> tuple[int, int]:
        """Inclusive z range in view-resolution voxels."""
        assert self.dataset is not None
        return z_bounds(self.dataset)

    def z_at_mip(self, region: Region) -> int:
        return int(np.floor((self.z + 0.5) * self.view_res[2] / region.resolution[2]))

    # -- requests ----------------------------------------------------------------------------
    def set_z(self, z: int) -> None:
        """Show slice ``z`` (the viewer state has clamped it to the volume)."""
        z = int(z)
        if z == self.z and self.shown is not None:
            return
        self.direction = 1 if z >= self.z else -1
        self.z = z
        self.scrub.step(z)
        if self.region is not None and self.scrub.rate() > 0:
            key = self.key_for(self.region)
            if key is not None and key not in self.cache:
                # the scrub got ahead of its reads: this step's request reads the coarser
                # ones first
                self._misses.append(time.monotonic())
        self.update_view()
        if self.plan.behind:
            # a scrub over a slow link reads coarser slices only: when it stops, the full one
            self._pause_timer.start(int(SCRUB_GAP_S * 1000) + 50)

    def _on_scrub_pause(self) -> None:
        """The scrub over a slow link has stopped: ask for the full slice. A timer that
        ends before the scrub meter calls it a pause (a coarse timer may end up to 5%
        early, an event loop late) is set again for the rest: a request while the scrub
        still counts as under way would read coarser slices only, and nothing would ask
        again."""
        idle = self.scrub.idle_s()
        if idle <= SCRUB_GAP_S:
            self._pause_timer.start(int((SCRUB_GAP_S - idle) * 1000) + 50)
            return
        self._request_current()

    def set_coloring(self, coloring: Coloring) -> None:
        visible_changed = (coloring.show_all, coloring.selected) != (
            self.coloring.show_all,
            self.coloring.selected,
        )
        self.coloring = coloring
        self._luts.clear()
        self._coloring_version += 1
        for key in [k for k in self._outlines if k[0] == "rgba"]:  # coloured with the old
            self._outline_bytes -= self._outlines.pop(key).nbytes
        if visible_changed and self.geometry.outline:
            self._outline_pending = None
        self.complete = False  # until the redraw shows the new colours
        self.request_redraw()

    def set_geometry(self, geometry: render.Geometry) -> None:
        if geometry != self.geometry:
            self.geometry = geometry
            self._outline_pending = None
            self.complete = False
            self.request_redraw()

    def set_agglomerate(self, agglomerate: bool, timestamp=None) -> None:
        self.agglomerate = agglomerate
        self.timestamp = timestamp
        self.region = None
        self.update_view()

    def set_camera(self, camera: Camera) -> None:
        """Where the view looks now (the viewer state's camera); fetches what it needs."""
        self.camera = camera
        self.update_view()

    def update_view(self) -> None:
        """Plan the region for the camera's visible area and fetch what the current z needs."""
        if self.dataset is None:
            return
        x0, y0, x1, y1 = self.camera.visible_nm
        img_mip, seg_mip = choose_mips(self.dataset, self.camera.nm_per_px)
        reg = self.region
        if (
            reg is None
            or (reg.image_mip, reg.segmentation_mip) != (img_mip, seg_mip)
            or not reg.contains_nm(x0, y0, x1, y1)
        ):
            new = plan_region(self.dataset, (x0, y0, x1, y1), img_mip, seg_mip)
            if new is None:
                self._show_outside()
                return
            if new != reg:
                self.region = new
                self.coarser = coarser_regions(self.dataset, new, self.camera.nm_per_px)
        if self.key_for(self.region) is None:  # (z outside the volume: the state clamps it)
            self._show_outside()
            return
        if self.outside:
            self.outside = False
            self.canvas.set_notice("")
            self.noticeChanged.emit("")
        self.complete = False  # until the redraw shows what the view now asks for
        self._request_current()
        self.request_redraw()

    def _show_outside(self) -> None:
        """The view shows none of the volume: draw it empty with the notice, and call it
        complete (nothing more will come), so a screenshot or a wait for it ends."""
        self._redraw_timer.stop()
        self.region, self.shown = None, None
        self.coarser = []
        if not self.outside:
            # nothing to read: the fetcher lets go of the reads under way and is idle
            # again (one handed over to a re-request that now never comes would stay busy)
            self._awaiting = None
            self.fetcher.request([], self._source())
        for put in (
            self.canvas.set_em,
            self.canvas.set_overlay,
            self.canvas.set_missing,
            self.canvas.set_glyphs,
        ):
            put(None, (0, 0, 1, 1))
        self._glyph_key = None
        self.canvas.set_notice(OUTSIDE_NOTICE)
        if not self.outside:
            self.outside = True
            self.noticeChanged.emit(OUTSIDE_NOTICE)
        self.complete = True
        self.drawn.emit()

    def key_for(self, region: Region) -> SlabKey | None:
        assert self.dataset is not None
        zr = z_slab(self.dataset, region, self.z_at_mip(region))
        if zr is None:
            return None
        return SlabKey(region, zr[0], zr[1], self.agglomerate, self.timestamp, self.dataset_serial)

    def _slab_bytes(self, key: SlabKey) -> int:
        h, w = key.region.shape
        return int(h * w * key.depth * self._bytes_per_voxel)

    def _replan(self, key: SlabKey) -> PrefetchPlan:
        """How far ahead to read and whether the network keeps up (linkmeter), from what
        the reads measured and how fast the user scrubs; says so when that changes."""
        assert self.region is not None
        full = key.region.shape[0] * key.region.shape[1]
        ratios = tuple(r.shape[0] * r.shape[1] / full for r in self.coarser)
        slab_bytes = self._slab_bytes(key)
        # each full slab may come with the coarser one read beside it (a scrub's fallback)
        fallback = self._fallback()
        beside = 0.0
        if fallback is not None:
            beside = fallback.shape[0] * fallback.shape[1] / full
        plan = plan_prefetch(
            self.fetcher.link.snapshot(),
            self.scrub.rate(),
            key.depth,
            slab_bytes,
            int(self.budget.slabs // max(slab_bytes * (1 + beside), 1)),
            ratios,
            was_slow=self.plan.slow,
        )
        self.plan = plan
        notice = ""
        if plan.behind and plan.delivered is not None:
            notice = (
                f"network too slow: it carries ~{plan.delivered:.2g} full slices/s, "
                f"the scrub asks {plan.wanted:.2g}/s"
            )
            if plan.level:
                factor = self.coarser[plan.level - 1].resolution[0] / key.region.resolution[0]
                notice += f"; showing {factor:g}x coarser until they arrive"
        elif (late := self._late()) is not None and plan.slab_seconds:
            factor = late.resolution[0] / key.region.resolution[0]
            notice = (
                f"slices arrive late (reads take ~{plan.slab_seconds:.1f} s): "
                f"showing {factor:g}x coarser until they arrive"
            )
        if notice != self._link_notice:
            self._link_notice = notice
            self.linkNotice.emit(notice)
        return plan

    def _request_current(self) -> None:
        if self.region is None or self.dataset is None:
            return
        key = self.key_for(self.region)
        if key is None:
            return
        # the slab on screen and the coarser ones of this slice stay while others arrive
        self.cache.keep([key, *(k for r in self.coarser if (k := self.key_for(r)) is not None)])
        plan = self._replan(key)
        keys = []
        light: list[SlabKey] = []  # coarser slabs read beside the full ones (fetcher)
        first_alone = key not in self.cache
        ckey = self.key_for(self.coarser[plan.level - 1]) if plan.level else None
        fallback = self._late() or self._tight(plan, key)
        if ckey is None and fallback is not None:
            # A scrub outran reads that wait on round trips (a step found its slice
            # missing), or has no margin left for a slower read: the slabs of a coarser
            # slice (a sixteenth of the requests, so fewer retried stragglers) are read
            # beside the full ones, in a lane of their own, and this one first when it is
            # missing, so that the next steps have something to show while the full ones
            # come.
            lkey = self.key_for(fallback)
            assert lkey is not None
            light = self._slabs_from(lkey, plan.ahead + 1)
            head: list[SlabKey] = []
            if key in self.cache:
                light = [k for k in light if k != lkey]
            else:
                head = [k for k in (lkey, key) if k not in self.cache]
            keys = head + [k for k in light + self._slabs_from(key, plan.ahead) if k not in head]
            first_alone = bool(head)
        elif ckey is not None:
            # A link too slow for full slices at a scrub's rate: full slabs ahead would take
            # it for seconds each, so the coarser ones are read ahead (and behind) and
            # shown by a scrub until it stops; then this slice in full, first.
            if plan.behind:
                keys = [
                    k
                    for k in self._slabs_from(ckey, plan.ahead)
                    if k != ckey or key not in self.cache
                ]
                first_alone = ckey not in self.cache and key not in self.cache
            elif key not in self.cache:
                # a jump: the coarser slice first (a fraction of the bytes), then this one
                keys = [ckey, key] if ckey not in self.cache else [key]
                first_alone = True
            else:
                keys = [k for k in self._slabs_from(ckey, plan.ahead) if k != ckey]
        else:
            keys = self._slabs_from(key, plan.ahead)
        if keys:
            self.fetch_requests += 1
        # the fetcher stops after a first_alone request's first slab: asked again then
        self._awaiting = keys[0] if keys and first_alone else None
        self.fetcher.request(
            keys,
            self._source(),
            first_alone=first_alone,
            parallel=plan.parallel,
            light=frozenset(light),
            beside=plan.ahead_beside,
        )

    def _tight(self, plan: PrefetchPlan, key: SlabKey) -> Region | None:
        """The coarser region to read beside the full one while slab reads take
        TIGHT_SHARE or more of the time a scrub spends in a slab (at its rate, or before
        one NOMINAL_RATE: the fallback is there for its first steps), else None."""
        if plan.slab_seconds is None:
            return None
        rate = plan.wanted if plan.wanted > 0 else NOMINAL_RATE
        if plan.slab_seconds * rate / max(key.depth, 1) < TIGHT_SHARE:
            return None
        return self._fallback()

    def _late(self) -> Region | None:
        """The coarser region to read first while a scrub outruns its reads (a step found
        its slice missing in the last LATE_S seconds), else None."""
        if self.plan.wanted <= 0 or not self._missed_lately():
            return None
        return self._fallback()

    def _fallback(self) -> Region | None:
        """The LATE_LEVEL coarser region (or the coarsest there is; None: none)."""
        return self.coarser[min(LATE_LEVEL, len(self.coarser)) - 1] if self.coarser else None

    def _missed_lately(self) -> bool:
        """A scrub step found its slice missing in the last LATE_S seconds."""
        now = time.monotonic()
        return any(now - t <= LATE_S for t in self._misses)

    def _slabs_from(self, key: SlabKey, ahead: int) -> list[SlabKey]:
        """``key`` and the slabs ``ahead`` of it in the direction of travel, then the plan's
        ``back`` (one, or none when memory holds no more) behind, those not in the cache."""
        assert self.dataset is not None
        zmin, zmax = z_range(self.dataset, key.region)
        keys = [] if key in self.cache else [key]
        back = self.plan.back
        for z0, z1 in prefetch_order((key.z0, key.z1), self.direction, zmin, zmax, ahead, back):
            k = replace(key, z0=z0, z1=z1)
            if k not in self.cache:
                keys.append(k)
        return keys

    @Slot(int, object)
    def _on_fetcher_slab_ready(self, generation: int, slab: SlabData) -> None:
        region = slab.key.region
        if (
            self.region is None
            or (region != self.region and region not in self.coarser)
            or slab.key.dataset != self.dataset_serial
        ):
            return  # stale: the view has moved on, or another dataset was opened
        self.cache.put(slab)
        if region == self.region:
            h, w = region.shape
            self._bytes_per_voxel = slab.nbytes / max(h * w * slab.key.depth, 1)
        current = self.key_for(self.region)
        if slab.key == current:
            self.request_redraw()
        elif current not in self.cache and slab.key == self.key_for(region):
            self.request_redraw()  # a coarser slice to show until the full one is there
        if slab.key == self._awaiting:
            # what the view waited for is there: the rest (the prefetch), planned with
            # what this read measured
            self._request_current()
        elif current is not None:
            # what this read measured may change the plan (e.g. the link turns out to be
            # slow): then ask again at once
            before = (self.plan.slow, self.plan.level)
            plan = self._replan(current)
            if (plan.slow, plan.level) != before:
                self._request_current()

    @Slot(int, object, object)
    def _on_fetcher_slab_failed(self, generation: int, key: SlabKey, error: object) -> None:
        if (
            self.region is not None
            and key.region in (self.region, *self.coarser)
            and key == self.key_for(key.region)
        ):
            # this slice, or the coarser one read first for it (then the full one is not
            # read: the fetcher starts nothing after a failure)
            self.failed.emit(str(error))

    @Slot(bool, str)
    def _on_fetcher_activity(self, busy: bool, message: str) -> None:
        self.busyChanged.emit(busy)
        self.activity.emit(message if busy else "")

    # -- drawing -----------------------------------------------------------------------------
    def request_redraw(self) -> None:
        """Coalesce redraws: at most one per frame, always of the latest state."""
        if self._redraw_timer.isActive():
            return
        wait = FRAME_MS - (time.perf_counter() - self._last_draw) * 1000
        self._redraw_timer.start(max(0, int(wait)))

    def current_slab(self) -> tuple[SlabData, int] | None:
        """The slab and slice index to draw: the current region's, else the finest coarser
        one there is (the network is behind), else None."""
        if self.region is None:
            return None
        for region in (self.region, *self.coarser):
            key = self.key_for(region)
            slab = self.cache.get(key) if key is not None else None
            if slab is not None:
                return slab, self.z_at_mip(region) - key.z0
        return None

    def _lut(self, slab: SlabData) -> np.ndarray:
        key = (slab.key, id(slab.ids))
        lut = self._luts.get(key)
        if lut is None:
            lut = self.coloring.lut(slab.ids)
            self._luts[key] = lut
            while len(self._luts) > 64:
                self._luts.popitem(last=False)
        return lut

    def _outline_key(self, slab: SlabData, zi: int) -> tuple:
        c = self.coloring
        return (slab.key, zi, self.geometry, c.show_all, () if c.show_all else c.selected)

    def _outline_estimate_ms(self, visible: np.ndarray, pixels: int) -> float:
        """Estimated cost of outlining in the GUI thread (inf: never there). Inner
        outlines cost one pass (about 12 ms a megapixel on an idle core) whatever the
        number of segments. Outer ones cost a pass per segment over its box, which depends
        on segment sizes no cheap estimate knows: only a few segments are outlined in the
        GUI thread. The estimate learns from each GUI-thread outline that went over the
        budget (a slower machine, bigger segments, cores shared with the outline worker
        and the read process: 2-3x here during a session), by how far it was off."""
        per_mp = 12.0
        if self.geometry.side == "out":
            n = int(visible.sum())
            if n > OUTER_GUI_SEGMENTS:
                return float("inf")
            per_mp += 3.0 * n * max(int(self.geometry.width), 1)
        return self._outline_scale * per_mp * pixels / 1e6

    def _lut_estimate_ms(self, pixels: int) -> float:
        return self._lut_scale * LUT_NS_PER_PX * pixels / 1e6

    def _apply_lut_now(self, lut: np.ndarray, index: np.ndarray, estimate_ms: float) -> np.ndarray:
        """Colouring in the GUI thread, keeping its estimate honest (as for outlines)."""
        t0 = time.perf_counter()
        rgba = render.apply_lut(lut, index)
        ms = (time.perf_counter() - t0) * 1e3
        self._lut_scale = _corrected_scale(self._lut_scale, ms, estimate_ms, LUT_GUI_MS)
        return rgba

    def _outline_now(
        self, local: np.ndarray, visible: np.ndarray, estimate_ms: float
    ) -> np.ndarray:
        """Outlines computed in the GUI thread, keeping the cost estimate honest."""
        t0 = time.perf_counter()
        disp = outline_display(local, visible, self.geometry)
        ms = (time.perf_counter() - t0) * 1e3
        self._outline_scale = _corrected_scale(self._outline_scale, ms, estimate_ms, OUTLINE_GUI_MS)
        return disp

    def overlay_rgba(self, slab: SlabData, zi: int) -> tuple[np.ndarray | None, bool]:
        """RGBA overlay of one slice and whether it is final (outlines may be pending).

        Small slices are coloured here (a table lookup) and outlined here when cheap; the
        overlay worker outlines the others. Big slices (a big volume in a big window) are
        outlined *and* coloured by the worker, with the next ones prefetched, so a frame
        only hands finished images to Qt. Meanwhile the previous overlay stays up."""
        if slab.local is None:
            return None, True
        local = slab.local[zi]
        lut = self._lut(slab)
        estimate = self._lut_estimate_ms(local.size)
        if estimate <= LUT_GUI_MS and not self.geometry.outline:
            return self._apply_lut_now(lut, local, estimate), True
        okey = self._outline_key(slab, zi)
        visible = self.coloring.visible(slab.ids)
        if estimate > LUT_GUI_MS:
            return self._overlay_from_worker(slab, zi, okey, visible, lut)
        disp = self._outlines.get(okey)
        if disp is None:
            o_estimate = self._outline_estimate_ms(visible, local.size)
            if o_estimate <= OUTLINE_GUI_MS:
                disp = self._outline_now(local, visible, o_estimate)
                self._store_outline(okey, disp)
        if disp is None and self._outline_pending != okey:
            self._ask_worker([OverlayItem(okey, local)], visible, None, okey)
            disp = self._outlines.get(okey)  # a synchronous worker has delivered already
        if disp is None:
            return None, False
        self._outlines.move_to_end(okey)
        self._prefetch(slab, zi, visible, None)
        return self._apply_lut_now(lut, disp, estimate), True

    def _overlay_from_worker(
        self, slab: SlabData, zi: int, okey, visible: np.ndarray, lut: np.ndarray
    ) -> tuple[np.ndarray | None, bool]:
        rkey = self._rgba_key(okey)
        rgba = self._outlines.get(rkey)
        if rgba is None and self._outline_pending != rkey:
            self._ask_worker([self._overlay_item(slab, zi, okey)], visible, lut, rkey)
            rgba = self._outlines.get(rkey)
        if rgba is None:
            return None, False
        self._outlines.move_to_end(rkey)
        self._prefetch(slab, zi, visible, lut)
        return rgba, True

    def _rgba_key(self, okey) -> tuple:
        return ("rgba", self._coloring_version, okey)

    def _overlay_item(self, slab: SlabData, zi: int, okey) -> OverlayItem:
        """What the worker needs to colour a slice: its outline image if known."""
        rkey = self._rgba_key(okey)
        disp = self._outlines.get(okey) if self.geometry.outline else None
        if disp is not None:
            return OverlayItem(okey, disp, outlined=True, rgba_key=rkey)
        return OverlayItem(okey, slab.local[zi], rgba_key=rkey)

    def _ask_worker(self, items: list, visible: np.ndarray, lut, pending) -> None:
        self.outliner.request(items, visible, self.geometry, lut)
        # set after the request: a synchronous worker delivers within it, and must not
        # start a redraw inside this one
        self._outline_pending = pending if self._outlines.get(pending) is None else None

    def _prefetch(self, slab: SlabData, zi: int, visible: np.ndarray, lut) -> None:
        """Outline (with a LUT: outline and colour) the next slices in the direction of
        travel in the background."""
        if self._outline_pending is not None:
            return
        items = []
        for k in (1, 2):
            zj = zi + k * self.direction
            if not 0 <= zj < slab.key.depth:
                continue
            okey = self._outline_key(slab, zj)
            if lut is not None:
                if self._rgba_key(okey) not in self._outlines:
                    items.append(self._overlay_item(slab, zj, okey))
            elif okey not in self._outlines:
                items.append(OverlayItem(okey, slab.local[zj]))
        if items:
            self.outliner.request(items, visible, self.geometry, lut)

    def _store_outline(self, ckey, disp: np.ndarray) -> None:
        """Keep an outline image or a worker-coloured overlay (one byte budget for both)."""
        old = self._outlines.pop(ckey, None)
        if old is not None:
            self._outline_bytes -= old.nbytes
        self._outlines[ckey] = disp
        self._outline_bytes += disp.nbytes
        self._trim_outlines()

    def _trim_outlines(self) -> None:
        while self._outline_bytes > self.budget.outlines and len(self._outlines) > 1:
            _, old = self._outlines.popitem(last=False)
            self._outline_bytes -= old.nbytes

    @Slot(int, object)
    def _on_outliner_done(self, generation: int, result: OverlayResult) -> None:
        if result.outline is not None:
            self._store_outline(result.outline_key, result.outline)
        if result.rgba is not None and result.rgba_key[1] == self._coloring_version:
            self._store_outline(result.rgba_key, result.rgba)  # (else: coloured with the old)
        pending = self._outline_pending
        if pending is not None and pending in (result.outline_key, result.rgba_key):
            self._outline_pending = None
            self._redraw_timer.stop()
            self._redraw_now()  # a single event: nothing to coalesce

    def _redraw_now(self) -> None:
        self._last_draw = time.perf_counter()
        got = self.current_slab()
        if got is None:
            self.complete = False
            return
        slab, zi = got
        rect = slab.key.region.nm_rect()
        if slab.image is not None:
            self.canvas.set_em(slab.image[zi], rect)
        else:
            self.canvas.set_em(None, rect)
        fraction = slab.missing_fraction(zi)
        self.canvas.set_missing(hatch(slab.missing[zi]) if fraction else None, rect)
        self.missingChanged.emit(fraction)
        self._draw_glyphs(slab.key.region)
        rgba, final = self.overlay_rgba(slab, zi)
        if rgba is not None:
            self.canvas.set_overlay(rgba, rect)
        elif slab.local is None:
            self.canvas.set_overlay(None, rect)
        # (an outline still being computed keeps the previous overlay on screen)
        self.shown = Shown(slab.key, zi, final)
        self.showing_coarser = slab.key.region != self.region
        self.complete = final and not self.showing_coarser
        self.draw_count += 1
        self.drawn.emit()

    def set_sites(self, table, current: int | None = None) -> None:
        """Draw the glyphs of ``table`` (None: none), ``current`` highlighted."""
        self.sites, self.current_site = table, current
        self.request_redraw()

    def _draw_glyphs(self, region: Region) -> None:
        """The site glyphs of the current slice over the region (model renderer; only the
        glyphs in the region are drawn, so the cost does not depend on the table size)."""
        if self.sites is None:
            if self._glyph_key is not None:
                self.canvas.set_glyphs(None, (0, 0, 1, 1))
                self._glyph_key = None
            return
        key = (id(self.sites), region, self.z, self.current_site, self.glyph_style)
        if key == self._glyph_key:
            return
        self._glyph_key = key
        x0, y0, _w, _h = region.nm_rect()
        rx, ry = region.resolution[0], region.resolution[1]
        pic = Picture((x0, y0), (rx, ry), (region.shape[1], region.shape[0]), self.view_res[2])
        glyphs = pic.sites_at(self.sites, self.z, self.glyph_style)
        layer, (ox, oy) = draw_glyphs_cropped(
            pic.size, glyphs, self.z, self.glyph_style, current=self.current_site
        )
        if layer is None:
            self.canvas.set_glyphs(None, (0, 0, 1, 1))
            return
        rect = (x0 + ox * rx, y0 + oy * ry, layer.width * rx, layer.height * ry)
        self.canvas.set_glyphs(np.asarray(layer), rect)

    # -- reading back what is shown ------------------------------------------------------------
    def id_at_nm(self, x_nm: float, y_nm: float) -> int:
        """Segment id under a point of the current slice (0 if none or not loaded)."""
        got = self.current_slab()
        if got is None:
            return 0
        slab, zi = got
        reg = slab.key.region
        x = int(np.floor(x_nm / reg.resolution[0])) - reg.lo[0]
        y = int(np.floor(y_nm / reg.resolution[1])) - reg.lo[1]
        return slab.id_at(zi, y, x)

    def missing_at_nm(self, x_nm: float, y_nm: float) -> bool:
        """Whether the data under a point of the current slice is missing (chunk absent)."""
        got = self.current_slab()
        if got is None or got[0].missing is None:
            return False
        slab, zi = got
        reg = slab.key.region
        x = int(np.floor(x_nm / reg.resolution[0])) - reg.lo[0]
        y = int(np.floor(y_nm / reg.resolution[1])) - reg.lo[1]
        _d, h, w = slab.missing.shape
        return bool(0 <= y < h and 0 <= x < w and slab.missing[zi, y, x])

    def current_image(self) -> np.ndarray | None:
        got = self.current_slab()
        if got is None or got[0].image is None:
            return None
        return got[0].image[got[1]]
