"""CONFIG SET and CONFIG RESETSTAT through the router: what is refused, and the one reply.

Pure, no I/O: router.control.config_set sends the command to every node of
every shard and asks here what to answer.

Refused even when allowed (`refused`), with Redis's CONFIG SET error shape:
the settings CONFIG GET hides (passwords, TLS keys, where the shards keep
files: `router.decide.merge.CONFIG_HIDDEN`), and the ones that would let a
client past the router or break the cluster the router and the sentinels
keep: every other TLS setting (``tls-*``), network endpoints (``bind``,
``port``, ``unixsocket`` ...), protected/debug/module command switches,
replication (``replicaof``, ``replica-read-only``, ``replica-announce-*``,
``masteruser`` ...) and Redis Cluster's own (``cluster-*``). Everything else
(``maxmemory-policy``, ``hz``, ``slowlog-*``, ``notify-keyspace-events``,
``save``, ``appendonly`` ...) is the operator's to tune.

`verdict` makes the reply from every node's: ``+OK`` when all applied it;
their common error when every node refused it the same way (a bad value:
as one server would say); else an error naming each node that refused or
failed and why, and how many applied it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from router.decide.merge import CONFIG_HIDDEN
from router.errors import wrong_arity
from slotwarden.resp.encode import OK, error_reply

# Spec names of the commands this module decides for.
CONFIG_WRITES = frozenset({"config|set", "config|resetstat"})

# Beyond CONFIG_HIDDEN: settings the router and the sentinels own.
ROUTER_OWNED = frozenset(
    {
        "bind", "bind-source-addr", "port", "protected-mode", "enable-protected-configs",
        "enable-debug-command", "enable-module-command", "rename-command",
        "replicaof", "slaveof", "replica-read-only", "slave-read-only",
        "replica-announce-ip", "replica-announce-port", "slave-announce-ip",
        "slave-announce-port", "replica-announced", "slave-announced", "masterauth",
        "masteruser", "daemonize", "supervised", "include", "loadmodule",
    }
)  # fmt: skip
ROUTER_OWNED_PREFIXES = ("tls-", "cluster-")


def refused(name: bytes) -> bool:
    """Whether CONFIG SET may not change the setting ``name`` through the router."""
    text = name.decode("latin-1").lower()
    return text in CONFIG_HIDDEN or text in ROUTER_OWNED or text.startswith(ROUTER_OWNED_PREFIXES)


def check(args: list[bytes]) -> bytes | None:
    """The error CONFIG SET ``args`` gets before any node sees it, or None."""
    if len(args) < 4 or len(args) % 2:
        return wrong_arity("config|set")
    for name in args[2::2]:
        if refused(name):
            shown = name.decode("utf-8", "replace")
            return error_reply(
                f"ERR CONFIG SET failed (possibly related to argument '{shown}') - not "
                "allowed through the router (secrets, files, network, TLS and replication "
                "settings belong to the nodes' own configuration)"
            )
    return None


def pairs(args: list[bytes]) -> list[tuple[bytes, bytes]]:
    """CONFIG SET's (name lower-cased, value) pairs, in order."""
    return [(n.lower(), v) for n, v in zip(args[2::2], args[3::2], strict=True)]


@dataclass(frozen=True, slots=True)
class NodeReply:
    node: str  # "127.0.0.1:7001 (shard a master)"
    reply: bytes  # the node's reply, or an error the router made (unreachable, timeout)


def verdict(command: str, replies: Sequence[NodeReply]) -> bytes:
    """The client's reply to ``command`` (``CONFIG SET``) from every node's."""
    failed = [r for r in replies if r.reply[:1] != b"+"]
    if not failed:
        return OK
    if len(failed) == len(replies) and len({r.reply for r in failed}) == 1:
        return failed[0].reply  # refused alike everywhere: as one server says it
    reasons = "; ".join(f"{r.node}: {_reason(r.reply)}" for r in failed)
    applied = len(replies) - len(failed)
    return error_reply(
        f"ERR {command} failed on {len(failed)} of {len(replies)} nodes: {reasons}; "
        f"applied on the other {applied}"
    )


def applied_anywhere(replies: Sequence[NodeReply]) -> bool:
    return any(r.reply[:1] == b"+" for r in replies)


def _reason(reply: bytes) -> str:
    text = reply.decode("utf-8", "replace").strip()
    text = text[1:] if text.startswith("-") else text
    return text[4:] if text.startswith("ERR ") else text
