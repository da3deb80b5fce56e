"""What the sentinel does to the world, one side effect per module.

- `probe`: watch one Redis node (PING + INFO replication) into a `NodeObs`.
- `actuator`: change a node's replication role (REPLICAOF, ROLE, CLIENT PAUSE).
- `peers`: HTTP client to the peer sentinels and the routers.
- `state`: the persisted epoch, vote and topology (fsync, atomic rename).
- `nodeconn`: the one way to open a bounded, non-retrying connection to a Redis node.
- `mover`: move one migration's keys, source master -> target master (SCAN, MIGRATE).
- `bigkey`: move one big key in chunks under its lock.
- `prio`: move next the keys routers wait for (the migration's request set, SPOP).
- `acl`: the ACL rule of the sentinels' own backend user (what `probe`, `actuator` and
  `redisconf` send).
- `redisconf`: cluster.yaml's ``redis:`` settings on every node (CONFIG GET / SET), drift.

Invariant: a node, peer or router that is down, slow or answering garbage
never raises into the caller - every network call has a deadline and
reports failure as a value; `state` raises before anything is acted on.
Nothing here decides: the decisions are `sentinel.decide`'s, the
sequencing `sentinel.run`'s.
"""
