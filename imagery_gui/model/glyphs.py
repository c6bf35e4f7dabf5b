"""Site glyphs: rings, pre->post arrows and boxes, drawn by the model for every front end.

The viewer, ``imagery-gui export``, batch figures and the gallery all call
:func:`draw_glyphs`, so a site looks the same everywhere. What is drawn:

* a **ring** at the site's centre (never a disc: the cleft stays visible), a circle for
  inputs and a diamond for outputs, so the two read apart in grey-scale print as well as
  by colour (inputs blue, outputs orange: a colour-blind-safe pair);
* an **arrow** from the pre point to the post point when both are known;
* the **box** of box annotations, the ellipse of ellipsoids;
* every stroke over a dark halo, so it reads on light and dark EM alike;
* full on the site's own section, fading over ``fade_sections`` sections either side;
* the current site thicker and in white.

Sizes are in output pixels at scale 1 and grow with the figure's upscale factor, so they
read at print size. The cost depends only on the glyphs that fall in the picture: the
caller passes those (:func:`in_view`), never the whole table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]
Point = tuple[float, float]

ROLE_NONE, ROLE_INPUT, ROLE_OUTPUT = 0, 1, 2
KIND_POINT, KIND_LINE, KIND_BOX, KIND_ELLIPSOID = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class GlyphStyle:
    """How sites are drawn (sizes in output pixels at scale 1)."""

    radius: float = 9.0
    width: float = 2.0
    fade_sections: int = 2
    input_color: RGB = (51, 153, 255)
    output_color: RGB = (255, 140, 26)
    other_color: RGB = (255, 230, 60)
    current_color: RGB = (255, 255, 255)
    halo_color: RGB = (0, 0, 0)
    arrows: bool = True

    def __post_init__(self) -> None:
        if not self.radius > 0 or not self.width > 0:
            raise ValueError("glyph radius and width must be positive")
        if int(self.fade_sections) != self.fade_sections or self.fade_sections < 0:
            raise ValueError(
                f"fade_sections must be a whole number >= 0, got {self.fade_sections!r}"
            )

    def color(self, role: int) -> RGB:
        if role == ROLE_INPUT:
            return self.input_color
        if role == ROLE_OUTPUT:
            return self.output_color
        return self.other_color


@dataclass(frozen=True, slots=True)
class Glyphs:
    """Sites in picture coordinates: x, y in output pixels, z in sections of the picture's
    z grid. ``pre``/``post``/``extent`` rows are NaN where unknown; ``extent`` is a box's
    or an ellipsoid's (half-width, half-height) in pixels."""

    center: np.ndarray  # (n, 3) float: x, y, z
    pre: np.ndarray  # (n, 3)
    post: np.ndarray  # (n, 3)
    role: np.ndarray  # (n,) int8
    kind: np.ndarray  # (n,) int8
    extent: np.ndarray  # (n, 2)
    index: np.ndarray  # (n,) int: row in the site table (for labels and picking)

    def __len__(self) -> int:
        return int(self.center.shape[0])


def fade(dz: np.ndarray, sections: int) -> np.ndarray:
    """Opacity of a glyph ``dz`` sections from its own: 1 on it, falling linearly to 0
    just past ``sections`` away."""
    d = np.abs(np.asarray(dz, dtype=np.float64))
    return np.clip(1.0 - d / (sections + 1.0), 0.0, 1.0)


def in_view(
    center: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    size: tuple[int, int],
    z: float,
    style: GlyphStyle,
    scale: int = 1,
) -> np.ndarray:
    """Rows whose glyph can show in a ``size`` = (width, height) picture at section ``z``:
    within the fade range in z, and the ring or the arrow within the picture (vectorised)."""
    w, h = size
    pad = (style.radius + 2 * style.width) * scale
    zs = np.abs(center[:, 2] - z) <= style.fade_sections + 0.5
    lo = np.fmin(np.fmin(center[:, :2], pre[:, :2]), post[:, :2])  # fmin: NaN ignored
    hi = np.fmax(np.fmax(center[:, :2], pre[:, :2]), post[:, :2])
    inside = (hi[:, 0] >= -pad) & (hi[:, 1] >= -pad) & (lo[:, 0] <= w + pad) & (lo[:, 1] <= h + pad)
    return np.flatnonzero(zs & inside)


