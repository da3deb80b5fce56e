"""A blocking command blocked on the source when its slot starts migrating follows its key.

Two real shards behind a real router; slot maps are POSTed to the router's admin
/topology by hand (as the sentinels would publish them): slots 0-999 moving
a -> b, first ``preparing``, then ``moving``. A client blocked on shard a (BLPOP
k 0 sent before the migration) stays there while the migration prepares, then is
released there by the router (CLIENT UNBLOCK ... TIMEOUT) once it is moving and
blocked again on b with the time it had left, so a push made
through the router (which moves k to b first) reaches it; an element that
reached the source first is delivered exactly once. Which shard a client blocks
on is read from each shard's ``INFO clients`` ``blocked_clients``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis
from conftest import own_cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from slotwarden.cluster.slots import key_hash_slot

SECRET = "test-secret-reblock"
MIGRATING = range(0, 1000)  # slots moving a -> b
TIMEOUT_MS = 3000  # router.command_timeout_ms: how long a request may be held
_COUNTER = itertools.count()


def http(c: Any, method: str, path: str, body: object = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{c.admin_port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {SECRET}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def push(c: Any, state: str | None) -> None:
    """Publish (as a sentinel would) slots 0-999 moving a -> b in ``state``
    ("preparing", "moving"), or (None) no migration and the slots back on a."""
    _status, topo = http(c, "GET", "/topology")
    topo["epoch"] += 1
    if state is None:
        topo["shards"][0]["slots"] = "0-8191"
        topo["shards"][1]["slots"] = "8192-16383"
        topo.pop("migrations", None)
    else:
        topo["shards"][0]["slots"] = "1000-8191"
        topo["shards"][1]["slots"] = "0-999,8192-16383"
        topo["migrations"] = [{"slots": "0-999", "from": "a", "to": "b", "state": state}]
    status, body = http(c, "POST", "/topology", topo)
    assert status == 200 and body["applied"] is True, body


def key() -> str:
    """A fresh key name in the migrating slots."""
    tag = next(_COUNTER)
    for i in itertools.count():
        k = f"r{tag}:k{i}"
        if key_hash_slot(k.encode()) in MIGRATING:
            return k
    raise AssertionError("unreachable")


class Call:
    """``fn()`` run in a thread: its result (or exception) once done."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:  # handed to the test
            self.error = exc

    def running(self) -> bool:
        return self.thread.is_alive()

    def get(self) -> object:
        self.thread.join(TIMEOUT_MS / 1000 + 10)
        assert not self.thread.is_alive(), "still blocked"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture(scope="module")
def rb():
    with own_cluster(
        shards=2,
        extra_router={"command_timeout_ms": TIMEOUT_MS},
        env={"SLOTWARDEN_SECRET": SECRET},
    ) as c:
        yield c


@pytest.fixture
def c(rb):
    """The module's cluster, back to no migration, both shards empty, nobody blocked."""
    push(rb, None)
    for i in (0, 1):
        shard = rb.shard_client(i)
        for client in shard.client_list():
            if "b" in client["flags"]:  # left blocked by a failed test
                shard.client_kill_filter(_id=client["id"])
        shard.flushall()
    return rb


def blocker(c: Any, protocol: int = 2) -> redis.Redis:
    """A client of the router that waits as long as its command blocks and never sends
    it again (redis-py 8 times a read out after 5 s by default and retries it, which
    would re-send a blocking command by itself)."""
    return redis.Redis(
        port=c.port, socket_timeout=None, retry=Retry(NoBackoff(), 0), protocol=protocol
    )


def blocked_on(r: redis.Redis) -> int:
    return int(r.info("clients")["blocked_clients"])


def wait_blocked(r: redis.Redis, n: int = 1, within: float = 5.0) -> None:
    """Wait until ``n`` clients are blocked on the shard ``r`` talks to."""
    end = time.monotonic() + within
    while blocked_on(r) != n:
        assert time.monotonic() < end, f"blocked_clients stays {blocked_on(r)}, not {n}"
        time.sleep(0.01)


@pytest.mark.parametrize("protocol", [2, 3])
def test_blpop_0_blocked_on_the_source_gets_a_push_made_after_the_move(c, protocol) -> None:
    a, b = c.shard_client(0), c.shard_client(1)
    k = key()
    call = Call(lambda: blocker(c, protocol).blpop([k], timeout=0))
    wait_blocked(a)
    push(c, "preparing")
    time.sleep(0.3)
    assert blocked_on(a) == 1 and call.running()  # preparing: it stays on the source
    push(c, "moving")
    wait_blocked(b)  # blocked again, on the target
    assert call.running()
    assert c.client().lpush(k, "v") == 1  # through the router: k's slot is moving
    assert list(call.get()) == [k.encode(), b"v"]  # type: ignore[call-overload]
    assert a.exists(k) == 0 and b.exists(k) == 0  # popped once, from the target


def test_a_finite_timeout_keeps_the_time_left_and_answers_nil(c) -> None:
    a, b = c.shard_client(0), c.shard_client(1)
    k = key()
    call = Call(lambda: blocker(c, 3).blpop([k], timeout=2))  # RESP3: its nil is "_"
    wait_blocked(a)
    push(c, "preparing")
    push(c, "moving")
    wait_blocked(b)
    assert blocked_on(a) == 0
    assert call.get() is None  # its own timeout: nil, not an error, one reply
    assert blocked_on(b) == 0
    r = c.client()
    assert r.ping() and r.lpush(k, "x") == 1 and b.lrange(k, 0, -1) == [b"x"]


