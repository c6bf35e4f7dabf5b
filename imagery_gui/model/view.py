"""The viewer's data model, without Qt: what to fetch, how to keep it, how to colour it.

* **Regions and slabs.** The viewer shows a chunk-aligned *region* of the plane (the
  visible area plus a margin) at an image mip chosen for the zoom level. Data is fetched
  as *slabs*: the region times one chunk of z slices (a single-slice read of a volume
  chunked 16 or 64 deep downloads the whole chunk anyway). Panning inside the region and
  stepping z inside a slab need no I/O.
* **Local ids.** Each slab keeps its segmentation as small local numbers (``uint16``
  usually) plus the table of the 18-digit ids they stand for. Colour, alpha and selection
  changes rebuild only a lookup table with one row per id in the slab.
* **Cache.** Slabs live in an LRU bounded in bytes.

Reads go through :meth:`Dataset.aligned_cutout`, the same path as exports and the
ImageryClient-compatible API.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import fastremap
import numpy as np

from . import colors, render
from .dataset import Dataset, align_pair, start_thread
from .style import OverlayStyle, Selection

#: Largest region side, in pixels at the chosen mip.
MAX_REGION_PX = 4096


@dataclass(frozen=True, slots=True)
class Region:
    """A chunk-aligned rectangle of the plane at an image mip (half-open, mip voxels)."""

    image_mip: int
    segmentation_mip: int
    lo: tuple[int, int]
    hi: tuple[int, int]
    resolution: tuple[float, float, float]  # nm per voxel at image_mip

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (self.hi[1] - self.lo[1], self.hi[0] - self.lo[0])

    def nm_rect(self) -> tuple[float, float, float, float]:
        """(x0, y0, width, height) in nm."""
        rx, ry = self.resolution[0], self.resolution[1]
        return (
            self.lo[0] * rx,
            self.lo[1] * ry,
            (self.hi[0] - self.lo[0]) * rx,
            (self.hi[1] - self.lo[1]) * ry,
        )

    def contains_nm(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        rx, ry = self.resolution[0], self.resolution[1]
        return (
            self.lo[0] * rx <= x0
            and self.lo[1] * ry <= y0
            and self.hi[0] * rx >= x1
            and self.hi[1] * ry >= y1
        )


@dataclass(frozen=True, slots=True)
class SlabKey:
    """One fetch unit: a region times a chunk of z slices ``[z0, z1)`` (image-mip voxels)."""

    region: Region
    z0: int
    z1: int
    agglomerate: bool = True
    timestamp: Any = None
    dataset: int = 0  # which opened dataset: equal regions of two datasets are different slabs

    @property
    def depth(self) -> int:
        return self.z1 - self.z0


@dataclass(frozen=True, slots=True)
class SlabData:
    """Decoded data of a slab. Arrays are never modified after creation.

    ``image`` is ``(depth, height, width)`` (None without an image layer); ``local`` holds
    local segment numbers (0 = no segment) and ``ids[local]`` the real ids (``uint64``).
    """

    key: SlabKey
    image: np.ndarray | None
    local: np.ndarray | None
    ids: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.uint64))
    missing: np.ndarray | None = None  # (depth, height, width) True where chunks are missing

    @property
    def nbytes(self) -> int:
        arrays = (self.image, self.local, self.ids, self.missing)
        return sum(a.nbytes for a in arrays if a is not None)

    def missing_fraction(self, zi: int) -> float:
        return float(self.missing[zi].mean()) if self.missing is not None else 0.0

    def id_at(self, z: int, y: int, x: int) -> int:
        """Segment id at a slab voxel (0 outside or without segmentation)."""
        if self.local is None:
            return 0
        d, h, w = self.local.shape
        if not (0 <= z < d and 0 <= y < h and 0 <= x < w):
            return 0
        return int(self.ids[self.local[z, y, x]])


def localize(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber a ``(z, y, x)`` label block to local numbers; returns ``(local, ids)``.

    ``ids`` is sorted with ``ids[0] == 0``; ``local`` is uint16 (uint32 above 65535 ids).
    Works one slice at a time: fastremap holds the GIL while it runs, and a whole slab in
    one call would freeze the GUI thread for tens of milliseconds.
    """
    parts = [
        fastremap.renumber(labels[z], preserve_zero=True, in_place=False)
        for z in range(labels.shape[0])
    ]
    found = [np.fromiter((int(k) for k in m), dtype=np.uint64, count=len(m)) for _, m in parts]
    ids = np.unique(np.concatenate([np.zeros(1, dtype=np.uint64), *found]))
    dtype = np.uint16 if len(ids) <= 65536 else np.uint32
    local = np.empty(labels.shape, dtype=dtype)
    for z, (renum, mapping) in enumerate(parts):
        table = np.zeros(int(max(mapping.values(), default=0)) + 1, dtype=dtype)
        keys = np.fromiter((int(k) for k in mapping), dtype=np.uint64, count=len(mapping))
        vals = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
        table[vals] = np.searchsorted(ids, keys)
        local[z] = table[renum]
    return local, ids


