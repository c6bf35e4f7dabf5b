"""The only place a QApplication is made, and the viewer process's policy: GIL hand-over,
network retries, malloc, and when the garbage collector may stop every thread."""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from typing import Any

from . import startlog
from .model import pages


def make_app():
    from PySide6.QtCore import QCoreApplication, Qt, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
        app = QApplication(sys.argv[:1])
    app.setApplicationName("imagery-gui")
    app.setOrganizationName("imagery-gui")
    app.setDesktopFileName("imagery-gui")

    def quiet(mode, context, message):  # the offscreen plugin's harmless chatter
        if "propagateSizeHints" in message:
            return
        sys.stderr.write(message + "\n")

    qInstallMessageHandler(quiet)
    return app


#: Seconds a thread may hold the GIL before another may run. Python's default (5 ms) lets
#: background threads (exports, metadata, reads when ``read_process`` is off) keep the GUI
#: thread waiting for several frames in a row.
GUI_SWITCH_INTERVAL = 0.001


def configure_gui_process(network: bool = True) -> None:
    """GIL hand-over for a responsive GUI thread, and (with ``network``) the viewer's
    network policy (:func:`configure_network`)."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL)
    tune_malloc()
    pages.small_pages()
    if network:
        configure_network()


def configure_network() -> None:
    """The viewer's retry policy for HTTP reads (imports cloud-files: about 0.4 s)."""
    from .model import netwatch

    netwatch.install(viewer_retries=True)


def warm_up() -> None:
    """Import cloud-volume and its codecs now, while the window is being built.

    Otherwise the first open imports them in its thread (about a second, some 30,000
    objects, and a garbage collection or two on the way) while the first data arrives,
    and the GUI thread waits for the GIL: stalls of 50-60 ms at launch
    (``benchmarks/bench_remote.py``, fresh viewer). The open needs them before its first
    request anyway, so the first image comes no later.

    Also scipy.ndimage (outlines, resampling): the model imports it when first used, which
    keeps scripts light, but in the viewer that first use is a read or an outline in a
    worker thread, and the import (some 160 modules) held the GIL for a 135 ms GUI stall in
    the middle of a scrub (``bench_remote``)."""
    from .model import source

    # only a head start: a problem here is reported by the open that meets it
    with contextlib.suppress(Exception):
        source.warm_up()
    with contextlib.suppress(ImportError):
        import scipy.ndimage  # noqa: F401


