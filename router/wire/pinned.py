"""Dedicated (pinned) backend connections: one client's own connection to a Redis node.

Transactions with WATCH, blocking commands and subscriptions need a backend
connection whose server-side state (watched keys, a blocked pop, subscribed
channels) belongs to one client. A `PinnedPool` per node hands them out:

    client ──acquire(proto)──► idle[proto] (clean, open) or a new PinnedConn (bounded)
    client ──release(conn)───► back to idle[proto] if clean and the pool has room, else closed
    client gone ─close()─────► closed at once (a blocked BLPOP's server-side client goes too)

A `PinnedConn` is a `BackendConn` that connects once (no reconnect: its
state would be lost anyway), speaks the client's protocol and authenticates
like the shared ones, asks its own ``CLIENT ID`` first (``server_id``: what
``CLIENT UNBLOCK`` names, router.wire.client_ctl), hands push messages (``message``, ``pmessage``,
``smessage``) to its owner's ``on_push`` and every other reply to the oldest
waiter.

Per-client limits (issue 10, item 9): each connection a client holds is
counted for its `Holder` - the client's source address and, with router
users, its user - until it is given back or closed. `PinnedPool.acquire`
refuses (an ``-ERR`` naming the limit) past ``pinned_per_source`` held by
one source, past ``pinned_per_user`` held by one user, and a WATCH or
blocking command when only the ``pinned_reserved`` last connections are
left: those are for subscriptions.

Invariants:
- At most ``pinned_max`` pinned connections per node are open (live or idle).
- ``held`` counts exactly the connections acquired and neither released nor
  closed, per source and per user.
- A connection is put back in ``idle`` only by `release`, whose caller
  guarantees a clean state (after EXEC/DISCARD/UNWATCH, or a blocking reply;
  never mid-MULTI, never subscribed). Replies still in flight are fine: the
  next owner's waiters queue behind them.
- Timeouts: the oldest request must be answered within ``command_timeout``
  plus ``grace`` (a blocking command's own timeout; infinite for timeout 0).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from router.decide.session import Session
from router.errors import shard_down
from router.wire.backend import (
    CLOSED,
    CONNECTING,
    DOWN,
    UP,
    BackendConn,
    BackendSettings,
    open_to,
)
from router.wire.ports import BackendPorts, Waiter
from slotwarden.cluster.topology import Address
from slotwarden.resp.encode import encode_command, error_reply
from slotwarden.resp.errors import ProtocolError

log = logging.getLogger("slotwarden.pinned")

# First element of the push messages a subscribed connection receives unasked.
_MESSAGE_HEADS = (b"$7\r\nmessage\r\n", b"$8\r\npmessage\r\n", b"$8\r\nsmessage\r\n")


def is_message(raw: bytes) -> bool:
    """True for a published message (RESP2 array or RESP3 push), not a reply."""
    return (raw[0] == 42 or raw[0] == 62) and raw[4:].startswith(_MESSAGE_HEADS)


@dataclass(frozen=True, slots=True)
class Holder:
    """Whom a held dedicated connection is counted for."""

    source: str  # the client's IP address
    user: str | None  # its router user; None without router users (no per-user limit)


def holder_of(session: Session | None) -> Holder:
    """The `Holder` of a client with ``session``."""
    if session is None:
        return Holder("?", None)
    source = session.addr.rpartition(":")[0] or session.addr
    users = session.users
    return Holder(source, session.user if users is not None and users.required else None)


CLIENT_ID = encode_command([b"CLIENT", b"ID"])


class _ServerId:
    """Keeps the reply to the ``CLIENT ID`` asked first on a pinned connection: the
    connection's id on the server, which ``CLIENT UNBLOCK`` needs (router.wire.client_ctl)."""

    __slots__ = ("conn",)

    def __init__(self, conn: PinnedConn) -> None:
        self.conn = conn

    def on_reply(self, raw: bytes) -> None:
        if raw[:1] == b":":
            self.conn.server_id = int(raw[1:])


