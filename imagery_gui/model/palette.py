"""Segment colours.

Two ways to colour segments:

* **by order** (:func:`discrete_colors`), ImageryClient's rule: ``n`` colours from a seaborn
  palette (default husl with ``h=0.01, s=1, l=0.65``) handed out in the order of the masks.
  Used by ``composite_overlay`` and by exports without explicit colours, so figures match
  ImageryClient's;
* **by id** (:func:`imagery_gui.model.colors.colors_for_ids`): a colour that depends only on the id, so a segment
  keeps its colour when others are selected or removed. Used by the viewer.

Colours are converted to 0-255 exactly as ImageryClient does (``int(255 * c)``, which
truncates), so the same palette gives the same pixels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

DEFAULT_PALETTE = "husl"
DEFAULT_H = 0.01
DEFAULT_L = 0.65
DEFAULT_S = 1.0

_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


#: Palette name for Neuroglancer's own colours (a hash of each id with ``colorSeed``).
NEUROGLANCER = "neuroglancer"


def check_palette(name: str) -> str:
    """Raise a clear ValueError for an unknown palette name; returns the name."""
    if name != NEUROGLANCER:
        palette_colors(2, name)
    return name


def palette_colors(
    n: int,
    palette: str = DEFAULT_PALETTE,
    h: float = DEFAULT_H,
    l: float = DEFAULT_L,  # noqa: E741 - ImageryClient's parameter name
    s: float = DEFAULT_S,
) -> list[tuple[float, float, float]]:
    """``n`` colours (0-1 floats) from a seaborn palette, as ImageryClient picks them.

    The same floats as seaborn's ``husl_palette`` / ``hls_palette`` / ``color_palette``,
    without importing seaborn: husl and hls are computed here as seaborn computes them,
    seaborn's and matplotlib's common named palettes come from a table generated from
    seaborn (``imagery_gui/resources/palettes.json``, checked by a test). Only other
    names (``"ch:..."``, ``"light:..."``, a rarely used colormap) import seaborn.
    """
    if n <= 0:
        return []
    if palette == NEUROGLANCER:
        raise ValueError("the 'neuroglancer' palette colours segments by id (see ngl.ng_colors)")
    if palette == "husl":
        return _husl_palette(n, h, s, l)
    if palette == "hls":
        return _hls_palette(n, h, l, s)
    named = _named_palette(n, palette)
    if named is not None:
        return named
    return _seaborn_palette(n, palette)


def _husl_palette(n: int, h: float, s: float, l: float) -> list[tuple[float, float, float]]:  # noqa: E741
    """seaborn's ``husl_palette(n, h=h, s=s, l=l)``, step by step."""
    from ._husl import husl_to_rgb

    hues = np.linspace(0, 1, int(n) + 1)[:-1]
    hues += h
    hues %= 1
    hues *= 359
    s *= 99
    l *= 99  # noqa: E741
    out = []
    for h_i in hues:
        # seaborn: np.clip to 0-1, then matplotlib's to_rgb (a float() per channel).
        rgb = np.clip(husl_to_rgb(h_i, s, l), 0, 1)
        out.append((float(rgb[0]), float(rgb[1]), float(rgb[2])))
    return out


def _hls_palette(n: int, h: float, l: float, s: float) -> list[tuple[float, float, float]]:  # noqa: E741
    """seaborn's ``hls_palette(n, h=h, l=l, s=s)``, step by step."""
    import colorsys

    hues = np.linspace(0, 1, int(n) + 1)[:-1]
    hues += h
    hues %= 1
    hues -= hues.astype(int)
    return [tuple(float(v) for v in colorsys.hls_to_rgb(h_i, l, s)) for h_i in hues]  # type: ignore[misc]


_TABLE: dict[str, Any] | None = None


def _palette_table() -> dict[str, Any]:
    global _TABLE
    if _TABLE is None:
        import json
        from importlib.resources import files

        text = (files("imagery_gui") / "resources" / "palettes.json").read_text("utf-8")
        _TABLE = json.loads(text)
    return _TABLE


