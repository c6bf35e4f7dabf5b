"""Data sources: one Precomputed (or graphene) layer opened through cloud-volume.

This is the only module that talks to cloud-volume. It owns three decisions:

* **which paths are accepted** (:func:`parse_source`): ``precomputed://`` over ``file://``,
  ``http(s)://``, ``gs://`` and ``s3://``; ``graphene://`` over ``http(s)://``; bare local
  folders and bare URLs are taken as Precomputed. cloud-volume itself silently turns some
  malformed paths into relative local paths, so the check happens here first;
* **the data contract**: every read returns a C-contiguous ``(z, y, x)`` array (ids stay
  ``uint64``), a zero-copy transpose of cloud-volume's Fortran-order ``(x, y, z, c)``;
* **error translation**: cloud-volume, cloud-files and requests exceptions become the
  specific types of :mod:`imagery_gui.model.errors` with messages that say what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .errors import (
    AuthenticationError,
    DataCorruptError,
    InfoUnreadableError,
    MipError,
    NotPrecomputedError,
    OutOfBoundsError,
    SourceError,
    SourceNotFoundError,
    SourceUnavailableError,
    UnsupportedSourceError,
)
from .secrets import scrub, token_help
from .sections import MAX_DEPTH as SECTION_MAX_DEPTH
from .sections import SectionReader

REMOTE_PROTOCOLS = ("http", "https", "gs", "s3")
GRAPHENE_PROTOCOLS = ("http", "https", "middleauth+https")
_OTHER_FORMATS = ("zarr", "zarr2", "zarr3", "n5", "boss", "brainmaps", "dvid", "nggraph", "render")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed source path.

    Attributes
    ----------
    url : str
        The path as handed to cloud-volume (``format://protocol://...``).
    format : str
        ``"precomputed"`` or ``"graphene"``.
    protocol : str
        ``"file"``, ``"http"``, ``"https"``, ``"gs"``, ``"s3"`` (``middleauth+https`` is
        reported as ``https``).
    local_path : str or None
        The folder on disk for ``file://`` sources.
    """

    url: str
    format: str
    protocol: str
    local_path: str | None = None

    @property
    def is_graphene(self) -> bool:
        return self.format == "graphene"

    def __str__(self) -> str:
        return self.url


def parse_source(path: str) -> SourceSpec:
    """Check and normalise a source path.

    Accepted forms::

        precomputed://file:///data/image     file:///data/image     /data/image   ./image
        precomputed://https://host/em        https://host/em
        precomputed://gs://bucket/em         gs://bucket/em          s3://bucket/em
        graphene://https://host/segmentation/table/name

    Raises
    ------
    UnsupportedSourceError
        For other formats (zarr, n5, boss, ...) or protocols, or a graphene source that
        is not served over http(s).
    """
    if not isinstance(path, str) or not path.strip():
        raise UnsupportedSourceError(
            f"a source must be a path or URL such as precomputed://https://host/layer, got {path!r}"
        )
    raw = path.strip()
    fmt = "precomputed"
    rest = raw
    head, sep, tail = raw.partition("://")
    if sep and head in ("precomputed", "graphene"):
        fmt, rest = head, tail
    elif sep and head in _OTHER_FORMATS:
        raise UnsupportedSourceError(
            f"{raw}: the {head}:// format is not supported; imagery-gui reads Neuroglancer "
            "Precomputed (precomputed://) and graphene (graphene://) layers"
        )
    proto, sep2, _ = rest.partition("://")
    if not sep2:
        # A bare local path.
        if fmt == "graphene":
            raise UnsupportedSourceError(
                f"{raw}: a graphene source must be served over https, like "
                "graphene://https://host/segmentation/table/NAME"
            )
        local = os.path.abspath(os.path.expanduser(rest))
        return SourceSpec(f"precomputed://file://{local}", "precomputed", "file", local)
    proto = proto.lower()
    if fmt == "graphene":
        if proto not in GRAPHENE_PROTOCOLS:
            raise UnsupportedSourceError(
                f"{raw}: a graphene source must be served over https, like "
                "graphene://https://host/segmentation/table/NAME"
            )
        return SourceSpec(raw, "graphene", proto.replace("middleauth+", ""))
    if proto == "file":
        local = rest[len("file://") :]
        local = os.path.abspath(os.path.expanduser(local)) if local else local
        return SourceSpec(f"precomputed://file://{local}", "precomputed", "file", local)
    if proto in REMOTE_PROTOCOLS or proto == "middleauth+https":
        parts = urlsplit(rest.replace("middleauth+", ""))
        if not parts.netloc:
            raise UnsupportedSourceError(f"{raw}: the URL has no host or bucket name")
        return SourceSpec(f"precomputed://{rest}", "precomputed", proto.replace("middleauth+", ""))
    raise UnsupportedSourceError(
        f"{raw}: the {proto}:// protocol is not supported; use file://, http(s)://, gs:// or s3://"
    )


