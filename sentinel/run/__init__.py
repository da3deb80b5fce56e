"""One running sentinel: the run cycle, its leader, its live config, its events and counters.

- `stats`: `SentinelStats`, the plain counters ``GET /metrics`` exposes.
- `events`: `EventLog`, one sentence per transition, logged and streamed.
- `reload`: `SentinelReloader`, live edits of cluster.yaml (validate, then apply).
- `refusals`: `Refusals` (ODOWN shards no replica of which may be promoted: one
  failover-refused event each) and `Backoff` (aborted attempts in a row).
- `steps`: one failover step performed through the actuator, and its event.
- `leader`: `Leader`, elections and the failovers and edits it publishes;
  `LeaderHost`, the Protocol through which it reaches its sentinel.
- `movers`: `Movers`, which migrations this sentinel moves (one mover task each).
- `loop`: `Sentinel`, the run cycle (snapshot -> decide -> act) and its tasks.

Invariant: imports run one way inside this layer too - `loop` imports the
others, none of them imports `loop` (callbacks go through `LeaderHost` and
the `apply_config` callable); every task belongs to `Sentinel.run`'s TaskGroup.
"""
