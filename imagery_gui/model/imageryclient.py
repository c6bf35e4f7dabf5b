"""ImageryClient-compatible API.

``from imagery_gui import ImageryClient, bounds_from_center`` is a drop-in replacement for
``imageryclient`` 1.0.4: same names, signatures, defaults, return types and file names, so
existing scripts run unchanged. It keeps ImageryClient's axis convention at its boundary
(arrays are ``(x, y)`` or ``(x, y, z)``) while everything underneath is the project's
canonical ``(z, y, x)`` path (:class:`imagery_gui.model.dataset.Dataset`).

Where ImageryClient is wrong, this is right (each case is tested and listed in the README):

* ids above 2**53 survive resizing (ImageryClient's ``ndimage.zoom`` rounds them through
  float64, which changes every 18-digit MICrONS root id);
* ``convert_to_int64`` checks the int64 range for real (theirs compares against 2**64-1,
  so it can never fail) and warns instead of raising when ids do not fit;
* ``imagery=False`` works without an explicit resolution (defaults to the segmentation's);
* ``scale_to_bounds=None`` rescales when no mip is given, as documented (theirs never does);
* the ``save_*`` functions accept 2D cutouts (theirs crash), and write files atomically;
* a cutout one voxel deep drops only z, never a 1-pixel-wide x or y axis.

It is also faster: chunk reads are cached in memory between calls (``lru_bytes``), and
split masks are a :class:`~imagery_gui.model.segments.SplitMasks`: a dict that holds the
label image once and makes each mask when it is read, instead of N full-frame masks.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np

from .dataset import DEFAULT_LRU_BYTES, Dataset, bounds_shape_zyx, rescale_to_bounds
from .geometry import bounds_from_center, normalize_bounds

# _to_ic/_from_ic and save_image_slices live in icio (export writes masks with them too);
# save_image_slices stays importable from here and from the package root.
from .icio import from_ic as _from_ic  # noqa: F401 - kept importable
from .icio import save_image_slices
from .icio import to_ic as _to_ic
from .segments import SplitMasks, to_int64_if_safe

__all__ = ["ImageryClient", "bounds_from_center", "save_image_slices"]


class ImageryClient:
    """Tool to help download imagery and segmentation data.

    Drop-in replacement for ``imageryclient.ImageryClient`` (1.0.4). Can either take
    explicit cloudvolume paths for imagery and segmentation or use the Info Service of a
    CAVEclient to look up the right paths.

    Parameters
    ----------
    client : caveclient.CAVEclient or None, optional
        A pre-initialized CAVEclient to use for configuration and authentication. If used,
        image source, segmentation source, and resolution come from the info service.
    resolution : array-like or 'image' or 'segmentation', optional
        Voxel resolution (nm) that bounds are given in. Default 'image' (the imagery's
        default-mip resolution), or 'segmentation' when ``imagery=False``.
    segmentation : bool, optional
        If False, no segmentation is used. Default True.
    imagery : bool, optional
        If False, no imagery is used. Default True.
    image_source, segmentation_source : str, optional
        cloud-volume paths.
    image_mip, segmentation_mip : int, optional
        Default mips; default is the first mip not labeled placeholder.
    auth_token : str or None, optional
        Token for cloud-volume. If None and a client is given, the client's token.
    timestamp : datetime.datetime, 'now' or None
        Fixed timestamp for segmentation (graphene) lookups; None means "now" at each call.
    lru_bytes : int, optional (keyword only, not in ImageryClient)
        In-memory chunk cache per layer, so repeated or overlapping cutouts are not
        downloaded again. Default 256 MiB; 0 disables it.
    disk_cache : bool or str, optional (keyword only, not in ImageryClient)
        cloud-volume's on-disk cache. Default off.
    """

    def __init__(
        self,
        client: Any = None,
        resolution: Any = None,
        segmentation: bool = True,
        imagery: bool = True,
        image_source: str | None = None,
        segmentation_source: str | None = None,
        image_mip: int | None = None,
        segmentation_mip: int | None = None,
        auth_token: str | None = None,
        timestamp: Any = None,
        *,
        lru_bytes: int = DEFAULT_LRU_BYTES,
        disk_cache: bool | str = False,
    ) -> None:
        self._image_source = image_source
        self._segmentation_source = segmentation_source
        self._auth_token = auth_token
        if timestamp == "now":
            self._timestamp = datetime.datetime.now().timestamp()
        else:
            self._timestamp = timestamp
        self._use_imagery = bool(imagery)
        self._use_segmentation = bool(segmentation)
        self._resolution_arg = resolution
        if client is not None:
            self._configure_from_client(client)
        if self._use_imagery and self._image_source is None:
            raise ValueError("imagery=True needs an image_source (or a client with one)")
        if self._use_segmentation and self._segmentation_source is None:
            raise ValueError("segmentation=True needs a segmentation_source (or a client with one)")
        if not (self._use_imagery or self._use_segmentation):
            raise ValueError("at least one of imagery and segmentation must be True")
        res = self._resolution_arg
        if res is None:
            res = "image" if self._use_imagery else "segmentation"
        self._dataset = Dataset(
            image_source=self._image_source if self._use_imagery else None,
            segmentation_source=self._segmentation_source if self._use_segmentation else None,
            resolution=res,
            image_mip=image_mip,
            segmentation_mip=segmentation_mip,
            secrets=self._auth_token,
            timestamp=self._timestamp,
            lru_bytes=lru_bytes,
            disk_cache=disk_cache,
        )

    def _configure_from_client(self, client: Any) -> None:
        if self._auth_token is None:
            self._auth_token = client.auth.token
        if self._image_source is None and self._use_imagery:
            self._image_source = client.info.image_source()
        if self._segmentation_source is None and self._use_segmentation:
            self._segmentation_source = client.info.segmentation_source()
        if self._resolution_arg is None:
            self._resolution_arg = client.info.viewer_resolution()

    def __repr__(self) -> str:
        return (
            f"ImageryClient(image_source={self._image_source!r}, "
            f"segmentation_source={self._segmentation_source!r})"
        )

    # -- properties (same as ImageryClient) --------------------------------------------------
    @property
    def dataset(self) -> Dataset:
        """The underlying :class:`~imagery_gui.model.dataset.Dataset` (canonical arrays)."""
        return self._dataset

    @property
    def token(self) -> str | None:
        return self._auth_token

    @property
    def timestamp(self) -> Any:
        if self._timestamp is None:
            return datetime.datetime.now().timestamp()
        return self._timestamp

    @property
    def resolution(self) -> np.ndarray:
        """The voxel resolution assumed when locations are used for the client."""
        return self._dataset.resolution

    @property
    def image_source(self) -> str | None:
        """Image cloudpath."""
        return self._image_source

    @property
    def segmentation_source(self) -> str | None:
        """Segmentation cloudpath."""
        return self._segmentation_source

    @property
    def image_cv(self) -> Any:
        """Imagery CloudVolume (None when ``imagery=False``)."""
        return self._dataset.image.cv if self._dataset.image is not None else None

    @property
    def segmentation_cv(self) -> Any:
        """Segmentation CloudVolume (None when ``segmentation=False``)."""
        layer = self._dataset.segmentation
        return layer.cv if layer is not None else None

    @property
    def image_mip(self) -> int:
        """Default imagery mip (-1 when imagery is off)."""
        return self._dataset.image_mip

    @property
    def segmentation_mip(self) -> int:
        """Default segmentation mip (-1 when segmentation is off)."""
        return self._dataset.segmentation_mip

    # ImageryClient's private names, which some scripts read.
    _base_imagery_mip = image_mip
    _base_segmentation_mip = segmentation_mip

    # -- sizes -----------------------------------------------------------------------------
    @staticmethod
    def _compute_dimensions_from_image_size(image_size, mip_resolution, resolution):
        if len(image_size) == 3:
            width, height, depth = image_size
            return [
                int(width) * mip_resolution[0] / resolution[0],
                int(height) * mip_resolution[1] / resolution[1],
                int(depth) * mip_resolution[2] / resolution[2],
            ]
        if len(image_size) == 2:
            width, height = image_size
            return [
                int(width) * mip_resolution[0] / resolution[0],
                int(height) * mip_resolution[1] / resolution[1],
                1,
            ]
        raise ValueError(f"image_size must have 2 or 3 elements, got {image_size!r}")

    def image_bbox_size_from_dimensions(self, image_size, mip=None, resolution=None):
        """Get the bbox_size equivalent for an imagery cutout with specified pixel dimensions.

        Parameters
        ----------
        image_size : list-like
            Image size in pixels (2-element) or voxels (3-element).
        mip : int or None, optional
            Mip for which the image would be computed. Defaults to the client default.
        resolution : list-like or None, optional
            Resolution to use for the bbox_size. Defaults to the client default.

        Returns
        -------
        list
            Argument for bbox_size that would give the desired pixel dimensions.
        """
        layer = self._dataset._need(self._dataset.image, "image")
        mip = self._dataset.image_mip if mip is None else layer.resolve_mip(mip)
        res = self._dataset.coord_resolution(resolution)
        return self._compute_dimensions_from_image_size(image_size, layer.resolution(mip), res)

    def segmentation_bbox_size_from_dimensions(self, image_size, mip=None, resolution=None):
        """Get the bbox_size equivalent for a segmentation cutout with specified pixel dimensions.

        Parameters
        ----------
        image_size : list-like
            Image size in pixels (2-element) or voxels (3-element).
        mip : int or None, optional
            Mip for which the image would be computed. Defaults to the client default.
        resolution : list-like or None, optional
            Resolution to use for the bbox_size. Defaults to the client default.

        Returns
        -------
        list
            Argument for bbox_size that would give the desired pixel dimensions.
        """
        layer = self._dataset._need(self._dataset.segmentation, "segmentation")
        mip = self._dataset.segmentation_mip if mip is None else layer.resolve_mip(mip)
        res = self._dataset.coord_resolution(resolution)
        return self._compute_dimensions_from_image_size(image_size, layer.resolution(mip), res)

    # -- cutouts ---------------------------------------------------------------------------
    def _box(self, bounds, bbox_size, image_size, layer, mip, res):
        if image_size is not None:
            if bbox_size is not None:
                raise ValueError("Cannot set both image size and bbox size!")
            bbox_size = self._compute_dimensions_from_image_size(
                image_size, layer.resolution(mip), res
            )
        return normalize_bounds(bounds, bbox_size)

    def image_cutout(
        self,
        bounds,
        bbox_size=None,
        image_size=None,
        mip=None,
        resolution=None,
        scale_to_bounds=None,
    ):
        """Get an image cutout for a certain location or set of bounds and a mip level.

        Parameters
        ----------
        bounds : array
            Either a 2x3 array of a lower bound and upper bound point in voxels at
            ``resolution``, or, if bbox_size or image_size is set, the 3-element center.
        bbox_size : array or None, optional
            Dimensions (2 or 3 elements) of the box around the center ``bounds``.
        image_size : array or None, optional
            Size of the image wanted in pixels at ``mip``. Cannot be set with bbox_size.
        mip : int, optional
            Mip level of imagery, by default the client default.
        resolution : list-like, optional
            Voxel resolution of bounds and bbox_size. Defaults to the client default.
        scale_to_bounds : bool, optional
            If True, rescale to one pixel per voxel of ``resolution``. Default None
            rescales if neither mip nor image_size is given.

        Returns
        -------
        numpy.ndarray
            ``(x, y)`` or ``(x, y, z)`` image.
        """
        ds = self._dataset
        if ds.image is None:
            return np.array([])
        res = ds.coord_resolution(resolution)
        m = ds.image_mip if mip is None else ds.image.resolve_mip(mip)
        if scale_to_bounds is None:
            scale_to_bounds = mip is None and image_size is None
        box = self._box(bounds, bbox_size, image_size, ds.image, m, res)
        img = ds.read_image(box, m, res)
        if scale_to_bounds:
            img = rescale_to_bounds(img, bounds_shape_zyx(box))
        return _to_ic(img)

    def segmentation_cutout(
        self,
        bounds,
        root_ids="all",
        bbox_size=None,
        image_size=None,
        mip=None,
        resolution=None,
        timestamp=None,
        scale_to_bounds=None,
        convert_to_int64=True,
    ):
        """Get a cutout of the segmentation for some or all root ids between set bounds.

        Parameters
        ----------
        bounds : 2x3 list of ints
            Lower and upper bound (or the center, with bbox_size / image_size).
        root_ids : list, None, or 'all', optional
            A list keeps only those ids (others become 0); None gives supervoxel ids;
            'all' gives every root id. Default 'all'.
        bbox_size, image_size : array or None, optional
            As in :meth:`image_cutout`.
        mip : int, optional
            Mip level of the segmentation, by default the client default.
        resolution : list-like, optional
            Voxel resolution of bounds and bbox_size. Defaults to the client default.
        timestamp : datetime or None, optional
            Timestamp for dynamic (graphene) segmentation.
        scale_to_bounds : bool or None, optional
            As in :meth:`image_cutout`.
        convert_to_int64 : bool, optional
            Convert to int64 when every id fits (warns and keeps uint64 otherwise).

        Returns
        -------
        numpy.ndarray
            ``(x, y)`` or ``(x, y, z)`` array of ids.
        """
        ds = self._dataset
        if ds.segmentation is None:
            return np.array([])
        res = ds.coord_resolution(resolution)
        m = ds.segmentation_mip if mip is None else ds.segmentation.resolve_mip(mip)
        if scale_to_bounds is None:
            scale_to_bounds = mip is None and image_size is None
        box = self._box(bounds, bbox_size, image_size, ds.segmentation, m, res)
        seg = ds.read_segmentation(box, m, res, root_ids, timestamp)
        if convert_to_int64:
            seg = to_int64_if_safe(seg)
        if scale_to_bounds:
            seg = rescale_to_bounds(seg, bounds_shape_zyx(box))
        return _to_ic(seg)

    def split_segmentation_cutout(
        self,
        bounds,
        root_ids="all",
        include_null_root=False,
        bbox_size=None,
        image_size=None,
        mip=None,
        resolution=None,
        timestamp=None,
        scale_to_bounds=None,
    ):
        """Segmentation as a dict of binary masks, one per root id (keys in ascending order).

        Parameters are those of :meth:`segmentation_cutout`, plus ``include_null_root``
        (also make a mask for id 0).

        Returns
        -------
        dict
            Root id to ``(x, y[, z])`` int mask with 1 where the object is: a
            :class:`~imagery_gui.model.segments.SplitMasks`, which holds the label image
            once and makes each mask when it is read.
        """
        seg = self.segmentation_cutout(
            bounds,
            root_ids=root_ids,
            bbox_size=bbox_size,
            image_size=image_size,
            mip=mip,
            resolution=resolution,
            timestamp=timestamp,
            scale_to_bounds=scale_to_bounds,
            convert_to_int64=False,
        )
        if seg.size == 0:
            return {}
        labels = to_int64_if_safe(seg, copy=False)  # the dict's own label image
        return SplitMasks.from_labels(labels, include_null_root=include_null_root)

    def image_and_segmentation_cutout(
        self,
        bounds,
        image_mip=None,
        segmentation_mip=None,
        root_ids="all",
        resize=True,
        split_segmentations=False,
        include_null_root=False,
        bbox_size=None,
        resolution=None,
        timestamp=None,
        scale_to_bounds=None,
        convert_to_int64=True,
    ):
        """Download aligned and scaled imagery and segmentation at a given resolution.

        Parameters
        ----------
        bounds : 2x3 list of ints
            Lower and upper bound (or the center, with bbox_size).
        image_mip, segmentation_mip : int, optional
            Mips, by default the client defaults.
        root_ids : list, None, or 'all', optional
            As in :meth:`segmentation_cutout`.
        resize : bool, optional
            Upscale the coarser cutout to the finer one's grid. Default True.
        split_segmentations : bool, optional
            Return the segmentation as a dict of masks. Default False.
        include_null_root : bool, optional
            With split_segmentations, also a mask for id 0.
        bbox_size : array or None, optional
            Size of the box around the center ``bounds``.
        resolution : list-like, optional
            Voxel resolution of bounds and bbox_size. Defaults to the client default.
        timestamp : datetime or None, optional
            Timestamp for dynamic segmentation.
        scale_to_bounds : bool or None, optional
            Rescale to one pixel per voxel of ``resolution``. Default None rescales when no
            mip is given.
        convert_to_int64 : bool, optional
            As in :meth:`segmentation_cutout`.

        Returns
        -------
        numpy.ndarray
            Image ``(x, y[, z])``.
        numpy.ndarray or dict
            Segmentation array, or dict of masks with split_segmentations.
        """
        ds = self._dataset
        res = ds.coord_resolution(resolution)
        if scale_to_bounds is None:
            scale_to_bounds = image_mip is None and segmentation_mip is None
        box = normalize_bounds(bounds, bbox_size)
        img, seg = ds.aligned_cutout(
            box,
            image_mip=image_mip,
            segmentation_mip=segmentation_mip,
            resolution=res,
            root_ids=root_ids,
            timestamp=timestamp,
            resize=resize,
            scale_to_bounds=bool(scale_to_bounds),
        )
        if split_segmentations:
            labels = _to_ic(to_int64_if_safe(seg, copy=False))
            return _to_ic(img), SplitMasks.from_labels(labels, include_null_root=include_null_root)
        if convert_to_int64:
            seg = to_int64_if_safe(seg)
        return _to_ic(img), _to_ic(seg)

    # -- saving ------------------------------------------------------------------------------
    def save_imagery(
        self,
        filename_prefix,
        bounds=None,
        mip=None,
        precomputed_image=None,
        slice_axis=2,
        bbox_size=None,
        image_size=None,
        resolution=None,
        scale_to_bounds=None,
        verbose=False,
        **kwargs,
    ):
        """Save queried or precomputed imagery to PNG files (``{prefix}_imagery.png``).

        Parameters are those of :meth:`image_cutout`, plus ``precomputed_image`` (save this
        array instead of downloading), ``slice_axis`` (axis of a 3D array to slice along,
        default 2 = z) and ``verbose``. Extra keyword arguments go to the PNG writer.
        """
        if precomputed_image is None:
            if bounds is None:
                raise ValueError("give bounds (or precomputed_image) to save imagery")
            img = self.image_cutout(
                bounds,
                mip=mip,
                bbox_size=bbox_size,
                image_size=image_size,
                resolution=resolution,
                scale_to_bounds=scale_to_bounds,
            )
        else:
            img = precomputed_image
        save_image_slices(
            filename_prefix, "imagery", img, slice_axis, "imagery", verbose=verbose, **kwargs
        )

    def save_segmentation_masks(
        self,
        filename_prefix,
        bounds=None,
        mip=None,
        root_ids="all",
        precomputed_masks=None,
        segmentation_colormap=None,
        slice_axis=2,
        include_null_root=False,
        bbox_size=None,
        image_size=None,
        resolution=None,
        timestamp=None,
        scale_to_bounds=None,
        verbose=False,
        **kwargs,
    ):
        """Save segmentation masks as PNGs (``{prefix}_root_id_{id}.png``).

        Parameters are those of :meth:`split_segmentation_cutout`, plus
        ``precomputed_masks`` (save this dict instead of downloading),
        ``segmentation_colormap`` (root id to 0-255 RGB or RGBA; others white),
        ``slice_axis`` and ``verbose``.
        """
        if segmentation_colormap is None:
            segmentation_colormap = {}
        if precomputed_masks is None:
            if bounds is None:
                raise ValueError("give bounds (or precomputed_masks) to save masks")
            seg_dict = self.split_segmentation_cutout(
                bounds=bounds,
                root_ids=root_ids,
                mip=mip,
                bbox_size=bbox_size,
                image_size=image_size,
                include_null_root=include_null_root,
                resolution=resolution,
                timestamp=timestamp,
                scale_to_bounds=scale_to_bounds,
            )
        else:
            seg_dict = precomputed_masks
        split = seg_dict.label_image() if isinstance(seg_dict, SplitMasks) else None
        if split is not None:
            # The split cutout's own dict: one boolean mask at a time from its label image
            # (the same PNGs; no int64 mask is made).
            pairs: Any = ((k, seg_dict.mask_of(k, bool)) for k in split[1])
        else:
            pairs = seg_dict.items()
        for root_id, seg_mask in pairs:
            save_image_slices(
                filename_prefix,
                f"root_id_{root_id}",
                seg_mask,
                slice_axis,
                "mask",
                color=segmentation_colormap.get(root_id),
                verbose=verbose,
                **kwargs,
            )

    def save_image_and_segmentation_masks(
        self,
        filename_prefix,
        bounds=None,
        image_mip=None,
        segmentation_mip=None,
        root_ids="all",
        include_null_root=False,
        segmentation_colormap=None,
        resize=True,
        precomputed_data=None,
        slice_axis=2,
        bbox_size=None,
        resolution=None,
        timestamp=None,
        scale_to_bounds=None,
        **kwargs,
    ):
        """Save aligned imagery and segmentation masks as PNGs.

        Parameters are those of :meth:`image_and_segmentation_cutout`, plus
        ``precomputed_data`` (an ``(image, masks)`` tuple to save instead of downloading),
        ``segmentation_colormap`` and ``slice_axis``.
        """
        if precomputed_data is not None:
            img, seg_dict = precomputed_data
        else:
            if bounds is None:
                raise ValueError("give bounds (or precomputed_data) to save a cutout")
            img, seg_dict = self.image_and_segmentation_cutout(
                bounds=bounds,
                image_mip=image_mip,
                segmentation_mip=segmentation_mip,
                bbox_size=bbox_size,
                root_ids=root_ids,
                resize=resize,
                include_null_root=include_null_root,
                split_segmentations=True,
                resolution=resolution,
                timestamp=timestamp,
                scale_to_bounds=scale_to_bounds,
            )
        self.save_imagery(filename_prefix, precomputed_image=img, slice_axis=slice_axis, **kwargs)
        self.save_segmentation_masks(
            filename_prefix,
            precomputed_masks=seg_dict,
            slice_axis=slice_axis,
            segmentation_colormap=segmentation_colormap,
            **kwargs,
        )
