"""The viewer's state, without Qt: everything the user can change, in one place.

:class:`ViewerState` holds what is open, the selection, the one :class:`OverlayStyle`, z,
the camera, the contrast and the segmentation mode (root ids or supervoxels, and the time
they are taken at). Every change goes through a method that validates it and then tells
the listeners of that part (:class:`Event`), so a window only maps its widgets' intents to
these methods and these events back to its widgets.

What can be derived is not stored: the colour of every id (:mod:`imagery_gui.model.colors`),
the figure of the current view (:func:`figure_spec`), the Neuroglancer state
(:func:`link_state`) and the provenance (:func:`provenance_extra`). The same functions serve
``imagery-gui export``, so a link, a window and the command line make the same figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import colors
from .dataset import Dataset
from .export import FigureSpec
from .inputs import Inputs
from .ngl import DEFAULT_NGL_URL, make_link, make_state
from .scalebar import ScaleBar
from .style import NEUROGLANCER, RGB, OverlayStyle, Selection

#: The viewer's style before the user changes anything.
VIEWER_STYLE = OverlayStyle()
#: Most sites a link out carries as an annotation layer.
MAX_LINK_SITES = 1000
#: Neuroglancer's defaults for a segmentation layer's alphas.
NG_SELECTED_ALPHA = 0.5
NG_NOT_SELECTED_ALPHA = 0.0


@dataclass(frozen=True, slots=True)
class Camera:
    """Where the slice view looks: centre and zoom, and the visible rectangle (all nm)."""

    center_nm: tuple[float, float] = (0.0, 0.0)
    nm_per_px: float = 1.0
    visible_nm: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


class Event:
    """Callbacks of one kind of change (``connect``, ``disconnect``, ``emit``)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, fn: Callable[..., Any]) -> None:
        self._callbacks.append(fn)

    def disconnect(self, fn: Callable[..., Any]) -> None:
        self._callbacks.remove(fn)

    def emit(self, *args: Any) -> None:
        for fn in list(self._callbacks):
            fn(*args)


class Events:
    """The changes a :class:`ViewerState` reports."""

    def __init__(self) -> None:
        self.opened = Event()  # (state): a new dataset (every other part may have changed)
        self.selection = Event()  # (Selection)
        self.style = Event()  # (OverlayStyle)
        self.z = Event()  # (int)
        self.camera = Event()  # (Camera)
        self.contrast = Event()  # ((lo, hi) | None)
        self.segmentation = Event()  # (supervoxels: bool, timestamp)
        self.warning = Event()  # (str): a value was clamped or dropped
        self.sites = Event()  # (SiteTable | None): another site table
        self.current_site = Event()  # (row | None): the site being looked at
        self.site_order = Event()  # (rows | None): the Sites dock's sort and filter


# -- derived: pure functions shared by the viewer and the command line ----------------------
def style_from_link(inputs: Inputs, base: OverlayStyle) -> OverlayStyle:
    """The style a Neuroglancer link asks for: Neuroglancer's colours for its seed, its
    ``selectedAlpha`` and ``notSelectedAlpha`` (Neuroglancer's defaults when absent).

    A link with selected segments shows only those unless its ``notSelectedAlpha`` is
    above 0 (as in Neuroglancer); a link without any shows every segment."""
    other = inputs.not_selected_alpha
    other = NG_NOT_SELECTED_ALPHA if other is None else other
    changes: dict[str, Any] = {
        "palette": NEUROGLANCER,
        "color_seed": inputs.color_seed or 0,
        "selected_alpha": (
            inputs.selected_alpha if inputs.selected_alpha is not None else NG_SELECTED_ALPHA
        ),
        "show_unselected": not inputs.root_ids or other > 0,
    }
    if other > 0:
        changes["alpha"] = other
    style, _ = OverlayStyle.from_dict(changes, base=base)  # clamps what a link got wrong
    return style


def selection_from_inputs(inputs: Inputs) -> Selection:
    return Selection.of(inputs.root_ids, inputs.segment_colors)


