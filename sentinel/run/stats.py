"""The counters one sentinel keeps for ``GET /metrics``, bumped where the event is seen.

Owns `SentinelStats`: votes granted, failovers led to their end (and the
last one's duration), failovers refused (no eligible replica), cluster.yaml
reloads, HTTP requests refused for the secret. The metrics that expose them
- names, types, labels, help texts - are declared in
`sentinel.http.metrics`, the one module for all of them; these plain numbers
sit below it so the run cycle (`loop`, `leader`, `reload`) and the HTTP
server can count without importing the exposition. Invariant: plain numbers
only (no I/O, no metric objects, no metric names); nothing here is ever
reset while the process runs.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field


@dataclass
class SentinelStats:
    """The counters of one sentinel (and the one gauge that only events set)."""

    votes_cast: collections.Counter[str] = field(default_factory=collections.Counter)
    failovers: collections.Counter[tuple[str, str, str]] = field(
        default_factory=collections.Counter
    )  # (shard, kind, outcome)
    failover_duration: dict[str, float] = field(default_factory=dict)  # shard -> seconds
    reloads: collections.Counter[str] = field(default_factory=collections.Counter)
    last_reload_ok: bool = True
    auth_failures: int = 0
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)  # by shard

    def failover_ended(self, shard: str, planned: bool, done: bool, seconds: float) -> None:
        kind = "switchover" if planned else "failover"
        self.failovers[(shard, kind, "done" if done else "aborted")] += 1
        self.failover_duration[shard] = seconds

    def reloaded(self, applied: bool) -> None:
        self.reloads["applied" if applied else "rejected"] += 1
        self.last_reload_ok = applied
