"""Secrets: the one reader of what cluster.yaml names, the shared peer secret and its HTTP check,
and the credentials sent to the Redis nodes.

A secret comes from an environment variable or a file (never from the YAML
itself), always through `read_secret_ref`: a file's trailing line break is
dropped, nothing else is trimmed (a password may end in a space). The shared
secret guards topology changes between sentinels, routers and operators; it
travels as ``Authorization: Bearer <secret>`` and is compared in constant time.

Invariants: a secret is never logged and never part of a ``repr``; a
configured secret that cannot be read is a `SecretError`, never an open door;
a router or sentinel without a shared secret refuses every topology-changing
request (there is no "open" default).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from slotwarden.cluster.config import BackendAuthConfig, ClusterConfig, SecretRef
from slotwarden.cluster.errors import SecretError


def read_secret_ref(
    ref: SecretRef,
    what: str,
    environ: Mapping[str, str] = os.environ,
    file_key: str = "password_file",
) -> bytes:
    """The secret ``ref`` names. Raises `SecretError` if it is unset, unreadable or empty;
    ``what`` and ``file_key`` (the cluster.yaml key naming the file) say where in it."""
    if ref.env:
        value = environ.get(ref.env, "")
        if not value:
            raise SecretError(f"{what}: environment variable {ref.env} is not set")
        return value.encode()
    assert ref.file is not None
    try:
        value = Path(ref.file).read_text().rstrip("\r\n")
    except OSError as exc:
        raise SecretError(
            f"{what}: cannot read {file_key} {ref.file}: {exc.strerror or exc}"
        ) from None
    if not value:
        raise SecretError(f"{what}: {file_key} {ref.file} is empty")
    return value.encode()


def read_secret(config: ClusterConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The shared secret, or None when the config names no file and its variable is unset
    (or blank).

    Read with `read_secret_ref`; it must be printable ASCII without surrounding
    blanks (it is sent in an HTTP header, where they would be lost)."""
    sc = config.sentinel
    if sc is not None and sc.secret_file:
        ref = SecretRef(file=sc.secret_file)
    else:
        env = sc.secret_env if sc is not None else "SLOTWARDEN_SECRET"
        if not environ.get(env, "").strip():
            return None
        ref = SecretRef(env=env)
    raw = read_secret_ref(ref, "the shared secret", environ, "sentinel.secret_file")
    secret = raw.decode("utf-8", "replace")
    if not (secret.isascii() and secret.isprintable()) or secret != secret.strip():
        raise SecretError(
            "the shared secret must be printable ASCII without leading or trailing blanks "
            "(it is sent in an HTTP header)"
        )
    return secret


def bearer(secret: str) -> dict[str, str]:
    """The request header that carries ``secret``."""
    return {"Authorization": f"Bearer {secret}"}


def authorized(header: str | None, secret: str | None) -> bool:
    """True if ``header`` (an Authorization value) carries ``secret``."""
    if not secret or not header:
        return False
    return hmac.compare_digest(
        header.encode("utf-8", "surrogateescape"), f"Bearer {secret}".encode()
    )


class BackendCredentials:
    """What the router and the sentinels send to authenticate on every node connection."""

    __slots__ = ("_password", "username")

    def __init__(self, password: bytes, username: bytes | None = None) -> None:
        self._password = password
        self.username = username

    def __repr__(self) -> str:
        return f"BackendCredentials(username={self.username!r}, password=<hidden>)"

    def auth_args(self) -> list[bytes]:
        """``[user,] password`` as AUTH takes them."""
        return [self.username, self._password] if self.username else [self._password]

    def hello_args(self) -> list[bytes]:
        """``AUTH user password`` as HELLO takes them (``default`` without a username)."""
        return [b"AUTH", self.username or b"default", self._password]


def backend_credentials(
    section: BackendAuthConfig | None, environ: Mapping[str, str] = os.environ
) -> BackendCredentials | None:
    """The credentials ``section`` (``backend:`` or a shard's) names, or None."""
    if section is None:
        return None
    password = read_secret_ref(section.password, "backend", environ)
    username = section.username.encode() if section.username else None
    return BackendCredentials(password, username)
