"""The shared secret that guards topology changes, and its HTTP check.

One secret is shared by sentinels and routers. It comes from the file named by
``sentinel.secret_file`` or the environment variable named by
``sentinel.secret_env`` (default ``SLOTWARDEN_SECRET``); it is never logged.
Requests carry it as ``Authorization: Bearer <secret>``, compared in constant
time. Invariant: a router or sentinel without a secret refuses every
topology-changing request (there is no "open" default).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from router.config import ClusterConfig
from router.errors import RouterError


class SecretError(RouterError):
    """The shared secret is configured but cannot be read, or is unusable."""


def read_secret(config: ClusterConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The shared secret, or None when the config names none that is set."""
    sc = config.sentinel
    if sc is None:
        return environ.get("SLOTWARDEN_SECRET", "").strip() or None
    if sc.secret_file:
        try:
            secret = Path(sc.secret_file).read_text().strip()
        except OSError as exc:
            raise SecretError(f"cannot read sentinel.secret_file {sc.secret_file}: {exc}") from None
        if not secret:
            raise SecretError(f"sentinel.secret_file {sc.secret_file} is empty")
    else:
        secret = environ.get(sc.secret_env, "").strip()
        if not secret:
            return None
    if not (secret.isascii() and secret.isprintable()):
        raise SecretError("the shared secret must be printable ASCII (it is sent in a header)")
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
