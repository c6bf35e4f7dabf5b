"""Reads of a few sections, decoding only what they need of each chunk.

A figure shows one section, but the chunks under it hold many: 16 in the demo's and
MICrONS' 128x128x16 image chunks, 64 in pinky40's 128x128x64 segmentation chunks.
cloud-volume decodes every chunk whole, and with sites at the density of a real synapse
table (a figure's chunks shared by few others) that decoding is most of a batch figure's
time. :class:`SectionReader` reads the same chunk files (through cloud-files, with its
retries and compressed transfers) and decodes:

* ``compressed_segmentation``: only the 8x8x8 blocks under the part of the sections asked
  for (for one section of a 64-deep chunk, 1 in 8 of its blocks at most), vectorised; the
  chunk's bytes are kept;
* ``jpeg`` (one image per chunk, sections stacked down it) and ``raw``: the whole chunk,
  kept so the next sections of it cost nothing.

What it keeps is bounded by ``lru_bytes`` (least recently used first out). It serves
unsharded layers of one channel in these three encodings; :meth:`SectionReader.supports`
says which, and the layer reads everything else through cloud-volume. The voxels are
cloud-volume's to the bit (tested against it on real and made volumes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

ENCODINGS = ("raw", "jpeg", "compressed_segmentation")
#: Boxes at most this deep are read by sections (a figure, a batch's run of figures).
MAX_DEPTH = 8


#: Masks of the low ``bits`` bits of a word, for bits 0-32.
_MASKS = np.array([(1 << b) - 1 for b in range(33)], dtype=np.uint32)
_WITHIN: dict[tuple[int, int, int], npt.NDArray[np.int32]] = {}


def _plane_voxels(bx: int, by: int, bz: int) -> npt.NDArray[np.int32]:
    """(bz, by, bx): each voxel's index in its block, plane by plane (x fastest)."""
    got = _WITHIN.get((bx, by, bz))
    if got is None:
        got = _WITHIN[(bx, by, bz)] = np.arange(bx * by * bz, dtype=np.int32).reshape(bz, by, bx)
    return got


