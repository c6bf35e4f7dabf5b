"""Coordinates and bounding boxes.

A point is ``(x, y, z)`` in voxels at a stated resolution in nm, as in ImageryClient and
Neuroglancer. :class:`Bounds` keeps the resolution next to the numbers so a box can never
be read at the wrong scale.

The conversion from a box at one resolution to voxels of a data mip
(:func:`bounds_to_mip_bbox`) reproduces cloud-volume's own ``download(...,
coord_resolution=...)`` arithmetic exactly (divide in float64, then truncate toward zero),
so cutouts match ImageryClient pixel for pixel, including odd bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import BoundsError, ResolutionError

Vec3 = tuple[float, float, float]


def as_resolution(value: Sequence[float] | np.ndarray, what: str = "resolution") -> np.ndarray:
    """Validate a resolution: three positive finite numbers in nm, returned as float64."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ResolutionError(
            f"{what} must be three numbers in nm like [4, 4, 40], got {value!r}"
        ) from None
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ResolutionError(
            f"{what} must be three positive numbers in nm like [4, 4, 40], got {value!r}"
        )
    return arr


def _as_points(value: object, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BoundsError(f"{what} must be numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise BoundsError(f"{what} must be finite numbers, got {value!r}")
    return arr


def bounds_from_center(ctr, width=1, height=1, depth=1) -> np.ndarray:
    """Bounds ``[[x0, y0, z0], [x1, y1, z1]]`` of a box centred on ``ctr``.

    Same arithmetic as ``imageryclient.bounds_from_center``: the lower corner is
    ``ctr - size // 2`` and the upper corner is ``lower + size``, so an even size puts
    the centre voxel just right of the middle and an odd size centres it exactly.

    Parameters
    ----------
    ctr : array-like
        x, y, z of the centre in voxels.
    width, height, depth : int, optional
        Size of the box along x, y and z. Default 1.

    Returns
    -------
    numpy.ndarray
        2x3 array of lower and upper bounds (in that order).
    """
    xl = np.asarray(ctr) - np.array([width // 2, height // 2, depth // 2])
    xh = xl + np.array([width, height, depth])
    return np.array([xl, xh])


def normalize_bounds(bounds: object, bbox_size: object = None) -> np.ndarray:
    """Turn ImageryClient-style ``bounds`` / ``bbox_size`` into a checked 2x3 float array.

    With ``bbox_size`` (2 or 3 numbers), ``bounds`` is the centre point (the first row is
    used if a 2x3 box is given, as ImageryClient does).
    """
    if bbox_size is not None:
        size = _as_points(bbox_size, "bbox_size").reshape(-1)
        if size.shape not in ((2,), (3,)):
            raise BoundsError(
                f"bbox_size must be (width, height) or (width, height, depth), got {bbox_size!r}"
            )
        if np.any(size <= 0):
            raise BoundsError(f"bbox_size must be positive in every axis, got {bbox_size!r}")
        width, height = size[0], size[1]
        depth = size[2] if size.shape == (3,) else 1
        ctr = np.atleast_2d(_as_points(bounds, "center"))
        if ctr.shape[-1] != 3:
            raise BoundsError(f"the center must be a point (x, y, z), got {bounds!r}")
        box = bounds_from_center(ctr[0], width=width, height=height, depth=depth)
    else:
        box = _as_points(bounds, "bounds")
        if box.shape != (2, 3):
            hint = (
                " (a single point is a center: pass bbox_size=(width, height) too)"
                if box.shape == (3,)
                else ""
            )
            raise BoundsError(
                f"bounds must be [[x0, y0, z0], [x1, y1, z1]], got shape {box.shape}{hint}"
            )
    box = np.asarray(box, dtype=np.float64)
    if np.any(box[1] - box[0] <= 0):
        raise BoundsError(
            f"bounds have zero or negative size: lower {box[0].tolist()} upper {box[1].tolist()}; "
            "the upper corner must be greater than the lower one in x, y and z"
        )
    return box


def bounds_to_mip_bbox(
    box: np.ndarray,
    coord_resolution: Sequence[float] | np.ndarray,
    mip_resolution: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel box ``(lo, hi)`` (int64, half-open) at a data mip for a box given at another resolution.

    This is the computation cloud-volume performs in ``download(bbox, mip=...,
    coord_resolution=...)``: ``bbox / (mip_resolution / coord_resolution)`` in float64,
    then a cast to int64 (truncation toward zero).
    """
    factor = np.asarray(mip_resolution, dtype=np.float64) / np.asarray(
        coord_resolution, dtype=np.float64
    )
    lo = (np.asarray(box[0], dtype=np.float64) / factor).astype(np.int64)
    hi = (np.asarray(box[1], dtype=np.float64) / factor).astype(np.int64)
    return lo, hi


@dataclass(frozen=True, slots=True)
class Bounds:
    """A half-open box ``[lo, hi)`` in voxels at ``resolution`` nm."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    resolution: Vec3

    @classmethod
    def from_center(
        cls, center: Sequence[float], size: Sequence[int], resolution: Sequence[float]
    ) -> Bounds:
        size3 = tuple(int(s) for s in size) + (1,) * (3 - len(size))
        box = bounds_from_center(np.asarray(center, dtype=np.int64), *size3)
        return cls.from_array(box, resolution)

    @classmethod
    def from_array(cls, box: object, resolution: Sequence[float]) -> Bounds:
        arr = normalize_bounds(box)
        lo = tuple(int(v) for v in np.floor(arr[0]))
        hi = tuple(int(v) for v in np.ceil(arr[1]))
        res = tuple(float(r) for r in as_resolution(resolution))
        return cls(lo, hi, res)  # type: ignore[arg-type]

    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        return tuple(h - lo for lo, h in zip(self.lo, self.hi))  # type: ignore[return-value]

    @property
    def center(self) -> tuple[float, float, float]:
        return tuple((lo + h) / 2 for lo, h in zip(self.lo, self.hi))  # type: ignore[return-value]

    def as_array(self) -> np.ndarray:
        return np.array([self.lo, self.hi], dtype=np.float64)

    def at_resolution(self, resolution: Sequence[float]) -> Bounds:
        """The same physical box in voxels of another resolution (outward-rounded)."""
        res = as_resolution(resolution)
        scale = np.asarray(self.resolution) / res
        lo = np.floor(np.asarray(self.lo) * scale).astype(np.int64)
        hi = np.ceil(np.asarray(self.hi) * scale).astype(np.int64)
        return Bounds(tuple(int(v) for v in lo), tuple(int(v) for v in hi), tuple(res.tolist()))  # type: ignore[arg-type]

    def to_list(self) -> list[list[int]]:
        return [list(self.lo), list(self.hi)]
