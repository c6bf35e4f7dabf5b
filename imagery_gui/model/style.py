"""The one style object and the one validation of style values.

:class:`OverlayStyle` is everything that decides how segments are drawn over the EM: how
opaque selected and unselected segments are, whether unselected ones are drawn at all,
fill or outline, outline width / side / merge, the palette, Neuroglancer's colour seed and
the colouring rule. The viewer, File > Export, ``imagery-gui export``, Neuroglancer links
and provenance files all use it, so they cannot disagree about a style.

Every value from a widget, the command line, a settings file or a link goes through
:func:`validate_style`. *Strict* validation (a user's deliberate input) refuses a bad value
with a :class:`StyleError` that says what is allowed; *lenient* validation (settings files,
links) clamps or drops it and reports a warning. Either way a style object is never
half-applied, and an ``OverlayStyle`` that exists is valid.

:class:`Selection` is the selected ids in order, with the colours the user chose for some
of them. Ids are Python ints (exact above 2**53) and cross JSON as decimal strings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ImageryGuiError

RGB = tuple[int, int, int]

#: Outline widths the viewer's control offers and every front end accepts.
WIDTH_MIN, WIDTH_MAX = 1, 100
SEED_MAX = 2**32 - 1  # Neuroglancer's colorSeed is a uint32
SIDES = ("in", "out")
#: "id": a colour depends only on the id (a segment keeps its colour whatever else is
#: shown: the viewer's and the exporter's rule). "order": ImageryClient's rule, colours
#: handed out in the order of the drawn segments (``composite_overlay``'s result).
COLOR_RULES = ("id", "order")
NEUROGLANCER = "neuroglancer"


class StyleError(ImageryGuiError, ValueError):
    """A style value that cannot be used (the message says what is allowed)."""


@dataclass(frozen=True, slots=True)
class OverlayStyle:
    """How segments are drawn. Valid by construction (see :func:`validate_style`).

    ``alpha`` is the opacity of segments that are not selected (Neuroglancer's
    ``notSelectedAlpha`` when ``show_unselected``), ``selected_alpha`` that of selected
    ones (Neuroglancer's ``selectedAlpha``). With ``show_unselected`` False only selected
    segments are drawn.
    """

    alpha: float = 0.2
    selected_alpha: float = 0.6
    show_unselected: bool = True
    outline: bool = False
    width: int = 3
    side: str = "in"
    merge_outline: bool = False
    overlap: bool = True
    palette: str = "husl"
    color_seed: int = 0
    color_by: str = "id"

    def __post_init__(self) -> None:
        good, problems = _check(dataclasses.asdict(self), strict=True, base=None)
        if problems:  # pragma: no cover - _check raises first in strict mode
            raise StyleError("; ".join(problems))
        # store what was checked: "0.5" or 3.0 pass as numbers, but the fields are a
        # float and an int (a str alpha would fail later, in numpy)
        for name, value in good.items():
            if type(value) is not type(getattr(self, name)):
                object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> OverlayStyle:
        """A copy with ``changes`` applied; a bad value raises :class:`StyleError`."""
        return validate_style(changes, base=self, strict=True)[0]

    def geometry(self) -> Any:
        """The render geometry (which pixels are coloured)."""
        from .render import Geometry

        return Geometry(
            outline=self.outline,
            width=int(self.width),
            side=self.side,
            merge_outline=self.merge_outline,
            overlap=self.overlap,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], base: OverlayStyle | None = None
    ) -> tuple[OverlayStyle, list[str]]:
        """Lenient: a style from stored values (settings), with what had to be changed."""
        return validate_style(values, base=base or cls(), strict=False)


_FIELDS = tuple(f.name for f in dataclasses.fields(OverlayStyle))


def _number(name: str, value: Any, lo: float, hi: float, strict: bool, integer: bool) -> Any:
    """``(value, problem)``: the value within [lo, hi], or why it is not usable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None, f"{name} must be a number, got {value!r}"
        else:
            return None, f"{name} must be a number, got {value!r}"
    v = float(value)
    if not math.isfinite(v):
        return None, f"{name} must be a finite number, got {value!r}"
    kind = "a whole number" if integer else "a number"
    bounds = f"{_num(lo)} to {_num(hi)}"
    rounded = None
    if integer and v != int(v):
        if strict:
            return None, f"{name} must be {kind} from {bounds}, got {value!r}"
        v = float(round(v))
        rounded = f"{name} {value!r} is not a whole number; using {_num(v)}"
    if not lo <= v <= hi:
        if strict:
            return None, f"{name} must be {kind} from {bounds}, got {value!r}"
        clamped = min(max(v, lo), hi)
        return (int(clamped) if integer else clamped), (
            f"{name} {value!r} is outside {bounds}; using {_num(clamped)}"
        )
    return (int(v) if integer else v), rounded


def _num(v: float) -> str:
    """A bound or value as written (4294967295, not 4.29497e+09)."""
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _check(
    values: Mapping[str, Any], strict: bool, base: OverlayStyle | None
) -> tuple[dict[str, Any], list[str]]:
    """Validated values and the warnings (lenient), or StyleError (strict)."""
    out: dict[str, Any] = {}
    problems: list[str] = []

    def refuse(message: str) -> None:
        if strict:
            raise StyleError(message)
        problems.append(message + "; keeping " + _kept(name, base))

    for name, value in values.items():
        if name not in _FIELDS:
            if strict:
                raise StyleError(f"unknown style setting {name!r} (known: {', '.join(_FIELDS)})")
            problems.append(f"unknown style setting {name!r} ignored")
            continue
        if name in ("alpha", "selected_alpha"):
            v, problem = _number(name.replace("_", " "), value, 0.0, 1.0, strict, False)
        elif name == "width":
            v, problem = _number("outline width", value, WIDTH_MIN, WIDTH_MAX, strict, True)
        elif name == "color_seed":
            v, problem = _number("colour seed", value, 0, SEED_MAX, strict, True)
        elif name in ("show_unselected", "outline", "merge_outline", "overlap"):
            v, problem = (value, None) if isinstance(value, bool) else (None, "")
            if problem is not None:
                problem = f"{name.replace('_', ' ')} must be true or false, got {value!r}"
        elif name == "side":
            ok = isinstance(value, str) and value in SIDES
            v, problem = (
                (value, None)
                if ok
                else (None, f"outline side must be 'in' or 'out', got {value!r}")
            )
        elif name == "color_by":
            ok = isinstance(value, str) and value in COLOR_RULES
            v, problem = (
                (value, None)
                if ok
                else (None, f"colour rule must be 'id' or 'order', got {value!r}")
            )
        else:  # palette
            v, problem = _palette(value)
        if problem is not None and v is None:
            refuse(problem)
            continue
        if problem:
            if strict:  # pragma: no cover - _number returns no clamped value when strict
                raise StyleError(problem)
            problems.append(problem)
        out[name] = v
    return out, problems


def _kept(name: str, base: OverlayStyle | None) -> str:
    if base is None:
        return "the default"
    return repr(getattr(base, name))


def _palette(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not value.strip():
        return None, f"palette must be a palette name, got {value!r}"
    name = value.strip()
    if name == NEUROGLANCER:
        return name, None
    from .palette import check_palette

    try:
        check_palette(name)
    except ValueError as exc:
        return None, str(exc)
    return name, None


def validate_style(
    values: Mapping[str, Any], base: OverlayStyle | None = None, *, strict: bool
) -> tuple[OverlayStyle, list[str]]:
    """``base`` with ``values`` applied, and the warnings.

    ``strict``: any bad value raises :class:`StyleError` and nothing is applied.
    Lenient: out-of-range numbers are clamped, unusable values keep ``base``'s, unknown
    names are dropped; each is a warning.
    """
    base = base if base is not None else OverlayStyle()
    good, problems = _check(values, strict, base)
    # construction re-checks: fields are only ever set through this function
    return dataclasses.replace(base, **good), problems


@dataclass(frozen=True, slots=True)
class Selection:
    """Selected ids in selection order, with the colours the user chose for some."""

    ids: tuple[int, ...] = ()
    colors: tuple[tuple[int, RGB], ...] = ()

    @classmethod
    def of(cls, ids: Iterable[int], colors: Mapping[int, RGB] | None = None) -> Selection:
        order = list(dict.fromkeys(int(i) for i in ids if int(i) != 0))
        given = {int(k): _rgb(v) for k, v in (colors or {}).items()}
        return cls(tuple(order), tuple((i, given[i]) for i in order if i in given))

    @property
    def explicit(self) -> dict[int, RGB]:
        return dict(self.colors)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, sid: object) -> bool:
        return isinstance(sid, int) and sid in self.ids

    def add(self, ids: Iterable[int]) -> Selection:
        return Selection.of([*self.ids, *ids], self.explicit)

    def remove(self, ids: Iterable[int]) -> Selection:
        gone = {int(i) for i in ids}
        return Selection.of([i for i in self.ids if i not in gone], self.explicit)

    def toggle(self, sid: int) -> Selection:
        return self.remove([sid]) if sid in self.ids else self.add([sid])

    def with_color(self, sid: int, rgb: RGB | None) -> Selection:
        colors = self.explicit
        if rgb is None:
            colors.pop(int(sid), None)
        else:
            colors[int(sid)] = _rgb(rgb)
        return Selection.of(self.ids, colors)

    def replaced(self, successors: Mapping[int, Iterable[int]]) -> Selection:
        """Each id replaced by its successors (keeping order and chosen colours)."""
        ids: list[int] = []
        colors: dict[int, RGB] = {}
        explicit = self.explicit
        for i in self.ids:
            for new in successors.get(i, [i]):
                ids.append(int(new))
                if i in explicit:
                    colors.setdefault(int(new), explicit[i])
        return Selection.of(ids, colors)

    def to_dict(self) -> dict[str, Any]:
        from .palette import to_hex

        return {
            "ids": [str(i) for i in self.ids],
            "colors": {str(k): to_hex(v) for k, v in self.colors},
        }


def _rgb(value: Any) -> RGB:
    r, g, b = (int(c) for c in value)
    for c in (r, g, b):
        if not 0 <= c <= 255:
            raise StyleError(f"colour components must be 0-255, got {tuple(value)!r}")
    return (r, g, b)
