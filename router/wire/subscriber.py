"""Pub/sub through the router: one client's subscriptions, spread over dedicated connections.

A channel lives on the shard that owns its hash slot (as in Redis Cluster), so
publishers (PUBLISH/SPUBLISH, routed by the planner) and subscribers always
meet on one master. Per client:

    SUBSCRIBE a b ─► a's master: SUBSCRIBE a    ┐ confirmations computed here, with the
                 └─► b's master: SUBSCRIBE b    ┘ client's own counts, sent once every
    PSUBSCRIBE p* ─► every master: PSUBSCRIBE p*   master confirmed (so a PUBLISH after
                                                    the confirmation is always seen)
    SUBSCRIBE __keyevent@0__:expired ─► every master (keyspace notifications: each shard
                                        publishes the events of its own keys)
    messages from any of them ─► the client's reply FIFO, raw (RESP2 arrays or RESP3 pushes)

`Subscriber` keeps the logical subscriptions (what the client asked for: the
source of every count it is told) apart from the placement (which pinned
connection has which names). Invariants:
- The counts in confirmations are what one Redis would answer: channels +
  patterns for (P)SUBSCRIBE/(P)UNSUBSCRIBE, shard channels for S(UN)SUBSCRIBE.
- `resync` makes the placement match the logical subscriptions under the
  current route: after a failover (`on_route_change`) or a lost connection it
  resubscribes on the new master by itself, silently (the client's counts do
  not change); it retries with backoff while a master is unreachable. The
  loss and the resubscription are logged once per shard for all clients
  together (`router.wire.tally`), not per client or per retry.
- A pinned connection goes back to its pool only once it holds no
  subscription and every reply it owed has arrived.
"""

from __future__ import annotations

import asyncio
import logging

from router.decide.fanin import FanIn, FanInPart
from router.decide.merge import Merger, first_error, is_notification_channel
from router.wire.backend import UP
from router.wire.node import Node, RouteSource
from router.wire.pinned import PinnedConn, holder_of
from router.wire.ports import ClientPort, Waiter
from router.wire.tally import LogTally
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.resp.encode import encode_bulk, encode_command

log = logging.getLogger("slotwarden.pubsub")
TALLY = LogTally(log)  # losses and resubscriptions: one line per shard per event

CHANNEL, PATTERN, SHARD = 0, 1, 2  # the three kinds of subscription
_SUBSCRIBE = {b"subscribe": CHANNEL, b"psubscribe": PATTERN, b"ssubscribe": SHARD}
_UNSUBSCRIBE = {b"unsubscribe": CHANNEL, b"punsubscribe": PATTERN, b"sunsubscribe": SHARD}
_VERBS = ((b"SUBSCRIBE", b"UNSUBSCRIBE"), (b"PSUBSCRIBE", b"PUNSUBSCRIBE"),
          (b"SSUBSCRIBE", b"SUNSUBSCRIBE"))  # fmt: skip


def confirmation(kind: bytes, name: bytes | None, count: int, resp3: bool) -> bytes:
    """``[subscribe, ch, n]`` as Redis sends it: an array (RESP2) or a push (RESP3)."""
    head = b">3\r\n" if resp3 else b"*3\r\n"
    nil = b"_\r\n" if resp3 else b"$-1\r\n"
    return (
        head
        + encode_bulk(kind)
        + (nil if name is None else encode_bulk(name))
        + (b":%d\r\n" % count)
    )


def pong(args: list[bytes]) -> bytes:
    """PING from a RESP2 client in subscribed mode: ``[pong, arg or ""]``."""
    return b"*2\r\n$4\r\npong\r\n" + encode_bulk(args[1] if len(args) > 1 else b"")


class _Confirmations:
    """Waits for the ``count`` replies one pinned connection owes for one request, and
    reports them to the request's fan-in as one part (the first error, or success)."""

    __slots__ = ("conn", "node", "part", "remaining", "sub")

    def __init__(
        self,
        sub: Subscriber,
        node: Node,
        conn: PinnedConn,
        part: FanInPart | None,
        count: int,
    ) -> None:
        self.sub = sub
        self.node = node
        self.conn = conn
        self.part = part  # None: a silent resync, nobody waits for it
        self.remaining = count

    def on_reply(self, raw: bytes) -> None:
        if self.remaining <= 0:
            return
        if raw[:1] == b"-":  # one error instead of ``count`` confirmations: drop my other slots
            self.remaining = 0
            waiting = self.conn.waiting
            while waiting and waiting[0] is self:
                waiting.popleft()
            if self.part is not None:
                self.part.on_reply(raw)
            self.sub.on_part_done(self.node)
            return
        self.remaining -= 1
        if self.remaining == 0:
            if self.part is not None:
                self.part.on_reply(CONFIRMED)
            else:
                self.sub.resubscribed(self.node)
            self.sub.on_part_done(self.node)


