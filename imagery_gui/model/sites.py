"""Sites: synapses and annotations as a table you can walk through (Qt-free).

A *site* is a point of interest with optional partners: an id, a centre, optional pre
and post points, optional pre/post root and supervoxel ids, a role relative to a neuron
of interest (input/output) and every other column as a property. A :class:`SiteTable`
holds many of them column-wise in numpy arrays (50,000-500,000 rows stay cheap) with the
resolution of its coordinates and where they came from (:class:`SiteSource`).

:func:`read_sites` reads what users actually have: CAVE ``synapse_query`` frames and the
same saved with ``to_csv`` (positions as ``[5375 3437  156]`` strings), split
``_x/_y/_z`` columns, Parquet and Feather dumps, plain ``x, y, z`` columns, CAVE's cell
tables (``pt_position``, ``pt_root_id``), FlyWire's and neuPrint's synapse tables. The
resolution is the explicit argument, else the table's metadata (caveclient's
``attrs["dataframe_resolution"]``, kept by ``to_parquet``; schema metadata), else the
viewer's; the table always says which one it used (:attr:`SiteTable.resolution_from`).

Neuroglancer annotation layers are in :mod:`.sites_ngl`, CAVE queries in :mod:`.sites_cave`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import ImageryGuiError

Point = tuple[float, float, float]
Resolution = tuple[float, float, float]
FloatArray = npt.NDArray[np.float64]
IdArray = npt.NDArray[np.uint64]
CodeArray = npt.NDArray[np.int8]
IndexArray = npt.NDArray[np.intp]

#: Role codes (``SiteTable.role_codes``); the renderer colours by these.
ROLE_NONE, ROLE_INPUT, ROLE_OUTPUT = 0, 1, 2
ROLES: tuple[str | None, ...] = (None, "input", "output")
#: Kind codes (``SiteTable.kind_codes``).
KIND_POINT, KIND_LINE, KIND_BOX, KIND_ELLIPSOID = 0, 1, 2, 3
KINDS: tuple[str, ...] = ("point", "line", "box", "ellipsoid")

POSITION_NAMES = ("ctr_pt_position", "pre_pt_position", "post_pt_position")
_CENTRE_NAMES = ("ctr_pt_position", "pt_position", "position", "center", "centre")
_ID_COLUMNS = (
    "pre_pt_root_id",
    "post_pt_root_id",
    "pre_pt_supervoxel_id",
    "post_pt_supervoxel_id",
)
#: Other names tables give the pre and post points: FlyWire's and fafbseg's (``pre_x``...,
#: in nm), neuPrint's (``x_pre``..., in 8 nm voxels).
_POINT_ALIASES = {
    "pre_pt_position": (("pre_x", "pre_y", "pre_z"), ("x_pre", "y_pre", "z_pre")),
    "post_pt_position": (("post_x", "post_y", "post_z"), ("x_post", "y_post", "z_post")),
}
#: Other names of the id columns, taken when the CAVE name is absent and every value is an
#: integer (else the column stays a property): fafbseg's ``pre``/``post`` root ids,
#: neuPrint's body ids, and the one root and supervoxel of a point on one cell (CAVE's
#: cell and nucleus tables: ``pt_root_id``), which, as for a Neuroglancer point on one
#: segment, is the site's pre root.
_ID_ALIASES = {
    "pre_pt_root_id": ("pre_root_id", "pre_root", "pre", "bodyId_pre", "pt_root_id"),
    "post_pt_root_id": ("post_root_id", "post_root", "post", "bodyId_post"),
    "pre_pt_supervoxel_id": ("pre_supervoxel_id", "pt_supervoxel_id"),
    "post_pt_supervoxel_id": ("post_supervoxel_id",),
}
# Columns that hold 64-bit ids: read as text so 18-digit ids stay exact (never via float).
_EXACT_ID = re.compile(r"(^|_)(root_id|supervoxel_id|segment_id|root|id)$")


class SiteTableError(ImageryGuiError, ValueError):
    """A site table that cannot be used: the message names the column or row."""


@dataclass(frozen=True)
class Site:
    """One site (a row of a :class:`SiteTable`), coordinates in the table's resolution."""

    id: int | str
    center: Point
    pre: Point | None = None
    post: Point | None = None
    pre_root: int | None = None
    post_root: int | None = None
    pre_sv: int | None = None
    post_sv: int | None = None
    role: str | None = None
    kind: str = "point"
    box: tuple[Point, Point] | None = None  # (lo, hi) corners for boxes
    radii: Point | None = None  # for ellipsoids
    props: Mapping[str, Any] = field(default_factory=dict)

    @property
    def partner(self) -> int | None:
        """The other cell: the pre root of an input, the post root of an output."""
        if self.role == "input":
            return self.pre_root
        if self.role == "output":
            return self.post_root
        return None


