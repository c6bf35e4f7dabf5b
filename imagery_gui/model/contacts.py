"""Synthetic synapses: contacts between touching cells of a label volume.

Used to give the demo volume a synapse table (and the test CAVE server one), with the
columns and the shape of a CAVE ``synapse_query`` result: a centre at the contact, a pre
point inside the pre cell and a post point inside the post cell on either side of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Labels = npt.NDArray[np.uint64]
#: ``pre_side(a, b)`` for touching labels a (lower coordinate) and b: +1 if a is the
#: pre cell, -1 if b is, 0 to skip the contact.
PreSide = Callable[[Labels, Labels], npt.NDArray[np.int8]]


def touching_contacts(
    labels: Labels,
    *,
    max_sites: int,
    seed: int,
    pre_side: PreSide | None = None,
    depth: int = 6,
    z_spacing: int = 4,
) -> dict[str, npt.NDArray[Any]]:
    """Contacts between touching non-zero labels of an (x, y, z) volume, in its voxels.

    Candidate contacts are pairs of neighbouring voxels (along x or y) with different
    non-zero labels; at most one contact per cell pair and ``z_spacing`` sections is kept,
    drawn deterministically from ``seed``. The pre and post points are up to ``depth``
    voxels into each cell along the contact's normal, every voxel on the way inside that
    cell. Returns arrays ``pre_root``, ``post_root`` (uint64), ``pre``, ``post`` and
    ``boundary`` ((n, 3) int64 voxel indices; boundary is the pre-side voxel at the
    contact) and ``axis``/``direction`` (the normal; direction +1 when the post cell
    lies at higher coordinates).
    """
    lab = np.asarray(labels, dtype=np.uint64)
    rng = np.random.default_rng(seed)
    cands: list[npt.NDArray[np.int64]] = []  # rows: x, y, z, axis, direction
    for axis in (0, 1):
        a = np.take(lab, np.arange(lab.shape[axis] - 1), axis=axis)
        b = np.take(lab, np.arange(1, lab.shape[axis]), axis=axis)
        touch = (a != b) & (a > 0) & (b > 0)
        pos = np.argwhere(touch)
        if not len(pos):
            continue
        av, bv = a[touch], b[touch]
        side = (
            pre_side(av, bv)
            if pre_side is not None
            else np.where(rng.random(len(av)) < 0.5, 1, -1).astype(np.int8)
        )
        keep = side != 0
        pos, side = pos[keep], side[keep]
        # The pre-side voxel: the lower one when a is pre (direction +1), else the upper.
        pre_vox = pos.copy()
        pre_vox[side < 0, axis] += 1
        cands.append(
            np.column_stack([pre_vox, np.full(len(pos), axis), side.astype(np.int64)]).astype(
                np.int64
            )
        )
    if not cands:
        return _empty()
    c = np.concatenate(cands)
    c = c[rng.permutation(len(c))]
    pre_vox = c[:, :3]
    axis_ = c[:, 3]
    direction = c[:, 4]
    step = np.zeros((len(c), 3), dtype=np.int64)
    step[np.arange(len(c)), axis_] = direction
    pre_root = lab[tuple(pre_vox.T)]
    post_root = lab[tuple((pre_vox + step).T)]
    # One contact per cell pair and band of sections.
    key = np.column_stack(
        [
            pre_root.astype(np.uint64),
            post_root.astype(np.uint64),
            (pre_vox[:, 2] // z_spacing).astype(np.uint64),
        ]
    )
    _, first = np.unique(key, axis=0, return_index=True)
    first = np.sort(first)[:max_sites]
    pre_vox, step, axis_, direction = pre_vox[first], step[first], axis_[first], direction[first]
    pre_root, post_root = pre_root[first], post_root[first]
    shape = np.asarray(lab.shape)

    def walk(
        start: npt.NDArray[np.int64], d: npt.NDArray[np.int64], cell: Labels
    ) -> npt.NDArray[np.int64]:
        """The farthest voxel up to ``depth`` steps along d with every voxel in ``cell``."""
        out = start.copy()
        ok = np.ones(len(start), dtype=bool)
        for k in range(1, depth + 1):
            p = start + k * d
            inside = np.asarray((p >= 0).all(axis=1) & (p < shape).all(axis=1), dtype=bool)
            q = np.where(inside[:, None], p, 0)
            ok &= inside & (lab[tuple(q.T)] == cell)
            out[ok] = p[ok]
        return out

    pre = walk(pre_vox, -step, pre_root)
    post = walk(pre_vox + step, step, post_root)
    order = np.lexsort((pre_vox[:, 0], pre_vox[:, 1], pre_vox[:, 2]))
    return {
        "pre_root": pre_root[order].astype(np.uint64),
        "post_root": post_root[order].astype(np.uint64),
        "pre": pre[order],
        "post": post[order],
        "boundary": pre_vox[order],
        "axis": axis_[order],
        "direction": direction[order],
    }


def _empty() -> dict[str, npt.NDArray[Any]]:
    z3 = np.zeros((0, 3), dtype=np.int64)
    z1 = np.zeros(0, dtype=np.int64)
    u = np.zeros(0, dtype=np.uint64)
    return {
        "pre_root": u,
        "post_root": u,
        "pre": z3,
        "post": z3,
        "boundary": z3,
        "axis": z1,
        "direction": z1,
    }


def synapse_frame(
    contacts: dict[str, npt.NDArray[Any]],
    *,
    label_offset: Sequence[int],
    factor: Sequence[int],
    first_id: int,
    seed: int,
) -> Any:
    """A CAVE-shaped synapse DataFrame (``id, valid, pre_pt_root_id, post_pt_root_id, size,
    pre_pt_position, post_pt_position, ctr_pt_position`` as int arrays) from contacts.

    Positions are in voxels ``factor`` times finer than the labels' (e.g. 2, 2, 1 for
    4x4x40 nm points on 8x8x40 nm labels), ``label_offset`` the labels' voxel offset: a
    point ``p`` lies in label voxel ``p // factor - label_offset``. The centre is the
    finer voxel on the pre side touching the contact."""
    import pandas as pd

    f = np.asarray(factor, dtype=np.int64)
    off = np.asarray(label_offset, dtype=np.int64)
    n = len(contacts["pre_root"])
    rng = np.random.default_rng(seed)

    def fine(v: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return (v + off) * f

    ctr = fine(contacts["boundary"])
    last = (f - 1)[contacts["axis"]]  # the pre voxel's last finer voxel toward the contact
    upper = contacts["direction"] > 0
    ctr[np.arange(n)[upper], contacts["axis"][upper]] += last[upper]
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "valid": np.ones(n, dtype=bool),
            "pre_pt_root_id": contacts["pre_root"].astype(np.int64),
            "post_pt_root_id": contacts["post_root"].astype(np.int64),
            "size": rng.integers(40, 2400, n),
            "pre_pt_position": list(fine(contacts["pre"])),
            "post_pt_position": list(fine(contacts["post"])),
            "ctr_pt_position": list(ctr),
        }
    )
