"""Live edits of cluster.yaml: reload on SIGHUP, on ``POST /reload``, and when the file changes.

A reload parses and validates the whole file first; an invalid edit is
rejected with one log line per problem and the running config stays. A valid
one is applied by `RouterReloader.apply` without dropping client
connections: the `RunningConfig` fields are swapped, nodes take the new
timeouts (new credentials or pool sizes rebuild them), and topology edits
(slot ranges, shards, replicas) apply at once on a router that has no
sentinels; with sentinels, they hold the authority over epochs, so the
router leaves the slot map to them (they reload the same file and publish it
as a new epoch). Without sentinels there is no mover: an edit that moves
slots moves their routing only (their keys stay where they were, unseen),
and says so in one WARNING per edit (README *Resharding*).

Invariant: a reload never leaves a half-applied config; the counters
``applied``/``rejected`` say how each ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from router.control.routes import RouteTable
from router.control.running import RunningConfig
from router.control.watch import TopologyWatcher
from router.decide.users import Users
from router.wire.backend import settings_for_shard, settings_from_config
from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.errors import ConfigError, SecretError
from slotwarden.cluster.filewatch import POLL_S, FileWatch
from slotwarden.cluster.slots import format_ranges
from slotwarden.cluster.topology import SlotMap

log = logging.getLogger("slotwarden.reload")


def moved_slots(old: SlotMap, new: SlotMap) -> list[tuple[str, str, str]]:
    """(from shard, to shard, slot ranges) for each pair of shards ``new`` moves slots
    between, by name."""
    pairs: dict[tuple[str, str], list[int]] = {}
    for slot, (a, b) in enumerate(zip(old.owner, new.owner, strict=True)):
        was, now = old.shards[a].name, new.shards[b].name
        if was != now:
            pairs.setdefault((was, now), []).append(slot)
    return [(a, b, format_ranges(slots)) for (a, b), slots in sorted(pairs.items())]


class RouterReloader:
    def __init__(self, path: str, running: RunningConfig, routes: RouteTable) -> None:
        self.path = path
        self.running = running
        self.routes = routes
        self.watcher: TopologyWatcher | None = None  # set by the app when it watches sentinels
        self.applied = 0
        self.rejected = 0
        self.last_ok = True  # the config in use at start counts as a good one
        self.file = FileWatch(path)

    def reload(self, reason: str) -> tuple[bool, list[str]]:
        """Reload now. Returns (applied, problems or changes)."""
        self.file.mark()
        try:
            config = load(self.path)
        except ConfigError as exc:
            self.rejected += 1
            self.last_ok = False
            log.error("reload (%s) rejected: %d problem(s); keeping the running config",
                      reason, len(exc.problems))  # fmt: skip
            for problem in exc.problems:
                log.error("reload rejected: %s", problem)
            return False, list(exc.problems)
        changes = self.apply(config)
        self.applied += 1
        self.last_ok = True
        if changes:
            log.info("reload (%s) applied: %s", reason, "; ".join(changes))
        else:
            log.info("reload (%s): nothing changed", reason)
        return True, changes

    def apply(self, new: ClusterConfig) -> list[str]:
        """Swap in a reloaded config; returns one phrase per change applied."""
        running = self.running
        routes = self.routes
        old = running.config
        changes: list[str] = []
        r_old, r_new = old.router, new.router
        fixed = ("listen", "admin", "workers")  # the processes and sockets of this run
        if any(getattr(r_new, name) != getattr(r_old, name) for name in fixed):
            changes.append("router.listen/admin/workers changes need a restart (kept the old ones)")
            r_new = dataclasses.replace(
                r_new, listen=r_old.listen, admin=r_old.admin, workers=r_old.workers
            )
            new = dataclasses.replace(new, router=r_new)
        for name in (f.name for f in dataclasses.fields(r_new)):
            if getattr(r_new, name) != getattr(r_old, name) and name not in fixed:
                changes.append(f"router.{name} {getattr(r_old, name)} -> {getattr(r_new, name)}")
        try:
            settings = settings_from_config(new)
            users = Users.load(new)
        except SecretError as exc:
            changes.append(f"kept the old credentials and timeouts ({exc})")
            settings, users = running.backend, running.users
        rebuild = (settings.connections, settings.credentials) != (
            running.backend.connections,
            running.backend.credentials,
        )
        running.backend = settings
        running.users = users
        running.config = new
        for node in routes.nodes.values():
            node.apply_settings(settings_for_shard(settings, new, node.label, node.addr))
        if self.watcher is not None and new.sentinel is not None:
            self.watcher.sentinels = [p.listen for p in new.sentinel.peers]
        if self.watcher is not None:
            self.watcher.hint()  # a topology refused for naming a node just added: ask again
        current = routes.route.slotmap
        layout = new.slotmap(current.epoch + 1)
        same_layout = layout.owner == current.owner and layout.shards == current.shards
        if rebuild:
            routes.drop_nodes()
        if same_layout:
            if rebuild:
                routes.apply_slotmap(current)
        elif self.watcher is not None:
            changes.append(
                "slot layout edits are left to the sentinels, which publish them as a new epoch"
            )
            if rebuild:
                routes.apply_slotmap(current)
        else:
            routes.apply_topology(layout, source=f"{new.path} (reload)", kind="reload")
            changes.append(f"topology epoch {current.epoch} -> {layout.epoch}")
            moves = moved_slots(current, layout)
            if moves:
                log.warning(
                    "%s: without sentinels keys are not moved; see README Resharding",
                    "; ".join(f"slots {slots} moved {a} -> {b}" for a, b, slots in moves),
                )
        return changes

    async def watch(self) -> None:
        """Reload whenever the file changes (until cancelled)."""
        while True:
            await asyncio.sleep(POLL_S)
            if self.file.changed():
                self.reload("file changed")
