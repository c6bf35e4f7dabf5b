"""Draw the app icon: resources/imagery-gui.svg (the source) and, from the same geometry,
the PNG sizes, .ico and .icns, plus the runtime copy in imagery_gui/resources/.

    python resources/make_icon.py

The picture: an EM-grey tile cut into five cells by dark membranes, each cell filled with
a translucent colour as the viewer draws segments, the middle one picked out with a white
outline. Deterministic; needs only Pillow.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 512
BACKGROUND = "#1b2027"
TILE = (56, 56, 456, 456)  # the EM tile inside the rounded square
TILE_RADIUS = 56
OUTER_RADIUS = 104
EM_GREY = "#7a7a78"
MEMBRANE = "#23262b"
MEMBRANE_WIDTH = 16
PICKED_WIDTH = 10
FILL_ALPHA = 0.62

# Corners and junctions of the cell boundaries (coordinates on a 512 px canvas).
P = {
    "tl": (56, 56),
    "t": (244, 56),
    "tr": (456, 56),
    "r": (456, 236),
    "br": (456, 456),
    "b": (282, 456),
    "bl": (56, 456),
    "l": (56, 286),
    "q1": (204, 196),
    "q2": (328, 238),
    "q3": (256, 344),
}
CELLS = [  # (vertices, colour); the last one is the picked segment
    (["tl", "t", "q1", "l"], "#f06b73"),
    (["t", "tr", "r", "q2", "q1"], "#4aa8e8"),
    (["r", "br", "b", "q3", "q2"], "#57cc8b"),
    (["b", "bl", "l", "q1", "q3"], "#c27ee6"),
    (["q1", "q2", "q3"], "#f7c948"),
]


def svg() -> str:
    x0, y0, x1, y1 = TILE
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" '
        f'viewBox="0 0 {SIZE} {SIZE}">',
        "  <title>imagery-gui</title>",
        "  <defs>",
        f'    <clipPath id="tile"><rect x="{x0}" y="{y0}" width="{x1 - x0}" '
        f'height="{y1 - y0}" rx="{TILE_RADIUS}"/></clipPath>',
        "  </defs>",
        f'  <rect width="{SIZE}" height="{SIZE}" rx="{OUTER_RADIUS}" fill="{BACKGROUND}"/>',
        '  <g clip-path="url(#tile)">',
        f'    <rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="{EM_GREY}"/>',
    ]
    for names, colour in CELLS:
        pts = " ".join(f"{P[n][0]},{P[n][1]}" for n in names)
        parts.append(
            f'    <polygon points="{pts}" fill="{colour}" fill-opacity="{FILL_ALPHA}" '
            f'stroke="{MEMBRANE}" stroke-width="{MEMBRANE_WIDTH}" stroke-linejoin="round"/>'
        )
    pts = " ".join(f"{P[n][0]},{P[n][1]}" for n in CELLS[-1][0])
    parts += [
        f'    <polygon points="{pts}" fill="none" stroke="#ffffff" '
        f'stroke-width="{PICKED_WIDTH}" stroke-linejoin="round"/>',
        "  </g>",
        "</svg>",
        "",
    ]
    return "\n".join(parts)


def _rgba(hex_colour: str, alpha: float = 1.0) -> tuple[int, int, int, int]:
    h = hex_colour.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), round(alpha * 255))


def render(size: int) -> Image.Image:
    """The SVG's picture drawn with Pillow (4x supersampled), ``size`` px square."""
    s = 4 * size / SIZE

    def sc(pt):
        return (pt[0] * s, pt[1] * s)

    big = round(SIZE * s)
    out = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    ImageDraw.Draw(out).rounded_rectangle(
        (0, 0, big - 1, big - 1), radius=OUTER_RADIUS * s, fill=_rgba(BACKGROUND)
    )
    tile = Image.new("RGBA", (big, big), _rgba(EM_GREY))
    for names, colour in CELLS:
        layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
        ImageDraw.Draw(layer).polygon([sc(P[n]) for n in names], fill=_rgba(colour, FILL_ALPHA))
        tile = Image.alpha_composite(tile, layer)
    draw = ImageDraw.Draw(tile)
    for names, _ in CELLS:
        pts = [sc(P[n]) for n in names]
        draw.line(
            [*pts, pts[0]], fill=_rgba(MEMBRANE), width=round(MEMBRANE_WIDTH * s), joint="curve"
        )
    pts = [sc(P[n]) for n in CELLS[-1][0]]
    draw.line(
        [*pts, pts[0]], fill=(255, 255, 255, 255), width=round(PICKED_WIDTH * s), joint="curve"
    )
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        tuple(v * s for v in TILE), radius=TILE_RADIUS * s, fill=255
    )
    out.paste(tile, (0, 0), mask)
    return out.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    (HERE / "imagery-gui.svg").write_text(svg())
    icon = render(512)
    icon.save(HERE / "imagery-gui.png", optimize=True)
    icon.save(HERE / "imagery-gui.ico", sizes=[(n, n) for n in (16, 24, 32, 48, 64, 128, 256)])
    icon.save(HERE / "imagery-gui.icns")
    runtime = HERE.parent / "imagery_gui" / "resources"
    runtime.mkdir(exist_ok=True)
    render(256).save(runtime / "imagery-gui.png", optimize=True)


if __name__ == "__main__":
    main()
