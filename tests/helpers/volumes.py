"""Build real Precomputed volumes for tests (written and read by cloud-volume)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from imagery_gui.model.writer import write_precomputed

BIG_OFFSET = 864691135000000000


@dataclass(frozen=True)
class VolumePair:
    image: str
    segmentation: str
    center: tuple[int, int, int]  # at the image's mip-0 resolution
    image_path: Path | None = None
    segmentation_path: Path | None = None


# Crops of the real volumes, committed (tests/data/make_fixture.py made them): every clone has
# them, so the real-data tests never skip.
FIXTURE_EM_DIR = Path(__file__).resolve().parents[1] / "data" / "em"


def em_data_dir() -> Path | None:
    """The full real volumes, optional: ``$IMAGERY_GUI_EM_DATA`` if set, else ``../shared/em_data``.

    An explicit ``$IMAGERY_GUI_EM_DATA`` is the only place looked at (so
    ``IMAGERY_GUI_EM_DATA=/nonexistent`` runs the suite as on a bare clone).
    """
    env = os.environ.get("IMAGERY_GUI_EM_DATA")
    if env:
        candidates = [Path(env)]
    else:
        candidates = [Path(__file__).resolve().parents[3] / "shared" / "em_data"]
    for c in candidates:
        if (c / "precomputed").is_dir():
            return c
    return None


def real_em_dir() -> Path:
    """Where the real-data fixtures read from: always the committed crops."""
    return FIXTURE_EM_DIR


def blob_labels(shape_xyz, n, rng, background_frac=0.08) -> np.ndarray:
    """Dense labels 1..n (uint64, x,y,z) grown from random seeds, with a few 0 holes."""
    nx, ny, nz = shape_xyz
    out = np.zeros(shape_xyz, dtype=np.uint64)
    pts = rng.uniform([0, 0], [nx, ny], size=(n, 2))
    drift = rng.normal(0, 0.8, size=(n, 2))
    for z in range(nz):
        seeds = np.zeros((nx, ny), dtype=np.int32)
        p = (pts + drift * z).astype(int)
        p[:, 0] = np.clip(p[:, 0], 0, nx - 1)
        p[:, 1] = np.clip(p[:, 1], 0, ny - 1)
        seeds[p[:, 0], p[:, 1]] = np.arange(1, n + 1)
        _, (ix, iy) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
        out[:, :, z] = seeds[ix, iy]
    holes = rng.random(n) < background_frac
    out[np.isin(out, np.flatnonzero(holes) + 1)] = 0
    return out


def image_from_labels(labels_xyz: np.ndarray, factor: int, rng) -> np.ndarray:
    """uint8 EM-like image (x, y, z) at ``factor`` times the labels' x/y resolution."""
    up = np.repeat(np.repeat(labels_xyz, factor, axis=0), factor, axis=1)
    edge = np.zeros(up.shape, dtype=bool)
    dx = up[1:] != up[:-1]
    edge[1:] |= dx
    edge[:-1] |= dx
    dy = up[:, 1:] != up[:, :-1]
    edge[:, 1:] |= dy
    edge[:, :-1] |= dy
    base = (150 + (up % np.uint64(47)).astype(np.float32)).astype(np.float32)
    base[edge] = 60
    base += rng.normal(0, 8, size=base.shape).astype(np.float32)
    return np.asfortranarray(np.clip(base, 0, 255).astype(np.uint8))


def _with_ids(labels: np.ndarray, id_offset: int | None) -> np.ndarray:
    if not id_offset:
        return labels
    out = labels.astype(np.uint64).copy()
    nz = out != 0
    if id_offset > 0:
        out[nz] += np.uint64(id_offset)
    else:
        out[nz] -= np.uint64(-id_offset)
    return out


def build_synthetic_pair(folder: Path, id_offset: int) -> VolumePair:
    """Image 4x4x40 (384x320x12, raw) and segmentation 8x8x40 (192x160x12), 3 mips each."""
    if (folder / "image" / "info").is_file():
        return _pair(folder, (2000 + 192, 4000 + 160, 106))
    rng = np.random.default_rng(7)
    labels = blob_labels((192, 160, 12), 90, rng)
    image = image_from_labels(labels, 2, rng)
    labels = _with_ids(labels, id_offset)
    write_precomputed(
        folder / "segmentation",
        labels,
        layer_type="segmentation",
        resolution=(8, 8, 40),
        voxel_offset=(1000, 2000, 100),
        chunk_size=(64, 64, 8),
        encoding="compressed_segmentation",
        num_mips=3,
    )
    write_precomputed(
        folder / "image",
        image,
        layer_type="image",
        resolution=(4, 4, 40),
        voxel_offset=(2000, 4000, 100),
        chunk_size=(64, 64, 8),
        encoding="raw",
        num_mips=3,
    )
    return _pair(folder, (2000 + 192, 4000 + 160, 106))


