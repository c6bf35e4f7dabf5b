"""Neuroglancer annotation layers <-> site tables.

Reading (:func:`annotation_layers`): every ``local://annotations`` layer of a state
(points, lines, axis-aligned boxes, ellipsoids; legacy ``pointAnnotation`` layers) becomes
a :class:`~.sites.SiteTable`. A line is pre (``pointA``) -> post (``pointB``), as the
hemibrain and nglui synapse layers draw them. The first relationship's two segment ids
become the pre and post roots (or ``pre_synaptic_cell``/``post_synaptic_cell``
relationships with one id each); every relationship's ids, the named properties
(``annotationProperties``) and the description are kept as properties. Coordinates are
in the layer's own dimensions (``source.transform.outputDimensions``) when it has them,
else the state's, read by dimension name so extra dimensions (time, channel) are ignored.

Writing (:func:`annotation_layer`, :func:`add_annotation_layer`): lines pre->post with
``segments`` [pre root, post root] in one relationship linked to the segmentation layer,
or points; a ``role`` enum property (none/input/output). Coordinates are written as they
are in the table (no half-voxel shift), in the table's resolution, as nglui does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .ngl import _UNIT_NM, NglLinkError, _layers
from .sites import (
    KIND_BOX,
    KIND_ELLIPSOID,
    KIND_LINE,
    KIND_POINT,
    ROLE_INPUT,
    ROLE_NONE,
    ROLE_OUTPUT,
    Resolution,
    SiteSource,
    SiteTable,
    SiteTableError,
    Skipped,
)

_LOCAL = "local://annotations"
_ROLE_LABELS = ("none", "input", "output")
#: Role colours for the Neuroglancer shader (inputs cyan, outputs orange, as the glyphs).
_SHADER = """
void main() {
  uint r = prop_role();
  if (r == 1u) { setColor(vec3(0.0, 0.8, 1.0)); }
  else if (r == 2u) { setColor(vec3(1.0, 0.55, 0.0)); }
  else { setColor(defaultColor()); }
}
""".strip()


def _dims(dims: Any, where: str) -> tuple[Resolution, tuple[int, int, int]] | None:
    """nm per voxel of x, y, z and where they sit in a coordinate vector."""
    if not isinstance(dims, Mapping) or not all(k in dims for k in ("x", "y", "z")):
        return None
    keys = list(dims.keys())
    res: list[float] = []
    for k in ("x", "y", "z"):
        try:
            value, unit = dims[k][0], dims[k][1]
        except (TypeError, IndexError, KeyError):
            raise NglLinkError(f"{where}: dimension {k} is not [scale, unit]") from None
        if unit not in _UNIT_NM:
            raise NglLinkError(f"{where}: unsupported unit {unit!r} for dimension {k}")
        res.append(round(float(value) * _UNIT_NM[unit], 6))
    return (res[0], res[1], res[2]), (keys.index("x"), keys.index("y"), keys.index("z"))


def _local_source(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The layer's ``local://annotations`` source (as a dict), or None if it has none."""
    src = spec.get("source")
    items = src if isinstance(src, list) else [src]
    for s in items:
        if s == _LOCAL:
            return {"url": _LOCAL}
        if isinstance(s, Mapping) and s.get("url") == _LOCAL:
            return s
    if spec.get("type") == "pointAnnotation":  # legacy layers hold their points inline
        return {"url": _LOCAL}
    return None


def _segment_ids(values: Any) -> list[int]:
    out: list[int] = []
    for v in values if isinstance(values, list) else []:
        text = str(v).strip().lstrip("!")
        if text.isdigit():
            out.append(int(text))
    return out


