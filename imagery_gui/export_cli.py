"""``imagery-gui export``: the same figure as the viewer's export, without a window.

No Qt is imported. Errors a user can cause print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np

from .cli_args import OneLineParser, add_cave_arguments, add_site_arguments
from .model.errors import ImageryGuiError
from .model.style import OverlayStyle, Selection

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def export_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="imagery-gui export",
        description=(
            "Render an exact-pixel figure of imagery with its segmentation, headless: the figure "
            "File > Export makes for the same view and style. With --color-by order and no other "
            "style options the PNG equals ImageryClient's composite_overlay(segs, imagery=image) "
            "for the same cutout. A provenance JSON is written beside it."
        ),
    )
    add_source_arguments(p)
    where = p.add_argument_group(
        "region (--size with --center, a --ngl-url position or --demo; or --bounds)"
    )
    where.add_argument(
        "--center",
        nargs=3,
        type=float,
        metavar=("X", "Y", "Z"),
        help="centre of the box in voxels at --resolution (default: the --ngl-url position, "
        "or the demo's centre with --demo)",
    )
    where.add_argument(
        "--size",
        nargs="+",
        type=int,
        metavar="N",
        help="W H [D]: box size in voxels at --resolution; D slices make a z-series "
        "(default: none; D defaults to 1)",
    )
    where.add_argument(
        "--bounds",
        nargs=6,
        type=float,
        metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"),
        help="the box's lower and upper corners instead of --center/--size (default: none)",
    )
    add_read_arguments(where)
    add_cave_arguments(p)
    add_site_arguments(p, export=True)
    add_style_arguments(p)
    add_figure_arguments(p)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PATH",
        help="output PNG; a z-series adds _z<Z> per slice (required, no default)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite existing files (default: refuse, nothing is written)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress or file list (default: shown)")
    p.add_argument(
        "--debug", action="store_true", help="show tracebacks (default: one-line errors)"
    )
    return p


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """The data sources (export and batch)."""
    src = p.add_argument_group("data")
    src.add_argument(
        "--image-source",
        metavar="URL",
        help="image layer: precomputed://..., graphene://... or a folder (default: none)",
    )
    src.add_argument(
        "--segmentation-source", metavar="URL", help="segmentation layer (default: none)"
    )
    src.add_argument(
        "--demo",
        action="store_true",
        help="use the built-in demo volume for what is not given (default: off)",
    )


def add_read_arguments(where) -> None:
    """Resolution, mips and root ids of the figure's cutout (export and batch)."""
    where.add_argument(
        "--resolution",
        nargs=3,
        type=float,
        metavar=("RX", "RY", "RZ"),
        help="nm per voxel of the coordinates (default: the image's finest mip, else the "
        "segmentation's)",
    )
    where.add_argument(
        "--image-mip",
        type=int,
        metavar="N",
        help="image mip to read, the result scaled to the box (default: the finest)",
    )
    where.add_argument(
        "--segmentation-mip",
        type=int,
        metavar="N",
        help="segmentation mip to read (default: the finest)",
    )
    where.add_argument(
        "--root-ids",
        nargs="+",
        metavar="ID",
        help="draw only these segments, separated by spaces or commas (default: all, or the "
        "link's selected segments)",
    )


def add_style_arguments(p: argparse.ArgumentParser) -> None:
    """The overlay style options (export and batch: one definition, one meaning)."""
    style = p.add_argument_group(
        "style (defaults are ImageryClient's; with --ngl-url, the link's alphas and colours)"
    )
    style.add_argument(
        "--alpha",
        type=float,
        default=None,
        metavar="A",
        help="opacity of segments that are not selected, 0-1 (default 0.2; a link's "
        "notSelectedAlpha)",
    )
    style.add_argument(
        "--selected-alpha",
        type=float,
        default=None,
        metavar="A",
        help="opacity of the --root-ids segments, 0-1 (default: --alpha; a link's selectedAlpha)",
    )
    style.add_argument(
        "--all-segments",
        action="store_true",
        help="with --root-ids: draw every segment, the given ones at --selected-alpha "
        "(default: only the given ones)",
    )
    style.add_argument(
        "--outline", action="store_true", help="outlines instead of fills (default: fills)"
    )
    style.add_argument(
        "--width",
        type=int,
        default=None,
        metavar="PX",
        help="outline width in pixels (default: 10)",
    )
    style.add_argument(
        "--side",
        choices=("in", "out"),
        default=None,
        help="outlines inside or outside each segment (default: out)",
    )
    style.add_argument(
        "--no-merge-outline",
        action="store_true",
        help="also outline where segments touch each other (default: not there)",
    )
    style.add_argument(
        "--no-overlap",
        action="store_true",
        help="later segments do not draw over earlier ones (default: they do)",
    )
    style.add_argument(
        "--palette",
        default=None,
        help="seaborn palette name (husl), or 'neuroglancer' for Neuroglancer's colours "
        "(the default with --ngl-url)",
    )
    style.add_argument(
        "--color-seed",
        type=int,
        default=None,
        help="colorSeed for --palette neuroglancer (default: the link's, else 0)",
    )
    style.add_argument(
        "--color-by",
        choices=("id", "order"),
        default=None,
        help="id: a segment's colour depends only on its id, as in the viewer (default); "
        "order: ImageryClient's rule (colours in the order of the segments), for pixels "
        "identical to its composite_overlay",
    )
    style.add_argument(
        "--colors",
        nargs="+",
        metavar="ID=COLOR",
        help="fixed colours, e.g. 864691135012345678=#ff0000 (default: the palette's, "
        "and the link's segmentColors)",
    )


