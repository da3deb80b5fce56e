"""election: a voter is freed from a silent leader after down_after; a leader acts only
while a majority answered within its lease, which ends before the voters are freed."""

from __future__ import annotations

from sentinel.decide.election import (
    leader_lease,
    leader_silent,
    lease_holds,
    term_ended,
    wait_after_vote,
)
from sentinel.decide.model import Timing

# down_after 1 s, probe 100 ms, failover_timeout 10 s
T = Timing.from_ms(1000, 100, 10000)


def test_a_leader_killed_right_after_its_election_frees_its_voters_after_down_after():
    voted_at = 100.0
    # never heard after the vote (killed right after `elected`)
    assert not leader_silent(100.9, voted_at, 99.95, T)
    assert leader_silent(101.01, voted_at, 99.95, T)
    assert leader_silent(101.01, voted_at, None, T)
    # far sooner than the failover_timeout hold of a live leader
    assert wait_after_vote(T) == 10.0


def test_a_leader_that_keeps_answering_keeps_its_voters_back():
    voted_at = 100.0
    for now in (101.5, 104.0, 109.9):
        assert not leader_silent(now, voted_at, now - 0.2, T)
    # it stops answering: silence counts from its last answer
    assert not leader_silent(105.9, voted_at, 105.0, T)
    assert leader_silent(106.01, voted_at, 105.0, T)


def test_the_lease_ends_before_voters_see_the_leader_silent():
    assert 0 < leader_lease(T) < T.down_after
    assert leader_lease(Timing.from_ms(500, 100, 3000)) < 0.5


def test_a_leader_acts_only_while_a_majority_answered_within_its_lease():
    now = 50.0
    fresh, stale = now - 0.1, now - leader_lease(T) - 0.01
    # 3 sentinels, quorum 2: itself + one fresh peer is a majority
    assert lease_holds(now, {"s2": fresh, "s3": stale}, 3, 2, T)
    assert lease_holds(now, {"s2": fresh}, 3, 2, T)
    # partitioned: no peer answered within the lease -> it must stop acting
    assert not lease_holds(now, {"s2": stale, "s3": stale}, 3, 2, T)
    assert not lease_holds(now, {}, 3, 2, T)
    # 5 sentinels: needs two fresh peers
    assert not lease_holds(now, {"s2": fresh, "s3": stale, "s4": stale}, 5, 3, T)
    assert lease_holds(now, {"s2": fresh, "s3": fresh, "s4": stale}, 5, 3, T)
    # a quorum above the majority counts too
    assert not lease_holds(now, {"s2": fresh, "s3": stale}, 3, 3, T)


def test_a_voter_is_freed_once_its_leader_says_it_ended_that_term():
    # the leader of epoch 5 won it for an edit another leader had published at epoch 4:
    # nothing to publish, so no topology of epoch 5 will ever free its voters
    assert not term_ended(5, 0)  # still leading (or an older term)
    assert not term_ended(5, 4)
    assert term_ended(5, 5)
    assert term_ended(5, 7)  # it has led later terms since
    assert not term_ended(0, 0)  # no vote held
