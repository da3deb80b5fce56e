"""Live edits of cluster.yaml in a sentinel: SIGHUP, ``POST /reload``, and a file watch.

A reload parses and validates the whole file with `slotwarden.cluster.config.load`. An
invalid edit is rejected with one log line per problem (and the
``config_reloads_total{result="rejected"}`` counter); the running config
stays. A valid one is applied at once, as a whole, by `apply_config`:

- timings (``down_after_ms``, ``probe_interval_ms``, ``failover_timeout_ms``)
  and ``quorum`` take effect on the next probe and decision;
- sentinels added to (or removed from) ``sentinel.peers`` are polled (or
  no longer) and count toward the majority;
- ``router.admin`` changes which router gets pushes;
- this sentinel's own listen address, ``state_dir`` and the secret's source
  need a restart (said in the log, the old values stay).

Topology edits (slot ranges, shards, replicas) are never applied locally:
the sentinels hold the epochs. If the file's layout merged with the latest
topology (`sentinel.decide.reconfigure.merge`) differs from that topology, the
sentinel asks for an epoch: it stands in an ordinary election (a
"reconfigure" action), and only the winner publishes the merged layout at
the won epoch, to peers and routers exactly like a failover result. So two
sentinels never publish different maps for one epoch, and changes that
conflict with a sentinel-held failover state are resolved by epoch: the
current master of a shard stays master if the file still lists it for that
shard; a failover that was running when a reconfigure epoch was published
aborts and, if its master is still down, fails over again at a newer epoch.

Invariant: a reload never leaves a half-applied config; each one ends as
exactly one ``applied`` or ``rejected``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

from sentinel.act.probe import set_backend_auth
from sentinel.decide import reconfigure
from sentinel.decide.model import Event, Timing
from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.errors import ConfigError, SecretError
from slotwarden.cluster.filewatch import POLL_S, FileWatch

if TYPE_CHECKING:
    from sentinel.run.loop import Sentinel

log = logging.getLogger("sentinel.reload")


class SentinelReloader:
    def __init__(self, sentinel: Sentinel, path: str) -> None:
        self.s = sentinel
        self.path = path
        self.file = FileWatch(path)

    def reload(self, reason: str) -> tuple[bool, list[str]]:
        """Reload now. Returns (applied, the problems or the changes)."""
        s = self.s
        self.file.mark()
        try:
            config = load(self.path)
            problems = incompatible(s, config)
        except ConfigError as exc:
            problems = list(exc.problems)
        if problems:
            s.stats.reloaded(False)
            log.error(
                "sentinel %s: reload (%s) rejected: %d problem(s); keeping the running config",
                s.me, reason, len(problems),
            )  # fmt: skip
            for problem in problems:
                log.error("reload rejected: %s", problem)
            return False, problems
        changes = apply_config(s, config)
        s.stats.reloaded(True)
        if changes:
            log.info("sentinel %s: reload (%s) applied: %s", s.me, reason, "; ".join(changes))
        else:
            log.info("sentinel %s: reload (%s): nothing changed", s.me, reason)
        return True, changes

    async def watch(self) -> None:
        """Reload whenever the file changes (until cancelled)."""
        while True:
            await asyncio.sleep(POLL_S)
            if self.file.changed():
                self.reload("file changed")


def incompatible(s: Sentinel, new: ClusterConfig) -> list[str]:
    """Edits a running sentinel cannot take (the file is valid, but not for us)."""
    if new.sentinel is None:
        return ["sentinel: the section was removed; stop the sentinels instead of reloading"]
    if s.me not in {p.id for p in new.sentinel.peers}:
        return [f"sentinel.peers: this sentinel ({s.me}) is no longer listed; stop it instead"]
    return []


def apply_config(s: Sentinel, new: ClusterConfig) -> list[str]:
    """Swap in ``new`` (valid and compatible); one phrase per change."""
    try:
        set_backend_auth(new)
    except SecretError as exc:
        log.error("reload: keeping the old backend credentials: %s", exc)
    old = s.config
    osc, nsc = old.sentinel, new.sentinel
    assert osc is not None and nsc is not None
    changes: list[str] = []
    # -- needs a restart: keep what is running, say so
    kept = {}
    for name in ("state_dir", "secret_env", "secret_file"):
        if getattr(nsc, name) != getattr(osc, name):
            changes.append(f"sentinel.{name} changes need a restart (kept the old one)")
            kept[name] = getattr(osc, name)
    peers = {p.id: p for p in nsc.peers}
    if peers[s.me].listen != s.listen:
        changes.append(f"this sentinel's listen address changes need a restart (kept {s.listen})")
        peers[s.me] = dataclasses.replace(peers[s.me], listen=s.listen)
    nsc = dataclasses.replace(nsc, peers=tuple(peers.values()), **kept)
    new = dataclasses.replace(new, sentinel=nsc)
    # -- timings and quorum
    for name in ("down_after_ms", "probe_interval_ms", "failover_timeout_ms", "quorum"):
        if getattr(nsc, name) != getattr(osc, name):
            changes.append(f"sentinel.{name} {getattr(osc, name)} -> {getattr(nsc, name)}")
    timing = Timing.from_ms(nsc.down_after_ms, nsc.probe_interval_ms, nsc.failover_timeout_ms)
    s.set_timing(timing)
    s.quorum = nsc.quorum
    # -- peers
    wanted = {pid: p.listen for pid, p in peers.items() if pid != s.me}
    for pid in sorted(set(s.peers) - set(wanted)):
        changes.append(f"sentinel {pid} removed")
        s.stop_peer(pid)
    for pid, addr in sorted(wanted.items()):
        if pid not in s.peers:
            changes.append(f"sentinel {pid} at {addr} added")
        elif s.peers[pid] != addr:
            changes.append(f"sentinel {pid} moved {s.peers[pid]} -> {addr}")
            s.stop_peer(pid)
        else:
            continue
        s.start_peer(pid, addr)
    s.all_ids = tuple(peers)
    # -- the router named in the file
    if new.router.admin != old.router.admin:
        changes.append(f"router.admin {old.router.admin} -> {new.router.admin}")
        s.routers.pop(old.router.admin, None)
        s.routers[new.router.admin] = float("inf")
    s.config = new
    # -- topology: the sentinels publish it as a new epoch
    current = s.topology
    merged = reconfigure.merge(new, current, current.epoch + 1)
    if reconfigure.same_layout(merged, current):
        s.reconfigure_pending = False
    else:
        what = reconfigure.describe(current, merged, new)
        changes.append(
            f"slot layout differs from topology epoch {current.epoch} ({'; '.join(what)}): "
            "asking the sentinels for an epoch to publish it"
        )
        s.reconfigure_pending = True
        s.emit(
            Event(
                "reconfigure-pending",
                f"cluster.yaml edit to publish after topology epoch {current.epoch}: "
                + "; ".join(what),
                epoch=current.epoch,
            )
        )
    s.sync_watches()
    return changes
