"""Sending a split transaction's EXEC: one ``MULTI … EXEC`` per shard, replies merged.

The I/O half of ``router.transactions: split`` (the plan and the merge are
`router.decide.split_txn`). Each shard's part goes out as ``MULTI``, its
commands and ``EXEC`` queued back to back on one connection (the client's
WATCH connection for the watched shard, else the shared one), so they leave
in one contiguous write and nothing can come between them; the replies of
``MULTI`` and ``+QUEUED`` are dropped, the shard's EXEC reply is one part of
a `router.decide.fanin.FanIn` whose merger is `split_txn.assemble`.

    send_all:           every shard at once
    send_watched_first: the watched shard alone; nil / error / anything but its
                        array → that is the answer, nothing sent elsewhere;
                        committed → the other shards at once, then the merge

Invariant: with WATCH, no other shard receives anything before the watched
shard's EXEC has answered an array (its part committed), so a WATCH
conflict never follows a partial commit.
"""

from __future__ import annotations

from collections.abc import Callable

from router.decide import split_txn, txn
from router.decide.fanin import FanIn, FanInPart
from router.decide.split_txn import SplitPlan
from router.wire.ports import Sender, Waiter
from slotwarden.resp.replies import split_array


class _Ignore:
    """The replies nobody reads: MULTI's +OK and each +QUEUED."""

    __slots__ = ()

    def on_reply(self, raw: bytes) -> None:
        pass


IGNORE = _Ignore()


def send_part(conn: Sender, requests: list[bytes], waiter: Waiter) -> None:
    """``MULTI``, ``requests`` and ``EXEC`` back to back on ``conn``; ``waiter`` gets
    EXEC's reply."""
    conn.send(txn.MULTI_RAW, IGNORE)
    for raw in requests:
        conn.send(raw, IGNORE)
    conn.send(txn.EXEC_RAW, waiter)


def send_all(
    plan: SplitPlan, names: list[str], conn_of: Callable[[int], Sender], pending: Waiter
) -> None:
    """Every shard's part at once; ``pending`` gets the merged reply."""
    fan = FanIn(
        len(plan.order), lambda parts: split_txn.assemble(plan, parts, names), pending.on_reply
    )
    for index, shard in enumerate(plan.order):
        send_part(conn_of(shard), plan.requests[shard], FanInPart(fan, index))


def send_watched_first(
    plan: SplitPlan,
    names: list[str],
    conn_of: Callable[[int], Sender],
    done: Callable[[bytes], None],
) -> None:
    """The watched shard (``plan.order[0]``) first, the others only once it committed;
    ``done`` gets the reply."""
    send_part(
        conn_of(plan.order[0]),
        plan.requests[plan.order[0]],
        _WatchedFirst(plan, names, conn_of, done),
    )


class _WatchedFirst:
    """The watched shard's EXEC reply: answer it, or go on with the other shards."""

    __slots__ = ("conn_of", "done", "names", "plan")

    def __init__(
        self,
        plan: SplitPlan,
        names: list[str],
        conn_of: Callable[[int], Sender],
        done: Callable[[bytes], None],
    ) -> None:
        self.plan = plan
        self.names = names
        self.conn_of = conn_of
        self.done = done

    def on_reply(self, raw: bytes) -> None:
        plan = self.plan
        first = plan.order[0]
        items = None if split_txn.is_nil(raw) else split_array(raw)  # (*-1 splits as [])
        if items is None or len(items) != len(plan.requests[first]):
            # nil (WATCH conflict), -EXECABORT, -CLUSTERDOWN ...: the other shards were
            # sent nothing, so the watched shard's answer is the whole answer
            self.done(raw)
            return
        names = self.names
        rest = plan.order[1:]
        fan = FanIn(
            len(rest), lambda parts: split_txn.assemble(plan, [raw, *parts], names), self.done
        )
        for index, shard in enumerate(rest):
            send_part(self.conn_of(shard), plan.requests[shard], FanInPart(fan, index))