@dataclass(frozen=True, slots=True)
class Scale:
    """One mip level of a layer, read from its ``info``."""

    key: str
    resolution: tuple[float, float, float]
    voxel_offset: tuple[int, int, int]
    size: tuple[int, int, int]
    chunk_size: tuple[int, int, int]
    encoding: str
    placeholder: bool

    @property
    def lo(self) -> np.ndarray:
        return np.asarray(self.voxel_offset, dtype=np.int64)

    @property
    def hi(self) -> np.ndarray:
        return self.lo + np.asarray(self.size, dtype=np.int64)


_REQUIRED_INFO = ("type", "data_type", "num_channels", "scales")
_REQUIRED_SCALE = ("key", "resolution", "size", "chunk_sizes", "encoding")


def scales_from_info(info: Any, where: str) -> list[Scale]:
    """Validate an ``info`` dict and return its scales."""
    if not isinstance(info, dict):
        raise InfoUnreadableError(f"{where}: the info file is not a JSON object")
    missing = [k for k in _REQUIRED_INFO if k not in info]
    if missing:
        raise InfoUnreadableError(
            f"{where}: the info file lacks {', '.join(missing)}; it is not a valid "
            "Precomputed volume info (see the neuroglancer precomputed volume spec)"
        )
    scales = info["scales"]
    if not isinstance(scales, list) or not scales:
        raise InfoUnreadableError(f"{where}: the info file has no scales")
    out: list[Scale] = []
    for i, sc in enumerate(scales):
        if not isinstance(sc, dict):
            raise InfoUnreadableError(f"{where}: scale {i} of the info file is not an object")
        miss = [k for k in _REQUIRED_SCALE if k not in sc]
        if miss:
            raise InfoUnreadableError(
                f"{where}: scale {i} of the info file lacks {', '.join(miss)}"
            )
        try:
            res = tuple(float(v) for v in sc["resolution"])
            size = tuple(int(v) for v in sc["size"])
            off = tuple(int(v) for v in sc.get("voxel_offset", (0, 0, 0)))
            chunk = tuple(int(v) for v in sc["chunk_sizes"][0])
        except (TypeError, ValueError, IndexError):
            raise InfoUnreadableError(
                f"{where}: scale {i} of the info file has malformed resolution, size, "
                "voxel_offset or chunk_sizes"
            ) from None
        if len(res) != 3 or len(size) != 3 or len(off) != 3 or len(chunk) != 3:
            raise InfoUnreadableError(f"{where}: scale {i} does not describe a 3D volume")
        out.append(
            Scale(
                key=str(sc["key"]),
                resolution=res,  # type: ignore[arg-type]
                voxel_offset=off,  # type: ignore[arg-type]
                size=size,  # type: ignore[arg-type]
                chunk_size=chunk,  # type: ignore[arg-type]
                encoding=str(sc["encoding"]),
                placeholder=str(sc["key"]) == "placeholder" or bool(sc.get("placeholder", False)),
            )
        )
    return out


