"""Segment ids: parsing, and turning a label image into per-id masks.

Ids are ``uint64`` from end to end and never pass through float. Text (fields, JSON,
Neuroglancer states) carries them as decimal strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import fastremap
import numpy as np

from .errors import RootIdError

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
