"""router.control.aggregate: the workers' /metrics merged into one exposition."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from router.control.aggregate import MetricsMerger


def worker(gets: int, clients: int, up: int, epoch: int, bucket: int) -> str:
    return f"""# HELP slotwarden_router_build_info Always 1.
# TYPE slotwarden_router_build_info gauge
slotwarden_router_build_info{{cluster="t",version="0.1.0"}} 1.0
# HELP slotwarden_router_commands_total Requests answered.
# TYPE slotwarden_router_commands_total counter
slotwarden_router_commands_total{{command="get",outcome="ok"}} {gets}.0
# HELP slotwarden_router_command_seconds Latency.
# TYPE slotwarden_router_command_seconds histogram
slotwarden_router_command_seconds_bucket{{le="0.001",shape="single"}} {bucket}.0
slotwarden_router_command_seconds_bucket{{le="+Inf",shape="single"}} {bucket}.0
slotwarden_router_command_seconds_count{{shape="single"}} {bucket}.0
slotwarden_router_command_seconds_sum{{shape="single"}} 0.5
# HELP slotwarden_router_client_connections Client connections open now.
# TYPE slotwarden_router_client_connections gauge
slotwarden_router_client_connections {clients}.0
# HELP slotwarden_router_node_up 1 if connected.
# TYPE slotwarden_router_node_up gauge
slotwarden_router_node_up{{node="127.0.0.1:1",shard="a"}} {up}.0
# HELP slotwarden_router_topology_epoch Epoch.
# TYPE slotwarden_router_topology_epoch gauge
slotwarden_router_topology_epoch {epoch}.0
"""


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_and_histograms_sum_amounts_sum_states_take_min_or_max() -> None:
    merged = MetricsMerger().merge([(0, 0, worker(3, 2, 1, 7, 4)), (1, 0, worker(5, 1, 0, 6, 6))])
    v = values(merged)  # a valid exposition: Prometheus's own parser reads it
    assert v[("slotwarden_router_commands_total", (("command", "get"), ("outcome", "ok")))] == 8
    assert v[("slotwarden_router_command_seconds_count", (("shape", "single"),))] == 10
    assert v[("slotwarden_router_command_seconds_sum", (("shape", "single"),))] == 1.0
    assert v[("slotwarden_router_client_connections", ())] == 3
    assert v[("slotwarden_router_node_up", (("node", "127.0.0.1:1"), ("shard", "a")))] == 0
    assert v[("slotwarden_router_topology_epoch", ())] == 6  # the worker furthest behind
    assert v[("slotwarden_router_build_info", (("cluster", "t"), ("version", "0.1.0")))] == 1
    assert merged.count("# TYPE slotwarden_router_commands_total counter") == 1


def test_a_restarted_worker_does_not_make_a_counter_go_down() -> None:
    merger = MetricsMerger()
    merger.merge([(0, 0, worker(10, 1, 1, 0, 2)), (1, 0, worker(5, 1, 1, 0, 1))])
    # worker 0 died and was started again (generation 1): it counts from zero
    v = values(merger.merge([(0, 1, worker(1, 1, 1, 0, 1)), (1, 0, worker(6, 1, 1, 0, 1))]))
    assert v[("slotwarden_router_commands_total", (("command", "get"), ("outcome", "ok")))] == 17
    assert v[("slotwarden_router_command_seconds_count", (("shape", "single"),))] == 4
    assert v[("slotwarden_router_client_connections", ())] == 2  # gauges are not carried


def test_no_worker_answering_is_an_empty_exposition() -> None:
    assert MetricsMerger().merge([]) == ""
