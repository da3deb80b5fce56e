"""Every Prometheus metric of a sentinel process, declared here with its help text.

Owns the names, types, help texts and labels of ``GET /metrics`` on the
sentinel's listen address; they are the contract in
``deploy/prometheus/METRICS.md`` (sentinel part). Gauges are read from the
sentinel's live state at scrape time by `SentinelCollector` (nothing to keep
in sync); counters are the plain numbers in `sentinel.run.stats.SentinelStats`,
bumped by the code that sees the event. Invariant: every label value known
at start or after a topology change (each shard, node, peer, outcome, kind,
result, state, role) is exposed, at 0 if nothing happened yet; a node that
left the topology has no rows. Each sentinel has its own registry, made with
its HTTP app (`sentinel.http.api.make_app`; no process-global state).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sentinel.decide.detector import is_sdown
from sentinel.decide.model import NodeRole
from sentinel.run.loop import Sentinel
from slotwarden import __version__

PREFIX = "slotwarden_sentinel_"
PEER_FRESH = 3.0  # a peer is up if it answered within this many seconds (METRICS.md)
STATES = ("up", "sdown", "odown")
ROLES = ("master", "replica")
REPORTED_ROLES = ("master", "replica", "unknown")
FAILOVER_KINDS = ("failover", "switchover")
FAILOVER_OUTCOMES = ("done", "aborted")
RELOAD_RESULTS = ("applied", "rejected")

# name (without prefix) -> help text; `SentinelCollector` yields exactly these.
HELP = {
    "build_info": "Always 1; the sentinel's version, the cluster name and this sentinel's id.",
    "node_state": "This sentinel's view of each node: up, sdown (no valid reply for "
    "down_after_ms) or odown (a master that at least quorum sentinels hold down); "
    "1 for the current state, 0 for the others.",
    "node_role": "The node's role in this sentinel's topology (master or replica); "
    "1 for the current role, 0 for the other.",
    "node_reported_role": "The role the node itself last reported (INFO replication): "
    "master, replica, or unknown when it does not answer.",
    "replication_lag_bytes": "Replicas only: the master's replication offset minus the replica's.",
    "epoch": "Current election epoch (persisted).",
    "topology_epoch": "Epoch of the topology this sentinel holds and serves.",
    "votes_cast": "Votes this sentinel granted, by the sentinel id voted for.",
    "failovers": "Failovers this sentinel led to the end, by shard, kind (failover, "
    "switchover) and outcome (done, aborted).",
    "failovers_refused": "Times a shard's master was objectively down while no replica "
    "was eligible for promotion (never synced, link down or offset behind more than "
    "max_replica_lag_ms): the shard stayed down, by shard.",
    "failover_refused": "1 while the shard's failover is refused (no eligible replica), else 0.",
    "failover_last_duration_seconds": "Duration of the last failover of the shard that "
    "this sentinel led, from its election to its terminal step.",
    "peer_up": "1 if the peer sentinel answered within the last 3 s, else 0.",
    "peers_configured": "Sentinels in sentinel.peers, this one included.",
    "quorum": "sentinel.quorum: sentinels that must hold a master down before a failover.",
    "config_reloads": "cluster.yaml reloads (file change, SIGHUP, POST /reload) by result: "
    "applied, rejected (invalid edit; the running config stays).",
    "config_last_reload_successful": "1 if the last cluster.yaml reload was applied "
    "(1 at start), 0 if it was rejected.",
    "auth_failures": "HTTP requests refused for a missing or wrong secret.",
    "migration_keys_moved": "Keys this sentinel's mover moved from the source shard to the "
    "target shard of a migration (MIGRATE batches and big keys), by source and target.",
    "migration_bytes_moved": "MEMORY USAGE of the keys this sentinel's mover moved, by source "
    "and target.",
    "slots_migrating": "Slots in a migration in this sentinel's topology.",
    "migration_duration_seconds": "Duration of the last migration this sentinel moved to "
    "its end, from taking it up to the topology without it.",
    "migrate_errors": "MIGRATE (or chunked big-key move) errors of this sentinel's mover: "
    "the keys stayed on the source and were retried, by source and target.",
}


def _gauge(name: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, HELP[name], labels=list(labels))


def _counter(name: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, HELP[name], labels=list(labels))


class SentinelCollector(Collector):
    """Reads one `Sentinel` at scrape time."""

    def __init__(self, sentinel: Sentinel) -> None:
        self.s = sentinel

    def collect(self) -> Iterator[Metric]:
        s = self.s
        now = s.clock()
        topology = s.topology
        stats = s.stats

        info = _gauge("build_info", ("version", "cluster", "id"))
        info.add_metric([__version__, s.config.name, s.me], 1)
        yield info

        state = _gauge("node_state", ("shard", "node", "state"))
        role = _gauge("node_role", ("shard", "node", "role"))
        reported = _gauge("node_reported_role", ("shard", "node", "role"))
        lag = _gauge("replication_lag_bytes", ("shard", "node"))
        for shard in topology.shards:
            master_obs = s.probers[shard.master].obs if shard.master in s.probers else None
            for addr in (shard.master, *shard.replicas):
                node = str(addr)
                prober = s.probers.get(addr)
                obs = prober.obs if prober is not None else None
                if addr == shard.master and shard.name in s.flags.odown:
                    current = "odown"
                elif addr in s.flags.sdown:
                    current = "sdown"
                else:
                    current = "up"
                for value in STATES:
                    state.add_metric([shard.name, node, value], 1 if value == current else 0)
                mine = "master" if addr == shard.master else "replica"
                for value in ROLES:
                    role.add_metric([shard.name, node, value], 1 if value == mine else 0)
                said = "unknown"
                if obs is not None and obs.info_at is not None and not is_sdown(obs, now, s.timing):
                    said = obs.role.value
                for value in REPORTED_ROLES:
                    reported.add_metric([shard.name, node, value], 1 if value == said else 0)
                if (
                    addr != shard.master
                    and obs is not None
                    and obs.role is NodeRole.REPLICA
                    and obs.info_at is not None
                    and master_obs is not None
                    and master_obs.role is NodeRole.MASTER
                    and master_obs.info_at is not None
                ):
                    lag.add_metric([shard.name, node], max(master_obs.offset - obs.offset, 0))
        yield from (state, role, reported, lag)

        epoch = _gauge("epoch")
        epoch.add_metric([], s.votes.epoch)
        yield epoch
        topo_epoch = _gauge("topology_epoch")
        topo_epoch.add_metric([], topology.epoch)
        yield topo_epoch

        votes = _counter("votes_cast", ("candidate",))
        for candidate in sorted(set(s.all_ids) | set(stats.votes_cast)):
            votes.add_metric([candidate], stats.votes_cast.get(candidate, 0))
        yield votes

        failovers = _counter("failovers", ("shard", "kind", "outcome"))
        duration = _gauge("failover_last_duration_seconds", ("shard",))
        names = [sh.name for sh in topology.shards]
        for name in names:
            for kind in FAILOVER_KINDS:
                for outcome in FAILOVER_OUTCOMES:
                    failovers.add_metric(
                        [name, kind, outcome], stats.failovers.get((name, kind, outcome), 0)
                    )
            duration.add_metric([name], stats.failover_duration.get(name, 0.0))
        yield from (failovers, duration)
        refusals = _counter("failovers_refused", ("shard",))
        refused = _gauge("failover_refused", ("shard",))
        for name in names:
            refusals.add_metric([name], stats.refusals.get(name, 0))
            refused.add_metric([name], 1 if name in s.leader.refusals.current else 0)
        yield from (refusals, refused)

        peer_up = _gauge("peer_up", ("peer",))
        for pid in sorted(s.peers):
            op = s.opinions.get(pid)
            peer_up.add_metric([pid], 1 if op is not None and now - op.at <= PEER_FRESH else 0)
        yield peer_up
        configured = _gauge("peers_configured")
        configured.add_metric([], len(s.all_ids))
        yield configured
        quorum = _gauge("quorum")
        quorum.add_metric([], s.quorum)
        yield quorum

        reloads = _counter("config_reloads", ("result",))
        for result in RELOAD_RESULTS:
            reloads.add_metric([result], stats.reloads.get(result, 0))
        yield reloads
        last = _gauge("config_last_reload_successful")
        last.add_metric([], 1 if stats.last_reload_ok else 0)
        yield last
        auth = _counter("auth_failures")
        auth.add_metric([], stats.auth_failures)
        yield auth
        yield from _migration_metrics(s)


def _migration_metrics(s: Sentinel) -> Iterator[Metric]:
    ms = s.movers.stats
    names = [sh.name for sh in s.topology.shards]
    # every (source, target) pair of the topology's shards is a label value known now
    pairs = {(a, b) for a in names for b in names if a != b}
    pairs |= set(ms.keys_moved) | set(ms.bytes_moved) | set(ms.errors)
    keys = _counter("migration_keys_moved", ("source", "target"))
    nbytes = _counter("migration_bytes_moved", ("source", "target"))
    errors = _counter("migrate_errors", ("source", "target"))
    for pair in sorted(pairs):
        keys.add_metric(list(pair), ms.keys_moved.get(pair, 0))
        nbytes.add_metric(list(pair), ms.bytes_moved.get(pair, 0))
        errors.add_metric(list(pair), ms.errors.get(pair, 0))
    yield from (keys, nbytes, errors)
    slots = _gauge("slots_migrating")
    slots.add_metric([], sum(m.count() for m in s.topology.migrations))
    yield slots
    duration = _gauge("migration_duration_seconds")
    duration.add_metric([], ms.last_duration)
    yield duration


def make_registry(sentinel: Sentinel) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SentinelCollector(sentinel))
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its Content-Type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