def z_bounds(dataset: Dataset) -> tuple[int, int]:
    """Inclusive z range of the volume, in voxels of the dataset's resolution."""
    layer = dataset.image or dataset.segmentation
    mip = dataset.image_mip if dataset.image else dataset.segmentation_mip
    assert layer is not None
    lo, hi = layer.bounds(mip)
    rz = float(layer.resolution(mip)[2])
    view_rz = float(dataset.resolution[2])
    return int(math.floor(lo[2] * rz / view_rz)), int(math.ceil(hi[2] * rz / view_rz)) - 1


def base_nm_per_px(dataset: Dataset) -> float:
    """One voxel of the finest shown mip per screen pixel."""
    layer = dataset.image or dataset.segmentation
    mip = dataset.image_mip if dataset.image else dataset.segmentation_mip
    assert layer is not None
    return float(layer.resolution(mip)[0])


def figure_spec(
    dataset: Dataset,
    camera: Camera,
    z: int,
    style: OverlayStyle,
    selection: Selection,
    timestamp: Any = None,
    *,
    depth: int = 1,
    scale: int = 1,
    scale_bar: ScaleBar | None = None,
    dpi: int = 300,
) -> FigureSpec:
    """The visible area as a figure, at the mips the view shows, in the view's style."""
    from .view import choose_mips

    res = np.asarray(dataset.resolution, dtype=np.float64)
    x0, y0, x1, y1 = camera.visible_nm
    vb = dataset.volume_bounds(res) * res
    x0, y0 = max(x0, vb[0][0]), max(y0, vb[0][1])
    x1, y1 = min(x1, vb[1][0]), min(y1, vb[1][1])
    lo = (math.floor(x0 / res[0]), math.floor(y0 / res[1]), int(z))
    hi = (math.ceil(x1 / res[0]), math.ceil(y1 / res[1]), int(z) + int(depth))
    img_mip, seg_mip = choose_mips(dataset, camera.nm_per_px)
    return FigureSpec(
        bounds=(tuple(float(v) for v in lo), tuple(float(v) for v in hi)),  # type: ignore[arg-type]
        resolution=(float(res[0]), float(res[1]), float(res[2])),
        image_mip=img_mip if dataset.image is not None else None,
        segmentation_mip=seg_mip if dataset.segmentation is not None else None,
        selection=selection,
        timestamp=timestamp,
        style=style,
        scale=scale,
        scale_bar=scale_bar,
        dpi=dpi,
    )


def link_state(
    *,
    image_source: str | None,
    segmentation_source: str | None,
    center: Iterable[float],
    resolution: Iterable[float],
    style: OverlayStyle,
    selection: Selection,
    contrast: tuple[float, float] | None = None,
    nm_per_px: float | None = None,
) -> dict[str, Any]:
    """A Neuroglancer state showing what the view shows: the selected segments with the
    colours they are drawn in (every one of them unless the palette is Neuroglancer's own,
    which Neuroglancer computes from the seed), both alphas and the seed."""
    if style.palette == NEUROGLANCER:
        seg_colors: Mapping[int, RGB] = selection.explicit
    else:
        seg_colors = colors.colors_of(selection, style)
    return make_state(
        center=[float(v) for v in center],
        resolution=[float(v) for v in resolution],
        image_source=image_source,
        segmentation_source=segmentation_source,
        segments=list(selection.ids),
        segment_colors=dict(seg_colors) or None,
        selected_alpha=style.selected_alpha,
        not_selected_alpha=style.alpha if style.show_unselected else 0.0,
        color_seed=style.color_seed if style.palette == NEUROGLANCER else None,
        contrast=contrast,
        nm_per_px=nm_per_px,
    )


def provenance_extra(inputs: Inputs | None, link: str) -> dict[str, Any]:
    """Provenance beyond the figure itself: the Neuroglancer link and the datastack."""
    extra: dict[str, Any] = {"neuroglancer_link": link}
    if inputs is not None and inputs.datastack:
        extra["datastack"] = {"name": inputs.datastack, "server": inputs.server_address}
    return extra


