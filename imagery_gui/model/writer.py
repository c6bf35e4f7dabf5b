"""Writing Precomputed volumes (used by the demo generator and by the tests' fixtures)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def downsample(arr: np.ndarray, factor: Sequence[int], kind: str) -> np.ndarray:
    """One mip down from an ``(x, y, z)`` array: 2x2 mean for images, striding for labels."""
    fx, fy, fz = (int(f) for f in factor)
    if kind == "segmentation":
        return np.asfortranarray(arr[::fx, ::fy, ::fz])
    sx, sy, sz = (arr.shape[0] // fx) * fx, (arr.shape[1] // fy) * fy, (arr.shape[2] // fz) * fz
    blk = arr[:sx, :sy, :sz].reshape(sx // fx, fx, sy // fy, fy, sz // fz, fz).astype(np.float64)
    out = blk.mean(axis=(1, 3, 5))
    if np.issubdtype(arr.dtype, np.integer):
        out = np.floor(out + 0.5)
    return np.asfortranarray(out.astype(arr.dtype))


def write_precomputed(
    folder: str | Path,
    arr: np.ndarray,
    *,
    layer_type: str,
    resolution: Sequence[float],
    voxel_offset: Sequence[int] = (0, 0, 0),
    chunk_size: Sequence[int] = (64, 64, 16),
    encoding: str = "raw",
    num_mips: int = 1,
    factor: Sequence[int] = (2, 2, 1),
    jpeg_quality: int = 90,
    placeholder_mips: Sequence[int] = (),
    description: str = "",
) -> dict:
    """Write an ``(x, y, z)`` array as a Precomputed layer with ``num_mips`` scales.

    Each mip is computed from the previous one (:func:`downsample`) and written through
    cloud-volume, so the files are exactly what cloud-volume itself produces. Returns the
    ``info`` dict. Scales listed in ``placeholder_mips`` get the key ``"placeholder"``.
    """
    from cloudvolume import CloudVolume

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=False)
    mips = [np.asfortranarray(arr)]
    for _ in range(1, num_mips):
        mips.append(downsample(mips[-1], factor, layer_type))
    scales = []
    for m, data in enumerate(mips):
        f = [int(fa) ** m for fa in factor]
        res = [float(r) * fm for r, fm in zip(resolution, f)]
        scale: dict[str, Any] = {
            "key": "placeholder" if m in placeholder_mips else "_".join(f"{r:g}" for r in res),
            "resolution": [int(r) if float(r).is_integer() else r for r in res],
            "size": [int(s) for s in data.shape[:3]],
            "voxel_offset": [int(o) // fm for o, fm in zip(voxel_offset, f)],
            "chunk_sizes": [[int(c) for c in chunk_size]],
            "encoding": encoding,
        }
        if encoding == "jpeg":
            scale["jpeg_quality"] = int(jpeg_quality)
        if encoding == "compressed_segmentation":
            scale["compressed_segmentation_block_size"] = [8, 8, 8]
        scales.append(scale)
    info: dict[str, Any] = {
        "@type": "neuroglancer_multiscale_volume",
        "type": layer_type,
        "data_type": np.dtype(arr.dtype).name,
        "num_channels": 1,
        "scales": scales,
    }
    with open(folder / "info", "w") as fh:
        json.dump(info, fh, indent=1)
    with open(folder / "provenance", "w") as fh:
        json.dump({"description": description, "owners": [], "processing": [], "sources": []}, fh)
    for m, data in enumerate(mips):
        vol = CloudVolume(f"file://{folder}", mip=m, progress=False, info=info)
        off = info["scales"][m]["voxel_offset"]
        vol[
            off[0] : off[0] + data.shape[0],
            off[1] : off[1] + data.shape[1],
            off[2] : off[2] + data.shape[2],
        ] = data
    return info
