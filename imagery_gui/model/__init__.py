"""The Qt-free model layer: sources, cutouts, segments, rendering and export.

Nothing in this package imports PySide6, pyqtgraph or superqt (a test enforces it), so
the same code serves the GUI, the headless CLI and Python scripts.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .composite import composite_overlay, stack_images
    from .dataset import Dataset
    from .geometry import Bounds, bounds_from_center
    from .imageryclient import ImageryClient
    from .source import Layer, parse_source

#: Imported on first use (PEP 562): a process that needs one module of the package (the
#: read process, a tile worker) does not import PIL and the renderer with it.
_LAZY = {
    "composite_overlay": "composite",
    "stack_images": "composite",
    "Dataset": "dataset",
    "Bounds": "geometry",
    "bounds_from_center": "geometry",
    "ImageryClient": "imageryclient",
    "Layer": "source",
    "parse_source": "source",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
