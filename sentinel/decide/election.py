"""Leader election: epochs, one vote per epoch, and the election role state machine.

Pure. `VoteState` is what must be persisted (current epoch + the last vote)
before a vote is answered; `on_vote_request` is the only way to grant one:
it never grants two different candidates in the same epoch and never votes
in an epoch older than the current one, so a sentinel restarted from its
persisted `VoteState` cannot vote twice. A candidate wins with
`votes_needed` = max(majority of *all* configured sentinels, quorum) grants,
its own included. A first candidacy waits `start_jitter` (uniform over
`start_window`, Raft-style) so sentinels rarely split the vote; a split vote
retries after `split_retry_delay` (a fresh draw), any other loss after
`retry_delay`. A vote for another holds us back for `wait_after_vote` unless
that leader falls silent for ``down_after`` (`leader_silent`); a leader acts
only while its lease holds (`lease_holds`: a majority answered within
`leader_lease` < ``down_after``), so a leader cut off from the others stops
before they elect another. An `ElectionRole` moves only along `TRANSITIONS` on
an `ElectionInput`; a missing ``(role, input)`` pair is an `ElectionError`. No
asyncio, aiohttp or socket here.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from sentinel.decide.model import Timing
from sentinel.errors import ElectionError


class ElectionRole(Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


class ElectionInput(Enum):
    ODOWN = "odown"  # a master is ODOWN and we may start an election
    MANUAL = "manual"  # an operator asked for a planned switchover
    RECONFIGURE = "reconfigure"  # a cluster.yaml edit waits for an epoch to be published
    WON = "won"  # enough votes for our epoch
    LOST = "lost"  # not enough votes (split, refused, or peers unreachable)
    HIGHER_EPOCH = "higher-epoch"  # someone else is ahead of us
    FINISHED = "finished"  # the failover we led is done or aborted


TRANSITIONS: dict[tuple[ElectionRole, ElectionInput], ElectionRole] = {
    (ElectionRole.FOLLOWER, ElectionInput.ODOWN): ElectionRole.CANDIDATE,
    (ElectionRole.FOLLOWER, ElectionInput.MANUAL): ElectionRole.CANDIDATE,
    (ElectionRole.FOLLOWER, ElectionInput.RECONFIGURE): ElectionRole.CANDIDATE,
    (ElectionRole.FOLLOWER, ElectionInput.HIGHER_EPOCH): ElectionRole.FOLLOWER,
    (ElectionRole.CANDIDATE, ElectionInput.WON): ElectionRole.LEADER,
    (ElectionRole.CANDIDATE, ElectionInput.LOST): ElectionRole.FOLLOWER,
    (ElectionRole.CANDIDATE, ElectionInput.HIGHER_EPOCH): ElectionRole.FOLLOWER,
    (ElectionRole.LEADER, ElectionInput.FINISHED): ElectionRole.FOLLOWER,
    # a leader finishes or aborts its failover; the failover decides which
    (ElectionRole.LEADER, ElectionInput.HIGHER_EPOCH): ElectionRole.LEADER,
}


def next_role(role: ElectionRole, event: ElectionInput) -> ElectionRole:
    try:
        return TRANSITIONS[(role, event)]
    except KeyError:
        raise ElectionError(f"no transition from {role.value} on {event.value}") from None


@dataclass(frozen=True, slots=True)
class VoteState:
    """Persisted before any vote is answered."""

    epoch: int = 0  # current epoch: the highest seen or started
    voted_epoch: int = 0  # epoch of our last vote (0: never voted)
    voted_for: str | None = None


def observe_epoch(state: VoteState, epoch: int) -> VoteState:
    """Move the current epoch forward to ``epoch`` (never back)."""
    return replace(state, epoch=epoch) if epoch > state.epoch else state


def on_vote_request(state: VoteState, epoch: int, candidate: str) -> tuple[VoteState, bool]:
    """Answer a request for ``candidate`` to lead ``epoch``: (new state, granted).

    Repeating a granted request is granted again (idempotent, for retries).
    """
    if epoch < state.epoch:
        return state, False
    if state.voted_epoch == epoch:
        return state, state.voted_for == candidate
    if state.voted_epoch > epoch:  # cannot happen with epoch >= state.epoch, but be explicit
        return state, False
    return VoteState(epoch=epoch, voted_epoch=epoch, voted_for=candidate), True


def start_election(state: VoteState, me: str) -> VoteState:
    """Bump the epoch and vote for ourselves in it."""
    epoch = state.epoch + 1
    return VoteState(epoch=epoch, voted_epoch=epoch, voted_for=me)


def votes_needed(sentinels: int, quorum: int) -> int:
    return max(sentinels // 2 + 1, quorum)


def has_won(grants: Iterable[str], sentinels: int, quorum: int) -> bool:
    """``grants``: ids that granted us the epoch (ourselves included)."""
    return len(set(grants)) >= votes_needed(sentinels, quorum)


def start_window(timing: Timing) -> float:
    """How far apart the sentinels' first candidacies are spread (Raft-style): half of
    ``down_after``, at least 3 probe intervals. All sentinels see a master go ODOWN
    within a probe interval or two; drawn over this window, two of three candidacies
    fall within a vote round-trip (~15 ms under load) of each other in ~8 % of the
    failovers at down_after 1 s (the old one-probe-interval window: ~28 %; a seeded
    count in the unit tests), and the first one starts ~window / 4 after ODOWN on
    average."""
    return max(timing.down_after / 2, 3 * timing.probe_interval)


def start_jitter(rng: random.Random, timing: Timing) -> float:
    """Delay before a first candidacy, uniform in [0, `start_window`]: each sentinel
    draws its own (its own ``random.Random``), so sentinels seeing ODOWN together rarely
    collide."""
    return rng.uniform(0, start_window(timing))


def retry_delay(rng: random.Random, timing: Timing) -> float:
    """Delay before trying again after a lost election (peers unreachable or refusing)."""
    return rng.uniform(3 * timing.probe_interval, 10 * timing.probe_interval) + 0.1


def split_retry_delay(rng: random.Random, timing: Timing) -> float:
    """Delay before trying again after a split vote (every peer answered, some had voted
    for another candidate in our epoch): a fresh draw over `start_window`, as Raft does,
    so the next epoch is usually won by whoever draws first instead of costing a whole
    `retry_delay`."""
    return start_jitter(rng, timing)


def abort_backoff(rng: random.Random, timing: Timing, failures: int) -> float:
    """Delay before standing again for a shard whose last ``failures`` attempts in a row
    were aborted: `retry_delay` plus 5 probe intervals, doubled per failure after the
    first, at most ``failover_timeout`` (so an outage that no failover can fix costs a
    handful of epochs, not one every few hundred milliseconds)."""
    first = retry_delay(rng, timing) + 5 * timing.probe_interval
    return min(first * 2 ** max(failures - 1, 0), max(timing.failover_timeout, first))


def wait_after_vote(timing: Timing) -> float:
    """After voting for someone else we leave them this long to finish the failover,
    as long as they keep answering (see `leader_silent`)."""
    return timing.failover_timeout


def leader_silent(now: float, voted_at: float, last_heard: float | None, timing: Timing) -> bool:
    """Has the leader we voted for (at ``voted_at``) been silent for ``down_after``?

    ``last_heard``: when it last answered us (``GET /opinion``), None if never.
    Silence counts from the vote or the last answer, whichever is later, so a
    leader killed right after its election frees its voters after about
    ``down_after`` instead of holding them for ``failover_timeout``.
    """
    since = voted_at if last_heard is None else max(voted_at, last_heard)
    return now - since > timing.down_after


def term_ended(vote_epoch: int, led_epoch: int) -> bool:
    """Has the leader we voted for in ``vote_epoch`` ended that term? ``led_epoch``: the
    last epoch it says (in its opinion) it led to the end with nothing in flight. A term
    that published frees its voters through the topology; this covers one that had
    nothing to publish (an edit another leader published first), which would otherwise
    hold them for ``failover_timeout``."""
    return vote_epoch > 0 and led_epoch >= vote_epoch


def leader_lease(timing: Timing) -> float:
    """How long a leader keeps acting without hearing from a majority of sentinels:
    half of ``down_after``, so a leader cut off from the others stops before they
    see it silent (`leader_silent`) and elect another."""
    return timing.down_after / 2


def lease_holds(
    now: float,
    heard: Mapping[str, float],
    sentinels: int,
    quorum: int,
    timing: Timing,
) -> bool:
    """May a leader still act? ``heard``: peer id -> when it last answered us (a vote
    grant or an opinion). True while enough peers answered within `leader_lease`
    that with ourselves they are `votes_needed`."""
    fresh = sum(1 for at in heard.values() if now - at <= leader_lease(timing))
    return fresh + 1 >= votes_needed(sentinels, quorum)
