"""imagery-gui: a desktop viewer for EM connectomics imagery and segmentation.

The package root exposes the ImageryClient-compatible API, so an existing script runs
unchanged after ``import imageryclient as ic`` becomes ``import imagery_gui as ic``::

    from imagery_gui import ImageryClient, composite_overlay, bounds_from_center, stack_images

Importing this package does not import Qt; the viewer lives in :mod:`imagery_gui.qt`.
"""

from __future__ import annotations

from ._version import __version__
from .model.composite import composite_overlay, stack_images
from .model.geometry import bounds_from_center
from .model.imageryclient import ImageryClient, save_image_slices

__all__ = [
    "ImageryClient",
    "__version__",
    "batch",
    "bounds_from_center",
    "composite_overlay",
    "save_image_slices",
    "stack_images",
]


def __getattr__(name: str):
    # Lazy: batch brings in the command-line options and (when run) Dask; `import
    # imagery_gui` stays as cheap as before (tests/test_lazy_imports.py).
    if name == "batch":
        from .batch_cli import batch

        return batch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
