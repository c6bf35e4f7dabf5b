"""Segment ids: parsing, and turning a label image into per-id masks.

Ids are ``uint64`` from end to end and never pass through float. Text (fields, JSON,
Neuroglancer states) carries them as decimal strings.
"""

from __future__ import annotations

import copy as _copy
import re
import warnings
import weakref
from collections import OrderedDict
from collections.abc import ItemsView, Iterable, Iterator, ValuesView
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import fastremap
import numpy as np

from .errors import IdWarning, RootIdError

UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1
_SPLIT = re.compile(r"[\s,;]+")


def parse_root_id(value: Any) -> int:
    """One root id as a Python int, exactly.

    Accepts Python / numpy integers and decimal strings (``"864691135012345678"``).
    Floats are refused even when integral: above 2**53 they have already lost digits.
    """
    if isinstance(value, (bool, np.bool_)):
        raise RootIdError(f"root id {value!r} is a boolean, not an integer id")
    if isinstance(value, (int, np.integer)):
        v = int(value)
    elif isinstance(value, str):
        text = value.strip().lstrip("!")  # Neuroglancer marks hidden segments with '!'
        if not re.fullmatch(r"\d+", text):
            raise RootIdError(
                f"root id {value!r} is not an integer; ids are decimal numbers like "
                "864691135012345678"
            )
        v = int(text)
    elif isinstance(value, (float, np.floating)):
        raise RootIdError(
            f"root id {value!r} is a float; pass ids as int or as decimal strings (a float "
            "cannot hold an 18-digit id exactly)"
        )
    else:
        raise RootIdError(f"root id {value!r} is not an integer")
    if v < 0 or v > UINT64_MAX:
        raise RootIdError(f"root id {v} is outside the unsigned 64-bit range")
    return v


def parse_root_ids(values: Any) -> list[int]:
    """A list of root ids from an int, a string of ids or an iterable of either.

    Strings may hold several ids separated by commas, spaces, semicolons or newlines.
    Order is kept and duplicates are dropped.
    """
    if values is None:
        return []
    if isinstance(values, str):
        items: Iterable[Any] = [t for t in _SPLIT.split(values.strip()) if t]
    elif isinstance(values, (int, np.integer)) and not isinstance(values, (bool, np.bool_)):
        items = [values]
    elif isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            raise RootIdError("root ids are floats; pass an integer array (uint64 or int64)")
        items = values.reshape(-1).tolist()
    else:
        try:
            items = list(values)
        except TypeError:
            raise RootIdError(f"root ids must be an id or a list of ids, got {values!r}") from None
    out: list[int] = []
    seen: set[int] = set()
    for item in items:
        if isinstance(item, str) and _SPLIT.search(item.strip()):
            ids = parse_root_ids(item)
        else:
            ids = [parse_root_id(item)]
        for v in ids:
            if v not in seen:
                seen.add(v)
                out.append(v)
    return out


# -- id entry: one parser for every place a user types or pastes ids --------------------------
@dataclass(frozen=True)
class ParsedIds:
    """The ids of a line of text, and each token that was not an id, with the reason.

    ``ids`` keeps the order of the text without duplicates; ``rejected`` is
    ``[(token, reason), ...]`` in the order met.
    """

    ids: tuple[int, ...]
    rejected: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """``'abc' (not a number); '-5' (negative: ...)``, empty when nothing was rejected."""
        return "; ".join(f"{tok!r} ({why})" for tok, why in self.rejected)

    def message(self, what: str = "the ids given") -> str:
        """One line for a user: what was left out and why ('' when nothing was)."""
        if not self.rejected:
            return ""
        n = len(self.rejected)
        if n == 1:
            head = f"ignored 1 entry of {what} that is not a segment id"
        else:
            head = f"ignored {n} entries of {what} that are not segment ids"
        return f"{head}: {self.describe()}"


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def id_token_problem(token: str) -> tuple[int | None, str | None]:
    """``(id, None)`` for a valid id token, else ``(None, reason)``.

    A leading ``!`` (Neuroglancer's mark for a hidden segment) is allowed. 0 is refused:
    it means "no segment" everywhere (the viewer, Neuroglancer, CAVE).
    """
    text = token.strip()
    if text.startswith("!"):
        text = text[1:]
    if re.fullmatch(r"\+?\d+", text):
        v = int(text)
        if v == 0:
            return None, "0 means no segment"
        if v > UINT64_MAX:
            return None, f"too large for a 64-bit id, at most {UINT64_MAX}"
        return v, None
    if re.fullmatch(r"-\d+", text):
        return None, "negative: ids are positive whole numbers"
    if _NUMBER.fullmatch(text):
        return None, "not a whole number: write ids without a decimal point or exponent"
    return None, "not a number"


