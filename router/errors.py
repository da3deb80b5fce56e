"""Exceptions of the router package and the Redis-style error replies it sends.

Invariant: reply errors (what a backend or the router answers to one command)
are *values* (`bytes` starting with ``-``) and are forwarded; protocol errors
(input we cannot parse) are exceptions and close that one client connection.
Every exception raised by this package derives from `RouterError`.
"""

from __future__ import annotations


class RouterError(Exception):
    """Root of every exception raised by the `router` package."""


class ProtocolError(RouterError):
    """Malformed RESP from a peer; the connection it came from must be closed.

    ``str(exc)`` is the text after ``Protocol error: `` in Redis's own reply,
    e.g. ``invalid multibulk length``.
    """


class ConfigError(RouterError):
    """An invalid cluster.yaml; ``problems`` holds one clear message per problem."""

    def __init__(self, problems: list[str], source: str = "cluster.yaml") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


def error_reply(message: str) -> bytes:
    """Encode ``message`` (``"ERR ..."``, ``"CROSSSLOT ..."``) as a RESP error line."""
    clean = message.replace("\r", " ").replace("\n", " ")
    return b"-" + clean.encode("utf-8", "replace") + b"\r\n"


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
