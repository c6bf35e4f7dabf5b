"""URLs as they may be shown or stored: credentials removed.

A low-level module (standard library only) so that both the export provenance
(:mod:`imagery_gui.model.export`) and Neuroglancer links (:mod:`imagery_gui.model.ngl`) can
redact sources without importing each other.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact_url"]

_SECRET_KEYS = ("token", "middle_auth_token", "auth_token", "access_token", "key", "secret")


def redact_url(url: str | None) -> str | None:
    """A source URL with any credentials removed (query tokens, user:password@)."""
    if not url:
        return url
    head, sep, rest = url.partition("://")
    inner = url
    prefix = ""
    if sep and head in ("precomputed", "graphene"):
        prefix, inner = head + "://", rest
    parts = urlsplit(inner)
    if not parts.scheme or parts.scheme == "file":
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in _SECRET_KEYS])
    return prefix + urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