def warm_slab_indexes(dataset: Dataset, key: SlabKey, z_lo: int, z_hi: int) -> bool:
    """Fetch the shard indexes of ``key``'s region over slices ``[z_lo, z_hi)`` in both
    layers (see :meth:`Dataset.warm_shard_indexes`); False when neither is sharded."""
    reg = key.region
    box = np.array([[reg.lo[0], reg.lo[1], z_lo], [reg.hi[0], reg.hi[1], z_hi]], dtype=np.float64)
    return dataset.warm_shard_indexes(
        box, reg.image_mip, reg.segmentation_mip, np.asarray(reg.resolution)
    )


def fetch_slab(dataset: Dataset, key: SlabKey) -> SlabData:
    """Read a slab through the dataset's aligned-cutout path (zeros outside the volume)."""
    reg = key.region
    box = np.array(
        [[reg.lo[0], reg.lo[1], key.z0], [reg.hi[0], reg.hi[1], key.z1]], dtype=np.float64
    )
    res = np.asarray(reg.resolution)
    image = labels = None
    root_ids = "all" if key.agglomerate else None
    if dataset.image is not None and dataset.segmentation is not None:
        # aligned_cutout's reads and grid, but both layers are read at once (over a
        # network the slab arrives in the time of the slower read, not the sum), and ids
        # are made local before the labels are upsampled: the same pixels, with a quarter
        # of the work and memory at 2x.
        def labels_job():
            labels, gap = dataset.read_segmentation_with_missing(
                box, reg.segmentation_mip, res, root_ids, key.timestamp, True
            )
            return localize(labels), gap

        labels_result = start_thread(labels_job)
        image, img_gap = dataset.read_image_with_missing(box, reg.image_mip, res, fill_outside=True)
        (local, ids), seg_gap = labels_result()
        image, local, missing = align_pair(
            (image, img_gap),
            (local, seg_gap),
            dataset.zoom_target(reg.image_mip, reg.segmentation_mip),
        )
        return SlabData(key, image, local, ids, missing)
    elif dataset.image is not None:
        image, missing = dataset.read_image_with_missing(box, reg.image_mip, res, fill_outside=True)
    else:
        labels, missing = dataset.read_segmentation_with_missing(
            box,
            reg.segmentation_mip,
            res,
            root_ids,
            key.timestamp,
            fill_outside=True,
        )
    if labels is not None:
        local, ids = localize(labels)
        return SlabData(key, image, local, ids, missing)
    return SlabData(key, image, None, missing=missing)


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """How the viewer's one memory bound (Settings > Memory cache) is shared out: decoded
    slabs, outline images, and cloud-volume's per-layer LRU of compressed chunk files (in
    the read process, and in the viewer's process for exports). The parts add up to
    ``total``; what a read holds while in flight comes on top."""

    total: int

    @property
    def slabs(self) -> int:
        return self.total * 5 // 8

    @property
    def outlines(self) -> int:
        return self.total // 8

    @property
    def chunk_lru_per_layer(self) -> int:
        """Per layer, in the process that reads (two layers: an eighth in all)."""
        return self.total // 16


