"""Exceptions of the router package and the Redis-style error replies it sends.

Invariant: reply errors (what a backend or the router answers to one command)
are *values* (`bytes` starting with ``-``) and are forwarded; protocol errors
(input we cannot parse) are exceptions and close that one client connection.
Every exception raised by this package derives from `RouterError`; protocol
errors are `slotwarden.resp.ProtocolError`.
"""

from __future__ import annotations

from slotwarden.cluster.errors import SlotwardenError
from slotwarden.resp import error_reply


class RouterError(SlotwardenError):
    """Root of every exception raised by the `router` package."""


CROSSSLOT = error_reply("CROSSSLOT Keys in request don't hash to the same slot")
NOT_ALLOWED = error_reply("ERR command not allowed through the router")
NOT_SUPPORTED_YET = "ERR '{name}' is not supported by the router yet"


def unknown_command(name: str, args: list[bytes]) -> bytes:
    """Redis 7's reply for a command it does not know."""
    shown = "".join(f"'{a.decode('utf-8', 'replace')[:128]}' " for a in args[:16])
    return error_reply(f"ERR unknown command '{name[:128]}', with args beginning with: {shown}")


def wrong_arity(name: str) -> bytes:
    return error_reply(f"ERR wrong number of arguments for '{name.lower()}' command")


def shard_down(shard: str, why: str = "is unavailable") -> bytes:
    return error_reply(f"CLUSTERDOWN shard {shard} {why}")
