"""probe.parse_replication: INFO replication (as redis-py parses it) -> NodeObs."""

from __future__ import annotations

from sentinel.act.probe import parse_replication
from sentinel.decide.model import NodeObs, NodeRole
from slotwarden.cluster.topology import Address

A = Address("127.0.0.1", 7101)

REPLICA = {
    "role": "slave",
    "master_host": "127.0.0.1",
    "master_port": 7001,
    "master_link_status": "down",
    "slave_repl_offset": 1234,
    "master_link_down_since_seconds": -1,
    "slave_priority": 0,
}
MASTER = {"role": "master", "connected_slaves": 1, "master_repl_offset": 99}


def test_replica_fields():
    o = parse_replication(REPLICA, NodeObs(A, last_ok=1.0), 5.0)
    assert o.role is NodeRole.REPLICA and o.master == Address("127.0.0.1", 7001)
    assert o.offset == 1234 and o.priority == 0 and not o.link_up
    assert o.link_down_s == 0.0  # -1: never connected, not "down for ages"
    assert o.last_ok == o.info_at == o.role_since == 5.0


def test_role_since_moves_only_on_a_role_change():
    o = parse_replication(REPLICA, NodeObs(A, last_ok=1.0), 5.0)
    o = parse_replication(dict(REPLICA, slave_repl_offset=2000), o, 6.0)
    assert o.role_since == 5.0 and o.last_ok == 6.0
    o = parse_replication(MASTER, o, 7.0)
    assert o.role is NodeRole.MASTER and o.master is None and o.offset == 99
    assert o.role_since == 7.0
    o = parse_replication(dict(REPLICA, master_port=7002), o, 8.0)
    assert o.role_since == 8.0