class SlabCache:
    """LRU of slabs bounded in bytes. Thread-safe.

    The slabs named by :meth:`keep` (the view's: the slab on screen and its coarser
    fallback) are evicted last: slabs read ahead arriving while the view stands still
    must not push out the one it shows, which then had to be read again and left a scrub
    starting meanwhile with nothing to show."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[SlabKey, SlabData] = OrderedDict()
        self._bytes = 0
        self._keep: frozenset[SlabKey] = frozenset()
        self._lock = threading.Lock()
        self.evicted = 0  # slabs evicted so far (diagnostics, tests)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: SlabKey) -> bool:
        return key in self._items

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: SlabKey) -> SlabData | None:
        with self._lock:
            slab = self._items.get(key)
            if slab is not None:
                self._items.move_to_end(key)
            return slab

    def put(self, slab: SlabData) -> None:
        with self._lock:
            old = self._items.pop(slab.key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[slab.key] = slab
            self._bytes += slab.nbytes
            self._evict()

    def set_limit(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = int(max_bytes)
            self._evict()

    def keep(self, keys: Iterable[SlabKey]) -> None:
        """Evict these last (the slabs the view shows now); replaces the previous set."""
        with self._lock:
            self._keep = frozenset(keys)

    def _evict(self) -> None:
        if self._bytes <= self.max_bytes:
            return
        order = [k for k in self._items if k not in self._keep]
        order += [k for k in self._items if k in self._keep]
        for key in order:
            if self._bytes <= self.max_bytes or len(self._items) <= 1:
                break
            evicted = self._items.pop(key)
            self._bytes -= evicted.nbytes
            self.evicted += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


# -- planning --------------------------------------------------------------------------------
def choose_mips(dataset: Dataset, nm_per_screen_px: float) -> tuple[int, int]:
    """The coarsest image mip whose pixels are not larger than a screen pixel, and the
    segmentation mip closest to it without being coarser (finest when none fits)."""
    img_mip = -1
    if dataset.image is not None:
        base = dataset.image_mip
        img_mip = base
        for m in range(base, dataset.image.num_mips):
            if dataset.image.scales[m].placeholder:
                continue
            if dataset.image.resolution(m)[0] <= nm_per_screen_px * 1.0001:
                img_mip = m
        target = dataset.image.resolution(img_mip)[0]
    else:
        target = nm_per_screen_px
    seg_mip = -1
    if dataset.segmentation is not None:
        seg = dataset.segmentation
        seg_mip = dataset.segmentation_mip
        for m in range(dataset.segmentation_mip, seg.num_mips):
            if seg.scales[m].placeholder:
                continue
            if seg.resolution(m)[0] <= target * 1.0001:
                seg_mip = m
        if dataset.image is None:
            img_mip = -1
    return img_mip, seg_mip


def _grid_layer(dataset: Dataset):
    """The layer whose mip grid the view uses (the image's, else the segmentation's)."""
    return dataset.image if dataset.image is not None else dataset.segmentation


def plan_region(
    dataset: Dataset,
    visible_nm: tuple[float, float, float, float],
    image_mip: int,
    segmentation_mip: int,
    margin: float = 0.25,
) -> Region | None:
    """A chunk-aligned region covering ``visible_nm`` = (x0, y0, x1, y1) plus a margin,
    clipped to the volume; None if the view lies outside the volume."""
    layer = _grid_layer(dataset)
    mip = image_mip if dataset.image is not None else segmentation_mip
    res = layer.resolution(mip)
    chunk = layer.chunk_size(mip)
    vlo, vhi = layer.bounds(mip)
    x0, y0, x1, y1 = visible_nm
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    lo = np.floor(np.array([(x0 - mx) / res[0], (y0 - my) / res[1]]))
    hi = np.ceil(np.array([(x1 + mx) / res[0], (y1 + my) / res[1]]))
    # Never ask for more than MAX_REGION_PX a side: keep the centre.
    for a in range(2):
        if hi[a] - lo[a] > MAX_REGION_PX:
            c = (hi[a] + lo[a]) / 2
            lo[a], hi[a] = c - MAX_REGION_PX / 2, c + MAX_REGION_PX / 2
    off = vlo[:2]
    lo = np.floor((lo - off) / chunk[:2]) * chunk[:2] + off
    hi = np.ceil((hi - off) / chunk[:2]) * chunk[:2] + off
    lo = np.maximum(lo, vlo[:2])
    hi = np.minimum(hi, vhi[:2])
    if np.any(hi <= lo):
        return None
    return Region(
        image_mip=image_mip,
        segmentation_mip=segmentation_mip,
        lo=(int(lo[0]), int(lo[1])),
        hi=(int(hi[0]), int(hi[1])),
        resolution=tuple(float(r) for r in res),  # type: ignore[arg-type]
    )


def coarser_regions(
    dataset: Dataset, region: Region, nm_per_px: float, levels: int = 3
) -> list[Region]:
    """``region`` (planned for a view of ``nm_per_px``) at up to ``levels`` coarser mips
    (2x, 4x, 8x the screen pixel), each covering it, finest first: what the view falls
    back to while the network cannot carry ``region``. A level counts where some layer
    is coarser than at the level before and none is finer (EM image chunks are most of
    the bytes; a segmentation without a coarser mip stays at its own)."""
    out: list[Region] = []
    x0, y0, w, h = region.nm_rect()
    last = (region.image_mip, region.segmentation_mip)
    for k in range(1, levels + 1):
        mips = choose_mips(dataset, nm_per_px * 2**k)
        layers = [(m, p) for m, p in zip(mips, last) if m >= 0]
        if not layers or any(m < p for m, p in layers) or all(m == p for m, p in layers):
            continue
        coarse = plan_region(dataset, (x0, y0, x0 + w, y0 + h), *mips, margin=0.0)
        if coarse is not None:
            out.append(coarse)
            last = mips
    return out


def z_slab(dataset: Dataset, region: Region, z_mip: int) -> tuple[int, int] | None:
    """The chunk of z slices ``[z0, z1)`` (region-mip voxels) holding ``z_mip``."""
    layer = _grid_layer(dataset)
    mip = region.image_mip if dataset.image is not None else region.segmentation_mip
    vlo, vhi = layer.bounds(mip)
    if not vlo[2] <= z_mip < vhi[2]:
        return None
    cz = int(layer.chunk_size(mip)[2])
    z0 = (z_mip - int(vlo[2])) // cz * cz + int(vlo[2])
    return z0, min(z0 + cz, int(vhi[2]))


def z_range(dataset: Dataset, region: Region) -> tuple[int, int]:
    layer = _grid_layer(dataset)
    mip = region.image_mip if dataset.image is not None else region.segmentation_mip
    vlo, vhi = layer.bounds(mip)
    return int(vlo[2]), int(vhi[2])


def prefetch_order(
    current: tuple[int, int], direction: int, zmin: int, zmax: int, ahead: int = 2, back: int = 1
) -> list[tuple[int, int]]:
    """Slabs to fetch after ``current``: ``ahead`` chunks in the direction of travel, then
    ``back`` (one, or none) behind."""
    z0, z1 = current
    depth = z1 - z0
    out = []
    step = 1 if direction >= 0 else -1
    for k in range(1, ahead + 1):
        a = z0 + step * k * depth
        if zmin <= a < zmax:
            out.append((a, min(a + depth, zmax)))
    b = z0 - step * depth
    if back > 0 and zmin <= b < zmax:
        out.append((b, min(b + depth, zmax)))
    return out


# -- colours ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Coloring:
    """How the view colours segments: the style and the selection (the colour rule itself
    is :mod:`imagery_gui.model.colors`, shared with every export and link)."""

    style: OverlayStyle = field(default_factory=OverlayStyle)
    selection: Selection = field(default_factory=Selection)

    @property
    def show_all(self) -> bool:
        return self.style.show_unselected

    @property
    def selected(self) -> tuple[int, ...]:
        return self.selection.ids

    def lut(self, ids: np.ndarray) -> np.ndarray:
        """RGBA lookup table ``(len(ids), 4)`` for a slab's local ids (row 0 transparent)."""
        return colors.lut(ids, self.style, self.selection)

    def visible(self, ids: np.ndarray) -> np.ndarray:
        """Which local ids are drawn (bool per row; row 0, id 0, never)."""
        return colors.visible(ids, self.style, self.selection)


