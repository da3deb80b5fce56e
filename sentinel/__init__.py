"""slotwarden's control plane: quorum failure detection, election and failover (issue 3).

The package map, from the bottom up; a module imports its own layer and the
layers below it, never one above (`tests/unit/test_layers.py` checks it,
``TYPE_CHECKING`` and function-local imports included):

- `errors`: `SentinelError`, the one root (under `SlotwardenError`), and its kinds.
- `decide/` (pure, no asyncio/aiohttp/socket): `model` (snapshot types,
  actions, events), `detector` (SDOWN/ODOWN), `election` (epochs, votes,
  role table), `failover` (replica choice, step machine, reconcile),
  `reconfigure` (a cluster.yaml edit merged with the failover state).
- `act/` (one side effect each): `probe` (watch a node), `actuator` (change
  a node's role), `peers` (HTTP client to peers and routers), `state` (the
  persisted epoch, vote and topology).
- `run/` (one running sentinel): `stats` (the counters), `events` (the
  event log), `reload` (live edits of cluster.yaml), `leader` (the `Leader`:
  elections, and the failovers and edits it publishes), `loop` (`Sentinel`:
  the run cycle, which holds a `Leader` and a `SentinelReloader`). The
  leader reaches its sentinel through the `LeaderHost` Protocol it
  declares, the reloader through the callable it is handed: nothing in
  run/ imports `loop`.
- `http/`: `api` (the aiohttp server), `metrics` (every metric, with help text).
- `main` (``slotwarden sentinel``), then `status` (``slotwarden status``)
  and `manual` (``slotwarden failover``).

The model shared with the router is `slotwarden.cluster`; `router` is never imported.
"""