def _named_palette(n: int, name: str) -> list[tuple[float, float, float]] | None:
    """seaborn's ``color_palette(n_colors=n, palette=name)`` for a name in the table."""
    table = _palette_table()
    if name in table["seaborn_palettes"]:
        # seaborn's own hex lists; matplotlib reads hex as int / 255.
        cols = [
            (int(x[1:3], 16) / 255, int(x[3:5], 16) / 255, int(x[5:7], 16) / 255)
            for x in table["seaborn_palettes"][name]
        ]
    elif name in table["colormaps"]:
        entry = table["colormaps"][name]
        lut = np.asarray(entry["lut"], dtype=np.float64)
        size = len(lut)
        # seaborn's mpl_palette: qualitative maps are indexed, others sampled inside (0, 1).
        if entry["qualitative"]:
            bins = np.linspace(0, 1, int(entry["qualitative"]))[:n]
        else:
            bins = np.linspace(0, 1, int(n) + 2)[1:-1]
        # matplotlib's Colormap.__call__ for floats: x * N, N -> N-1, truncate, clip.
        xa = bins * size
        xa[xa == size] = size - 1
        idx = np.clip(xa.astype(int), 0, size - 1)
        cols = [tuple(float(v) for v in lut[i]) for i in idx]  # type: ignore[misc]
    else:
        return None
    if not cols:
        return None
    # seaborn returns exactly n colours, cycling a shorter palette.
    return [cols[i % len(cols)] for i in range(n)]  # type: ignore[misc]


def _seaborn_palette(n: int, palette: str) -> list[tuple[float, float, float]]:
    """Any other seaborn palette name, through seaborn itself (imported only here)."""
    from seaborn import color_palette

    try:
        cols = color_palette(n_colors=n, palette=palette)
    except ValueError as exc:
        raise ValueError(
            f"unknown palette {palette!r}: use a seaborn palette name such as husl, hls, "
            f"tab10, Set2, deep, or a matplotlib colormap ({exc})"
        ) from None
    return [tuple(float(v) for v in c[:3]) for c in cols]  # type: ignore[misc]


def discrete_colors(
    segs: Any,
    palette: str = DEFAULT_PALETTE,
    h: float = DEFAULT_H,
    l: float = DEFAULT_L,  # noqa: E741
    s: float = DEFAULT_S,
) -> Any:
    """ImageryClient's ``discrete_colors``: a list, or a dict keyed like ``segs``."""
    cols = palette_colors(len(segs), palette, h, l, s)
    if isinstance(segs, dict):
        return dict(zip(segs.keys(), cols))
    return cols


def to_uint8(color: Any) -> tuple[int, int, int]:
    """One colour as 0-255 ints.

    Accepts 0-1 float triples (converted like ImageryClient: ``int(255 * c)``), 0-255 int
    triples (any value above 1), hex strings (``"#ff8800"``, ``"f80"``) and matplotlib
    colour names (``"cyan"``).
    """
    if isinstance(color, str):
        m = _HEX.fullmatch(color.strip())
        if m:
            hx = m.group(1)
            if len(hx) == 3:
                hx = "".join(ch * 2 for ch in hx)
            return (int(hx[0:2], 16), int(hx[2:4], 16), int(hx[4:6], 16))
        from matplotlib.colors import to_rgb

        try:
            rgb = to_rgb(color.strip())
        except ValueError:
            raise ValueError(
                f"unknown colour {color!r}: use a hex string like '#ff8800', a name like "
                "'cyan', or an (r, g, b) tuple"
            ) from None
        return tuple(int(round(255 * c)) for c in rgb)  # type: ignore[return-value]
    try:
        vals = [float(v) for v in color][:3]
    except TypeError:
        raise ValueError(f"a colour must be (r, g, b) or a hex string, got {color!r}") from None
    if len(vals) != 3:
        raise ValueError(f"a colour needs three components, got {color!r}")
    if any(v > 1 for v in vals):
        if any(v < 0 or v > 255 for v in vals):
            raise ValueError(f"colour components must be 0-1 floats or 0-255 ints, got {color!r}")
        return tuple(int(v) for v in vals)  # type: ignore[return-value]
    if any(v < 0 for v in vals):
        raise ValueError(f"colour components must not be negative, got {color!r}")
    return tuple(int(255 * v) for v in vals)  # type: ignore[return-value]


def color_table(colors: Iterable[Any]) -> np.ndarray:
    """An ``(n, 3)`` uint8 table from any iterable of colours."""
    rows = [to_uint8(c) for c in colors]
    if not rows:
        return np.zeros((0, 3), dtype=np.uint8)
    return np.asarray(rows, dtype=np.uint8)


def to_hex(color: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in color[:3]))


#: Size of the fixed palette behind the colour rule's by-id colours (:mod:`.colors`).
ID_PALETTE_SIZE = 64


def id_palette_index(ids: Iterable[int] | np.ndarray, n: int = ID_PALETTE_SIZE) -> np.ndarray:
    """Palette entry of each id: a 64-bit mix (splitmix64's finaliser) of the id, modulo n.

    Neighbouring ids land far apart in the palette. Vectorised, exact on uint64.
    """
    z = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z % np.uint64(n)).astype(np.intp)