@dataclass(frozen=True)
class SiteSource:
    """Where a site table came from, for provenance and the dock's title.

    ``kind`` is ``"file"`` (``path``), ``"frame"`` (a DataFrame given from Python),
    ``"cave"`` (``datastack``, ``table``, ``version``, ``timestamp``, ``query``) or
    ``"link"`` (a Neuroglancer annotation ``layer``, ``path`` the link or file if known).
    """

    kind: str
    path: str | None = None
    datastack: str | None = None
    table: str | None = None
    version: int | None = None
    timestamp: str | None = None  # ISO 8601, UTC
    query: Mapping[str, Any] | None = None
    layer: str | None = None

    def describe(self) -> str:
        if self.kind == "cave":
            when = (
                f"version {self.version}"
                if self.version is not None
                else f"at {self.timestamp}"
                if self.timestamp
                else "latest"
            )
            return f"CAVE {self.datastack}/{self.table} ({when})"
        if self.kind == "link":
            return f"Neuroglancer layer {self.layer!r}" + (f" of {self.path}" if self.path else "")
        return self.path or "a table given from Python"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("path", "datastack", "table", "version", "timestamp", "layer"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.query is not None:
            out["query"] = dict(self.query)
        return out


@dataclass(frozen=True)
class Skipped:
    """A row that was left out, with why (``row`` counts data rows from 0)."""

    row: int
    reason: str


def _opt_points(a: FloatArray | None, n: int) -> FloatArray:
    if a is None:
        return np.full((n, 3), np.nan)
    out = np.asarray(a, dtype=np.float64).reshape(n, 3)
    return out


def _opt_ids(a: Any, n: int) -> IdArray:
    if a is None:
        return np.zeros(n, dtype=np.uint64)
    return np.asarray(a, dtype=np.uint64).reshape(n)


def _res3(values: Any, what: str) -> Resolution:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise SiteTableError(f"{what} {values!r} is not three numbers (nm per voxel)") from None
    if len(out) != 3 or not all(np.isfinite(v) and v > 0 for v in out):
        raise SiteTableError(f"{what} {values!r} is not three positive numbers (nm per voxel)")
    return out[0], out[1], out[2]


class SiteTable:
    """Sites held column-wise: ``centers`` (n, 3), ``pre``/``post`` (n, 3, NaN = absent),
    ``pre_root``/``post_root``/``pre_sv``/``post_sv`` (uint64, 0 = absent), ``role_codes``
    and ``kind_codes`` (int8), ``ids`` (int64/uint64, or str for Neuroglancer ids),
    ``boxes`` (n, 2, 3: lo, hi; NaN unless a box), ``radii`` (n, 3; NaN unless an
    ellipsoid), ``props`` (a pandas DataFrame with one row per site, or None).

    Coordinates are in voxels of :attr:`resolution` (nm per voxel); :attr:`resolution_from`
    says where that resolution came from; :attr:`skipped` lists rows left out.
    """

    def __init__(
        self,
        *,
        centers: Any,
        resolution: Sequence[float],
        resolution_from: str,
        source: SiteSource,
        ids: Any = None,
        pre: Any = None,
        post: Any = None,
        pre_root: Any = None,
        post_root: Any = None,
        pre_sv: Any = None,
        post_sv: Any = None,
        role_codes: Any = None,
        kind_codes: Any = None,
        boxes: Any = None,
        radii: Any = None,
        props: Any = None,
        skipped: Iterable[Skipped] = (),
        warnings: Iterable[str] = (),
    ) -> None:
        self.centers: FloatArray = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
        n = len(self.centers)
        self.ids: npt.NDArray[Any] = (
            np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids).reshape(n)
        )
        self.pre: FloatArray = _opt_points(pre, n)
        self.post: FloatArray = _opt_points(post, n)
        self.pre_root: IdArray = _opt_ids(pre_root, n)
        self.post_root: IdArray = _opt_ids(post_root, n)
        self.pre_sv: IdArray = _opt_ids(pre_sv, n)
        self.post_sv: IdArray = _opt_ids(post_sv, n)
        self.role_codes: CodeArray = (
            np.zeros(n, np.int8) if role_codes is None else np.asarray(role_codes, np.int8)
        )
        self.kind_codes: CodeArray = (
            np.zeros(n, np.int8) if kind_codes is None else np.asarray(kind_codes, np.int8)
        )
        self.boxes: FloatArray = (
            np.full((n, 2, 3), np.nan) if boxes is None else np.asarray(boxes, np.float64)
        )
        self.radii: FloatArray = (
            np.full((n, 3), np.nan) if radii is None else np.asarray(radii, np.float64)
        )
        self.props: Any = props
        if props is not None and len(props) != n:
            raise ValueError(f"props has {len(props)} rows for {n} sites")
        self.resolution: Resolution = _res3(resolution, "the resolution")
        self.resolution_from = resolution_from
        self.source = source
        self.skipped: tuple[Skipped, ...] = tuple(skipped)
        self.warnings: tuple[str, ...] = tuple(warnings)
        self._search: Any = None  # lower-case text of every row, built on first filter

    # -- basics ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.centers)

    def __repr__(self) -> str:
        return (
            f"SiteTable({len(self)} sites at {self.resolution} nm ({self.resolution_from}), "
            f"from {self.source.describe()}, {len(self.skipped)} rows skipped)"
        )

    @property
    def has_pre_post(self) -> npt.NDArray[np.bool_]:
        """Rows with both a pre and a post point (drawn as arrows)."""
        return _rows_finite(self.pre) & _rows_finite(self.post)

    @property
    def partners(self) -> IdArray:
        """Per row: the pre root of an input, the post root of an output, else 0."""
        out = np.zeros(len(self), dtype=np.uint64)
        inp = self.role_codes == ROLE_INPUT
        outp = self.role_codes == ROLE_OUTPUT
        out[inp] = self.pre_root[inp]
        out[outp] = self.post_root[outp]
        return out

    @property
    def roles(self) -> list[str | None]:
        return [ROLES[int(c)] for c in self.role_codes]

    def id_of(self, i: int) -> int | str:
        v = self.ids[i]
        return str(v) if isinstance(v, str) else int(v)

    def index_of(self, site_id: int | str) -> int | None:
        """The row of a site id (ids compared as text, so "12" finds 12), or None."""
        text = str(site_id)
        hits = np.flatnonzero(self.ids.astype(str) == text)
        return int(hits[0]) if len(hits) else None

    def site(self, i: int) -> Site:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"site {i} of {len(self)}")

        def pt(a: FloatArray) -> Point | None:
            row = a[i]
            return tuple(float(v) for v in row) if np.isfinite(row).all() else None  # type: ignore[return-value]

        def rid(a: IdArray) -> int | None:
            return int(a[i]) or None

        box = None
        if np.isfinite(self.boxes[i]).all():
            box = (
                tuple(float(v) for v in self.boxes[i, 0]),
                tuple(float(v) for v in self.boxes[i, 1]),
            )
        props: dict[str, Any] = {}
        if self.props is not None:
            props = {str(k): _py(v) for k, v in self.props.iloc[i].items()}
        center = pt(self.centers)
        assert center is not None
        return Site(
            id=self.id_of(i),
            center=center,
            pre=pt(self.pre),
            post=pt(self.post),
            pre_root=rid(self.pre_root),
            post_root=rid(self.post_root),
            pre_sv=rid(self.pre_sv),
            post_sv=rid(self.post_sv),
            role=ROLES[int(self.role_codes[i])],
            kind=KINDS[int(self.kind_codes[i])],
            box=box,  # type: ignore[arg-type]
            radii=pt(self.radii),
            props=props,
        )

    def __iter__(self) -> Any:
        return (self.site(i) for i in range(len(self)))

    # -- derived tables -------------------------------------------------------------------
    def _replace(self, **changes: Any) -> SiteTable:
        args: dict[str, Any] = {
            "centers": self.centers,
            "resolution": self.resolution,
            "resolution_from": self.resolution_from,
            "source": self.source,
            "ids": self.ids,
            "pre": self.pre,
            "post": self.post,
            "pre_root": self.pre_root,
            "post_root": self.post_root,
            "pre_sv": self.pre_sv,
            "post_sv": self.post_sv,
            "role_codes": self.role_codes,
            "kind_codes": self.kind_codes,
            "boxes": self.boxes,
            "radii": self.radii,
            "props": self.props,
            "skipped": self.skipped,
            "warnings": self.warnings,
        }
        args.update(changes)
        return SiteTable(**args)

    def take(self, indices: Sequence[int] | npt.NDArray[np.integer[Any]]) -> SiteTable:
        """A table of the given rows (in that order)."""
        idx = np.asarray(indices, dtype=np.intp)
        props = None if self.props is None else self.props.iloc[idx].reset_index(drop=True)
        return self._replace(
            centers=self.centers[idx],
            ids=self.ids[idx],
            pre=self.pre[idx],
            post=self.post[idx],
            pre_root=self.pre_root[idx],
            post_root=self.post_root[idx],
            pre_sv=self.pre_sv[idx],
            post_sv=self.post_sv[idx],
            role_codes=self.role_codes[idx],
            kind_codes=self.kind_codes[idx],
            boxes=self.boxes[idx],
            radii=self.radii[idx],
            props=props,
        )

    def to_resolution(self, resolution: Sequence[float]) -> SiteTable:
        """The same sites with coordinates rescaled to voxels of ``resolution``."""
        res = _res3(resolution, "the target resolution")
        if res == self.resolution:
            return self
        f = np.asarray(self.resolution) / np.asarray(res)
        return self._replace(
            centers=self.centers * f,
            pre=self.pre * f,
            post=self.post * f,
            boxes=self.boxes * f,
            radii=self.radii * f,
            resolution=res,
            resolution_from=f"rescaled from {self.resolution} ({self.resolution_from})",
        )

    def in_box(
        self,
        lo: Sequence[float],
        hi: Sequence[float],
        resolution: Sequence[float] | None = None,
        rows: IndexArray | None = None,
    ) -> IndexArray:
        """Rows whose centre, pre->post segment or box meets the box ``[lo, hi)``.

        ``lo``/``hi`` are in voxels of ``resolution`` (default: the table's). One
        vectorised pass over the columns; no per-site Python. ``rows``: look only at
        these (ascending; e.g. a :class:`SiteIndex`'s candidates), not the whole table.
        """
        lo_a, hi_a = self.box_voxels(lo, hi, resolution)
        pick = slice(None) if rows is None else np.asarray(rows, dtype=np.intp)
        c, pre, post = self.centers[pick], self.pre[pick], self.post[pick]
        boxes, radii = self.boxes[pick], self.radii[pick]
        hit = np.asarray(((c >= lo_a) & (c < hi_a)).all(axis=1), dtype=bool)
        seg = _rows_finite(pre) & _rows_finite(post) & ~hit
        if seg.any():
            hit[seg] = _segments_meet_box(pre[seg], post[seg], lo_a, hi_a)
        boxed = np.isfinite(boxes).all(axis=(1, 2)) & ~hit
        if boxed.any():
            b = boxes[boxed]
            blo, bhi = b.min(axis=1), b.max(axis=1)
            hit[boxed] = ((blo < hi_a) & (bhi >= lo_a)).all(axis=1)
        ell = np.isfinite(radii).all(axis=1) & ~hit
        if ell.any():  # the ellipsoid's bounding box (a glyph near the edge is still drawn)
            r = np.abs(radii[ell])
            hit[ell] = ((c[ell] - r < hi_a) & (c[ell] + r >= lo_a)).all(axis=1)
        found = np.flatnonzero(hit)
        return found if rows is None else np.asarray(pick, dtype=np.intp)[found]

    def box_voxels(
        self, lo: Sequence[float], hi: Sequence[float], resolution: Sequence[float] | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """The box ``[lo, hi)`` given in voxels of ``resolution`` (default: the table's) in
        the table's voxels, its corners ordered."""
        lo_a = np.asarray(lo, dtype=np.float64)
        hi_a = np.asarray(hi, dtype=np.float64)
        if resolution is not None:
            f = np.asarray(_res3(resolution, "the box resolution")) / np.asarray(self.resolution)
            lo_a, hi_a = lo_a * f, hi_a * f
        return np.minimum(lo_a, hi_a), np.maximum(lo_a, hi_a)

    def reach(self) -> FloatArray:
        """Per row, how far (voxels, per axis) its pre/post points, box or ellipsoid reach
        from its centre: what :meth:`in_box` can find a row by besides its centre."""
        c = self.centers
        out = np.zeros(c.shape, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            for pts in (self.pre, self.post, self.boxes[:, 0], self.boxes[:, 1]):
                out = np.fmax(out, np.abs(pts - c))
            out = np.fmax(out, np.abs(self.radii))
        return out

    def column(self, name: str) -> npt.NDArray[Any]:
        """One column by name: ``id``, ``x``/``y``/``z`` (centre), ``pre_root``,
        ``post_root``, ``pre_sv``, ``post_sv``, ``partner``, ``role``, ``kind``, or a
        property."""
        axes = {"x": 0, "y": 1, "z": 2}
        if name in axes:
            return self.centers[:, axes[name]]
        if name == "id":
            return self.ids
        if name in ("pre_root", "post_root", "pre_sv", "post_sv"):
            return np.asarray(getattr(self, name))
        if name in ("pre_pt_root_id", "post_pt_root_id"):
            return self.pre_root if name.startswith("pre") else self.post_root
        if name == "partner":
            return self.partners
        if name == "role":
            return self.role_codes
        if name == "kind":
            return self.kind_codes
        if self.props is not None and name in self.props.columns:
            return np.asarray(self.props[name].to_numpy())
        raise KeyError(f"no column {name!r} in the site table")

    def sorted_by(self, column: str, descending: bool = False) -> IndexArray:
        """Row order sorted by a column (stable; missing values last)."""
        if (
            self.props is not None
            and column in self.props.columns
            and column not in ("x", "y", "z")
        ):
            order = (
                self.props[column]
                .reset_index(drop=True)
                .sort_values(ascending=not descending, kind="stable", na_position="last")
                .index.to_numpy()
            )
            return np.asarray(order, dtype=np.intp)
        values = self.column(column)
        if values.dtype == object:
            values = values.astype(str)
        if not descending:
            return np.asarray(np.argsort(values, kind="stable"), dtype=np.intp)
        # Reversed, keeping equal values in their original order and NaN last.
        ranks = _ranks(values)
        if values.dtype.kind == "f":
            ranks[np.isnan(values)] = -np.inf
        return np.asarray(np.argsort(-ranks, kind="stable"), dtype=np.intp)

    def prepare_search(self) -> None:
        """Build the text index :meth:`filtered` searches (else built on the first text
        filter; a viewer can call this in a worker thread after loading)."""
        self._search_text()

    def _search_text(self) -> Any:
        if self._search is None:
            import pandas as pd

            parts = [pd.Series(self.ids.astype(str))]
            for a in (self.pre_root, self.post_root):
                parts.append(pd.Series(np.where(a > 0, a.astype(str), "")))
            parts.append(pd.Series(np.asarray(ROLES, dtype=object)[self.role_codes]).fillna(""))
            if self.props is not None:
                for col in self.props.columns:
                    series = self.props[col].reset_index(drop=True)
                    # Text columns only (cell types, notes, segments): numbers and dates
                    # are sorted by, not searched, and turning them to text is slow.
                    if series.dtype == object or str(series.dtype) in ("string", "category"):
                        parts.append(series.astype(str))
            text = parts[0]
            for p in parts[1:]:
                text = text + "\x1f" + p
            self._search = text.str.lower()
        return self._search

    def filtered(
        self,
        text: str | None = None,
        role: str | None = None,
        partner: int | None = None,
        indices: Sequence[int] | npt.NDArray[np.integer[Any]] | None = None,
    ) -> IndexArray:
        """Rows (in ``indices``' order if given, else table order) matching all of: ``text``
        (case-insensitive, in the id, root ids, role or any property), ``role``
        (``"input"``/``"output"``, ``"none"`` for rows without one), ``partner`` (a root id
        as the pre or post root)."""
        mask = np.ones(len(self), dtype=bool)
        if role:
            r = role.lower()
            codes = {"input": ROLE_INPUT, "output": ROLE_OUTPUT, "none": ROLE_NONE}
            if r not in codes:
                raise SiteTableError(f"role {role!r}: expected input, output or none")
            mask &= self.role_codes == codes[r]
        if partner is not None and int(partner) != 0:
            p = np.uint64(int(partner))
            mask &= (self.pre_root == p) | (self.post_root == p)
        if text and text.strip():
            found = self._search_text().str.contains(text.strip().lower(), regex=False)
            mask &= found.to_numpy(dtype=bool)
        if indices is None:
            return np.flatnonzero(mask)
        idx = np.asarray(indices, dtype=np.intp)
        return idx[mask[idx]]

    def to_frame(self, split_positions: bool = False) -> Any:
        """A pandas DataFrame with CAVE's column names (positions as arrays, or ``_x/_y/_z``
        columns), plus ``role``/``kind`` and every property; ``attrs`` carry the resolution."""
        import pandas as pd

        cols: dict[str, Any] = {"id": self.ids}
        for name, a in zip(POSITION_NAMES, (self.centers, self.pre, self.post)):
            if name != "ctr_pt_position" and not np.isfinite(a).any():
                continue
            if split_positions:
                for k, axis in enumerate("xyz"):
                    cols[f"{name}_{axis}"] = a[:, k]
            else:
                cols[name] = list(a)
        for name, ids in zip(
            _ID_COLUMNS, (self.pre_root, self.post_root, self.pre_sv, self.post_sv)
        ):
            if ids.any():
                cols[name] = ids
        if self.role_codes.any():
            cols["role"] = np.asarray(ROLES, dtype=object)[self.role_codes]
        if self.kind_codes.any():
            cols["kind"] = np.asarray(KINDS, dtype=object)[self.kind_codes]
        df = pd.DataFrame(cols)
        if self.props is not None:
            extra = self.props.reset_index(drop=True)
            extra = extra[[c for c in extra.columns if c not in df.columns]]
            df = pd.concat([df, extra], axis=1)
        df.attrs["dataframe_resolution"] = list(self.resolution)
        return df

    # -- checks ---------------------------------------------------------------------------
    def check_against(self, volume_bounds_nm: Sequence[Sequence[float]]) -> str | None:
        """Check the sites against a volume's bounds (``[[x0, y0, z0], [x1, y1, z1]]`` nm).

        Raises :class:`SiteTableError` when most centres lie outside the volume and
        another resolution would put most of them inside (a wrong unit: nm read as voxels
        or the reverse), naming the likely resolution. Returns a warning (str) when many
        sites lie outside but no resolution explains it (a table for a bigger volume),
        else None.
        """
        if not len(self):
            return None
        b = np.asarray(volume_bounds_nm, dtype=np.float64).reshape(2, 3)
        lo, hi = b.min(axis=0), b.max(axis=0)
        res = np.asarray(self.resolution)
        frac = _inside_fraction(self.centers * res, lo, hi)
        if frac >= 0.5:
            return None
        best, best_frac = None, frac
        for cand in _candidate_resolutions(self.centers, lo, hi, self.resolution):
            f = _inside_fraction(self.centers * np.asarray(cand), lo, hi)
            if f > best_frac + 1e-9:
                best, best_frac = cand, f
        size = hi - lo
        outside = 1.0 - frac
        where = (
            f"{outside:.0%} of the {len(self)} sites lie outside the volume "
            f"({_fmt(lo)}-{_fmt(hi)} nm) at {_fmt(res)} nm per voxel ({self.resolution_from})"
        )
        if best is not None and best_frac >= 0.5:
            raise SiteTableError(
                f"{where}; at {_fmt(best)} nm per voxel {best_frac:.0%} would be inside: the "
                f"table's coordinates are probably in {_unit_name(best)}; give the resolution "
                f"(--sites-resolution {' '.join(_fmt1(v) for v in best)})"
            )
        med = np.median(self.centers * res, axis=0)
        far = np.maximum(lo - med, med - hi).max() > 10 * size.max()
        if far:
            raise SiteTableError(
                f"{where}, most of them more than 10 volume sizes away: check the table's "
                "resolution (--sites-resolution RX RY RZ) and that it belongs to this volume"
            )
        return where + "; they are listed but not drawn"


def _rows_finite(a: FloatArray) -> npt.NDArray[np.bool_]:
    return np.asarray(np.isfinite(a).all(axis=1), dtype=bool)


def _fmt1(v: float) -> str:
    return f"{v:g}"


def _fmt(a: Any) -> str:
    return "(" + ", ".join(_fmt1(float(v)) for v in a) + ")"


def _unit_name(res: Sequence[float]) -> str:
    return "nm" if tuple(res) == (1.0, 1.0, 1.0) else f"{_fmt(res)} nm voxels"


def _inside_fraction(pts_nm: FloatArray, lo: FloatArray, hi: FloatArray) -> float:
    ok = np.isfinite(pts_nm).all(axis=1)
    if not ok.any():
        return 0.0
    inside = ((pts_nm[ok] >= lo) & (pts_nm[ok] <= hi)).all(axis=1)
    return float(inside.mean())


_NICE = np.array([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 30, 32, 35, 40, 45, 50, 64, 100])


def _candidate_resolutions(
    centers: FloatArray, lo: FloatArray, hi: FloatArray, current: Resolution
) -> list[Resolution]:
    out: list[Resolution] = [
        (1.0, 1.0, 1.0),
        (4.0, 4.0, 40.0),
        (8.0, 8.0, 40.0),
        (16.0, 16.0, 40.0),
        (4.0, 4.0, 45.0),
        (8.0, 8.0, 8.0),
        (10.0, 10.0, 10.0),
    ]
    finite = centers[np.isfinite(centers).all(axis=1)]
    if len(finite):
        med = np.median(finite, axis=0)
        mid = (lo + hi) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(med > 0, mid / med, np.nan)
        if np.isfinite(ratio).all() and (ratio > 0).all():
            # The nearest "nice" voxel size per axis (nm per voxel are round numbers).
            nice = tuple(
                float(_NICE[np.argmin(np.abs(np.log(_NICE / r)))]) if r >= 0.75 else float(r)
                for r in ratio
            )
            out.insert(0, nice)  # type: ignore[arg-type]
    return [c for c in out if c != tuple(current)]


def _ranks(values: npt.NDArray[Any]) -> FloatArray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_v = values[order]
    # Equal values get the same rank so a reversed sort keeps them in their first order.
    first = np.r_[True, sorted_v[1:] != sorted_v[:-1]] if len(values) else np.zeros(0, bool)
    ranks[order] = np.cumsum(first)
    return ranks


class SiteIndex:
    """Many :meth:`SiteTable.in_box` queries on one big table, each in time of the sites
    near its box rather than of the whole table (batch asks once per task: over 300,000
    sites that was 90 ms a task, 7 minutes before the first figure).

    Rows are sorted by their centre's x; a box's candidates are the rows whose centre lies
    within the table's widest reach of it in x (two binary searches) and then in y, plus
    the few rows that reach farther than :data:`WIDE` voxels (a big box annotation) or
    have no centre, which are always looked at. The answer is exactly ``in_box``'s."""

    #: Rows reaching farther than this (voxels, in x or y) are candidates of every box.
    WIDE = 1024.0

    def __init__(self, table: SiteTable) -> None:
        self.table = table
        reach = np.nan_to_num(table.reach()[:, :2], nan=0.0)
        wide = (reach > self.WIDE).any(axis=1)
        self._wide = np.flatnonzero(wide)
        narrow = np.flatnonzero(~wide)
        x, y = table.centers[narrow, 0], table.centers[narrow, 1]
        keep = np.isfinite(x) & np.isfinite(y)
        unplaced = np.flatnonzero(~(np.isfinite(table.centers[:, :2]).all(axis=1)))
        self._wide = np.union1d(self._wide, unplaced)
        narrow, x, y = narrow[keep], x[keep], y[keep]
        order = np.argsort(x, kind="stable")
        self._rows, self._x, self._y = narrow[order], x[order], y[order]
        self._reach = reach[narrow].max(axis=0) if len(narrow) else np.zeros(2)

    def in_box(
        self, lo: Sequence[float], hi: Sequence[float], resolution: Sequence[float] | None = None
    ) -> IndexArray:
        lo_a, hi_a = self.table.box_voxels(lo, hi, resolution)
        rx, ry = float(self._reach[0]), float(self._reach[1])
        x0, x1 = lo_a[0] - rx, hi_a[0] + rx
        y0, y1 = lo_a[1] - ry, hi_a[1] + ry
        a = int(np.searchsorted(self._x, x0, side="left"))
        b = int(np.searchsorted(self._x, x1, side="right"))
        ys = self._y[a:b]
        cand = np.union1d(self._rows[a:b][(ys >= y0) & (ys <= y1)], self._wide)
        return self.table.in_box(lo_a.tolist(), hi_a.tolist(), None, rows=cand)


def _segments_meet_box(
    a: FloatArray, b: FloatArray, lo: FloatArray, hi: FloatArray
) -> npt.NDArray[np.bool_]:
    """Whether each segment a->b meets the box [lo, hi] (slab test, vectorised)."""
    d = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - a) / d
        t2 = (hi - a) / d
    tmin = np.where(d == 0, -np.inf, np.minimum(t1, t2))
    tmax = np.where(d == 0, np.inf, np.maximum(t1, t2))
    # Axes where the segment is parallel: inside the slab or never.
    parallel_out = (d == 0) & ((a < lo) | (a >= hi))
    enter = np.maximum(tmin.max(axis=1), 0.0)
    leave = np.minimum(tmax.min(axis=1), 1.0)
    return np.asarray((enter <= leave) & ~parallel_out.any(axis=1), dtype=bool)


def _py(v: Any) -> Any:
    """numpy scalars as Python values (for Site.props and JSON)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def concatenate(tables: Sequence[SiteTable], source: SiteSource | None = None) -> SiteTable:
    """One table of several at the same resolution (e.g. a neuron's inputs and outputs)."""
    if not tables:
        raise SiteTableError("no site tables to join")
    res = tables[0].resolution
    tables = [t.to_resolution(res) for t in tables]
    props = None
    if any(t.props is not None for t in tables):
        import pandas as pd

        props = pd.concat(
            [t.props if t.props is not None else pd.DataFrame(index=range(len(t))) for t in tables],
            ignore_index=True,
        )
    ids = [t.ids for t in tables]
    if len({i.dtype.kind for i in ids}) > 1:
        ids = [i.astype(str).astype(object) for i in ids]
    return SiteTable(
        centers=np.concatenate([t.centers for t in tables]),
        resolution=res,
        resolution_from=tables[0].resolution_from,
        source=source or tables[0].source,
        ids=np.concatenate(ids),
        pre=np.concatenate([t.pre for t in tables]),
        post=np.concatenate([t.post for t in tables]),
        pre_root=np.concatenate([t.pre_root for t in tables]),
        post_root=np.concatenate([t.post_root for t in tables]),
        pre_sv=np.concatenate([t.pre_sv for t in tables]),
        post_sv=np.concatenate([t.post_sv for t in tables]),
        role_codes=np.concatenate([t.role_codes for t in tables]),
        kind_codes=np.concatenate([t.kind_codes for t in tables]),
        boxes=np.concatenate([t.boxes for t in tables]),
        radii=np.concatenate([t.radii for t in tables]),
        props=props,
        skipped=[s for t in tables for s in t.skipped],
        warnings=[w for t in tables for w in t.warnings],
    )


# -- reading ----------------------------------------------------------------------------------
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|NaN|inf", re.IGNORECASE)


def parse_position_strings(values: Sequence[Any]) -> tuple[FloatArray, list[int]]:
    """Positions as pandas ``to_csv`` writes them (``[5375 3437  156]``, ``[5375, 3437,
    156]``, line breaks inside) or as lists/arrays: an (n, 3) array and the rows that are
    not three numbers (NaN there)."""
    n = len(values)
    out = np.full((n, 3), np.nan)
    bad: list[int] = []
    fast = _positions_fast(values)
    if fast is not None:
        return fast
    for i, v in enumerate(values):
        if isinstance(v, str):
            nums = _NUMBER.findall(v)
            if len(nums) == 3 and not re.search(r"[^\s\[\]\(\),;0-9eE.+\-naNifI]", v):
                out[i] = [float(x) for x in nums]
            else:
                bad.append(i)
        elif v is None or (isinstance(v, float) and np.isnan(v)):
            bad.append(i)
        else:
            try:
                arr = np.asarray(v, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                bad.append(i)
                continue
            if arr.shape == (3,):
                out[i] = arr
            else:
                bad.append(i)
    bad_set = set(bad)
    nonfinite = [i for i in np.flatnonzero(~np.isfinite(out).all(axis=1)) if i not in bad_set]
    return out, sorted(bad + [int(i) for i in nonfinite])


_SEPARATORS = re.compile(r"[\[\]\(\),;]")


def _positions_fast(values: Sequence[Any]) -> tuple[FloatArray, list[int]] | None:
    """The common cases without a Python loop: all arrays/lists of 3, or all strings."""
    n = len(values)
    if not n:
        return np.zeros((0, 3)), []
    first = values[0]
    if isinstance(first, (np.ndarray, list, tuple)):
        try:
            arr = np.asarray(list(values), dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if arr.shape != (n, 3):
            return None
        return arr, [int(i) for i in np.flatnonzero(~np.isfinite(arr).all(axis=1))]
    if not all(isinstance(v, str) for v in values):
        return None
    cleaned = [_SEPARATORS.sub(" ", v) for v in values]
    tokens = [c.split() for c in cleaned]
    counts = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=n)
    good = counts == 3
    out = np.full((n, 3), np.nan)
    try:
        flat = np.asarray(" ".join(c for c, g in zip(cleaned, good) if g).split(), dtype=np.float64)
    except ValueError:
        return None  # a token that is not a number: the careful path finds the rows
    out[good] = flat.reshape(-1, 3)
    bad = np.flatnonzero(~good | ~np.isfinite(out).all(axis=1))
    return out, [int(i) for i in bad]


def _numeric_column(series: Any) -> tuple[FloatArray, list[int]]:
    import pandas as pd

    num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(num))
    return num, [int(i) for i in bad]


def _points(df: Any, base: str) -> tuple[FloatArray, list[int], str] | None:
    """A position column by CAVE name (array/list/string column, or _x/_y/_z columns)."""
    cols = set(df.columns)
    if base in cols:
        pts, bad = parse_position_strings(df[base].tolist())
        return pts, bad, base
    return _split_points(df, [f"{base}_{a}" for a in "xyz"])


_WHOLE = re.compile(r"\s*(\d+)\.0*\s*")


def _whole_ids(col: Any) -> Any:
    """An id column of whole numbers written as floats (``100000001.0``: pandas makes an
    integer column float when it once held a NaN) as integers; any other column as it
    is. Text is cut at its point, so 18-digit ids stay exact."""
    import pandas as pd

    values = col.to_numpy()
    if values.dtype.kind == "f":
        ok = np.isfinite(values).all() and (values == np.round(values)).all()
        if ok and (np.abs(values) < 2**53).all():
            return pd.Series(values.astype(np.int64), index=col.index, name=col.name)
        return col
    if values.dtype.kind not in "OUS" or not len(values):
        return col
    texts = [str(v) for v in values.tolist()]
    matched = [_WHOLE.fullmatch(t) for t in texts]
    if all(matched) and any("." in t for t in texts):
        return pd.Series([m.group(1) for m in matched if m], index=col.index, name=col.name)
    return col


def _split_points(df: Any, cols: Sequence[str]) -> tuple[FloatArray, list[int], str] | None:
    """A position from three columns named exactly ``cols`` (x, y, z), if all are there."""
    if not all(c in df.columns for c in cols):
        return None
    arrs = [_numeric_column(df[c]) for c in cols]
    pts = np.stack([a for a, _ in arrs], axis=1)
    return pts, sorted({i for _, b in arrs for i in b}), ", ".join(cols)


def _all_integers(series: Any) -> bool:
    """Whether every value of a column is a non-negative integer (ints, or digit strings)."""
    values = series.to_numpy()
    if values.dtype.kind in "iu":
        return bool(len(values)) and bool((values >= 0).all())
    if values.dtype.kind == "b":
        return False
    return bool(len(values)) and all(str(v).strip().isdigit() for v in values.tolist())


def _plain_xyz(df: Any) -> tuple[FloatArray, list[int], list[str]] | None:
    by_lower = {str(c).lower(): c for c in df.columns}
    for names in (("x", "y", "z"), ("x_px", "y_px", "z_px"), ("x_vx", "y_vx", "z_vx")):
        if all(n in by_lower for n in names):
            cols = [by_lower[n] for n in names]
            got = _split_points(df, cols)
            if got is not None:
                return got[0], got[1], [str(c) for c in cols]
    return None


def _exact_ids(series: Any, name: str, warnings: list[str]) -> tuple[IdArray, list[int]]:
    """A column of 64-bit ids without ever going through float (0 = absent)."""
    values = series.to_numpy()
    if values.dtype.kind in "iu":
        if values.dtype.kind == "i" and (values < 0).any():
            negative = [int(i) for i in np.flatnonzero(values < 0)]
            values = np.where(values < 0, 0, values)
            return values.astype(np.uint64), negative
        return values.astype(np.uint64), []
    out = np.zeros(len(values), dtype=np.uint64)
    bad: list[int] = []
    inexact = 0
    # Fast path: decimal text (numpy parses each string as an exact integer).
    text_s = series.astype(str).str.strip()
    digits = text_s.str.fullmatch(r"\d{1,20}").to_numpy(dtype=bool)
    if digits.any():
        try:
            out[digits] = np.asarray(text_s[digits].tolist()).astype(np.uint64)
        except (OverflowError, ValueError):
            digits[:] = False  # a 20-digit value above 2**64: the careful path below
    for i in (int(k) for k in np.flatnonzero(~digits)):
        v = values[i]
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        text = str(v).strip()
        if not text or text.lower() in ("nan", "none", "<na>"):
            continue
        if text.isdigit():
            iv = int(text)
        else:
            try:
                fv = float(text)
            except ValueError:
                bad.append(i)
                continue
            if not np.isfinite(fv) or fv < 0 or fv != int(fv):
                bad.append(i)
                continue
            iv = int(fv)
            inexact += fv >= 2**53
        if iv >= 2**64:
            bad.append(i)
            continue
        out[i] = iv
    if inexact:
        warnings.append(
            f"{inexact} ids in {name} were written as floating-point numbers and may be "
            "inexact (18-digit ids need to be saved as integers)"
        )
    return out, bad


def parse_resolution_value(value: Any) -> Resolution | None:
    """A resolution from metadata: a list, ``"4, 4, 40"``, ``"[4 4 40]"``, JSON; else None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        nums = _NUMBER.findall(value)
        if len(nums) != 3:
            return None
        value = nums
    try:
        return _res3(value, "resolution")
    except SiteTableError:
        return None


_RES_KEYS = (
    "dataframe_resolution",
    "voxel_resolution",
    "table_voxel_resolution",
    "resolution",
    "desired_resolution",
)


def resolution_from_metadata(meta: Mapping[str, Any]) -> tuple[Resolution, str] | None:
    """The first usable resolution key in a metadata mapping (caveclient's attrs first)."""
    for key in _RES_KEYS:
        if key in meta:
            res = parse_resolution_value(meta[key])
            if res is not None:
                return res, key
    for key in ("voxel_resolution_x",):  # caveclient's raw table metadata
        if key in meta and "voxel_resolution_z" in meta:
            res = parse_resolution_value([meta[f"voxel_resolution_{a}"] for a in "xyz"])
            if res is not None:
                return res, "voxel_resolution_x/y/z"
    return None


def _schema_metadata(path: Path, kind: str) -> dict[str, Any]:
    """Schema metadata of a Parquet/Feather file, with pandas' ``PANDAS_ATTRS`` unpacked."""
    if kind == "parquet":
        import pyarrow.parquet as pq

        raw = pq.read_schema(path).metadata or {}
    else:
        import pyarrow.feather as feather

        raw = feather.read_table(path, memory_map=True).schema.metadata or {}
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
        if key == "pandas":
            continue
        text = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        if key == "PANDAS_ATTRS":
            try:
                attrs = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(attrs, dict):
                for ak, av in attrs.items():
                    meta.setdefault(str(ak), av)
            continue
        meta[key] = text
    return meta


def _sniff_separator(path: Path) -> str:
    """``,`` unless the header line is clearly separated by tabs or semicolons."""
    import gzip

    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    counts = {sep: header.count(sep) for sep in (",", "\t", ";")}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] > 0 else ","


def _read_file(path: Path) -> tuple[Any, dict[str, Any], str]:
    import pandas as pd

    suffix = (
        "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    )
    if not path.is_file():
        raise SiteTableError(f"the site table {path} does not exist")
    try:
        if suffix in (".parquet", ".pq", ".parq"):
            df = pd.read_parquet(path)
            meta = _schema_metadata(path, "parquet")
            meta.update({k: v for k, v in (df.attrs or {}).items()})
            return df, meta, "Parquet"
        if suffix in (".feather", ".ftr", ".arrow"):
            df = pd.read_feather(path)
            return df, _schema_metadata(path, "feather"), "Feather"
        if suffix in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz"):
            sep = "\t" if ".tsv" in suffix else _sniff_separator(path)
            header = pd.read_csv(path, nrows=0, sep=sep)
            text_cols = {c: str for c in header.columns if _EXACT_ID.search(str(c).lower())}
            df = pd.read_csv(path, sep=sep, dtype=text_cols)
            df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed: ")])
            return df, {}, "CSV"
    except SiteTableError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad table for the user
        raise SiteTableError(f"cannot read the site table {path}: {exc}") from None
    raise SiteTableError(
        f"{path}: unknown table format {suffix or '(no extension)'!r}; expected .csv, .tsv, "
        ".parquet or .feather"
    )


def _role_codes(series: Any) -> tuple[CodeArray, list[int]]:
    text = series.astype(str).str.strip().str.lower()
    codes = np.zeros(len(text), dtype=np.int8)
    codes[(text == "input").to_numpy()] = ROLE_INPUT
    codes[(text == "output").to_numpy()] = ROLE_OUTPUT
    known = text.isin(["input", "output", "", "none", "nan"]).to_numpy()
    return codes, [int(i) for i in np.flatnonzero(~known)]


def read_sites(
    source: str | Path | Any,
    resolution: Sequence[float] | None = None,
    default_resolution: Sequence[float] | None = None,
) -> SiteTable:
    """A :class:`SiteTable` from a CSV/TSV, Parquet or Feather file, or a pandas DataFrame.

    Resolution precedence: ``resolution`` (e.g. ``--sites-resolution``), else the table's
    metadata (``attrs``/schema metadata: ``dataframe_resolution``, ``voxel_resolution``,
    ...), else ``default_resolution`` (the viewer's). Unparseable rows are skipped and
    listed in ``table.skipped``; a table with no usable rows raises :class:`SiteTableError`.
    """
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        df, meta, fmt = _read_file(path)
        src = SiteSource("file", path=str(path))
        where = f"{fmt} file {path.name}"
        line_offset = 2 if fmt == "CSV" else None
    elif hasattr(source, "columns") and hasattr(source, "iloc"):
        df = source
        meta = dict(getattr(source, "attrs", {}) or {})
        # A caveclient result names its table and version in attrs: keep them.
        version = meta.get("materialization_version")
        src = SiteSource(
            "frame",
            datastack=_opt_str(meta.get("datastack_name")),
            table=_opt_str(meta.get("table_name")),
            version=int(version) if isinstance(version, (int, np.integer)) else None,
            timestamp=_opt_str(meta.get("timestamp")),
        )
        where = "the DataFrame"
        line_offset = None
    else:
        raise SiteTableError(
            f"cannot read sites from a {type(source).__name__}: give a file path or a DataFrame"
        )
    return table_from_frame(
        df,
        source=src,
        resolution=resolution,
        default_resolution=default_resolution,
        metadata=meta,
        where=where,
        line_offset=line_offset,
    )


def _opt_str(v: Any) -> str | None:
    return str(v) if v not in (None, "") else None


def _row_name(i: int, line_offset: int | None) -> str:
    return f"row {i}" + (f" (line {i + line_offset})" if line_offset is not None else "")


def table_from_frame(
    df: Any,
    *,
    source: SiteSource,
    resolution: Sequence[float] | None = None,
    default_resolution: Sequence[float] | None = None,
    metadata: Mapping[str, Any] | None = None,
    where: str = "the table",
    line_offset: int | None = None,
    role: str | None = None,
) -> SiteTable:
    """The reader behind :func:`read_sites` (also used for CAVE query results).

    ``role`` sets every row's role (a CAVE query of inputs or outputs)."""
    import pandas as pd

    if df is None or len(df.columns) == 0:
        raise SiteTableError(f"{where} has no columns")
    df = df.reset_index(drop=True)
    n = len(df)
    warnings: list[str] = []
    # -- resolution
    if resolution is not None:
        res = _res3(resolution, "the sites resolution")
        res_from = "given (--sites-resolution)"
    else:
        found = resolution_from_metadata(metadata or {})
        if found is not None:
            res, key = found
            res_from = f"the table's metadata ({key})"
        elif default_resolution is not None:
            res = _res3(default_resolution, "the viewer resolution")
            res_from = "the viewer's resolution (the table names none)"
        else:
            raise SiteTableError(
                f"{where} does not say the resolution of its coordinates: give it "
                "(--sites-resolution RX RY RZ, nm per voxel)"
            )
    if n == 0:
        raise SiteTableError(f"{where} has no rows")
    # -- positions
    used: set[str] = set()
    bad_rows: dict[int, str] = {}

    def note_bad(rows: Iterable[int], what: str) -> None:
        for i in rows:
            bad_rows.setdefault(int(i), what)

    found_pts: dict[str, tuple[FloatArray, list[int], str]] = {}
    for base in POSITION_NAMES:
        got = _points(df, base)
        for aliases in _POINT_ALIASES.get(base, ()):
            if got is not None:
                break
            got = _split_points(df, aliases)
        if got is not None:
            found_pts[base] = got
            used.update(got[2].split(", "))
    centre_name = None
    centers: FloatArray | None = None
    if "ctr_pt_position" in found_pts:
        centers, _cbad, centre_name = found_pts["ctr_pt_position"]
    else:
        for base in _CENTRE_NAMES[1:]:
            got = _points(df, base)
            if got is not None:
                centers, _cbad, centre_name = got
                used.update(got[2].split(", "))
                break
        else:
            xyz = _plain_xyz(df)
            if xyz is not None:
                centers, _cbad, cols = xyz
                centre_name = ", ".join(cols)
                used.update(cols)
    pre = found_pts.get("pre_pt_position", (None, [], ""))[0]
    post = found_pts.get("post_pt_position", (None, [], ""))[0]
    if centers is None:
        if pre is None and post is None:
            raise SiteTableError(
                f"{where} has no position columns: expected ctr_pt_position / pre_pt_position "
                "/ post_pt_position (arrays, '[x y z]' strings or _x/_y/_z columns) or x, y, z; "
                f"it has {', '.join(map(str, df.columns[:20]))}"
                + (" ..." if len(df.columns) > 20 else "")
            )
        if pre is not None and post is not None:
            centers = (pre + post) / 2.0  # schemas without ctr_pt: the midpoint
            centre_name = "the pre/post midpoint"
        else:
            centers = (pre if pre is not None else post).copy()  # type: ignore[union-attr]
            centre_name = "pre_pt_position" if pre is not None else "post_pt_position"
        # A row needs a centre: without ctr_pt both points (or the one we have) must parse.
        missing = ~np.isfinite(centers).all(axis=1)
        names = [k for k in ("pre_pt_position", "post_pt_position") if k in found_pts]
        note_bad(np.flatnonzero(missing), f"{' / '.join(names)} is not three numbers")
    else:
        note_bad(
            np.flatnonzero(~np.isfinite(centers).all(axis=1)), f"{centre_name} is not three numbers"
        )
    # Unparseable optional pre/post: the row is kept only if the text was empty.
    for base in ("pre_pt_position", "post_pt_position"):
        if base in found_pts and centre_name != "the pre/post midpoint":
            _pts, pbad, col = found_pts[base]
            raw = df[base] if base in df.columns else None
            for i in pbad:
                empty = raw is None or pd.isna(raw.iloc[i]) or str(raw.iloc[i]).strip() == ""
                if not empty:
                    bad_rows.setdefault(int(i), f"{col} is not three numbers")
    # -- ids
    id_cols: dict[str, IdArray] = {}
    for name in _ID_COLUMNS:
        if name in df.columns:
            vals, bad = _exact_ids(df[name], name, warnings)
            id_cols[name] = vals
            note_bad(bad, f"{name} is not a non-negative 64-bit integer")
            used.add(name)
            continue
        for alias in _ID_ALIASES[name]:
            if alias in df.columns and alias not in used and _all_integers(df[alias]):
                vals, bad = _exact_ids(df[alias], alias, warnings)
                if not bad:
                    id_cols[name] = vals
                    used.add(alias)
                    break
    ids: npt.NDArray[Any] | None = None
    for name in ("id", "annotation_id", "synapse_id", "site_id"):
        if name in df.columns:
            col = _whole_ids(df[name])
            if col.dtype.kind in "iu" or all(str(v).strip().isdigit() for v in col.tolist()):
                vals, bad = _exact_ids(col, name, warnings)
                ids = vals.astype(np.int64) if (vals < 2**63).all() else vals
                note_bad(bad, f"{name} is not an integer")
            else:
                ids = col.astype(str).to_numpy(dtype=object)
            used.add(name)
            break
    roles: CodeArray | None = None
    if role is not None:
        roles = np.full(n, ROLES.index(role), dtype=np.int8)
    elif "role" in df.columns:
        roles, rbad = _role_codes(df["role"])
        used.add("role")
        if rbad:
            warnings.append(
                f"{len(rbad)} rows have a role other than input/output (first: "
                f"{_row_name(rbad[0], line_offset)}: {df['role'].iloc[rbad[0]]!r}); shown without one"
            )
    # -- keep the good rows
    keep = np.ones(n, dtype=bool)
    skipped: list[Skipped] = []
    for i in sorted(bad_rows):
        keep[i] = False
        skipped.append(Skipped(i, f"{_row_name(i, line_offset)}: {bad_rows[i]}"))
    if not keep.any():
        first = "; ".join(s.reason for s in skipped[:3])
        raise SiteTableError(f"{where}: none of its {n} rows is usable ({first})")
    idx = np.flatnonzero(keep)
    rest = [c for c in df.columns if c not in used and not str(c).startswith("Unnamed: ")]
    props = df.loc[idx, rest].reset_index(drop=True) if rest else None
    if skipped:
        warnings.insert(
            0,
            f"{len(skipped)} of {n} rows skipped (first: {skipped[0].reason})",
        )
    table = SiteTable(
        centers=centers[idx],
        resolution=res,
        resolution_from=res_from,
        source=source,
        ids=None if ids is None else ids[idx],
        pre=None if pre is None else pre[idx],
        post=None if post is None else post[idx],
        pre_root=id_cols.get("pre_pt_root_id", np.zeros(n, np.uint64))[idx],
        post_root=id_cols.get("post_pt_root_id", np.zeros(n, np.uint64))[idx],
        pre_sv=id_cols.get("pre_pt_supervoxel_id", np.zeros(n, np.uint64))[idx],
        post_sv=id_cols.get("post_pt_supervoxel_id", np.zeros(n, np.uint64))[idx],
        role_codes=None if roles is None else roles[idx],
        kind_codes=np.where(
            np.isfinite(pre[idx]).all(axis=1) & np.isfinite(post[idx]).all(axis=1),
            KIND_LINE,
            KIND_POINT,
        )
        if pre is not None and post is not None
        else None,
        props=props,
        skipped=skipped,
        warnings=warnings,
    )
    return table


# -- provenance -----------------------------------------------------------------------------
def sites_provenance(table: SiteTable, drawn_ids: Iterable[int | str] = ()) -> dict[str, Any]:
    """What an export's provenance says about its sites: the table's source (path or CAVE
    table, version, timestamp, query), the resolution and where it came from, the row
    count, and the ids of the sites drawn (as strings: 64-bit ids stay exact in JSON)."""
    return {
        "source": table.source.as_dict(),
        "description": table.source.describe(),
        "resolution": list(table.resolution),
        "resolution_from": table.resolution_from,
        "rows": len(table),
        "skipped_rows": len(table.skipped),
        "drawn_ids": [str(i) for i in drawn_ids],
    }
