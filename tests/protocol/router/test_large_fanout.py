"""A very large fan-out does not stall the other clients (issue 10, item 5).

Protocol tier, with the harness of test_client_protocol (a recording fake
client transport, a real Router, real redis-server shards). Client A sends a
DEL of 200,000 keys in one read; client B's requests arrive in the very next
event-loop callback. The router splits A's keys a piece per loop turn
(router.decide.large), so it serves B in between: B's PING is answered before
A's reply, and B's GET of a key that A deletes reaches the shard first and
still sees the value (A's parts go out only once every key is split, each
shard's part whole). Before, A's request was split and sent in one callback,
so B's GET always came after A's DEL. Ordering only, no clock.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
from test_client_protocol import cmd, count_replies, keys_on, serving, wait_until

from router.decide.large import PIECE_KEYS

pytestmark = pytest.mark.timeout(120)


async def test_other_client_is_served_while_a_huge_fanout_is_split(farm) -> None:
    victim = keys_on(0, 1, "victim-")[0]
    keys = [b"big%d" % i for i in range(200_000)]
    assert len(keys) > 3 * PIECE_KEYS
    async with serving(farm) as h:
        redis.Redis(port=h.masters[0].port).set(victim, b"still here")
        a, a_out = h.connect()
        b, b_out = h.connect()
        loop = asyncio.get_running_loop()
        a.data_received(cmd(b"DEL", *keys[:100_000], victim, *keys[100_000:]))
        loop.call_soon(b.data_received, cmd(b"PING") + cmd(b"GET", victim))
        await wait_until(lambda: count_replies(bytes(b_out.data)) == 2, "B's replies")
        assert bytes(b_out.data) == b"+PONG\r\n$10\r\nstill here\r\n"
        assert count_replies(bytes(a_out.data)) == 0  # A's reply is not out yet
        await wait_until(lambda: count_replies(bytes(a_out.data)) == 1, "A's reply")
        assert bytes(a_out.data) == b":1\r\n"  # only the victim existed
        assert a_out.events == ["pause", "resume"]  # A was not read while it was split
        # A's next request was held until its fan-out was sent, then answered in order
        a.data_received(cmd(b"EXISTS", victim) + cmd(b"PING"))
        await wait_until(lambda: count_replies(bytes(a_out.data)) == 3, "A's next replies")
        assert bytes(a_out.data) == b":1\r\n:0\r\n+PONG\r\n"


async def test_requests_pipelined_behind_a_huge_fanout_keep_their_order(farm) -> None:
    """MSET of 100,000 pairs, then GET / MGET of its keys in the same read: the later
    requests wait for the split, and see its writes."""
    pairs = [(b"m%d" % i, b"v%d" % i) for i in range(100_000)]
    flat = [x for pair in pairs for x in pair]
    async with serving(farm) as h:
        a, a_out = h.connect()
        a.data_received(
            cmd(b"MSET", *flat) + cmd(b"GET", b"m99999") + cmd(b"MGET", b"m0", b"m5", b"none")
        )
        await wait_until(lambda: count_replies(bytes(a_out.data)) == 3, "three replies")
        assert bytes(a_out.data) == (
            b"+OK\r\n$6\r\nv99999\r\n*3\r\n$2\r\nv0\r\n$2\r\nv5\r\n$-1\r\n"
        )
        big = cmd(b"MGET", *(k for k, _ in pairs))
        a_out.data.clear()
        a.data_received(big)
        await wait_until(lambda: count_replies(bytes(a_out.data)) == 1, "the MGET reply")
        assert bytes(a_out.data) == b"*100000\r\n" + b"".join(
            b"$%d\r\n%b\r\n" % (len(v), v) for _, v in pairs
        )