def spec_link(inputs: Inputs, spec: FigureSpec) -> str:
    """The Neuroglancer link of a figure (its centre, sources, selection and style)."""
    from .geometry import normalize_bounds

    box = normalize_bounds(spec.bounds)
    state = link_state(
        image_source=inputs.image_source,
        segmentation_source=inputs.segmentation_source,
        center=[float(v) for v in np.floor((box[0] + box[1]) / 2)],
        resolution=spec.resolution or (inputs.resolution or [1, 1, 1]),
        style=spec.style,
        selection=spec.selection,
    )
    return make_link(state, inputs.viewer_site or DEFAULT_NGL_URL)


def site_near(
    table: Any, x_nm: float, y_nm: float, z_nm: float, reach_nm: float, section_nm: float
) -> int | None:
    """The site whose centre is nearest (x, y) on the section holding ``z_nm``, within
    ``reach_nm``; None if there is none. One box query: cost does not grow with the table."""
    lo = [x_nm - reach_nm, y_nm - reach_nm, math.floor(z_nm / section_nm) * section_nm]
    hi = [x_nm + reach_nm, y_nm + reach_nm, lo[2] + section_nm]
    rows = table.in_box(lo, hi, (1.0, 1.0, 1.0))
    if len(rows) == 0:
        return None
    c = np.asarray(table.centers[rows], dtype=np.float64) * np.asarray(table.resolution)
    d = np.hypot(c[:, 0] - x_nm, c[:, 1] - y_nm)
    k = int(np.argmin(d))
    return int(rows[k]) if d[k] <= reach_nm * 1.5 else None


