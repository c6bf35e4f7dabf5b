"""The Qt-free model layer: sources, cutouts, segments, rendering and export.

Nothing in this package imports PySide6, pyqtgraph or superqt (a test enforces it), so
the same code serves the GUI, the headless CLI and Python scripts.
"""

from __future__ import annotations

from .composite import composite_overlay, stack_images
from .dataset import Dataset
from .errors import (
    AuthenticationError,
    BoundsError,
    DataCorruptError,
    ExportError,
    ImageryGuiError,
    InfoUnreadableError,
    MipError,
    NotPrecomputedError,
    OutOfBoundsError,
    ResolutionError,
    RootIdError,
    SourceError,
    SourceNotFoundError,
    SourceUnavailableError,
    UnsupportedSourceError,
)
from .geometry import Bounds, bounds_from_center
from .imageryclient import ImageryClient
from .source import Layer, parse_source

__all__ = [
    "AuthenticationError",
    "Bounds",
    "BoundsError",
    "DataCorruptError",
    "Dataset",
    "ExportError",
    "ImageryClient",
    "ImageryGuiError",
    "InfoUnreadableError",
    "Layer",
    "MipError",
    "NotPrecomputedError",
    "OutOfBoundsError",
    "ResolutionError",
    "RootIdError",
    "SourceError",
    "SourceNotFoundError",
    "SourceUnavailableError",
    "UnsupportedSourceError",
    "bounds_from_center",
    "composite_overlay",
    "parse_source",
    "stack_images",
]