def _ring(
    draw: ImageDraw.ImageDraw,
    x: float,
    y: float,
    r: float,
    width: float,
    color: RGBA,
    diamond: bool,
) -> None:
    if diamond:
        pts = [(x, y - r), (x + r, y), (x, y + r), (x - r, y), (x, y - r)]
        draw.line(pts, fill=color, width=max(1, round(width)), joint="curve")
    else:
        draw.ellipse((x - r, y - r, x + r, y + r), outline=color, width=max(1, round(width)))


def _outside(a: Point, b: Point, c: Point, r: float) -> list[tuple[float, float]]:
    """Parameters ``t`` in [0, 1] where the segment a->b crosses the circle (c, r)."""
    (ax, ay), (bx, by), (cx, cy) = a, b, c
    dx, dy = bx - ax, by - ay
    fx, fy = ax - cx, ay - cy
    qa = dx * dx + dy * dy
    qb = 2 * (fx * dx + fy * dy)
    qc = fx * fx + fy * fy - r * r
    disc = qb * qb - 4 * qa * qc
    if qa == 0 or disc <= 0:
        return [(0.0, 1.0)]
    root = math.sqrt(disc)
    t0, t1 = (-qb - root) / (2 * qa), (-qb + root) / (2 * qa)
    parts = [(0.0, min(max(t0, 0.0), 1.0)), (min(max(t1, 0.0), 1.0), 1.0)]
    return [(u, v) for u, v in parts if v - u > 1e-6]


def _arrow(
    draw: ImageDraw.ImageDraw,
    a: Point,
    b: Point,
    center: Point,
    ring: float,
    width: float,
    head: float,
    color: RGBA,
) -> None:
    """An arrow a -> b that leaves the inside of the ring free (the cleft stays visible)."""
    (x0, y0), (x1, y1) = a, b
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 1e-6:
        return
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    head = min(head, length)
    hx, hy = x1 - ux * head, y1 - uy * head  # the head's base
    for u, v in _outside(a, (hx, hy), center, ring):
        p = (x0 + (hx - x0) * u, y0 + (hy - y0) * u)
        q = (x0 + (hx - x0) * v, y0 + (hy - y0) * v)
        draw.line([p, q], fill=color, width=max(1, round(width)))
    px, py = -uy * head * 0.55, ux * head * 0.55
    draw.polygon([(x1, y1), (hx + px, hy + py), (hx - px, hy - py)], fill=color)


def _with_alpha(color: RGB, a: float) -> RGBA:
    return (color[0], color[1], color[2], int(round(255 * a)))