class PinnedConn(BackendConn):
    __slots__ = ("blocking", "grace", "on_idle", "on_lost", "on_push", "pool", "server_id")

    def __init__(
        self,
        addr: Address,
        label: str,
        settings: BackendSettings,
        ports: BackendPorts,
        proto: int,
        pool: PinnedPool,
    ) -> None:
        super().__init__(addr, label, settings, ports, proto)
        self.pool = pool
        self.grace = 0.0  # extra time the blocking request may take (its own timeout)
        self.blocking: Waiter | None = None  # the waiter of the blocking request in flight
        self.on_push: Callable[[bytes], None] | None = None  # set while subscribed
        self.on_lost: Callable[[PinnedConn], None] | None = None
        self.on_idle: Callable[[PinnedConn], None] | None = None  # once nothing is owed
        self.server_id = 0  # this connection's CLIENT ID on the server (0: not known yet)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CLIENT ID first (after the handshake, which the base class puts in front),
        # before anything queued: a blocking command queued behind would delay it.
        self.out.insert(0, CLIENT_ID)
        self.waiting.appendleft(_ServerId(self))
        super().connection_made(transport)

    async def connect(self) -> None:
        """Connect once; on failure every queued request gets the reason."""
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await open_to(self, self.addr, self.settings)
        except (OSError, TimeoutError) as exc:
            why = "connect timed out" if isinstance(exc, TimeoutError) else str(exc)
            self.state = CLOSED
            self.pool.forget(self)
            self.fail_all(shard_down(self.label, f"is unavailable ({self.addr}: {why})"))
            self._notify_lost()

    def data_received(self, data: bytes) -> None:
        scanner = self.scanner
        scanner.feed(data)
        waiting = self.waiting
        answered = False
        try:
            for raw in scanner.replies():
                on_push = self.on_push
                if on_push is not None and is_message(raw):
                    on_push(raw)
                    continue
                if not waiting:
                    raise ProtocolError("reply with no request waiting for it")
                waiter = waiting.popleft()
                if waiter is self.blocking:
                    self.blocking = None
                    self.grace = 0.0
                waiter.on_reply(raw)
                answered = True
        except ProtocolError as exc:
            if not self.refused:
                log.error("pinned %s (%s): protocol error: %s; closing", self.addr, self.label, exc)
            self.transport.abort()  # type: ignore[union-attr]
        if answered:
            self.progress_at = self.now()
            if not waiting and self.on_idle is not None:
                on_idle, self.on_idle = self.on_idle, None
                on_idle(self)
        self.turn.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.state = CLOSED
        self.pool.forget(self)
        self.fail_all(self.down_reply)
        self._notify_lost()

    def _notify_lost(self) -> None:
        on_lost, self.on_lost = self.on_lost, None
        self.on_push = None
        self.on_idle = None
        if on_lost is not None:
            on_lost(self)

    def send_expecting(self, raw: bytes, waiter: Waiter, replies: int) -> None:
        """Send a request answered by ``replies`` replies (SUBSCRIBE a b c: three)."""
        if self.state is DOWN or self.state is CLOSED:
            waiter.on_reply(self.down_reply)
            return
        self.send(raw, waiter)
        for _ in range(replies - 1):
            self.waiting.append(waiter)

    def send_blocking(self, raw: bytes, waiter: Waiter, grace: float | None) -> None:
        """Send a command that may block for ``grace`` seconds (None: forever)."""
        self.grace = math.inf if grace is None else grace
        self.blocking = waiter
        self.send(raw, waiter)

    def check_timeout(self, now: float) -> None:
        if (
            self.state is UP
            and self.waiting
            and now - self.progress_at > self.settings.command_timeout + self.grace
        ):
            ms = int(self.settings.command_timeout * 1000)
            log.warning("pinned %s (shard %s): no reply in time; closing it", self.addr, self.label)
            self.fail_all(shard_down(self.label, f"timed out (no reply within {ms} ms)"))
            self.close()

    def close(self, notify: bool = False) -> None:
        """Close now; requests in flight get the shard-down reply. ``notify``: tell the
        owner (``on_lost``), as when the node itself goes away."""
        if notify:
            self._notify_lost()
        self.on_push = None
        self.on_lost = None
        self.on_idle = None
        if self.state is not CLOSED:
            self.state = CLOSED
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.abort()
            self.fail_all(self.down_reply)

    async def maintain(self) -> None:  # pragma: no cover - pinned connections never reconnect
        raise NotImplementedError("pinned connections connect once (PinnedConn.connect)")


