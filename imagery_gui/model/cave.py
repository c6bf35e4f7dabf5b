"""CAVE: datastacks through the real ``caveclient``, tokens, graphene root-id status.

* :func:`connect` turns a datastack name into sources, the viewer resolution and a token
  (from caveclient's usual places or a token file);
* a missing or rejected token becomes an :class:`AuthenticationError` whose message says
  exactly how to set one up, and no message ever contains the token (:func:`scrub`);
* :func:`outdated_roots` finds selected root ids that are no longer the latest and their
  successors; :func:`timestamp_for_version` turns a materialization version into a time;
* :func:`fetch_state_json` reads a Neuroglancer state from a CAVE state server, any http(s)
  URL, or a gs://, s3://, file:// URL (through cloud-files, with the user's credentials).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import (
    AuthenticationError,
    ImageryGuiError,
    SourceNotFoundError,
    SourceUnavailableError,
    UnsupportedSourceError,
)

# Re-exported: these were defined here first; source.py needs them without importing CAVE code.
from .secrets import DEFAULT_SERVER, scrub, token_help


def read_token_file(path: str) -> str:
    """A token from a JSON file (``{"token": ...}``, caveclient's format) or a bare token."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError as exc:
        raise AuthenticationError(f"cannot read the token file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = text
    if isinstance(data, dict):
        data = data.get("token")
    if not isinstance(data, str) or not data.strip():
        raise AuthenticationError(
            f'the token file {path} holds no token (expected {{"token": "..."}})'
        )
    return data.strip()


@dataclass(frozen=True)
class DatastackInfo:
    datastack: str
    server_address: str
    image_source: str | None
    segmentation_source: str | None
    resolution: tuple[float, float, float]
    viewer_site: str | None


def _find_token(server: str, auth_token: str | None, auth_token_file: str | None) -> str | None:
    if auth_token:
        return auth_token
    if auth_token_file:
        return read_token_file(auth_token_file)
    from caveclient.auth import AuthClient

    return AuthClient(server_address=server).token


def _http_status(exc: BaseException) -> int | None:
    resp = getattr(exc, "response", None)
    return getattr(resp, "status_code", None) if resp is not None else None


def translate(exc: BaseException, server: str, what: str, token: str | None) -> Exception:
    """A caveclient/requests failure as one of our error types, with no token in it."""
    import requests

    status = _http_status(exc)
    if status in (401, 403) or type(exc).__name__ == "AuthException":
        return AuthenticationError(
            f"{server} rejected the CAVE token while {what} (HTTP {status or 'redirect to login'}). "
            + token_help(server)
        )
    if status == 404:
        return SourceNotFoundError(f"{server}: not found while {what} (HTTP 404); check the name")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return SourceUnavailableError(
            f"cannot reach the CAVE server {server} while {what}; check the address and your network"
        )
    if isinstance(exc, requests.exceptions.RequestException) or status is not None:
        return SourceUnavailableError(
            f"the CAVE server {server} failed while {what} ({scrub(str(exc), token)[:200]})"
        )
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def connect(
    datastack: str,
    server_address: str | None = None,
    auth_token: str | None = None,
    auth_token_file: str | None = None,
) -> tuple[Any, DatastackInfo]:
    """A ``CAVEclient`` for a datastack and what the viewer needs from its info service."""
    from caveclient import CAVEclient

    if not datastack or not re.fullmatch(r"[\w.\-]+", datastack):
        raise SourceNotFoundError(f"{datastack!r} is not a datastack name (like minnie65_public)")
    server = (server_address or DEFAULT_SERVER).rstrip("/")
    token = _find_token(server, auth_token, auth_token_file)
    if not token:
        raise AuthenticationError(f"no CAVE token found for {server}. " + token_help(server))
    try:
        client = CAVEclient(
            datastack, server_address=server, auth_token=token, write_server_cache=False
        )
        image = client.info.image_source()
        seg = client.info.segmentation_source()
        res = tuple(float(r) for r in client.info.viewer_resolution())
        try:
            site = client.info.viewer_site()
        except Exception:  # noqa: BLE001 - optional in the info service
            site = None
    except Exception as exc:  # noqa: BLE001
        err = translate(exc, server, f"looking up the datastack {datastack!r}", token)
        raise err from None
    return client, DatastackInfo(datastack, server, image, seg, res, site)  # type: ignore[arg-type]


def timestamp_for_version(client: Any, version: int) -> _dt.datetime:
    """The time of a materialization version (root ids are looked up as of then)."""
    try:
        ts = client.materialize.get_timestamp(int(version))
    except Exception as exc:  # noqa: BLE001
        raise translate(
            exc,
            client.server_address,
            f"looking up materialization version {version}",
            client.auth.token,
        ) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=_dt.UTC)
    return ts


_GRAPHENE = re.compile(r"^/segmentation/(?:api/v1/)?table/(?P<table>[\w.\-]+)/?$")


def chunkedgraph_for(segmentation_source: str, token: str | None) -> Any:
    """A caveclient ``ChunkedGraphClient`` for a ``graphene://`` source."""
    from caveclient.auth import AuthClient
    from caveclient.chunkedgraph import ChunkedGraphClient

    inner = segmentation_source.split("://", 1)[1].replace("middleauth+", "")
    parts = urlsplit(inner)
    m = _GRAPHENE.match(parts.path)
    if m is None:
        raise SourceNotFoundError(f"{segmentation_source} is not a graphene table URL")
    server = f"{parts.scheme}://{parts.netloc}"
    try:
        return ChunkedGraphClient(
            server_address=server, table_name=m.group("table"), auth_client=AuthClient(token=token)
        )
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, server, "connecting to the chunkedgraph", token) from None


