"""Going places: a point typed or pasted by a user, the volume's centre, whether a view
shows any of the volume, and what a Neuroglancer link of local data cannot do.

Qt-free: View > Go to..., View > Centre on the volume and the slice view's notice use
these, and so can scripts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ImageryGuiError

#: Units a point can be given in.
VOXELS, NM = "voxels", "nm"
UNITS = (VOXELS, NM)

#: What the slice view shows (and says) when the camera is outside the volume.
OUTSIDE_NOTICE = (
    "the view is outside the volume: View > Centre on the volume (Ctrl+0) or "
    "View > Go to... (Ctrl+G) brings it back"
)


class PointError(ImageryGuiError, ValueError):
    """Text that is not a point ``x y z``."""


_BRACKETS = "[](){}<>"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_point(text: str) -> tuple[float, float, float]:
    """``x, y, z`` from what a user types or pastes: ``1 2 3``, ``1, 2, 3``, ``[1 2 3]``,
    ``(1.5, 2, 3)`` (Neuroglancer's and numpy's copies, a spreadsheet row's tabs).

    Raises :class:`PointError` with a one-line message naming what is wrong."""
    raw = text.strip()
    if not raw:
        raise PointError("give a point as three numbers: x y z (e.g. 1024, 2048, 40)")
    inner = raw.translate({ord(c): " " for c in _BRACKETS})
    tokens = [t for t in re.split(r"[\s,;]+", inner.strip()) if t]
    bad = [t for t in tokens if not _NUMBER.fullmatch(t)]
    if bad:
        raise PointError(
            f"{bad[0]!r} is not a number; give a point as three numbers: x y z (got {raw!r})"
        )
    if len(tokens) != 3:
        raise PointError(f"a point needs three numbers x y z, got {len(tokens)} in {raw!r}")
    x, y, z = (float(t) for t in tokens)
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise PointError(f"the coordinates must be finite numbers, got {raw!r}")
    return x, y, z


def point_nm(
    point: Sequence[float], unit: str, resolution: Sequence[float] | np.ndarray
) -> np.ndarray:
    """A point in nanometres from voxels (of ``resolution``) or nanometres."""
    p = np.asarray(point, dtype=np.float64)
    if unit == NM:
        return p
    if unit != VOXELS:
        raise PointError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    # the centre of the voxel, as Neuroglancer shows a voxel position
    return (np.floor(p) + 0.5) * np.asarray(resolution, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to look: the centre in nm (x, y) and the slice, in voxels of the view."""

    x_nm: float
    y_nm: float
    z: int


def target_of(
    p_nm: Sequence[float] | np.ndarray, resolution: Sequence[float] | np.ndarray
) -> Target:
    rz = float(resolution[2])
    return Target(float(p_nm[0]), float(p_nm[1]), int(math.floor(float(p_nm[2]) / rz)))


def volume_center_nm(dataset: Any, resolution: Sequence[float] | np.ndarray) -> np.ndarray:
    """The middle of the volume (both layers' extent), in nm."""
    res = np.asarray(resolution, dtype=np.float64)
    vb = dataset.volume_bounds(res)
    out: np.ndarray = (vb[0] + vb[1]) / 2 * res
    return out


def outside_description(
    point_nm_: Iterable[float], dataset: Any, resolution: Sequence[float] | np.ndarray
) -> str | None:
    """Why ``point`` (nm) is not in the volume (x and y), or None when it is: a note for
    Go to..., which still goes there (the notice then says how to come back)."""
    res = np.asarray(resolution, dtype=np.float64)
    vb = dataset.volume_bounds(res) * res
    p = np.asarray(list(point_nm_), dtype=np.float64)
    if np.all(p[:2] >= vb[0][:2]) and np.all(p[:2] < vb[1][:2]):
        return None
    return f"that point is outside the volume, which spans {volume_span(dataset, res)}"


def volume_span(dataset: Any, resolution: Sequence[float] | np.ndarray) -> str:
    """``voxels [x0, y0, z0]-[x1, y1, z1] at 4x4x40 nm``: where the data is."""
    vb = dataset.volume_bounds(np.asarray(resolution, dtype=np.float64))
    lo, hi = [int(v) for v in vb[0]], [int(v) for v in vb[1]]
    res = "x".join(f"{float(r):g}" for r in resolution)
    return f"voxels {lo}-{hi} at {res} nm"


_LOCAL_SCHEMES = ("file://",)


def local_sources(sources: Iterable[str | None]) -> list[str]:
    """The sources (URLs) that are files on this machine."""
    out = []
    for src in sources:
        if not src:
            continue
        bare = src.split("://", 1)[1] if src.startswith(("precomputed://", "graphene://")) else src
        if bare.startswith(_LOCAL_SCHEMES) or bare.startswith("/"):
            out.append(src)
    return out


def local_link_warning(sources: Iterable[str | None]) -> str | None:
    """A warning for a Neuroglancer link whose sources a browser cannot open (local
    files), or None when every source is a URL a browser can fetch."""
    local = local_sources(sources)
    if not local:
        return None
    first = local[0]
    more = f" and {len(local) - 1} more" if len(local) > 1 else ""
    return (
        f"the link names local files ({first}{more}): a browser cannot open them; serve "
        "the folders over http(s) (e.g. `npx http-server --cors` or cloud-volume's "
        "`CloudVolume(...).viewer()`) and open them from there to share this link"
    )


#: The documentation online (the README on the package index), when no checkout is here.
DOCS_URL = "https://pypi.org/project/imagery-gui/"


def docs_url() -> str:
    """Help > Online documentation: the README of this checkout when there is one (it
    describes this version), else :data:`DOCS_URL`."""
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "README.md"
    return readme.as_uri() if readme.is_file() else DOCS_URL
