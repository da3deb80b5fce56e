"""MULTI/EXEC through the router: what a client queued, and how EXEC's reply is rebuilt.

Pure, no I/O. Between MULTI and EXEC the router answers ``+QUEUED`` itself
and collects the commands here; EXEC sends ``MULTI``, the queued commands and
``EXEC`` to one shard in one contiguous write (on the client's WATCH
connection if it watches keys, else on its shared connection: nothing else
can come between them on the wire, so the shared connection is back in its
normal state after EXEC). The shard is the one of the first keyed command
(or of WATCH); a keyless-only transaction runs on shard 0.

Commands the router answers itself (PING, ECHO, CLIENT SETNAME ...) are
queued as `LocalItem` and their replies spliced into EXEC's array at their
place. Invariant: ``aborted`` is set by every queue-time error (unknown
command, wrong arity, keys on another shard, a command that cannot run in a
transaction through the router), and an aborted transaction never reaches a
shard: EXEC answers ``-EXECABORT``.

That is the ``router.transactions: single-shard`` mode (Redis Cluster's). In
``split`` mode (the default) a transaction may touch several shards: its
backend commands are queued as `Routed` (one shard, or None: keyless) and
`Fan` (a multi-key command split by shard, with its row's merger), and
`router.decide.split_txn` plans one MULTI/EXEC per shard and rebuilds the reply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from router.decide.merge import Merger
from slotwarden.resp.encode import encode_array, encode_command, error_reply
from slotwarden.resp.replies import split_array

MULTI_RAW = encode_command([b"MULTI"])
EXEC_RAW = encode_command([b"EXEC"])
UNWATCH_RAW = encode_command([b"UNWATCH"])
QUEUED = b"+QUEUED\r\n"
# Commands one transaction may queue in the router: Redis keeps a client's MULTI
# queue in its own memory; the router keeps it until EXEC, so it is bounded
# (past it the transaction is doomed, as with any other queue-time error).
MAX_QUEUED = 100_000
TOO_LONG = error_reply(f"ERR transaction too long for the router (more than {MAX_QUEUED} commands)")
EXECABORT = error_reply("EXECABORT Transaction discarded because of previous errors.")


def execabort_because(error: bytes) -> bytes:
    """EXEC itself rejected (``EXEC x``, NOAUTH ...): Redis names the reason."""
    reason = error[1:].rstrip(b"\r\n").decode("utf-8", "replace")
    if reason.startswith("ERR "):
        reason = reason[4:]
    return error_reply(f"EXECABORT Transaction discarded because of: {reason}")


@dataclass(slots=True)
class LocalItem:
    """A queued command the router answers itself, run when EXEC is."""

    name: str
    args: list[bytes]


@dataclass(slots=True)
class Routed:
    """Split mode: a queued command for one shard (None: keyless, goes with the others)."""

    shard: int | None
    raw: bytes


@dataclass(slots=True)
class Fan:
    """Split mode: a multi-key command queued as one part per shard, merged at EXEC."""

    parts: list[tuple[int, bytes]]  # (shard, encoded part), in merge order
    merge: Merger


@dataclass(slots=True)
class Transaction:
    shard: int | None = None  # None until a keyed command (or WATCH) picks one
    # single-shard mode: bytes and LocalItem; split mode: Routed, Fan and LocalItem
    items: list[bytes | LocalItem | Routed | Fan] = field(default_factory=list)
    aborted: bool = False
    split: bool = False  # router.transactions: split (commands may go to several shards)

    def queue(self, raw: bytes, shard: int | None) -> bytes:
        """Queue a command for a shard (None: keyless); the reply to answer now."""
        if len(self.items) >= MAX_QUEUED:
            return self.fail(TOO_LONG)
        if shard is not None:
            if self.shard is None:
                self.shard = shard
            elif shard != self.shard:
                self.aborted = True
                return error_reply("CROSSSLOT Keys in request don't hash to the same slot")
        self.items.append(raw)
        return QUEUED

    def add(self, entry: Routed | Fan) -> bytes:
        """Split mode: queue a command planned for its shard(s); the reply to answer now."""
        if len(self.items) >= MAX_QUEUED:
            return self.fail(TOO_LONG)
        self.items.append(entry)
        return QUEUED

    def fail(self, error: bytes) -> bytes:
        """A queue-time error: remember it (EXEC will abort) and answer it."""
        self.aborted = True
        return error

    def backend_requests(self) -> list[bytes]:
        return [item for item in self.items if type(item) is bytes]

    def local_replies(self, answer: Callable[[LocalItem], bytes]) -> list[bytes | None]:
        """The reply of each local item, None at the places of backend commands."""
        return [answer(item) if type(item) is LocalItem else None for item in self.items]


def splice(exec_reply: bytes, local: list[bytes | None]) -> bytes:
    """EXEC's array from the shard with the router's local replies put back in place.

    A nil (WATCH conflict), an error (EXECABORT, CLUSTERDOWN) or anything that
    is not an array of the expected size is passed through unchanged.
    """
    if all(r is None for r in local) or exec_reply in (b"*-1\r\n", b"_\r\n"):
        return exec_reply  # (a nil would split as an empty array)
    items = split_array(exec_reply)
    expected = sum(1 for r in local if r is None)
    if items is None or len(items) != expected:
        return exec_reply
    it = iter(items)
    return encode_array([r if r is not None else next(it) for r in local])