def outdated_roots(
    chunkedgraph: Any, root_ids: list[int], timestamp: Any = None
) -> dict[int, list[int]]:
    """Root ids that are no longer the latest (at ``timestamp``), with their successors."""
    if not root_ids:
        return {}
    server = getattr(chunkedgraph, "server_address", "the chunkedgraph")
    try:
        latest = chunkedgraph.is_latest_roots(root_ids, timestamp=timestamp)
        out = {}
        for rid, ok in zip(root_ids, latest):
            if not ok:
                succ = chunkedgraph.get_latest_roots(int(rid), timestamp=timestamp)
                out[int(rid)] = [int(v) for v in succ]
        return out
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, server, "checking whether root ids are current", None) from None


_STATE_PATH = re.compile(r"^(?P<prefix>.*?)/nglstate/(?:api/v1/)?(?:raw/)?(?P<id>\d+)/?$")


def fetch_state_json(
    url: str, auth_token: str | None = None, auth_token_file: str | None = None
) -> dict:
    """A Neuroglancer state from the URL after a link's ``#!`` (or its ``json_url``).

    CAVE state servers are read through caveclient (with the CAVE token), other http(s)
    URLs with a plain GET, and gs://, s3://, file:// (and cloud-files' other protocols)
    through cloud-files, which uses the user's usual cloud credentials.
    """
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https", "middleauth+http", "middleauth+https"):
        return _state_from_cloudfiles(url, scheme)
    url = url.replace("middleauth+", "")
    parts = urlsplit(url)
    server = f"{parts.scheme}://{parts.netloc}"
    m = _STATE_PATH.match(parts.path)
    if m is None:
        import requests

        try:
            r = requests.get(url, timeout=30)
            r.raise_for_status()
            return r.json()
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, server, "fetching the Neuroglancer state", None) from None
    from caveclient import CAVEclient

    token = _find_token(server, auth_token, auth_token_file)
    if not token:
        raise AuthenticationError(
            f"no CAVE token found for {server}, which holds this state. " + token_help(server)
        )
    try:
        client = CAVEclient(
            server_address=server, auth_token=token, global_only=True, write_server_cache=False
        )
        return client.state.get_state_json(int(m.group("id")))
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, server, "fetching the Neuroglancer state", token) from None


def _state_from_cloudfiles(url: str, scheme: str) -> dict:
    from cloudfiles import CloudFile
    from cloudfiles.paths import ALLOWED_PROTOCOLS

    # cloud-files' protocols (gs, s3, file and its aliases of S3 endpoints); http(s) went
    # through fetch_state_json's own readers, and mem:// is only this process's memory.
    readable = sorted(p for p in ALLOWED_PROTOCOLS if "http" not in p and p != "mem")
    if scheme not in readable:
        names = ", ".join(p + "://" for p in ["https", "http", "middleauth+https", *readable])
        raise UnsupportedSourceError(
            f"cannot follow the Neuroglancer state at {scrub(url)}: imagery-gui reads stored "
            f"states from {names} URLs, not {scheme}://"
        )
    try:
        data = CloudFile(url).get()
    except Exception as exc:  # noqa: BLE001 - cloud-files raises each backend's own errors
        raise SourceUnavailableError(
            f"cannot read the Neuroglancer state at {scrub(url)}: "
            f"{scrub(str(exc))[:200] or type(exc).__name__}"
        ) from None
    if data is None:
        raise SourceNotFoundError(f"there is no Neuroglancer state at {scrub(url)} (no such file)")
    try:
        state = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageryGuiError(
            f"the file at {scrub(url)} is not a Neuroglancer state (not JSON: {exc})"
        ) from None
    if not isinstance(state, dict):
        raise ImageryGuiError(f"the file at {scrub(url)} is not a Neuroglancer state (no object)")
    return state
