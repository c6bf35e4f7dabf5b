"""Contact sheets: a labelled montage of figures with one shared scale bar (Qt-free).

One layout for every front end: ``imagery-gui batch --contact-sheet`` builds it from the PNG
files it wrote (:func:`imagery_gui.model.batch.write_contact_sheet`), the gallery from the
tiles it holds in memory. Both call :func:`contact_sheet`, so the same figures give the same
pixels whichever way they arrive. This module imports only numpy and Pillow (no Dask, no
dataset), so the gallery can use it without pulling in the batch machinery.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["LABEL_HEIGHT", "PRINT_DPI", "contact_sheet", "save_contact_sheet"]

#: Pixels above each tile for its label (Pillow's default bitmap font is ~11 px high).
LABEL_HEIGHT = 14
#: Height of the strip below the tiles that holds the shared scale bar.
FOOTER_HEIGHT = 40
#: The resolution a saved sheet declares: print resolution, so a page layout program
#: places it at a sensible size instead of 72 dpi (pixels are never resampled).
PRINT_DPI = 300


def _rgb(tile: Any) -> PILImage:
    """A tile as an RGB PIL image: PIL images are converted, arrays ``(h, w[, c])`` uint8
    wrapped. RGBA drops its alpha as ``Image.convert`` does for a PNG read from disk, so an
    in-memory tile and the same tile saved and read back give the same pixels."""
    from PIL import Image

    if isinstance(tile, np.ndarray):
        arr = np.ascontiguousarray(tile)
        if arr.dtype != np.uint8:
            raise ValueError(f"contact sheet tiles must be uint8 images, not {arr.dtype}")
        tile = Image.fromarray(arr)
    if not isinstance(tile, Image.Image):
        raise TypeError(
            f"a contact sheet tile must be a PIL image or a uint8 array, not {type(tile).__name__}"
        )
    return tile.convert("RGB")


def contact_sheet(
    items: Sequence[tuple[str, Any]],
    nm_per_px: float | None,
    spacing: int = 6,
    columns: int | None = None,
) -> PILImage:
    """A montage of ``(label, image)`` tiles: each label above its tile, in rows of
    ``columns`` (default: a square-ish grid), and, when ``nm_per_px`` is given, one scale
    bar below them all (every tile must have that pixel size). Images are PIL images or
    ``(h, w[, 3|4])`` uint8 arrays; tiles of different sizes get cells of the largest."""
    from PIL import Image, ImageDraw, ImageFont

    from .scalebar import ScaleBar

    if not items:
        raise ValueError("a contact sheet needs at least one figure")
    if columns is not None and columns < 1:
        raise ValueError("a contact sheet needs at least one column")
    labels = [str(label) for label, _ in items]
    tiles = [_rgb(image) for _, image in items]
    tw = max(t.width for t in tiles)
    th = max(t.height for t in tiles)
    font = ImageFont.load_default()
    cols = columns if columns is not None else max(1, math.ceil(math.sqrt(len(tiles))))
    cols = min(cols, len(tiles))
    nrows = math.ceil(len(tiles) / cols)
    footer = FOOTER_HEIGHT if nm_per_px else 0
    w = cols * tw + (cols + 1) * spacing
    h = nrows * (th + LABEL_HEIGHT) + (nrows + 1) * spacing + footer
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (label, tile) in enumerate(zip(labels, tiles)):
        r, c = divmod(k, cols)
        x = spacing + c * (tw + spacing)
        y = spacing + r * (th + LABEL_HEIGHT + spacing)
        draw.text((x, y), label, fill=(0, 0, 0), font=font)
        sheet.paste(tile, (x, y + LABEL_HEIGHT))
    if nm_per_px:
        # The bar is drawn on a black strip one tile wide (the figures' own scale bar style:
        # white bar and label) and placed under the last column.
        strip = Image.new("RGB", (tw, footer), (0, 0, 0))
        strip, _ = ScaleBar(corner="lower right").draw(strip, nm_per_px)
        sheet.paste(strip.convert("RGB"), (w - spacing - tw, h - footer - spacing // 2))
    return sheet


def save_contact_sheet(
    image: PILImage, path: str | os.PathLike[str], dpi: int = PRINT_DPI, overwrite: bool = True
) -> str:
    """Write a sheet as PNG atomically (temporary file, then rename), declaring ``dpi``."""
    from .io import save_png_atomic

    return save_png_atomic(image, path, overwrite=overwrite, dpi=(dpi, dpi))
