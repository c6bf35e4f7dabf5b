r"""Neuroglancer links, both ways, and Neuroglancer's own segment colours.

Reading (:func:`parse_link`) accepts what colleagues paste:

* ``https://host/#!{"dimensions": ...}`` (percent-encoded JSON in the fragment),
* the legacy url-safe form (single quotes, ``_`` or ``&`` for commas),
* state-server links: ``https://host/?json_url=https://.../nglstate/api/v1/123`` and
  ``https://host/#!middleauth+https://.../nglstate/api/v1/123`` (fetched through
  caveclient's state service, with the user's token),
* states stored at any other URL after ``#!``, by Neuroglancer's own rule
  (``^#!([a-z][a-z\d+\-.]*)://``): ``#!https://...``, ``#!gs://bucket/state.json``,
  ``#!s3://...``, ``#!file:///...`` (read through cloud-files with the user's credentials),
* a bare state JSON.

From the state it takes the position and dimensions (centre voxel and resolution), the
first image layer, the segmentation layer (the first one with selected segments, else
the first), its selected segments (``!``-prefixed ones are hidden), ``segmentColors``,
``colorSeed``, ``selectedAlpha``, ``notSelectedAlpha`` and the image contrast range.

Writing (:func:`make_link`) produces a link for a view, never containing a token.
:func:`ng_colors` reproduces Neuroglancer's colour hash for a ``colorSeed`` exactly, so a
figure can match what colleagues see in their browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import numpy as np

from .colors import ng_colors  # noqa: F401 - Neuroglancer's colours live with the colour rule
from .errors import ImageryGuiError
from .segments import id_token_problem, parse_root_id
from .source import parse_source
from .urls import redact_url

DEFAULT_NGL_URL = "https://neuroglancer-demo.appspot.com"
_UNIT_NM = {"m": 1e9, "mm": 1e6, "um": 1e3, "µm": 1e3, "nm": 1.0, "pm": 1e-3}
_SEG_TYPES = ("segmentation", "segmentation_with_graph")


class NglLinkError(ImageryGuiError, ValueError):
    """A Neuroglancer link or state that cannot be used."""


@dataclass(frozen=True)
class NglLayer:
    name: str
    type: str
    source: str | None


@dataclass(frozen=True)
class NglView:
    """What imagery-gui takes from a Neuroglancer state."""

    center: tuple[int, int, int] | None
    resolution: tuple[float, float, float] | None
    image_source: str | None
    segmentation_source: str | None
    segments: tuple[int, ...] = ()
    hidden_segments: tuple[int, ...] = ()
    segment_colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    color_seed: int | None = None
    selected_alpha: float | None = None
    not_selected_alpha: float | None = None
    contrast: tuple[float, float] | None = None
    cross_section_scale: float | None = None
    image_layer: str | None = None
    segmentation_layer: str | None = None
    layers: tuple[NglLayer, ...] = ()
    state: dict = field(default_factory=dict, compare=False, repr=False)  # the whole state
    # Entries of the segmentation layer's segment list that are not ids: (entry, reason).
    rejected_segments: tuple[tuple[str, str], ...] = ()


# -- url-safe JSON ---------------------------------------------------------------------------
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def url_safe_to_json(text: str) -> str:
    """Neuroglancer's legacy url-safe state to JSON: ``'`` quotes become ``"`` and, outside
    strings, ``_`` and ``&`` become commas."""
    out: list[str] = []
    pos = 0
    for m in _STRING.finditer(text):
        out.append(re.sub(r"[_&]", ",", text[pos : m.start()]))
        literal = m.group(0)
        if literal[0] == "'":
            body = literal[1:-1]
            # Unescape \' and escape bare " for a double-quoted JSON string.
            body = re.sub(r"\\'", "'", body)
            body = re.sub(r'(?<!\\)"', r'\\"', body)
            literal = '"' + body + '"'
        out.append(literal)
        pos = m.end()
    out.append(re.sub(r"[_&]", ",", text[pos:]))
    return "".join(out)


def _loads(text: str) -> dict:
    for candidate in (text, url_safe_to_json(text)):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise NglLinkError(
        "this is not a Neuroglancer link or state: expected a URL with #!{...}, a "
        "?json_url= / #!middleauth+https://... state link, or the state JSON itself"
    )


# Neuroglancer (src/ui/url_hash_binding.ts) treats a fragment of the form "#!scheme://..." as
# the URL of a stored state rather than the state itself.
_STATE_URL = re.compile(r"^([a-z][a-z\d+\-.]*)://")


def _state_url_from_link(link: str) -> str | None:
    """The state-server URL inside a link, if the link points at a stored state."""
    parts = urlsplit(link)
    q = parse_qs(parts.query)
    if "json_url" in q:
        return q["json_url"][0]
    frag = unquote(parts.fragment or "")
    if frag.startswith("!"):
        frag = frag[1:]
    if _STATE_URL.match(frag):
        return frag
    return None


def parse_link(text: str, fetch_state: Callable[[str], dict] | None = None) -> NglView:
    """Parse a Neuroglancer link (any form) or state JSON into an :class:`NglView`.

    ``fetch_state(url)`` is called for state-server links (see
    :func:`imagery_gui.model.cave.fetch_state_json`).
    """
    text = (text or "").strip()
    if not text:
        raise NglLinkError("the Neuroglancer link is empty")
    if text.startswith("{") or text.startswith("%7B"):
        return view_from_state(_loads(unquote(text)))
    state_url = _state_url_from_link(text)
    if state_url is not None:
        if fetch_state is None:
            raise NglLinkError(
                f"this link points at a stored state ({state_url}); it needs a state server"
            )
        state = fetch_state(state_url)
        if not isinstance(state, dict):
            raise NglLinkError(f"the state server returned no state for {state_url}")
        return view_from_state(state)
    frag = urlsplit(text).fragment
    if not frag:
        raise NglLinkError(
            "this is not a Neuroglancer link: there is no '#!' state in it (paste the whole "
            "link from the browser's address bar)"
        )
    frag = unquote(frag)
    if frag.startswith("!"):
        frag = frag[1:]
    return view_from_state(_loads(frag))


# -- state -> view ---------------------------------------------------------------------------
def _source_url(source: Any) -> str | None:
    if isinstance(source, str):
        return source
    if isinstance(source, dict):
        return _source_url(source.get("url"))
    if isinstance(source, list) and source:
        for s in source:
            url = _source_url(s)
            if url:
                return url
    return None


def _layers(state: dict) -> list[tuple[str, dict]]:
    layers = state.get("layers", [])
    if isinstance(layers, dict):  # legacy: {name: layer}
        return [(name, spec) for name, spec in layers.items() if isinstance(spec, dict)]
    out = []
    for i, spec in enumerate(layers if isinstance(layers, list) else []):
        if isinstance(spec, dict):
            out.append((str(spec.get("name", f"layer {i}")), spec))
    return out


def _resolution(state: dict) -> tuple[float, float, float] | None:
    dims = state.get("dimensions")
    if isinstance(dims, dict) and all(k in dims for k in ("x", "y", "z")):
        out = []
        for k in ("x", "y", "z"):
            value, unit = dims[k][0], dims[k][1]
            if unit not in _UNIT_NM:
                raise NglLinkError(f"unsupported unit {unit!r} for dimension {k}")
            out.append(round(float(value) * _UNIT_NM[unit], 6))
        return tuple(out)  # type: ignore[return-value]
    nav = state.get("navigation", {})  # legacy states: navigation.pose.position.voxelSize
    vs = nav.get("pose", {}).get("position", {}).get("voxelSize") if isinstance(nav, dict) else None
    if vs and len(vs) == 3:
        return tuple(float(v) for v in vs)  # type: ignore[return-value]
    return None


def _position(state: dict) -> list[float] | None:
    pos = state.get("position")
    if pos is None:
        nav = state.get("navigation", {})
        pos = (
            nav.get("pose", {}).get("position", {}).get("voxelCoordinates")
            if isinstance(nav, dict)
            else None
        )
    if pos is None or len(pos) < 3:
        return None
    return [float(v) for v in pos[:3]]


def _segments(spec: dict) -> tuple[list[int], list[int], list[tuple[str, str]]]:
    """Shown and hidden ids; entries that are not ids are kept aside with the reason (the
    same rules as every other id entry, :func:`~imagery_gui.model.segments.id_token_problem`)."""
    shown: list[int] = []
    hidden: list[int] = []
    rejected: list[tuple[str, str]] = []
    entries = [(s, False) for s in spec.get("segments", []) or []]
    # Some states list hidden segments separately.
    entries += [(s, True) for s in spec.get("hiddenSegments", []) or []]
    for s, is_hidden in entries:
        text = str(s).strip()
        v, why = id_token_problem(text)
        if v is None:
            rejected.append((text, why or ""))
            continue
        (hidden if is_hidden or text.startswith("!") else shown).append(v)
    return shown, hidden, rejected


def _hex_to_rgb(value: str) -> tuple[int, int, int]:
    from .palette import to_uint8

    return to_uint8(value)


def view_from_state(state: dict) -> NglView:
    """The parts of a Neuroglancer state imagery-gui uses."""
    layers = _layers(state)
    if not layers:
        raise NglLinkError("the Neuroglancer state has no layers")
    all_layers = tuple(
        NglLayer(n, str(s.get("type", "")), _source_url(s.get("source"))) for n, s in layers
    )
    images = [
        (n, s) for n, s in layers if s.get("type") == "image" and _source_url(s.get("source"))
    ]
    segs = [
        (n, s) for n, s in layers if s.get("type") in _SEG_TYPES and _source_url(s.get("source"))
    ]
    if not segs:
        raise NglLinkError(
            "the Neuroglancer state has no segmentation layer; imagery-gui needs one "
            f"(layers: {', '.join(n + ' (' + (s.get('type') or '?') + ')' for n, s in layers)})"
        )
    seg_name, seg = next(((n, s) for n, s in segs if s.get("segments")), segs[0])
    seg_source = _source_url(seg.get("source"))
    img_name, img = images[0] if images else (None, None)
    img_source = _source_url(img.get("source")) if img else None
    for src in (seg_source, img_source):
        if src is not None:
            parse_source(src)  # unsupported schemes fail here, with a clear message
    shown, hidden, rejected = _segments(seg)
    colors = {}
    for k, v in (seg.get("segmentColors") or {}).items():
        colors[parse_root_id(str(k))] = _hex_to_rgb(v)
    contrast = None
    if img:
        rng = (img.get("shaderControls") or {}).get("normalized", {})
        if isinstance(rng, dict) and "range" in rng and len(rng["range"]) == 2:
            contrast = (float(rng["range"][0]), float(rng["range"][1]))
    pos = _position(state)
    center = tuple(int(np.floor(v)) for v in pos) if pos is not None else None
    seed = seg.get("colorSeed")
    alpha = seg.get("selectedAlpha")
    other = seg.get("notSelectedAlpha")
    return NglView(
        center=center,  # type: ignore[arg-type]
        resolution=_resolution(state),
        image_source=img_source,
        segmentation_source=seg_source,
        segments=tuple(shown),
        hidden_segments=tuple(hidden),
        segment_colors=colors,
        color_seed=int(seed) & 0xFFFFFFFF if seed is not None else None,
        selected_alpha=float(alpha) if alpha is not None else None,
        not_selected_alpha=float(other) if other is not None else None,
        contrast=contrast,
        cross_section_scale=float(state["crossSectionScale"])
        if "crossSectionScale" in state
        else None,
        image_layer=img_name,
        segmentation_layer=seg_name,
        layers=all_layers,
        state=state,
        rejected_segments=tuple(rejected),
    )


# -- view -> link ----------------------------------------------------------------------------
def make_state(
    *,
    center: Sequence[float],
    resolution: Sequence[float],
    image_source: str | None,
    segmentation_source: str | None,
    segments: Iterable[int] = (),
    segment_colors: dict[int, tuple[int, int, int]] | None = None,
    selected_alpha: float | None = None,
    not_selected_alpha: float | None = None,
    color_seed: int | None = None,
    contrast: tuple[float, float] | None = None,
    nm_per_px: float | None = None,
) -> dict:
    """A Neuroglancer state for a view (voxel centres are at .5 in Neuroglancer)."""
    from .palette import to_hex

    res = [float(r) for r in resolution]
    state: dict[str, Any] = {
        "dimensions": {k: [r * 1e-9, "m"] for k, r in zip("xyz", res)},
        "position": [float(c) + 0.5 for c in center],
        "layout": "xy",
        "layers": [],
    }
    if nm_per_px:
        state["crossSectionScale"] = float(nm_per_px) / res[0]
    if image_source:
        layer: dict[str, Any] = {
            "type": "image",
            "source": redact_url(image_source),
            "name": "image",
        }
        if contrast is not None:
            layer["shaderControls"] = {
                "normalized": {"range": [float(contrast[0]), float(contrast[1])]}
            }
        state["layers"].append(layer)
    if segmentation_source:
        seg: dict[str, Any] = {
            "type": "segmentation",
            "source": redact_url(segmentation_source),
            "name": "segmentation",
            "segments": [str(int(s)) for s in segments],
        }
        if segment_colors:
            seg["segmentColors"] = {str(int(k)): to_hex(v) for k, v in segment_colors.items()}
        if selected_alpha is not None:
            seg["selectedAlpha"] = float(selected_alpha)
        if not_selected_alpha is not None:
            seg["notSelectedAlpha"] = float(not_selected_alpha)
        if color_seed is not None:
            seg["colorSeed"] = int(color_seed) & 0xFFFFFFFF
        state["layers"].append(seg)
        state["selectedLayer"] = {"layer": "segmentation", "visible": True}
    return state


def make_link(state: dict, base_url: str = DEFAULT_NGL_URL) -> str:
    """``base_url/#!{percent-encoded JSON}``, the form Neuroglancer writes itself."""
    text = json.dumps(state, separators=(",", ":"))
    return base_url.rstrip("/") + "/#!" + quote(text, safe="~@#$&()*!+=:;,.?/'")
