"""A migration still ``preparing`` holds the requests of its slots; ``moving`` releases them.

Two real shards behind a real router; slot maps are POSTed to the router's admin
/topology by hand (as the sentinels would publish them): first slots 0-999 moving
a -> b in state ``preparing`` (every router must run that epoch before keys move),
then the same migration ``moving``, or a map without it. While preparing, a
request with a key in those slots is held: nothing of it reaches ``a`` or ``b``
(the values on both shards say so), other slots and keyless commands answer at
once, and a client's later commands wait behind the held one. Each test uses keys
of its own and starts from a freshly pushed preparing map.
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
from redis.exceptions import TryAgainError

from slotwarden.cluster.slots import key_hash_slot

SECRET = "test-secret-preparing"
MIGRATING = range(0, 1000)  # slots moving a -> b
TIMEOUT_MS = 3000  # router.command_timeout_ms: how long a request may be held
HELD_S = 0.6  # how long the tests let a held request sit before releasing it
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


def keys(n: int, migrating: bool = True) -> list[str]:
    """``n`` fresh key names in the migrating slots (or, ``migrating=False``, in slots
    shard ``a`` keeps)."""
    tag = next(_COUNTER)
    out = []
    for i in itertools.count():
        k = f"p{tag}:k{i}"
        slot = key_hash_slot(k.encode())
        if (slot in MIGRATING) == migrating and slot < 8192:
            out.append(k)
            if len(out) == n:
                return out
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
        self.thread.join(TIMEOUT_MS / 1000 + 5)
        assert not self.thread.is_alive(), "still held"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture(scope="module")
def prep():
    with own_cluster(
        shards=2,
        extra_router={"command_timeout_ms": TIMEOUT_MS},
        env={"SLOTWARDEN_SECRET": SECRET},
    ) as c:
        yield c


def shards(c: Any) -> tuple[redis.Redis, redis.Redis]:
    return c.shard_client(0), c.shard_client(1)


def multi_incr(r: redis.Redis, k: str) -> list:
    with r.pipeline(transaction=True) as p:
        p.incr(k)
        p.get(k)
        return p.execute()


def test_preparing_holds_its_slots_until_moving_then_moves_the_keys(prep) -> None:
    c = prep
    a, b = shards(c)
    k_set, k_get, k_m1, k_m2, k_tx, k_ev = keys(6)
    (other,) = keys(1, migrating=False)
    for k in (k_set, k_get, k_m1, k_m2, k_ev):
        a.set(k, "old")
    a.set(k_tx, 10)
    a.set(other, "here")
    push(c, "preparing")
    calls = {
        "set": Call(lambda: c.client().set(k_set, "new")),
        "get": Call(lambda: c.client().get(k_get)),
        "mget": Call(lambda: c.client().mget(k_m1, other, k_m2)),
        "multi": Call(lambda: multi_incr(c.client(), k_tx)),
        "eval": Call(
            lambda: c.client().eval("return redis.call('APPEND', KEYS[1], ARGV[1])", 1, k_ev, "+")
        ),
    }
    time.sleep(HELD_S)
    r = c.client()
    assert r.get(other) == b"here" and r.ping() and r.dbsize() >= 1  # not held
    assert all(call.running() for call in calls.values())  # still held
    for k in (k_set, k_get, k_m1, k_m2, k_ev):  # nothing reached a shard
        assert a.get(k) == b"old" and b.exists(k) == 0, k
    assert a.get(k_tx) == b"10" and b.exists(k_tx) == 0
    push(c, "moving")
    assert calls["set"].get() is True
    assert calls["get"].get() == b"old"
    assert calls["mget"].get() == [b"old", b"here", b"old"]
    assert calls["multi"].get() == [11, b"11"]
    assert calls["eval"].get() == 4
    for k in (k_set, k_get, k_m1, k_m2, k_tx, k_ev):  # moved to the target first
        assert a.exists(k) == 0, k
    assert b.get(k_set) == b"new" and b.get(k_get) == b"old" and b.get(k_tx) == b"11"
    assert b.get(k_ev) == b"old+" and b.mget(k_m1, k_m2) == [b"old", b"old"]
    assert a.get(other) == b"here"


def test_watch_and_blpop_are_held_too(prep) -> None:
    c = prep
    a, b = shards(c)
    k_w, k_l = keys(2)
    a.set(k_w, "1")
    a.rpush(k_l, "item")
    push(c, "preparing")

    def watched() -> list:
        with c.client().pipeline(transaction=True) as p:
            p.watch(k_w)
            value = p.get(k_w)
            p.multi()
            p.set(k_w, "2")
            return [value, *p.execute()]

    w = Call(watched)
    bl = Call(lambda: c.client().blpop([k_l], timeout=2))
    time.sleep(HELD_S)
    assert w.running() and bl.running()
    assert a.get(k_w) == b"1" and a.lrange(k_l, 0, -1) == [b"item"]
    assert b.exists(k_w, k_l) == 0
    push(c, "moving")
    assert w.get() == [b"1", True]
    assert bl.get() == (k_l.encode(), b"item")
    assert a.exists(k_w, k_l) == 0 and b.get(k_w) == b"2" and b.exists(k_l) == 0


def test_a_map_without_the_migration_releases_them_to_the_owner(prep) -> None:
    c = prep
    a, b = shards(c)
    k, k2 = keys(2)
    a.set(k2, "kept")
    push(c, "preparing")
    s = Call(lambda: c.client().set(k, "new"))
    g = Call(lambda: c.client().get(k2))
    time.sleep(HELD_S)
    assert s.running() and g.running()
    assert a.exists(k) == 0 and b.exists(k) == 0
    push(c, None)  # the migration is gone: slots 0-999 are a's again
    assert s.get() is True and g.get() == b"kept"
    assert a.get(k) == b"new" and b.exists(k, k2) == 0


def test_a_hold_past_command_timeout_is_tryagain_and_not_executed(prep) -> None:
    c = prep
    a, b = shards(c)
    (k,) = keys(1)
    a.set(k, "old")
    push(c, "preparing")
    r = c.client()
    slot = key_hash_slot(k.encode())
    with pytest.raises(
        TryAgainError, match=f"slot {slot} is about to move from shard a to shard b, try again"
    ):
        r.set(k, "new")
    assert a.get(k) == b"old" and b.exists(k) == 0  # not executed anywhere
    assert r.ping()  # the client goes on
    with r.pipeline(transaction=True) as p:  # queued in MULTI: the transaction is aborted
        p.set(k, "new")
        with pytest.raises(TryAgainError, match=f"slot {slot} is about to move"):
            p.execute()
    assert a.get(k) == b"old" and b.exists(k) == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{c.admin_port}/metrics", timeout=5) as f:
        text = f.read().decode()
    assert "slotwarden_router_held_timeouts_total 2.0" in text


def test_a_pipeline_keeps_its_order_behind_a_held_request(prep) -> None:
    c = prep
    a, b = shards(c)
    (k,) = keys(1)
    (other,) = keys(1, migrating=False)
    a.set(other, "o")
    push(c, "preparing")

    def pipeline() -> list:
        with c.client().pipeline(transaction=False) as p:
            p.set(k, "v")
            p.get(k)
            p.get(other)
            p.incr(k + "-n")  # another key, maybe another slot: after the first anyway
            return p.execute()

    call = Call(pipeline)
    time.sleep(HELD_S)
    assert call.running() and a.exists(k) == 0 and b.exists(k) == 0
    push(c, "moving")
    assert call.get() == [True, b"v", b"o", 1]
    assert b.get(k) == b"v" and a.exists(k) == 0


def test_a_cross_shard_computed_command_is_held_too(prep) -> None:
    c = prep
    a, b = shards(c)
    (moving,) = keys(1)
    (staying,) = keys(1, migrating=False)
    other = next(f"o{i}" for i in range(10_000) if key_hash_slot(f"o{i}".encode()) >= 8192)
    a.sadd(moving, "x", "y")
    a.sadd(staying, "y", "z")
    b.sadd(other, "y", "w")
    push(c, "preparing")
    dest = f"{{{moving}}}:dest"  # the same slot as ``moving``
    inter = Call(lambda: c.client().sinter(moving, staying, other))
    store = Call(lambda: c.client().sunionstore(dest, [moving, staying]))
    time.sleep(HELD_S)
    assert inter.running() and store.running()
    assert a.smembers(moving) == {b"x", b"y"} and b.exists(moving, dest) == 0
    push(c, "moving")
    assert inter.get() == {b"y"} and store.get() == 3
    assert a.exists(moving, dest) == 0 and b.smembers(dest) == {b"x", b"y", b"z"}


def raw(r: redis.Redis, *args: str) -> object:
    """One command on ``r``'s single connection, its reply as parsed (no callbacks)."""
    conn = r.connection
    assert conn is not None
    conn.send_command(*args)
    return conn.read_response()


