"""ImageryClient's array convention and its PNG slice files, shared by the ImageryClient-compatible
API (:mod:`imagery_gui.model.imageryclient`) and the figure export (:mod:`imagery_gui.model.export`).

ImageryClient arrays are ``(x, y)`` or ``(x, y, z)``; everything else in the project is
``(z, y, x)``. This module depends only on :mod:`imagery_gui.model.io`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .io import save_png_atomic

__all__ = ["from_ic", "save_image_slices", "to_ic"]


def to_ic(arr_zyx: np.ndarray) -> np.ndarray:
    """Canonical ``(z, y, x)`` to ImageryClient's ``(x, y[, z])`` (a view, no copy)."""
    out = arr_zyx.transpose(2, 1, 0)
    if out.shape[2] == 1:
        out = out[:, :, 0]
    return out


def from_ic(arr: np.ndarray) -> np.ndarray:
    """ImageryClient ``(x, y[, z])`` to canonical ``(z, y, x)``."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    return arr.transpose(2, 1, 0)


def _grayscale_to_pil(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img).astype(np.uint8).T
    return np.dstack(3 * [img[:, :, np.newaxis]])


def _binary_mask_to_transparent_pil(
    img: np.ndarray, color: Sequence[int] | None = None
) -> np.ndarray:
    if color is None:
        color = [255, 255, 255, 255]
    elif len(color) == 3:
        color = [*color, 255]
    base = np.asarray(img).astype(np.uint8).T[:, :, np.newaxis]
    return np.dstack([np.uint8(c) * base for c in color])


def save_image_slices(
    filename_prefix: str,
    filename_suffix: str,
    img: np.ndarray,
    slice_axis: int,
    image_type: str,
    verbose: bool = False,
    color: Sequence[int] | None = None,
    **kwargs: Any,
) -> list[str]:
    """Save an image or a mask, one PNG per slice along ``slice_axis``.

    File names are ImageryClient's: ``{prefix}_{suffix}.png`` for a single slice,
    ``{prefix}_slice_{i}_{suffix}.png`` otherwise. A 2D array is one slice. Extra keyword
    arguments go to Pillow's PNG writer (``compress_level``, ``dpi``, ...).

    Returns
    -------
    list of str
        The paths written.
    """
    if image_type == "imagery":

        def to_pil(a: np.ndarray) -> np.ndarray:
            return _grayscale_to_pil(a)

    elif image_type == "mask":

        def to_pil(a: np.ndarray) -> np.ndarray:
            return _binary_mask_to_transparent_pil(a, color=color)

    else:
        raise ValueError(f'image_type must be "imagery" or "mask", got {image_type!r}')
    img = np.asarray(img)
    if img.ndim == 2:
        slices = [img]
    else:
        slices = [np.take(img, i, axis=slice_axis) for i in range(img.shape[slice_axis])]
    written = []
    for i, sl in enumerate(slices):
        if len(slices) == 1:
            fname = f"{filename_prefix}_{filename_suffix}.png"
        else:
            fname = f"{filename_prefix}_slice_{i}_{filename_suffix}.png"
        save_png_atomic(to_pil(sl), fname, overwrite=True, **kwargs)
        written.append(fname)
        if verbose:
            print(f"Saved {fname}...")
    return written
