"""Gallery tiles: one site's figure (or its +-k stack of sections), made anywhere.

A :class:`TileTask` carries everything a tile needs and pickles small: the dataset's
replica arguments, the site figure (export's options), and only the rows of the site
table whose glyphs can reach the tile (as batch's tasks do). :func:`render_tile` runs in
a worker process of the gallery's pool, or in a thread, and returns RGBA arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .batch import SiteFigure, _dataset, _figure_boxes_nm, site_spec
from .sites import SiteTable

#: Decoded chunks a tile worker keeps (neighbouring tiles and a tile's stack share them).
TILE_LRU_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class TileTask:
    """One tile: ``row`` of ``table`` (a sub-table of the sites near it, in the order of
    the whole table), drawn at section offsets ``offsets`` from the site's own."""

    dataset: dict[str, Any]
    figure: SiteFigure
    table: SiteTable
    row: int
    offsets: tuple[int, ...] = (0,)


def tile_task(
    dataset_args: dict[str, Any],
    figure: SiteFigure,
    table: SiteTable,
    row: int,
    offsets: Sequence[int] = (0,),
) -> TileTask:
    """The task of site ``row`` of the whole ``table``: its neighbours within reach of the
    tile's glyphs (its z range widened by the offsets) travel with it."""
    lo, hi = _figure_boxes_nm(figure, table, [row])
    k = max((abs(int(o)) for o in offsets), default=0)
    rz = float(figure.resolution[2])
    lo[2] -= k * rz
    hi[2] += k * rz
    near = table.in_box(lo.tolist(), hi.tolist(), (1.0, 1.0, 1.0))
    keep = np.union1d(near, np.asarray([row], dtype=np.intp))
    sub = table.take(keep)
    return TileTask(
        dataset_args,
        figure,
        sub,
        int(np.searchsorted(keep, row)),
        tuple(int(o) for o in offsets),
    )


def render_tile(task: TileTask) -> list[tuple[int, npt.NDArray[np.uint8]]]:
    """The tile's pictures, ``(offset, (h, w, 4) uint8 RGBA)`` per offset; the offsets must
    be consecutive sections (one read makes them all)."""
    return site_pictures(_dataset(task.dataset), task.figure, task.table, task.row, task.offsets)


def site_pictures(
    ds: Any, figure: SiteFigure, table: SiteTable, row: int, offsets: Sequence[int]
) -> list[tuple[int, npt.NDArray[np.uint8]]]:
    """Site ``row``'s figure at each of the consecutive section ``offsets`` that lie in
    the volume, read from ``ds`` (a worker's replica or the window's own dataset)."""
    from .export import make_figure

    spec, kept = stack_spec(ds, site_spec(figure, table, row), offsets)
    fig = make_figure(ds, spec)
    return [
        (off, np.ascontiguousarray(np.asarray(img.convert("RGBA"), dtype=np.uint8)))
        for off, img in zip(kept, fig.slices)
    ]


_THREADS: Any = None


def render_tiles(tasks: Sequence[TileTask]) -> list[tuple[bool, Any]]:
    """Several tiles at once, by as many threads (their reads overlap): per task ``(True,
    pictures)`` as :func:`render_tile` gives, or ``(False, one-line error)``."""
    global _THREADS
    if len(tasks) <= 1:
        return [_safe(t) for t in tasks]
    if _THREADS is None:
        from concurrent.futures import ThreadPoolExecutor

        _THREADS = ThreadPoolExecutor(8, thread_name_prefix="imagery-gui-tile")
    return list(_THREADS.map(_safe, tasks))


def _safe(task: TileTask) -> tuple[bool, Any]:
    try:
        return True, render_tile(task)
    except Exception as exc:  # noqa: BLE001 - one tile's error is shown on that tile
        lines = str(exc).strip().splitlines()
        return False, lines[0] if lines else type(exc).__name__


def stack_spec(ds: Any, spec: Any, offsets: Sequence[int]) -> tuple[Any, list[int]]:
    """``spec`` (one section) widened to the consecutive section ``offsets`` that lie in the
    volume (a stack near its first or last section is shorter); the offsets kept."""
    from .state import z_bounds

    offsets = [int(o) for o in offsets]
    first, last = min(offsets), max(offsets)
    if offsets != list(range(first, last + 1)):
        raise ValueError("tile offsets must be consecutive sections")
    lo, hi = spec.bounds
    zlo, zhi = z_bounds(ds)
    z = int(np.floor(lo[2]))
    first, last = max(first, zlo - z), min(last, zhi - z)
    if first > last:
        first = last = 0
    kept = list(range(first, last + 1))
    spec = replace(spec, bounds=((lo[0], lo[1], lo[2] + first), (hi[0], hi[1], hi[2] + last)))
    return spec, kept


#: Tile processes run at this nice value (the gallery's pool sets it), as the read process
#: does: on two cores the GUI thread gets the CPU first.
TILE_NICE = 10


def warm() -> bool:
    """A worker's first job: the imports a tile needs, before the first tile is asked for."""
    from . import export  # noqa: F401

    return True


__all__ = [
    "TILE_LRU_BYTES",
    "TILE_NICE",
    "TileTask",
    "render_tile",
    "render_tiles",
    "site_pictures",
    "stack_spec",
    "tile_task",
    "warm",
]
