"""imagery-gui: a desktop viewer for EM connectomics imagery and segmentation.

The package root exposes the ImageryClient-compatible API, so an existing script runs
unchanged after ``import imageryclient as ic`` becomes ``import imagery_gui as ic``::

    from imagery_gui import ImageryClient, composite_overlay, bounds_from_center, stack_images

Importing this package does not import Qt; the viewer lives in :mod:`imagery_gui.qt`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .batch_cli import batch
    from .model.composite import composite_overlay, stack_images
    from .model.geometry import bounds_from_center
    from .model.imageryclient import ImageryClient, save_image_slices

#: Imported on first use (PEP 562), so that a process needing one part of the package
#: (the viewer's read process, a batch worker) does not import the others: ``batch``
#: brings in the command-line options and Dask, the rest PIL and the renderer.
_LAZY = {
    "ImageryClient": ".model.imageryclient",
    "save_image_slices": ".model.imageryclient",
    "composite_overlay": ".model.composite",
    "stack_images": ".model.composite",
    "bounds_from_center": ".model.geometry",
    "batch": ".batch_cli",
}

__all__ = [
    "ImageryClient",
    "__version__",
    "batch",
    "bounds_from_center",
    "composite_overlay",
    "save_image_slices",
    "stack_images",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