def annotation_layers(
    state: Mapping[str, Any], link: str | None = None
) -> list[tuple[str, SiteTable]]:
    """``(layer name, SiteTable)`` for every local annotation layer of a Neuroglancer state
    that holds at least one annotation. ``link`` is recorded in each table's source."""
    out: list[tuple[str, SiteTable]] = []
    state_dims = _dims(state.get("dimensions"), "the state")
    for name, spec in _layers(dict(state)):
        if spec.get("type") not in ("annotation", "pointAnnotation"):
            continue
        src = _local_source(spec)
        if src is None:
            continue
        transform = src.get("transform") or spec.get("transform") or {}
        dims = (
            _dims(transform.get("outputDimensions"), f"annotation layer {name!r}")
            if isinstance(transform, Mapping)
            else None
        )
        if dims is None:
            dims = state_dims
        if dims is None:
            raise NglLinkError(
                f"annotation layer {name!r}: neither the layer nor the state gives dimensions, "
                "so its coordinates have no unit"
            )
        table = _layer_table(name, spec, dims, link)
        if table is not None:
            out.append((name, table))
    return out


def _layer_table(
    name: str,
    spec: Mapping[str, Any],
    dims: tuple[Resolution, tuple[int, int, int]],
    link: str | None,
) -> SiteTable | None:
    import pandas as pd

    res, axes = dims
    ax = list(axes)
    annotations = spec.get("annotations")
    if spec.get("type") == "pointAnnotation":
        annotations = [{"type": "point", "point": p} for p in spec.get("points") or []]
    if not isinstance(annotations, list) or not annotations:
        return None
    relationships = [str(r) for r in spec.get("annotationRelationships") or ["segments"]]
    prop_specs = [p for p in spec.get("annotationProperties") or [] if isinstance(p, Mapping)]
    prop_ids = [str(p.get("id")) for p in prop_specs]
    role_prop = next(
        (
            i
            for i, p in enumerate(prop_specs)
            if p.get("id") == "role" and p.get("enum_labels") and p.get("enum_values") is not None
        ),
        None,
    )
    n = len(annotations)
    centers = np.full((n, 3), np.nan)
    pre = np.full((n, 3), np.nan)
    post = np.full((n, 3), np.nan)
    boxes = np.full((n, 2, 3), np.nan)
    radii = np.full((n, 3), np.nan)
    pre_root = np.zeros(n, np.uint64)
    post_root = np.zeros(n, np.uint64)
    kinds = np.zeros(n, np.int8)
    roles = np.zeros(n, np.int8)
    ids: list[str] = []
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    keep = np.ones(n, dtype=bool)

    def vec(a: Any) -> npt.NDArray[np.float64]:
        v = np.asarray(a, dtype=np.float64).reshape(-1)
        return v[ax]

    for i, ann in enumerate(annotations):
        ids.append(str(ann.get("id", i)) if isinstance(ann, Mapping) else str(i))
        row: dict[str, Any] = {}
        rows.append(row)
        try:
            if not isinstance(ann, Mapping):
                raise ValueError("not an annotation object")
            kind = ann.get("type", "point")
            if kind == "point":
                centers[i] = vec(ann["point"])
                kinds[i] = KIND_POINT
            elif kind == "line":
                pre[i], post[i] = vec(ann["pointA"]), vec(ann["pointB"])
                centers[i] = (pre[i] + post[i]) / 2
                kinds[i] = KIND_LINE
            elif kind == "axis_aligned_bounding_box":
                a, b = vec(ann["pointA"]), vec(ann["pointB"])
                boxes[i] = np.minimum(a, b), np.maximum(a, b)
                centers[i] = (a + b) / 2
                kinds[i] = KIND_BOX
            elif kind == "ellipsoid":
                centers[i] = vec(ann["center"])
                radii[i] = np.abs(vec(ann["radii"]))
                kinds[i] = KIND_ELLIPSOID
            else:
                raise ValueError(f"{kind} annotations are not sites")
            if not np.isfinite(centers[i]).all():
                raise ValueError("its coordinates are not numbers")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            keep[i] = False
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            skipped.append(Skipped(i, f"annotation {i} ({ids[-1]}): {what}"))
            continue
        segs = ann.get("segments")
        per_rel: list[list[int]] = []
        if isinstance(segs, list) and segs:
            if all(isinstance(s, list) for s in segs):
                per_rel = [_segment_ids(s) for s in segs]
            else:  # older states: one flat list
                per_rel = [_segment_ids(segs)]
        for k, ids_k in enumerate(per_rel):
            rel = relationships[k] if k < len(relationships) else f"relationship_{k}"
            row[f"segments_{rel}" if rel != "segments" else "segments"] = " ".join(map(str, ids_k))
        by_rel = {
            relationships[k] if k < len(relationships) else "": v for k, v in enumerate(per_rel)
        }
        if (
            len(by_rel.get("pre_synaptic_cell", [])) == 1
            and len(by_rel.get("post_synaptic_cell", [])) == 1
        ):
            pre_root[i] = by_rel["pre_synaptic_cell"][0]
            post_root[i] = by_rel["post_synaptic_cell"][0]
        elif per_rel and len(per_rel[0]) == 2:
            pre_root[i], post_root[i] = per_rel[0]
        elif per_rel and len(per_rel[0]) == 1 and kinds[i] == KIND_POINT:
            pre_root[i] = per_rel[0][0]  # a point on one cell: that cell, shown as the pre
        values = ann.get("props")
        if isinstance(values, list):
            for pid, value in zip(prop_ids, values):
                row[pid] = value
            if role_prop is not None and role_prop < len(values):
                spec_r = prop_specs[role_prop]
                labels = dict(zip(spec_r["enum_values"], spec_r["enum_labels"]))
                label = str(labels.get(values[role_prop], "")).lower()
                roles[i] = {"input": ROLE_INPUT, "output": ROLE_OUTPUT}.get(label, ROLE_NONE)
        if ann.get("description"):
            row["description"] = str(ann["description"])
    if not keep.any():
        raise SiteTableError(
            f"annotation layer {name!r}: none of its {n} annotations is a site ("
            + "; ".join(s.reason for s in skipped[:3])
            + ")"
        )
    idx = np.flatnonzero(keep)
    props_df = pd.DataFrame([rows[i] for i in idx])
    if "role" in props_df.columns and role_prop is not None:
        props_df = props_df.drop(columns=["role"])
    ctr_cols = ["ctr_x", "ctr_y", "ctr_z"]
    if all(c in props_df.columns for c in ctr_cols):  # written by annotation_layer
        ctr = props_df[ctr_cols].to_numpy(dtype=np.float64)
        lines = (kinds[idx] == KIND_LINE) & np.isfinite(ctr).all(axis=1)
        sub = centers[idx]
        sub[lines] = ctr[lines]
        centers[idx] = sub
        props_df = props_df.drop(columns=ctr_cols)
    site_ids: npt.NDArray[Any] = np.asarray([ids[i] for i in idx], dtype=object)
    if all(v.isdigit() and int(v) < 2**63 for v in site_ids):
        site_ids = site_ids.astype(np.int64)
    warnings = (
        [f"{len(skipped)} of {n} annotations skipped (first: {skipped[0].reason})"]
        if skipped
        else []
    )
    return SiteTable(
        centers=centers[idx],
        resolution=res,
        resolution_from="the Neuroglancer layer's dimensions",
        source=SiteSource("link", path=link, layer=name),
        ids=site_ids,
        pre=pre[idx],
        post=post[idx],
        pre_root=pre_root[idx],
        post_root=post_root[idx],
        role_codes=roles[idx],
        kind_codes=kinds[idx],
        boxes=boxes[idx],
        radii=radii[idx],
        props=props_df if len(props_df.columns) else None,
        skipped=skipped,
        warnings=warnings,
    )


