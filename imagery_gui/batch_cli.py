"""``imagery-gui batch``: a figure for every site of a table, on this machine or a Dask cluster.

Each site's figure is what ``imagery-gui export --sites FILE --site ID`` makes with the same
options; the engine is :mod:`imagery_gui.model.batch`. No Qt is imported. Bad input (table,
sources, options, output folder) prints one line and exits with code 2 before any work;
sites that fail are listed in the manifest and the exit code is 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .cli_args import OneLineParser, add_cave_arguments, add_site_arguments
from .export_cli import (
    EXIT_INTERNAL_ERROR,
    EXIT_USER_ERROR,
    _colors,
    _Progress,
    add_figure_arguments,
    add_read_arguments,
    add_source_arguments,
    add_style_arguments,
    style_from_args,
)
from .model.errors import ImageryGuiError

EXIT_SITES_FAILED = 1


def batch_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="imagery-gui batch",
        description=(
            "A figure for every site of a table: the figure `imagery-gui export --sites FILE "
            "--site ID` makes with the same options, centred on the site, its pre and post "
            "segments drawn when no --root-ids are given. Writes OUTDIR/<site id>.png and .json "
            "and OUTDIR/manifest.csv; a rerun makes only the figures that are missing or failed. "
            "Runs on a Dask LocalCluster of worker processes, on a running Dask scheduler "
            "(--scheduler), or in this process (--workers 0)."
        ),
    )
    add_source_arguments(p)
    where = p.add_argument_group("figures (each centred on its site)")
    where.add_argument(
        "--size",
        nargs="+",
        type=int,
        metavar="N",
        help="W H [D]: figure size in voxels at --resolution; D slices make a z-series per "
        "site (required; D defaults to 1)",
    )
    add_read_arguments(where)
    add_cave_arguments(p)
    sites = add_site_arguments(p, batch=True)
    _add_if_missing(
        sites,
        "--synapses-of",
        metavar="ROOT_ID",
        help="the synapses of this root id, inputs and outputs, from the datastack's synapse "
        "table (needs --datastack; pinned to --materialization-version or --timestamp, else "
        "the latest version; default: none)",
    )
    _add_if_missing(
        sites,
        "--synapse-table",
        metavar="NAME",
        help="the CAVE table for --synapses-of (default: the datastack's synapse table)",
    )
    add_style_arguments(p)
    add_figure_arguments(p)
    run = p.add_argument_group("running")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local Dask cluster; 0 runs in this process (default: "
        "the number of CPUs)",
    )
    run.add_argument(
        "--no-cluster",
        action="store_true",
        help="run in this process, as --workers 0 (default: a local cluster)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786, or its scheduler file "
        "(dask scheduler --scheduler-file, dask-jobqueue, dask-mpi), whose workers make the "
        "figures (default: a local cluster)",
    )
    run.add_argument(
        "--threads-per-worker",
        type=int,
        default=1,
        metavar="N",
        help="threads of each local worker process (default: 1)",
    )
    run.add_argument(
        "--task-size",
        type=int,
        default=None,
        metavar="N",
        help="neighbouring sites per task (default: 16-64, fewer for small tables)",
    )
    p.add_argument(
        "--contact-sheet",
        nargs="?",
        const=0,
        type=int,
        metavar="N",
        help="also write OUTDIR/contact_sheet.png, a labelled montage of all figures (or the "
        "first N) with one scale bar (default: none)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTDIR",
        help="folder for the figures and the manifest, created if needed (required)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="remake figures that are already finished (default: keep them)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: shown)")
    p.add_argument(
        "--debug", action="store_true", help="show tracebacks (default: one-line errors)"
    )
    p.set_defaults(center=None)  # each site is the centre (OpenRequest reads this name)
    return p


def _add_if_missing(group: Any, flag: str, **kw: Any) -> None:
    # The shared site options may define it already (the viewer's and export's own).
    if flag not in group._option_string_actions:
        group.add_argument(flag, **kw)


def _table(args: argparse.Namespace, inputs: Any, res: list[float]) -> Any:
    """The site table: --sites (a file, or a DataFrame/SiteTable from the Python API),
    --synapses-of ROOT_ID through the datastack's client, the annotation layers of the
    --ngl-url link, or the demo's synapses."""
    from .model.sites import SiteTable, read_sites

    synapses = getattr(args, "synapses_of", None)
    if args.sites is not None and synapses:
        raise ValueError("give --sites FILE or --synapses-of ROOT_ID, not both")
    if synapses:
        if inputs.client is None:
            raise ValueError("--synapses-of needs --datastack (the synapse table is in it)")
        from .model.inputs import parse_timestamp
        from .model.sites_cave import synapses_of

        return synapses_of(
            inputs.client,
            synapses,
            synapse_table=getattr(args, "synapse_table", None),
            materialization_version=args.materialization_version,
            timestamp=(
                parse_timestamp(args.timestamp)
                if args.timestamp and args.materialization_version is None
                else None
            ),
        )
    source = args.sites
    if source is None and getattr(inputs, "link_state", None):
        from .model.sites_ngl import sites_from_link

        linked = sites_from_link(inputs.link_state)
        if linked is not None:
            return linked
    if source is None and args.demo:
        from .model.demo import ensure_demo

        source = ensure_demo().synapses
    if source is None:
        raise ValueError(
            "give the sites: --sites FILE, --synapses-of ROOT_ID, or an --ngl-url link with "
            "annotation layers"
        )
    if isinstance(source, SiteTable):
        return source
    if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
        raise ValueError(f"no site table at {os.fspath(source)}")
    return read_sites(source, resolution=args.sites_resolution, default_resolution=res)


