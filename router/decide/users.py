"""The router's users: who clients AUTH as, with passwords checked in constant time.

Passwords are read by `slotwarden.cluster.secrets.read_secret_ref` (the one
reader). Invariants: a password is never logged, never part of a ``repr``,
and compared in constant time (`hmac.compare_digest` over SHA-256 digests,
so neither the length nor the user's existence shows in the timing); a
configured password that cannot be read is a `SecretError` at startup, never
an open door.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from slotwarden.cluster.config import ClusterConfig
from slotwarden.cluster.secrets import read_secret_ref


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

    def known(self, name: str) -> bool:
        """Whether ``name`` is a router user (CLIENT KILL USER)."""
        return name in self._digests

    def check(self, name: bytes, password: bytes) -> bool:
        """True if ``name``/``password`` is a router user (constant time); counts failures."""
        wanted = self._digests.get(name.decode("utf-8", "replace"))
        ok = hmac.compare_digest(_digest(password), wanted or b"\0" * 32) and wanted is not None
        if not ok:
            self.failures += 1
        return ok
