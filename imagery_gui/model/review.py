"""Reviews: a verdict, a note and tags per site of a table, saved as they are made (Qt-free).

The gallery judges sites with the keyboard; a :class:`Review` holds those decisions for one
:class:`~.sites.SiteTable` and writes them to a review file after every change, so nothing
is lost when the app is killed: the whole file is rewritten to a temporary file beside it and
renamed over it (:func:`.io.atomic_open`), so the file is always either the previous complete
review or the new one, never half of one. Once renamed it is the kernel's (a killed process
loses nothing); the fsync that carries it to the disk against a power cut runs moments
later in a background thread (:func:`.io.sync_later`), not in the key press.

The review file is CSV (UTF-8) with the header :data:`REVIEW_COLUMNS`, one row per decided
site, in table order. Ids are exact decimal strings (18-digit root and supervoxel ids never
go through float), tags are joined by ``;``, times are ISO 8601 UTC. Every row names the
table it belongs to (:func:`table_identity`) and where that table came from, so a review
file opened with a different table is refused instead of silently applied to the wrong
sites.

Decisions are keyed by the site id and, when known, its supervoxel ids: a decision whose site
still exists but whose supervoxels changed (the table was edited or recomputed) is *stale*:
it is not applied to that site, it is counted (:attr:`Review.stale`) and kept in the file
unchanged, so no decision is ever dropped without the user asking
(:meth:`Review.discard_stale`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import ImageryGuiError
from .io import atomic_open, sync_later
from .sites import SiteTable

__all__ = [
    "DEFAULT_VERDICTS",
    "REVIEW_COLUMNS",
    "Decision",
    "Review",
    "ReviewError",
    "default_review_path",
    "table_identity",
]

#: The verdicts of keys 1, 2, 3 in the gallery (configurable; others read are kept as is).
DEFAULT_VERDICTS: tuple[str, ...] = ("real", "false positive", "unsure")

REVIEW_COLUMNS: tuple[str, ...] = (
    "site_id",
    "pre_sv",
    "post_sv",
    "verdict",
    "note",
    "tags",
    "reviewed_at",
    "table_identity",
    "table_source",
)
#: Columns the exported table gets (after the table's own).
EXPORT_COLUMNS: tuple[str, ...] = ("verdict", "note", "tags", "reviewed_at")
TAG_SEPARATOR = ";"
EXPORT_FORMATS = (".csv", ".parquet", ".feather")
#: The first half of an identity hashes the sites (ids in order), the second their
#: supervoxel ids: a file whose first half matches is this table's review, perhaps with
#: some supervoxels changed since (those decisions are stale); otherwise another table's.
_HALF = 8


class ReviewError(ImageryGuiError):
    """A review file that cannot be used or written: one line saying what to do."""


@dataclass(frozen=True)
class Decision:
    """What the reviewer said about one site: ``verdict`` ("" for none), a free-text ``note``
    and ``tags``; ``time`` is when it last changed (ISO 8601 UTC)."""

    site_id: str
    pre_sv: int
    post_sv: int
    verdict: str
    note: str
    tags: tuple[str, ...]
    time: str

    @property
    def empty(self) -> bool:
        return not (self.verdict or self.note or self.tags)


# -- identity and where the review goes ----------------------------------------------------------
def _id_texts(table: SiteTable) -> list[str]:
    # tolist() gives Python ints (exact) or the id strings; never floats.
    return [str(v) for v in table.ids.tolist()]


def _identity(texts: Sequence[str], table: SiteTable) -> str:
    n = str(len(texts)).encode()
    sites = hashlib.sha256(b"imagery-gui sites\0" + n + b"\0")
    sites.update("\n".join(texts).encode("utf-8", "surrogatepass"))
    svs = hashlib.sha256(b"imagery-gui supervoxels\0" + n + b"\0")
    svs.update(np.ascontiguousarray(table.pre_sv, dtype="<u8").tobytes())
    svs.update(np.ascontiguousarray(table.post_sv, dtype="<u8").tobytes())
    return sites.hexdigest()[:_HALF] + svs.hexdigest()[:_HALF]


def table_identity(table: SiteTable) -> str:
    """16 hex characters naming a table's content, the same in every process: a hash of
    the number of sites and their ids in table order (first 8) and of their pre/post
    supervoxel ids (last 8). Sorting or filtering a table changes it: a review belongs to
    the table as read, and the gallery maps its view's rows to that table's rows."""
    return _identity(_id_texts(table), table)


def _table_stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return Path(name).stem or name


def default_review_path(table: SiteTable, fallback_dir: str | os.PathLike[str]) -> Path:
    """``<folder>/<stem>.review.csv`` beside the table's file when its folder is writable
    (``synapses.csv`` -> ``synapses.review.csv``); otherwise (CAVE queries, links, frames,
    read-only folders) ``fallback_dir/review-<identity>.csv``."""
    src = table.source
    if src.kind == "file" and src.path:
        path = Path(src.path).expanduser()
        folder = path.parent
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            return folder / f"{_table_stem(path)}.review.csv"
    return Path(fallback_dir).expanduser() / f"review-{table_identity(table)}.csv"


# -- the file ----------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags stripped, without empties or repeats; a tag holding ``;`` is split there (the
    file's separator), so "a; b" typed in one box is two tags."""
    out: list[str] = []
    for tag in tags:
        for part in str(tag).split(TAG_SEPARATOR):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return tuple(out)


