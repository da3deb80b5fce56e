"""Exceptions of the router package and the Redis-style error replies it sends.

Invariant: reply errors (what a backend or the router answers to one command)
are *values* (`bytes` starting with ``-``) and are forwarded; protocol errors
(input we cannot parse) are exceptions and close that one client connection.
Every exception raised by this package derives from `RouterError`; protocol
errors are `slotwarden.resp.ProtocolError`. The replies made here are the
ones several layers give (CROSSSLOT, refusals, arity, unknown commands,
shard down, "not supported by the router"); a reply only one module gives is
made there, with `slotwarden.resp.encode.error_reply`.
"""

from __future__ import annotations

from slotwarden.cluster.errors import SlotwardenError
from slotwarden.resp.encode import error_reply


class RouterError(SlotwardenError):
    """Root of every exception raised by the `router` package."""


CROSSSLOT = error_reply("CROSSSLOT Keys in request don't hash to the same slot")
NOT_ALLOWED = error_reply("ERR command not allowed through the router")
_NOT_SUPPORTED = " is not supported by the router"


def not_supported(name: str, where: str = "") -> bytes:
    """The one reply for what the router cannot honour: ``name`` is the command as the
    user knows it (``client tracking``), ``where`` a context (`` inside MULTI``)."""
    return error_reply(f"ERR '{name}'{where}{_NOT_SUPPORTED}")


def is_not_supported(raw: bytes) -> bool:
    """True for a `not_supported` reply (the metrics count it as ``unsupported``)."""
    return raw.startswith(b"-ERR '") and raw.endswith(_NOT_SUPPORTED.encode() + b"\r\n")


def unknown_command(name: str, args: list[bytes]) -> bytes:
    """Redis 7's reply for a command it does not know."""
    shown = "".join(f"'{a.decode('utf-8', 'replace')[:128]}' " for a in args[:16])
    return error_reply(f"ERR unknown command '{name[:128]}', with args beginning with: {shown}")


def unknown_subcommand(sub: str, container: str) -> bytes:
    """Redis 7's reply for a subcommand of ``container`` (``CONFIG``) it does not know."""
    return error_reply(f"ERR unknown subcommand '{sub[:128]}'. Try {container} HELP.")


def wrong_arity(name: str) -> bytes:
    return error_reply(f"ERR wrong number of arguments for '{name.lower()}' command")


def shard_down(shard: str, why: str = "is unavailable") -> bytes:
    return error_reply(f"CLUSTERDOWN shard {shard} {why}")