def _layer_hint(folder: str) -> str:
    """Suggest sub-folders that are Precomputed layers (the user pointed at a dataset)."""
    try:
        subs = sorted(
            d for d in os.listdir(folder) if os.path.isfile(os.path.join(folder, d, "info"))
        )
    except OSError:
        return ""
    if not subs:
        return ""
    return " Layers found inside it: " + ", ".join(os.path.join(folder, s) for s in subs[:6])


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Turn cloud-volume / cloud-files / network exceptions into our specific types."""
    from cloudvolume import exceptions as cvx

    try:
        yield
    except SourceError:
        raise
    except cvx.InfoUnavailableError:
        raise SourceNotFoundError(
            f"{where}: no Precomputed layer there (no 'info' file). Check the path or URL; it "
            "must point at a layer (the folder that holds 'info'), not at a dataset or a chunk."
        ) from None
    except json.JSONDecodeError as exc:
        raise InfoUnreadableError(f"{where}: the info file is not valid JSON ({exc})") from None
    except (cvx.DecodingError, cvx.EmptyFileException, cvx.EmptyVolumeException) as exc:
        if isinstance(exc, cvx.EmptyVolumeException):
            raise SourceNotFoundError(f"{where}: a chunk is missing ({_short(exc)})") from None
        raise DataCorruptError(
            f"{where}: a chunk could not be decoded ({type(exc).__name__}: {_short(exc)}). "
            "The data may be corrupt or the info file may not match it."
        ) from None
    except cvx.AuthenticationError as exc:
        raise AuthenticationError(
            f"{where}: {_short(exc)} " + token_help(_server_of(where))
        ) from None
    except (cvx.UnsupportedFormatError, cvx.UnsupportedProtocolError) as exc:
        raise UnsupportedSourceError(f"{where}: {_short(exc)}") from None
    except Exception as exc:
        _translate_http(where, exc)
        import zlib

        decoder = type(exc).__module__.split(".")[0] in _DECODER_MODULES
        if decoder or isinstance(exc, (ValueError, RuntimeError, EOFError, zlib.error)):
            # Inside a read these come from the chunk decoders: the data is not what the
            # info file says (corrupt file, wrong encoding or dtype).
            raise DataCorruptError(
                f"{where}: a chunk could not be decoded ({type(exc).__name__}: {_short(exc)}). "
                "The data may be corrupt or the info file may not match it."
            ) from None
        raise


#: Packages whose exceptions, raised during a read, mean a chunk failed to decode.
_DECODER_MODULES = frozenset(
    {
        "deflate",
        "zlib",
        "gzip",
        "brotli",
        "zstandard",
        "compressed_segmentation",
        "compresso",
        "crackle",
        "simplejpeg",
        "pyspng",
        "fpzip",
        "imagecodecs",
        "PIL",
        "fastremap",
    }
)


def _server_of(where: str) -> str | None:
    """The https server of a graphene / middleauth source named in a message."""
    m = re.search(r"(?:graphene://|middleauth\+)(https?://[^/\s]+)", where)
    return m.group(1) if m else None


def _short(exc: BaseException, limit: int = 200) -> str:
    text = scrub(" ".join(str(exc).split()))
    # cloud-volume colours some messages with ANSI codes.
    for code in ("\x1b[1;91m", "\x1b[m", "\x1b[0m"):
        text = text.replace(code, "")
    return text[:limit]


def _translate_http(where: str, exc: Exception) -> None:
    import requests

    status = None
    resp = getattr(exc, "response", None)
    if resp is not None:
        status = getattr(resp, "status_code", None)
    if status in (401, 403):
        raise AuthenticationError(
            f"{where}: the server refused access (HTTP {status}). If this source needs a "
            "CAVE token, set one up (see `imagery-gui --help-token`)."
        ) from None
    if status == 404:
        raise SourceNotFoundError(f"{where}: not found on the server (HTTP 404)") from None
    if isinstance(exc, requests.exceptions.RequestException) or status is not None:
        detail = f"HTTP {status}" if status else type(exc).__name__
        raise SourceUnavailableError(
            f"{where}: the server did not answer ({detail}). Check the URL and your network, "
            "then try again."
        ) from None
    if isinstance(exc, (ConnectionError, TimeoutError)):
        raise SourceUnavailableError(f"{where}: {_short(exc)}") from None


class Layer:
    """One image or segmentation layer, opened lazily through cloud-volume.

    Parameters
    ----------
    source : str
        Any path accepted by :func:`parse_source`.
    kind : {"image", "segmentation", None}
        The role this layer plays, used in messages and to check the layer type.
    secrets : str or dict, optional
        Token handed to cloud-volume (for graphene / middleauth sources).
    lru_bytes : int
        Size of cloud-volume's in-memory LRU of chunk files (0 disables it).
    disk_cache : bool or str
        cloud-volume's on-disk cache (``False``, ``True`` or a folder).
    use_https : bool
        Read ``gs://`` and ``s3://`` through their public https endpoints, as ImageryClient.
    timestamp : datetime, int or str, optional
        Default time at which graphene root ids are looked up.
    info : dict, optional
        The layer's ``info``, already read elsewhere: opening then costs no request.
    """

    def __init__(
        self,
        source: str,
        kind: str | None = None,
        *,
        secrets: Any = None,
        lru_bytes: int = 0,
        disk_cache: bool | str = False,
        use_https: bool = True,
        timestamp: Any = None,
        fill_missing: bool = True,
        info: dict | None = None,
        lru_encoding: str = "same",
        section_reads: bool = False,
    ) -> None:
        self.spec = parse_source(source)
        self._given_info = info
        self.kind = kind
        self._secrets = secrets
        self._lru_bytes = int(lru_bytes)
        self._lru_encoding = lru_encoding
        self._disk_cache = disk_cache
        self._use_https = use_https
        self._fill_missing = fill_missing
        self.timestamp = timestamp
        self._cv: Any = None
        self._info: dict | None = None  # read and checked (open_meta)
        self._strict_cv: Any = None
        self._held: list[_Held] = []  # regions read once and served from memory (holding)
        # Boxes a few sections deep read by sections.SectionReader (per mip; None: that
        # scale is read through cloud-volume), with lru_bytes of its own.
        self._section_reads = bool(section_reads) and not self.spec.is_graphene
        self._sections: dict[int, SectionReader | None] = {}
        self._scales: list[Scale] | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = "open" if self._info is not None else "not opened"
        return f"Layer({self.spec.url!r}, kind={self.kind!r}, {state})"

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def label(self) -> str:
        return f"{self.kind} source {self.spec.url}" if self.kind else self.spec.url

    # -- opening ---------------------------------------------------------------------------
    def _precheck_local(self) -> dict | None:
        """For a layer on this machine: its info, read and checked (None for others)."""
        folder = self.spec.local_path
        if folder is None:
            return None
        if not os.path.exists(folder):
            raise SourceNotFoundError(
                f"{self.label}: no such folder {folder}. Check the path (it must be the layer "
                "folder that contains 'info')."
            )
        if not os.path.isdir(folder):
            raise NotPrecomputedError(
                f"{self.label}: {folder} is a file; point at the layer folder that contains 'info'"
            )
        info = os.path.join(folder, "info")
        if not os.path.isfile(info):
            raise NotPrecomputedError(
                f"{self.label}: {folder} has no 'info' file, so it is not a Neuroglancer "
                f"Precomputed layer.{_layer_hint(folder)}"
            )
        try:
            with open(info, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InfoUnreadableError(f"{self.label}: cannot read {info} ({exc})") from None
        scales_from_info(data, self.label)
        return data

    def _diagnose_info(self) -> None:
        """cloud-volume choked on the info: fetch it ourselves to say precisely why."""
        from cloudfiles import CloudFiles

        base = self.spec.url.split("://", 1)[1]
        try:
            data = CloudFiles(base).get_json("info")
        except Exception:  # noqa: BLE001 - a diagnosis only; the caller raises its own error
            return
        scales_from_info(data, self.label)

    def _cloudvolume(self, fill_missing: bool, info: dict | None, provenance: Any) -> Any:
        global _CLOUDVOLUME_USED
        from cloudvolume import CloudVolume

        _CLOUDVOLUME_USED = True
        return CloudVolume(
            self.spec.url,
            mip=0,
            bounded=False,
            fill_missing=fill_missing,
            progress=False,
            use_https=self._use_https,
            secrets=self._secrets,
            lru_bytes=self._lru_bytes,
            lru_encoding=self._lru_encoding,
            cache=self._disk_cache,
            timestamp=None,
            info=info,
            provenance=provenance,
        )

    def _check_info(self, info: Any) -> list[Scale]:
        """Our own checks of an info (cloud-volume's come when it opens the layer)."""
        scales = scales_from_info(info, self.label)
        layer_type = info.get("type")
        if layer_type not in ("image", "segmentation"):
            raise NotPrecomputedError(
                f"{self.label}: the info file describes a {layer_type!r} layer, not an image "
                "or segmentation volume"
            )
        if self.kind == "segmentation" and not np.issubdtype(
            np.dtype(info["data_type"]), np.integer
        ):
            raise NotPrecomputedError(
                f"{self.label}: segmentation must hold integer ids, but the layer's data "
                f"type is {info['data_type']}; is this the image layer?"
            )
        if int(info.get("num_channels", 1)) != 1:
            raise NotPrecomputedError(
                f"{self.label}: layers with {info['num_channels']} channels are not "
                "supported (one channel expected)"
            )
        return scales

    def open_meta(self) -> None:
        """Read and check the layer's metadata (once); errors surface here. Thread-safe.

        A layer on this machine, or one whose info was given, is described without
        cloud-volume: it is imported and the layer opened only when it is first read
        (a process that never reads it, like the viewer's with its read process, never
        pays for the import). Other layers are opened through cloud-volume now."""
        if self._info is not None:
            return
        with self._lock:
            if self._info is not None:
                return
            info = self._given_info
            local = None if self.spec.is_graphene else self._precheck_local()
            info = info if info is not None else local
            if info is None:
                self.open()
                return
            self._scales = self._check_info(info)
            self._info = info

    def open(self) -> Any:
        """Open the layer (once) and return the CloudVolume. Thread-safe."""
        if self._cv is not None:
            return self._cv
        with self._lock:
            if self._cv is not None:
                return self._cv
            info = self._info if self._info is not None else self._given_info
            if self._info is None:
                self._precheck_local()
            with translate_errors(self.label):
                try:
                    # The provenance file is not fetched: reading never uses it, and over
                    # a network it is a round trip before the first image.
                    cv = self._cloudvolume(self._fill_missing, info, {})
                except (KeyError, TypeError, IndexError, ValueError) as exc:
                    self._diagnose_info()
                    raise InfoUnreadableError(
                        f"{self.label}: the info file is malformed ({type(exc).__name__}: {exc})"
                    ) from None
            if self._info is None:
                self._scales = self._check_info(cv.info)
                self._info = cv.info
            self._cv = cv
            return cv

    @property
    def cv(self) -> Any:
        return self.open()

    @property
    def is_open(self) -> bool:
        """Whether its metadata has been read (:meth:`open_meta`)."""
        return self._info is not None

    # -- metadata --------------------------------------------------------------------------
    @property
    def info(self) -> dict:
        self.open_meta()
        assert self._info is not None
        return self._info

    @property
    def scales(self) -> list[Scale]:
        self.open_meta()
        assert self._scales is not None
        return self._scales

    @property
    def layer_type(self) -> str:
        return str(self.info["type"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.info["data_type"])

    @property
    def num_mips(self) -> int:
        return len(self.scales)

    @property
    def default_mip(self) -> int:
        """The first mip whose scale is not marked placeholder (ImageryClient's rule)."""
        for i, sc in enumerate(self.scales):
            if not sc.placeholder:
                return i
        raise MipError(f"{self.label}: every mip level is marked placeholder; pass a mip")

    def resolve_mip(self, mip: Any) -> int:
        """Accept a mip index or a resolution triple; raise :class:`MipError` if unknown."""
        n = self.num_mips
        if isinstance(mip, (int, np.integer)) and not isinstance(mip, bool):
            m = int(mip)
            if 0 <= m < n:
                return m
            raise MipError(
                f"{self.label}: mip {m} does not exist; this layer has mips 0-{n - 1} "
                f"({self.describe_mips()})"
            )
        if isinstance(mip, (list, tuple, np.ndarray)) and len(mip) == 3:
            want = np.asarray(mip, dtype=np.float64)
            for i, sc in enumerate(self.scales):
                if np.allclose(sc.resolution, want):
                    return i
            raise MipError(
                f"{self.label}: no mip at resolution {list(want)} nm; available: "
                f"{self.describe_mips()}"
            )
        raise MipError(
            f"{self.label}: mip must be an integer 0-{n - 1} or a resolution, got {mip!r}"
        )

    def describe_mips(self) -> str:
        return ", ".join(
            f"{i}: {'x'.join(_fmt(r) for r in sc.resolution)} nm"
            for i, sc in enumerate(self.scales)
        )

    def scale(self, mip: int) -> Scale:
        return self.scales[self.resolve_mip(mip)]

    def resolution(self, mip: int) -> np.ndarray:
        return np.asarray(self.scale(mip).resolution, dtype=np.float64)

    def bounds(self, mip: int) -> tuple[np.ndarray, np.ndarray]:
        sc = self.scale(mip)
        return sc.lo, sc.hi

    def chunk_size(self, mip: int) -> np.ndarray:
        return np.asarray(self.scale(mip).chunk_size, dtype=np.int64)

    # -- reading ---------------------------------------------------------------------------
    def _strict(self) -> Any:
        """A second CloudVolume on the same layer that raises on missing chunks."""
        if self._strict_cv is None:
            cv = self.open()
            with self._lock, translate_errors(self.label):
                if self._strict_cv is None:
                    self._strict_cv = self._cloudvolume(False, cv.info, cv.provenance)
        return self._strict_cv

    def missing_mask(self, lo: np.ndarray, hi: np.ndarray, mip: int) -> np.ndarray:
        """``(z, y, x)`` bool over ``[lo, hi)``: True where the chunk file does not exist."""
        from cloudvolume import Bbox

        cv = self.open()
        vlo, vhi = self.bounds(mip)
        inner = Bbox(np.maximum(lo, vlo), np.minimum(hi, vhi))
        mask = np.zeros(tuple(int(v) for v in (hi - lo)[::-1]), dtype=bool)
        with translate_errors(self.label):
            if cv.image.is_sharded(mip):
                absent = self._absent_sharded(cv, inner, mip)
            else:
                absent = [
                    Bbox.from_filename(path.rsplit("/", 1)[-1])
                    for path, present in cv.image.exists(inner, mip).items()
                    if not present
                ]
        for box in absent:
            a = np.maximum(box.minpt, lo) - lo
            b = np.minimum(box.maxpt, hi) - lo
            if np.all(b > a):
                mask[a[2] : b[2], a[1] : b[1], a[0] : b[0]] = True
        return mask

    def sharded_scales(self) -> bool | None:
        """Whether any scale of the layer is sharded, from its info if it is at hand (no
        request); None when it is not yet."""
        info = self._info if self._info is not None else self._given_info
        if not isinstance(info, dict):
            return None
        return any("sharding" in sc for sc in info.get("scales", []) if isinstance(sc, dict))

    def warm_shard_indexes(self, lo: np.ndarray, hi: np.ndarray, mip: int) -> bool:
        """Fetch the shard and minishard indexes of the chunks over ``[lo, hi)`` at ``mip``
        (nothing else), so that a later read of them asks for their data alone: where
        :mod:`.shardindex` keeps indexes across reads (the read process). True when the
        scale is sharded."""
        from cloudvolume import Bbox

        cv = self.open()
        if not cv.image.is_sharded(mip):
            return False
        vlo, vhi = self.bounds(mip)
        with translate_errors(self.label):  # (a box outside the volume asks for nothing)
            self._absent_sharded(cv, Bbox(np.maximum(lo, vlo), np.minimum(hi, vhi)), mip)
        return True

    def _absent_sharded(self, cv: Any, inner: Any, mip: int) -> list:
        """The chunk boxes within ``inner`` that a sharded scale does not hold: asked of
        the shards' indexes (cloud-volume's ``image.exists`` looks for unsharded chunk
        files, of which a sharded scale has none, so it calls every chunk absent)."""
        from cloudvolume import Bbox
        from cloudvolume.datasource.precomputed.common import compressed_morton_code

        vlo, vhi = (np.asarray(v, dtype=np.int64) for v in self.bounds(mip))
        chunk = np.asarray(self.chunk_size(mip), dtype=np.int64)
        g0 = (np.asarray(inner.minpt, dtype=np.int64) - vlo) // chunk
        g1 = -(-(np.asarray(inner.maxpt, dtype=np.int64) - vlo) // chunk)
        axes = [np.arange(g0[i], g1[i]) for i in range(3)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        if not len(grid):
            return []
        codes = compressed_morton_code(grid, -(-(vhi - vlo) // chunk))
        found = cv.image.shard_reader(mip).exists([int(c) for c in codes], path=cv.meta.key(mip))
        absent = []
        for gp, code in zip(grid, codes):
            if found.get(int(code)) is None:
                box_lo = vlo + gp * chunk
                absent.append(Bbox(box_lo, np.minimum(box_lo + chunk, vhi)))
        return absent

    def read(
        self,
        lo: Sequence[int] | np.ndarray,
        hi: Sequence[int] | np.ndarray,
        mip: int,
        *,
        agglomerate: bool = False,
        segids: Sequence[int] | None = None,
        timestamp: Any = None,
    ) -> np.ndarray:
        """Read voxels ``[lo, hi)`` at ``mip`` as a C-contiguous ``(z, y, x)`` array.

        Regions outside the volume read as 0 (as ImageryClient's unbounded reads do), but a
        box that misses the volume entirely raises :class:`OutOfBoundsError`.

        For graphene sources ``agglomerate=True`` maps supervoxels to root ids at
        ``timestamp``; ``segids`` keeps only those root ids. For plain Precomputed
        segmentation ``segids`` masks every other id to 0.
        """
        out, _ = self._download(
            lo, hi, mip, agglomerate=agglomerate, segids=segids, timestamp=timestamp
        )
        return out

    def read_with_missing(
        self,
        lo: Sequence[int] | np.ndarray,
        hi: Sequence[int] | np.ndarray,
        mip: int,
        *,
        agglomerate: bool = False,
        segids: Sequence[int] | None = None,
        timestamp: Any = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`read`, and the ``(z, y, x)`` mask of voxels whose chunks are missing.

        The read is first made strict, and only if a chunk is missing is it repeated with
        missing chunks as 0 and the mask computed (None when nothing is missing). Chunks
        that are absent look like zeros otherwise, which is not the same as "no segment"
        or black imagery.
        """
        return self._download(
            lo,
            hi,
            mip,
            agglomerate=agglomerate,
            segids=segids,
            timestamp=timestamp,
            with_missing=True,
        )

    def _download(
        self,
        lo: Sequence[int] | np.ndarray,
        hi: Sequence[int] | np.ndarray,
        mip: int,
        *,
        agglomerate: bool = False,
        segids: Sequence[int] | None = None,
        timestamp: Any = None,
        with_missing: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The array and, only ``with_missing``, the mask of missing voxels (else None)."""
        from cloudvolume import Bbox
        from cloudvolume.exceptions import EmptyVolumeException

        cv = self.open()
        mip = self.resolve_mip(mip)
        lo_a = np.asarray(lo, dtype=np.int64)
        hi_a = np.asarray(hi, dtype=np.int64)
        vlo, vhi = self.bounds(mip)
        if np.any(hi_a <= vlo) or np.any(lo_a >= vhi):
            raise OutOfBoundsError(
                f"{self.label}: the requested box {lo_a.tolist()}-{hi_a.tolist()} (mip {mip} "
                f"voxels) is entirely outside the volume {vlo.tolist()}-{vhi.tolist()}"
            )
        kwargs: dict[str, Any] = {}
        if self.spec.is_graphene:
            kwargs["agglomerate"] = bool(agglomerate)
            ts = timestamp if timestamp is not None else self.timestamp
            if ts is not None:
                kwargs["timestamp"] = ts
        if segids is not None:
            kwargs["segids"] = list(segids)
        if self._held:
            got = self._from_held(lo_a, hi_a, mip, segids, with_missing)
            if got is not None:
                return got
        if self._section_reads and hi_a[2] - lo_a[2] <= SECTION_MAX_DEPTH:
            reader = self._section_reader(mip)
            if reader is not None:
                with translate_errors(self.label):
                    out, gaps = reader.read(lo_a, hi_a, fill_missing=self._fill_missing)
                if segids is not None:
                    out = _keep_only(out, segids)
                return out, (gaps if with_missing else None)
        mask: np.ndarray | None = None
        # No lock here: cloud-volume's reads (and its LRU, which has its own lock) are safe
        # to run concurrently, and a read that outlived its timeout must not block the next.
        # With an LRU, plain reads go through the strict CloudVolume too, so one LRU holds
        # every decoded chunk; only a read that meets a missing chunk is made again through
        # the filling one (whose LRU holds the zeros it fills in, which the strict one must
        # never serve). With an LRU each, the reads with and without the missing mask
        # (a batch's held runs and its single figures) decoded the same chunks twice.
        strict_first = with_missing or (self._lru_bytes > 0 and self._fill_missing)
        with translate_errors(self.label):
            if strict_first:
                try:
                    cut = self._strict().download(Bbox(lo_a, hi_a), mip=mip, **kwargs)
                except EmptyVolumeException:
                    cut = cv.download(Bbox(lo_a, hi_a), mip=mip, **kwargs)
                    if with_missing:
                        mask = self.missing_mask(lo_a, hi_a, mip)
                        if not mask.any():
                            mask = None
            else:
                cut = cv.download(Bbox(lo_a, hi_a), mip=mip, **kwargs)
        arr = np.asarray(cut)
        if arr.ndim == 4:
            arr = arr[..., 0]
        out = arr.transpose(2, 1, 0)
        if not out.flags.c_contiguous:
            out = np.ascontiguousarray(out)
        expected = tuple(int(v) for v in (hi_a - lo_a)[::-1])
        if out.shape != expected:
            raise DataCorruptError(
                f"{self.label}: read returned shape {out.shape}, expected {expected}"
            )
        return out, mask

    def _section_reader(self, mip: int) -> SectionReader | None:
        """The section reader of scale ``mip``, or None if cloud-volume reads that scale."""
        if mip not in self._sections:
            cv = self.open()
            with self._lock:
                if mip not in self._sections:
                    info = self.info
                    scale = info["scales"][mip]
                    self._sections[mip] = (
                        SectionReader(
                            cv.meta.cloudpath,
                            scale,
                            self.dtype,
                            lru_bytes=self._lru_bytes,
                            secrets=self._secrets,
                        )
                        if SectionReader.supports(info, scale)
                        else None
                    )
        return self._sections[mip]

    @contextlib.contextmanager
    def holding(
        self, lo: Sequence[int] | np.ndarray, hi: Sequence[int] | np.ndarray, mip: int
    ) -> Iterator[None]:
        """Read ``[lo, hi)`` at ``mip`` once, now; until the block ends, reads inside it
        are cut from that array instead of going through cloud-volume (each chunk decoded
        once for all of them; the same voxels, missing chunks and ``segids`` masking).

        For batches of neighbouring figures. Graphene layers are not held (their ids come
        from the server per read). Nor is a box too deep for the section reader on a layer
        read by sections: cloud-volume would decode each of its chunks whole (a 64-deep
        segmentation chunk: about 45 ms here, against a few ms for the figures' own
        sections), so its figures read their sections themselves. If the read fails,
        nothing is held and each read then meets the problem itself."""
        entry = None
        lo_a, hi_a = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        too_deep = False
        if self._section_reads and hi_a[2] - lo_a[2] > SECTION_MAX_DEPTH:
            with contextlib.suppress(Exception):  # the reads inside meet any problem
                too_deep = self._section_reader(self.resolve_mip(mip)) is not None
        if not self.spec.is_graphene and not too_deep:
            try:
                data, mask = self._download(lo_a, hi_a, mip, with_missing=True)
            except Exception:  # noqa: BLE001 - the reads inside report it themselves
                data = None
            if data is not None:
                entry = _Held(self.resolve_mip(mip), lo_a, hi_a, data, mask)
                self._held.append(entry)
        try:
            yield
        finally:
            if entry is not None:
                self._held.remove(entry)

    def _from_held(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        mip: int,
        segids: Sequence[int] | None,
        with_missing: bool,
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        for h in list(self._held):
            if h.mip != mip or np.any(lo < h.lo) or np.any(hi > h.hi):
                continue
            a, b = lo - h.lo, hi - h.lo
            cut = (slice(a[2], b[2]), slice(a[1], b[1]), slice(a[0], b[0]))
            out = h.data[cut].copy()
            if segids is not None:
                out = _keep_only(out, segids)
            mask = None
            if with_missing and h.mask is not None and h.mask[cut].any():
                mask = h.mask[cut].copy()
            return out, mask
        return None


def _keep_only(out: np.ndarray, segids: Sequence[int]) -> np.ndarray:
    """Every id but ``segids`` set to 0, as cloud-volume's ``download(segids=...)`` does."""
    import fastremap

    result: np.ndarray = fastremap.mask_except(out, list(segids), in_place=True, value=0)
    return result


@dataclass(frozen=True, eq=False)  # compared by identity (it holds arrays)
class _Held:
    """A region of a layer read once (:meth:`Layer.holding`): ``(z, y, x)`` voxels of
    ``[lo, hi)`` (x, y, z) at ``mip``, and the mask of missing ones (None when none are)."""

    mip: int
    lo: np.ndarray
    hi: np.ndarray
    data: np.ndarray
    mask: np.ndarray | None


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


#: cloud-volume has been imported and used in this process (reads here are quick to start)
_CLOUDVOLUME_USED = False


def is_warm() -> bool:
    """Whether reading in this process starts without importing cloud-volume first (about
    a second): :func:`warm_up` ran, or a layer was opened through it."""
    return _CLOUDVOLUME_USED


def warm_up() -> None:
    """Import what the first open and read import (cloud-volume, its storage backends and
    codecs: about a second of work and some 30,000 objects) by opening an empty layer in
    memory and reading from it. Nothing touches the disk or the network."""
    global _CLOUDVOLUME_USED
    from cloudvolume import CloudVolume
    from cloudvolume import exceptions as _cvx  # noqa: F401 - imported by translate_errors

    info = CloudVolume.create_new_info(
        1, "segmentation", "uint64", "compressed_segmentation", [8, 8, 40], [0, 0, 0], [64] * 3
    )
    cv = CloudVolume(
        "mem://imagery-gui-warm-up/segmentation",
        info=info,
        provenance={},
        progress=False,
        fill_missing=True,
        bounded=False,
    )
    cv.download(cv.bounds, mip=0)
    _CLOUDVOLUME_USED = True
