"""Proxy credentials sealed for the database: Fernet (AES-128-CBC + HMAC-SHA256) under
MXPROBE_SECRET_KEY, which the API (sealing) and the workers (opening) share.

A bulk job with a free-form proxy stores its username and password only as `seal`'s token,
and the workers erase the token once the job has ended (`app.db.proxy_credentials`).
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken


class Unreadable(Exception):
    """The token was not sealed with this key (another key, or not a token at all)."""


def seal(key: str, *, username: str, password: str) -> str:
    """A token that only `key` opens, holding the credentials."""
    plain = json.dumps({"username": username, "password": password}).encode()
    return Fernet(key).encrypt(plain).decode("ascii")


def unseal(key: str, token: str) -> tuple[str, str]:
    """(username, password) from `seal`'s token."""
    try:
        opened = json.loads(Fernet(key).decrypt(token))
    except (InvalidToken, ValueError) as exc:
        raise Unreadable("sealed with another key, or damaged") from exc
    return str(opened["username"]), str(opened["password"])