def add_figure_arguments(p: argparse.ArgumentParser) -> None:
    """Scale bar, upscale, DPI and masks (export and batch)."""
    fig = p.add_argument_group("figure")
    fig.add_argument(
        "--scale-bar",
        nargs="?",
        const=-1.0,
        type=float,
        metavar="NM",
        help="draw a scale bar, of this length in nm if given, else a round length "
        "(default: no bar)",
    )
    fig.add_argument(
        "--scale-bar-corner",
        default="lower right",
        choices=("lower right", "lower left", "upper right", "upper left"),
        help="corner of the scale bar (default: lower right)",
    )
    fig.add_argument(
        "--scale",
        type=int,
        default=1,
        help="integer upscale by pixel replication (default: 1)",
    )
    fig.add_argument("--dpi", type=int, default=300, help="DPI written into the PNG (default: 300)")
    fig.add_argument(
        "--masks",
        action="store_true",
        help="also write a mask PNG per segment, with ImageryClient's save_* names (default: off)",
    )


class _Progress:
    """A one-line progress bar on a terminal; a line per step otherwise."""

    def __init__(self, stream, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last = ""

    def __call__(self, done: int, total: int, message: str) -> None:
        if self.quiet or total <= 1:
            return
        width = 28
        filled = int(width * done / max(total, 1))
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {message}"
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self._last)))
            if done >= total:
                self.stream.write("\n")
        elif message != self._last:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last = line if self.tty else message


def _colors(items: Sequence[str] | None):
    from .model.palette import to_uint8
    from .model.segments import parse_root_id

    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--colors expects ID=COLOR, got {item!r}")
        out.append((parse_root_id(key), to_uint8(value)))
    return tuple(out)