def outline_display(local2d: np.ndarray, visible: np.ndarray, geom: render.Geometry) -> np.ndarray:
    """Local ids to show per pixel for outlines (0 = nothing), top-most where they overlap.

    Only visible segments are outlined, so hidden ones neither get nor block outlines.
    """
    n = len(visible)
    all_visible = bool(visible[1:].all())
    if geom.side == "in" and not geom.merge_outline:
        # Inner outlines never overlap: work on the local ids directly.
        shown = (
            local2d if all_visible else np.where(visible[local2d], local2d, 0).astype(local2d.dtype)
        )
        band = render.inner_band(shown, int(geom.width))
        return np.where(band & (shown > 0), shown, 0).astype(local2d.dtype)
    if all_visible:
        index = local2d.astype(np.int32) - 1  # -1 = none
    else:
        index = np.where(visible[local2d], local2d.astype(np.int32), 0) - 1
    cov = render.coverage_from_index(index, max(n - 1, 1), geom, need_hidden_rgb=False)
    out: np.ndarray = (cov.base + 1).astype(local2d.dtype).reshape(-1)
    for pix, idx in cov.extra:  # later segments draw over earlier ones
        out[pix] = idx + 1
    out = out.reshape(local2d.shape)
    if cov.keep is not None:
        out[~cov.keep] = 0
    return out