def tune_malloc() -> None:
    """What ``fetchproc.MALLOC_ENV`` does for the read process, for this one (glibc only):
    arrays above 128 KiB are always mapped, so freeing a slab gives its memory back."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (also ends its dynamic growth)
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc


def settle_heap(everything: bool = False) -> None:
    """Collect, then exempt every object alive now from future garbage collections.

    After the imports and an open there are some 290,000 long-lived objects (modules,
    functions, Qt wrappers, cloud-volume's, seaborn's and caveclient's state); a full
    collection walks all of them while holding the GIL:
    60-240 ms with every thread stopped, a visible hitch in the middle of scrubbing.

    Called with ``everything`` once the window is built (before it is shown): all of
    them are frozen. Called without when data is opened: only what appeared since (the
    modules the first read imports, the dataset) is collected and frozen, a few ms,
    whereas unfreezing everything again made each open stall the GUI for 220-280 ms.
    Frozen objects are still freed by reference counting; garbage cycles among them are
    not collected until the next ``everything`` call. The objects alive at an open that
    later end up in such cycles are the replaced dataset's cloud-volume bookkeeping,
    about 100 objects and 13 KB per open: the viewer's own dataset keeps no chunk LRU
    (its reads go to the read process), the one cycle that could have held chunk data.

    The collection runs on the GUI thread (:mod:`imagery_gui.qt.heap`): called from
    another thread (the open's, the warm-up's), it is handed over and this returns at once.
    """
    from .qt import heap

    def settle() -> None:
        if everything:
            gc.unfreeze()
        gc.collect()
        gc.freeze()

    heap.on_gui_thread(settle)


def create_window(settings: Any = None, synchronous: bool = False, quick: bool = False) -> Any:
    """The main window in a process set up for it: GIL hand-over, retries and malloc
    first; cloud-volume imported while the window is built; then every long-lived object
    frozen out of the garbage collector, and what each open adds collected while its
    first requests are on the wire (see :func:`settle_heap`).

    ``quick`` (the viewer's launch): the window comes first, ready to be shown before
    anything it does not draw is imported. The open's thread sets the network policy and
    imports cloud-volume (it needs both first anyway); the rest of the warm-up and the
    freezing of the heap are left to :func:`finish_start` once the first view is drawn
    (``run_viewer`` connects it; a ``--screenshot`` ends with that view)."""
    from .qt import heap
    from .qt.main_window import MainWindow

    configure_gui_process(network=not quick)
    heap.install()
    window = MainWindow(settings=settings, synchronous=synchronous)
    if quick:
        window.before_open = _network_for  # while_opening is set by finish_start
    else:
        window.while_opening = settle_heap
        warm_up()
        settle_heap(everything=True)  # after every import the window and the first read make
    return window


def _network_for(req: Any) -> None:
    """Before an open: the network policy, unless the open touches no network."""
    if not req.is_local():
        configure_network()


def finish_start(window: Any) -> None:
    """After a quick launch's first view: in a background thread, set the network policy
    and import what later work would otherwise import in a worker thread in the middle of
    a scrub (:func:`warm_up`: cloud-volume, its codecs, scipy.ndimage), then freeze the
    heap (:func:`settle_heap`), and from then on what each open adds. About a second of
    work, with the first view on screen."""
    import threading

    def finish() -> None:
        with contextlib.suppress(Exception):  # a head start only, as warm_up itself
            configure_network()
        warm_up()
        settle_heap(everything=True)
        window.while_opening = settle_heap

    threading.Thread(target=finish, name="imagery-gui-warm-up", daemon=True).start()


def window_from_args(
    args: argparse.Namespace, synchronous: bool = False, settings: Any = None, quick: bool = False
) -> Any:
    """The window for the viewer's command line, opening what it names (the demo volume
    when it names nothing). ``quick``: see :func:`create_window`."""
    from .model.inputs import OpenRequest

    win = create_window(settings=settings, synchronous=synchronous, quick=quick)
    if args.screenshot:
        # A screenshot has a fixed size and leaves the user's settings alone.
        win.persist_settings = False
        win.resize(*(args.size or (1280, 800)))
    elif args.size:
        win.resize(*args.size)
    given = (args.image_source, args.segmentation_source, args.datastack, args.ngl_url)
    req = OpenRequest.from_args(args, demo=args.demo or not any(given))
    win.open_sources(req, root_ids=args.root_ids)
    if args.sites or args.synapses_of:  # read once the data is open (its resolution is the default)
        win.sites.request(
            args.site,
            path=args.sites,
            resolution=args.sites_resolution,
            synapses_of=args.synapses_of,
            synapse_table=args.synapse_table,
        )
    if getattr(args, "gallery", False) or getattr(args, "review_file", None):
        win.gallery.open_when_loaded(args.review_file)
    return win


def run_viewer(args: argparse.Namespace) -> int:
    """Open the main window for the parsed command-line arguments; returns the exit code."""
    from .settings import Settings

    startlog.mark("viewer started")

    settings = Settings.load()
    if settings.read_process:
        from .model import fetchproc

        fetchproc.shared()  # first: its start and imports overlap with all of ours
        startlog.mark("read process started")
    app = make_app()
    from .qt.main_window import app_icon

    app.setWindowIcon(app_icon())
    window = window_from_args(args, settings=settings, quick=True)
    if args.screenshot:
        window.request_screenshot(args.screenshot)
        window.screenshotDone.connect(app.exit)
    else:
        window.firstViewShown.connect(lambda: finish_start(window))
    window.show()
    startlog.mark("window shown")
    code = app.exec()
    window.close()
    return code