def decode_cseg_sections(
    data: bytes | memoryview,
    shape: Sequence[int],
    dtype: npt.DTypeLike,
    block: Sequence[int],
    zs: Sequence[int],
    region: tuple[int, int, int, int] | None = None,
) -> dict[int, npt.NDArray[Any]]:
    """Sections ``zs`` (chunk-relative) of a one-channel compressed_segmentation chunk of
    ``shape`` (x, y, z) as ``(y, x)`` arrays, decoding only the blocks that hold them;
    with ``region`` = (x0, x1, y0, y1) (chunk-relative, exclusive ends) only that part of
    each section, from the blocks under it.

    The format (Neuroglancer's): a word giving the channel's offset, then per block (x
    fastest) two little-endian 32-bit words, the lookup table's offset (24 bits) with the
    bits per value (8 bits) and the packed values' offset, both in words from the
    channel's start; values are packed from the low bits of each word, voxels x fastest
    within the block; table entries are one (uint32) or two (uint64, low word first) words.
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint32), np.dtype(np.uint64)):
        raise ValueError(f"compressed_segmentation holds uint32 or uint64, not {dt}")
    words = np.frombuffer(data, dtype="<u4")
    sx, sy, sz = (int(v) for v in shape)
    bx, by, bz = (int(v) for v in block)
    gx, gy = -(-sx // bx), -(-sy // by)
    x0, x1, y0, y1 = region if region is not None else (0, sx, 0, sy)
    if not (0 <= x0 < x1 <= sx and 0 <= y0 < y1 <= sy):
        raise IndexError(f"region {(x0, x1, y0, y1)} outside a chunk of {sx} x {sy}")
    kx = np.arange(x0 // bx, -(-x1 // bx))
    ky = np.arange(y0 // by, -(-y1 // by))
    base = int(words[0])
    n = len(words)
    wide = dt.itemsize == 8
    within = _plane_voxels(bx, by, bz)
    out: dict[int, npt.NDArray[Any]] = {}
    for z in zs:
        if not 0 <= z < sz:
            raise IndexError(f"section {z} outside a chunk {sz} deep")
        kz, dz = divmod(int(z), bz)
        head = base + 2 * (kx[None, :] + gx * (ky[:, None] + gy * kz))  # (rows, cols)
        w0 = words[head]
        bits = (w0 >> 24).astype(np.int32)[..., None, None]
        pos = within[dz] * bits  # bit positions of this plane's voxels, (rows, cols, by, bx)
        word = (words[head + 1].astype(np.intp) + base)[..., None, None] + (pos >> 5)
        np.minimum(word, n - 1, out=word)
        idx = words[word] >> (pos & 31).astype(np.uint32)
        idx &= _MASKS[bits]
        entry = idx.astype(np.intp)
        if wide:
            entry <<= 1
        entry += ((w0 & 0xFFFFFF).astype(np.intp) + base)[..., None, None]
        if wide:
            values = words[entry + 1].astype(np.uint64)
            values <<= np.uint64(32)
            values |= words[entry]
        else:
            values = words[entry]
        plane = values.transpose(0, 2, 1, 3).reshape(len(ky) * by, len(kx) * bx)
        oy, ox = y0 - int(ky[0]) * by, x0 - int(kx[0]) * bx
        out[int(z)] = np.ascontiguousarray(plane[oy : oy + y1 - y0, ox : ox + x1 - x0], dtype=dt)
    return out


class SectionReader:
    """Boxes of a few sections of one scale of a layer (see the module's doc)."""

    def __init__(
        self,
        cloudpath: str,
        scale: dict[str, Any],
        dtype: npt.DTypeLike,
        *,
        lru_bytes: int,
        secrets: Any = None,
    ) -> None:
        self.cloudpath = cloudpath.rstrip("/")
        self.key = str(scale["key"])
        self.encoding = str(scale["encoding"])
        self.dtype = np.dtype(dtype)
        self.offset = np.asarray(scale["voxel_offset"], dtype=np.int64)
        self.size = np.asarray(scale["size"], dtype=np.int64)
        self.chunk = np.asarray(scale["chunk_sizes"][0], dtype=np.int64)
        self.block = tuple(scale.get("compressed_segmentation_block_size") or (8, 8, 8))
        self.lru_bytes = int(lru_bytes)
        self._secrets = secrets
        self._kept: OrderedDict[Any, Any] = OrderedDict()
        self._kept_bytes = 0
        self._asked: set[tuple[str, int]] = set()  # sections decoded in part once
        self._lock = threading.Lock()
        self._files: Any = None

    @staticmethod
    def supports(info: dict[str, Any], scale: dict[str, Any]) -> bool:
        return (
            int(info.get("num_channels", 1)) == 1
            and scale.get("encoding") in ENCODINGS
            and not scale.get("sharding")
            and len(scale.get("chunk_sizes") or []) == 1
            and (scale["encoding"] != "jpeg" or np.dtype(info["data_type"]) == np.uint8)
        )

    # -- the bounded store of chunk files and decoded sections ---------------------------------
    def _get(self, key: Any) -> Any:
        with self._lock:
            if key not in self._kept:
                return None
            self._kept.move_to_end(key)
            return self._kept[key][0]

    def _put(self, key: Any, value: Any, nbytes: int) -> None:
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._kept_bytes -= old[1]
            self._kept[key] = (value, nbytes)
            self._kept_bytes += nbytes
            while self._kept_bytes > self.lru_bytes and len(self._kept) > 1:
                _, (_, size) = self._kept.popitem(last=False)
                self._kept_bytes -= size

    # -- reading -----------------------------------------------------------------------------
    def _chunk_box(self, g: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], ...]:
        lo = self.offset + g * self.chunk
        return lo, np.minimum(lo + self.chunk, self.offset + self.size)

    def _name(self, lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]) -> str:
        return "_".join(f"{a}-{b}" for a, b in zip(lo.tolist(), hi.tolist()))

    def _fetch(self, names: list[str]) -> dict[str, bytes | None]:
        """The chunk files (decompressed; None: the file does not exist)."""
        from cloudfiles import CloudFiles, compression

        if self._files is None:
            self._files = CloudFiles(self.cloudpath, secrets=self._secrets)
        paths = [f"{self.key}/{n}" for n in names]
        if self._files.protocol in ("file", "mem"):
            # One call a file: for several, cloud-files' scheduler polls with sleeps even
            # where it reads them one by one.
            got = [self._files.get([p], raw=True)[0] for p in paths]
        else:  # at once, on cloud-files' download threads
            got = self._files.get(paths, raw=True)
        by_path = {g["path"]: g for g in got}
        out: dict[str, bytes | None] = {}
        for name, path in zip(names, paths):
            g = by_path.get(path)
            if g is None:
                out[name] = None
                continue
            if g.get("error") is not None:
                raise g["error"]
            content = g.get("content")
            if content is not None:
                content = compression.decompress(content, g.get("compress"))
            out[name] = content if content else None
        return out

    def _chunk(self, name: str, content: bytes, shape: Sequence[int]) -> Any:
        """What is kept of a chunk file: the (z, y, x) array of a JPEG or raw chunk, the
        bytes of a compressed_segmentation one (its sections are decoded when asked)."""
        sx, sy, sz = (int(v) for v in shape)
        if self.encoding == "compressed_segmentation":
            return content
        from cloudvolume.exceptions import DecodingError

        if self.encoding == "jpeg":  # cloud-volume's own decoder: the same pixels
            from cloudvolume.chunks import decode_jpeg

            try:
                img = decode_jpeg(content, shape=(sx, sy, sz, 1), dtype=np.uint8)
            except ValueError as exc:
                raise DecodingError(f"{self.key}/{name}: cannot decode the JPEG ({exc})") from exc
            return img[..., 0].transpose(2, 1, 0)  # (z, y, x), C order: no copy
        arr = np.frombuffer(content, dtype=self.dtype)
        if arr.size != sx * sy * sz:
            raise DecodingError(
                f"{self.key}/{name}: {arr.size} voxels where the chunk holds {sx * sy * sz}"
            )
        return arr.reshape(sz, sy, sx)

    def _sections(
        self,
        name: str,
        chunk: Any,
        shape: Sequence[int],
        zs: list[int],
        region: tuple[int, int, int, int],
    ) -> dict[int, npt.NDArray[Any]]:
        """Sections ``zs`` of a kept chunk, cut to ``region`` (x0, x1, y0, y1).

        Of a compressed_segmentation chunk, a section asked for the first time is decoded
        only under ``region`` (a figure's few sections of a chunk are seldom asked for
        again when sites are far apart); asked for again (neighbouring figures), it is
        decoded whole and kept."""
        x0, x1, y0, y1 = region
        if self.encoding != "compressed_segmentation":
            return {z: chunk[z, y0:y1, x0:x1] for z in zs}
        out: dict[int, npt.NDArray[Any]] = {}
        first, again = [], []
        for z in zs:
            plane = self._get((name, z))
            if plane is not None:
                out[z] = plane[y0:y1, x0:x1]
            elif (name, z) in self._asked:
                again.append(z)
            else:
                first.append(z)
        try:
            if first:
                out.update(
                    decode_cseg_sections(chunk, shape, self.dtype, self.block, first, region)
                )
                if len(self._asked) > 1 << 16:  # a long batch: forget the oldest history
                    self._asked.clear()
                self._asked.update((name, z) for z in first)
            if again:
                for z, plane in decode_cseg_sections(
                    chunk, shape, self.dtype, self.block, again
                ).items():
                    self._put((name, z), plane, plane.nbytes)
                    self._asked.discard((name, z))
                    out[z] = plane[y0:y1, x0:x1]
        except (IndexError, ValueError) as exc:
            from cloudvolume.exceptions import DecodingError

            raise DecodingError(f"{self.key}/{name}: cannot decode the chunk ({exc})") from exc
        return out

    def read(
        self, lo: Sequence[int] | np.ndarray, hi: Sequence[int] | np.ndarray, *, fill_missing: bool
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None]:
        """Voxels ``[lo, hi)`` (x, y, z) as a C-contiguous ``(z, y, x)`` array, 0 outside
        the volume and in missing chunks, and the mask of the voxels of missing chunks (None
        when none are). Without ``fill_missing`` a missing chunk raises cloud-volume's
        EmptyVolumeException, as its strict reads do."""
        lo_a, hi_a = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        out = np.zeros(tuple((hi_a - lo_a)[::-1].tolist()), dtype=self.dtype)
        inner_lo = np.maximum(lo_a, self.offset)
        inner_hi = np.minimum(hi_a, self.offset + self.size)
        if np.any(inner_hi <= inner_lo):
            return out, None
        g0 = (inner_lo - self.offset) // self.chunk
        g1 = (inner_hi - 1 - self.offset) // self.chunk + 1
        cells = [
            np.array([gx, gy, gz], dtype=np.int64)
            for gz in range(g0[2], g1[2])
            for gy in range(g0[1], g1[1])
            for gx in range(g0[0], g1[0])
        ]
        boxes = [self._chunk_box(g) for g in cells]
        names = [self._name(a, b) for a, b in boxes]
        box_of = dict(zip(names, boxes))
        chunks: dict[str, Any] = {}
        missing: set[str] = set()
        for name in names:
            got = self._get(name)
            if got is not None:
                chunks[name] = got
        wanted = [n for n in names if n not in chunks]
        if wanted:
            for name, content in self._fetch(wanted).items():
                if content is None:
                    missing.add(name)
                    continue
                a, b = box_of[name]
                kept = self._chunk(name, content, (b - a).tolist())
                self._put(name, kept, len(kept) if isinstance(kept, bytes) else kept.nbytes)
                chunks[name] = kept
        if missing and not fill_missing:
            from cloudvolume.exceptions import EmptyVolumeException

            raise EmptyVolumeException(
                f"{self.key}: missing chunk files: {', '.join(sorted(missing)[:4])}"
            )
        mask = np.zeros(out.shape, dtype=bool) if missing else None
        for name, (a, b) in box_of.items():
            s_lo, s_hi = np.maximum(a, inner_lo), np.minimum(b, inner_hi)
            o_lo, o_hi = s_lo - lo_a, s_hi - lo_a
            dst = (slice(o_lo[1], o_hi[1]), slice(o_lo[0], o_hi[0]))
            if name in missing:
                assert mask is not None
                mask[o_lo[2] : o_hi[2], dst[0], dst[1]] = True
                continue
            zs = list(range(int(s_lo[2] - a[2]), int(s_hi[2] - a[2])))
            c_lo, c_hi = (s_lo - a).tolist(), (s_hi - a).tolist()
            region = (c_lo[0], c_hi[0], c_lo[1], c_hi[1])
            planes = self._sections(name, chunks[name], (b - a).tolist(), zs, region)
            for k, z in enumerate(zs):
                out[o_lo[2] + k, dst[0], dst[1]] = planes[z]
        return out, mask