#: Slices with more pixels than this are outlined in bands of rows, with the same result:
#: each numpy call then holds Python's GIL for a few ms rather than 50 or more, so the
#: outline worker never keeps the GUI thread waiting that long.
OUTLINE_BAND_PX = 1 << 19


def outline_display_banded(
    local2d: np.ndarray,
    visible: np.ndarray,
    geom: render.Geometry,
    band_px: int = OUTLINE_BAND_PX,
) -> np.ndarray:
    """:func:`outline_display` a band of rows at a time. An outline pixel depends only on
    the ids within ``width`` of it, so each band is computed with ``width + 2`` rows of
    context on either side and only its own rows are kept: identical to the whole."""
    h, w = local2d.shape
    rows = max(1, band_px // max(w, 1))
    if h <= rows:
        return outline_display(local2d, visible, geom)
    halo = int(geom.width) + 2
    out = np.empty_like(local2d)
    for y0 in range(0, h, rows):
        y1 = min(y0 + rows, h)
        a, b = max(0, y0 - halo), min(h, y1 + halo)
        out[y0:y1] = outline_display(local2d[a:b], visible, geom)[y0 - a : y1 - a]
    return out


def hatch(mask: np.ndarray) -> np.ndarray:
    """RGBA ``(h, w, 4)``: diagonal red stripes over a dark veil where ``mask`` is True.

    Marks pixels whose chunks are missing, so they are not mistaken for black imagery or
    for "no segment".
    """
    h, w = mask.shape
    yy, xx = np.ogrid[:h, :w]
    stripe = ((xx + yy) // 5) % 3 == 0
    out = np.zeros((h, w, 4), dtype=np.uint8)
    out[mask] = (20, 20, 20, 110)
    out[mask & stripe] = (230, 70, 70, 200)
    return out


def describe_bytes(n: float) -> str:
    """``812 B``, ``3.4 MiB``..."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def auto_levels(image: np.ndarray) -> tuple[float, float]:
    """A contrast window from one view: its 0.5th and 99.5th percentiles."""
    lo, hi = np.percentile(image, [0.5, 99.5])
    return float(lo), float(hi)
