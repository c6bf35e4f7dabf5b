"""A local CAVE deployment for tests: info service, auth, chunkedgraph, materialize, state.

It answers the endpoints the real ``caveclient`` and cloud-volume's graphene frontend call
(see caveclient's ``endpoints.py`` and cloud-volume's ``frontends/graphene.py``), with the
payloads they expect, on 127.0.0.1 only, and stops when its context exits (or after a time
limit). Every request needs ``Authorization: Bearer <token>`` except the Precomputed data
under ``/data/``.

The graphene table is built from a real segmentation volume: each root segment is split
into two supervoxels (left and right halves, layer-1 ids), and one edit merged two roots
into a new one at ``EDIT_TIME``, so lookups before and after it differ.
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


@dataclass
class GrapheneTable:
    """Supervoxels on disk plus the root history the chunkedgraph answers from."""

    name: str
    sv_dir: Path  # Precomputed supervoxel layer
    sv_to_root_before: dict[int, int]
    merged: tuple[int, int]  # the two roots merged at EDIT_TIME into NEW_ROOT
    info: dict = field(default_factory=dict)

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
    return GrapheneTable("test_table", folder / "sv", mapping, (a, b), info)


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
            "synapse_table": None,
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
                body = self._body() if method == "POST" else b""
                ts = float(q["timestamp"][0]) if "timestamp" in q else None
                t = cave.table
                routes = {
                    "/info/version": lambda: "4.2.0",
                    f"/info/api/v2/datastack/full/{cave.datastack}": cave.datastack_info,
                    "/segmentation/api/versions": lambda: [0, 1],
                    "/segmentation/api/version": lambda: "2.15.0",
                    "/materialize/api/versions": lambda: [2, 3],
                    "/materialize/version": lambda: "4.30.0",
                    "/nglstate/api/v1/version": lambda: "1.0.0",
                }
                if path in routes:
                    return self._send(200, routes[path]())
                if t is not None and path == f"/segmentation/table/{t.name}/info":
                    return self._send(200, cave.graphene_info())
                base = f"/segmentation/api/v1/table/{t.name}/" if t else "//"
                if path.startswith(base):
                    return self._chunkedgraph(path[len(base) :], q, body, ts)
                mat = f"/materialize/api/v3/datastack/{cave.datastack}/version/"
                if path.startswith(mat):
                    v = int(path[len(mat) :].strip("/"))
                    when = (T0 if v == 1 else EDIT_TIME) + dt.timedelta(days=1)
                    fmt = "%Y-%m-%dT%H:%M:%S.%f"
                    return self._send(
                        200,
                        {
                            "version": v,
                            "valid": True,
                            "datastack": cave.datastack,
                            "time_stamp": when.strftime(fmt),
                            "expires_on": (when + dt.timedelta(days=365)).strftime(fmt),
                        },
                    )
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
