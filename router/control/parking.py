"""Writes a demoted master refused: held until the new topology, then sent again.

A master that a switchover (or a failover the router has not heard of yet)
turned into a replica answers writes with ``-READONLY``. Such a write was
*not* applied, so it is safe to send again: the router holds it (the client
sees nothing yet), asks the sentinels for the topology at once, and sends it
to the shard's new master as soon as a newer slot map arrives. A write held
longer than ``command_timeout_ms`` gets the original ``-READONLY`` error.

Only single-shard requests outside MULTI/WATCH are held (a transaction is
never replayed), and each at most once. Replies stay in request order (the
client's FIFO slot is the same), but a held write may be applied after later
requests of the same pipeline that went to another shard.

Invariant: every held request is answered exactly once (resent, expired, or
dropped with its client).
"""

from __future__ import annotations

from router.wire.client import Pending
from router.wire.node import Route


class ParkingLot:
    def __init__(self) -> None:
        self.held: list[tuple[Pending, bytes, bytes, float]] = []  # slot, error, request, deadline
        self.resent = 0
        self.expired = 0

    def park(self, pending: Pending, error: bytes, request: bytes, deadline: float) -> None:
        self.held.append((pending, error, request, deadline))

    def resend(self, route: Route) -> None:
        """A new topology: send every held request to its shard's master now."""
        held, self.held = self.held, []
        for pending, error, request, _deadline in held:
            self.resend_one(route, pending, error, request)

    def resend_one(self, route: Route, pending: Pending, error: bytes, request: bytes) -> None:
        client = pending.client
        if client.transport is None:
            return  # the client left; nothing to answer
        label = pending.sent.label if pending.sent is not None else None
        index = next((i for i, s in enumerate(route.slotmap.shards) if s.name == label), None)
        if index is None:
            pending.on_reply(error)
            return
        self.resent += 1
        conn = client.conn(index)
        pending.sent = conn
        conn.send(request, pending)

    def expire(self, now: float) -> None:
        if not self.held:
            return
        keep = []
        for item in self.held:
            pending, error, _request, deadline = item
            if deadline <= now:
                self.expired += 1
                pending.on_reply(error)
            else:
                keep.append(item)
        self.held = keep
