"""Segment ids: parsing, and turning a label image into per-id masks.

Ids are ``uint64`` from end to end and never pass through float. Text (fields, JSON,
Neuroglancer states) carries them as decimal strings.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
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


def to_int64_if_safe(labels: np.ndarray) -> np.ndarray:
    """ImageryClient's ``convert_to_int64``, with a check that can actually fail.

    Converts to ``int64`` when every id fits (all real root ids do: they are below 2**63);
    otherwise warns and returns the ``uint64`` array unchanged rather than wrapping ids to
    negative numbers.
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
    return labels.astype(np.int64)
