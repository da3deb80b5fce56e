"""One backend node (a Redis master the route sends to), and the route: the nodes of one slot map.

A `Node` per backend address owns its shared, pipelined connections
(``size`` per protocol: RESP2, and RESP3 ones for RESP3 clients) and a
`router.wire.pinned.PinnedPool` of dedicated connections. A client always
uses the same shared connection of a node (``client_id % size``), so its
requests to that node stay in order.

A `Route` is an immutable slot map plus the master `Node` of each of its
shards; the route table (router.control.routes) swaps it as a whole, so a
request sees either the old or the new topology, never a mix. Connections
read the route in use through a `RouteSource` (the port this module owns).

A node the topology stops routing to is *retired* (`Node.retire`): it gets
no new requests, its in-flight replies still arrive for a grace period
(fenced: see router.wire.backend), then it stops. Invariant: every task a
node runs was spawned by its owner's TaskGroup (`Node.start`), and `stop`
ends them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from router.decide.builtins import COMPAT_REDIS_VERSION
from router.decide.info import version_key
from router.wire.backend import UP, BackendConn, BackendSettings
from router.wire.pinned import Holder, PinnedConn, PinnedPool
from router.wire.ports import BackendPorts
from slotwarden.cluster.topology import Address, SlotMap


class Node:
    """One backend address: its shared pipelined connections, and a pool of dedicated
    (pinned) ones handed to clients that need a connection of their own."""

    def __init__(
        self, addr: Address, label: str, settings: BackendSettings, ports: BackendPorts
    ) -> None:
        """``settings``: this shard's (`settings_for_shard`); ``label``: the shard's name."""
        self.addr = addr
        self.label = label
        self.settings = settings
        size = settings.connections
        self.conns = [BackendConn(addr, label, settings, ports, 2) for _ in range(size)]
        self.conns3 = [BackendConn(addr, label, settings, ports, 3) for _ in range(size)]
        self.tasks: list[asyncio.Task[None]] = []
        self.pinned = PinnedPool(addr, label, settings, ports)

    def conn_for(self, client_id: int, proto: int = 2) -> BackendConn:
        conns = self.conns if proto == 2 else self.conns3
        return conns[0] if len(conns) == 1 else conns[client_id % len(conns)]

    def apply_settings(self, settings: BackendSettings) -> None:
        """A reload changed timeouts or limits: every connection, the pinned ones
        included, uses ``settings`` from now on (credentials and the number of
        connections only change with a new node)."""
        self.settings = settings
        self.pinned.settings = settings
        for conn in self.all_conns():
            conn.settings = settings

    def all_conns(self) -> list[BackendConn]:
        """Every connection to this node, the pinned ones included (for the timeout sweep)."""
        return self.conns + self.conns3 + self.pinned.live()

    def start(self, spawn: Callable[..., asyncio.Task[None]]) -> None:
        """Start the connection tasks with ``spawn`` (the owner's TaskGroup.create_task);
        pinned connections are connected by tasks spawned the same way."""
        self.tasks = [
            spawn(conn.maintain(), name=f"backend {self.addr} resp{conn.proto}")
            for conn in self.conns + self.conns3
        ]
        self.pinned.spawn = spawn

    def acquire_pinned(
        self, proto: int, holder: Holder, pubsub: bool = False
    ) -> PinnedConn | bytes:
        """A dedicated connection speaking ``proto`` for ``holder``, or the ``-ERR``
        naming the limit it hit (`PinnedPool.acquire`)."""
        return self.pinned.acquire(proto, holder, pubsub)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.pinned.close_all()

    def retire(self, loop: asyncio.AbstractEventLoop, grace: float) -> None:
        """The topology no longer routes to this node: no new requests come; the
        ones in flight get their replies for up to ``grace`` seconds (READONLY
        refusals are retried elsewhere by the router, other replies become
        errors — the fence), then the node stops. Dedicated connections stop now."""
        self.pinned.close_all()
        for conn in self.conns + self.conns3:
            conn.retired = True
        loop.call_later(grace, self.stop)

    def is_up(self) -> bool:
        return all(conn.state is UP for conn in self.conns)

    def version(self) -> str:
        """The node's redis_version, as its last HELLO 3 said ("" before one answered)."""
        return self.conns3[0].version if self.conns3 else ""


@dataclass(frozen=True, slots=True)
class Route:
    slotmap: SlotMap
    masters: tuple[Node, ...]  # masters[i] serves slotmap.shards[i]


class RouteSource(Protocol):
    """Whoever holds the route in use (router.control.routes.RouteTable)."""

    @property
    def route(self) -> Route: ...


def lowest_version(route: Route) -> str:
    """The lowest redis_version of the route's masters (HELLO's ``version``, as INFO's
    ``redis_version``); the router's Redis feature level until a master has said."""
    versions = [v for v in (node.version() for node in route.masters) if v]
    return min(versions, key=version_key) if versions else COMPAT_REDIS_VERSION
