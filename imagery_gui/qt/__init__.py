"""The Qt layer: canvas, controls, fetcher and main window (imports PySide6/pyqtgraph)."""