def test_an_element_pushed_on_the_source_around_the_change_is_delivered_once(c) -> None:
    a, b = c.shard_client(0), c.shard_client(1)
    # pushed on the source just before the route change: the blocked command takes it
    k1 = key()
    first = Call(lambda: blocker(c).blpop([k1], timeout=0))
    wait_blocked(a)
    a.lpush(k1, "v1")
    push(c, "preparing")
    assert first.get() == (k1.encode(), b"v1")
    # pushed on the source just after it (a router still on the old map): either the
    # command takes it on the source, or it is moved to the target with the key
    push(c, None)
    k2 = key()
    second = Call(lambda: blocker(c).blpop([k2], timeout=0))
    wait_blocked(a)
    push(c, "preparing")
    a.lpush(k2, "v2")
    push(c, "moving")
    assert second.get() == (k2.encode(), b"v2")
    for k in (k1, k2):  # exactly once: nowhere any more, not popped twice
        assert a.exists(k) == 0 and b.exists(k) == 0
    assert c.client().blpop([k1, k2], timeout=0.3) is None


def test_blmove_and_brpoplpush_follow_their_keys(c) -> None:
    a, b = c.shard_client(0), c.shard_client(1)
    src = key()
    dst = f"{{{src}}}:dst"
    src2 = key()
    dst2 = f"{{{src2}}}:dst"
    move = Call(lambda: blocker(c).blmove(src, dst, 0, "LEFT", "RIGHT"))
    rpl = Call(lambda: blocker(c).brpoplpush(src2, dst2, timeout=0))
    wait_blocked(a, 2)
    push(c, "preparing")
    push(c, "moving")
    wait_blocked(b, 2)
    r = c.client()
    r.rpush(src, "m")
    r.rpush(src2, "n")
    assert move.get() == b"m" and rpl.get() == b"n"
    assert b.lrange(dst, 0, -1) == [b"m"] and b.lrange(dst2, 0, -1) == [b"n"]
    assert a.exists(src, dst, src2, dst2) == 0


def test_bzpopmin_and_blmpop_follow_their_keys(c) -> None:
    a, b = c.shard_client(0), c.shard_client(1)
    z, lst = key(), key()
    zpop = Call(lambda: blocker(c).bzpopmin([z], timeout=0))
    mpop = Call(lambda: blocker(c).blmpop(0, 1, lst, direction="LEFT"))
    wait_blocked(a, 2)
    push(c, "preparing")
    push(c, "moving")
    wait_blocked(b, 2)
    r = c.client()
    r.zadd(z, {"m": 1})
    r.rpush(lst, "e")
    assert zpop.get() == (z.encode(), b"m", 1.0)
    assert mpop.get() == [lst.encode(), [b"e"]]
    assert a.exists(z, lst) == 0 and b.exists(z, lst) == 0


def test_xreadgroup_and_xread_block_with_ids_follow_their_streams(c) -> None:
    a, b = c.shard_client(0), c.shard_client(1)
    s, s2 = key(), key()
    a.xgroup_create(s, "g", id="$", mkstream=True)
    a.xadd(s2, {"f": "old"}, id="1-0")
    group = Call(lambda: blocker(c).xreadgroup("g", "w", {s: ">"}, count=1, block=0))
    plain = Call(lambda: blocker(c).xread({s2: "1-0"}, count=1, block=0))
    wait_blocked(a, 2)
    push(c, "preparing")
    push(c, "moving")
    wait_blocked(b, 2)
    r = c.client()
    r.xadd(s, {"f": "v"}, id="5-0")
    r.xadd(s2, {"f": "new"}, id="2-0")
    assert group.get() == [[s.encode(), [(b"5-0", {b"f": b"v"})]]]
    assert plain.get() == [[s2.encode(), [(b"2-0", {b"f": b"new"})]]]
    assert b.xinfo_groups(s)[0]["last-delivered-id"] == b"5-0"
    assert a.exists(s, s2) == 0


def test_a_migration_called_off_sends_it_back_to_the_owner(c) -> None:
    a, b = c.shard_client(0), c.shard_client(1)
    k = key()
    push(c, "moving")
    call = Call(lambda: blocker(c).blpop([k], timeout=0))
    wait_blocked(b)  # k's slot moving: it blocks on the target
    push(c, None)  # the slots are a's again, no migration
    wait_blocked(a)
    assert blocked_on(b) == 0
    assert c.client().rpush(k, "back") == 1
    assert call.get() == (k.encode(), b"back")
    assert a.exists(k) == 0 and b.exists(k) == 0


def test_xread_with_dollar_stays_where_it_blocked(c) -> None:
    """``$`` ("after the last entry when called") cannot be asked of another shard:
    such a command is not released (README *Resharding limits*)."""
    a, b = c.shard_client(0), c.shard_client(1)
    s = key()
    call = Call(lambda: blocker(c).xread({s: "$"}, count=1, block=1500))
    wait_blocked(a)
    push(c, "preparing")
    push(c, "moving")
    time.sleep(0.3)
    assert blocked_on(a) == 1 and blocked_on(b) == 0
    assert call.get() is None or call.get() == []  # its own timeout on the source