def test_a_transaction_begun_before_the_migration_is_refused_at_exec(prep) -> None:
    c = prep
    a, b = shards(c)
    k, k2 = keys(2)
    a.set(k, "old")
    a.set(k2, 5)
    push(c, None)  # no migration yet: queued commands are planned for shard a
    r = c.client(single_connection_client=True)
    assert raw(r, "MULTI") == b"OK"
    assert raw(r, "SET", k, "new") == b"QUEUED"
    push(c, "preparing")  # then slots 0-999 start moving a -> b
    with pytest.raises(redis.exceptions.ExecAbortError, match="TRYAGAIN slots 0-999 started"):
        raw(r, "EXEC")
    assert a.get(k) == b"old" and b.exists(k) == 0  # the source was not written
    push(c, None)
    w = c.client(single_connection_client=True)
    assert raw(w, "WATCH", k2) == b"OK"  # WATCH begins the transaction
    push(c, "preparing")
    assert raw(w, "MULTI") == b"OK"
    (other,) = keys(1, migrating=False)
    assert raw(w, "SET", other, "x") == b"QUEUED"
    with pytest.raises(redis.exceptions.ExecAbortError, match="TRYAGAIN slots 0-999 started"):
        raw(w, "EXEC")
    assert a.exists(other) == 0
    # begun under the preparing map: held at queue time, then moved; EXEC runs
    t = Call(lambda: multi_incr(c.client(), k2))
    time.sleep(HELD_S)
    assert t.running()
    push(c, "moving")
    assert t.get() == [6, b"6"]
    assert a.exists(k2) == 0 and b.get(k2) == b"6"
