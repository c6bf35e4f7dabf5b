"""A neuron's synapses from CAVE, through the real caveclient, as a site table.

:func:`synapses_of` runs ``client.materialize.synapse_query`` twice (``pre_ids=root``:
the outputs, ``post_ids=root``: the inputs), pinned to one materialization version or
timestamp (the one the segmentation is shown at), with positions left in the table's
own resolution (its ``voxel_resolution``, or the frame's ``dataframe_resolution`` when
the client was made with a ``desired_resolution``). A root id that is not valid at that
moment gives an :class:`OutdatedRootError` carrying its latest successors (as the
segment picker offers them); an empty answer is a :class:`~.sites.SiteTableError`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .cave import outdated_roots, timestamp_for_version, translate
from .segments import parse_root_id
from .sites import (
    SiteSource,
    SiteTable,
    SiteTableError,
    concatenate,
    parse_resolution_value,
    table_from_frame,
)


class OutdatedRootError(SiteTableError):
    """A root id that is not valid at the version/timestamp asked (``successors``: the ids
    to use instead; empty when the root did not exist yet)."""

    def __init__(self, message: str, root_id: int, successors: list[int]) -> None:
        super().__init__(message)
        self.root_id = root_id
        self.successors = successors


def _utc(ts: _dt.datetime) -> _dt.datetime:
    return ts.replace(tzinfo=_dt.UTC) if ts.tzinfo is None else ts.astimezone(_dt.UTC)


def _server(client: Any) -> str:
    return str(getattr(client, "server_address", "the CAVE server"))


def _token(client: Any) -> str | None:
    auth = getattr(client, "auth", None)
    token = getattr(auth, "token", None)
    return token if isinstance(token, str) else None


def default_synapse_table(client: Any) -> str:
    """The datastack's synapse table from its info service."""
    try:
        info = client.info.get_datastack_info()
    except Exception as exc:  # noqa: BLE001
        raise translate(
            exc, _server(client), "looking up the synapse table", _token(client)
        ) from None
    table = info.get("synapse_table") if isinstance(info, dict) else None
    if not table:
        raise SiteTableError(
            f"the datastack {getattr(client, 'datastack_name', '?')} names no synapse table; "
            "give one (--synapse-table NAME)"
        )
    return str(table)


def check_root(client: Any, root_id: int, when: _dt.datetime, what: str) -> None:
    """Raise :class:`OutdatedRootError` if ``root_id`` is not a current root at ``when``."""
    cg = client.chunkedgraph
    try:
        created = cg.get_root_timestamps([root_id])[0]
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, _server(client), "checking the root id", _token(client)) from None
    if isinstance(created, _dt.datetime) and _utc(created) > when:
        raise OutdatedRootError(
            f"root {root_id} did not exist yet at {what} (it was made on "
            f"{_utc(created):%Y-%m-%d %H:%M} UTC): query a later materialization version or "
            "timestamp, or the root ids it was made from",
            root_id,
            [],
        )
    outdated = outdated_roots(cg, [root_id], when)
    if root_id in outdated:
        succ = outdated[root_id]
        listed = ", ".join(str(s) for s in succ) or "none found"
        raise OutdatedRootError(
            f"root {root_id} is not valid at {what}: it was edited since. Its latest "
            f"successors: {listed}; query one of them (--synapses-of ID) or an older version",
            root_id,
            succ,
        )


def synapses_of(
    client: Any,
    root_id: int | str,
    synapse_table: str | None = None,
    materialization_version: int | None = None,
    timestamp: _dt.datetime | None = None,
) -> SiteTable:
    """The inputs (role ``"input"``: rows where the root is post) and outputs (``"output"``:
    rows where it is pre) of one root id, as one :class:`SiteTable`.

    Pinned to ``materialization_version`` or ``timestamp`` (not both); with neither, to
    the most recent version (recorded in the table's source). Autapses are left out
    (caveclient's default)."""
    root = parse_root_id(root_id)
    if materialization_version is not None and timestamp is not None:
        raise SiteTableError("give a materialization version or a timestamp, not both")
    table = synapse_table or default_synapse_table(client)
    mat = client.materialize
    server, token = _server(client), _token(client)
    version: int | None = None
    try:
        if timestamp is None:
            version = int(
                materialization_version if materialization_version is not None else mat.version
            )
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, server, "looking up the materialization version", token) from None
    if version is not None:
        when = timestamp_for_version(client, version)
        what = f"materialization version {version}"
    else:
        assert timestamp is not None
        when = _utc(timestamp)
        what = f"{when:%Y-%m-%d %H:%M:%S} UTC"
    check_root(client, root, when, what)
    pinned: dict[str, Any] = (
        {"materialization_version": version} if version is not None else {"timestamp": when}
    )
    frames: dict[str, Any] = {}
    try:
        for role, key in (("output", "pre_ids"), ("input", "post_ids")):
            frames[role] = mat.synapse_query(
                **{key: root}, synapse_table=table, split_positions=True, **pinned
            )
        meta = (
            mat.get_table_metadata(table, version=version)
            if version is not None
            else mat.get_table_metadata(table)
        )
    except SiteTableError:
        raise
    except ValueError as exc:  # caveclient's own checks (e.g. ids not valid at a timestamp)
        raise SiteTableError(f"the synapse query for root {root} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, server, f"querying {table} for root {root}", token) from None
    res = None
    res_from = ""
    for df in frames.values():
        res = parse_resolution_value((getattr(df, "attrs", {}) or {}).get("dataframe_resolution"))
        if res is not None:
            res_from = f"the query's dataframe_resolution ({table})"
            break
    if res is None:
        res = parse_resolution_value(
            meta.get("voxel_resolution") if isinstance(meta, dict) else None
        )
        res_from = f"the voxel_resolution of {table}"
    if res is None:
        raise SiteTableError(f"the CAVE table {table} does not say its voxel_resolution")
    source = SiteSource(
        "cave",
        datastack=getattr(client, "datastack_name", None),
        table=table,
        version=version,
        timestamp=when.isoformat(),
        query={
            "root_id": str(root),
            "outputs": "synapse_query(pre_ids=root_id)",
            "inputs": "synapse_query(post_ids=root_id)",
            "remove_autapses": True,
        },
    )
    parts: list[SiteTable] = []
    for role, df in frames.items():
        if df is None or not len(df):
            continue
        t = table_from_frame(
            df, source=source, resolution=res, where=f"the {role}s of {root} in {table}", role=role
        )
        t.resolution_from = res_from
        parts.append(t)
    if not parts:
        raise SiteTableError(f"{table} has no synapses of root {root} at {what}")
    out = concatenate(parts, source=source)
    out.resolution_from = res_from
    return out
