"""election: one vote per epoch, majority of all sentinels and quorum, role table, delays."""

from __future__ import annotations

import itertools
import random

import pytest

from sentinel.decide.election import (
    TRANSITIONS,
    ElectionInput,
    ElectionRole,
    VoteState,
    has_won,
    next_role,
    observe_epoch,
    on_vote_request,
    retry_delay,
    start_election,
    votes_needed,
)
from sentinel.decide.model import Timing
from sentinel.errors import ElectionError

T = Timing.from_ms(500, 100, 3000)


def test_one_vote_per_epoch():
    s = VoteState()
    s, ok = on_vote_request(s, 1, "s2")
    assert ok and s == VoteState(1, 1, "s2")
    s2, ok = on_vote_request(s, 1, "s3")
    assert not ok and s2 == s
    # the same candidate asking again (a retry) gets the same answer
    _, ok = on_vote_request(s, 1, "s2")
    assert ok


def test_no_vote_in_an_older_epoch():
    s = observe_epoch(VoteState(), 5)
    s2, ok = on_vote_request(s, 4, "s2")
    assert not ok and s2 == s
    s3, ok = on_vote_request(s, 5, "s2")
    assert ok and s3.voted_epoch == 5
    s4, ok = on_vote_request(s3, 7, "s3")
    assert ok and s4 == VoteState(7, 7, "s3")


def test_observe_epoch_never_goes_back():
    s = VoteState(5, 5, "s1")
    assert observe_epoch(s, 3) == s
    assert observe_epoch(s, 6).epoch == 6
    assert observe_epoch(s, 6).voted_epoch == 5


def test_candidate_votes_for_itself_and_blocks_others():
    s = start_election(VoteState(3, 2, "s2"), "s1")
    assert s == VoteState(4, 4, "s1")
    _, ok = on_vote_request(s, 4, "s2")
    assert not ok
    _, ok = on_vote_request(s, 5, "s2")
    assert ok


@pytest.mark.parametrize(
    ("sentinels", "quorum", "needed"),
    [(3, 2, 2), (3, 1, 2), (3, 3, 3), (5, 2, 3), (5, 4, 4), (1, 1, 1), (2, 1, 2), (4, 2, 3)],
)
def test_votes_needed_is_majority_of_all_and_quorum(sentinels, quorum, needed):
    assert votes_needed(sentinels, quorum) == needed
    assert has_won([f"s{i}" for i in range(needed)], sentinels, quorum)
    assert not has_won([f"s{i}" for i in range(needed - 1)], sentinels, quorum)


def test_duplicate_grants_count_once():
    assert not has_won(["s1", "s1", "s1"], 3, 2)


def test_split_vote_scenario():
    # three candidates in the same epoch each vote for themselves: nobody wins
    states = {p: start_election(VoteState(), p) for p in ("s1", "s2", "s3")}
    grants = {p: [p] for p in states}
    for cand in states:
        for voter in states:
            if voter != cand:
                states[voter], ok = on_vote_request(states[voter], 1, cand)
                if ok:
                    grants[cand].append(voter)
    assert not any(has_won(g, 3, 2) for g in grants.values())


def test_retry_delay_is_randomized_and_bounded():
    rng = random.Random(7)
    delays = [retry_delay(rng, T) for _ in range(200)]
    assert len(set(delays)) > 150
    assert all(0.3 < d <= 1.1 for d in delays)


def test_role_table():
    assert next_role(ElectionRole.FOLLOWER, ElectionInput.ODOWN) is ElectionRole.CANDIDATE
    assert next_role(ElectionRole.CANDIDATE, ElectionInput.WON) is ElectionRole.LEADER
    assert next_role(ElectionRole.CANDIDATE, ElectionInput.LOST) is ElectionRole.FOLLOWER
    assert next_role(ElectionRole.LEADER, ElectionInput.FINISHED) is ElectionRole.FOLLOWER
    with pytest.raises(ElectionError):
        next_role(ElectionRole.FOLLOWER, ElectionInput.WON)
    with pytest.raises(ElectionError):
        next_role(ElectionRole.LEADER, ElectionInput.ODOWN)
    assert all(isinstance(v, ElectionRole) for v in TRANSITIONS.values())


# -- issue 11 item 5: split votes ------------------------------------------------------

T1 = Timing.from_ms(1000, 100, 10_000)  # down_after 1 s, probe every 100 ms


def split_rate(timing: Timing, rounds: int = 4000, rtt: float = 0.015) -> float:
    """Share of failovers in which the first two of three sentinels stand within a
    vote round-trip of each other (a split vote), each seeing ODOWN within a probe
    interval of the others and then waiting its own `start_jitter`. Seeded: a count,
    not a clock."""
    from sentinel.decide.election import start_jitter

    world = random.Random(11)
    rngs = [random.Random(seed) for seed in (1, 2, 3)]  # each sentinel has its own
    splits = 0
    for _ in range(rounds):
        starts = sorted(
            world.uniform(0, timing.probe_interval) + start_jitter(rng, timing) for rng in rngs
        )
        splits += starts[1] - starts[0] < rtt
    return splits / rounds


def test_first_candidacy_jitter_spans_half_of_down_after():
    from sentinel.decide.election import start_jitter, start_window

    assert start_window(T1) == 0.5
    assert start_window(Timing.from_ms(200, 100, 3000)) == pytest.approx(0.3)  # >= 3 probes
    rng = random.Random(5)
    draws = [start_jitter(rng, T1) for _ in range(2000)]
    assert min(draws) >= 0 and max(draws) <= 0.5
    assert max(draws) > 0.45 and min(draws) < 0.05  # the whole window, not one probe interval


def test_each_sentinel_draws_its_own_jitter():
    from sentinel.decide.election import start_jitter

    firsts = [start_jitter(random.Random(seed), T1) for seed in (1, 2, 3)]
    assert len(set(firsts)) == 3
    gaps = sorted(firsts)
    assert all(b - a > 0.015 for a, b in itertools.pairwise(gaps))


def test_split_votes_are_rare():
    # two of three candidacies within 15 ms: ~40 % with the old one-probe-interval window
    assert split_rate(T1) < 0.12


def test_a_split_vote_retries_sooner_than_a_lost_election():
    from sentinel.decide.election import split_retry_delay, start_window

    rng = random.Random(3)
    split = [split_retry_delay(rng, T1) for _ in range(2000)]
    lost = [retry_delay(rng, T1) for _ in range(2000)]
    assert max(split) <= start_window(T1)
    assert sum(split) / len(split) < sum(lost) / len(lost) / 2
