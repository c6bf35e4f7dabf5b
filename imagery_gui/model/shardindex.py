"""Shard and minishard indexes kept across a process's sharded reads (Qt-free).

cloud-volume makes a new ``ShardReader``, with empty index caches, for every read of a
sharded scale. So every slab the viewer reads first fetches the index of each shard it
touches, then the minishard indexes it needs, and only then the chunks: three requests
in a chain, each one retried on its own when it fails. Over a link that answers in
400 ms with 30% of requests failing that chain is most of a slab's 4-5 s.

:func:`install` (the read process only, as :func:`.chunkpool.install`) gives every
``ShardReader`` of the process the same caches of both kinds of index, so the indexes of
a shard are fetched once per session and a later slab of the same shards costs its data
requests alone. Neuroglancer keeps them the same way. A shard rewritten while it is being
viewed is not seen until the viewer opens the layer again (Precomputed shards are written
once in practice).

The caches are bounded (generations of :data:`MAX_ENTRIES` entries of each kind, see
:class:`SharedIndexCache`). cloud-volume keys a minishard index by the shard's base name and byte
range alone; here the key also holds the layer and the scale's path, which a shared cache
needs (two scales of a layer can share a sharding spec and shard names).
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

#: Entries of each kind per generation (a shard index of 2^minishard_bits entries is a
#: few KB; a minishard index about 24 bytes per chunk of its minishard).
MAX_ENTRIES = 2048

_PLACE: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "imagery_gui_shard_place", default=("", "")
)


class SharedIndexCache:
    """A thread-safe, bounded map from a reader's keys to indexes, shared by every reader
    of the process. Keys are qualified by the layer and scale of the read under way.

    Entries live in generations of ``max_entries``: a new one starts when the newest is
    full, the oldest then no longer counts as held. cloud-volume asks ``key in cache`` and
    then ``cache[key]``; a key it found stays readable until two generations later, so
    other threads' reads in between never make the second ask fail."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._new: dict[Any, Any] = {}
        self._old: dict[Any, Any] = {}
        self._dropped: dict[Any, Any] = {}

    @staticmethod
    def _key(key: Any) -> tuple[Any, ...]:
        return (*_PLACE.get(), key)

    def __contains__(self, key: Any) -> bool:
        k = self._key(key)
        with self._lock:
            return k in self._new or k in self._old

    def __getitem__(self, key: Any) -> Any:
        k = self._key(key)
        with self._lock:
            if k in self._new:
                return self._new[k]
            value = self._old[k] if k in self._old else self._dropped[k]
            self._put(k, value)  # in use: kept in the newest generation
            return value

    def __setitem__(self, key: Any, value: Any) -> None:
        k = self._key(key)
        with self._lock:
            self._put(k, value)

    def _put(self, k: tuple[Any, ...], value: Any) -> None:
        if k not in self._new and len(self._new) >= self.max_entries:
            self._dropped, self._old, self._new = self._old, self._new, {}
        self._new[k] = value

    def __len__(self) -> int:
        """Entries held (the newest two generations)."""
        with self._lock:
            return len(self._new.keys() | self._old.keys())

    def clear(self) -> None:
        with self._lock:
            self._new.clear()
            self._old.clear()
            self._dropped.clear()


SHARD_INDEXES = SharedIndexCache()
MINISHARD_INDEXES = SharedIndexCache()

_installed = False
_install_lock = threading.Lock()


def _reader_class() -> type:
    from cloudvolume.datasource.precomputed.sharding import ShardReader

    class SharedIndexReader(ShardReader):  # type: ignore[misc]
        """cloud-volume's reader, its index caches the process's shared ones."""

        def __init__(self, cloudpath: Any, cache: Any, spec: Any, *args: Any, **kw: Any) -> None:
            super().__init__(cloudpath, cache, spec, *args, **kw)
            self.shard_index_cache = SHARD_INDEXES
            self.minishard_index_cache = MINISHARD_INDEXES

        def _place(self, path: str) -> contextvars.Token[tuple[str, str]]:
            return _PLACE.set((str(self.cloudpath), str(path)))

        def get_indices(self, filenames: Any, path: str = "", progress: Any = None) -> Any:
            token = self._place(path)
            try:
                return super().get_indices(filenames, path, progress)
            finally:
                _PLACE.reset(token)

        def get_minishard_indices_for_files(
            self, requests: Any, path: str = "", progress: Any = None
        ) -> Any:
            token = self._place(path)
            try:
                return super().get_minishard_indices_for_files(requests, path, progress)
            finally:
                _PLACE.reset(token)

    return SharedIndexReader


def install() -> None:
    """Every ``ShardReader`` cloud-volume makes in this process from now on shares
    :data:`SHARD_INDEXES` and :data:`MINISHARD_INDEXES` (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from cloudvolume.datasource.precomputed import sharding

        sharding.ShardReader = _reader_class()
        _installed = True
