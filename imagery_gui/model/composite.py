"""ImageryClient-compatible ``composite_overlay`` and ``stack_images``.

Same signatures, defaults and pixels as ``imageryclient`` 1.0.4; arrays are in
ImageryClient's ``(x, y[, z])`` orientation. The work is done by
:mod:`imagery_gui.model.render`. Differences (documented in the README): an empty mask
dict returns the imagery instead of crashing, a label array keeps its ids exact, and an
outline ``width`` below 1 is an error (ImageryClient's ``width=0`` dilates until the whole
frame is filled).
"""

from __future__ import annotations

from collections.abc import ValuesView
from typing import Any

import numpy as np
from PIL import Image

from . import render
from .palette import DEFAULT_H, DEFAULT_L, DEFAULT_PALETTE, DEFAULT_S, color_table, palette_colors
from .segments import SplitMasks, unique_ids

__all__ = ["composite_overlay", "stack_images"]


def _colors_in_order(keys: list[Any], colors: Any, palette: str, h: float, l: float, s: float):  # noqa: E741
    if colors is None:
        return color_table(palette_colors(len(keys), palette, h, l, s))
    if isinstance(colors, dict):
        missing = [k for k in keys if k not in colors]
        if missing:
            raise ValueError(
                f"colors has no entry for {len(missing)} segment(s), e.g. {missing[0]!r}; "
                "give a colour for every segment or leave colors=None"
            )
        return color_table(colors[k] for k in keys)
    cols = list(colors)
    if len(cols) < len(keys):
        raise ValueError(f"{len(keys)} segments but only {len(cols)} colours")
    return color_table(cols[: len(keys)])


def _slice(arr: np.ndarray, ii: int | None, dim: int) -> np.ndarray:
    """ImageryClient orientation 2D slice -> canonical (rows, cols)."""
    a = np.asarray(arr)
    if ii is not None:
        a = np.take(a, ii, axis=dim)
    return a.T


def composite_overlay(
    segs,
    colors=None,
    alpha=0.2,
    imagery=None,
    outline=False,
    merge_outline=True,
    overlap=True,
    width=10,
    side="out",
    dim=2,
    palette=DEFAULT_PALETTE,
    h=DEFAULT_H,
    l=DEFAULT_L,  # noqa: E741 - ImageryClient's parameter name
    s=DEFAULT_S,
):
    """Make a coloured composite overlay of segmentation masks, optionally over imagery.

    Parameters
    ----------
    segs : dict, list or numpy.ndarray
        Masks (a dict of id to mask as returned by ``split_segmentation_cutout``, or a
        list), or a label array of ids (every non-zero id becomes a segment). The split
        cutouts' own dict (:class:`~imagery_gui.model.segments.SplitMasks`) is drawn from
        its label image.
    colors : dict, list or None, optional
        Colours per segment: 0-1 RGB floats as ImageryClient takes them, 0-255 ints, hex
        strings or colour names. None picks them from ``palette``.
    alpha : float, optional
        Opacity of the overlay, 0-1. Default 0.2.
    imagery : numpy.ndarray, PIL.Image.Image or None, optional
        Image to draw on (same ``(x, y[, z])`` shape as the masks).
    outline : bool, optional
        Draw outlines instead of fills.
    merge_outline : bool, optional
        Outline the union of the segments, so touching segments get no line between them.
    overlap : bool, optional
        If False, later segments do not draw over earlier ones.
    width : int, optional
        Outline width in pixels. Default 10.
    side : {'out', 'in'}, optional
        Outline outside or inside the segments. Default 'out'.
    dim : int, optional
        Axis to slice 3D data along. Default 2 (z).
    palette : str, optional
        seaborn palette name. Default 'husl'.
    h, l, s : float, optional
        Hue, lightness and saturation for the husl / hls palettes.

    Returns
    -------
    PIL.Image.Image or list of PIL.Image.Image
        One RGBA image for 2D input, a list (one per slice along ``dim``) for 3D input.
    """
    geom = render.Geometry(
        outline=bool(outline),
        width=int(width),
        side=side,
        merge_outline=bool(merge_outline),
        overlap=bool(overlap),
    )
    render.alpha_to_uint8(alpha)  # validate before any work

    split = segs.label_image() if isinstance(segs, SplitMasks) else None
    if isinstance(segs, np.ndarray):
        labels = segs
        keys = list(unique_ids(labels))
        ndim = labels.ndim
    elif split is not None:
        # Masks of a label image (the split cutout): draw from the labels, never making
        # the N full-frame masks. Keys keep the dict's order (deleted ones are gone).
        labels, keys = split
        ndim = labels.ndim
    else:
        if isinstance(segs, dict):
            keys = list(segs.keys())
            masks = list(segs.values())
        else:
            masks = list(segs)
            keys = list(range(len(masks)))
        ndim = np.ndim(masks[0]) if masks else None

    if not keys:
        return _imagery_only(imagery, dim)
    table = _colors_in_order(keys, colors, palette, h, l, s)

    if isinstance(segs, np.ndarray) or split is not None:
        index = render.label_index(labels, keys)
        frames = [None] if ndim == 2 else list(range(labels.shape[dim]))
        out = []
        for ii in frames:
            cov = render.coverage_from_index(
                _slice(index, ii, dim), len(keys), geom, need_hidden_rgb=imagery is None
            )
            img = None if imagery is None else _slice_imagery(imagery, ii, dim)
            fast = _composite_over_grey(img, cov, table, alpha)
            out.append(
                fast if fast is not None else render.composite(img, render.blend(cov, table, alpha))
            )
        return out[0] if ndim == 2 else out

    if ndim == 2:
        cov = render.coverage_from_masks([_slice(m, None, dim) for m in masks], geom)
        img = None if imagery is None else _slice_imagery(imagery, None, dim)
        return render.composite(img, render.blend(cov, table, alpha))
    out = []
    for ii in range(np.shape(masks[0])[dim]):
        cov = render.coverage_from_masks([_slice(m, ii, dim) for m in masks], geom)
        img = None if imagery is None else _slice_imagery(imagery, ii, dim)
        out.append(render.composite(img, render.blend(cov, table, alpha)))
    return out