class PinnedPool:
    """The pinned connections of one node: a bounded number open, a few kept idle."""

    def __init__(
        self, addr: Address, label: str, settings: BackendSettings, ports: BackendPorts
    ) -> None:
        self.addr = addr
        self.label = label
        self.settings = settings
        self.ports = ports
        self.idle: dict[int, list[PinnedConn]] = {2: [], 3: []}
        self.open: set[PinnedConn] = set()
        self.spawn: Callable[..., asyncio.Task[None]] | None = None  # Node.start sets it
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        # what clients hold (acquired, not given back): per source, per user, not pub/sub
        self.held: dict[PinnedConn, tuple[Holder, bool]] = {}
        self.by_source: Counter[str] = Counter()
        self.by_user: Counter[str] = Counter()
        self.held_other = 0

    def live(self) -> list[PinnedConn]:
        return list(self.open)

    def acquire(self, proto: int, holder: Holder, pubsub: bool = False) -> PinnedConn | bytes:
        """A dedicated connection for ``holder`` (``pubsub``: for subscriptions, which
        may use the reserve), or the ``-ERR`` reply naming the limit it hit."""
        s = self.settings
        if self.by_source[holder.source] >= s.pinned_per_source:
            return error_reply(
                f"ERR too many dedicated connections from {holder.source} to shard "
                f"{self.label} (router.pinned_per_source is {s.pinned_per_source})"
            )
        if holder.user is not None and self.by_user[holder.user] >= s.pinned_per_user:
            return error_reply(
                f"ERR too many dedicated connections for user {holder.user} to shard "
                f"{self.label} (router.pinned_per_user is {s.pinned_per_user})"
            )
        if not pubsub and self.held_other >= s.pinned_max - s.pinned_reserved:
            return error_reply(
                f"ERR router has no free dedicated connection to shard {self.label} for "
                f"WATCH or blocking commands (the last {s.pinned_reserved} are kept for "
                "subscriptions: router.pinned_reserved_for_pubsub)"
            )
        conn = self._take(proto)
        if conn is None:
            return error_reply(
                f"ERR router has no free dedicated connection to shard {self.label} "
                "(router.pinned_connections_per_node)"
            )
        self.held[conn] = (holder, pubsub)
        self.by_source[holder.source] += 1
        if holder.user is not None:
            self.by_user[holder.user] += 1
        if not pubsub:
            self.held_other += 1
        return conn

    def _take(self, proto: int) -> PinnedConn | None:
        idle = self.idle[proto]
        while idle:
            conn = idle.pop()
            if conn.state is UP or conn.state is CONNECTING:
                return conn
        if self.closed or self.spawn is None or len(self.open) >= self.settings.pinned_max:
            return None
        conn = PinnedConn(self.addr, self.label, self.settings, self.ports, proto, self)
        self.open.add(conn)
        task = self.spawn(conn.connect(), name=f"pinned {self.addr} resp{proto}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return conn

    def _untrack(self, conn: PinnedConn) -> None:
        """``conn`` is no longer held by its client (given back or closed)."""
        entry = self.held.pop(conn, None)
        if entry is None:
            return
        holder, pubsub = entry
        _decrement(self.by_source, holder.source)
        if holder.user is not None:
            _decrement(self.by_user, holder.user)
        if not pubsub:
            self.held_other -= 1

    def release(self, conn: PinnedConn) -> None:
        """Take back a connection whose state is clean: keep it idle or close it."""
        self._untrack(conn)
        conn.on_push = None
        conn.on_lost = None
        conn.on_idle = None
        idle = self.idle[conn.proto]
        if (
            not self.closed
            and conn.state is not CLOSED
            and conn.state is not DOWN
            and conn in self.open
            and len(idle) < self.settings.pinned_idle
        ):
            idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: PinnedConn) -> None:
        self._untrack(conn)
        self.open.discard(conn)
        idle = self.idle[conn.proto]
        if conn in idle:
            idle.remove(conn)

    def close_all(self) -> None:
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        for conn in list(self.open):
            conn.close(notify=True)


def _decrement(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]
