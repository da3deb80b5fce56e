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


class ListenError(RouterError):
    """The client or admin address cannot be bound (``cannot listen on HOST:PORT: why``)."""


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


def _c_string(raw: bytes, limit: int) -> bytes:
    """What C's ``%.<limit>s`` prints of ``raw``: up to the first NUL, at most ``limit`` bytes."""
    return raw.split(b"\0", 1)[0][:limit]


def _raw_error(message: bytes) -> bytes:
    """A RESP error line with ``message``'s exact bytes (CR/LF become spaces, as Redis's
    ``addReplyErrorFormat`` does)."""
    return b"-" + message.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"


def unknown_command(name: bytes, args: list[bytes]) -> bytes:
    """Redis 7's reply for a command it does not know, byte for byte (server.c
    processCommand): the name cut at 128 bytes, then the arguments while fewer than
    128 bytes of them are shown, each cut to what is left of the 128; raw bytes,
    each stopping at a NUL as C strings do."""
    shown = b""
    for arg in args:
        if len(shown) >= 128:
            break
        shown += b"'" + _c_string(arg, 128 - len(shown)) + b"' "
    return _raw_error(
        b"ERR unknown command '" + _c_string(name, 128) + b"', with args beginning with: " + shown
    )


def unknown_subcommand(sub: bytes, container: bytes) -> bytes:
    """Redis 7's reply for a subcommand of ``container`` (``CONFIG``) it does not know:
    the subcommand cut at 128 bytes, the container as sent, upper-cased (ASCII)."""
    return _raw_error(
        b"ERR unknown subcommand '"
        + _c_string(sub, 128)
        + b"'. Try "
        + _c_string(container, len(container)).upper()
        + b" HELP."
    )


def wrong_arity(name: str) -> bytes:
    return error_reply(f"ERR wrong number of arguments for '{name.lower()}' command")


def shard_down(shard: str, why: str = "is unavailable") -> bytes:
    return error_reply(f"CLUSTERDOWN shard {shard} {why}")