def build_pinky_pair(folder: Path, em_data: Path, id_offset: int | None) -> VolumePair:
    """A 256x256x16 crop of real pinky40 segmentation plus imagery made from it."""
    if (folder / "image" / "info").is_file():
        return _pair(folder, (768, 768, 108))
    from cloudvolume import CloudVolume

    src = CloudVolume(
        f"file://{em_data / 'precomputed' / 'pinky40' / 'segmentation'}", progress=False
    )
    labels = np.asarray(src[256:512, 256:512, 100:116])[..., 0]
    labels = _with_ids(labels, id_offset)
    rng = np.random.default_rng(11)
    image = image_from_labels(labels, 2, rng)
    write_precomputed(
        folder / "segmentation",
        labels,
        layer_type="segmentation",
        resolution=(8, 8, 40),
        voxel_offset=(256, 256, 100),
        chunk_size=(128, 128, 16),
        encoding="compressed_segmentation",
        num_mips=3,
    )
    write_precomputed(
        folder / "image",
        image,
        layer_type="image",
        resolution=(4, 4, 40),
        voxel_offset=(512, 512, 100),
        chunk_size=(128, 128, 16),
        encoding="jpeg",
        num_mips=3,
    )
    return _pair(folder, (768, 768, 108))


def _pair(folder: Path, center) -> VolumePair:
    return VolumePair(
        image=f"precomputed://file://{folder / 'image'}",
        segmentation=f"precomputed://file://{folder / 'segmentation'}",
        center=center,
        image_path=folder / "image",
        segmentation_path=folder / "segmentation",
    )


def build_medulla_pair(folder: Path, em_data: Path, id_offset: int | None) -> VolumePair:
    """A 160x160x24 crop of the real medulla FIB-SEM image and its segmentation (10 nm)."""
    if (folder / "image" / "info").is_file():
        return _pair(folder, (120, 130, 112))
    from cloudvolume import CloudVolume

    base = em_data / "precomputed" / "medulla_fib"
    img = CloudVolume(f"file://{base / 'image'}", progress=False)[40:200, 50:210, 100:124]
    seg = CloudVolume(f"file://{base / 'segmentation'}", progress=False)[40:200, 50:210, 100:124]
    labels = _with_ids(np.asarray(seg)[..., 0], id_offset)
    for name, arr, kind, enc in (
        ("image", np.asarray(img)[..., 0], "image", "raw"),
        ("segmentation", labels, "segmentation", "compressed_segmentation"),
    ):
        write_precomputed(
            folder / name,
            arr,
            layer_type=kind,
            resolution=(10, 10, 10),
            voxel_offset=(40, 50, 100),
            chunk_size=(64, 64, 8),
            encoding=enc,
            num_mips=3,
        )
    return _pair(folder, (120, 130, 112))


def sharded_copy(
    src_url: str,
    dst: Path,
    shard_bytes: int = 8 * 1024**2,
    skip_absent: bool = False,
    mips: int = 1,
) -> None:
    """Write the first ``mips`` scales (default: the full-resolution one) of the layer at
    ``src_url`` again at ``dst`` as sharded Precomputed (their chunk sizes and encoding,
    about ``shard_bytes`` of voxels per shard), through cloud-volume's own sharded writes,
    one whole shard at a time. With ``skip_absent`` chunk files missing from the source are
    read as 0 and left out of the shards (cloud-volume's ``delete_black_uploads``), as a
    sharded layer written from an incomplete source lacks them."""
    import copy

    from cloudvolume import Bbox, CloudVolume

    src = CloudVolume(src_url, progress=False, fill_missing=skip_absent)
    info = copy.deepcopy(src.info)
    info["scales"] = info["scales"][:mips]
    out = CloudVolume(f"file://{dst}", info=info, progress=False, delete_black_uploads=skip_absent)
    for mip in range(len(info["scales"])):
        out.image.to_sharded(uncompressed_shard_bytesize=shard_bytes, mip=mip)
    out.commit_info()
    for mip in range(len(info["scales"])):
        src_m = CloudVolume(src_url, mip=mip, progress=False, fill_missing=skip_absent)
        out_m = CloudVolume(
            f"file://{dst}", mip=mip, progress=False, delete_black_uploads=skip_absent
        )
        arr = np.asarray(src_m[src_m.bounds])
        lo = np.array(src_m.bounds.minpt, dtype=np.int64)
        hi = np.array(src_m.bounds.maxpt, dtype=np.int64)
        shape = np.array(out_m.image.shard_shape(mip), dtype=np.int64)
        for x in range(lo[0], hi[0], shape[0]):
            for y in range(lo[1], hi[1], shape[1]):
                for z in range(lo[2], hi[2], shape[2]):
                    a = np.array([x, y, z])
                    b = np.minimum(a + shape, hi)
                    part = arr[a[0] - lo[0] : b[0] - lo[0], a[1] - lo[1] : b[1] - lo[1],
                               a[2] - lo[2] : b[2] - lo[2]]  # fmt: skip
                    out_m[Bbox(a, b)] = np.ascontiguousarray(part)
