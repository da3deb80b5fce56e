"""The sentinel's decisions, pure: a frozen snapshot and ``now`` in, new state and actions out.

- `model`: the vocabulary - node observations, peer opinions, timings, snapshot, actions, events.
- `detector`: SDOWN per node, ODOWN per shard master.
- `election`: epochs, one vote per epoch, the election role table.
- `eligible`: which replicas may be promoted without losing the shard's data.
- `failover`: replica choice, the failover step machine, publication, reconcile.
- `reconfigure`: a cluster.yaml edit merged with the failover state.
- `migration`: the background mover's decisions (who moves, rate limit, batches, progress).

Invariant: nothing here awaits, sleeps or touches the network (no asyncio,
aiohttp or socket; `tests/unit/test_layers.py` checks it); imports only
`sentinel.errors` and `slotwarden.cluster`.
"""
