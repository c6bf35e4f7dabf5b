"""A dataset: an image layer and a segmentation layer read together, aligned.

:class:`Dataset` is the one path from "a box at some resolution" to arrays, used by the
GUI's fetcher, the exporter, the CLI and the ImageryClient-compatible API. Arrays are
canonical ``(z, y, x)``, C-contiguous; segmentation is ``uint64``.

Alignment follows ImageryClient exactly (so figures match theirs pixel for pixel): each
layer reads the box converted to its own mip the way cloud-volume does, then the coarser
cutout is stretched onto the finer one's grid by nearest neighbour (see
:mod:`imagery_gui.model.resample`), with ids kept exact.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import (
    BoundsError,
    OutOfBoundsError,
    ResolutionError,
    SourceError,
    SourceTimeoutError,
)
from .geometry import as_resolution, bounds_to_mip_bbox, normalize_bounds
from .resample import resize_nearest, zoom_shape
from .segments import parse_root_ids
from .source import Layer

#: Default size of cloud-volume's in-memory chunk LRU per layer: repeat cutouts of nearby
#: regions (tuning a figure) are served from memory instead of re-downloaded.
DEFAULT_LRU_BYTES = 256 * 1024**2


def _fmt_res(res: Sequence[float] | np.ndarray) -> str:
    return "x".join(str(int(r)) if float(r).is_integer() else f"{r:g}" for r in res)


@dataclass(frozen=True, slots=True)
class RootSelection:
    """What segmentation values to return.

    ``mode`` is ``"all"`` (root ids; supervoxels agglomerated on graphene), ``"supervoxels"``
    (raw ids, ImageryClient's ``root_ids=None``) or ``"list"`` (only ``ids``, others 0).
    """

    mode: str
    ids: tuple[int, ...] = ()

    @classmethod
    def from_arg(cls, root_ids: Any) -> RootSelection:
        if isinstance(root_ids, str) and root_ids == "all":
            return cls("all")
        if root_ids is None:
            return cls("supervoxels")
        # A string of ids ("123, 456") is accepted; any other word is a mistake.
        if isinstance(root_ids, str) and not any(ch.isdigit() for ch in root_ids):
            raise ValueError('root_ids must be None, a list of ids, or "all"')
        return cls("list", tuple(parse_root_ids(root_ids)))


class Dataset:
    """Image and segmentation layers with a default coordinate resolution and mips.

    Parameters
    ----------
    image_source, segmentation_source : str or None
        cloud-volume paths (see :func:`imagery_gui.model.source.parse_source`). Either may
        be None to read only the other.
    resolution : "image", "segmentation" or 3 numbers, optional
        Resolution (nm) in which bounds are given. Defaults to the image's default-mip
        resolution, or the segmentation's when there is no image.
    image_mip, segmentation_mip : int, optional
        Default mips; default is the first mip not marked placeholder.
    secrets : str or dict, optional
        Token for cloud-volume.
    timestamp : optional
        Default time for graphene root-id lookups.
    lru_bytes : int
        Per-layer in-memory chunk cache of cloud-volume.
    lru_encoding : str
        How that cache holds chunks: ``"same"`` as stored (compact), ``"raw"`` decoded (a
        chunk read again costs no decoding: batch figures of neighbouring sites).
    section_reads : bool
        Read boxes a few sections deep (figures) by sections: of a chunk only the
        sections asked for are decoded where its encoding allows (compressed_segmentation),
        and the chunk is kept (``lru_bytes`` of its own) instead of going through
        cloud-volume's reads (:mod:`.sections`). Batch figures use it.
    disk_cache : bool or str
        cloud-volume's disk cache (off by default).
    """

    def __init__(
        self,
        image_source: str | None = None,
        segmentation_source: str | None = None,
        *,
        resolution: Any = None,
        image_mip: Any = None,
        segmentation_mip: Any = None,
        secrets: Any = None,
        timestamp: Any = None,
        lru_bytes: int = DEFAULT_LRU_BYTES,
        disk_cache: bool | str = False,
        use_https: bool = True,
        lru_encoding: str = "same",
        section_reads: bool = False,
        _infos: tuple[dict | None, dict | None] = (None, None),
    ) -> None:
        if image_source is None and segmentation_source is None:
            raise SourceError("give an image source, a segmentation source, or both")
        self._args = dict(
            image_source=image_source,
            segmentation_source=segmentation_source,
            resolution=resolution,
            image_mip=image_mip,
            segmentation_mip=segmentation_mip,
            secrets=secrets,
            timestamp=timestamp,
            lru_bytes=lru_bytes,
            disk_cache=disk_cache,
            use_https=use_https,
            lru_encoding=lru_encoding,
            section_reads=section_reads,
        )
        common = dict(
            secrets=secrets,
            lru_bytes=lru_bytes,
            disk_cache=disk_cache,
            use_https=use_https,
            lru_encoding=lru_encoding,
            section_reads=section_reads,
        )
        self.image: Layer | None = (
            Layer(image_source, "image", info=_infos[0], **common)
            if image_source is not None
            else None
        )
        self.segmentation: Layer | None = (
            Layer(
                segmentation_source, "segmentation", timestamp=timestamp, info=_infos[1], **common
            )
            if segmentation_source is not None
            else None
        )
        self.timestamp = timestamp
        self._resolution_arg = resolution
        self._resolution: np.ndarray | None = None
        self._image_mip_arg = image_mip
        self._segmentation_mip_arg = segmentation_mip
        if resolution is not None and not isinstance(resolution, str):
            self._resolution = as_resolution(resolution)
        elif isinstance(resolution, str) and resolution not in ("image", "segmentation"):
            raise ResolutionError(
                'resolution must be "image", "segmentation" or three numbers in nm, '
                f"got {resolution!r}"
            )

    def open(self) -> Dataset:
        """Read both layers' metadata now, at the same time (over a network, one round
        trip instead of two); errors surface here. Returns the dataset."""
        layers = [layer for layer in (self.image, self.segmentation) if layer is not None]
        if len(layers) == 2:
            other = start_thread(layers[1].open_meta)
            try:
                layers[0].open_meta()
            finally:
                other()
        else:
            layers[0].open_meta()
        _ = self.resolution, self.image_mip, self.segmentation_mip
        return self

    def replica_args(self, **changes: Any) -> dict:
        """Picklable keyword arguments that rebuild this dataset (``Dataset(**args)``),
        e.g. in another process, with ``changes`` applied. Layers already opened pass on
        their ``info``, so the copy opens without a request."""
        infos = tuple(
            layer.info if layer is not None and layer.is_open else None
            for layer in (self.image, self.segmentation)
        )
        return {**self._args, **changes, "_infos": infos}

    def __repr__(self) -> str:
        img = self.image.url if self.image else None
        seg = self.segmentation.url if self.segmentation else None
        return f"Dataset(image={img!r}, segmentation={seg!r})"

    # -- defaults (resolved lazily: constructing a Dataset touches no data) -----------------
    @property
    def image_mip(self) -> int:
        if self.image is None:
            return -1
        if self._image_mip_arg is None:
            return self.image.default_mip
        return self.image.resolve_mip(self._image_mip_arg)

    @property
    def segmentation_mip(self) -> int:
        if self.segmentation is None:
            return -1
        if self._segmentation_mip_arg is None:
            return self.segmentation.default_mip
        return self.segmentation.resolve_mip(self._segmentation_mip_arg)

    @property
    def resolution(self) -> np.ndarray:
        """Resolution (nm) of coordinates when none is given explicitly."""
        if self._resolution is None:
            which = self._resolution_arg
            if which is None:
                which = "image" if self.image is not None else "segmentation"
            if which == "image":
                if self.image is None:
                    raise ResolutionError(
                        'resolution="image" needs an image source; give one or pass '
                        "resolution explicitly"
                    )
                self._resolution = self.image.resolution(self.image_mip)
            else:
                if self.segmentation is None:
                    raise ResolutionError(
                        'resolution="segmentation" needs a segmentation source; give one or '
                        "pass resolution explicitly"
                    )
                self._resolution = self.segmentation.resolution(self.segmentation_mip)
        return self._resolution

    def coord_resolution(self, resolution: Any = None) -> np.ndarray:
        if resolution is None:
            return self.resolution
        if isinstance(resolution, str):
            layer = self.image if resolution == "image" else self.segmentation
            mip = self.image_mip if resolution == "image" else self.segmentation_mip
            if resolution not in ("image", "segmentation") or layer is None:
                raise ResolutionError(
                    f'resolution must be "image", "segmentation" or 3 numbers, got {resolution!r}'
                )
            return layer.resolution(mip)
        return as_resolution(resolution)

    def volume_bounds(self, resolution: Any = None) -> np.ndarray:
        """The union of both layers' extents, as 2x3 voxels at ``resolution``."""
        res = self.coord_resolution(resolution)
        boxes = []
        for layer, mip in (
            (self.image, self.image_mip),
            (self.segmentation, self.segmentation_mip),
        ):
            if layer is None:
                continue
            lo, hi = layer.bounds(mip)
            scale = layer.resolution(mip) / res
            boxes.append((lo * scale, hi * scale))
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        return np.array([np.floor(lo), np.ceil(hi)])

    # -- reading -----------------------------------------------------------------------------
    def _mip_box(
        self, layer: Layer, box: np.ndarray, res: np.ndarray, mip: int, fill_outside: bool = False
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Voxel box at ``mip``; the flag says it misses the volume (only with fill_outside)."""
        lo, hi = bounds_to_mip_bbox(box, res, layer.resolution(mip))
        if np.any(hi - lo <= 0):
            _subvoxel(layer, box, res, mip)
        vlo, vhi = layer.bounds(mip)
        if np.any(hi <= vlo) or np.any(lo >= vhi):
            if fill_outside:
                return lo, hi, True
            scale = layer.resolution(mip) / res
            raise OutOfBoundsError(
                f"bounds {_fmt_box(box)} at {_fmt_res(res)} nm lie entirely outside the "
                f"{layer.kind} volume, which spans {_fmt_box(np.array([vlo * scale, vhi * scale]))} "
                "at that resolution; check the coordinates and their resolution"
            )
        return lo, hi, False

    @staticmethod
    def _read(
        layer: Layer,
        lo: np.ndarray,
        hi: np.ndarray,
        mip: int,
        outside: bool,
        with_missing: bool,
        **kw: Any,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The voxels and, only ``with_missing``, the mask of missing ones (else None)."""
        if outside:
            zeros = np.zeros(tuple(int(v) for v in (hi - lo)[::-1]), dtype=layer.dtype)
            return zeros, None
        if with_missing:
            return layer.read_with_missing(lo, hi, mip, **kw)
        return layer.read(lo, hi, mip, **kw), None

    def read_image(
        self,
        bounds: Any,
        mip: Any = None,
        resolution: Any = None,
        fill_outside: bool = False,
    ) -> np.ndarray:
        """Raw image voxels ``(z, y, x)`` at ``mip`` covering ``bounds`` (2x3 at ``resolution``).

        A box entirely outside the volume raises :class:`OutOfBoundsError`, or reads as
        zeros with ``fill_outside``.
        """
        return self._read_image(bounds, mip, resolution, fill_outside, with_missing=False)[0]

    def read_image_with_missing(
        self,
        bounds: Any,
        mip: Any = None,
        resolution: Any = None,
        fill_outside: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`read_image` and the mask of voxels whose chunks are missing (None when
        none are)."""
        return self._read_image(bounds, mip, resolution, fill_outside, with_missing=True)

    def sharded_scales(self) -> bool | None:
        """Whether a layer has a sharded scale (from infos at hand; None: not known yet)."""
        known = [ly.sharded_scales() for ly in (self.image, self.segmentation) if ly is not None]
        if any(k for k in known):
            return True
        return None if any(k is None for k in known) else False

    def warm_shard_indexes(
        self, bounds: Any, image_mip: Any, segmentation_mip: Any, resolution: Any
    ) -> bool:
        """Fetch the shard indexes of both layers' chunks over ``bounds`` (see
        :meth:`Layer.warm_shard_indexes`); True when a layer is sharded there."""
        box = normalize_bounds(bounds)
        res = self.coord_resolution(resolution)
        any_sharded = False
        for layer, mip in ((self.image, image_mip), (self.segmentation, segmentation_mip)):
            if layer is None:
                continue
            m = layer.resolve_mip(mip)
            lo, hi, outside = self._mip_box(layer, box, res, m, fill_outside=True)
            if not outside:
                any_sharded |= layer.warm_shard_indexes(lo, hi, m)
        return any_sharded

    def _read_image(
        self, bounds: Any, mip: Any, resolution: Any, fill_outside: bool, with_missing: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        layer = self._need(self.image, "image")
        box = normalize_bounds(bounds)
        res = self.coord_resolution(resolution)
        m = self.image_mip if mip is None else layer.resolve_mip(mip)
        lo, hi, outside = self._mip_box(layer, box, res, m, fill_outside)
        return self._read(layer, lo, hi, m, outside, with_missing)

    def read_segmentation(
        self,
        bounds: Any,
        mip: Any = None,
        resolution: Any = None,
        root_ids: Any = "all",
        timestamp: Any = None,
        fill_outside: bool = False,
    ) -> np.ndarray:
        """Segment ids ``(z, y, x)`` (uint64) at ``mip`` covering ``bounds``.

        ``root_ids``: ``"all"``, ``None`` (supervoxels) or a list (other ids become 0).
        """
        return self._read_segmentation(
            bounds, mip, resolution, root_ids, timestamp, fill_outside, with_missing=False
        )[0]

    def read_segmentation_with_missing(
        self,
        bounds: Any,
        mip: Any = None,
        resolution: Any = None,
        root_ids: Any = "all",
        timestamp: Any = None,
        fill_outside: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`read_segmentation` and the mask of voxels whose chunks are missing (None
        when none are)."""
        return self._read_segmentation(
            bounds, mip, resolution, root_ids, timestamp, fill_outside, with_missing=True
        )

    def _read_segmentation(
        self,
        bounds: Any,
        mip: Any,
        resolution: Any,
        root_ids: Any,
        timestamp: Any,
        fill_outside: bool,
        with_missing: bool,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        layer = self._need(self.segmentation, "segmentation")
        sel = root_ids if isinstance(root_ids, RootSelection) else RootSelection.from_arg(root_ids)
        box = normalize_bounds(bounds)
        res = self.coord_resolution(resolution)
        m = self.segmentation_mip if mip is None else layer.resolve_mip(mip)
        lo, hi, outside = self._mip_box(layer, box, res, m, fill_outside)
        ts = timestamp if timestamp is not None else self.timestamp
        kw: dict[str, Any] = {"timestamp": ts, "agglomerate": sel.mode == "all"}
        if sel.mode == "list":
            kw["segids"] = list(sel.ids)
        return self._read(layer, lo, hi, m, outside, with_missing, **kw)

    @contextlib.contextmanager
    def holding(
        self,
        bounds: Any,
        resolution: Any = None,
        image_mip: Any = None,
        segmentation_mip: Any = None,
    ) -> Iterator[None]:
        """Read each layer's voxels under ``bounds`` once, now; until the block ends,
        reads inside them (cutouts of smaller boxes at the same mips) are cut from memory
        (:meth:`Layer.holding`): the same results, each chunk decoded once. ``None``
        bounds, or bounds the reads could not use, hold nothing."""
        plans: list[tuple[Layer, np.ndarray, np.ndarray, int]] = []
        if bounds is not None:
            try:
                box = normalize_bounds(bounds)
                res = self.coord_resolution(resolution)
                for layer, mip, default in (
                    (self.image, image_mip, "image_mip"),
                    (self.segmentation, segmentation_mip, "segmentation_mip"),
                ):
                    if layer is None:
                        continue
                    m = getattr(self, default) if mip is None else layer.resolve_mip(mip)
                    lo, hi, outside = self._mip_box(layer, box, res, m, fill_outside=True)
                    if not outside:
                        plans.append((layer, lo, hi, m))
            except Exception:  # noqa: BLE001 - the reads inside meet the problem themselves
                plans = []
        with contextlib.ExitStack() as stack:
            for layer, lo, hi, m in plans:
                stack.enter_context(layer.holding(lo, hi, m))
            yield

    def aligned_cutout(
        self,
        bounds: Any,
        image_mip: Any = None,
        segmentation_mip: Any = None,
        resolution: Any = None,
        root_ids: Any = "all",
        timestamp: Any = None,
        resize: bool = True,
        scale_to_bounds: bool = False,
        fill_outside: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image and segmentation ``(z, y, x)`` on one pixel grid.

        The finer layer sets the grid (or, with ``scale_to_bounds``, the bounds do: one
        pixel per voxel at ``resolution``); the other is resampled onto it by nearest
        neighbour. Same rules and pixels as ImageryClient's
        ``image_and_segmentation_cutout``.
        """
        img, seg, _ = self._aligned_cutout(
            bounds,
            image_mip,
            segmentation_mip,
            resolution,
            root_ids,
            timestamp,
            resize,
            scale_to_bounds,
            fill_outside,
            with_missing=False,
        )
        return img, seg

    def aligned_cutout_with_missing(
        self,
        bounds: Any,
        image_mip: Any = None,
        segmentation_mip: Any = None,
        resolution: Any = None,
        root_ids: Any = "all",
        timestamp: Any = None,
        resize: bool = True,
        scale_to_bounds: bool = False,
        fill_outside: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`aligned_cutout` and the mask of output pixels whose chunks are missing in
        either layer (None when none are)."""
        return self._aligned_cutout(
            bounds,
            image_mip,
            segmentation_mip,
            resolution,
            root_ids,
            timestamp,
            resize,
            scale_to_bounds,
            fill_outside,
            with_missing=True,
        )

    def _aligned_cutout(
        self,
        bounds: Any,
        image_mip: Any,
        segmentation_mip: Any,
        resolution: Any,
        root_ids: Any,
        timestamp: Any,
        resize: bool,
        scale_to_bounds: bool,
        fill_outside: bool,
        with_missing: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        img_layer = self._need(self.image, "image")
        seg_layer = self._need(self.segmentation, "segmentation")
        box = normalize_bounds(bounds)
        res = self.coord_resolution(resolution)
        im = self.image_mip if image_mip is None else img_layer.resolve_mip(image_mip)
        sm = (
            self.segmentation_mip
            if segmentation_mip is None
            else seg_layer.resolve_mip(segmentation_mip)
        )
        img, img_gap = self._read_image(box, im, res, fill_outside, with_missing)
        seg, seg_gap = self._read_segmentation(
            box, sm, res, root_ids, timestamp, fill_outside, with_missing
        )
        return align_pair(
            (img, img_gap),
            (seg, seg_gap),
            self.zoom_target(im, sm),
            bounds_shape_zyx(box) if scale_to_bounds else None,
            resize,
        )

    def zoom_target(self, image_mip: int, segmentation_mip: int) -> str | None:
        """Which layer's grid the other is resampled onto by :meth:`aligned_cutout`:
        ``"segmentation"`` (finer or equal in every axis), ``"image"``, or None (same)."""
        img_res = self._need(self.image, "image").resolution(image_mip)
        seg_res = self._need(self.segmentation, "segmentation").resolution(segmentation_mip)
        if np.all(img_res == seg_res):
            return None
        return "segmentation" if np.all(img_res >= seg_res) else "image"

    @staticmethod
    def _need(layer: Layer | None, kind: str) -> Layer:
        if layer is None:
            raise SourceError(f"this dataset has no {kind} source")
        return layer


def _subvoxel(layer: Layer, box: np.ndarray, res: np.ndarray, mip: int) -> None:
    raise BoundsError(
        f"bounds {_fmt_box(box)} at {_fmt_res(res)} nm are smaller than one voxel of the "
        f"{layer.kind} at mip {mip} ({_fmt_res(layer.resolution(mip))} nm); make the box "
        "larger or use a finer mip"
    )


def _fmt_box(box: np.ndarray) -> str:
    def pt(p: np.ndarray) -> str:
        return "[" + ", ".join(f"{v:g}" for v in np.asarray(p, dtype=float)) + "]"

    return f"{pt(box[0])}-{pt(box[1])}"


def start_thread(job: Callable[[], Any]) -> Callable[..., Any]:
    """Run ``job`` in a daemon thread; the returned function waits for its result (or
    raises its exception). A thread that is never waited for finishes on its own.
    ``result(timeout=s)`` raises SourceTimeoutError after ``s`` seconds without one."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = job()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the waiting thread
            out["error"] = exc

    # in a copy of the caller's context: a read's rank in the chunk pool (chunkpool.ranked)
    # holds for both of its layers
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(run,), name="imagery-gui-read-labels", daemon=True
    )
    thread.start()

    def result(timeout: float | None = None) -> Any:
        thread.join(timeout)
        if thread.is_alive():
            raise SourceTimeoutError(
                f"no answer from the data source within {timeout:g} s (the server may be "
                "down or very slow)"
            )
        if "error" in out:
            raise out["error"]
        return out["value"]

    return result


def align_pair(
    image: tuple[np.ndarray, np.ndarray | None],
    labels: tuple[np.ndarray, np.ndarray | None],
    zoom_to: str | None,
    bounds_shape: Sequence[int] | None = None,
    resize: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Put image and labels (each with its missing-chunk mask or None) on one grid.

    ``zoom_to`` is :meth:`Dataset.zoom_target`; ``bounds_shape`` (ImageryClient's
    ``scale_to_bounds``) first zooms the layers at bounds resolution to that shape. Nearest
    neighbour throughout, so labels may be relabelled (e.g. to local numbers) before or
    after with the same result. Returns ``(image, labels, missing)``; ``missing`` is None
    when no chunk is missing or the layers end on different grids.
    """
    img, img_gap = image
    seg, seg_gap = labels

    def resample(arr, gap, shape):
        return resize_nearest(arr, shape), (None if gap is None else resize_nearest(gap, shape))

    if bounds_shape is not None:
        if zoom_to in (None, "image"):
            img, img_gap = resample(img, img_gap, _bounds_shape_for(img, bounds_shape))
        if zoom_to in (None, "segmentation"):
            seg, seg_gap = resample(seg, seg_gap, _bounds_shape_for(seg, bounds_shape))
    if resize and zoom_to == "segmentation":
        shape = zoom_shape(img.shape, np.divide(seg.shape, img.shape))
        img, img_gap = resample(img, img_gap, shape)
    elif resize and zoom_to == "image":
        shape = zoom_shape(seg.shape, np.divide(img.shape, seg.shape))
        seg, seg_gap = resample(seg, seg_gap, shape)
    gaps = [g for g in (img_gap, seg_gap) if g is not None]
    missing = None
    if gaps and all(g.shape == img.shape for g in gaps):
        missing = np.logical_or.reduce(gaps)
    return img, seg, missing


def bounds_shape_zyx(box: np.ndarray) -> tuple[int, int, int]:
    """Shape ``(z, y, x)`` a box maps to at one pixel per voxel (rounded like zoom)."""
    size = np.asarray(box[1], dtype=np.float64) - np.asarray(box[0], dtype=np.float64)
    return tuple(int(round(s)) for s in size[::-1])  # type: ignore[return-value]


def _bounds_shape_for(arr: np.ndarray, target_zyx: Sequence[int]) -> tuple[int, ...]:
    return zoom_shape(arr.shape, np.divide(np.asarray(target_zyx, dtype=float), arr.shape))


def rescale_to_bounds(arr: np.ndarray, target_zyx: Sequence[int]) -> np.ndarray:
    """ImageryClient's ``rescale_to_bounds`` (zoom to the bounds' size), ids kept exact."""
    return resize_nearest(arr, _bounds_shape_for(arr, target_zyx))
