"""Every Prometheus metric of the router, declared here with its help text.

The hot path only bumps plain integers in `RouterStats` (a dict lookup and
an add; the byte counters live in its ``io``, a `router.wire.hot.ByteCounters`
the C path adds to directly), which the connections reach through their `StatsSink` port
(router.wire.ports); `RouterCollector` turns them, and the router's live
state (clients, backend connections, topology), into metric families when
``/metrics`` is scraped. Names and labels follow deploy/prometheus/METRICS.md, the contract
the alerts and the dashboard rely on.

Invariant: label values are bounded — ``command`` is a command-table name or
``unknown``, ``node`` a topology address, ``shard`` a shard name; a command has
two series (ok, error), the error outcomes are counted without the command.
Latency is measured with ``time.perf_counter`` (router.wire.client).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from router.commands.spec import Shape
from router.control.clients import Clients
from router.control.reload import RouterReloader
from router.control.routes import RouteTable
from router.control.running import RunningConfig
from router.errors import is_not_supported
from router.wire.backend import CONNECTING, DOWN, UP
from router.wire.hot import ByteCounters, Histogram, PyHistogram
from slotwarden import __version__

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

OUTCOMES = (
    "ok",
    "error",
    "invalid",
    "crossslot",
    "rejected",
    "unsupported",
    "unavailable",
    "timeout",
)
OK, ERROR, INVALID, CROSSSLOT, REJECTED, UNSUPPORTED, UNAVAILABLE, TIMEOUT = range(8)
ROLES = ("master", "replica")  # slotwarden_router_node_role
# Latency is kept per routing shape; rejected requests are answered at once and not timed.
SHAPES = tuple(shape.value for shape in Shape if shape is not Shape.REJECTED)
BUCKETS = (  # sub-ms buckets: the latency clock is time.perf_counter (router.wire.client)
    0.00005,
    0.0001,
    0.00015,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
TOPOLOGY_SOURCES = ("push", "watch", "reload")
TOPOLOGY_RESULTS = ("applied", "unchanged", "rejected")


def classify(raw: bytes) -> int:
    """The outcome index of an error reply (``raw`` starts with ``-``)."""
    if raw.startswith(b"-CROSSSLOT"):
        return CROSSSLOT
    if raw.startswith(b"-CLUSTERDOWN"):
        return TIMEOUT if b"timed out" in raw else UNAVAILABLE
    if raw.startswith(b"-ERR command not allowed through the router"):
        return REJECTED
    if is_not_supported(raw):
        return UNSUPPORTED
    if raw.startswith(
        (
            b"-ERR unknown command",
            b"-ERR unknown subcommand",
            b"-ERR wrong number",
            b"-ERR Protocol error",
            b"-ERR syntax error",
        )
    ):
        return INVALID
    return ERROR


class RouterStats:
    """Counters the data path bumps; read only by the collector."""

    def __init__(self) -> None:
        self.commands: dict[str, list[int]] = {}
        # per routing shape; the C path observes them in place (router.wire.hot.Histogram)
        self.latency: dict[str, PyHistogram] = {shape: Histogram(BUCKETS) for shape in SHAPES}
        self.io = ByteCounters()  # bytes_in/bytes_out: the C hot path adds to them directly
        self.backend_errors: dict[str, int] = {}
        self.backend_timeouts: dict[str, int] = {}
        self.topology_updates: dict[tuple[str, str], int] = {
            (s, r): 0 for s in TOPOLOGY_SOURCES for r in TOPOLOGY_RESULTS
        }
        self.auth_failures: dict[str, int] = {"admin": 0, "client": 0}
        self.split_transactions = 0  # EXECs run as one MULTI/EXEC per shard (several)
        self.keys_moved = 0  # keys moved off a migration's source (router.wire.migrate)
        self.migrate_errors = 0  # keys that could not be moved (-TRYAGAIN)
        self.held_requests = 0  # requests held: a key in a preparing migration's slot
        self.held_timeouts = 0  # of those, answered -TRYAGAIN at command_timeout_ms

    @property
    def bytes_in(self) -> int:
        return int(self.io.bytes_in)

    @bytes_in.setter
    def bytes_in(self, value: int) -> None:
        self.io.bytes_in = value

    @property
    def bytes_out(self) -> int:
        return int(self.io.bytes_out)

    @bytes_out.setter
    def bytes_out(self, value: int) -> None:
        self.io.bytes_out = value

    def count(self, command: str, raw: bytes) -> None:
        """One reply for ``command`` went back to a client."""
        row = self.commands.get(command)
        if row is None:
            row = self.commands[command] = [0] * len(OUTCOMES)
        row[OK if raw[:1] != b"-" else classify(raw)] += 1

    def observe(self, shape: str, seconds: float) -> None:
        """A sampled request of routing ``shape`` took ``seconds`` to get its reply."""
        hist = self.latency.get(shape)
        if hist is not None:
            hist.observe(seconds)

    def backend_error(self, node: str) -> None:
        self.backend_errors[node] = self.backend_errors.get(node, 0) + 1

    def backend_timeout(self, node: str) -> None:
        self.backend_timeouts[node] = self.backend_timeouts.get(node, 0) + 1

    def topology_update(self, source: str, result: str) -> None:
        """A slot map from ``source``: ``result`` is one of `TOPOLOGY_RESULTS` (unchanged:
        the map in use, as a long poll that ended with no change answers)."""
        key = (source, result)
        self.topology_updates[key] = self.topology_updates.get(key, 0) + 1


class RouterCollector(Collector):
    def __init__(
        self,
        stats: RouterStats,
        running: RunningConfig,
        clients: Clients,
        routes: RouteTable,
        reloader: RouterReloader | None,
    ) -> None:
        self.stats = stats
        self.running = running
        self.clients = clients
        self.routes = routes
        self.reloader = reloader

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        clients = self.clients
        cluster = self.running.config.name
        info = GaugeMetricFamily(
            "slotwarden_router_build_info",
            "Always 1: router version and cluster name.",
            labels=["version", "cluster"],
        )
        info.add_metric([__version__, cluster], 1)
        yield info

        yield from self._commands()

        hist = HistogramMetricFamily(
            "slotwarden_router_command_seconds",
            "Time from a request being parsed to its reply being ready, by routing shape "
            "(single-key requests are sampled: about one per event-loop turn under load, "
            "each one when they come one at a time).",
            labels=["shape"],
        )
        for shape, h in stats.latency.items():
            cumulative = 0
            buckets = []
            for bound, n in zip((*BUCKETS, float("inf")), h.counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            hist.add_metric([shape], buckets, h.sum)
        yield hist

        yield CounterMetricFamily(
            "slotwarden_router_received_bytes", "Bytes read from clients.", value=stats.bytes_in
        )
        yield CounterMetricFamily(
            "slotwarden_router_sent_bytes", "Bytes written to clients.", value=stats.bytes_out
        )
        yield GaugeMetricFamily(
            "slotwarden_router_client_connections",
            "Client connections open now.",
            value=len(clients.by_id),
        )
        yield CounterMetricFamily(
            "slotwarden_router_client_connections",
            "Client connections accepted.",
            value=clients.total,
        )
        yield CounterMetricFamily(
            "slotwarden_router_client_connections_rejected",
            "Client connections refused because max_clients was reached.",
            value=clients.rejected,
        )
        yield CounterMetricFamily(
            "slotwarden_router_split_transactions",
            "Transactions run as one MULTI/EXEC on each of several shards "
            "(router.transactions: split).",
            value=stats.split_transactions,
        )
        yield CounterMetricFamily(
            "slotwarden_router_keys_moved",
            "Keys this router moved from a migrating slot's source shard to its target "
            "before sending a request (MIGRATE).",
            value=stats.keys_moved,
        )
        yield CounterMetricFamily(
            "slotwarden_router_migrate_errors",
            "Keys of migrating slots this router could not move (a MIGRATE or check error, "
            "or a key still being moved at the deadline): the client got -TRYAGAIN.",
            value=stats.migrate_errors,
        )
        yield CounterMetricFamily(
            "slotwarden_router_held_requests",
            "Requests held because a key is in a slot whose migration is still preparing.",
            value=stats.held_requests,
        )
        yield CounterMetricFamily(
            "slotwarden_router_held_timeouts",
            "Held requests answered -TRYAGAIN at command_timeout_ms (not executed).",
            value=stats.held_timeouts,
        )
        yield from self._backends()
        yield from self._topology()
        yield from worker_families(1, 1, 0)  # a router with workers: router.control.workers_admin

    def _commands(self) -> Iterator[Metric]:
        """Two series per command (ok, error) and one per error outcome over all commands:
        8 outcomes per command made ~900 series per router after a test run."""
        cmds = CounterMetricFamily(
            "slotwarden_router_commands",
            "Requests answered, by command and outcome (ok, or error: any error reply).",
            labels=["command", "outcome"],
        )
        by_outcome = [0] * len(OUTCOMES)
        for command, row in sorted(self.stats.commands.items()):
            cmds.add_metric([command, "ok"], row[OK])
            cmds.add_metric([command, "error"], sum(row) - row[OK])
            for i, n in enumerate(row):
                by_outcome[i] += n
        yield cmds
        errors = CounterMetricFamily(
            "slotwarden_router_command_errors",
            "Error replies to requests, by outcome (every command together).",
            labels=["outcome"],
        )
        for outcome, n in zip(OUTCOMES[1:], by_outcome[1:], strict=True):
            errors.add_metric([outcome], n)
        yield errors

    def _backends(self) -> Iterator[Metric]:
        routes = self.routes
        stats = self.stats
        states = GaugeMetricFamily(
            "slotwarden_router_backend_connections",
            "Backend connections by node and state.",
            labels=["node", "state"],
        )
        for addr, node in routes.nodes.items():
            conns = node.all_conns()
            for label, state in (("connected", UP), ("connecting", CONNECTING), ("down", DOWN)):
                states.add_metric([str(addr), label], sum(1 for c in conns if c.state == state))
        yield states
        slotmap = routes.route.slotmap
        node_up = GaugeMetricFamily(
            "slotwarden_router_node_up",
            "1 if the router has a working connection to the node, else 0; one row per "
            "node the router sends to (each shard's master in the slot map in use).",
            labels=["shard", "node"],
        )
        node_role = GaugeMetricFamily(
            "slotwarden_router_node_role",
            "The node's role in the slot map in use: 1 for its role, 0 for the other.",
            labels=["shard", "node", "role"],
        )
        inflight = GaugeMetricFamily(
            "slotwarden_router_inflight_requests",
            "Requests sent to the shard and not answered yet.",
            labels=["shard"],
        )
        ready = 1
        for shard, node in zip(slotmap.shards, routes.route.masters, strict=True):
            up = node.is_up()  # the test GET /ready makes (router.control.admin.ready)
            ready &= up
            node_up.add_metric([shard.name, str(shard.master)], 1 if up else 0)
            for addr in (shard.master, *shard.replicas):
                for role in ROLES:
                    is_it = role == ("master" if addr == shard.master else "replica")
                    node_role.add_metric([shard.name, str(addr), role], 1 if is_it else 0)
            inflight.add_metric([shard.name], sum(len(c.waiting) for c in node.all_conns()))
        yield node_up
        yield node_role
        yield inflight
        yield GaugeMetricFamily(
            "slotwarden_router_ready",
            "1 if GET /ready answers 200 (every shard's master connected), else 0.",
            value=ready,
        )
        errors = CounterMetricFamily(
            "slotwarden_router_backend_errors",
            "Backend connection failures: refused, reset, closed, unparsable reply.",
            labels=["node"],
        )
        timeouts = CounterMetricFamily(
            "slotwarden_router_backend_timeouts",
            "Backend connections dropped for a reply or connect timeout.",
            labels=["node"],
        )
        known = (
            {str(a) for a in routes.nodes} | set(stats.backend_errors) | set(stats.backend_timeouts)
        )
        for node_name in sorted(known):
            errors.add_metric([node_name], stats.backend_errors.get(node_name, 0))
            timeouts.add_metric([node_name], stats.backend_timeouts.get(node_name, 0))
        yield errors
        yield timeouts

    def _topology(self) -> Iterator[Metric]:
        stats = self.stats
        yield GaugeMetricFamily(
            "slotwarden_router_topology_epoch",
            "Epoch of the slot map in use.",
            value=self.routes.route.slotmap.epoch,
        )
        updates = CounterMetricFamily(
            "slotwarden_router_topology_updates",
            "Slot maps received, by source and result.",
            labels=["source", "result"],
        )
        for (source, result), value in sorted(stats.topology_updates.items()):
            updates.add_metric([source, result], value)
        yield updates
        reloader = self.reloader
        applied = reloader.applied if reloader else 0
        rejected = reloader.rejected if reloader else 0
        reloads = CounterMetricFamily(
            "slotwarden_router_config_reloads", "cluster.yaml reloads by result.", labels=["result"]
        )
        reloads.add_metric(["applied"], applied)
        reloads.add_metric(["rejected"], rejected)
        yield reloads
        last_ok = 1 if reloader is None or reloader.last_ok else 0
        yield GaugeMetricFamily(
            "slotwarden_router_config_last_reload_successful",
            "1 if the last reload was applied (1 at start), 0 if it was rejected.",
            value=last_ok,
        )
        auth = CounterMetricFamily(
            "slotwarden_router_auth_failures",
            "Requests with a missing or wrong secret or password.",
            labels=["endpoint"],
        )
        auth.add_metric(["admin"], stats.auth_failures["admin"])
        auth.add_metric(["client"], self.running.users.failures)
        yield auth


def worker_families(configured: int, running: int, restarts: int) -> list[Metric]:
    """The router's processes: one for a single router; with ``router.workers`` the
    supervisor's own (the workers' rows are left out of the merged /metrics)."""
    workers = GaugeMetricFamily(
        "slotwarden_router_workers",
        "Router worker processes: configured (router.workers) and running.",
        labels=["state"],
    )
    workers.add_metric(["configured"], configured)
    workers.add_metric(["running"], running)
    restarted = CounterMetricFamily(
        "slotwarden_router_worker_restarts",
        "Worker processes started again after they died (router.workers > 1).",
        value=restarts,
    )
    return [workers, restarted]


def make_registry(
    stats: RouterStats,
    running: RunningConfig,
    clients: Clients,
    routes: RouteTable,
    reloader: RouterReloader | None,
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(stats, running, clients, routes, reloader))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
