"""A master restarted without its data (issue 11 item 4): treated as failed, not as back.

Pure: `probe.parse_replication` notices the restart (`NodeObs.restart`), the detector
counts such a master down while a replica holds more (`detector.restarted_empty`),
`failover.start` promotes that replica, and the eligibility rules judge replicas against
what the master had before it restarted (`eligible.before_restart`).
"""

from __future__ import annotations

from dataclasses import replace

from sentinel.act.probe import parse_replication
from sentinel.decide.detector import Flags, detect
from sentinel.decide.eligible import why_not_eligible
from sentinel.decide.failover import Failover, refusal, start
from sentinel.decide.model import NodeObs, NodeRole, Restart, Snapshot, Timing
from slotwarden.cluster.topology import Address, Shard, SlotMap

T = Timing.from_ms(1000, 100, 10_000)
M = Address("127.0.0.1", 7001)
R = Address("127.0.0.1", 7101)
TOPO = SlotMap.build(3, [Shard("a", M, (R,))], [[(0, 16383)]])
NOW = 1000.0
OLD, NEW = "a" * 40, "b" * 40


def master_info(offset: int, replid: str) -> dict[str, object]:
    return {"role": "master", "master_repl_offset": offset, "master_replid": replid}


def replica_info(offset: int, replid: str = OLD, link: str = "down") -> dict[str, object]:
    return {
        "role": "replica",
        "master_host": M.host,
        "master_port": M.port,
        "master_link_status": link,
        "master_link_down_since_seconds": 0 if link == "up" else 1,
        "slave_repl_offset": offset,
        "master_replid": replid,
    }


def restarted_master() -> NodeObs:
    """Answered at offset 90,000 until NOW - 0.6 (kill -9), back at NOW - 0.2 empty."""
    obs = NodeObs(M, last_ok=NOW - 50)
    obs = parse_replication(master_info(80_000, OLD), obs, NOW - 1.0)
    obs = replace(obs, offsets=((NOW - 1.0, 80_000),))
    obs = parse_replication(master_info(90_000, OLD), obs, NOW - 0.6)
    obs = replace(obs, offsets=((NOW - 1.0, 80_000), (NOW - 0.6, 90_000)))
    return parse_replication(master_info(0, NEW), obs, NOW - 0.2)


def a_replica(offset: int = 90_000, replid: str = OLD) -> NodeObs:
    return parse_replication(replica_info(offset, replid), NodeObs(R, last_ok=NOW - 50), NOW)


def snap(*obs: NodeObs) -> Snapshot:
    return Snapshot(NOW, "s1", TOPO, {o.addr: o for o in obs}, topology_at=NOW - 100)


def test_the_probe_notices_a_master_that_came_back_with_less():
    m = restarted_master()
    assert m.role is NodeRole.MASTER and m.offset == 0 and m.replid == NEW
    assert m.restart == Restart(
        NOW - 0.2, OLD, 90_000, NOW - 0.6, ((NOW - 1.0, 80_000), (NOW - 0.6, 90_000))
    )
    # kept while it stays master, forgotten once it is a replica (converted)
    later = parse_replication(master_info(300, NEW), m, NOW)
    assert later.restart == m.restart
    assert parse_replication(replica_info(300, NEW, "up"), later, NOW).restart is None


def test_an_older_snapshot_with_the_same_replid_is_a_restart_too():
    obs = parse_replication(master_info(90_000, OLD), NodeObs(M, last_ok=0.0), NOW - 1)
    assert parse_replication(master_info(70_000, OLD), obs, NOW).restart is not None


def test_a_healthy_master_or_a_promotion_is_no_restart():
    obs = parse_replication(master_info(90_000, OLD), NodeObs(M, last_ok=0.0), NOW - 1)
    assert parse_replication(master_info(90_500, OLD), obs, NOW).restart is None
    # a new replication ID without a lower offset (a promotion seen between probes)
    assert parse_replication(master_info(90_500, NEW), obs, NOW).restart is None
    rep = parse_replication(replica_info(90_000), NodeObs(R, last_ok=0.0), NOW - 1)
    assert parse_replication(master_info(90_000, NEW), rep, NOW).restart is None


def test_an_emptied_master_whose_replica_holds_more_is_down():
    flags, events = detect(Flags(), snap(restarted_master(), a_replica()), T, quorum=1)
    assert M in flags.restarted and M in flags.down and M not in flags.sdown
    assert "a" in flags.odown
    kinds = [e.kind for e in events]
    assert "restarted-empty" in kinds and "odown" in kinds


def test_once_the_replica_resynchronised_there_is_nothing_left_to_save():
    flags, _ = detect(Flags(), snap(restarted_master(), a_replica(0, NEW)), T, quorum=1)
    assert not flags.down and not flags.odown


def test_the_replica_holding_the_data_is_promoted():
    plan = start("a", 4, snap(restarted_master(), a_replica()), T)
    assert isinstance(plan, Failover) and plan.candidate == R


def test_the_emptied_master_does_not_clear_a_refusal():
    # the replica lacked 2,000 bytes the master had acknowledged before it died
    behind = a_replica(88_000)
    why = why_not_eligible(behind, restarted_master(), NOW, T)
    assert why is not None and "88000 is 2000 bytes behind 90000" in why
    assert refusal("a", snap(restarted_master(), behind), T)


def test_a_live_master_that_restarted_long_ago_causes_no_false_refusal():
    # every replica resynchronised from it since: the normal rules apply
    m = replace(restarted_master(), offset=5_000, last_ok=NOW, info_at=NOW)
    assert why_not_eligible(a_replica(4_990, NEW), m, NOW, T) is None