def _composite_over_grey(
    grey: Any, cov: render.Coverage, table: np.ndarray, alpha: float
) -> Image.Image | None:
    """The composite of one overlay layer over 8-bit greyscale imagery, by table lookup.

    Pillow's ``alpha_composite`` works pixel by pixel, so its result depends only on the
    imagery's grey value and the segment (colour and alpha) over it: composite every
    (segment, grey) pair once with Pillow itself (an (n+1) x 256 strip) and look each pixel
    up, instead of building the RGBA imagery and overlay frames and compositing 1-4 MP.
    Same pixels by construction. None when this does not apply (several overlay layers,
    PIL or non-uint8 imagery, a size mismatch): the caller composites as usual.
    """
    if (
        cov.extra
        or not isinstance(grey, np.ndarray)
        or grey.dtype != np.uint8
        or grey.shape != cov.shape
    ):
        return None
    n = cov.n
    a = render.alpha_to_uint8(alpha)
    src = np.zeros((n + 1, 256, 4), dtype=np.uint8)  # row n: nothing (transparent)
    if a:
        src[:n, :, :3] = np.asarray(table, dtype=np.uint8)[:n, np.newaxis, :3]
        src[:n, :, 3] = a
    dst = np.empty((n + 1, 256, 4), dtype=np.uint8)
    dst[..., :3] = np.arange(256, dtype=np.uint8)[np.newaxis, :, np.newaxis]
    dst[..., 3] = 255
    lut = np.asarray(
        Image.alpha_composite(Image.fromarray(dst, "RGBA"), Image.fromarray(src, "RGBA"))
    ).reshape(-1, 4)
    index = cov.base
    if cov.keep is not None:
        index = np.where(cov.keep, index, -1)
    pos = np.where(index < 0, np.int32(n), index).astype(np.int32, copy=False)
    pos <<= 8
    pos |= grey
    return Image.fromarray(render.apply_lut(lut, pos), "RGBA")


def _as_array(imagery: Any) -> np.ndarray:
    if isinstance(imagery, Image.Image):
        return np.asarray(imagery).T
    return np.asarray(imagery)


def _slice_imagery(imagery: Any, ii: int | None, dim: int) -> Any:
    if ii is None and isinstance(imagery, Image.Image):
        return imagery
    return _slice(_as_array(imagery), ii, dim)


def _imagery_only(imagery: Any, dim: int):
    """No segments at all: the imagery alone (ImageryClient crashes here)."""
    if imagery is None:
        raise ValueError("nothing to draw: no segments and no imagery")
    if isinstance(imagery, Image.Image):
        return imagery.convert("RGBA")
    arr = np.asarray(imagery)
    if arr.ndim == 2:
        return render.imagery_to_rgba(arr.T)
    return [render.imagery_to_rgba(_slice(arr, ii, dim)) for ii in range(arr.shape[dim])]


def _to_rgba(img: Any) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("RGBA")
    arr = np.asarray(img)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    return Image.fromarray(arr.T).convert("RGBA")


def _stackable(images: Any) -> Any:
    """The images to stack, one at a time.

    A split cutout's mask dict (or its ``values()``), which ImageryClient cannot stack,
    gives one white-on-black mask image per segment, each made from the label image when
    it is drawn, so N full-frame masks never exist at once.
    """
    if isinstance(images, SplitMasks):
        owner = images
    elif isinstance(images, ValuesView) and isinstance(images._mapping, SplitMasks):  # type: ignore[attr-defined]
        owner = images._mapping  # type: ignore[attr-defined] # abc views' own attribute
    else:
        return images
    split = owner.label_image()
    if split is not None:
        return (owner.mask_of(k, bool) for k in split[1])
    return (np.asarray(v) > 0 for v in owner.values())


def stack_images(images, direction="horizontal", spacing=10):
    """Stack images side by side (``'horizontal'``) or top to bottom (``'vertical'``).

    Parameters
    ----------
    images : list-like
        PIL images (or ``(x, y)`` arrays, as ImageryClient accepts). A split cutout's
        mask dict or its ``values()`` stacks one mask image per segment (white on black).
    direction : {'horizontal', 'vertical'}, optional
        Default 'horizontal'.
    spacing : int, optional
        White pixels between images. Default 10.

    Returns
    -------
    PIL.Image.Image
        An RGB image on a white background, images aligned top (or left).
    """
    if direction not in ("horizontal", "vertical"):
        raise ValueError('Direction must be either "horizontal" or "vertical".')
    imgs = [_to_rgba(i) for i in _stackable(images)]
    if not imgs:
        raise ValueError("no images to stack")
    if direction == "horizontal":
        height = max(i.height for i in imgs)
        offsets = np.cumsum([0] + [i.width + spacing for i in imgs])
        canvas = Image.new("RGB", (int(offsets[-1] - spacing), height), (255, 255, 255))
        for img, off in zip(imgs, offsets):
            canvas.paste(img, (int(off), 0))
    else:
        width = max(i.width for i in imgs)
        offsets = np.cumsum([0] + [i.height + spacing for i in imgs])
        canvas = Image.new("RGB", (width, int(offsets[-1] - spacing)), (255, 255, 255))
        for img, off in zip(imgs, offsets):
            canvas.paste(img, (0, int(off)))
    return canvas