def parse_ids(values: Any) -> ParsedIds:
    """Every valid id of a line (or of an iterable of lines, ints or numpy ints), and
    every other token with the reason it was left out. Never raises for bad tokens.

    Separators are whitespace, commas and semicolons. Python / numpy integers are checked
    by value; floats are rejected (above 2**53 they have already lost digits).
    """
    if values is None:
        return ParsedIds(())
    if isinstance(values, (str, int, np.integer)) or not isinstance(values, Iterable):
        values = [values]
    elif isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    ids: list[int] = []
    seen: set[int] = set()
    rejected: list[tuple[str, str]] = []

    def keep(v: int) -> None:
        if v not in seen:
            seen.add(v)
            ids.append(v)

    for item in values:
        if isinstance(item, (bool, np.bool_)):
            rejected.append((str(item), "a boolean, not an id"))
        elif isinstance(item, (int, np.integer)):
            v, why = id_token_problem(str(int(item)))
            if v is None:
                rejected.append((str(int(item)), why or ""))
            else:
                keep(v)
        elif isinstance(item, (float, np.floating)):
            rejected.append(
                (repr(float(item)), "a float, which cannot hold an 18-digit id exactly")
            )
        else:
            for tok in _SPLIT.split(str(item).strip()):
                if not tok:
                    continue
                v, why = id_token_problem(tok)
                if v is None:
                    rejected.append((tok, why or ""))
                else:
                    keep(v)
    return ParsedIds(tuple(ids), tuple(rejected))


def entry_notice(
    parsed: ParsedIds, present: Iterable[int] | None = None, where: str = "this view"
) -> str:
    """One line about ids a user typed: each rejected token with its reason, and the
    valid ids that are not among ``present`` (added anyway: they may be elsewhere in the
    volume). '' when there is nothing to say."""
    parts = []
    if parsed.rejected:
        parts.append(parsed.message("the ids typed"))
    if present is not None:
        missing = absent_ids(parsed.ids, present)
        if missing:
            n = len(missing)
            parts.append(
                f"{'1 id is' if n == 1 else f'{n} ids are'} not in {where} "
                f"(added anyway): {_id_list_text(missing)}"
            )
    return "; ".join(parts)


def absent_ids(requested: Iterable[int] | None, present: Iterable[int]) -> list[int]:
    """The requested ids (in their order) that are not among ``present``."""
    if requested is None:
        return []
    have = {int(v) for v in present}
    return [int(v) for v in requested if int(v) not in have]


def _id_list_text(ids: list[int], limit: int = 10) -> str:
    text = ", ".join(str(i) for i in ids[:limit])
    return text + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def warn_absent_ids(
    requested: Iterable[int] | None, present: Iterable[int], where: str
) -> list[int]:
    """Warn (:class:`IdWarning`, one line) about requested ids not in ``where``; returns them."""
    missing = absent_ids(requested, present)
    if missing:
        n = len(missing)
        warnings.warn(
            IdWarning(
                f"{'an id' if n == 1 else f'{n} ids'} asked for {'is' if n == 1 else 'are'} not "
                f"in {where}, so nothing is drawn for {'it' if n == 1 else 'them'}: "
                f"{_id_list_text(missing)} (check the ids, the region and, for graphene, "
                "the timestamp)"
            ),
            stacklevel=2,
        )
    return missing