def style_from_args(args: argparse.Namespace, inputs, selection) -> OverlayStyle:
    """The figure's style: the exporter's defaults (or a link's style), then the options
    given. Validated once, strictly: a bad value is a StyleError (one line, exit 2)."""
    from .model.export import EXPORT_STYLE
    from .model.state import style_from_link

    link = bool(args.ngl_url)
    base = style_from_link(inputs, EXPORT_STYLE) if link else EXPORT_STYLE
    changes: dict = {}
    if args.alpha is not None:
        changes["alpha"] = args.alpha
    if args.selected_alpha is not None:
        changes["selected_alpha"] = args.selected_alpha
    elif args.alpha is not None and not link:
        changes["selected_alpha"] = args.alpha
    if args.all_segments:
        changes["show_unselected"] = True
    elif not link:
        changes["show_unselected"] = not selection.ids
    if args.outline:
        changes["outline"] = True
    for name in ("width", "side", "palette", "color_seed", "color_by"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.no_merge_outline:
        changes["merge_outline"] = False
    if args.no_overlap:
        changes["overlap"] = False
    return base.replace(**changes)


def build(args: argparse.Namespace):
    """Dataset, FigureSpec and the resolved inputs from parsed arguments (raises on bad input)."""
    from .model.export import FigureSpec
    from .model.inputs import OpenRequest
    from .model.scalebar import ScaleBar
    from .model.state import selection_from_inputs

    if not (
        args.demo or args.image_source or args.segmentation_source or args.datastack or args.ngl_url
    ):
        raise ValueError(
            "give --image-source and/or --segmentation-source, --datastack, --ngl-url, or --demo"
        )
    # (With --bounds the demo's centre, filled in here, goes unused.)
    inputs = OpenRequest.from_args(args, demo=args.demo).resolve(
        args.root_ids, log=lambda m: print(m, file=sys.stderr)
    )
    dataset = inputs.dataset()
    selection = selection_from_inputs(inputs)
    for sid, rgb in _colors(args.colors):  # a colour given for an id selects it too
        selection = selection.add([sid]).with_color(sid, rgb)
    sites, current = _sites_from_args(args, inputs, dataset)
    if current is not None and not inputs.root_ids:  # the site's own segments
        partners = [int(v) for v in (sites.pre_root[current], sites.post_root[current]) if int(v)]
        inputs.root_ids = partners
        selection = selection.add(partners)
    style = style_from_args(args, inputs, Selection.of(inputs.root_ids))
    scale_bar = None
    if args.scale_bar is not None:
        length = None if args.scale_bar < 0 else args.scale_bar
        scale_bar = ScaleBar(length_nm=length, corner=args.scale_bar_corner)
    common = dict(
        resolution=tuple(inputs.resolution) if inputs.resolution else None,
        image_mip=args.image_mip,
        segmentation_mip=args.segmentation_mip,
        selection=selection,
        timestamp=inputs.timestamp,
        style=style,
        scale=args.scale,
        scale_bar=scale_bar,
        dpi=args.dpi,
        sites=sites,
        current_site=current,
        annotate=not args.no_annotate,
    )
    if args.bounds is not None:
        if args.center is not None or args.size is not None:
            raise ValueError("give either --bounds or --center with --size, not both")
        b = args.bounds
        spec = FigureSpec(bounds=((b[0], b[1], b[2]), (b[3], b[4], b[5])), **common)
    else:
        # Each message names only what is missing: --size alone is enough when the centre
        # comes from --demo or a --ngl-url with a position.
        if inputs.center is None and args.size is not None:
            raise ValueError(
                "--size needs a centre: add --center X Y Z (or use --demo or a --ngl-url "
                "with a position), or give --bounds instead"
            )
        if args.size is None and (inputs.center is not None or args.center is not None):
            raise ValueError("give --size W H [D], the box around the centre, or --bounds")
        if inputs.center is None or args.size is None:
            raise ValueError("give the region: --center X Y Z with --size W H [D], or --bounds")
        if len(args.size) not in (2, 3) or min(args.size) < 1:
            raise ValueError("--size takes W H or W H D, positive whole numbers")
        spec = FigureSpec.from_center(inputs.center, args.size, **common)
    return dataset, spec, inputs


def _sites_from_args(args: argparse.Namespace, inputs, dataset):
    """The site table (--sites, --synapses-of, or a link's annotation layers; None without
    any) and the row of --site; with --site the figure is centred on it."""
    from .model.site_sources import load_sites

    res = [float(v) for v in (inputs.resolution or dataset.resolution)]
    table = load_sites(
        inputs,
        res,
        path=args.sites,
        resolution=args.sites_resolution,
        synapses_of=args.synapses_of,
        synapse_table=args.synapse_table,
    )
    if args.site is None:
        return table, None
    if table is None:
        raise ValueError("--site needs a site table: --sites FILE or --synapses-of ROOT_ID")
    row = table.index_of(args.site)
    if row is None:
        raise ValueError(f"no site {args.site} in {table.source.describe()} (its id column)")
    center_nm = table.centers[row] * table.resolution
    inputs.resolution = res
    inputs.center = [float(v) for v in np.floor(center_nm / res)]
    return table, row


def provenance_extra(inputs, spec) -> dict:
    """Provenance beyond the figure itself: the datastack and the Neuroglancer link."""
    from .model.state import provenance_extra as extra
    from .model.state import spec_link

    return extra(inputs, spec_link(inputs, spec))


def export_main(argv: Sequence[str]) -> int:
    args = export_parser().parse_args(list(argv))
    from .model.export import export

    try:
        dataset, spec, inputs = build(args)
        written = export(
            dataset,
            spec,
            args.output,
            force=args.force,
            masks=args.masks,
            extra_provenance=provenance_extra(inputs, spec),
            progress=_Progress(sys.stderr, args.quiet),
        )
    except (ImageryGuiError, ValueError) as exc:
        if args.debug:
            raise
        from .model.cave import scrub
        from .model.errors import OutputExistsError

        msg = str(exc)
        if isinstance(exc, OutputExistsError):  # in the command line's terms
            msg = f"{exc.existing_path} already exists; pass --force to replace it"
        print(f"imagery-gui export: error: {scrub(msg)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("imagery-gui export: interrupted; nothing half-written was left", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"imagery-gui export: internal error: {type(exc).__name__}: {exc} "
            "(run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR
    if not args.quiet:
        for path in written:
            print(os.path.relpath(path) if not os.path.isabs(args.output) else path)
    return 0
