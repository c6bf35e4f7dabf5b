"""Nearest-neighbour resampling that never passes ids through float.

ImageryClient aligns imagery and segmentation of different resolutions with
``scipy.ndimage.zoom(order=0, mode="nearest")``. That picks the right *positions*, but it
computes output *values* in float64, so segment ids above 2**53 (every MICrONS root id)
come back changed. Here the positions scipy would pick are computed once per axis (from a
small float ``arange``, where float is exact) and the ids are gathered by integer indexing.
The result is pixel-for-pixel what ``ndimage.zoom`` gives for values that survive float64,
and exact for all others.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=512)
def zoom_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each of ``n_out`` outputs under ``ndimage.zoom(order=0)`` of ``n_in``.

    scipy's rule, in the same float64 operations (``scipy/ndimage/_interpolation.py`` and
    ``ni_interpolation.c``): the zoom is ``(n_in - 1) / (n_out - 1)`` (1 for one output),
    output ``k`` samples ``zoom * k``, an order-0 spline takes ``floor(x + 0.5)``, and
    ``mode="nearest"`` clamps to the axis. Computed here rather than by calling scipy,
    whose import (about 0.3 s) a read would otherwise pay; tested against ``ndimage.zoom``
    for every pair of lengths up to 260 and for thousands of larger ones."""
    if n_in == n_out:
        return np.arange(n_in, dtype=np.intp)
    if n_in <= 0 or n_out <= 0:
        raise ValueError(f"cannot resample an axis of length {n_in} to {n_out}")
    zoom = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
    at = zoom * np.arange(n_out, dtype=np.float64)
    idx = np.clip(np.floor(at + 0.5).astype(np.intp), 0, n_in - 1)
    idx.setflags(write=False)
    return idx


def zoom_shape(in_shape: Sequence[int], factors: Sequence[float] | np.ndarray) -> tuple[int, ...]:
    """The output shape ``ndimage.zoom`` computes for ``factors`` (``round(n * f)``)."""
    return tuple(int(round(n * f)) for n, f in zip(in_shape, factors))


def resize_nearest(arr: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
    """Resample ``arr`` to ``out_shape`` exactly as ``ndimage.zoom(order=0)`` would.

    Any dtype; ids are copied, never converted. Returns ``arr`` itself when the shape
    already matches.
    """
    out_shape = tuple(int(s) for s in out_shape)
    if arr.ndim != len(out_shape):
        raise ValueError(f"cannot resample a {arr.ndim}-D array to shape {out_shape}")
    if arr.shape == out_shape:
        return arr
    # One axis at a time, shrinking axes first: np.take along an axis copies whole rows
    # and is about 4x faster than one broadcast fancy index (np.ix_) over all axes.
    out = arr
    for axis in sorted(range(arr.ndim), key=lambda a: out_shape[a] / max(arr.shape[a], 1)):
        n, m = arr.shape[axis], out_shape[axis]
        if n != m:
            out = np.take(out, zoom_index(n, m), axis=axis)
    return out
