"""Every client connection of the router, by id: the max_clients bound, the counts, CLIENT LIST.

`Clients` is the `router.wire.client.ClientRegistry` the client connections
register with. It hands out client ids (from 1, never reused), refuses a
connection past ``router.max_clients``, counts the connections accepted and
refused (INFO, /metrics), lists the sessions (CLIENT LIST), tells every
client when the route changes, and drains them at shutdown.

Invariant: ``by_id`` holds exactly the clients that were admitted and have
not disconnected yet.
"""

from __future__ import annotations

import asyncio
import time

from router.decide.session import Session
from router.wire.client import ClientConn
from router.wire.ports import ConfigSource


class Clients:
    def __init__(self, running: ConfigSource) -> None:
        self.running = running
        self.by_id: dict[int, ClientConn] = {}
        self.total = 0  # connections accepted since start
        self.rejected = 0  # connections refused at max_clients
        self._next_id = 0

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def open(self, client: ClientConn) -> bool:
        if len(self.by_id) >= self.running.config.router.max_clients:
            self.rejected += 1
            return False
        self.total += 1
        self.by_id[client.session.id] = client  # type: ignore[union-attr]
        return True

    def close(self, client: ClientConn) -> None:
        if client.session is not None:
            self.by_id.pop(client.session.id, None)

    def sessions(self) -> list[Session]:
        return [c.session for c in self.by_id.values() if c.session is not None]

    def on_route_change(self) -> None:
        """The route changed: each client moves what it holds itself (its subscriptions)."""
        for client in list(self.by_id.values()):
            client.on_route_change()

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every client's owed replies, then close them."""
        deadline = time.monotonic() + timeout
        while any(c.fifo for c in self.by_id.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for client in list(self.by_id.values()):
            if client.transport is not None:
                client.transport.close()