def _sv(text: str, path: Path, line: int, name: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) >= 2**64:
        raise ReviewError(
            f"{path} is not a review file imagery-gui can read: {name} {text!r} on line "
            f"{line} is not a supervoxel id; fix that line or choose another review file"
        )
    return int(text)


@dataclass
class _FileRow:
    fields: dict[str, str]
    pre_sv: int
    post_sv: int


def _read_review(path: Path) -> tuple[list[_FileRow], str | None, str | None]:
    """The rows of a review file, its table identity and source (None when it has no rows)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReviewError(f"cannot read the review file {path}: {exc.strerror or exc}") from None
    if not data.strip():
        return [], None, None  # an empty file: a review not started
    not_review = (
        f"{path} is not a review file (it needs the header {','.join(REVIEW_COLUMNS)}); "
        "choose another review file or move this one away"
    )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReviewError(not_review) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise ReviewError(not_review) from None
    if sorted(header) != sorted(REVIEW_COLUMNS):
        raise ReviewError(not_review)
    rows: list[_FileRow] = []
    identity: str | None = None
    source: str | None = None
    try:
        for values in reader:
            line = reader.line_num
            if not values:
                continue
            if len(values) != len(header):
                raise ReviewError(
                    f"{path} is not a review file imagery-gui can read: line {line} has "
                    f"{len(values)} fields, not {len(header)}; fix that line or choose "
                    "another review file"
                )
            fields = dict(zip(header, values))
            if not fields["site_id"]:
                raise ReviewError(
                    f"{path} is not a review file imagery-gui can read: line {line} has no "
                    "site_id; fix that line or choose another review file"
                )
            this = fields["table_identity"].strip().lower()
            if identity is None:
                identity, source = this, fields["table_source"]
            elif this != identity:
                raise ReviewError(
                    f"{path} mixes the reviews of two tables ({identity} and {this} on line "
                    f"{line}); keep the rows of one table or choose another review file"
                )
            pre = _sv(fields["pre_sv"], path, line, "pre_sv")
            post = _sv(fields["post_sv"], path, line, "post_sv")
            rows.append(_FileRow(fields, pre, post))
    except csv.Error as exc:
        raise ReviewError(f"{not_review[:-1]} ({exc})") from None
    return rows, identity, source


def _sv_matches(file_sv: int, table_sv: int) -> bool:
    # Unknown on either side (0) is no evidence of a change.
    return file_sv == 0 or table_sv == 0 or file_sv == table_sv


class Review:
    """The decisions on the sites of one table, saved to :attr:`path` after every change.

    Rows are the table's rows (``0 .. len(table) - 1``). Not for use from several threads
    at once without the caller's lock; each change holds an internal lock while it saves.
    One review file should be open in one process at a time (the last save wins).
    """

    def __init__(
        self,
        table: SiteTable,
        path: str | os.PathLike[str],
        verdicts: Sequence[str] = DEFAULT_VERDICTS,
    ) -> None:
        self.table = table
        self.path = Path(path).expanduser()
        self.verdicts: tuple[str, ...] = tuple(verdicts)
        self._texts = _id_texts(table)
        self.identity = _identity(self._texts, table)
        self.source = table.source.describe()
        self._rows: dict[str, list[int]] = {}
        for i, text in enumerate(self._texts):
            self._rows.setdefault(text, []).append(i)
        self._decisions: dict[int, Decision] = {}
        self._lines: dict[int, str] = {}  # each decision's CSV line, made when it changes
        self._kept: list[dict[str, str]] = []  # rows of the file not applied to a site
        self._lock = threading.Lock()
        #: Decisions of the file not applied (their site's supervoxels changed, or the site
        #: is gone); kept in the file until :meth:`discard_stale`.
        self.stale = 0
        #: True while a change is only in memory (its save failed); :meth:`save` retries.
        self.unsaved = False

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        table: SiteTable,
        path: str | os.PathLike[str],
        verdicts: Sequence[str] = DEFAULT_VERDICTS,
    ) -> Review:
        """The review of ``table`` in ``path``: resumed when the file exists, new (nothing
        written until the first decision) when it does not. Raises :class:`ReviewError`
        when the file is another table's or not a review file (the file is left as it is).
        Temporary files of an interrupted save (``.<name>.*.part``) are ignored."""
        review = cls(table, path, verdicts)
        if review.path.is_dir():
            raise ReviewError(
                f"{review.path} is a folder; give a review file name such as "
                f"{review.path / 'review.csv'}"
            )
        if review.path.exists():
            review._load()
        return review

    def _load(self) -> None:
        rows, identity, source = _read_review(self.path)
        if identity is not None and identity[:_HALF] != self.identity[:_HALF]:
            raise ReviewError(
                f"{self.path} is the review of another table ({source or 'unknown source'}, "
                f"identity {identity}), not of {self.source} (identity {self.identity}); "
                "choose another review file or move that one away"
            )
        pre_sv, post_sv = self.table.pre_sv, self.table.post_sv
        for row in rows:
            fields = row.fields
            tags = _clean_tags(fields["tags"].split(TAG_SEPARATOR))
            if not (fields["verdict"] or fields["note"] or tags):
                continue
            target = None
            for i in self._rows.get(fields["site_id"], ()):
                if (
                    i not in self._decisions
                    and _sv_matches(row.pre_sv, int(pre_sv[i]))
                    and _sv_matches(row.post_sv, int(post_sv[i]))
                ):
                    target = i
                    break
            if target is None:
                self._kept.append(fields)
                continue
            decision = Decision(
                site_id=self._texts[target],
                pre_sv=int(pre_sv[target]),
                post_sv=int(post_sv[target]),
                verdict=fields["verdict"],
                note=fields["note"],
                tags=tags,
                time=fields["reviewed_at"],
            )
            self._put(target, decision)
        self.stale = len(self._kept)

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._decisions)

    def _check_row(self, row: int) -> int:
        row = int(row)
        if not 0 <= row < len(self.table):
            raise IndexError(f"row {row} of a table of {len(self.table)} sites")
        return row

    def decision(self, row: int) -> Decision | None:
        """The decision on a table row, or None when there is none."""
        return self._decisions.get(self._check_row(row))

    def decisions(self) -> dict[int, Decision]:
        """Every decision, by table row (a copy)."""
        return dict(self._decisions)

    def progress(self) -> tuple[int, int]:
        """(sites with a verdict, sites in the table): "N of M reviewed"."""
        return sum(1 for d in self._decisions.values() if d.verdict), len(self.table)

    def verdict_codes(self) -> npt.NDArray[np.int8]:
        """Per table row: 0 no verdict, ``1 + k`` the k-th of :attr:`verdicts`, -1 a verdict
        that is not one of them (read from a file made with other verdicts)."""
        codes = np.zeros(len(self.table), dtype=np.int8)
        for i, d in self._decisions.items():
            codes[i] = self._code(d)
        return codes

    def verdict_code(self, row: int) -> int:
        """:meth:`verdict_codes` of one row (what a change to that row needs redrawn)."""
        return self._code(self._decisions.get(self._check_row(row)))

    def _code(self, d: Decision | None) -> int:
        if d is None or not d.verdict:
            return 0
        return self.verdicts.index(d.verdict) + 1 if d.verdict in self.verdicts else -1

    # -- changing (each change is saved before it returns) -----------------------------------
    def set_verdict(self, row: int, verdict: str | None) -> Decision | None:
        """Set (or with None / "" clear) a row's verdict and save. Any string is accepted,
        so verdicts configured elsewhere survive."""
        return self._change(row, verdict=(verdict or "").strip())

    def set_note(self, row: int, text: str) -> Decision | None:
        return self._change(row, note=text.strip())

    def set_tags(self, row: int, tags: Iterable[str]) -> Decision | None:
        if isinstance(tags, str):
            tags = [tags]
        return self._change(row, tags=_clean_tags(tags))

    def _change(self, row: int, **changes: Any) -> Decision | None:
        row = self._check_row(row)
        with self._lock:
            old = self._decisions.get(row)
            fields: dict[str, Any] = {
                "verdict": old.verdict if old else "",
                "note": old.note if old else "",
                "tags": old.tags if old else (),
            }
            if all(fields[k] == v for k, v in changes.items()):
                return old  # nothing changed: no save, the time stays
            fields.update(changes)
            new = Decision(
                site_id=self._texts[row],
                pre_sv=int(self.table.pre_sv[row]),
                post_sv=int(self.table.post_sv[row]),
                time=_now(),
                **fields,
            )
            if new.empty:
                self._decisions.pop(row, None)
                self._lines.pop(row, None)
            else:
                self._put(row, new)
            self.unsaved = True
            self._save_locked()
            return None if new.empty else new

    def discard_stale(self) -> int:
        """Drop the decisions that did not match a site from the file; returns how many."""
        with self._lock:
            n = len(self._kept)
            if n:
                self._kept = []
                self.stale = 0
                self.unsaved = True
                self._save_locked()
            return n

    # -- saving ------------------------------------------------------------------------------
    def _line(self, values: Sequence[str]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        return buf.getvalue()

    def _put(self, row: int, d: Decision) -> None:
        self._decisions[row] = d
        self._lines[row] = self._line(
            (
                d.site_id,
                str(d.pre_sv) if d.pre_sv else "",
                str(d.post_sv) if d.post_sv else "",
                d.verdict,
                d.note,
                TAG_SEPARATOR.join(d.tags),
                d.time,
                self.identity,
                self.source,
            )
        )

    def save(self) -> None:
        """Write the file now (after a failed save, to retry; changes save themselves)."""
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        # The lines of unchanged decisions are reused: a save is a join and a write,
        # whatever the number of decisions (the whole file is still rewritten, so it
        # is complete at every moment).
        parts = [self._line(REVIEW_COLUMNS)]
        parts += [self._lines[i] for i in sorted(self._lines)]
        for fields in self._kept:
            kept = dict(fields, table_identity=self.identity, table_source=self.source)
            parts.append(self._line([kept[c] for c in REVIEW_COLUMNS]))
        data = "".join(parts).encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # No fsync in the GUI thread (it can take 10-200 ms): once renamed, the file is
            # the kernel's, so a killed app loses nothing; the disk gets it moments later.
            with atomic_open(self.path, "wb", overwrite=True, fsync=False) as fh:
                fh.write(data)
            sync_later(self.path)
        except OSError as exc:
            # ExportError is an OSError with a full sentence; others get one here.
            why = str(exc) if isinstance(exc, ImageryGuiError) else exc.strerror or str(exc)
            raise ReviewError(
                f"the decision is not saved: {why}; choose another review file (it stays in "
                "memory until a save succeeds)"
            ) from None
        self.unsaved = False

    # -- the reviewed table ----------------------------------------------------------------------
    def to_frame(self) -> Any:
        """``table.to_frame()`` with the columns verdict, note, tags (``;``-joined) and
        reviewed_at ("" where there is no decision); a table column of those names is
        replaced (a table read back from an exported review)."""
        df = self.table.to_frame()
        n = len(self.table)
        cols: dict[str, list[str]] = {c: [""] * n for c in EXPORT_COLUMNS}
        for i, d in self._decisions.items():
            cols["verdict"][i] = d.verdict
            cols["note"][i] = d.note
            cols["tags"][i] = TAG_SEPARATOR.join(d.tags)
            cols["reviewed_at"][i] = d.time
        for name in EXPORT_COLUMNS:
            if name in df.columns:
                df = df.drop(columns=[name])
        for name in EXPORT_COLUMNS:
            df[name] = cols[name]
        return df

    def export(self, path: str | os.PathLike[str], overwrite: bool = True) -> str:
        """Write :meth:`to_frame` as ``.csv``, ``.parquet`` or ``.feather`` (by the name's
        extension), atomically; returns the path. Ids stay exact integers."""
        target = Path(path).expanduser()
        ext = target.suffix.lower()
        if ext not in EXPORT_FORMATS:
            raise ReviewError(
                f"cannot export the review to {target}: give a file name ending in "
                f"{', '.join(EXPORT_FORMATS)}"
            )
        df = self.to_frame()
        try:
            with atomic_open(target, "wb", overwrite=overwrite) as fh:
                if ext == ".csv":
                    fh.write(df.to_csv(index=False).encode("utf-8"))
                elif ext == ".parquet":
                    df.to_parquet(fh, index=False)
                else:
                    df.to_feather(fh)
        except ImageryGuiError as exc:
            raise ReviewError(str(exc)) from None
        except (OSError, ValueError, TypeError, ImportError) as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ReviewError(f"cannot export the review to {target}: {why}") from None
        return str(target)
