"""Command line: ``imagery-gui`` (the viewer), ``imagery-gui export`` (headless figures) and
``imagery-gui batch`` (a figure per site).

This module imports no Qt: ``imagery-gui export`` and ``--help`` work on machines without
a display or without Qt's system libraries. The viewer is imported only when it is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from ._version import __version__

# Re-exported: the viewer and export parsers share these options (see cli_args).
from .cli_args import OneLineParser, add_cave_arguments, add_site_arguments

HEADLESS_HINT = (
    "imagery-gui: no display available. Run headless with `imagery-gui --screenshot out.png` "
    "(renders the view to a PNG and exits), set QT_QPA_PLATFORM=offscreen, or use "
    "`xvfb-run imagery-gui`."
)


def display_problem(
    env: dict[str, str] | None = None,
    platform: str | None = None,
    check_libraries: bool | None = None,
) -> str | None:
    """Why Qt would fail to open a window here, or None if it should work.

    Qt aborts the process (SIGABRT) when its platform plugin cannot connect or cannot be
    loaded, so this check runs before any Qt import: no display server, or (for X11) a
    system library of Qt's xcb plugin missing (``check_libraries``; by default only when
    ``env`` is the real environment).
    """
    from_os = env is None
    env = dict(os.environ) if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if qpa and qpa not in ("xcb", "wayland", "wayland-egl"):
        return None  # offscreen, minimal, vnc, eglfs ... need no display server
    if qpa in ("", "wayland", "wayland-egl") and env.get("WAYLAND_DISPLAY"):
        return None
    if qpa in ("", "xcb") and env.get("DISPLAY"):
        # Qt would use its xcb plugin: check that its system libraries load, or Qt aborts.
        # (Only for the real environment unless asked: a given env describes a display,
        # not this machine's libraries.)
        if check_libraries is None:
            check_libraries = from_os
        if check_libraries:
            from .syslibs import missing_libraries, missing_message, xcb_plugin

            missing = missing_libraries(xcb_plugin(env))
            if missing:
                return missing_message(missing)
        return None
    return HEADLESS_HINT


def _floats(n: int):
    def check(values: Sequence[str]) -> list[float]:
        return [float(v) for v in values]

    return check


def viewer_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="imagery-gui",
        description=(
            "Desktop viewer for EM imagery with dense segmentation. With no sources it opens "
            "the built-in demo volume. `imagery-gui export --help` makes figures without a window."
        ),
    )
    p.add_argument("--version", action="version", version=f"imagery-gui {__version__}")
    src = p.add_argument_group("data")
    src.add_argument(
        "--image-source",
        metavar="URL",
        help="image layer: precomputed://..., graphene://... or a folder (default: none; with "
        "no source, datastack or link at all, the built-in demo volume)",
    )
    src.add_argument(
        "--segmentation-source",
        metavar="URL",
        help="segmentation layer (default: none, as --image-source)",
    )
    src.add_argument(
        "--center",
        nargs=3,
        type=float,
        metavar=("X", "Y", "Z"),
        help="centre of the view, in voxels at --resolution (default: the link's position, "
        "the demo's centre, else the centre of the volume)",
    )
    src.add_argument(
        "--resolution",
        nargs=3,
        type=float,
        metavar=("RX", "RY", "RZ"),
        help="resolution of --center in nm (default: the image's finest, else the segmentation's)",
    )
    src.add_argument(
        "--root-ids",
        nargs="+",
        metavar="ID",
        help="segments to select, separated by spaces or commas (default: none, or the "
        "link's selected segments)",
    )
    src.add_argument(
        "--demo",
        action="store_true",
        help="open the built-in demo volume (default: only when no source is given)",
    )
    add_cave_arguments(p)
    add_site_arguments(p)
    out = p.add_argument_group("headless")
    out.add_argument(
        "--screenshot",
        metavar="PATH",
        help="render the window once the view is loaded, save a PNG and exit (default: "
        "open the window)",
    )
    out.add_argument(
        "--size",
        nargs=2,
        type=int,
        metavar=("W", "H"),
        default=None,
        help="window size in pixels (default 1280 800)",
    )
    return p


def viewer_main(argv: Sequence[str]) -> int:
    args = viewer_parser().parse_args(list(argv))
    problem = display_problem()
    if problem and args.screenshot:
        # A screenshot needs no visible window: render offscreen.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        problem = None
    if problem:
        print(problem, file=sys.stderr)
        return 2
    from .app import run_viewer

    return run_viewer(args)


def print_warnings_as_lines(prog: str) -> None:
    """Show imagery-gui's own warnings as ``PROG: warning: ...`` lines on stderr.

    (Python's default adds the source file, line number and code line: noise for a user.)
    Other warnings keep Python's format.
    """
    import warnings

    from .model.errors import ImageryGuiWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ImageryGuiWarning):
            print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def exit_now(code: int) -> None:
    """End the viewer's process once its window is closed: the exit handlers run (the
    read process is stopped, pending fsyncs finish, worker threads stop), output is
    flushed, and the process ends without Python's teardown of every module and Qt
    object (0.1-0.25 s, and where PySide is known to crash at times)."""
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``imagery-gui`` command. Called as the program (no ``argv``), the viewer's
    process ends by :func:`exit_now` once its window is closed; called with ``argv`` (a
    test, a script) it returns the exit code."""
    import logging

    if getattr(sys, "frozen", False):  # the bundled app started as a tile process (spawn)
        import multiprocessing

        multiprocessing.freeze_support()

    # cloud-volume's parallel chunk reads overflow urllib3's per-host pool: harmless chatter.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--imagery-gui-read-process":  # fetchproc.READER_FLAG: the
        # bundled app started as its own read process (there is no "python -m" in a bundle)
        from .model.fetchproc import child_entry

        child_entry(argv[1])
        return 0
    if argv and argv[0] == "export":
        from .export_cli import export_main

        print_warnings_as_lines("imagery-gui export")
        return export_main(argv[1:])
    if argv and argv[0] == "batch":
        from .batch_cli import batch_main

        print_warnings_as_lines("imagery-gui batch")
        return batch_main(argv[1:])
    print_warnings_as_lines("imagery-gui")
    code = viewer_main(argv)
    if as_program:
        exit_now(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