def unique_ids(labels: np.ndarray, include_zero: bool = False) -> np.ndarray:
    """Sorted unique ids of a label array (``uint64``), without 0 unless asked."""
    ids = fastremap.unique(labels)
    if not include_zero and ids.size and ids[0] == 0:
        ids = ids[1:]
    return ids


def split_masks(
    labels: np.ndarray,
    include_null_root: bool = False,
    ids: Iterable[Any] | None = None,
    dtype: Any = int,
) -> dict[Any, np.ndarray]:
    """One binary mask per id, as ImageryClient's ``segmentation_masks``.

    Keys are numpy scalars of ``labels.dtype`` in ascending order, values ``dtype`` arrays
    (``int`` as ImageryClient) of ``labels.shape`` with 1 inside the segment.

    Work is one pass over the pixels whatever the number of ids: every pixel is scattered
    into its segment's plane of one zero-initialised block, rather than comparing the whole
    image once per id.
    """
    if ids is None:
        keys = unique_ids(labels, include_zero=include_null_root)
    else:
        keys = np.asarray(list(ids), dtype=labels.dtype)
    n = len(keys)
    if n == 0:
        return {}
    flat = labels.reshape(-1)
    # Index of each pixel's id in `keys`, or -1 for ids without a mask (0, or unlisted).
    idx = _index_of(flat, keys)
    block = np.zeros((n, flat.size), dtype=dtype)
    hit = idx >= 0
    block[idx[hit], np.flatnonzero(hit)] = 1
    shape = labels.shape
    return {keys[i]: block[i].reshape(shape) for i in range(n)}


