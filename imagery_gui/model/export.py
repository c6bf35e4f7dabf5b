"""Publication export: exact-pixel figures with provenance, z-series, montages and masks.

One code path for the viewer's *Export*, the headless ``imagery-gui export`` and scripts:
:func:`make_figure` cuts out and renders, :func:`write_figure` writes.

* Pixels are the cutout's own (or an integer upscale by pixel replication), never
  resampled: without style options a slice is exactly ``composite_overlay(segs,
  imagery=image)`` of ``image_and_segmentation_cutout(..., split_segmentations=True)``.
* Every figure gets a provenance JSON beside it (sources, bounds, resolution, mips,
  timestamp, ids with their colours, style, version) so it can be remade.
* Writes are atomic, nothing is overwritten without ``force``, and every target is checked
  before the first file is written, so a failing export leaves nothing half-done.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .._version import __version__
from . import render
from .colors import segment_alphas, segment_colors
from .dataset import Dataset, bounds_shape_zyx, rescale_to_bounds
from .errors import ExportError
from .geometry import normalize_bounds
from .glyphs import GlyphStyle
from .io import check_writable, save_json_atomic, save_png_atomic
from .palette import to_hex
from .scalebar import ScaleBar
from .segments import warn_absent_ids
from .style import OverlayStyle, Selection

# Re-exported: redact_url was defined here first (tests and scripts import it from export).
from .urls import redact_url

Progress = Callable[[int, int, str], None]


#: The exporter's default style: ImageryClient's ``composite_overlay`` defaults (alpha 0.2,
#: 10 px outer merged outlines, husl), with colours by id like the viewer's.
EXPORT_STYLE = OverlayStyle(alpha=0.2, selected_alpha=0.2, width=10, side="out", merge_outline=True)


@dataclass(frozen=True, slots=True)
class FigureSpec:
    """What to cut out and how to draw it.

    ``bounds`` is 2x3 voxels at ``resolution`` (nm; None = the dataset's default).
    Which segments are drawn follows from ``style`` and ``selection``: every segment when
    ``style.show_unselected``, else only the selected ones. ``scale`` is an integer
    upscale factor.
    """

    bounds: tuple[tuple[float, float, float], tuple[float, float, float]]
    resolution: tuple[float, float, float] | None = None
    image_mip: int | None = None
    segmentation_mip: int | None = None
    selection: Selection = field(default_factory=Selection)
    timestamp: Any = None
    style: OverlayStyle = EXPORT_STYLE
    scale: int = 1
    scale_bar: ScaleBar | None = None
    dpi: int = 300
    sites: Any = None  # a SiteTable whose glyphs are drawn (imagery_gui.model.sites)
    glyph_style: GlyphStyle = field(default_factory=GlyphStyle)
    current_site: int | None = None  # its row is drawn highlighted
    annotate: bool = True  # False: sites are recorded, no glyphs drawn

    def __post_init__(self) -> None:
        if int(self.scale) != self.scale or self.scale < 1:
            raise ValueError(f"scale must be a whole number >= 1, got {self.scale!r}")
        if not 1 <= int(self.dpi) <= 10000:
            raise ValueError(f"dpi must be between 1 and 10000, got {self.dpi!r}")

    @classmethod
    def from_center(cls, center: Sequence[float], size: Sequence[int], **kw: Any) -> FigureSpec:
        from .geometry import bounds_from_center

        size3 = list(size) + [1] * (3 - len(size))
        box = bounds_from_center(np.asarray(center), *size3)
        return cls(bounds=_as_box(box), **kw)

    @property
    def root_ids(self) -> Any:
        """``"all"`` or the tuple of ids drawn (the cutout's ``root_ids``)."""
        return "all" if self.style.show_unselected else self.selection.ids

    def root_list(self) -> list[int] | None:
        return None if self.style.show_unselected else list(self.selection.ids)


def _as_box(box: Any) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    arr = normalize_bounds(box)
    return (tuple(float(v) for v in arr[0]), tuple(float(v) for v in arr[1]))  # type: ignore[return-value]


@dataclass
class Figure:
    """A rendered figure: one image per z slice, and what went into it."""

    slices: list[Image.Image]
    z_values: list[int]
    ids: list[int]
    colors: np.ndarray  # (n, 3) uint8, in the order of ``ids``
    nm_per_px: tuple[float, float]
    image_mip: int | None
    segmentation_mip: int | None
    resolution: tuple[float, float, float]
    scale_bar_nm: float | None = None
    labels: np.ndarray | None = None  # (z, y, x) ids on the figure's pixel grid (before scale)
    site_rows: list[int] = field(default_factory=list)  # rows of spec.sites drawn


def figure_cutout(
    dataset: Dataset, spec: FigureSpec
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Image and segmentation ``(z, y, x)`` for a figure, by ImageryClient's rules.

    Same result as ``image_and_segmentation_cutout(bounds, image_mip, segmentation_mip,
    root_ids, resolution=..., timestamp=...)`` with its default ``scale_to_bounds``
    (rescale when no mip is given). Works with only one of the two layers too.
    """
    box = normalize_bounds(spec.bounds)
    res = dataset.coord_resolution(spec.resolution)
    root_ids: Any = "all" if spec.root_list() is None else spec.root_list()
    scale = spec.image_mip is None and spec.segmentation_mip is None
    if dataset.image is not None and dataset.segmentation is not None:
        img, seg = dataset.aligned_cutout(
            box,
            image_mip=spec.image_mip,
            segmentation_mip=spec.segmentation_mip,
            resolution=res,
            root_ids=root_ids,
            timestamp=spec.timestamp,
            scale_to_bounds=scale,
        )
        return img, seg, res
    target = bounds_shape_zyx(box)
    if dataset.image is not None:
        img = dataset.read_image(box, spec.image_mip, res)
        return (rescale_to_bounds(img, target) if scale else img), None, res
    seg = dataset.read_segmentation(box, spec.segmentation_mip, res, root_ids, spec.timestamp)
    return None, (rescale_to_bounds(seg, target) if scale else seg), res


def make_figure(dataset: Dataset, spec: FigureSpec, progress: Progress | None = None) -> Figure:
    """Cut out and render a figure (one image per z slice)."""
    img, seg, res = figure_cutout(dataset, spec)
    grid = img if img is not None else seg
    assert grid is not None
    box = normalize_bounds(spec.bounds)
    depth, height, width = grid.shape
    nm_per_px = (
        float((box[1][0] - box[0][0]) * res[0] / width),
        float((box[1][1] - box[0][1]) * res[1] / height),
    )
    if seg is not None:
        ids, index = render.ids_and_index(seg)
    else:
        ids, index = [], None
    table = segment_colors(ids, spec.style, spec.selection.explicit)
    alphas = segment_alphas(ids, spec.style, spec.selection)
    geom = spec.style.geometry()
    z0 = int(math.floor(box[0][2]))
    z_values = [z0 + int(round(i * (box[1][2] - box[0][2]) / depth)) for i in range(depth)]
    slices: list[Image.Image] = []
    site_rows: set[int] = set()
    bar_nm = None
    for z in range(depth):
        if progress:
            progress(z, depth, f"rendering slice {z + 1} of {depth}")
        under = img[z] if img is not None else None
        if index is not None and ids:
            cov = render.coverage_from_index(
                index[z], len(ids), geom, need_hidden_rgb=under is None
            )
            overlay = render.blend(cov, table, alphas)
        else:
            overlay = np.zeros((height, width, 4), dtype=np.uint8)
        out = render.composite(under, overlay)
        if spec.scale > 1:
            out = out.resize((width * spec.scale, height * spec.scale), Image.Resampling.NEAREST)
        if spec.sites is not None and spec.annotate:
            out, rows = _annotate(out, spec, box, res, nm_per_px, z_values[z])
            site_rows.update(rows)
        if spec.scale_bar is not None:
            out, bar_nm = spec.scale_bar.draw(out, nm_per_px[0] / spec.scale)
        slices.append(out)
    if progress:
        progress(depth, depth, "rendered")
    return Figure(
        slices=slices,
        z_values=z_values,
        ids=ids,
        colors=table,
        nm_per_px=nm_per_px,
        image_mip=dataset.image_mip if spec.image_mip is None and dataset.image else spec.image_mip,
        segmentation_mip=(
            dataset.segmentation_mip
            if spec.segmentation_mip is None and dataset.segmentation
            else spec.segmentation_mip
        ),
        resolution=tuple(float(r) for r in res),  # type: ignore[arg-type]
        scale_bar_nm=bar_nm,
        labels=seg,
        site_rows=sorted(site_rows),
    )


def _annotate(
    out: Image.Image, spec: FigureSpec, box: np.ndarray, res: np.ndarray, nm_per_px, z: int
) -> tuple[Image.Image, list[int]]:
    """The site glyphs of section ``z`` drawn over one rendered slice (after upscaling, so
    strokes stay sharp and grow with ``scale``)."""
    from .glyphs import Picture, draw_glyphs_cropped, fade

    pic = Picture(
        origin_nm=(float(box[0][0] * res[0]), float(box[0][1] * res[1])),
        nm_per_px=(nm_per_px[0] / spec.scale, nm_per_px[1] / spec.scale),
        size=out.size,
        section_nm=float(res[2]),
    )
    glyphs = pic.sites_at(spec.sites, z, spec.glyph_style, spec.scale)
    layer, offset = draw_glyphs_cropped(
        out.size, glyphs, z, spec.glyph_style, spec.scale, spec.current_site
    )
    if layer is None:
        return out, []
    out = out.convert("RGBA")
    out.alpha_composite(layer, offset)
    shown = fade(glyphs.center[:, 2] - z, spec.glyph_style.fade_sections) > 0
    return out, glyphs.index[shown].tolist()


# -- provenance ----------------------------------------------------------------------------
def provenance(
    dataset: Dataset, spec: FigureSpec, fig: Figure, files: Sequence[str], extra: dict | None = None
) -> dict:
    """Everything needed to remake the figure; never includes a token."""
    requested = spec.root_list()
    box = normalize_bounds(spec.bounds)
    out: dict[str, Any] = {
        "software": {"name": "imagery-gui", "version": __version__},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sources": {
            "image": redact_url(dataset.image.url) if dataset.image else None,
            "segmentation": redact_url(dataset.segmentation.url) if dataset.segmentation else None,
        },
        "bounds": {
            "lower": [float(v) for v in box[0]],
            "upper": [float(v) for v in box[1]],
            "resolution_nm": list(fig.resolution),
            "center": [float(v) for v in (box[0] + box[1]) / 2],
        },
        "mips": {
            "image": fig.image_mip,
            "image_resolution_nm": (
                dataset.image.resolution(fig.image_mip).tolist()
                if dataset.image is not None and fig.image_mip is not None
                else None
            ),
            "segmentation": fig.segmentation_mip,
            "segmentation_resolution_nm": (
                dataset.segmentation.resolution(fig.segmentation_mip).tolist()
                if dataset.segmentation is not None and fig.segmentation_mip is not None
                else None
            ),
        },
        "timestamp": _timestamp_text(
            spec.timestamp if spec.timestamp is not None else dataset.timestamp
        ),
        "pixel_size_nm": [v / spec.scale for v in fig.nm_per_px],
        "scale_factor": spec.scale,
        "dpi": spec.dpi,
        "scale_bar_nm": fig.scale_bar_nm,
        "z_slices": fig.z_values,
        "root_ids_requested": "all" if requested is None else [str(v) for v in requested],
        "segments": [
            {"id": str(i), "color": to_hex(c)} for i, c in zip(fig.ids, fig.colors.tolist())
        ],
        "selection": spec.selection.to_dict(),
        **_sites_provenance(spec, fig),
        "style": spec.style.to_dict(),
        "files": [os.path.basename(f) for f in files],
    }
    if extra:
        out.update(extra)
    return out


def _sites_provenance(spec: FigureSpec, fig: Figure) -> dict[str, Any]:
    if spec.sites is None:
        return {}
    from .sites import sites_provenance

    table = spec.sites
    drawn = [table.id_of(i) for i in fig.site_rows] if spec.annotate else []
    return {"sites": sites_provenance(table, drawn)}


def _timestamp_text(ts: Any) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, _dt.datetime):
        return ts.isoformat()
    if isinstance(ts, (int, float)):
        return _dt.datetime.fromtimestamp(float(ts), _dt.UTC).isoformat()
    return str(ts)


# -- writing -------------------------------------------------------------------------------
def png_path(out_path: str | os.PathLike) -> str:
    """The figure's path: ``.png`` is added when there is no extension; a folder or another
    extension is an :class:`ExportError`."""
    out = os.fspath(out_path)
    if not out or out.endswith(os.sep) or os.path.isdir(out):
        raise ExportError(f"{out or '(empty)'} is a folder; give a file name such as figure.png")
    ext = os.path.splitext(out)[1]
    if not ext:
        return out + ".png"
    if ext.lower() != ".png":
        raise ExportError(f"{out}: figures are written as PNG; use a name ending in .png")
    return out


def output_paths(out_path: str | os.PathLike, fig: Figure, masks: bool) -> dict[str, list[str]]:
    """Every file an export will write: figures, montage, masks and the provenance JSON."""
    stem, ext = os.path.splitext(png_path(out_path))
    if len(fig.slices) == 1:
        figures = [stem + ext]
        montage: list[str] = []
    else:
        figures = [f"{stem}_z{z}{ext}" for z in fig.z_values]
        montage = [f"{stem}_montage{ext}"]
    mask_files: list[str] = []
    if masks:
        for i in fig.ids:
            if len(fig.slices) == 1:
                mask_files.append(f"{stem}_root_id_{i}.png")
            else:
                mask_files += [f"{stem}_slice_{k}_root_id_{i}.png" for k in range(len(fig.slices))]
    return {
        "figures": figures,
        "montage": montage,
        "masks": mask_files,
        "provenance": [stem + ".json"],
    }


def montage(images: Sequence[Image.Image], spacing: int = 10) -> Image.Image:
    """A near-square grid of the slices, rows built with ``stack_images``."""
    from .composite import stack_images

    n = len(images)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = [stack_images(images[i : i + cols], spacing=spacing) for i in range(0, n, cols)]
    return stack_images(rows, direction="vertical", spacing=spacing)


def _png_ready(img: Image.Image) -> Image.Image:
    """Opaque RGBA figures are written as RGB (same pixels, smaller files)."""
    if img.mode == "RGBA" and img.getchannel("A").getextrema()[0] == 255:
        return img.convert("RGB")
    return img


def write_figure(
    dataset: Dataset,
    spec: FigureSpec,
    fig: Figure,
    out_path: str | os.PathLike,
    *,
    force: bool = False,
    masks: bool = False,
    write_provenance: bool = True,
    extra_provenance: dict | None = None,
    progress: Progress | None = None,
    compress_level: int | None = None,
    fsync: bool = True,
) -> list[str]:
    """Write a rendered figure; returns the paths written.

    A single slice goes to ``out_path``; a z-series to ``<stem>_z<Z>.png`` per slice plus
    ``<stem>_montage.png``. ``masks`` adds ImageryClient-style per-id mask PNGs. The
    provenance JSON is ``<stem>.json``. ``compress_level`` is zlib's for the PNGs (None:
    Pillow's writer at its default, 6; a level: :func:`~imagery_gui.model.io.encode_png`
    at that level, which batch figures use: the same pixels, in about half the time).
    Without ``fsync`` the files are still written atomically but not synced: the caller
    syncs them (:func:`~imagery_gui.model.io.fsync_files`; batch does, once per task).
    """
    plan = output_paths(out_path, fig, masks)
    targets = plan["figures"] + plan["montage"] + plan["masks"]
    if write_provenance:
        targets += plan["provenance"]
    for t in targets:  # fail before writing anything
        check_writable(t, overwrite=force)
    written: list[str] = []
    total = len(targets)
    dpi = (int(spec.dpi), int(spec.dpi))
    png_kw: dict[str, Any] = {"dpi": dpi, "fsync": fsync}
    if compress_level is not None:
        png_kw["compress_level"] = int(compress_level)
        png_kw["fast"] = True

    def step(msg: str) -> None:
        if progress:
            progress(len(written), total, msg)

    for path, img in zip(plan["figures"], fig.slices):
        step(f"writing {os.path.basename(path)}")
        written.append(save_png_atomic(_png_ready(img), path, overwrite=force, **png_kw))
    if plan["montage"]:
        step("writing montage")
        written.append(
            save_png_atomic(
                _png_ready(montage(fig.slices)), plan["montage"][0], overwrite=force, **png_kw
            )
        )
    if masks and fig.labels is not None:
        from .icio import save_image_slices, to_ic

        stem = os.path.splitext(plan["figures"][0])[0] if len(fig.slices) == 1 else None
        stem = stem or os.path.splitext(os.fspath(out_path))[0]
        for i in fig.ids:
            step(f"writing masks of {i}")
            mask = to_ic((fig.labels == np.uint64(i)).astype(np.uint8))
            written += save_image_slices(stem, f"root_id_{i}", mask, 2, "mask")
    if write_provenance:
        step("writing provenance")
        info = provenance(dataset, spec, fig, written, extra_provenance)
        written.append(save_json_atomic(info, plan["provenance"][0], overwrite=force, fsync=fsync))
    if progress:
        progress(total, total, "done")
    return written


def export(
    dataset: Dataset,
    spec: FigureSpec,
    out_path: str | os.PathLike,
    *,
    force: bool = False,
    masks: bool = False,
    extra_provenance: dict | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Render and write in one call (checks the destination before any download)."""
    check_writable(png_path(out_path), overwrite=force)
    box = normalize_bounds(spec.bounds)
    if box[1][2] - box[0][2] <= 1:
        progress = None  # a progress bar is for multi-slice exports
    fig = make_figure(dataset, spec, progress=progress)
    if fig.labels is not None:  # ids asked for but not drawn: say so (one warning line)
        warn_absent_ids(spec.root_list(), fig.ids, "the figure's region")
    return write_figure(
        dataset,
        spec,
        fig,
        out_path,
        force=force,
        masks=masks,
        extra_provenance=extra_provenance,
        progress=progress,
    )