CONFIRMED = b""  # a part of a (un)subscribe request that every master confirmed


def _confirmations(replies: bytes) -> Merger:
    """The reply to one (UN)SUBSCRIBE once every master involved answered: the client's
    confirmations, or the first error (in part order)."""

    def merge(parts: list[bytes]) -> bytes:
        return first_error(parts) or replies

    return merge


class _Placement:
    """What one pinned connection is subscribed to."""

    __slots__ = ("conn", "names")

    def __init__(self, conn: PinnedConn) -> None:
        self.conn = conn
        self.names: tuple[set[bytes], set[bytes], set[bytes]] = (set(), set(), set())

    def empty(self) -> bool:
        return not any(self.names)


class Subscriber:
    """One client's subscriptions and the pinned connections that carry them."""

    def __init__(self, client: ClientPort, routes: RouteSource) -> None:
        self.client = client
        self.routes = routes
        # logical subscriptions, in the order the client made them
        self.wanted: tuple[dict[bytes, None], dict[bytes, None], dict[bytes, None]] = ({}, {}, {})
        self.placed: dict[Node, _Placement] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = 0.0
        self._lost: set[str] = set()  # shards whose loss was logged, until resubscribed

    # ------------------------------------------------------------ counts

    def classic_count(self) -> int:
        return len(self.wanted[CHANNEL]) + len(self.wanted[PATTERN])

    def count(self) -> int:
        return self.classic_count() + len(self.wanted[SHARD])

    def _count_for(self, kind: int) -> int:
        return len(self.wanted[SHARD]) if kind == SHARD else self.classic_count()

    # ------------------------------------------------------------ client commands

    def subscribe(self, verb: bytes, names: list[bytes], pending: Waiter) -> None:
        kind = _SUBSCRIBE[verb]
        resp3 = self.client.resp3()
        replies: list[bytes] = []
        for name in names:
            self.wanted[kind][name] = None
            replies.append(confirmation(verb, name, self._count_for(kind), resp3))
        self._send(pending, b"".join(replies))

    def unsubscribe(self, verb: bytes, names: list[bytes], pending: Waiter) -> None:
        kind = _UNSUBSCRIBE[verb]
        resp3 = self.client.resp3()
        wanted = self.wanted[kind]
        if not names:
            names = list(wanted)
            if not names:
                pending.on_reply(confirmation(verb, None, self._count_for(kind), resp3))
                return
        replies: list[bytes] = []
        for name in names:
            wanted.pop(name, None)
            replies.append(confirmation(verb, name, self._count_for(kind), resp3))
        self._send(pending, b"".join(replies))

    def _send(self, pending: Waiter, replies: bytes) -> None:
        request = FanIn(1, _confirmations(replies), pending.on_reply)
        self.resync(request)  # adds a part per connection the request is spread over
        request.on_part(0, CONFIRMED)  # part 0 held it open until now

    # ------------------------------------------------------------ placement

    def resync(self, request: FanIn | None = None) -> None:
        """Make the placement match ``wanted`` under the current route; ``request``
        (a client's command) is answered when every message it caused is confirmed."""
        route = self.routes.route
        masters = route.masters
        owner = route.slotmap.owner
        want: dict[Node, tuple[set[bytes], set[bytes], set[bytes]]] = {}

        def target(node: Node) -> tuple[set[bytes], set[bytes], set[bytes]]:
            found = want.get(node)
            if found is None:
                found = want[node] = (set(), set(), set())
            return found

        for kind in (CHANNEL, SHARD):
            for name in self.wanted[kind]:
                if kind == CHANNEL and is_notification_channel(name):
                    for node in masters:  # every shard publishes its own keys' events
                        target(node)[kind].add(name)
                else:
                    target(masters[owner[key_hash_slot(name)]])[kind].add(name)
        if self.wanted[PATTERN]:
            for node in masters:
                target(node)[PATTERN].update(self.wanted[PATTERN])
        for node in list(self.placed):
            if node not in want:
                want[node] = (set(), set(), set())
        for node, names in want.items():
            self._apply(node, names, request)

    def _apply(
        self,
        node: Node,
        names: tuple[set[bytes], set[bytes], set[bytes]],
        request: FanIn | None,
    ) -> None:
        placement = self.placed.get(node)
        for kind in (CHANNEL, PATTERN, SHARD):
            have = placement.names[kind] if placement is not None else set()
            add = [n for n in self.wanted[kind] if n in names[kind] and n not in have]
            drop = [n for n in have if n not in names[kind]]
            if add:
                if placement is None:
                    opened = self._open(node)
                    if type(opened) is bytes:
                        if request is not None:
                            request.add().on_reply(opened)
                        else:
                            self._schedule_retry(node)
                        continue
                    placement = opened  # type: ignore[assignment]
                self._request(node, placement, _VERBS[kind][0], add, request)
                placement.names[kind].update(add)
            if drop and placement is not None:
                self._request(node, placement, _VERBS[kind][1], drop, request)
                placement.names[kind].difference_update(drop)
        if placement is not None:
            self.on_part_done(node)

    def _open(self, node: Node) -> _Placement | bytes:
        """A connection to ``node`` for our subscriptions, or the ``-ERR`` of the limit hit."""
        conn = node.acquire_pinned(self.client.proto(), holder_of(self.client.session), True)
        if type(conn) is bytes:
            return conn
        conn.on_push = self.client.push
        conn.on_lost = lambda conn, node=node: self._on_lost(node, conn)  # type: ignore[misc]
        placement = self.placed[node] = _Placement(conn)
        return placement

    def _request(
        self,
        node: Node,
        placement: _Placement,
        verb: bytes,
        names: list[bytes],
        request: FanIn | None,
    ) -> None:
        part = request.add() if request is not None else None
        waiter = _Confirmations(self, node, placement.conn, part, len(names))
        placement.conn.send_expecting(encode_command([verb, *names]), waiter, len(names))

    def on_part_done(self, node: Node) -> None:
        """Give a connection back once it holds nothing and owes nothing."""
        placement = self.placed.get(node)
        if placement is not None and placement.empty() and not placement.conn.waiting:
            del self.placed[node]
            node.pinned.release(placement.conn)

    def _on_lost(self, node: Node, conn: PinnedConn) -> None:
        placement = self.placed.get(node)
        if placement is None or placement.conn is not conn:
            return
        del self.placed[node]
        if self.client.transport is None or not self.count():
            return
        if node.label not in self._lost:  # once per outage, one line for all clients
            self._lost.add(node.label)
            TALLY.add(
                f"shard {node.label} ({node.addr}): %d subscription connections lost; "
                "resubscribing",
                id(self),
            )
        self._schedule_retry(node)

    def resubscribed(self, node: Node) -> None:
        """A silent resync was confirmed on ``node``: the loss logged for it is over."""
        if node.label in self._lost:
            self._lost.discard(node.label)
            TALLY.add(f"shard {node.label} ({node.addr}): %d clients resubscribed", id(self))

    def _schedule_retry(self, node: Node) -> None:
        if self._retry is not None:
            return
        settings = node.settings  # the reconnect backoff is the same for every node
        self._retry_delay = min(
            max(self._retry_delay * 2, settings.reconnect_min), settings.reconnect_max
        )
        loop = asyncio.get_running_loop()
        self._retry = loop.call_later(self._retry_delay, self._on_retry)

    def _on_retry(self) -> None:
        self._retry = None
        if self.client.transport is None:
            return
        self.resync()
        if len(self.placed) and all(p.conn.state is UP for p in self.placed.values()):
            self._retry_delay = 0.0

    def on_route_change(self) -> None:
        """The slot map changed: move subscriptions to the masters that own them now."""
        if self.count() or self.placed:
            self.resync()

    def close(self) -> None:
        """The client is gone: close every subscription connection at once."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for placement in self.placed.values():
            placement.conn.close()
        self.placed.clear()

    def reset(self) -> None:
        """RESET: drop every subscription, silently; confirmations still in flight are
        answered first, and each connection goes back to its pool once it is clean."""
        for wanted in self.wanted:
            wanted.clear()
        self.resync()
