"""The supervisor's ``/metrics``: the workers' Prometheus expositions merged into one.

Each worker renders its own metrics (router.control.metrics) on its admin
socket; `MetricsMerger.merge` turns their texts into one exposition with the
same names, labels and help, so dashboards and alerts built for a single
router read a router with workers unchanged:

- counters and histograms (every ``_total``, ``_bucket``, ``_sum``, ``_count``
  sample) are **summed**: they count events, and the router's events are the
  sum of its workers'. A worker that died and was restarted starts from zero;
  the merger keeps what it last read from the dead one and adds it, so a sum
  never goes down (what the dead worker counted after the last scrape is lost);
- gauges that are amounts (client connections, backend connections, in-flight
  requests) are **summed**;
- gauges that are states are **the minimum** over the workers — ``node_up``,
  ``ready``, ``config_last_reload_successful`` (1 only if every worker is) and
  ``topology_epoch`` (the worker furthest behind: what an alert should see) —
  or **the maximum** for ``build_info`` and ``node_role`` (the same in every
  worker). No per-worker label: the series a single router has, and no more,
  so the alerts and the dashboard (written for one router) read it unchanged and
  the series count does not grow with N; which worker is which is in the
  supervisor's ``GET /health`` and each worker's log lines (``worker N:``).
  Not prometheus-client's multiprocess mode: it needs the metrics declared as
  its own objects (ours are collector-built at scrape time from plain
  counters) and keeps dead processes' files; merging the texts keeps the hot
  path exactly as it is with one process.
  ``slotwarden_router_workers`` and ``..._worker_restarts_total`` are the
  supervisor's own (`SUPERVISOR_FAMILIES`): the workers' rows are left out.

Pure text work (no I/O): the supervisor fetches the texts.
Invariant: a sample's identity is its name and labels exactly as the workers
printed them; the merged text lists every family and sample in the order the
workers first printed them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

MIN_GAUGES = frozenset(
    {
        "slotwarden_router_node_up",
        "slotwarden_router_ready",
        "slotwarden_router_config_last_reload_successful",
        "slotwarden_router_topology_epoch",
    }
)
MAX_GAUGES = frozenset({"slotwarden_router_build_info", "slotwarden_router_node_role"})
# the supervisor's own families (router.control.metrics.worker_families): each worker's
# rows (1 process, 0 restarts) are left out of the merge
SUPERVISOR_FAMILIES = frozenset(
    {"slotwarden_router_workers", "slotwarden_router_worker_restarts_total"}
)


@dataclass(slots=True)
class Exposition:
    """One worker's text, parsed: family headers and samples, in order."""

    headers: dict[str, list[str]] = field(default_factory=dict)  # family -> HELP/TYPE lines
    types: dict[str, str] = field(default_factory=dict)  # family -> counter, gauge ...
    samples: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> family, value


def parse(text: str) -> Exposition:
    out = Exposition()
    family = ""
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                family = parts[2]
                out.headers.setdefault(family, []).append(line)
                if parts[1] == "TYPE" and len(parts) == 4:
                    out.types[family] = parts[3]
            continue
        key, _, value = line.rpartition(" ")
        try:
            out.samples[key] = (family, float(value))
        except ValueError:
            continue  # not a sample line we print; skipped rather than guessed
    return out


def _summed(kind: str) -> bool:
    return kind != "gauge"


def _is_created(key: str) -> bool:
    return key.split("{", 1)[0].endswith("_created")


class MetricsMerger:
    """Merges the workers' expositions; remembers the counts of workers that died."""

    def __init__(self) -> None:
        self.carried: dict[str, tuple[str, float]] = {}  # dead starts' counts: family, value
        self.last: dict[int, tuple[int, Exposition]] = {}  # index -> (generation, last read)

    def merge(self, texts: Iterable[tuple[int, int, str]]) -> str:
        """``texts``: (index, generation, exposition) of each worker that answered."""
        parsed: list[Exposition] = []
        for index, generation, text in texts:
            exp = parse(text)
            self._retire(index, generation)
            self.last[index] = (generation, exp)
            parsed.append(exp)
        headers: dict[str, list[str]] = {}
        types: dict[str, str] = {}
        order: dict[str, list[str]] = {}  # family -> sample keys, first-seen order
        values: dict[str, float] = {}
        for exp in parsed:
            for family in SUPERVISOR_FAMILIES:
                exp.headers.pop(family, None)
            for family, lines in exp.headers.items():
                if family not in headers:
                    headers[family] = lines
                    order[family] = []
                types.setdefault(family, exp.types.get(family, "untyped"))
            for key, (family, value) in exp.samples.items():
                if family in SUPERVISOR_FAMILIES:
                    continue
                if key not in values:
                    order.setdefault(family, []).append(key)
                    values[key] = value
                    continue
                kind = types.get(family, "untyped")
                if _is_created(key):  # a creation time: the first
                    values[key] = min(values[key], value)
                elif _summed(kind) or (family not in MIN_GAUGES and family not in MAX_GAUGES):
                    values[key] += value
                elif family in MIN_GAUGES:
                    values[key] = min(values[key], value)
                else:
                    values[key] = max(values[key], value)
        for key, (family, value) in self.carried.items():
            if key in values:
                values[key] += value
            elif family in headers:  # a series only the dead worker had
                order[family].append(key)
                values[key] = value
        lines: list[str] = []
        for family, lines_of in headers.items():
            lines.extend(lines_of)
            lines.extend(f"{key} {floatToGoString(values[key])}" for key in order[family])
        return "\n".join(lines) + "\n" if lines else ""

    def _retire(self, index: int, generation: int) -> None:
        """A new start of worker ``index``: keep what the previous one had counted."""
        previous = self.last.get(index)
        if previous is None or previous[0] == generation:
            return
        old = previous[1]
        for key, (family, value) in old.samples.items():
            if _summed(old.types.get(family, "untyped")) and not _is_created(key):
                self.carried[key] = (family, self.carried.get(key, (family, 0.0))[1] + value)
