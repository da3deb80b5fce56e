"""detector: SDOWN after down_after without a valid reply, ODOWN by quorum of fresh opinions."""

from __future__ import annotations

from sentinel.decide.detector import Flags, detect, down_voters, is_sdown
from sentinel.decide.model import NodeObs, NodeRole, PeerOpinion, Snapshot, Timing
from slotwarden.cluster.topology import Address, Shard, SlotMap

T = Timing.from_ms(down_after_ms=500, probe_interval_ms=100, failover_timeout_ms=3000)
M = Address("127.0.0.1", 7001)
R = Address("127.0.0.1", 7101)
TOPO = SlotMap.build(0, [Shard("a", M, (R,))], [[(0, 16383)]])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def tick(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def snap(now, nodes, opinions=()):
    return Snapshot(
        now=now,
        me="s1",
        topology=TOPO,
        nodes={n.addr: n for n in nodes},
        opinions={o.peer: o for o in opinions},
    )


def obs(addr, last_ok):
    return NodeObs(addr, last_ok=last_ok, role=NodeRole.MASTER, info_at=last_ok)


def test_sdown_exactly_after_down_after():
    c = Clock()
    o = obs(M, c.now)
    assert not is_sdown(o, c.now + 0.499, T)
    assert is_sdown(o, c.now + 0.5, T)


def test_hung_node_counts_as_down():
    # a hung node: the socket is open but no valid reply ever comes; last_ok stays old
    c = Clock()
    last = c.now
    flags = Flags()
    for _ in range(6):
        flags, _ = detect(flags, snap(c.tick(0.1), [obs(M, last), obs(R, c.now)]), T, 1)
    assert M in flags.sdown and R not in flags.sdown


def test_stall_shorter_than_down_after_triggers_nothing():
    c = Clock()
    flags = Flags()
    events = []
    last = c.now
    for i in range(40):
        c.tick(0.1)
        if i % 5 != 4:  # four probes in a row unanswered (0.4 s < 0.5 s), then an answer
            last_ok = last
        else:
            last = last_ok = c.now
        op = PeerOpinion("s2", c.now, down=frozenset({M}))
        flags, evs = detect(flags, snap(c.now, [obs(M, last_ok)], [op]), T, 2)
        events += evs
    assert events == []
    assert flags == Flags()


def test_odown_needs_quorum_including_self():
    c = Clock()
    start = c.now
    now = c.tick(0.6)
    nodes = [obs(M, start), obs(R, now)]
    only_peers = [PeerOpinion("s2", now, down=frozenset({M})), PeerOpinion("s3", now)]
    flags, events = detect(Flags(), snap(now, nodes, only_peers), T, quorum=3)
    assert flags.odown == frozenset() and [e.kind for e in events] == ["sdown"]
    flags, events = detect(flags, snap(now, nodes, only_peers), T, quorum=2)
    assert flags.odown == {"a"}
    assert [e.kind for e in events] == ["odown"]
    assert "127.0.0.1:7001" in events[0].text and "epoch 0" in events[0].text


def test_odown_requires_self_sdown():
    now = Clock().tick(0.6)
    nodes = [obs(M, now), obs(R, now)]
    peers = [PeerOpinion(p, now, down=frozenset({M})) for p in ("s2", "s3")]
    flags, _ = detect(Flags(), snap(now, nodes, peers), T, quorum=2)
    assert flags.odown == frozenset()


def test_stale_opinions_do_not_count():
    c = Clock()
    start = c.now
    old = PeerOpinion("s2", start, down=frozenset({M}))
    now = c.tick(T.opinion_max_age + 0.01)
    assert down_voters(M, "s1", True, [old], now, T) == ["s1"]
    flags, _ = detect(Flags(), snap(now, [obs(M, start - 1)], [old]), T, quorum=2)
    assert flags.odown == frozenset()
    fresh = PeerOpinion("s2", now - 0.05, down=frozenset({M}))
    flags, _ = detect(Flags(), snap(now, [obs(M, start - 1)], [fresh]), T, quorum=2)
    assert flags.odown == {"a"}


def test_own_id_in_opinions_is_not_counted_twice():
    now = Clock().now
    me_again = PeerOpinion("s1", now, down=frozenset({M}))
    assert down_voters(M, "s1", True, [me_again], now, T) == ["s1"]


def test_recovery_clears_flags_with_events():
    c = Clock()
    start = c.now
    now = c.tick(0.6)
    peers = [PeerOpinion("s2", now, down=frozenset({M}))]
    flags, _ = detect(Flags(), snap(now, [obs(M, start)], peers), T, 2)
    assert flags.odown == {"a"}
    now = c.tick(0.1)
    flags, events = detect(flags, snap(now, [obs(M, now)], peers), T, 2)
    assert flags == Flags()
    assert sorted(e.kind for e in events) == ["odown-cleared", "sdown-cleared"]


# -- issue 11 item 6: observations from before the epoch change ---------------------


def _promoted_topology() -> SlotMap:
    """Epoch 1: the replica R is the master, M its replica."""
    return SlotMap.build(1, [Shard("a", R, (M,))], [[(0, 16383)]])


def test_a_just_promoted_master_is_not_flagged_demoted_by_replies_read_before():
    # R was a replica for 100 s; the topology naming it master was adopted at t0; the
    # last INFO read (just before t0, or one in flight across it) still says "replica"
    t0 = 1000.0
    stale = NodeObs(R, last_ok=t0 - 0.05, role=NodeRole.REPLICA, master=M,
                    info_at=t0 - 0.05, role_since=t0 - 100)  # fmt: skip
    old_master = NodeObs(M, last_ok=t0 - 2, role=NodeRole.MASTER, info_at=t0 - 2)
    s = Snapshot(t0 + 0.05, "s1", _promoted_topology(), {R: stale, M: old_master},
                 topology_at=t0)  # fmt: skip
    flags, events = detect(Flags(), s, T, 1)
    assert R not in flags.demoted and R not in flags.down
    assert [e for e in events if e.kind == "demoted"] == []
    # an INFO read after the change, still "replica" (in flight across it): counted
    # from the change, not from role_since - still fine below down_after
    read_after = NodeObs(R, last_ok=t0 + 0.2, role=NodeRole.REPLICA, master=M,
                         info_at=t0 + 0.2, role_since=t0 - 100)  # fmt: skip
    s = Snapshot(t0 + 0.3, "s1", _promoted_topology(), {R: read_after, M: old_master},
                 topology_at=t0)  # fmt: skip
    flags, _ = detect(Flags(), s, T, 1)
    assert R not in flags.demoted


def test_a_master_that_really_reports_replica_after_the_change_is_still_demoted():
    t0 = 1000.0
    o = NodeObs(R, last_ok=t0 + 0.6, role=NodeRole.REPLICA, master=M,
                info_at=t0 + 0.6, role_since=t0 - 100)  # fmt: skip
    s = Snapshot(t0 + 0.6, "s1", _promoted_topology(), {R: o}, topology_at=t0)
    flags, events = detect(Flags(), s, T, 1)
    assert R in flags.demoted
    [e] = [e for e in events if e.kind == "demoted"]
    assert "600 ms since the topology named it master" in e.text
