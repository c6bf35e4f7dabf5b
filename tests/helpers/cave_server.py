"""A local CAVE deployment for tests: info service, auth, chunkedgraph, materialize, state.

It answers the endpoints the real ``caveclient`` and cloud-volume's graphene frontend call
(see caveclient's ``endpoints.py`` and cloud-volume's ``frontends/graphene.py``), with the
payloads they expect, on 127.0.0.1 only, and stops when its context exits (or after a time
limit). Every request needs ``Authorization: Bearer <token>`` except the Precomputed data
under ``/data/``.

The graphene table is built from a real segmentation volume: each root segment is split
into two supervoxels (left and right halves, layer-1 ids), and one edit merged two roots
into a new one at ``EDIT_TIME``, so lookups before and after it differ.

The materialization service holds one synapse table (``SYNAPSE_TABLE``, 4 x 4 x 40 nm),
built from the volume's touching segments (:mod:`imagery_gui.model.contacts`) with real
supervoxel ids, and answers caveclient's ``query_table``/``synapse_query`` (an Arrow IPC
stream, split positions, ``dataframe_resolution`` header), ``live_query`` (version
metadata, ``past_id_mapping``), ``get_table_metadata`` and the version list. Version 1 is
materialized before the edit, version 2 after it, so the two merged roots exist only in
version 1 and the new root only in version 2.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from imagery_gui.model.writer import write_precomputed
from tests.helpers.http_server import BoundedServer

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
EDIT_TIME = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
LAYER1 = np.uint64(1) << np.uint64(56)
NEW_ROOT = 864691136000000001
SYNAPSE_TABLE = "synapses_test"
SYNAPSE_RES = (4, 4, 40)
VERSIONS = (1, 2)


def version_time(v: int) -> dt.datetime:
    """When materialization version ``v`` was made (1: before the edit, 2: after)."""
    return (T0 if v == 1 else EDIT_TIME) + dt.timedelta(days=1)


@dataclass
class SynapseRows:
    """A synapse table: supervoxels and positions fixed, roots looked up per version."""

    ids: np.ndarray
    pre_sv: np.ndarray
    post_sv: np.ndarray
    pre: np.ndarray  # (n, 3) int64 at SYNAPSE_RES
    post: np.ndarray
    ctr: np.ndarray
    size: np.ndarray


@dataclass
class GrapheneTable:
    """Supervoxels on disk plus the root history the chunkedgraph answers from."""

    name: str
    sv_dir: Path  # Precomputed supervoxel layer
    sv_to_root_before: dict[int, int]
    merged: tuple[int, int]  # the two roots merged at EDIT_TIME into NEW_ROOT
    info: dict = field(default_factory=dict)
    synapses: SynapseRows | None = None

    def root_of(self, sv: int, ts: float | None) -> int:
        root = self.sv_to_root_before.get(sv, 0)
        if root in self.merged and (ts is None or ts >= EDIT_TIME.timestamp()):
            return NEW_ROOT
        return root

    def leaves(self, root: int) -> list[int]:
        if root == NEW_ROOT:
            return [s for s, r in self.sv_to_root_before.items() if r in self.merged]
        return [s for s, r in self.sv_to_root_before.items() if r == root]


def build_graphene_table(
    folder: Path, roots_xyz: np.ndarray, resolution=(8, 8, 40), offset=(0, 0, 0)
) -> GrapheneTable:
    """Supervoxel layer from a root-id volume: every root split into two halves along x."""
    roots = np.asarray(roots_xyz, dtype=np.uint64)
    xs = np.arange(roots.shape[0])[:, None, None]
    mapping: dict[int, int] = {}
    sv = np.zeros_like(roots)
    ids = [int(v) for v in np.unique(roots) if v]
    for k, root in enumerate(ids):
        mask = roots == np.uint64(root)
        xcoords = np.broadcast_to(xs, roots.shape)[mask]
        mid = int(np.median(xcoords))
        left = mask & (np.broadcast_to(xs, roots.shape) < mid)
        right = mask & ~left
        for part, m in ((0, left), (1, right)):
            if m.any():
                sid = int(LAYER1 | np.uint64(2 * k + part + 1))
                sv[m] = np.uint64(sid)
                mapping[sid] = root
    if (folder / "sv" / "info").is_file():
        import shutil

        shutil.rmtree(folder / "sv")
    info = write_precomputed(
        folder / "sv",
        sv,
        layer_type="segmentation",
        resolution=resolution,
        voxel_offset=offset,
        chunk_size=(64, 64, 8),
        encoding="compressed_segmentation",
        num_mips=2,
    )
    # Two big neighbouring roots are the ones an edit merged.
    counts = Counter(int(v) for v in roots[roots > 0])
    a, b = (r for r, _ in counts.most_common(2))
    syn = build_synapses(roots, sv, resolution, offset)
    return GrapheneTable("test_table", folder / "sv", mapping, (a, b), info, syn)


def build_synapses(roots: np.ndarray, sv: np.ndarray, resolution, offset) -> SynapseRows:
    """Contacts between touching roots, positions at SYNAPSE_RES, with their supervoxels."""
    from imagery_gui.model.contacts import synapse_frame, touching_contacts

    c = touching_contacts(roots, max_sites=400, seed=11, depth=4)
    factor = [int(r) // int(s) for r, s in zip(resolution, SYNAPSE_RES)]
    df = synapse_frame(c, label_offset=offset, factor=factor, first_id=5001, seed=12)
    return SynapseRows(
        ids=df["id"].to_numpy(),
        pre_sv=sv[tuple(c["pre"].T)].astype(np.int64),
        post_sv=sv[tuple(c["post"].T)].astype(np.int64),
        pre=np.stack(df["pre_pt_position"].to_numpy()),
        post=np.stack(df["post_pt_position"].to_numpy()),
        ctr=np.stack(df["ctr_pt_position"].to_numpy()),
        size=df["size"].to_numpy(),
    )


class FakeCave(BoundedServer):
    """``with FakeCave(tables, tokens={"abc123"}) as cave: cave.url``"""

    def __init__(
        self,
        data_root: Path,
        table: GrapheneTable | None,
        tokens: set[str],
        datastack: str = "test_stack",
        image_layer: str = "image",
        states: dict[int, dict] | None = None,
        max_seconds: float = 600,
    ) -> None:
        self.data_root = Path(data_root)
        self.table = table
        self.tokens = set(tokens)
        self.datastack = datastack
        self.image_layer = image_layer
        self.states = dict(states or {})
        self.max_seconds = max_seconds
        self.requests: list[tuple[str, str, str | None]] = []
        self.queries: list[tuple[int, dict]] = []  # (version, body) of each synapse query
        self._lock = threading.Lock()

    @property
    def graphene_source(self) -> str:
        return f"graphene://{self.url}/segmentation/table/{self.table.name}"

    @property
    def image_source(self) -> str:
        return f"precomputed://{self.url}/data/{self.image_layer}"

    def datastack_info(self) -> dict:
        return {
            "aligned_volume": {
                "image_source": self.image_source,
                "name": "test_volume",
                "id": 1,
                "description": "",
                "display_name": "test volume",
            },
            "segmentation_source": self.graphene_source,
            "viewer_site": "https://neuroglancer.example.org",
            "local_server": self.url,
            "viewer_resolution_x": 4,
            "viewer_resolution_y": 4,
            "viewer_resolution_z": 40,
            "synapse_table": SYNAPSE_TABLE if self.table and self.table.synapses else None,
            "soma_table": None,
            "analysis_database": None,
            "description": "a test datastack",
            "proofreading_status_table": None,
        }

    def graphene_info(self) -> dict:
        info = dict(self.table.info)
        info.update(
            {
                "data_dir": f"precomputed://{self.url}/data/graphene_sv",
                "app": {"supported_api_versions": [0, 1]},
                "graph": {
                    "chunk_size": [64, 64, 8],
                    "n_layers": 12,
                    "n_bits_for_layer_id": 8,
                    "spatial_bit_masks": {
                        str(i): 10 if i == 1 else max(1, 10 - i) for i in range(1, 13)
                    },
                    "cv_mip": 0,
                    "fan_out": 2,
                },
                "mesh": "graphene_meshes",
            }
        )
        return info

    def version_metadata(self, v: int) -> dict:
        when = version_time(v)
        fmt = "%Y-%m-%dT%H:%M:%S.%f"
        return {
            "version": v,
            "id": v,
            "valid": True,
            "datastack": self.datastack,
            "time_stamp": when.strftime(fmt),
            "expires_on": (when + dt.timedelta(days=365)).strftime(fmt),
            "status": "AVAILABLE",
        }

    def synapse_metadata(self) -> dict:
        """What the materialization service says about the synapse table."""
        return {
            "aligned_volume": "test_volume",
            "table_name": SYNAPSE_TABLE,
            "schema": "synapse",
            "schema_type": "synapse",
            "valid": True,
            "created": T0.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "id": 1,
            "user_id": "1",
            "description": "contacts between touching segments of the test volume",
            "reference_table": None,
            "flat_segmentation_source": None,
            "voxel_resolution_x": float(SYNAPSE_RES[0]),
            "voxel_resolution_y": float(SYNAPSE_RES[1]),
            "voxel_resolution_z": float(SYNAPSE_RES[2]),
            "write_permission": "PRIVATE",
            "read_permission": "PUBLIC",
            "last_modified": T0.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "segmentation_source": "",
            "pcg_table_name": self.table.name if self.table else "",
            "last_updated": T0.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "annotation_table": SYNAPSE_TABLE,
        }

    def __enter__(self) -> FakeCave:
        cave = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a) -> None:
                pass

            def _send(self, status: int, body, ctype="application/json", extra=None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization", "")
                return auth.startswith("Bearer ") and auth[7:] in cave.tokens

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n)
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    data = gzip.decompress(data)
                return data

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                path, q = unquote(parts.path), parse_qs(parts.query)
                with cave._lock:
                    cave.requests.append((method, self.path, self.headers.get("Authorization")))
                if path.startswith("/data/"):
                    return self._data(path[len("/data/") :])
                if not self._authorized():
                    return self._send(
                        401, {"error": "unauthorized", "message": "invalid or missing token"}
                    )
                body = self._body()  # caveclient sends JSON bodies with some GETs too
                ts = float(q["timestamp"][0]) if "timestamp" in q else None
                t = cave.table
                routes = {
                    "/info/version": lambda: "4.2.0",
                    f"/info/api/v2/datastack/full/{cave.datastack}": cave.datastack_info,
                    "/segmentation/api/versions": lambda: [0, 1],
                    "/segmentation/api/version": lambda: "2.15.0",
                    "/materialize/api/versions": lambda: [2, 3],
                    # >= 5.13: caveclient 8 refuses query_table against older servers.
                    "/materialize/version": lambda: "5.30.0",
                    "/nglstate/api/v1/version": lambda: "1.0.0",
                }
                if path in routes:
                    return self._send(200, routes[path]())
                if t is not None and path == f"/segmentation/table/{t.name}/info":
                    return self._send(200, cave.graphene_info())
                base = f"/segmentation/api/v1/table/{t.name}/" if t else "//"
                if path.startswith(base):
                    return self._chunkedgraph(path[len(base) :], q, body, ts)
                ds = f"/materialize/api/v3/datastack/{cave.datastack}"
                if path == ds + "/versions":
                    return self._send(200, list(VERSIONS))
                if path == ds + "/metadata":
                    return self._send(200, [cave.version_metadata(v) for v in VERSIONS])
                mat = ds + "/version/"
                if path.startswith(mat):
                    rest = path[len(mat) :].strip("/").split("/")
                    v = int(rest[0])
                    if len(rest) == 1:
                        return self._send(200, cave.version_metadata(v))
                    syn = t.synapses if t is not None else None
                    if syn is not None and rest[1:3] == ["table", SYNAPSE_TABLE]:
                        if rest[3:] == ["metadata"]:
                            return self._send(200, cave.synapse_metadata())
                        if rest[3:] == ["query"] and method == "POST":
                            return self._synapse_query(v, json.loads(body or b"{}"))
                    return self._send(404, {"error": "no such table", "path": path})
                if path.startswith("/nglstate/api/v1/"):
                    key = path.rsplit("/", 1)[-1]
                    if key.isdigit() and int(key) in cave.states:
                        return self._send(200, cave.states[int(key)])
                return self._send(404, {"error": "not found", "path": path})

            def _chunkedgraph(self, sub: str, q, body: bytes, ts) -> None:
                t = cave.table
                if sub == "roots_binary":
                    svs = np.frombuffer(body, dtype=np.uint64)
                    roots = np.array([t.root_of(int(s), ts) for s in svs], dtype=np.uint64)
                    return self._send(200, roots.tobytes(), "application/octet-stream")
                if sub.startswith("node/") and sub.endswith("/leaves"):
                    root = int(sub.split("/")[1])
                    return self._send(200, {"leaf_ids": t.leaves(root)})
                data = json.loads(body or b"{}")
                if sub == "is_latest_roots":
                    now = ts if ts is not None else dt.datetime.now(dt.UTC).timestamp()
                    after = now >= EDIT_TIME.timestamp()
                    out = []
                    for r in data["node_ids"]:
                        r = int(r)
                        out.append(
                            after if r == NEW_ROOT else (not after if r in t.merged else True)
                        )
                    return self._send(200, {"is_latest": out})
                if sub == "past_id_mapping":
                    # GET with a JSON body: the ids at timestamp_past of each given root.
                    past = float(q.get("timestamp_past", [T0.timestamp()])[0])
                    past_map, future_map = {}, {}
                    for r in (int(x) for x in data["root_ids"]):
                        ids = [r]
                        if r == NEW_ROOT and past < EDIT_TIME.timestamp():
                            ids = list(t.merged)
                        past_map[str(r)] = ids
                        for old in ids:
                            future_map[str(old)] = r
                    return self._send(200, {"past_id_map": past_map, "future_id_map": future_map})
                if sub == "root_timestamps":
                    stamps = [
                        (EDIT_TIME if int(r) == NEW_ROOT else T0).timestamp()
                        for r in data["node_ids"]
                    ]
                    return self._send(200, {"timestamp": stamps})
                if sub == "lineage_graph_multiple":
                    past = float(q.get("timestamp_past", [T0.timestamp()])[0])
                    future = float(
                        q.get("timestamp_future", [dt.datetime.now(dt.UTC).timestamp()])[0]
                    )
                    asked = {int(r) for r in data["root_ids"]}
                    nodes = {r: T0.timestamp() for r in asked}
                    links = []
                    if (
                        asked & (set(t.merged) | {NEW_ROOT})
                    ) and past <= EDIT_TIME.timestamp() <= future:
                        for r in t.merged:
                            nodes[r] = T0.timestamp()
                            links.append({"source": r, "target": NEW_ROOT})
                        nodes[NEW_ROOT] = EDIT_TIME.timestamp()
                    return self._send(
                        200,
                        {
                            "directed": True,
                            "multigraph": False,
                            "graph": {},
                            "nodes": [{"id": r, "timestamp": s} for r, s in nodes.items()],
                            "links": links,
                        },
                    )
                return self._send(404, {"error": f"no chunkedgraph endpoint {sub}"})

            def _synapse_query(self, version: int, data: dict) -> None:
                """caveclient's query body -> an Arrow IPC stream of the matching rows."""
                import pyarrow as pa

                t = cave.table
                syn = t.synapses
                ts = version_time(version).timestamp()
                pre_root = np.array([t.root_of(int(s), ts) for s in syn.pre_sv], dtype=np.int64)
                post_root = np.array([t.root_of(int(s), ts) for s in syn.post_sv], dtype=np.int64)
                cols = {"pre_pt_root_id": pre_root, "post_pt_root_id": post_root}
                keep = np.ones(len(syn.ids), dtype=bool)
                for key, test in (
                    ("filter_in_dict", lambda a, v: np.isin(a, np.asarray(v, dtype=np.int64))),
                    ("filter_notin_dict", lambda a, v: ~np.isin(a, np.asarray(v, dtype=np.int64))),
                    ("filter_equal_dict", lambda a, v: a == int(v)),
                ):
                    for col, value in (data.get(key) or {}).get(SYNAPSE_TABLE, {}).items():
                        if col not in cols:
                            return self._send(400, {"message": f"cannot filter on {col}"})
                        keep &= test(cols[col], value)
                idx = np.flatnonzero(keep)
                idx = idx[int(data.get("offset") or 0) :]
                if data.get("limit"):
                    idx = idx[: int(data["limit"])]
                res = np.asarray(SYNAPSE_RES, dtype=float)
                want = np.asarray(data.get("desired_resolution") or res, dtype=float)
                table = {
                    "id": syn.ids[idx],
                    "valid": np.ones(len(idx), dtype=bool),
                    "pre_pt_supervoxel_id": syn.pre_sv[idx],
                    "pre_pt_root_id": pre_root[idx],
                    "post_pt_supervoxel_id": syn.post_sv[idx],
                    "post_pt_root_id": post_root[idx],
                    "size": syn.size[idx],
                }
                for name, pts in (
                    ("pre_pt_position", syn.pre),
                    ("post_pt_position", syn.post),
                    ("ctr_pt_position", syn.ctr),
                ):
                    scaled = pts[idx] * (res / want)
                    for k, a in enumerate("xyz"):
                        col = scaled[:, k]
                        table[f"{name}_{a}"] = col if (want != res).any() else col.astype(np.int64)
                sink = pa.BufferOutputStream()
                tbl = pa.table(table)
                with pa.ipc.new_stream(sink, tbl.schema) as writer:
                    writer.write_table(tbl)
                with cave._lock:
                    cave.queries.append((version, data))
                return self._send(
                    200,
                    sink.getvalue().to_pybytes(),
                    "data.arrow",
                    {"dataframe_resolution": ", ".join(str(float(v)) for v in want)},
                )

            def _data(self, rel: str) -> None:
                # /data/graphene_sv/... serves the supervoxels; /data/<x>/ the other layers.
                if rel.startswith("graphene_sv/"):
                    target = cave.table.sv_dir / rel[len("graphene_sv/") :]
                else:
                    target = cave.data_root / rel
                target = target.resolve()
                if target.is_file():
                    return self._send(200, target.read_bytes(), "application/octet-stream")
                gz = target.with_name(target.name + ".gz")
                if gz.is_file():
                    return self._send(
                        200,
                        gz.read_bytes(),
                        "application/octet-stream",
                        {"Content-Encoding": "gzip"},
                    )
                return self._send(404, b"not found", "text/plain")

        self._serve(Handler)
        return self
