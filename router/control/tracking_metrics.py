"""The metrics of client-side caching (CLIENT TRACKING, router.wire.tracking), on /metrics.

A collector of its own, registered beside router.control.metrics.RouterCollector
by router.app; it reads the tracker's counts when scraped (deploy/prometheus/METRICS.md):

    slotwarden_router_tracking_clients / _keys          gauges: now
    slotwarden_router_tracking_invalidations_total     invalidation messages sent to clients
    slotwarden_router_tracking_evictions_total         keys evicted, the table full
    slotwarden_router_tracking_flushes_total{reason}   shard_flush | connection_lost | topology
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from router.wire.tracking import FLUSH_REASONS, Tracker


class TrackingCollector(Collector):
    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def collect(self) -> Iterator[Metric]:
        t = self.tracker
        yield GaugeMetricFamily(
            "slotwarden_router_tracking_clients",
            "Clients of this router with CLIENT TRACKING on.",
            value=len(t.clients),
        )
        yield GaugeMetricFamily(
            "slotwarden_router_tracking_keys",
            "Keys in this router's tracking table (read by clients in default mode).",
            value=len(t.table),
        )
        yield CounterMetricFamily(
            "slotwarden_router_tracking_invalidations",
            "Invalidation messages sent to clients (keys or a null).",
            value=t.invalidations,
        )
        yield CounterMetricFamily(
            "slotwarden_router_tracking_evictions",
            "Keys evicted from the tracking table because it was full "
            "(router.tracking_table_max_keys); their clients were sent an invalidation.",
            value=t.evictions,
        )
        flushes = CounterMetricFamily(
            "slotwarden_router_tracking_flushes",
            "Flushes (a null invalidation to every client that may hold keys of a shard), "
            "by reason.",
            labels=["reason"],
        )
        for reason in FLUSH_REASONS:
            flushes.add_metric([reason], t.flushes[reason])
        yield flushes
