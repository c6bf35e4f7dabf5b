"""The only place a QApplication is made."""

from __future__ import annotations

import argparse
import sys


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


def run_viewer(args: argparse.Namespace) -> int:
    """Open the main window for the parsed command-line arguments; returns the exit code."""
    app = make_app()
    from .qt.main_window import MainWindow, app_icon

    app.setWindowIcon(app_icon())
    window = MainWindow.from_args(args)
    if args.screenshot:
        window.request_screenshot(args.screenshot)
        window.screenshotDone.connect(app.exit)
    window.show()
    code = app.exec()
    window.close()
    return code