def _coords(a: npt.NDArray[np.float64]) -> list[float]:
    return [float(v) for v in a]


def annotation_layer(
    table: SiteTable,
    name: str = "sites",
    linked_segmentation: str | None = "segmentation",
    indices: Sequence[int] | npt.NDArray[np.integer[Any]] | None = None,
    color: str = "#ffff00",
) -> dict[str, Any]:
    """A Neuroglancer ``local://annotations`` layer (JSON) holding the table's sites.

    Sites with pre and post points become lines pre->post with ``segments`` [pre root,
    post root] (one ``segments`` relationship linked to ``linked_segmentation``); boxes and
    ellipsoids stay themselves; others are points. ``indices`` picks the rows (Neuroglancer
    slows down past a few thousand annotations, so a link may carry a subset)."""
    idx = np.arange(len(table)) if indices is None else np.asarray(indices, dtype=np.intp)
    pre_post = table.has_pre_post
    anns: list[dict[str, Any]] = []
    for i in idx:
        i = int(i)
        kind = int(table.kind_codes[i])
        ann: dict[str, Any] = {"id": str(table.id_of(i))}
        if kind == KIND_BOX and np.isfinite(table.boxes[i]).all():
            ann.update(
                type="axis_aligned_bounding_box",
                pointA=_coords(table.boxes[i, 0]),
                pointB=_coords(table.boxes[i, 1]),
            )
        elif kind == KIND_ELLIPSOID and np.isfinite(table.radii[i]).all():
            ann.update(
                type="ellipsoid", center=_coords(table.centers[i]), radii=_coords(table.radii[i])
            )
        elif pre_post[i]:
            ann.update(type="line", pointA=_coords(table.pre[i]), pointB=_coords(table.post[i]))
        else:
            ann.update(type="point", point=_coords(table.centers[i]))
        roots = [int(r) for r in (table.pre_root[i], table.post_root[i]) if int(r)]
        if linked_segmentation and roots:
            ann["segments"] = [[str(r) for r in roots]]
        # The centre of a line (CAVE's ctr_pt, the cleft) is not its midpoint: kept as props.
        centre = table.centers[i] if ann["type"] == "line" else np.full(3, np.nan)
        ann["props"] = [int(table.role_codes[i])] + [
            float(v) if np.isfinite(v) else 0.0 for v in centre
        ]
        role = _ROLE_LABELS[int(table.role_codes[i])]
        if role != "none":
            ann["description"] = role
        anns.append(ann)
    res = table.resolution
    layer: dict[str, Any] = {
        "type": "annotation",
        "name": name,
        "source": {
            "url": _LOCAL,
            "transform": {"outputDimensions": {k: [r * 1e-9, "m"] for k, r in zip("xyz", res)}},
        },
        "annotationColor": color,
        "annotationProperties": [
            {
                "id": "role",
                "type": "uint8",
                "default": 0,
                "enum_values": [0, 1, 2],
                "enum_labels": list(_ROLE_LABELS),
            },
            *(
                {"id": f"ctr_{a}", "type": "float32", "description": f"site centre {a} (lines)"}
                for a in "xyz"
            ),
        ],
        "shader": _SHADER,
        "annotations": anns,
    }
    if linked_segmentation:
        layer["annotationRelationships"] = ["segments"]
        layer["linkedSegmentationLayer"] = {"segments": linked_segmentation}
    return layer