def _bbox(
    g: Glyphs, rows: np.ndarray, pad: float, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) holding the glyphs of ``rows``, clipped to the picture."""
    pts = [g.center[rows, :2], g.pre[rows, :2], g.post[rows, :2]]
    ext = np.nan_to_num(g.extent[rows], nan=0.0)
    pts += [g.center[rows, :2] - ext, g.center[rows, :2] + ext]
    allp = np.concatenate(pts)
    lo = np.nanmin(allp, axis=0) - pad
    hi = np.nanmax(allp, axis=0) + pad
    x0, y0 = max(0, int(math.floor(lo[0]))), max(0, int(math.floor(lo[1])))
    x1, y1 = min(size[0], int(math.ceil(hi[0]))), min(size[1], int(math.ceil(hi[1])))
    return x0, y0, x1, y1


def draw_glyphs_cropped(
    size: tuple[int, int],
    glyphs: Glyphs,
    z: float,
    style: GlyphStyle = GlyphStyle(),
    scale: int = 1,
    current: int | None = None,
) -> tuple[Image.Image | None, tuple[int, int]]:
    """The glyphs of section ``z`` as an RGBA image covering only where they are, and
    its offset (x, y) in the ``size`` = (width, height) picture; ``(None, (0, 0))`` when
    nothing shows.

    Glyphs are drawn level by level of fade, each level's halos under its strokes, faded
    levels first and the section's own glyphs on top; a faded glyph's pixels carry its
    opacity in their alpha.
    """
    if len(glyphs) == 0:
        return None, (0, 0)
    alphas = np.round(fade(glyphs.center[:, 2] - z, style.fade_sections), 4)
    shown = np.flatnonzero(alphas > 0)
    if len(shown) == 0:
        return None, (0, 0)
    r, w = style.radius * scale, style.width * scale
    pad = r + 3 * w + 2 * scale
    x0, y0, x1, y1 = _bbox(glyphs, shown, pad, size)
    if x1 <= x0 or y1 <= y0:
        return None, (0, 0)
    out = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
    draw = ImageDraw.Draw(out)  # RGBA pixels are written, not blended: later strokes win
    marks = _Marks.of(glyphs, style, (x0, y0))
    for a in sorted(set(alphas[shown].tolist())):
        rows = np.flatnonzero(alphas == a).tolist()
        for halo in (True, False):  # every halo of the level under every stroke
            for k in rows:
                is_current = current is not None and marks.index[k] == current
                sw = w * (1.6 if is_current else 1.0)
                if halo:  # one pixel (at scale 1) either side of the stroke
                    color, width, radius = style.halo_color, sw + 2 * scale, r + scale
                else:
                    color = style.current_color if is_current else style.color(marks.role[k])
                    width, radius = sw, r
                marks.draw(draw, k, radius, width, _with_alpha(color, a))
    return out, (x0, y0)


@dataclass(frozen=True, slots=True)
class _Marks:
    """What drawing reads of each glyph, as Python numbers in the crop's pixels, worked out
    for all glyphs at once: drawing a few hundred glyphs per figure (batch's dense tables)
    then costs the drawing calls, not numpy indexing per glyph."""

    x: list[float]
    y: list[float]
    ends: list[tuple[float, float, float, float] | None]  # pre x, y, post x, y; None: no arrow
    extent: list[tuple[float, float] | None]  # a box's or an ellipsoid's half sizes
    kind: list[int]
    role: list[int]
    index: list[int]

    @staticmethod
    def of(g: Glyphs, style: GlyphStyle, origin: tuple[int, int]) -> _Marks:
        ox, oy = origin
        ends: list[tuple[float, float, float, float] | None] = [None] * len(g)
        if style.arrows:
            both = ~(np.isnan(g.pre).any(axis=1) | np.isnan(g.post).any(axis=1))
            ab = np.c_[g.pre[:, 0] - ox, g.pre[:, 1] - oy, g.post[:, 0] - ox, g.post[:, 1] - oy]
            for k in np.flatnonzero(both).tolist():
                ends[k] = tuple(ab[k].tolist())
        extent: list[tuple[float, float] | None] = [None] * len(g)
        for k in np.flatnonzero(~np.isnan(g.extent).any(axis=1)).tolist():
            extent[k] = (float(g.extent[k, 0]), float(g.extent[k, 1]))
        return _Marks(
            x=(g.center[:, 0] - ox).tolist(),
            y=(g.center[:, 1] - oy).tolist(),
            ends=ends,
            extent=extent,
            kind=g.kind.tolist(),
            role=g.role.tolist(),
            index=np.asarray(g.index).tolist(),
        )

    def draw(self, draw: ImageDraw.ImageDraw, k: int, r: float, width: float, col: RGBA) -> None:
        cx, cy = self.x[k], self.y[k]
        kind, ext = self.kind[k], self.extent[k]
        if kind == KIND_BOX and ext is not None:
            ex, ey = ext
            draw.rectangle(
                (cx - ex, cy - ey, cx + ex, cy + ey), outline=col, width=max(1, round(width))
            )
            return
        if kind == KIND_ELLIPSOID and ext is not None:
            ex, ey = ext
            draw.ellipse(
                (cx - ex, cy - ey, cx + ex, cy + ey), outline=col, width=max(1, round(width))
            )
            return
        ends = self.ends[k]
        if ends is not None:
            _arrow(draw, ends[:2], ends[2:], (cx, cy), r, width * 0.75, r * 0.9, col)
        _ring(draw, cx, cy, r, width, col, diamond=self.role[k] == ROLE_OUTPUT)


def draw_glyphs(
    size: tuple[int, int],
    glyphs: Glyphs,
    z: float,
    style: GlyphStyle = GlyphStyle(),
    scale: int = 1,
    current: int | None = None,
) -> Image.Image:
    """The glyphs of section ``z`` as an RGBA layer of the whole ``size`` picture, to
    composite over the figure (``Image.alpha_composite``)."""
    out = Image.new("RGBA", size, (0, 0, 0, 0))
    part, offset = draw_glyphs_cropped(size, glyphs, z, style, scale, current)
    if part is not None:
        out.paste(part, offset)
    return out


class SiteColumns(Protocol):
    """What the glyph renderer reads of a site table (:class:`~.sites.SiteTable`)."""

    centers: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    role_codes: np.ndarray
    kind_codes: np.ndarray
    boxes: np.ndarray
    radii: np.ndarray
    resolution: tuple[float, float, float]

    def in_box(
        self, lo: Sequence[float], hi: Sequence[float], resolution: Sequence[float] | None = None
    ) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Picture:
    """Where a picture lies: its top-left corner (nm), nm per output pixel in x and y, its
    size (width, height) in output pixels, and the thickness of its sections (nm)."""

    origin_nm: tuple[float, float]
    nm_per_px: tuple[float, float]
    size: tuple[int, int]
    section_nm: float

    def sites_at(self, table: SiteColumns, z: float, style: GlyphStyle, scale: int = 1) -> Glyphs:
        """The glyphs of ``table`` that can show in this picture at section ``z`` (in
        sections of ``section_nm``): one vectorised box query, then only those rows."""
        tres = np.asarray(table.resolution, dtype=np.float64)
        ox, oy = self.origin_nm
        px, py = self.nm_per_px
        w, h = self.size
        pad = (style.radius + 3 * style.width) * scale
        lo_nm = np.array(
            [ox - pad * px, oy - pad * py, (z - style.fade_sections - 0.5) * self.section_nm]
        )
        hi_nm = np.array(
            [
                ox + (w + pad) * px,
                oy + (h + pad) * py,
                (z + style.fade_sections + 1.5) * self.section_nm,
            ]
        )
        rows = table.in_box(lo_nm.tolist(), hi_nm.tolist(), (1.0, 1.0, 1.0))
        return self.glyphs(table, rows, tres)

    def glyphs(self, table: SiteColumns, rows: np.ndarray, tres: np.ndarray) -> Glyphs:
        ox, oy = self.origin_nm
        px, py = self.nm_per_px

        def to_px(pts: np.ndarray) -> np.ndarray:
            nm = pts * tres
            # voxel centres: a site at voxel (x, y) is drawn in the middle of that voxel
            out = np.empty_like(nm)
            out[:, 0] = (nm[:, 0] + tres[0] / 2 - ox) / px
            out[:, 1] = (nm[:, 1] + tres[1] / 2 - oy) / py
            out[:, 2] = np.floor(nm[:, 2] / self.section_nm)
            result: np.ndarray = out
            return result

        c = table.centers[rows]
        extent = np.full((len(rows), 2), np.nan)
        boxes, radii = table.boxes[rows], table.radii[rows]
        is_box = np.isfinite(boxes).all(axis=(1, 2))
        if is_box.any():
            half = np.abs(boxes[is_box, 1] - boxes[is_box, 0]) * tres / 2
            extent[is_box] = half[:, :2] / (px, py)
        is_ell = np.isfinite(radii).all(axis=1)
        if is_ell.any():
            extent[is_ell] = np.abs(radii[is_ell, :2]) * tres[:2] / (px, py)
        return Glyphs(
            center=to_px(c),
            pre=to_px(table.pre[rows]),
            post=to_px(table.post[rows]),
            role=np.asarray(table.role_codes[rows], dtype=np.int8),
            kind=np.asarray(table.kind_codes[rows], dtype=np.int8),
            extent=extent,
            index=np.asarray(rows, dtype=np.intp),
        )
