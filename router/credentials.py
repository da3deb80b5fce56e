"""Passwords: router users that clients AUTH as, and the credentials sent to the Redis nodes.

Owns reading secrets (from the environment variable or file cluster.yaml
names; never from the YAML itself) and checking them. Invariants: a password
is never logged, never part of a ``repr``, and compared in constant time
(`hmac.compare_digest` over SHA-256 digests, so neither the length nor the
user's existence shows in the timing); a configured secret that cannot be
read is a `CredentialError` at startup, never an open door.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from router.config import BackendAuthConfig, ClusterConfig, SecretRef
from router.errors import RouterError
from router.resp import encode_command


class CredentialError(RouterError):
    """A password named by cluster.yaml cannot be read (unset variable, missing file)."""


def read_secret_ref(ref: SecretRef, what: str, environ: Mapping[str, str] = os.environ) -> bytes:
    if ref.env:
        value = environ.get(ref.env, "")
        if not value:
            raise CredentialError(f"{what}: environment variable {ref.env} is not set")
        return value.encode()
    assert ref.file is not None
    try:
        value = Path(ref.file).read_text().rstrip("\r\n")
    except OSError as exc:
        raise CredentialError(
            f"{what}: cannot read password_file {ref.file}: {exc.strerror or exc}"
        ) from None
    if not value:
        raise CredentialError(f"{what}: password_file {ref.file} is empty")
    return value.encode()


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class Users:
    """The router's users. ``required``: clients must authenticate before anything else.

    ``failures`` counts failed AUTH/HELLO AUTH attempts (for a metric).
    """

    __slots__ = ("_digests", "failures", "required")

    def __init__(self, passwords: Mapping[str, bytes] | None = None) -> None:
        self._digests = {name: _digest(pw) for name, pw in (passwords or {}).items()}
        self.required = bool(self._digests)
        self.failures = 0

    def __repr__(self) -> str:
        return f"Users({sorted(self._digests)})"

    @classmethod
    def load(cls, config: ClusterConfig, environ: Mapping[str, str] = os.environ) -> Users:
        passwords = {
            user.name: read_secret_ref(user.password, f"router.users {user.name}", environ)
            for user in config.router.users
        }
        return cls(passwords)

    @classmethod
    def locked(cls) -> Users:
        """Users are configured but their passwords cannot be read: nobody gets in."""
        users = cls()
        users.required = True
        return users

    def check(self, name: bytes, password: bytes) -> bool:
        """True if ``name``/``password`` is a router user (constant time); counts failures."""
        wanted = self._digests.get(name.decode("utf-8", "replace"))
        ok = hmac.compare_digest(_digest(password), wanted or b"\0" * 32) and wanted is not None
        if not ok:
            self.failures += 1
        return ok


class BackendCredentials:
    """What the router sends to authenticate on every backend connection."""

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
    if section is None:
        return None
    password = read_secret_ref(section.password, "backend", environ)
    username = section.username.encode() if section.username else None
    return BackendCredentials(password, username)


def handshake(credentials: BackendCredentials | None, proto: int) -> bytes:
    """The first request on a backend connection: ``HELLO 3 [AUTH ..]`` for RESP3,
    ``AUTH ..`` for RESP2 with credentials, nothing otherwise."""
    if proto == 3:
        return encode_command([b"HELLO", b"3", *(credentials.hello_args() if credentials else [])])
    if credentials is not None:
        return encode_command([b"AUTH", *credentials.auth_args()])
    return b""