def prepare(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(dataset, SiteFigure, site table) from the options, every input checked: the same
    rules as ``imagery-gui export`` with ``--site`` (raises on bad input)."""
    from .model.batch import BATCH_LRU_BYTES, BatchError, SiteFigure, site_spec
    from .model.export import FigureSpec
    from .model.inputs import OpenRequest
    from .model.scalebar import ScaleBar
    from .model.state import selection_from_inputs
    from .model.style import Selection

    if not (
        args.demo or args.image_source or args.segmentation_source or args.datastack or args.ngl_url
    ):
        raise ValueError(
            "give --image-source and/or --segmentation-source, --datastack, --ngl-url, or --demo"
        )
    if args.size is None:
        raise ValueError("give --size W H [D], the box around each site")
    if len(args.size) not in (2, 3) or min(args.size) < 1:
        raise ValueError("--size takes W H or W H D, positive whole numbers")
    if args.workers is not None and args.workers < 0:
        raise ValueError("--workers takes 0 (this process) or more")
    if args.task_size is not None and args.task_size < 1:
        raise ValueError("--task-size takes a whole number >= 1")
    if args.threads_per_worker < 1:
        raise ValueError("--threads-per-worker takes a whole number >= 1")
    if args.contact_sheet is not None and args.contact_sheet < 0:
        raise ValueError("--contact-sheet takes N >= 1 (or nothing, for all figures)")
    inputs = OpenRequest.from_args(args, demo=args.demo).resolve(
        args.root_ids, log=lambda m: print(m, file=sys.stderr)
    )
    dataset = inputs.dataset(lru_bytes=BATCH_LRU_BYTES).open()  # bad sources fail here
    selection = selection_from_inputs(inputs)
    for sid, rgb in _colors(args.colors):  # a colour given for an id selects it too
        selection = selection.add([sid]).with_color(sid, rgb)
    res = [float(v) for v in (inputs.resolution or dataset.resolution)]
    table = _table(args, inputs, res)
    if len(table) == 0:
        raise BatchError("the site table has no sites")
    vb = dataset.volume_bounds(res)
    warning = table.check_against((vb * res).tolist())  # a table in the wrong unit: exit 2
    if warning:
        print(f"imagery-gui batch: warning: {warning}", file=sys.stderr)
    inputs.resolution = res
    given = bool(inputs.root_ids)
    style = style_from_args(args, inputs, Selection.of(inputs.root_ids))
    partner_style = None
    if not given:
        # export's rule: the site's partners become --root-ids, and the style follows
        # from there being root ids (only whether there are any matters).
        partner_style = style_from_args(args, replace(inputs, root_ids=[1]), Selection.of([1]))
    scale_bar = None
    if args.scale_bar is not None:
        length = None if args.scale_bar < 0 else args.scale_bar
        scale_bar = ScaleBar(length_nm=length, corner=args.scale_bar_corner)
    spec = FigureSpec(
        bounds=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # each site's box replaces it
        resolution=(res[0], res[1], res[2]),
        image_mip=args.image_mip,
        segmentation_mip=args.segmentation_mip,
        selection=selection,
        timestamp=inputs.timestamp,
        style=style,
        scale=args.scale,
        scale_bar=scale_bar,
        dpi=args.dpi,
        annotate=not args.no_annotate,
    )
    extra: dict[str, Any] = {}
    if inputs.datastack:
        extra["datastack"] = {"name": inputs.datastack, "server": inputs.server_address}
    figure = SiteFigure(
        size=tuple(int(v) for v in args.size),
        resolution=(res[0], res[1], res[2]),
        spec=spec,
        partner_style=partner_style,
        link_inputs=replace(inputs, client=None, token=None),
        extra_provenance=extra,
        sites_source=table.source.describe(),
    )
    site_spec(figure, table, 0)  # options that only a whole spec can check fail now
    from .model.batch import is_scheduler_file, prepare_outdir, scheduler_file_address

    if args.scheduler and is_scheduler_file(args.scheduler):
        scheduler_file_address(args.scheduler)  # a file that names no scheduler
    prepare_outdir(args.output)  # the last check: nothing is created for bad input
    return dataset, figure, table


def _workers(args: argparse.Namespace) -> int | None:
    return 0 if args.no_cluster else args.workers


def batch_main(argv: Sequence[str]) -> int:
    args = batch_parser().parse_args(list(argv))
    return _run(args)


def _run(args: argparse.Namespace, api: bool = False) -> Any:
    from .model.batch import BatchSummary, run_batch, start_worker_server
    from .model.cave import scrub
    from .model.pages import small_pages

    if not api:  # the command's own process and its local workers (a notebook's is its own)
        small_pages()
    if _workers(args) != 0 and not args.scheduler:
        start_worker_server()  # the workers' imports, beside this process's start

    def fail(msg: str) -> int:
        print(f"imagery-gui batch: error: {scrub(msg)}", file=sys.stderr)
        return EXIT_USER_ERROR

    try:
        dataset, figure, table = prepare(args)
    except (ImageryGuiError, ValueError) as exc:
        if args.debug or api:
            raise
        return fail(str(exc))
    except KeyboardInterrupt:
        print("imagery-gui batch: interrupted before any work", file=sys.stderr)
        return 130
    summary = BatchSummary()

    def log(m: str) -> None:
        if not args.quiet:
            print(m, file=sys.stderr, flush=True)

    try:
        frame = run_batch(
            dataset,
            figure,
            table,
            args.output,
            force=args.force,
            masks=args.masks,
            workers=_workers(args),
            scheduler=args.scheduler,
            threads_per_worker=args.threads_per_worker,
            task_size=args.task_size,
            contact_sheet=args.contact_sheet,
            progress=_Progress(sys.stderr, args.quiet),
            log=log,
            summary=summary,
        )
    except (ImageryGuiError, ValueError) as exc:
        if args.debug or api:
            raise
        return fail(str(exc))
    except KeyboardInterrupt:
        if api:
            raise
        print(
            "imagery-gui batch: interrupted; finished figures are kept and listed in "
            f"{os.path.join(args.output, 'manifest.csv')}; run again to make the rest",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if args.debug or api:
            raise
        print(
            f"imagery-gui batch: internal error: {type(exc).__name__}: {exc} "
            "(run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR
    if api:
        return frame
    print(f"imagery-gui batch: {summary.line()}", file=sys.stderr)
    if summary.contact_sheet:
        print(f"imagery-gui batch: contact sheet {summary.contact_sheet}", file=sys.stderr)
    if summary.failed:
        print(
            f"imagery-gui batch: {summary.failed} sites failed (status 'failed' in the "
            "manifest, with the error); run again to retry them",
            file=sys.stderr,
        )
        return EXIT_SITES_FAILED
    return 0


def batch(
    output: str | os.PathLike[str],
    sites: Any = None,
    *,
    size: Sequence[int] = (256, 256),
    workers: int | None = None,
    progress: bool = False,
    **options: Any,
) -> Any:
    """Figures for every site, from a notebook; returns the manifest as a DataFrame.

    ``sites`` is a table file, a DataFrame (a CAVE query) or a SiteTable (None: the demo's
    synapses with ``demo=True``). ``options`` are ``imagery-gui batch``'s, by their Python
    names: ``image_source=``, ``segmentation_source=``, ``datastack=``, ``demo=True``,
    ``root_ids=[...]``, ``alpha=0.3``, ``outline=True``, ``scale_bar=True``,
    ``scheduler="tcp://..."``, ``force=True``, ``contact_sheet=0``, ... ``workers=0``
    runs in this process.

    >>> import imagery_gui
    >>> manifest = imagery_gui.batch("figs", demo=True, size=(256, 256), workers=2)
    """
    args = batch_parser().parse_args(["-o", os.fspath(output)])
    args.size = [int(v) for v in size]
    args.sites = os.fspath(sites) if isinstance(sites, os.PathLike) else sites
    args.workers = workers
    args.quiet = not progress
    known = vars(args)
    for key, value in options.items():
        if key not in known:
            raise TypeError(f"batch() got an unknown option {key!r}")
        if key == "scale_bar" and value is True:
            value = -1.0
        elif key == "root_ids" and value is not None and not isinstance(value, str):
            value = [str(v) for v in value]
        setattr(args, key, value)
    return _run(args, api=True)
