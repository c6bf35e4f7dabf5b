"""Scale bars for figures: a round length, a label, sized for print, in a corner."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

CORNERS = ("lower right", "lower left", "upper right", "upper left")


def nice_length(max_nm: float) -> float:
    """The largest 1, 2 or 5 x 10^k nm not above ``max_nm``."""
    if max_nm <= 0:
        raise ValueError("the image is too small for a scale bar")
    exp = math.floor(math.log10(max_nm))
    for m in (5, 2, 1):
        if m * 10**exp <= max_nm:
            return float(m * 10**exp)
    return float(10 ** (exp - 1) * 5)


def format_length(nm: float) -> str:
    """``250 nm``, ``1 µm``, ``2.5 µm``."""
    if nm >= 1000:
        um = nm / 1000
        return f"{um:g} µm"
    return f"{nm:g} nm"


@dataclass(frozen=True, slots=True)
class ScaleBar:
    """A scale bar.

    Attributes
    ----------
    length_nm : float or None
        Bar length; None picks a round length about a fifth of the image width.
    corner : str
        One of ``lower right``, ``lower left``, ``upper right``, ``upper left``.
    label : bool
        Write the length above the bar.
    """

    length_nm: float | None = None
    corner: str = "lower right"
    label: bool = True

    def __post_init__(self) -> None:
        if self.corner not in CORNERS:
            raise ValueError(f"scale bar corner must be one of {', '.join(CORNERS)}")
        if self.length_nm is not None and self.length_nm <= 0:
            raise ValueError("scale bar length must be positive")

    def resolve_length(self, width_px: int, nm_per_px: float) -> float:
        if self.length_nm is not None:
            return float(self.length_nm)
        return nice_length(width_px * nm_per_px * 0.22)

    def draw(self, image: Image.Image, nm_per_px: float) -> tuple[Image.Image, float]:
        """Draw onto a copy of ``image`` (RGB or RGBA); returns it and the length used.

        Sizes scale with the image so the bar reads the same in print at any resolution:
        bar height ~1.2% and text ~3.5% of the shorter side, with a dark halo so it stays
        visible on light and dark EM alike.
        """
        img = image.copy()
        w, h = img.size
        length = self.resolve_length(w, nm_per_px)
        bar_px = max(1, round(length / nm_per_px))
        if bar_px > w * 0.9:
            raise ValueError(
                f"a {format_length(length)} scale bar is {bar_px} px, wider than the image ({w} px)"
            )
        short = min(w, h)
        margin = max(4, round(short * 0.04))
        thick = max(2, round(short * 0.012))
        font_px = max(10, round(short * 0.035))
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=font_px)
        text = format_length(length)
        tb = draw.textbbox((0, 0), text, font=font) if self.label else (0, 0, 0, 0)
        tw, th = tb[2] - tb[0], tb[3] - tb[1]
        gap = max(2, thick)
        block_h = thick + (th + gap if self.label else 0)
        right = "right" in self.corner
        bottom = "lower" in self.corner
        x0 = w - margin - bar_px if right else margin
        y_block = h - margin - block_h if bottom else margin
        y_bar = y_block + block_h - thick
        halo = max(1, thick // 2)
        fg, bg = (255, 255, 255, 255), (0, 0, 0, 255)
        draw.rectangle(
            [x0 - halo, y_bar - halo, x0 + bar_px - 1 + halo, y_bar + thick - 1 + halo], fill=bg
        )
        draw.rectangle([x0, y_bar, x0 + bar_px - 1, y_bar + thick - 1], fill=fg)
        if self.label:
            tx = x0 + (bar_px - tw) / 2 - tb[0]
            tx = min(max(tx, margin), w - margin - tw)
            ty = y_block - tb[1]
            draw.text(
                (tx, ty),
                text,
                font=font,
                fill=fg,
                stroke_width=max(1, font_px // 12),
                stroke_fill=bg,
            )
        return img, length
