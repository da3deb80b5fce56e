"""What the sentinel does to the world, one side effect per module.

- `probe`: watch one Redis node (PING + INFO replication) into a `NodeObs`.
- `actuator`: change a node's replication role (REPLICAOF, ROLE, CLIENT PAUSE).
- `peers`: HTTP client to the peer sentinels and the routers.
- `state`: the persisted epoch, vote and topology (fsync, atomic rename).

Invariant: each call has a deadline and reports failure as a value (or, for
`state`, an exception before anything is acted on); nothing here decides -
the decisions are `sentinel.decide`'s, the sequencing `sentinel.run`'s.
"""
