"""The only place a QApplication is made."""

from __future__ import annotations

import argparse
import sys


def run_viewer(args: argparse.Namespace) -> int:
    """Open the main window for the parsed command-line arguments; returns the exit code."""
    from PySide6.QtWidgets import QApplication

    from .qt.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("imagery-gui")
    window = MainWindow.from_args(args)
    if args.screenshot:
        return window.screenshot_and_quit(args.screenshot)
    window.show()
    return app.exec()