def _index_of(flat: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each value of ``flat`` in sorted-or-not ``keys``; -1 where absent."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    pos = np.searchsorted(sorted_keys, flat)
    pos = np.minimum(pos, len(sorted_keys) - 1)
    found = sorted_keys[pos] == flat
    out = np.where(found, order[pos], -1)
    return out.astype(np.int64, copy=False)


def to_int64_if_safe(labels: np.ndarray, copy: bool = True) -> np.ndarray:
    """ImageryClient's ``convert_to_int64``, with a check that can actually fail.

    Converts to ``int64`` when every id fits (all real root ids do: they are below 2**63);
    otherwise warns and returns the ``uint64`` array unchanged rather than wrapping ids to
    negative numbers. ``copy=False`` returns a view of a ``uint64`` array when it can.
    """
    import warnings

    if labels.dtype == np.int64:
        return labels
    unsigned = np.issubdtype(labels.dtype, np.unsignedinteger)
    if labels.size and unsigned and int(labels.max()) > INT64_MAX:
        warnings.warn(
            "segmentation ids exceed the int64 range; returning uint64 ids unchanged "
            "(pass convert_to_int64=False to silence this)",
            RuntimeWarning,
            stacklevel=3,
        )
        return labels
    if not copy and labels.dtype == np.uint64:
        # Every id fits: the same bits read as int64 (no second full-size array).
        return labels.view(np.int64)
    return labels.astype(np.int64)


# -- split segmentation as a lazy dict -----------------------------------------------------
class _Lazy:
    """Placeholder stored in a :class:`SplitMasks`' own dict slots for masks not built yet.

    Every public way of reading a value goes through ``__getitem__`` and never sees it; it
    has a telling repr in case some C-level path reads the raw slot.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<mask made on access>"

    def __reduce__(self) -> str:
        return "_LAZY"  # unpickles (and copies) as the module's one instance


_LAZY = _Lazy()

#: How many recently read masks a SplitMasks keeps alive (each is a full-frame int array,
#: as large as the label image; one keeps the split cutout within 2x its label image).
_RECENT = 1


class _SplitValues(ValuesView):
    """``values()`` of a :class:`SplitMasks`: masks made one at a time while iterating."""

    __slots__ = ()

    def __reversed__(self) -> Iterator[Any]:
        m = self._mapping  # type: ignore[attr-defined] # abc views' own attribute (untyped)
        for k in reversed(m):
            yield m[k]

    def __repr__(self) -> str:
        return f"dict_values([{', '.join(repr(v) for v in self)}])"

    @property
    def mapping(self) -> MappingProxyType:
        return MappingProxyType(self._mapping)  # type: ignore[attr-defined] # as above


class _SplitItems(ItemsView):
    """``items()`` of a :class:`SplitMasks`: masks made one at a time while iterating."""

    __slots__ = ()

    def __reversed__(self) -> Iterator[tuple[Any, Any]]:
        m = self._mapping  # type: ignore[attr-defined] # abc views' own attribute (untyped)
        for k in reversed(m):
            yield (k, m[k])

    def __repr__(self) -> str:
        return f"dict_items([{', '.join(repr(kv) for kv in self)}])"

    @property
    def mapping(self) -> MappingProxyType:
        return MappingProxyType(self._mapping)  # type: ignore[attr-defined] # as above


class SplitMasks(dict):
    """ImageryClient's dict of per-segment masks, holding the label image once.

    ``split_segmentation_cutout`` and ``image_and_segmentation_cutout(...,
    split_segmentations=True)`` return one. It is a ``dict`` (``isinstance`` holds) with
    ImageryClient's keys in ImageryClient's order, and ``d[k]`` is exactly ImageryClient's
    mask (``(labels == k).astype(int)``: same shape, dtype and values), but the mask is made
    when it is read instead of N full-frame masks up front. The last mask read is kept
    (``d[k] is d[k]``), as is every mask still referenced elsewhere, so a mask changed in
    place stays changed; such a mask, or a value assigned with ``d[k] = v``, is then held as
    an ordinary value. Every dict method (``values``, ``items``, ``get``, ``pop``,
    ``update``, ``copy``, ``|``, ``==``, ``dict(d)``, pickling, ...) behaves as a dict's.

    ``composite_overlay``, the ``save_*`` methods and ``stack_images`` draw from the label
    image directly (:meth:`label_image`) while every value is still its segment's mask.
    """

    __slots__ = ("__weakref__", "_alive", "_dtype", "_labels", "_recent")

    def __init__(self, labels: np.ndarray, keys: Iterable[Any], dtype: Any = int) -> None:
        super().__init__()
        self._labels = labels
        self._dtype = np.dtype(dtype)
        self._recent: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._alive: weakref.WeakValueDictionary[Any, np.ndarray] = weakref.WeakValueDictionary()
        for k in keys:
            dict.__setitem__(self, k, _LAZY)

    @classmethod
    def from_labels(
        cls, labels: np.ndarray, include_null_root: bool = False, dtype: Any = int
    ) -> SplitMasks:
        """Masks of every id of ``labels`` (ascending; 0 only with ``include_null_root``)."""
        keys = unique_ids(labels, include_zero=include_null_root)
        return cls(labels, [keys[i] for i in range(keys.size)], dtype)

    # -- the fast path -------------------------------------------------------------------
    def label_image(self) -> tuple[np.ndarray, list[Any]] | None:
        """``(labels, keys)`` when every value is still the mask of its key in ``labels``.

        ``keys`` is the dict's order (keys deleted since are gone). None once a value was
        assigned or a mask was changed in place: then the values are the truth.
        """
        self._sync()
        if any(v is not _LAZY for v in dict.values(self)):
            return None
        return self._labels, list(dict.keys(self))

    def mask_of(self, key: Any, dtype: Any = None) -> np.ndarray:
        """A fresh mask of ``key`` from the label image (``bool`` is the cheapest)."""
        out = np.equal(self._labels, key)
        dt = self._dtype if dtype is None else np.dtype(dtype)
        return out if dt == np.bool_ else out.astype(dt)

    def _make(self, key: Any) -> np.ndarray:
        mask = self._alive.get(key)
        if mask is None:
            mask = self.mask_of(key)
            self._alive[key] = mask
        self._recent[key] = mask
        self._recent.move_to_end(key)
        while len(self._recent) > _RECENT:
            old_key, old = self._recent.popitem(last=False)
            self._check(old_key, old)
        return mask

    def _check(self, key: Any, mask: np.ndarray) -> None:
        """Keep a mask changed in place as an ordinary value (it no longer is the label's)."""
        if dict.get(self, key, None) is not _LAZY:
            return
        if mask.shape != self._labels.shape or mask.dtype != self._dtype:
            changed = True
        else:
            changed = not np.array_equal(mask, np.equal(self._labels, key))
        if changed:
            dict.__setitem__(self, key, mask)
            self._alive.pop(key, None)

    def _sync(self) -> None:
        """Check every mask that a caller may still change (the recent and referenced ones)."""
        for key, mask in list(self._recent.items()) + list(self._alive.items()):
            self._check(key, mask)

    def _forget(self, key: Any) -> None:
        self._recent.pop(key, None)
        self._alive.pop(key, None)

    # -- reading -------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        v = dict.__getitem__(self, key)
        return self._make(key) if v is _LAZY else v

    # Overriding __iter__ makes CPython's dict(m), {**m}, d.update(m) and friends read
    # through keys() and __getitem__ instead of copying the raw slots.
    def __iter__(self) -> Iterator[Any]:
        return dict.__iter__(self)

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - this is get()

    def values(self) -> _SplitValues:  # type: ignore[override]
        return _SplitValues(self)

    def items(self) -> _SplitItems:  # type: ignore[override]
        return _SplitItems(self)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {self[k]!r}" for k in self) + "}"

    def __eq__(self, other: object) -> bool:
        # A dict's comparison, value by value: masks that are arrays make it raise just as
        # ImageryClient's dict does (the truth value of an array is ambiguous).
        if not isinstance(other, dict):
            return NotImplemented
        if len(self) != len(other):
            return False
        for k in self:
            if k not in other:
                return False
            a, b = self[k], other[k]
            if a is not b and not (a == b):
                return False
        return True

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]

    # -- writing -------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self._forget(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._forget(key)

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            v = self[key]
            del self[key]
            return v
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[Any, Any]:
        if not len(self):
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self))
        return key, self.pop(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self[key] = default
        return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 argument, got {len(args)}")
        if args:
            other = args[0]
            if hasattr(other, "keys"):
                for k in other.keys():  # noqa: SIM118 - dict.update's protocol
                    self[k] = other[k]
            else:
                for k, v in other:
                    self[k] = v
        for k, v in kwargs.items():
            self[k] = v

    def clear(self) -> None:
        dict.clear(self)
        self._recent.clear()
        self._alive.clear()

    def __ior__(self, other: Any) -> SplitMasks:
        self.update(other)
        return self

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        new = self.copy()
        new.update(other)
        return new

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        new = dict(other)
        new.update(self)
        return new

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> dict:  # type: ignore[override]
        return dict.fromkeys(iterable, value)

    # -- copying and pickling ------------------------------------------------------------
    def _slots(self) -> list[tuple[Any, Any]]:
        self._sync()
        return list(dict.items(self))

    @classmethod
    def _rebuild(cls, labels: np.ndarray, dtype: Any, slots: list[tuple[Any, Any]]) -> SplitMasks:
        new = cls(labels, [k for k, _ in slots], dtype)
        for k, v in slots:
            if v is not _LAZY:
                dict.__setitem__(new, k, v)
        return new

    def copy(self) -> SplitMasks:  # type: ignore[override]
        """A shallow copy (shares the label image, which is never written)."""
        return self._rebuild(self._labels, self._dtype, self._slots())

    def __copy__(self) -> SplitMasks:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> SplitMasks:
        slots = _copy.deepcopy(self._slots(), memo)
        return self._rebuild(self._labels.copy(), self._dtype, slots)

    def __reduce__(self) -> Any:
        # Pickles as the label image plus keys: 1x the labels, not N full-frame masks.
        return (_rebuild_split_masks, (self._labels, self._dtype.str, self._slots()))


def _rebuild_split_masks(labels: np.ndarray, dtype: str, slots: list) -> SplitMasks:
    return SplitMasks._rebuild(labels, np.dtype(dtype), slots)
