"""The ports of the wire layer: the small Protocols through which connections call back up.

A connection never imports what sits above it (router.control, router.app);
what it needs from there it names here, and the composition root
(router.app) plugs in the objects that do it — the way Envoy's codec takes
``DecoderCallbacks`` and its pool ``PoolCallbacks``:

    BackendConn / PinnedConn ── Waiter.on_reply ──────► a reply slot, a fan-in part, ...
                             ── BackendPorts ─────────► LoopTurn, StatsSink, TopologyHint
    ClientState / Subscriber ── ClientPort ───────────► router.wire.client.ClientConn
    ClientConn               ── ConfigSource, StatsSink, LoopTurn, TrackingPort (+ the
                                ports that name wire types, beside those types: RouteSource in
                                router.wire.node, Parker and ClientRegistry in
                                router.wire.client)

Invariant: this module imports nothing of the wire layer but `router.wire.turn`
(a leaf), so every wire module may import it without closing a cycle; a port
that must name a wire type (a `Route`, a `Pending`) lives beside that type.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from router.commands.spec import CommandSpec
from router.decide.session import Session
from router.decide.users import Users
from router.wire.turn import LoopTurn
from slotwarden.cluster.config import ClusterConfig


class Waiter(Protocol):
    """Whoever is owed the reply to one request sent on a backend connection."""

    def on_reply(self, raw: bytes) -> None: ...


class Sender(Protocol):
    """A backend connection, as seen by whoever queues a request on it."""

    def send(self, raw: bytes, waiter: Waiter) -> None: ...


class StatsSink(Protocol):
    """The router's counters (router.control.metrics.RouterStats), bumped on the data path.

    The hot path reads ``commands`` and adds to its rows itself (one dict lookup
    and an add per reply); `count` is the general case.
    """

    bytes_in: int
    bytes_out: int
    io: object  # what bytes_in/bytes_out read: a router.wire.hot.ByteCounters, C adds to it
    commands: dict[str, list[int]]
    split_transactions: int  # EXECs run as one MULTI/EXEC per shard (several shards)
    keys_moved: int  # keys this router moved off a migration's source (router.wire.migrate)
    migrate_errors: int  # keys it could not move (the client got -TRYAGAIN)
    held_requests: int  # requests held: a key in a preparing migration's slot
    held_timeouts: int  # of those, answered -TRYAGAIN at command_timeout_ms

    def count(self, command: str, raw: bytes) -> None: ...

    def observe(self, shape: str, seconds: float) -> None:
        """A sampled request of routing ``shape`` took ``seconds`` to get its reply."""

    def backend_error(self, node: str) -> None: ...

    def backend_timeout(self, node: str) -> None: ...

    def topology_update(self, source: str, result: str) -> None:
        """A slot map from ``source`` was ``result``: applied, unchanged or rejected."""


class TopologyHint(Protocol):
    def hint_topology(self) -> None:
        """A master said READONLY or went away: the topology may have changed."""


@dataclass(frozen=True, slots=True)
class BackendPorts:
    """What a backend connection reports to above it: the turn it writes in, the
    counters, and the topology hints."""

    turn: LoopTurn
    stats: StatsSink
    hints: TopologyHint


class ConfigSource(Protocol):
    """The running config (a reload swaps it whole) and the router's users."""

    @property
    def config(self) -> ClusterConfig: ...

    @property
    def users(self) -> Users: ...


class ConfigWriter(Protocol):
    """Who runs CONFIG SET / RESETSTAT on every node (router.control.config_set)."""

    def request(self, args: list[bytes], waiter: Waiter) -> None:
        """Answer ``waiter`` (now or later) with the reply to ``args``."""


class ClientPort(Protocol):
    """A client connection, as `ClientState` and `Subscriber` see it."""

    session: Session | None
    transport: asyncio.Transport | None
    running: ConfigSource  # the running config (router.transactions ...)
    stats: StatsSink  # the counters (split transactions ...)

    def push(self, reply: bytes) -> None:
        """Queue a reply that is ready now."""

    def new_pending(self) -> Waiter:
        """A reply slot at the tail of the FIFO, filled later."""

    def forward(self, spec: CommandSpec, args: list[bytes], raw: bytes) -> None:
        """Answer a command in normal mode: locally, or planned and sent to the shards."""

    def answer_local(self, name: str, args: list[bytes]) -> bytes: ...

    def conn(self, shard: int) -> Sender:
        """This client's connection to ``shard`` (its WATCH connection, or the shared one)."""

    def proto(self) -> int: ...

    def resp3(self) -> bool: ...

    def addr(self) -> str: ...

    def resume_soon(self) -> None:
        """Input may be waiting (held requests, buffered bytes): process it soon."""


class TrackingPort(Protocol):
    """Client-side caching (router.wire.tracking.Tracker), as a client connection sees it."""

    def command(self, client: ClientPort, name: str, args: list[bytes]) -> bytes:
        """The reply to CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO."""

    def on_request(
        self, client: ClientPort, spec: CommandSpec, args: list[bytes], in_multi: bool
    ) -> list[bytes] | None:
        """A tracking client's request, before it is sent: the read keys to invalidate
        after its reply (their shard's tracking connection is not live), if any."""

    def late(self, client: ClientPort, keys: list[bytes]) -> None: ...

    def off(self, client: ClientPort) -> None:
        """The client stops tracking (it disconnected)."""
