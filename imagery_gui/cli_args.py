"""Command-line options shared by the viewer (:mod:`imagery_gui.cli`) and the headless export
(:mod:`imagery_gui.export_cli`).

They live here so that neither command module imports the other; this module imports only
:mod:`argparse`.
"""

from __future__ import annotations

import argparse

__all__ = ["OneLineParser", "add_cave_arguments", "add_site_arguments"]


def add_cave_arguments(p: argparse.ArgumentParser) -> None:
    """CAVE datastack, Neuroglancer link and graphene time options (viewer and export)."""
    g = p.add_argument_group("CAVE and Neuroglancer")
    g.add_argument(
        "--datastack",
        metavar="NAME",
        help="CAVE datastack (e.g. minnie65_public): sources and resolution from its info "
        "service (default: none)",
    )
    g.add_argument(
        "--server-address", metavar="URL", help="CAVE server (default https://global.daf-apis.com)"
    )
    g.add_argument(
        "--auth-token-file",
        metavar="FILE",
        help="CAVE token file (default: caveclient's, ~/.cloudvolume/secrets/)",
    )
    g.add_argument(
        "--ngl-url",
        metavar="LINK",
        help="a Neuroglancer link, its state JSON, or a file holding either: position, "
        "sources, segments, colours and annotation layers (default: none)",
    )
    g.add_argument(
        "--timestamp",
        metavar="TIME",
        help="graphene: root ids as of this time, ISO 8601 or unix seconds (default: now)",
    )
    g.add_argument(
        "--materialization-version",
        type=int,
        metavar="N",
        help="graphene: root ids as of this materialization version, needs --datastack "
        "(default: none, i.e. --timestamp)",
    )


def add_site_arguments(
    p: argparse.ArgumentParser, export: bool = False, batch: bool = False
) -> argparse._ArgumentGroup:
    """Site table options (viewer, export and batch: batch has no --site, it does all)."""
    g = p.add_argument_group("sites (synapses, annotations)")
    g.add_argument(
        "--sites",
        metavar="FILE",
        help="a site table (CSV, Parquet or Feather; CAVE column names such as ctr_pt_position, "
        "pre_pt_position, post_pt_position, pt_position with pt_root_id; FlyWire's pre_x.. "
        "and pre/post; neuPrint's x_pre..; or x, y, z) whose glyphs are drawn (default: none)",
    )
    g.add_argument(
        "--synapses-of",
        metavar="ROOT_ID",
        help="the synapses of this root id, inputs and outputs, from the datastack's synapse "
        "table (needs --datastack; pinned to --materialization-version or --timestamp, else "
        "the latest version; default: none)",
    )
    g.add_argument(
        "--synapse-table",
        metavar="NAME",
        help="the CAVE table for --synapses-of (default: the datastack's synapse table)",
    )
    g.add_argument(
        "--sites-resolution",
        nargs=3,
        type=float,
        metavar=("RX", "RY", "RZ"),
        help="nm per voxel of the table's coordinates (default: the table's metadata, else the "
        "viewer's resolution)",
    )
    if batch:
        g.add_argument(
            "--no-annotate",
            action="store_true",
            help="leave the site glyphs out of the figures (default: drawn)",
        )
        return g
    g.add_argument(
        "--site",
        metavar="ID",
        help=(
            "centre the figure on this site (its pre and post segments are drawn when no "
            "--root-ids are given; default: the figure's --center)"
            if export
            else "open on this site (default: the first)"
        ),
    )
    if export:
        g.add_argument(
            "--no-annotate",
            action="store_true",
            help="leave the site glyphs out of the figure (default: drawn)",
        )
    else:
        g.add_argument(
            "--gallery",
            action="store_true",
            help="open the gallery of the site table (View > Gallery): review the sites by "
            "keyboard (default: the site table in the Sites dock only)",
        )
        g.add_argument(
            "--review-file",
            metavar="CSV",
            help="the gallery's review file (default: TABLE.review.csv beside the table; an "
            "existing file resumes that review)",
        )
    return g


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``PROG: error: ... (see --help)``.

    argparse's default prints the whole usage (17 lines for ``export``) before the error,
    which buries the one line that says what is wrong. Exit code 2, as argparse's.
    """

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
