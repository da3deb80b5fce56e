"""The route table: the route in use, the backend nodes behind it, and how a new slot map lands.

`RouteTable` holds the current `router.wire.node.Route` (an immutable slot map
plus the master `Node` of each shard, swapped as a whole so a request sees
either the old or the new topology, never a mix) and every node it started.

    vet(slotmap) ── a node cluster.yaml does not list, an epoch jump > 1000? ──► refused
    apply_topology(slotmap) ── epoch <= current? ──► rejected (counted)
            │ higher epoch
            ▼
    apply_slotmap: new masters get a Node (started in the app's TaskGroup);
                   replaced masters are retired (fenced, see Node.retire);
                   the route is swapped; the shards it changes are flushed for
                   CLIENT TRACKING (``on_route``); clients move their subscriptions;
                   writes held in the parking lot are resent;
                   ``on_slotmap`` is told (remembered CONFIG SETs go to
                   nodes not seen before: router.control.config_set).

It is also the connections' `RouteSource`, their `Parker` (a write a
demoted master refused with ``-READONLY`` is held in router.control.parking
until the next topology, when someone is watching the sentinels) and their
`TopologyHint` (forwarded to the topology watcher, if there is one).

Invariants: an update is applied only if its epoch is strictly higher than
the current one (`apply_topology`), and one from outside (a push, the
sentinels) only once `vet` passed it (slotwarden.cluster.trust); a node is
sent backend credentials only if cluster.yaml lists it for its shard
(`settings_for_shard`), or if it is a node of a draining shard (removed from the
file, still the source of a migration) that the route already had (vet accepts
those: `slotwarden.cluster.trust.draining_known`, the route's map); a node the
route no longer uses is retired or stopped, never left serving; every node task
runs in the TaskGroup given to `attach`; the timeout sweep (`sweep`) covers every node still
holding requests, retired ones included, so a request in flight is answered
within ``command_timeout`` whatever the topology does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from router.control.clients import Clients
from router.control.parking import ParkingLot
from router.control.running import RunningConfig
from router.wire.backend import settings_for_shard
from router.wire.client import Pending
from router.wire.node import Node, Route
from router.wire.ports import BackendPorts, StatsSink
from router.wire.turn import LoopTurn
from slotwarden.cluster.topology import Address, SlotMap
from slotwarden.cluster.trust import TopologyRefused, check_epoch, check_nodes, draining_known

log = logging.getLogger("slotwarden.router")


class RouteTable:
    def __init__(
        self,
        running: RunningConfig,
        turn: LoopTurn,
        stats: StatsSink,
        clients: Clients,
        parking: ParkingLot,
    ) -> None:
        self.running = running
        self.stats = stats
        self.clients = clients
        self.parking = parking
        self.ports = BackendPorts(turn, stats, self)  # what every backend connection reports to
        self.nodes: dict[Address, Node] = {}
        self.route: Route  # set by apply_slotmap before serving
        self.retired: list[Node] = []  # replaced masters finishing their in-flight replies
        self.on_hint: Callable[[], None] | None = None  # the topology watcher's, when watching
        self.on_slotmap: Callable[[SlotMap], None] | None = None  # told each slot map applied
        # told each new route, with the one before (CLIENT TRACKING flushes: router.wire.tracking)
        self.on_route: Callable[[Route | None, Route], None] | None = None
        self._spawn: Callable[..., asyncio.Task[None]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_refusal = ""  # the last refused topology's reason (logged once)

    def attach(self, tg: asyncio.TaskGroup) -> None:
        """From now on node tasks are spawned in ``tg`` (the app's TaskGroup)."""
        self._spawn = tg.create_task
        self._loop = asyncio.get_running_loop()

    # ------------------------------------------------------------ topology

    def vet(
        self, slotmap: SlotMap, source: str, kind: str = "watch", jump_ok: bool = False
    ) -> TopologyRefused | None:
        """None if ``slotmap`` names only nodes cluster.yaml lists for their shards and
        its epoch is at most `MAX_EPOCH_JUMP` above ours (``jump_ok``: a majority of the
        sentinels holds it), else why not (`EpochJump` for the jump alone), logged once
        per new reason and counted as a rejected update."""
        try:
            # a draining shard gone from cluster.yaml: its nodes as the route has them
            check_nodes(slotmap, self.running.config, self.route.slotmap)
            if not jump_ok:
                check_epoch(slotmap.epoch, self.route.slotmap.epoch)
        except TopologyRefused as exc:
            self.stats.topology_update(kind, "rejected")
            if str(exc) != self._last_refusal:
                self._last_refusal = str(exc)
                log.warning("topology epoch %d from %s refused: %s", slotmap.epoch, source, exc)
            return exc
        return None

    def apply_topology(self, slotmap: SlotMap, source: str, kind: str = "watch") -> bool:
        """Adopt ``slotmap`` if its epoch is higher than the current one.
        ``kind`` (push, watch, reload) is for the metrics."""
        current = self.route.slotmap
        if not slotmap.supersedes(current):
            # the map in use again (a long poll that ended with no change, a push the
            # watcher already brought) is not a rejection
            self.stats.topology_update(kind, "unchanged" if slotmap == current else "rejected")
            return False
        self.stats.topology_update(kind, "applied")
        changes = [
            f"{new.name} {old.master}->{new.master}"
            for old, new in zip(current.shards, slotmap.shards, strict=False)
            if old.name == new.name and old.master != new.master
        ]
        self.apply_slotmap(slotmap)
        log.info(
            "topology epoch %d -> %d from %s%s",
            current.epoch,
            slotmap.epoch,
            source,
            (": " + ", ".join(changes)) if changes else "",
        )
        return True

    def apply_slotmap(self, slotmap: SlotMap) -> None:
        """Swap in a new slot map (and its master nodes) atomically."""
        assert self._spawn is not None and self._loop is not None, "attach() first"
        running = self.running
        masters: list[Node] = []
        grace = running.backend.command_timeout
        self.retired = [n for n in self.retired if any(not t.done() for t in n.tasks)]
        previous = self.route.slotmap if hasattr(self, "route") else None
        for index, shard in enumerate(slotmap.shards):
            node = self.nodes.get(shard.master)
            if node is None or node.label != shard.name:
                if node is not None:
                    node.retire(self._loop, grace)
                    self.retired.append(node)
                if shard.master in (draining_known(slotmap, index, previous) or ()):
                    settings = running.backend  # a draining shard's node the route had
                else:
                    settings = settings_for_shard(
                        running.backend, running.config, shard.name, shard.master
                    )
                node = Node(shard.master, shard.name, settings, self.ports)
                self.nodes[shard.master] = node
                node.start(self._spawn)
            masters.append(node)
        wanted = {shard.master for shard in slotmap.shards}
        for addr in list(self.nodes):
            if addr not in wanted:
                old = self.nodes.pop(addr)
                old.retire(self._loop, grace)
                self.retired.append(old)
        old_route = getattr(self, "route", None)
        self.route = Route(slotmap, tuple(masters))
        if self.on_route is not None:  # before any request is dispatched under the new route
            self.on_route(old_route, self.route)
        self.clients.on_route_change()  # subscriptions follow their channels' new masters
        self.parking.resend(self.route)
        if self.on_slotmap is not None:  # remembered CONFIG SETs to new nodes (config_set)
            self.on_slotmap(slotmap)

    def drop_nodes(self) -> None:
        """Stop every node now (new credentials or pool sizes: the next slot map
        applied starts new ones)."""
        for node in self.nodes.values():
            node.stop()
        self.nodes.clear()

    def stop(self) -> None:
        """Stop every node, the retired ones included (the router is shutting down)."""
        for node in [*self.nodes.values(), *self.retired]:
            node.stop()

    # ------------------------------------------------------------ ports of the connections

    def hint_topology(self) -> None:
        if self.on_hint is not None:
            self.on_hint()

    def park(self, pending: Pending, error: bytes, request: bytes) -> bool:
        """Hold a write a demoted master refused until the new topology (router.control.parking)."""
        if pending.client.transport is None or self.on_hint is None:
            return False  # nobody to tell us the new master: answer the error now
        if pending.sent is not None and pending.sent.retired:
            # the topology already moved on from the node that refused: go now
            self.parking.resend_one(self.route, pending, error, request)
            return True
        assert self._loop is not None
        deadline = self._loop.time() + self.running.backend.command_timeout
        self.parking.park(pending, error, request, deadline)
        self.hint_topology()
        return True

    # ------------------------------------------------------------ timeouts

    async def sweep(self) -> None:
        """Abort backend connections whose replies are overdue and answer held writes
        past their deadline, until cancelled."""
        period = min(0.1, self.running.backend.command_timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            # retired nodes too: a replaced master may be the hung one, and its
            # requests in flight are owed an answer within command_timeout, not
            # at the end of the retirement grace
            for node in [*self.nodes.values(), *self.retired]:
                for conn in node.all_conns():
                    conn.check_timeout(now)
            self.parking.expire(now)
