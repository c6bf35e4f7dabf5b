"""The one colour rule: the colour and opacity of every segment id for a style.

:func:`segment_colors` is the only place a segment's colour is decided. The viewer's
colour tables, the swatches in the Segments panel, File > Export, ``imagery-gui export``,
the Neuroglancer link out and the provenance files all call it, so they cannot disagree.

* palette ``neuroglancer``: Neuroglancer's own hash of the id with ``color_seed``
  (:func:`ng_colors`, exact to Neuroglancer's TypeScript);
* ``color_by="id"``: an entry of a fixed 64-colour table of the palette, picked by a
  64-bit mix of the id, so a segment keeps its colour whatever else is shown;
* ``color_by="order"``: ImageryClient's rule, ``len(ids)`` colours handed out in order;
* colours the user chose (:class:`~imagery_gui.model.style.Selection`) win over all three.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

import numpy as np

from .palette import ID_PALETTE_SIZE, color_table, id_palette_index, palette_colors
from .render import alpha_to_uint8  # ImageryClient's int(alpha * 255)
from .style import NEUROGLANCER, RGB, OverlayStyle, Selection


def _as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    if isinstance(ids, np.ndarray):
        return ids.astype(np.uint64, copy=False).reshape(-1)
    return np.fromiter((int(i) for i in ids), dtype=np.uint64)


@lru_cache(maxsize=64)
def palette_table(palette: str, n: int = ID_PALETTE_SIZE) -> np.ndarray:
    """``(n, 3)`` uint8 colours of a palette (cached, read-only)."""
    table = color_table(palette_colors(n, palette))
    table.setflags(write=False)
    return table


def segment_colors(
    ids: Iterable[int] | np.ndarray,
    style: OverlayStyle,
    explicit: Mapping[int, RGB] | None = None,
) -> np.ndarray:
    """``(len(ids), 3)`` uint8: the colour of each id, in the order given."""
    arr = _as_ids(ids)
    if style.palette == NEUROGLANCER:
        table = ng_colors(arr, style.color_seed)
    elif style.color_by == "order":
        table = palette_table(style.palette, len(arr)).copy() if len(arr) else _empty()
    else:
        base = palette_table(style.palette)
        table = base[id_palette_index(arr, len(base))] if len(arr) else _empty()
    if explicit:
        table = _with_explicit(arr, table, explicit)
    return table


def _empty() -> np.ndarray:
    return np.zeros((0, 3), dtype=np.uint8)


def _with_explicit(arr: np.ndarray, table: np.ndarray, explicit: Mapping[int, RGB]) -> np.ndarray:
    keys = np.fromiter((int(k) for k in explicit), dtype=np.uint64, count=len(explicit))
    vals = np.asarray([explicit[int(k)] for k in keys], dtype=np.uint8).reshape(-1, 3)
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    pos = np.minimum(np.searchsorted(keys, arr), len(keys) - 1)
    hit = keys[pos] == arr
    if hit.any():
        table = table.copy()
        table[hit] = vals[pos[hit]]
    return table


def selected_mask(ids: np.ndarray, selection: Selection) -> np.ndarray:
    if not selection.ids:
        return np.zeros(len(ids), dtype=bool)
    return np.isin(ids, np.asarray(selection.ids, dtype=np.uint64))


def segment_alphas(
    ids: Iterable[int] | np.ndarray, style: OverlayStyle, selection: Selection
) -> np.ndarray:
    """``(len(ids),)`` float: selected ids at ``selected_alpha``, others at ``alpha`` (0
    when unselected segments are not shown)."""
    arr = _as_ids(ids)
    other = style.alpha if style.show_unselected else 0.0
    return np.where(selected_mask(arr, selection), style.selected_alpha, other)


def visible(ids: np.ndarray, style: OverlayStyle, selection: Selection) -> np.ndarray:
    """Which ids are drawn (id 0 never)."""
    arr = _as_ids(ids)
    vis = np.ones(len(arr), dtype=bool) if style.show_unselected else selected_mask(arr, selection)
    out: np.ndarray = vis & (arr != 0)
    return out


def lut(ids: np.ndarray, style: OverlayStyle, selection: Selection) -> np.ndarray:
    """RGBA lookup table ``(len(ids), 4)`` uint8 for a label table (id 0 transparent)."""
    arr = _as_ids(ids)
    out = np.zeros((len(arr), 4), dtype=np.uint8)
    out[:, :3] = segment_colors(arr, style, selection.explicit)
    sel = selected_mask(arr, selection)
    a_sel = alpha_to_uint8(style.selected_alpha)
    a_other = alpha_to_uint8(style.alpha) if style.show_unselected else 0
    out[:, 3] = np.where(sel, a_sel, a_other)
    out[arr == 0] = 0
    return out


def colors_for_ids(ids: Iterable[int], palette: str = "husl") -> dict[int, RGB]:
    """A stable colour per id from a fixed 64-entry palette (the rule's ``by id``): the
    colour of an id never depends on which other ids are shown."""
    ids = [int(i) for i in ids]
    table = segment_colors(ids, OverlayStyle(palette=palette, color_by="id"))
    return {v: (int(c[0]), int(c[1]), int(c[2])) for v, c in zip(ids, table.tolist())}


def colors_of(selection: Selection, style: OverlayStyle) -> dict[int, RGB]:
    """The colour each selected id is drawn with, keyed by id (selection order)."""
    table = segment_colors(selection.ids, style, selection.explicit)
    return {i: (int(c[0]), int(c[1]), int(c[2])) for i, c in zip(selection.ids, table.tolist())}


# -- Neuroglancer's segment colours ----------------------------------------------------------
_K1 = np.uint32(0xCC9E2D51)
_K2 = np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _hash_combine(state: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Neuroglancer's ``hashCombine`` (MurmurHash3 without the final mix), on uint32."""
    with np.errstate(over="ignore"):
        value = value * _K1
        value = _rotl(value, 15)
        value = value * _K2
        state = state ^ value
        state = _rotl(state, 13)
        return state * np.uint32(5) + np.uint32(0xE6546B64)


def ng_colors(ids: Iterable[int] | np.ndarray, color_seed: int = 0) -> np.ndarray:
    """``(n, 3)`` uint8 colours Neuroglancer gives segment ``ids`` under ``color_seed``.

    Same arithmetic as Neuroglancer's ``SegmentColorHash.compute`` (hash of the low and
    high 32 bits of the id, then HSV with h = byte 0, s = 0.5 + 0.5 * byte 1, v = 1,
    stored in float32) and ``packColor`` (``Math.round(x * 255)``).
    """
    arr = _as_ids(ids)
    lo = (arr & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (arr >> np.uint64(32)).astype(np.uint32)
    h = _hash_combine(np.full(arr.shape, int(color_seed) & 0xFFFFFFFF, dtype=np.uint32), lo)
    h = _hash_combine(h, hi)
    c0 = (h & np.uint32(0xFF)).astype(np.float64) / 255
    c1 = ((h >> np.uint32(8)) & np.uint32(0xFF)).astype(np.float64) / 255
    hue, sat, val = c0 * 6, 0.5 + 0.5 * c1, 1.0
    idx = np.floor(hue)
    rem = hue - idx
    v1 = val * (1 - sat)
    v2 = val * (1 - sat * rem)
    v3 = val * (1 - sat * (1 - rem))
    k = (idx.astype(np.int64) % 6)[:, None]
    vv = np.full_like(v1, val)
    choices = [
        np.stack([vv, v3, v1], 1),
        np.stack([v2, vv, v1], 1),
        np.stack([v1, vv, v3], 1),
        np.stack([v1, v2, vv], 1),
        np.stack([v3, v1, vv], 1),
        np.stack([vv, v1, v2], 1),
    ]
    rgb = np.select([k == i for i in range(6)], choices).astype(np.float32).astype(np.float64)
    return np.clip(np.floor(rgb * 255 + 0.5), 0, 255).astype(np.uint8).reshape(-1, 3)