# -- the state ----------------------------------------------------------------------------
class ViewerState:
    """Everything the user can change in the viewer. Qt-free; see the module docstring."""

    def __init__(self, style: OverlayStyle = VIEWER_STYLE) -> None:
        self.events = Events()
        self.inputs: Inputs | None = None
        self.dataset: Dataset | None = None
        self.selection = Selection()
        self.style = style
        self.z = 0
        self.z_range = (0, 0)
        self.camera = Camera()
        self.contrast: tuple[float, float] | None = None
        self.contrast_bounds: tuple[float, float] = (0.0, 255.0)
        self.supervoxels = False
        self.sites: Any = None  # a SiteTable (imagery_gui.model.sites)
        self.site_order: np.ndarray | None = None  # rows as the Sites dock sorts/filters them
        self.current_site: int | None = None

    # -- derived ----------------------------------------------------------------------------
    @property
    def timestamp(self) -> Any:
        return self.inputs.timestamp if self.inputs is not None else None

    @property
    def resolution(self) -> np.ndarray:
        assert self.dataset is not None
        return np.asarray(self.dataset.resolution, dtype=np.float64)

    def segment_colors(self) -> dict[int, RGB]:
        """Colour of each selected id, as drawn."""
        return colors.colors_of(self.selection, self.style)

    def center_voxel(self) -> list[float]:
        res = self.resolution
        cx, cy = self.camera.center_nm
        return [math.floor(cx / res[0]), math.floor(cy / res[1]), float(self.z)]

    def readout(self, x_nm: float, y_nm: float, segment: int, missing: bool) -> str:
        """The status line's cursor readout: voxels, µm and the segment under the cursor."""
        res, z = self.resolution, self.z
        what = "no data (missing chunk)" if missing else (str(segment) if segment else "-")
        zn = (z + 0.5) * res[2]
        return (
            f"x {x_nm / res[0]:.0f}  y {y_nm / res[1]:.0f}  z {z}   "
            f"({x_nm / 1000:.3f}, {y_nm / 1000:.3f}, {zn / 1000:.3f}) µm   segment {what}"
        )

    def figure_spec(self, **kw: Any) -> FigureSpec:
        assert self.dataset is not None
        return figure_spec(
            self.dataset, self.camera, self.z, self.style, self.selection, self.timestamp, **kw
        )

    def link_state(self) -> dict[str, Any]:
        ds = self.dataset
        assert ds is not None
        return link_state(
            image_source=ds.image.url if ds.image else None,
            segmentation_source=ds.segmentation.url if ds.segmentation else None,
            center=self.center_voxel(),
            resolution=self.resolution,
            style=self.style,
            selection=self.selection,
            contrast=self.contrast if ds.image is not None else None,
            nm_per_px=self.camera.nm_per_px,
        )

    def link_sites(self) -> np.ndarray | None:
        """The sites a link out carries: the dock's order (its filter), at most
        MAX_LINK_SITES (a link is a URL; Neuroglancer itself slows down past that)."""
        if self.sites is None or len(self.sites) == 0:
            return None
        order = self.site_order if self.site_order is not None else np.arange(len(self.sites))
        return order[:MAX_LINK_SITES]

    def neuroglancer_link(self) -> str:
        site = self.inputs.viewer_site if self.inputs and self.inputs.viewer_site else None
        state = self.link_state()
        rows = self.link_sites()
        if rows is not None:
            from .sites_ngl import add_annotation_layer

            add_annotation_layer(state, self.sites, name="sites", indices=rows)
        return make_link(state, site or DEFAULT_NGL_URL)

    def provenance_extra(self) -> dict[str, Any]:
        return provenance_extra(self.inputs, self.neuroglancer_link())

    # -- changes ----------------------------------------------------------------------------
    def open(self, inputs: Inputs, dataset: Dataset, from_link: bool = False) -> None:
        """A dataset has been opened (its metadata read): centre, z, zoom, contrast, the
        link's style and the selection follow from what was asked for."""
        self.inputs, self.dataset = inputs, dataset
        res = self.resolution
        center = inputs.center
        if center is None:
            vb = dataset.volume_bounds(res)
            center = ((vb[0] + vb[1]) / 2).tolist()
        c_nm = np.asarray(center, dtype=np.float64) * res
        self.z_range = z_bounds(dataset)
        lo, hi = self.z_range
        self.z = int(min(max(math.floor(c_nm[2] / res[2]), lo), hi))
        zoom = inputs.nm_per_px or base_nm_per_px(dataset)
        self.camera = replace(
            self.camera, center_nm=(float(c_nm[0]), float(c_nm[1])), nm_per_px=zoom
        )
        self.supervoxels = False
        if dataset.image is not None:
            kind = dataset.image.dtype.kind
            top = float(np.iinfo(dataset.image.dtype).max) if kind in "ui" else 1.0
            self.contrast_bounds = (0.0, top)
            self.contrast = tuple(inputs.contrast) if inputs.contrast else (0.0, top)  # type: ignore[assignment]
        else:
            self.contrast = None
        if from_link:
            self.style = style_from_link(inputs, self.style)
        self.selection = selection_from_inputs(inputs)
        self.events.opened.emit(self)

    def set_style(self, **changes: Any) -> OverlayStyle:
        """Apply a user's style change (strict: a bad value raises StyleError, nothing
        changes)."""
        style = self.style.replace(**changes)
        self._put_style(style)
        return style

    def restore_style(self, values: Mapping[str, Any]) -> list[str]:
        """Apply stored values (settings): bad ones are clamped or dropped, with warnings."""
        style, warnings = OverlayStyle.from_dict(values, base=self.style)
        for w in warnings:
            self.events.warning.emit(w)
        self._put_style(style)
        return warnings

    def _put_style(self, style: OverlayStyle) -> None:
        if style != self.style:
            self.style = style
            self.events.style.emit(style)

    def set_selection(self, selection: Selection) -> None:
        if selection != self.selection:
            self.selection = selection
            self.events.selection.emit(selection)

    def select(self, ids: Iterable[int]) -> None:
        self.set_selection(self.selection.add(ids))

    def deselect(self, ids: Iterable[int]) -> None:
        self.set_selection(self.selection.remove(ids))

    def toggle(self, sid: int) -> None:
        if sid != 0:
            self.set_selection(self.selection.toggle(int(sid)))

    def clear_selection(self) -> None:
        self.set_selection(Selection())

    def set_color(self, sid: int, rgb: RGB | None) -> None:
        if int(sid) in self.selection.ids:
            self.set_selection(self.selection.with_color(int(sid), rgb))

    def replace_ids(self, successors: Mapping[int, Iterable[int]]) -> None:
        self.set_selection(self.selection.replaced(successors))

    def set_z(self, z: int) -> int:
        """Go to slice ``z`` (clamped to the volume); returns the z now shown."""
        lo, hi = self.z_range
        z = int(min(max(int(z), lo), hi))
        if z != self.z:
            self.z = z
            self.events.z.emit(z)
        return self.z

    def step_z(self, dz: int) -> int:
        return self.set_z(self.z + int(dz))

    def set_camera(self, camera: Camera) -> bool:
        """Where the view looks now; returns whether that changed (listeners were told)."""
        if camera == self.camera:
            return False
        self.camera = camera
        self.events.camera.emit(camera)
        return True

    def set_contrast(self, lo: float, hi: float) -> None:
        a, b = self.contrast_bounds
        lo, hi = min(max(float(lo), a), b), min(max(float(hi), a), b)
        new = (min(lo, hi), max(lo, hi))
        if new != self.contrast:
            self.contrast = new
            self.events.contrast.emit(new)

    def set_supervoxels(self, on: bool) -> None:
        if bool(on) != self.supervoxels:
            self.supervoxels = bool(on)
            self.events.segmentation.emit(self.supervoxels, self.timestamp)

    # -- sites ------------------------------------------------------------------------------
    def set_sites(self, table: Any) -> None:
        """Another site table (None: none); no site is current until one is chosen."""
        self.sites, self.site_order, self.current_site = table, None, None
        self.events.sites.emit(table)
        self.events.current_site.emit(None)

    def set_site_order(self, rows: np.ndarray | None) -> None:
        """The order (and subset) next/previous walk through: the dock's sort and filter."""
        self.site_order = None if rows is None else np.asarray(rows, dtype=np.intp)
        self.events.site_order.emit(self.site_order)

    def site_center_nm(self, row: int) -> np.ndarray:
        table = self.sites
        assert table is not None
        out: np.ndarray = np.asarray(table.centers[row], dtype=np.float64) * np.asarray(
            table.resolution, dtype=np.float64
        )
        return out

    def go_to_site(self, row: int) -> None:
        """Look at site ``row``: its section, centred (the window moves the camera on the
        event), its pre and post segments selected."""
        table = self.sites
        if table is None or not 0 <= int(row) < len(table):
            return
        row = int(row)
        c = self.site_center_nm(row)
        self.current_site = row
        partners = [int(v) for v in (table.pre_root[row], table.post_root[row]) if int(v)]
        if partners:
            self.select(partners)
        if self.dataset is not None:
            self.set_z(math.floor(c[2] / self.resolution[2]))
        self.events.current_site.emit(row)

    def step_site(self, delta: int) -> int | None:
        """The next (``delta`` 1) or previous (-1) site in the dock's order; returns it."""
        if self.sites is None or len(self.sites) == 0:
            return None
        order = self.site_order if self.site_order is not None else np.arange(len(self.sites))
        if len(order) == 0:
            return None
        pos: np.ndarray = (
            np.flatnonzero(order == self.current_site)
            if self.current_site is not None
            else np.zeros(0, dtype=np.intp)
        )
        if len(pos) == 0:
            k = 0 if delta >= 0 else len(order) - 1
        else:
            k = int(min(max(int(pos[0]) + int(delta), 0), len(order) - 1))
        self.go_to_site(int(order[k]))
        return int(order[k])

    def replace_dataset(self, dataset: Dataset) -> None:
        """The same data reopened (e.g. with another cache): everything else stays."""
        self.dataset = dataset
