"""Batch figures: ``imagery-gui export`` for every site of a table, here or on a Dask cluster.

The figure of a site is exactly what ``imagery-gui export --sites FILE --site ID`` makes with
the same options (:func:`site_spec` mirrors its rules). What makes it fast and safe:

* **Locality.** Sites are sorted in Morton (Z-order) of their centres and cut into tasks
  of neighbours, so a task's figures share chunks and each chunk is read once through the
  dataset's LRU (one :class:`~.dataset.Dataset` per worker process, kept across tasks).
* **Rows travel inside the tasks**: a task carries the rows it draws (its sites and the
  neighbours whose glyphs can reach into its figures), so workers never query a service.
* **Idempotent files.** A site is done when its JSON exists: the JSON is written last, every
  file atomically (temporary name, then ``os.replace``), so a killed worker or a task that
  runs twice leaves either a finished figure or nothing that counts as one. A rerun sends
  only the sites without a JSON; ``force`` redoes all, once per run (the JSON names its run).
* **One writer of the manifest**: the process that submits the tasks. It rewrites
  ``manifest.csv`` atomically as tasks complete.

Workers are a Dask ``LocalCluster`` of processes by default, a running scheduler given by
its address, or none at all (``workers=0``: the same tasks in this process).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import itertools
import json
import math
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .dataset import Dataset
from .errors import ImageryGuiError
from .export import FigureSpec, make_figure, write_figure
from .geometry import bounds_from_center, normalize_bounds
from .io import atomic_open, default_mode, fsync_files
from .sites import SiteIndex, SiteTable, sites_provenance
from .style import OverlayStyle

__all__ = [
    "MANIFEST",
    "BatchError",
    "SiteFigure",
    "SiteResult",
    "Task",
    "make_tasks",
    "morton_order",
    "run_batch",
    "run_task",
    "site_names",
    "site_spec",
]

MANIFEST = "manifest.csv"
CONTACT_SHEET = "contact_sheet.png"
MANIFEST_COLUMNS = ("id", "file", "status", "error", "seconds")
DONE, FAILED, SKIPPED, PENDING = "done", "failed", "skipped", "pending"

#: Per-layer chunk LRU of each worker's dataset: a task's neighbouring figures share chunks.
BATCH_LRU_BYTES = 512 * 1024**2

#: Deflate level of the figures, written by ``io.encode_png`` (libdeflate's levels): the
#: same pixels as export's (Pillow's writer at zlib's level 6), a 256x256 figure written
#: in 1.0 ms instead of 14 ms and on EM no bigger (71 KB; zlib's level 1, used before,
#: took 1.6 ms for 77 KB).
PNG_COMPRESS_LEVEL = 2

Progress = Callable[[int, int, str], None]


class BatchError(ImageryGuiError):
    """A batch that cannot start (output folder, site ids, options): one line, exit 2."""


# -- one site's figure -----------------------------------------------------------------------
@dataclass(frozen=True)
class SiteFigure:
    """How every site's figure is made: export's options with the centre left open.

    ``spec`` has everything but the bounds, the site table and the current site (its
    bounds are a placeholder). ``partner_style`` is the style used when the site's pre and
    post roots become the selection (export's rule when no ``--root-ids`` are given); None
    when root ids were given, so every figure shows the same segments. ``link_inputs``
    (sources, resolution, viewer site; no client) makes each figure's Neuroglancer link.
    """

    size: tuple[int, ...]
    resolution: tuple[float, float, float]
    spec: FigureSpec
    partner_style: OverlayStyle | None = None
    link_inputs: Any = None
    extra_provenance: dict[str, Any] = field(default_factory=dict)
    sites_source: str | None = None  # the table, as the batch's provenance names it


def site_center(table: SiteTable, row: int, resolution: Sequence[float]) -> list[float]:
    """The figure centre of a site in voxels of ``resolution``, as export's ``--site``."""
    center_nm = table.centers[row] * np.asarray(table.resolution)
    return [float(v) for v in np.floor(center_nm / np.asarray(resolution, dtype=np.float64))]


def site_spec(fig: SiteFigure, table: SiteTable, row: int) -> FigureSpec:
    """The FigureSpec of site ``row`` of ``table``: export's ``--sites FILE --site ID``.

    Centred on the site (its centre floored to voxels of the figure's resolution), its
    pre/post roots added to the selection when no root ids were given, the site drawn as
    the current one over the glyphs of ``table``."""
    center = site_center(table, row, fig.resolution)
    spec = fig.spec
    selection, style = spec.selection, spec.style
    if fig.partner_style is not None:
        partners = [int(v) for v in (table.pre_root[row], table.post_root[row]) if int(v)]
        if partners:
            selection = selection.add(partners)
            style = fig.partner_style
    size3 = list(fig.size) + [1] * (3 - len(fig.size))
    box = normalize_bounds(bounds_from_center(np.asarray(center), *size3))
    bounds = (
        (float(box[0][0]), float(box[0][1]), float(box[0][2])),
        (float(box[1][0]), float(box[1][1]), float(box[1][2])),
    )
    return replace(
        spec, bounds=bounds, selection=selection, style=style, sites=table, current_site=row
    )


def site_row(table: SiteTable, row: int) -> dict[str, Any]:
    """The site's row for its provenance (ids as strings: 64-bit ids stay exact in JSON)."""
    s = table.site(row)

    def pt(p: Any) -> list[float] | None:
        return None if p is None else [float(v) for v in p]

    out: dict[str, Any] = {
        "id": str(s.id),
        "center": pt(s.center),
        "pre": pt(s.pre),
        "post": pt(s.post),
        "pre_root": str(s.pre_root) if s.pre_root else None,
        "post_root": str(s.post_root) if s.post_root else None,
        "pre_supervoxel": str(s.pre_sv) if s.pre_sv else None,
        "post_supervoxel": str(s.post_sv) if s.post_sv else None,
        "role": s.role,
        "kind": s.kind,
        "resolution": list(table.resolution),
    }
    if s.props:
        out["properties"] = {str(k): _jsonable(v) for k, v in s.props.items()}
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return str(v)


# -- file names --------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: The longest file stem of a figure: with a z-series mask's ``_slice_<k>_root_id_<id>.png``
#: and an atomic write's ``.<name>.<unique>.part`` still well within the 255 bytes most
#: file systems allow.
MAX_STEM = 160
#: Names Windows keeps for devices (with any extension).
_RESERVED = frozenset(
    [
        "CON",
        "PRN",
        "AUX",
        "NUL",
        *(f"COM{i}" for i in range(1, 10)),
        *(f"LPT{i}" for i in range(1, 10)),
    ]
)


def _id_hash(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def site_names(table: SiteTable) -> tuple[list[str], dict[int, str]]:
    """A file stem per row, and the rows left out because an earlier row has the same id,
    with why.

    The stem is the id, with characters unsafe in file names replaced by ``_`` and never a
    leading ``.``. Where that stem would not do, ``-`` and 8 hex digits of the id's hash
    follow (the same for the same id, run after run): a stem longer than
    :data:`MAX_STEM`, a device name on Windows (``CON``...), or a stem an earlier row has
    already, ignoring case (``a b`` and ``a:b``, ``Syn1`` and ``syn1`` on macOS and
    Windows): each distinct id gets a figure of its own."""
    names: list[str] = []
    row_of_id: dict[str, int] = {}
    taken: set[str] = set()  # stems given so far, casefolded
    dupes: dict[int, str] = {}
    for i in range(len(table)):
        sid = str(table.id_of(i))
        if sid in row_of_id:
            names.append(names[row_of_id[sid]])
            dupes[i] = f"the same id as row {row_of_id[sid]} (id {sid})"
            continue
        row_of_id[sid] = i
        name = _UNSAFE.sub("_", sid) or "_"
        if name.startswith("."):
            name = "_" + name[1:]  # never a hidden file (temporary files start with ".")
        if (
            len(name) > MAX_STEM
            or name.split(".")[0].upper() in _RESERVED
            or name.casefold() in taken
        ):
            name = f"{name[: MAX_STEM - 9]}-{_id_hash(sid)}"
        while name.casefold() in taken:  # a hashed stem met again: hash once more
            name = f"{name[: MAX_STEM - 9]}-{_id_hash(name)}"
        taken.add(name.casefold())
        names.append(name)
    return names, dupes


# -- order and tasks ---------------------------------------------------------------------------
def _spread(v: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Spread the low 21 bits of each value to every third bit (for 3-D Morton codes)."""
    x = v & np.uint64(0x1FFFFF)
    x = (x | (x << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    x = (x | (x << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    x = (x | (x << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    x = (x | (x << np.uint64(2))) & np.uint64(0x1249249249249249)
    return x


def morton_order(points_nm: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Indices that sort ``points_nm`` (n, 3) in Morton (Z-order): neighbours in space end
    up near each other. Coordinates are scaled by one factor on every axis (nm are
    isotropic), 21 bits per axis."""
    p = np.asarray(points_nm, dtype=np.float64).reshape(-1, 3)
    if len(p) == 0:
        return np.zeros(0, dtype=np.intp)
    p = np.nan_to_num(p - np.nanmin(p, axis=0), nan=0.0)
    top = float(p.max())
    q = (p * ((2**21 - 1) / top) if top > 0 else p).astype(np.uint64)
    code = (
        _spread(q[:, 0]) | (_spread(q[:, 1]) << np.uint64(1)) | (_spread(q[:, 2]) << np.uint64(2))
    )
    return np.argsort(code, kind="stable")


@dataclass(frozen=True)
class Task:
    """A group of neighbouring sites for one worker, with everything it needs.

    ``table`` holds the rows drawn in its figures (the sites and the neighbours whose
    glyphs can reach into them) in the order of the whole table (glyph stacking follows
    it); ``rows`` are the task's sites in that table, ``names`` their file stems."""

    number: int
    dataset: dict[str, Any]
    figure: SiteFigure
    table: SiteTable
    rows: tuple[int, ...]
    names: tuple[str, ...]
    outdir: str
    run_id: str
    force: bool = False
    masks: bool = False
    table_rows: int = 0
    table_skipped: int = 0


@dataclass(frozen=True)
class SiteResult:
    name: str
    status: str
    file: str = ""
    error: str = ""
    seconds: float | None = None
    now: bool = True  # made in this run (False: found finished)


def _figure_boxes_nm(
    fig: SiteFigure, table: SiteTable, rows: Sequence[int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The union box (nm) of the figures of ``rows``, padded by a whole figure in x and y
    (glyphs reach past a figure's edge by their radius, a few pixels at any mip) and by the
    glyph fade range plus two sections in z."""
    res = np.asarray(fig.resolution, dtype=np.float64)
    centers = np.floor(table.centers[list(rows)] * np.asarray(table.resolution) / res)
    size = np.asarray(list(fig.size) + [1] * (3 - len(fig.size)), dtype=np.float64)
    pad = np.array([size[0], size[1], fig.spec.glyph_style.fade_sections + 2.0])
    lo = (centers.min(axis=0) - size / 2 - pad) * res
    hi = (centers.max(axis=0) + size / 2 + pad) * res
    return lo, hi


def make_tasks(
    dataset: Dataset,
    fig: SiteFigure,
    table: SiteTable,
    rows: Sequence[int],
    names: Sequence[str],
    outdir: str,
    *,
    task_size: int,
    run_id: str,
    force: bool = False,
    masks: bool = False,
    lru_bytes: int = BATCH_LRU_BYTES,
    tail: int = 0,
) -> list[Task]:
    """Tasks of ``task_size`` neighbouring sites (Morton order of the ``rows`` to do).

    ``tail``: the last ``tail`` tasks' worth of sites go in tasks a quarter the size (at
    least 4 sites): a worker done with its own run takes these from the back of another's
    (:class:`_Runs`), so the workers finish close together instead of one making a whole
    last task (some take twice the others' time) while the rest wait."""
    rows_a = np.asarray(list(rows), dtype=np.intp)
    if len(rows_a) == 0:
        return []
    centers_nm = table.centers[rows_a] * np.asarray(table.resolution)
    ordered = rows_a[morton_order(centers_nm)]
    # Chunks kept in the worker: neighbouring figures read the same chunks, so each is
    # read once per worker instead of once per figure; of a chunk, a figure decodes only
    # the sections it shows where the encoding allows (model.sections).
    ds_args = dataset.replica_args(lru_bytes=lru_bytes, lru_encoding="raw", section_reads=True)
    link_fig = fig
    tasks: list[Task] = []
    index = SiteIndex(table)  # one box query per task, each in time of the sites near it
    small = max(4, task_size // 4)
    head = len(ordered) - (min(len(ordered), tail * task_size) if small < task_size else 0)
    bounds = [*range(0, head, task_size), *range(head, len(ordered), small), len(ordered)]
    for number, (start, end) in enumerate(itertools.pairwise(bounds)):
        group = [int(r) for r in ordered[start:end]]
        lo, hi = _figure_boxes_nm(fig, table, group)
        near = index.in_box(lo.tolist(), hi.tolist(), (1.0, 1.0, 1.0))
        keep = np.union1d(near, np.asarray(group, dtype=np.intp))  # sorted: table order
        position = {int(r): k for k, r in enumerate(keep.tolist())}
        sub = table.take(keep)
        tasks.append(
            Task(
                number=number,
                dataset=ds_args,
                figure=link_fig,
                table=sub,
                rows=tuple(position[r] for r in group),
                names=tuple(names[r] for r in group),
                outdir=outdir,
                run_id=run_id,
                force=force,
                masks=masks,
                table_rows=len(table),
                table_skipped=len(table.skipped),
            )
        )
    return tasks


# -- the worker's side -------------------------------------------------------------------------
_DATASETS: dict[str, Dataset] = {}
_DATASETS_PID = [os.getpid()]  # the process whose datasets _DATASETS holds


def _dataset_key(args: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in args.items() if k != "_infos"))


def _dataset(args: dict[str, Any]) -> Dataset:
    """This process's dataset for ``args``, opened once and kept (its LRU serves every
    task this worker runs)."""
    if _DATASETS_PID[0] != os.getpid():
        # A worker forked from the process that submits (or from a worker): what it holds
        # came with the copy, connections included. Open afresh, and let cloud-files do the
        # same with its pooled connections (as cloud-volume does when it is unpickled).
        from cloudfiles.interfaces import reset_connection_pools

        _DATASETS.clear()
        reset_connection_pools()
        _DATASETS_PID[0] = os.getpid()
    key = _dataset_key(args)
    ds = _DATASETS.get(key)
    if ds is None:
        if len(_DATASETS) > 4:  # a long-lived worker serving many batches
            _DATASETS.clear()
        ds = _DATASETS[key] = Dataset(**args).open()
    return ds


def _json_run(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            run = json.load(fh).get("batch", {}).get("run")
    except (OSError, ValueError, AttributeError):
        return None
    return str(run) if run is not None else None


def finished(outdir: str, name: str, depth: int, existing: set[str] | None = None) -> bool:
    """Whether the site's figure is finished: its JSON (written last) and its PNGs are
    there (a single figure: ``<name>.png``; a z-series: every file its JSON lists)."""

    def there(fname: str) -> bool:  # and not empty (what a power cut can leave)
        if existing is not None:
            return fname in existing
        try:
            return os.path.getsize(os.path.join(outdir, fname)) > 0
        except OSError:
            return False

    if not there(f"{name}.json"):
        return False
    if depth <= 1:
        return there(f"{name}.png")
    try:
        with open(os.path.join(outdir, f"{name}.json"), encoding="utf-8") as fh:
            files = json.load(fh).get("files") or []
    except (OSError, ValueError, AttributeError):
        return False
    return bool(files) and all(there(str(f)) for f in files)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, (ImageryGuiError, ValueError)):
        text = f"{type(exc).__name__}: {text}"
    from .cave import scrub

    return str(scrub(text))


def run_site(task: Task, ds: Dataset, k: int, unsynced: list[str] | None = None) -> SiteResult:
    """Make and write the figure of the task's ``k``-th site (or find it finished). With
    ``unsynced`` the files are written without fsync and their paths added to it (the
    caller syncs them before it reports the site done)."""
    name, row = task.names[k], task.rows[k]
    png = os.path.join(task.outdir, f"{name}.png")
    meta = os.path.join(task.outdir, f"{name}.json")
    depth = task.figure.size[2] if len(task.figure.size) > 2 else 1
    if finished(task.outdir, name, depth) and (not task.force or _json_run(meta) == task.run_id):
        # finished: before this run, or by an earlier attempt of this task in this run
        return SiteResult(name, DONE, _first_file(meta, png), now=False)
    t0 = time.perf_counter()
    try:
        spec = site_spec(task.figure, task.table, row)
        fig = make_figure(ds, spec)
        drawn = [task.table.id_of(i) for i in fig.site_rows] if spec.annotate else []
        sites = sites_provenance(task.table, drawn)
        sites["rows"], sites["skipped_rows"] = task.table_rows, task.table_skipped
        extra: dict[str, Any] = dict(task.figure.extra_provenance)
        if task.figure.link_inputs is not None:
            from .state import spec_link

            extra["neuroglancer_link"] = spec_link(task.figure.link_inputs, spec)
        extra["sites"] = sites
        extra["site"] = site_row(task.table, row)
        extra["batch"] = {
            "run": task.run_id,
            "task": task.number,
            "sites": task.figure.sites_source,
        }
        # Files without a JSON are what a killed attempt left (each complete: atomic
        # writes): replacing them is finishing that figure, not redoing a finished one.
        written = write_figure(
            ds,
            spec,
            fig,
            png,
            force=True,
            masks=task.masks,
            extra_provenance=extra,
            compress_level=PNG_COMPRESS_LEVEL,
            fsync=unsynced is None,
        )
        if unsynced is not None:
            unsynced += written
    except Exception as exc:  # noqa: BLE001 - one failed site never stops the batch
        return SiteResult(name, FAILED, "", _one_line(exc), time.perf_counter() - t0)
    return SiteResult(name, DONE, os.path.basename(written[0]), "", time.perf_counter() - t0)


def _first_file(meta: str, png: str) -> str:
    if os.path.exists(png):
        return os.path.basename(png)
    try:
        with open(meta, encoding="utf-8") as fh:
            files = json.load(fh).get("files") or []
        return str(files[0]) if files else ""
    except (OSError, ValueError, AttributeError, IndexError):
        return ""


#: A run of neighbouring figures is read as one box when that box holds at most this many
#: times the voxels of its figures together ...
HOLD_SLACK = 3.0
#: ... and at most this many voxels at the figures' resolution (a 4096 x 4096 section of
#: 8-bit image with its 8 nm uint64 segmentation is about 50 MB).
HOLD_MAX_VOXELS = 16 * 1024**2


@dataclass(frozen=True)
class _Run:
    """Consecutive sites of a task whose figures are read as one box (``box`` in voxels of
    ``resolution``; None: read one by one)."""

    sites: tuple[int, ...]
    box: tuple[tuple[float, ...], tuple[float, ...]] | None
    resolution: tuple[float, ...]
    image_mip: Any
    segmentation_mip: Any


def _compact_runs(task: Task, ds: Dataset) -> list[_Run]:
    """The task's sites (already in Morton order) in runs of neighbours: a run grows while
    the box around its figures stays within HOLD_SLACK times their own voxels and within
    HOLD_MAX_VOXELS. Each run's box is read once per layer (:meth:`Dataset.holding`)."""
    spec0 = task.figure.spec
    res = tuple(float(v) for v in ds.coord_resolution(task.figure.resolution))
    runs: list[_Run] = []
    if not task.rows:
        return runs
    boxes = []
    for row in task.rows:
        box = normalize_bounds(site_spec(task.figure, task.table, row).bounds)
        boxes.append((box[0], box[1]))

    def close(start: int, end: int, lo: Any, hi: Any) -> None:
        held = None if end - start < 2 else (tuple(lo.tolist()), tuple(hi.tolist()))
        runs.append(
            _Run(tuple(range(start, end)), held, res, spec0.image_mip, spec0.segmentation_mip)
        )

    start, lo, hi = 0, boxes[0][0].copy(), boxes[0][1].copy()
    own = float(np.prod(hi - lo))
    for k in range(1, len(boxes)):
        b_lo, b_hi = boxes[k]
        n_lo, n_hi = np.minimum(lo, b_lo), np.maximum(hi, b_hi)
        n_own = own + float(np.prod(b_hi - b_lo))
        union = float(np.prod(n_hi - n_lo))
        if union <= HOLD_SLACK * n_own and union <= HOLD_MAX_VOXELS:
            lo, hi, own = n_lo, n_hi, n_own
            continue
        close(start, k, lo, hi)
        start, lo, hi = k, b_lo.copy(), b_hi.copy()
        own = float(np.prod(hi - lo))
    close(start, len(boxes), lo, hi)
    return runs


def run_marker(outdir: str, run_id: str) -> str:
    """The file the submitting process keeps in the output folder while run ``run_id``
    runs (named as atomic writes' temporaries: a killed run's is cleaned up by the next)."""
    return os.path.join(outdir, f".imagery-gui-batch.{run_id}.run.part")


def run_task(task: Task) -> list[SiteResult]:
    """Run one task (in a worker process, or in this one): a result per site.

    A worker that does not see the run's marker in the output folder is not looking at the
    folder the submitting machine is (a node without the shared file system, one that
    joined after the batch checked its workers): every site of the task fails with the
    reason, instead of being written where nobody looks."""
    import logging

    if not os.path.exists(run_marker(task.outdir, task.run_id)):
        import socket

        msg = (
            f"the Dask worker on {socket.gethostname()} does not see the output folder "
            f"{task.outdir} as the submitting machine does; give an output folder on a file "
            "system the workers share, at the same path"
        )
        return [SiteResult(n, FAILED, "", msg) for n in task.names]
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    try:
        ds = _dataset(task.dataset)
    except Exception as exc:  # noqa: BLE001 - every site of the task fails with the reason
        msg = _one_line(exc)
        return [SiteResult(n, FAILED, "", msg) for n in task.names]
    # One fsync pass for the task's files (before it reports them done) instead of two
    # fsyncs per figure, each a journal commit: about 2 ms a figure on ext4.
    unsynced: list[str] = []
    results = []
    for run in _compact_runs(task, ds):
        with ds.holding(run.box, run.resolution, run.image_mip, run.segmentation_mip):
            results += [run_site(task, ds, k, unsynced) for k in run.sites]
    fsync_files(unsynced)
    return results


# -- the manifest ------------------------------------------------------------------------------
def read_manifest(path: str) -> dict[str, dict[str, str]]:
    """The rows of an earlier run's manifest by id (empty when there is none)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return {row["id"]: row for row in csv.DictReader(fh) if row.get("id")}
    except (OSError, ValueError, KeyError, csv.Error):
        return {}


def write_manifest(path: str, rows: Iterable[Sequence[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MANIFEST_COLUMNS)
    for r in rows:
        w.writerow(r)
    data = buf.getvalue().encode("utf-8")
    with atomic_open(path, "wb", overwrite=True) as fh:
        fh.write(data)


def _fmt_seconds(s: float | None) -> str:
    return "" if s is None else f"{s:.3f}"


# -- running -----------------------------------------------------------------------------------
class _Executor:
    """Runs tasks and yields their results as they complete (this one: in this process)."""

    #: Where the tasks run: Dask's dashboard link, the number of workers (0: here).
    dashboard: str | None = None
    workers: int = 0
    #: Of a cluster's run: figures made in this process while the cluster started.
    made_here: int = 0

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, list[SiteResult]]]:
        for t in tasks:
            yield t, run_task(t)

    def close(self) -> None:
        pass


def _import_distributed() -> Any:
    import importlib

    try:
        # Any: distributed's own annotations are partial (untyped calls under --strict)
        return importlib.import_module("distributed")
    except ImportError:  # pragma: no cover - a dependency
        raise BatchError(
            "batch needs Dask's distributed package: pip install 'dask[distributed]', or "
            "run in this process with --workers 0"
        ) from None


class _Helper:
    """Runs tasks in this process, from the front of the queue the cluster gets the rest
    of, until stopped; each result is put on ``events``. Each task is taken by exactly one
    of the two (``deque.popleft`` is atomic)."""

    def __init__(self, pending: collections.deque[Task], events: queue.Queue[Any]) -> None:
        self.pending = pending
        self.events = events
        self.stopping = threading.Event()
        self.done = False  # its last result taken (set by the consumer of ``events``)
        self.datasets: set[str] = set()
        self.thread = threading.Thread(target=self._loop, name="imagery-gui-batch", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    task = self.pending.popleft()
                except IndexError:
                    break
                self.datasets.add(_dataset_key(task.dataset))
                try:
                    results = run_task(task)
                except Exception as exc:  # noqa: BLE001 - the task's error, for each site
                    results = [SiteResult(n, FAILED, "", _one_line(exc)) for n in task.names]
                self.events.put(("result", task, results))
        finally:
            self.events.put(("helper done",))

    def join(self) -> None:
        """Take no new task, wait for the one under way (its files are never cut short),
        and let go of the datasets it opened (this process keeps no worker's LRU)."""
        self.stopping.set()
        self.thread.join()
        for key in self.datasets:
            _DATASETS.pop(key, None)


def _worker_threads(client: Any) -> dict[str, int]:
    """The scheduler's workers and the threads each runs tasks on, in a fixed order
    (empty when it has none yet)."""
    try:
        workers = client.scheduler_info().get("workers", {})
        return {w: max(1, int(workers[w].get("nthreads", 1))) for w in sorted(workers)}
    except Exception:  # noqa: BLE001 - no preference then; the scheduler places the tasks
        return {}


def is_scheduler_file(scheduler: str) -> bool:
    """Whether ``--scheduler`` names a scheduler file rather than an address."""
    return scheduler.endswith(".json") or os.path.isfile(scheduler)


def scheduler_file_address(path: str) -> str:
    """The address a Dask scheduler file gives (BatchError: none there)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return str(json.load(fh)["address"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "no scheduler address in it"
        raise BatchError(
            f"cannot read the Dask scheduler file {path}: {why}; give the file `dask "
            "scheduler --scheduler-file` wrote, or the scheduler's address"
        ) from None


#: What a worker imports to read a task (its site table, style and figure) and make it.
WORKER_NEEDS = ("imagery_gui.model.batch", "pandas", "cloudvolume")


def check_workers(
    client: Any,
    scheduler: str,
    log: Callable[[str], None],
    marker: tuple[str, str] | None = None,
) -> None:
    """Refuse, with one line, a cluster whose workers cannot make the figures.

    A worker without imagery-gui (or one of what it needs) cannot even read a task: Dask
    then drops the worker itself, and the batch would wait for workers forever. A worker
    that does not see the output folder as this machine does (no shared file system there)
    would write the figures where nobody looks. So each worker is asked first, by a
    function Dask sends by value (a local function: it runs where imagery_gui is missing),
    to import what a task needs and to read ``marker`` = (path, text): the run's file in
    the output folder (:func:`run_marker`), which every task looks for too. A worker
    running another version of imagery-gui is named in a warning: its figures may differ
    from this version's export."""
    from .._version import __version__

    def modules(needs: tuple[str, ...], seen: str | None, token: str) -> str:
        import importlib
        import os

        try:
            for name in needs:
                importlib.import_module(name)
            version = str(importlib.import_module("imagery_gui").__version__)
        except Exception as exc:  # noqa: BLE001 - reported to the batch, not raised there
            return f"error import {type(exc).__name__}: {exc}"
        if seen is not None:
            folder = os.path.dirname(seen)
            try:
                with open(seen, encoding="ascii") as fh:
                    same = fh.read() == token
            except OSError:
                same = False
            if not same:
                return f"error folder does not see the output folder {folder} as this machine does"
            if not os.access(folder, os.W_OK | os.X_OK):
                return f"error folder cannot write in the output folder {folder}"
        return "ok " + version

    seen, token = marker if marker is not None else (None, "")
    try:
        answers = client.run(modules, WORKER_NEEDS, seen, token, on_error="return")
    except Exception as exc:  # noqa: BLE001 - a scheduler that cannot be asked
        raise BatchError(
            f"cannot ask the Dask workers at {scheduler} what they run: {_one_line(exc)}"
        ) from None
    bad = {w: a for w, a in answers.items() if not (isinstance(a, str) and a.startswith("ok "))}
    if bad:
        worker, why = sorted(bad.items(), key=lambda kv: kv[0])[0]
        if isinstance(why, str):  # "error <kind> <text>"
            kind, _, why = why.partition(" ")[2].partition(" ")
        else:  # the probe itself failed there
            kind, why = "", _one_line(why)
        fix = {
            "import": f"install imagery-gui {__version__} where they run and start them again",
            "folder": "give an output folder on a file system the workers share with this "
            "machine, at the same path",
        }.get(kind, "see the workers' logs")
        raise BatchError(
            f"{len(bad)} of the {len(answers)} Dask workers at {scheduler} cannot make "
            f"figures ({worker}: {why}); {fix}"
        )
    other = sorted({a[len("ok ") :] for a in answers.values()} - {__version__})
    if other:
        log(
            f"warning: Dask workers at {scheduler} run imagery-gui {', '.join(other)}, this "
            f"is {__version__}: their figures may differ from this version's export"
        )


class _Runs:
    """Which task a worker makes next. The tasks, in Morton order, are cut into one run of
    consecutive tasks per worker; a worker takes the front of its own run, and once that is
    empty the back of the longest other run (a worker that joins later, or one whose
    worker died, is treated the same way).

    Neighbouring tasks read many of the same chunks, and a worker keeps what it read:
    handed out as they come, consecutive tasks go to different workers and their shared
    chunks are read and decoded in each (measured on the real-density table: 30% more
    JPEG chunk decodes with two workers than in one process, and a fifth more CPU a
    figure)."""

    def __init__(self, tasks: Sequence[Task], workers: Sequence[str]) -> None:
        workers = list(workers) or [""]  # none yet: one run, for whoever comes
        self.runs: dict[str, collections.deque[Task]] = {w: collections.deque() for w in workers}
        # runs of about as many sites each (a batch's last task is often a short one)
        sizes = [max(1, len(getattr(t, "names", ()))) for t in tasks]
        total, before = sum(sizes), 0
        for t, size in zip(tasks, sizes):  # by where the task's middle falls
            k = int((before + size / 2) * len(workers) // total)
            self.runs[workers[min(len(workers) - 1, k)]].append(t)
            before += size

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs.values())

    def take(self, worker: str) -> Task | None:
        own = self.runs.setdefault(worker, collections.deque())
        if own:
            return own.popleft()
        longest = max(self.runs.values(), key=len)
        return longest.pop() if longest else None


#: Tasks handed to each worker at a time beyond one per thread: one waiting, so a worker
#: never waits for the round trip to the next.
WAITING = 1


class _Dask(_Executor):
    """Tasks on Dask: a running scheduler at ``scheduler``, else a LocalCluster of
    ``workers`` processes on this machine.

    Local workers forked from this process (:func:`worker_start_method`) are up in 0.1 s,
    and the cluster starts before anything else. From the fork server, a local cluster
    starts in a thread while this process makes the first tasks' figures itself (its CPU is
    otherwise idle then: the server imports its modules on one core, about 1.5 s here); the
    workers get the rest as soon as they are up, and this process finishes the task it is
    making and makes no more."""

    def __init__(
        self,
        workers: int | None,
        scheduler: str | None,
        threads_per_worker: int,
        log: Callable[[str], None],
        marker: tuple[str, str] | None = None,
    ) -> None:
        self.distributed = _import_distributed()
        self.scheduler = scheduler
        self.log = log
        self.workers = workers or os.cpu_count() or 1
        self.client: Any = None
        self.cluster: Any = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.events: queue.Queue[Any] = queue.Queue()
        self.helper: _Helper | None = None
        self._said = False
        # A scheduler answers at once, its workers up already; local workers forked from
        # this process are up in 0.1 s. Either way, connect now.
        self.method: str | None = None if scheduler else worker_start_method()
        if scheduler:
            self._connect(threads_per_worker)
            try:
                client = self._client()
                check_workers(client, str(client.scheduler.address), log, marker)
            except BaseException:
                self.close()
                raise
        elif self.method == "fork":  # before any thread of ours runs (the helper's)
            self._connect(threads_per_worker)
            if self.error is not None:
                raise self.error
        else:
            threading.Thread(
                target=self._connect,
                args=(threads_per_worker,),
                name="imagery-gui-cluster",
                daemon=True,
            ).start()

    def _connect(self, threads_per_worker: int) -> None:
        try:
            if self.scheduler and is_scheduler_file(self.scheduler):
                self.client = self._from_file(self.scheduler)
            elif self.scheduler:
                self.client = self.distributed.Client(self.scheduler, timeout="20s")
            else:
                self.cluster = local_cluster(self.workers, threads_per_worker, self.method)
                self.client = self.distributed.Client(self.cluster)
        except (OSError, TimeoutError, RuntimeError) as exc:
            where = self.scheduler or "a local cluster"
            self.error = BatchError(f"cannot reach the Dask scheduler at {where}: {exc}")
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            self.error = exc
        finally:
            self.ready.set()
            self.events.put(("ready",))

    def _from_file(self, path: str) -> Any:
        """A client of the scheduler a scheduler file names (Dask reads the address, and
        the TLS settings when there are any, from it)."""
        address = scheduler_file_address(path)
        try:
            return self.distributed.Client(scheduler_file=path, timeout="20s")
        except (OSError, TimeoutError, RuntimeError) as exc:
            raise BatchError(
                f"cannot reach the Dask scheduler at {address} (from {path}): {exc}"
            ) from None

    def _client(self) -> Any:
        """The client once connected (BatchError if it could not be); says where once."""
        self.ready.wait()
        if self.error is not None:
            raise self.error
        client = self.client
        if not self._said:
            self._said = True
            try:
                self.dashboard = client.dashboard_link if _has_dashboard(client) else None
            except Exception:  # noqa: BLE001 - no dashboard is fine
                self.dashboard = None
            now = len(client.scheduler_info().get("workers", {}))
            self.workers = max(1, now)
            dash = f"; dashboard {self.dashboard}" if self.dashboard else ""
            if now:
                threads = sum(_worker_threads(client).values())
                self.log(
                    f"Dask: {now} workers, {threads} tasks at once, at "
                    f"{client.scheduler.address}{dash}"
                )
            else:
                self.log(
                    f"Dask: no workers at {client.scheduler.address} yet{dash}; the tasks "
                    "wait for workers to join (start them with: dask worker ADDRESS)"
                )
        return client

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, list[SiteResult]]]:
        pending = collections.deque(tasks)
        if not self.ready.is_set():
            self.helper = _Helper(pending, self.events)
            yield from self._helper_results(until_ready=True)
            self.helper.stopping.set()
        rest = []
        while pending:
            with contextlib.suppress(IndexError):  # the helper took the last one
                rest.append(pending.popleft())
        if not rest:  # the helper made them all
            yield from self._helper_results(until_ready=False)
            return
        client = self._client()
        by_key: dict[Any, tuple[Task, str]] = {}
        done = self.distributed.as_completed()
        order = itertools.count()
        in_flight: collections.Counter[str] = collections.Counter()  # by the worker meant

        def submit(t: Task, worker: str) -> None:
            fut = client.submit(
                run_task,
                t,
                key=f"imagery-gui-batch-{t.run_id}-{t.number}",
                workers=[worker] if worker else None,
                allow_other_workers=bool(worker),  # Dask refuses it without workers=
                priority=-next(order),  # a worker makes what it was given in that order
            )
            by_key[fut.key] = (t, worker)
            in_flight[worker] += 1
            done.add(fut)

        def top_up() -> None:
            """A task per thread and WAITING more for each worker there is now (new ones
            included); with none, every task left, for the scheduler to place when
            workers come."""
            workers = _worker_threads(client)
            # near the end no more than the threads, so that none waits behind another's
            waiting = WAITING if len(runs) >= sum(workers.values()) + len(workers) else 0
            for w, threads in workers.items():
                while in_flight[w] < threads + waiting and (t := runs.take(w)) is not None:
                    submit(t, w)
            if not workers or done.count() == 0:
                while (t := runs.take("")) is not None:
                    submit(t, "")

        runs = _Runs(rest, list(_worker_threads(client)))
        top_up()
        # the task the helper was making when the workers came
        yield from self._helper_results(until_ready=False)
        for fut in done:
            t, meant = by_key.pop(fut.key)
            in_flight[meant] -= 1
            # result(), not the status: a result held by a worker that died after
            # finishing is lost, and the scheduler recomputes it while we wait here.
            try:
                results = fut.result()
            except Exception as exc:  # noqa: BLE001 - the task's error, for each site
                results = [SiteResult(n, FAILED, "", _one_line(exc)) for n in t.names]
            yield t, results
            fut.release()
            if len(runs):
                top_up()

    def _helper_results(self, until_ready: bool) -> Iterator[tuple[Task, list[SiteResult]]]:
        """The helper's results as they come, until it is done (or, ``until_ready``, the
        cluster is up first)."""
        while self.helper is not None and not self.helper.done:
            if until_ready and self.ready.is_set():
                return
            event = self.events.get()
            if event[0] == "result":
                self.made_here += len(event[2])
                yield event[1], event[2]
            elif event[0] == "helper done":
                self.helper.done = True

    def close(self) -> None:
        if self.helper is not None:
            self.helper.join()
        self.ready.wait()  # a cluster still starting is closed once up
        try:
            if self.client is not None:
                self.client.close(timeout=10)
        finally:
            if self.cluster is not None:
                self.cluster.close(timeout=10)


#: What the local cluster's worker processes start with in place of Dask's defaults.
#: Dask sets MALLOC_TRIM_THRESHOLD_=65536 so that workers hand freed memory back to the OS
#: at once; that also pins glibc's mmap threshold at 128 KiB, so every figure-sized array
#: (a 256x256 RGBA slice is 256 KiB) is a fresh mmap whose pages fault in again: measured
#: here on 3000 demo figures, a fifth more CPU (system time: 15.5 s against 5.8 s with one
#: worker) and 12-16% fewer figures per second. Unset, glibc keeps such arrays on its
#: heap; a batch worker's memory is bounded by its LRU anyway. A variable set in the
#: environment still wins (Dask's rule).
LOCAL_WORKER_ENVIRON: dict[str, str | None] = {"MALLOC_TRIM_THRESHOLD_": None}


#: Dask's own variable for its workers' statistical profiler (off in a local cluster).
PROFILE_VARIABLE = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"

#: Modules the local cluster's fork server (or this process, when it forks the workers)
#: imports once, before it forks each worker: what a spawned worker imports for itself
#: (distributed, then this module, cloud-volume and the rest on its first task: 1.4 s of
#: CPU per worker here).
FORKSERVER_PRELOAD = ("distributed", "imagery_gui.model.batch", "cloudvolume")


#: Threads of Dask's own that may run in this process when a local cluster starts (its
#: offload pool outlives a batch's cluster); Dask supports forking its workers beside them.
DASK_THREADS = ("Dask-Offload",)


def other_threads() -> list[str]:
    """The names of the threads running in this process besides the calling one and Dask's."""
    me = threading.current_thread()
    return [
        t.name
        for t in threading.enumerate()
        if t is not me and t.is_alive() and not t.name.startswith(DASK_THREADS)
    ]


def worker_start_method() -> str:
    """How the local cluster starts its worker processes.

    On Linux, ``fork`` when this process runs no thread but the calling one (a script, the
    command line): each worker is a copy of this process with everything already imported,
    and two are up in 0.1 s. ``forkserver`` when other threads run (a notebook's kernel, an
    application): one of them may hold a lock at the moment of the fork that the copy would
    then wait for forever, so a clean server process imports :data:`FORKSERVER_PRELOAD` once
    and forks each worker from it (1.5 s of imports at the first cluster of a session, the
    next ones in tens of ms). ``spawn`` elsewhere and in the frozen bundle (Dask's default).
    """
    import multiprocessing

    if not sys.platform.startswith("linux") or getattr(sys, "frozen", False):
        return "spawn"
    if not other_threads():
        return "fork"
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        return "spawn"
    return "forkserver"


def start_worker_server(method: str | None = None) -> None:
    """Start the local cluster's fork server now, when its workers will be forked from one
    (``method``, by default :func:`worker_start_method`'s): its imports then run beside this
    process's own start (reading the table, opening the sources) instead of after it.
    Nothing if it runs."""
    if (method or worker_start_method()) != "forkserver":
        return
    import multiprocessing
    import multiprocessing.forkserver

    # Read when the server starts only: Dask sets its own list on its first use of the
    # fork server, by then running with these.
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(FORKSERVER_PRELOAD))
    multiprocessing.forkserver.ensure_running()


def local_cluster(n_workers: int, threads_per_worker: int = 1, method: str | None = None) -> Any:
    """A Dask LocalCluster of ``n_workers`` processes on 127.0.0.1 for batch (its worker
    environment: :data:`LOCAL_WORKER_ENVIRON`; started by :func:`worker_start_method`).

    ``method``: how the workers start (default :func:`worker_start_method`'s). Forked from
    this process or from the fork server, workers get the environment of the process that
    forks them as it started (glibc reads its MALLOC_* variables then): set such variables
    before starting Python, as for any program."""
    import importlib
    import logging

    import dask

    # Any: distributed's own annotations are partial (untyped calls under --strict)
    distributed: Any = importlib.import_module("distributed")
    config: dict[str, Any] = {
        f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in LOCAL_WORKER_ENVIRON.items()
    }
    method = method or worker_start_method()
    if method == "fork":  # imported once here, not by every worker on its first task
        for name in FORKSERVER_PRELOAD:
            importlib.import_module(name)
    start_worker_server(method)
    # A worker that dies is started again by its nanny outside this block, with Dask's
    # configured method (spawn unless set otherwise): slower, the same worker.
    config["distributed.worker.multiprocessing-method"] = method
    # Dask's statistical profiler walks each worker's stacks every 10 ms for the dashboard's
    # Profile page: 3-4% of a local batch's CPU here. Off, unless asked for the Dask way
    # (DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=True).
    if PROFILE_VARIABLE not in os.environ:
        config["distributed.worker.profile.enabled"] = False
    with dask.config.set(config):
        return distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address=_dashboard_address(),
            silence_logs=logging.ERROR,
        )


def _dashboard_address() -> str | None:
    """A dashboard on 127.0.0.1 (any free port) when bokeh is installed, else none."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return None
    return "127.0.0.1:0"


def _has_dashboard(client: Any) -> bool:
    info = client.scheduler_info()
    return bool(info.get("services", {}).get("dashboard"))


@dataclass
class BatchSummary:
    total: int = 0
    done_now: int = 0
    done_before: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    manifest: str = ""
    contact_sheet: str | None = None
    dashboard: str | None = None
    #: Of a cluster's run: figures made in this process while the cluster started.
    made_here: int = 0

    def line(self) -> str:
        rate = self.done_now / self.seconds if self.seconds > 0 else 0.0
        parts = [
            f"{self.done_now + self.done_before} done ({self.done_now} now, "
            f"{self.done_before} before)"
        ]
        parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        here = f"; {self.made_here} made here while the cluster started" if self.made_here else ""
        return (
            f"{self.total} sites: "
            + ", ".join(parts)
            + f" in {self.seconds:.1f} s ({rate:.1f} figures/s{here}); manifest {self.manifest}"
        )


def default_task_size(n: int, workers: int) -> int:
    """16-64 sites per task, fewer when there are few sites, so every worker gets work."""
    if n <= 0:
        return 1
    per = math.ceil(n / max(1, 4 * max(workers, 1)))
    return int(min(64, max(min(16, n), per)))


def prepare_outdir(outdir: str | os.PathLike[str]) -> str:
    """Create the output folder if needed and check it can be written (BatchError if not)."""
    out = os.path.abspath(os.fspath(outdir))
    if os.path.exists(out) and not os.path.isdir(out):
        raise BatchError(f"{out} is a file; give a folder for the figures (-o OUTDIR)")
    try:
        os.makedirs(out, mode=default_mode(folder=True), exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create the output folder {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BatchError(f"cannot write in the output folder {out}: no permission")
    return out


LOCK = ".imagery-gui-batch.lock"
_TEMP = re.compile(r"^\..+\.part$")  # io.atomic_open's temporary files


class _FolderLock:
    """One batch per output folder at a time (the manifest has one writer); while it is
    held, temporary files in the folder are what a killed run left, and are removed."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, LOCK)
        self.fh: Any = None

    def __enter__(self) -> _FolderLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock, no cleanup
            return self
        self.fh = open(self.path, "a")  # held for the whole run
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            self.fh = None
            raise BatchError(
                f"another batch is writing into {os.path.dirname(self.path)}; wait for it "
                "or give another folder"
            ) from None
        self.remove_temporaries()
        return self

    def remove_temporaries(self) -> None:
        """Remove what killed writers left: the temporary files of atomic writes."""
        if self.fh is None:
            return
        for entry in os.scandir(os.path.dirname(self.path)):
            if _TEMP.match(entry.name) and entry.is_file():
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()  # releases the lock (the file stays: unlinking it would race)


def run_batch(
    dataset: Dataset,
    figure: SiteFigure,
    table: SiteTable,
    outdir: str | os.PathLike[str],
    *,
    force: bool = False,
    masks: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int = 1,
    task_size: int | None = None,
    contact_sheet: int | None = None,
    lru_bytes: int = BATCH_LRU_BYTES,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    summary: BatchSummary | None = None,
) -> Any:
    """Make every site's figure; returns the manifest as a pandas DataFrame.

    ``workers=0`` runs in this process; ``None`` (default) a LocalCluster with a worker
    process per CPU, each making ``threads_per_worker`` tasks at once; ``scheduler`` an
    address of a running Dask scheduler, or its scheduler file. ``contact_sheet``: 0 for
    all figures, N for the first N, None for none."""
    if scheduler and is_scheduler_file(scheduler):
        scheduler_file_address(scheduler)  # a file that names none: before any file is written
    out = prepare_outdir(outdir)
    with _FolderLock(out) as lock:
        return _run_locked(
            lock,
            dataset,
            figure,
            table,
            out,
            force=force,
            masks=masks,
            workers=workers,
            scheduler=scheduler,
            threads_per_worker=threads_per_worker,
            task_size=task_size,
            contact_sheet=contact_sheet,
            lru_bytes=lru_bytes,
            progress=progress,
            log=log,
            summary=summary,
        )


def _run_locked(
    lock: _FolderLock,
    dataset: Dataset,
    figure: SiteFigure,
    table: SiteTable,
    out: str,
    *,
    force: bool,
    masks: bool,
    workers: int | None,
    scheduler: str | None,
    threads_per_worker: int,
    task_size: int | None,
    contact_sheet: int | None,
    lru_bytes: int,
    progress: Progress | None,
    log: Callable[[str], None] | None,
    summary: BatchSummary | None,
) -> Any:
    import pandas as pd

    say = log or (lambda m: None)
    names, dupes = site_names(table)
    existing = {e.name for e in os.scandir(out) if e.is_file() and e.stat().st_size > 0}
    depth = figure.size[2] if len(figure.size) > 2 else 1
    done_names = {n for n in names if finished(out, n, depth, existing)}
    manifest_path = os.path.join(out, MANIFEST)
    previous = read_manifest(manifest_path)
    run_id = uuid.uuid4().hex[:12]

    rows: dict[str, list[Any]] = {}  # name -> manifest row, in table order
    order: list[str] = []
    todo: list[int] = []
    s = summary if summary is not None else BatchSummary()
    s.total, s.manifest = len(table) + len(table.skipped), manifest_path
    for i, name in enumerate(names):
        if i in dupes:
            rows[f"\0{i}"] = [str(table.id_of(i)), "", SKIPPED, dupes[i], ""]
            order.append(f"\0{i}")
            s.skipped += 1
            continue
        order.append(name)
        if name in done_names and not force:
            old = previous.get(str(table.id_of(i)), {})
            rows[name] = [
                str(table.id_of(i)),
                old.get("file") or f"{name}.png",
                DONE,
                "",
                old.get("seconds", "") if old.get("status") == DONE else "",
            ]
            s.done_before += 1
        else:
            rows[name] = [str(table.id_of(i)), "", PENDING, "", ""]
            todo.append(i)
    for sk in table.skipped:
        key = f"\0skip{sk.row}"
        rows[key] = ["", "", SKIPPED, f"table row {sk.row}: {sk.reason}", ""]
        order.append(key)
        s.skipped += 1

    def flush() -> None:
        write_manifest(manifest_path, (rows[k] for k in order))

    flush()
    t0 = time.perf_counter()
    executor: _Executor | None = None
    marker = run_marker(out, run_id)
    try:
        with open(marker, "w", encoding="ascii") as fh:  # what every task looks for
            fh.write(run_id)
    except OSError as exc:
        raise BatchError(f"cannot write {marker}: {exc.strerror or exc}") from None
    try:
        if todo:
            if workers == 0 and not scheduler:
                executor = _Executor()
            else:
                executor = _Dask(workers, scheduler, threads_per_worker, say, (marker, run_id))
            size = task_size or default_task_size(len(todo), executor.workers or 1)
            # the workers' last tasks smaller (in this process: nothing to balance)
            tail = executor.workers if not task_size else 0
            tasks = make_tasks(
                dataset,
                figure,
                table,
                todo,
                names,
                out,
                task_size=size,
                run_id=run_id,
                force=force,
                masks=masks,
                lru_bytes=lru_bytes,
                tail=tail,
            )
            done = 0
            last_flush = time.perf_counter()
            if progress:
                progress(0, len(todo), "starting")
            for _task, results in executor.run(tasks):
                for r in results:
                    row = rows[r.name]
                    row[1], row[2], row[3] = r.file, r.status, r.error
                    if r.now:
                        row[4] = _fmt_seconds(r.seconds)
                    if r.status == DONE:
                        s.done_now += 1
                    else:
                        s.failed += 1
                done += len(results)
                now = time.perf_counter()
                if now - last_flush > 0.5 or done == len(todo):
                    flush()
                    last_flush = now
                if progress:
                    progress(done, len(todo), _rate(done, len(todo), now - t0))
    finally:
        s.seconds = time.perf_counter() - t0
        flush()
        if executor is not None:
            s.dashboard, s.made_here = executor.dashboard, executor.made_here
            executor.close()
        # Every task has ended (or this process is stopping): temporary files now are
        # what a worker killed mid-write left behind (and the run's marker).
        with contextlib.suppress(OSError):
            os.unlink(marker)
        lock.remove_temporaries()
    if contact_sheet is not None:
        picks = [rows[k] for k in order if rows[k][2] == DONE and rows[k][1]]
        if contact_sheet > 0:
            picks = picks[:contact_sheet]
        if picks:
            s.contact_sheet = write_contact_sheet(
                out, [(str(r[0]), os.path.join(out, str(r[1]))) for r in picks]
            )
    return pd.read_csv(
        manifest_path, dtype={"id": str, "file": str, "error": str}, keep_default_na=False
    )


def _rate(done: int, total: int, seconds: float) -> str:
    if done <= 0 or seconds <= 0:
        return ""
    rate = done / seconds
    left = (total - done) / rate
    return f"{rate:.1f} figures/s, {_duration(left)} left"


def _duration(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


# -- contact sheet -----------------------------------------------------------------------------
def write_contact_sheet(outdir: str, items: Sequence[tuple[str, str]], spacing: int = 6) -> str:
    """One montage PNG of the figures (id, path), each labelled with its site id above it,
    with one scale bar shared by all (every figure has the same pixel size, read from the
    first figure's JSON) below them: :func:`.sheet.contact_sheet` of the files, at 300 dpi."""
    from PIL import Image

    from .sheet import contact_sheet, save_contact_sheet

    tiles = []
    for sid, path in items:
        with Image.open(path) as im:
            tiles.append((sid, im.convert("RGB")))
    nm_per_px = _pixel_size(os.path.splitext(items[0][1])[0] + ".json")
    sheet = contact_sheet(tiles, nm_per_px, spacing=spacing)
    return save_contact_sheet(sheet, os.path.join(outdir, CONTACT_SHEET))


def _pixel_size(meta: str) -> float | None:
    try:
        with open(meta, encoding="utf-8") as fh:
            px = json.load(fh).get("pixel_size_nm")
        return float(px[0]) if px else None
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return None


__all__ += ["BatchSummary", "default_task_size", "write_contact_sheet"]