def add_annotation_layer(
    state: dict[str, Any],
    table: SiteTable,
    name: str = "sites",
    indices: Sequence[int] | npt.NDArray[np.integer[Any]] | None = None,
) -> dict[str, Any]:
    """``state`` with the sites appended as an annotation layer linked to the state's
    segmentation layer (the first one; none: no relationship). Returns ``state``."""
    layers = state.setdefault("layers", [])
    seg = next(
        (
            str(layer.get("name"))
            for layer in layers
            if isinstance(layer, dict)
            and layer.get("type") in ("segmentation", "segmentation_with_graph")
        ),
        None,
    )
    taken = {layer.get("name") for layer in layers if isinstance(layer, dict)}
    unique, k = name, 2
    while unique in taken:
        unique, k = f"{name} {k}", k + 1
    layers.append(annotation_layer(table, unique, linked_segmentation=seg, indices=indices))
    return state


def sites_from_link(state: Mapping[str, Any] | None, link: str | None = None) -> SiteTable | None:
    """The site table of a link's annotation layers (all of them, joined), or None."""
    if not state:
        return None
    layers = annotation_layers(state, link)
    if not layers:
        return None
    if len(layers) == 1:
        return layers[0][1]
    from .sites import concatenate

    return concatenate([t for _, t in layers])
