"""Live edits of cluster.yaml in a sentinel: SIGHUP, ``POST /reload``, and a file watch.

Owns the reload rule; `SentinelReloader` is the one way in. A reload parses
and validates the whole file with `slotwarden.cluster.config.load`. An
invalid edit is rejected with one log line per problem (and the
``config_reloads_total{result="rejected"}`` counter); the running config
stays. A valid one gets its backend credentials set, then is applied at
once, as a whole, by the callable the sentinel hands in
(`sentinel.run.loop.Sentinel.apply_config`; this module imports no `loop`):

- timings (``down_after_ms``, ``probe_interval_ms``, ``failover_timeout_ms``)
  and ``quorum`` take effect on the next probe and decision;
- sentinels added to (or removed from) ``sentinel.peers`` are polled (or
  no longer) and count toward the majority;
- ``router.admin`` changes which router gets pushes;
- this sentinel's own listen address, ``state_dir`` and the secret's source
  need a restart (said in the log, the old values stay).

An edit that gives a slot still migrating (README *Resharding*) to any
shard but its migration's target is rejected like an invalid one, one line
per problem (`sentinel.decide.reconfigure.plan_problems` against the
latest topology), until that migration ends.

Topology edits (slot ranges, shards, replicas) are never applied locally:
the sentinels hold the epochs. If the file's layout merged with the latest
topology (`sentinel.decide.reconfigure.merge`) differs from that topology, the
sentinel asks for an epoch: it stands in an ordinary election (a
"reconfigure" action), and only the winner publishes the merged layout at
the won epoch, to peers and routers exactly like a failover result; slots
the edit moves become migrations, and the leader checks again, with the
newest topology, that the edit may be published (`sentinel.run.publish`). So two
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
import logging
from collections.abc import Callable

from sentinel.act.probe import set_backend_auth
from sentinel.decide.reconfigure import plan_problems
from sentinel.run.stats import SentinelStats
from slotwarden.cluster.config import ClusterConfig, load
from slotwarden.cluster.errors import ConfigError, SecretError
from slotwarden.cluster.filewatch import POLL_S, FileWatch
from slotwarden.cluster.topology import SlotMap

log = logging.getLogger("sentinel.reload")

ApplyConfig = Callable[[ClusterConfig], list[str]]  # swap in a valid config; one phrase per change


class SentinelReloader:
    """Reloads the cluster.yaml at ``path`` into the sentinel ``me`` through ``apply``."""

    def __init__(
        self,
        path: str,
        me: str,
        apply: ApplyConfig,
        stats: SentinelStats,
        topology: Callable[[], SlotMap] | None = None,
    ) -> None:
        self.path = path
        self.topology = topology  # the latest topology, for `plan_problems`
        self.me = me
        self.apply = apply
        self.stats = stats
        self.file = FileWatch(path)

    def reload(self, reason: str) -> tuple[bool, list[str]]:
        """Reload now. Returns (applied, the problems or the changes)."""
        self.file.mark()
        try:
            config = load(self.path)
            problems = incompatible(self.me, config)
            if not problems and self.topology is not None:
                problems = plan_problems(config, self.topology())
        except ConfigError as exc:
            problems = list(exc.problems)
        if problems:
            self.stats.reloaded(False)
            log.error(
                "sentinel %s: reload (%s) rejected: %d problem(s); keeping the running config",
                self.me, reason, len(problems),
            )  # fmt: skip
            for problem in problems:
                log.error("reload rejected: %s", problem)
            return False, problems
        try:
            set_backend_auth(config)
        except SecretError as exc:
            log.error("reload: keeping the old backend credentials: %s", exc)
        changes = self.apply(config)
        self.stats.reloaded(True)
        if changes:
            log.info("sentinel %s: reload (%s) applied: %s", self.me, reason, "; ".join(changes))
        else:
            log.info("sentinel %s: reload (%s): nothing changed", self.me, reason)
        return True, changes

    async def watch(self) -> None:
        """Reload whenever the file changes (until cancelled)."""
        while True:
            await asyncio.sleep(POLL_S)
            if self.file.changed():
                self.reload("file changed")


def incompatible(me: str, new: ClusterConfig) -> list[str]:
    """Edits a running sentinel cannot take (the file is valid, but not for us)."""
    if new.sentinel is None:
        return ["sentinel: the section was removed; stop the sentinels instead of reloading"]
    if me not in {p.id for p in new.sentinel.peers}:
        return [f"sentinel.peers: this sentinel ({me}) is no longer listed; stop it instead"]
    return []
