"""Tokens in messages: how to set one up (:func:`token_help`) and how to keep one out of text
(:func:`scrub`).

A low-level module (standard library only): the data sources (:mod:`imagery_gui.model.source`)
use it for their error messages without importing the CAVE client code in
:mod:`imagery_gui.model.cave`, which re-exports these names.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_SERVER", "scrub", "token_help"]

DEFAULT_SERVER = "https://global.daf-apis.com"


def token_help(server: str | None) -> str:
    """How to get a CAVE token and save it where caveclient (and imagery-gui) look."""
    server = (server or DEFAULT_SERVER).rstrip("/")
    return (
        f"To set up a CAVE token for {server}: (1) sign in and create a token at "
        f"{server}/auth/api/v1/create_token (or copy an existing one from "
        f'{server}/auth/api/v1/user/token); (2) save it with: python -c "from caveclient '
        f"import CAVEclient; CAVEclient(server_address='{server}').auth.save_token("
        "token='YOUR_TOKEN', overwrite=True)\" (it goes to ~/.cloudvolume/secrets/); or pass "
        '--auth-token-file FILE (a JSON file {"token": "..."} or the bare token).'
    )


_TOKEN_QUERY = re.compile(r"((?:middle_auth_)?token=)[^&\s'\"]+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._+/=-]+")


def scrub(text: str, *secrets: str | None) -> str:
    """Remove tokens from text meant for users, logs or files."""
    out = str(text)
    for s in secrets:
        if s and len(s) >= 4:
            out = out.replace(s, "***")
    out = _TOKEN_QUERY.sub(r"\1***", out)
    return _BEARER.sub(r"\1***", out)
