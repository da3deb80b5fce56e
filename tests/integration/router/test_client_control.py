"""CLIENT KILL / UNBLOCK / PAUSE / UNPAUSE / REPLY / NO-TOUCH / INFO / LIST on the router's own
clients (issue 12, item 3), through a real router over 3 real shards, compared with one
real redis-server where Redis's answer is the reference."""

from __future__ import annotations

import pytest
from compat import Raw, both, keys_on_every_shard, plain_server, router_conns, wait_for
from conftest import Cluster


@pytest.fixture(scope="module")
def plain(session_farm):
    yield from plain_server(session_farm)


def _id(raw: Raw) -> int:
    return int(raw.call("CLIENT", "ID")[1:-2])


def _closed(raw: Raw) -> bool:
    """True once the router has closed ``raw``'s connection."""
    try:
        raw.send(("PING",))
        raw.read(1, timeout=5)
    except (ConnectionError, OSError):
        return True
    return False


def _blocked_on(port: int, client_id: int) -> bool:
    with Raw(port) as raw:
        listing = raw.call("CLIENT", "LIST", "ID", client_id)
    return b" flags=b " in listing


def _blocked(c: Cluster, client_id: int) -> bool:
    return _blocked_on(c.port, client_id)


# ---------------------------------------------------------------- CLIENT KILL


def test_client_kill_by_id_addr_and_old_form(fresh: Cluster) -> None:
    with Raw(fresh.port) as me, Raw(fresh.port) as a, Raw(fresh.port) as b, Raw(fresh.port) as d:
        a_id, b_id = _id(a), _id(b)
        assert me.call("CLIENT", "KILL", "ID", a_id) == b":1\r\n"
        assert b"id=%d " % a_id not in me.call("CLIENT", "LIST")  # gone at once
        assert _closed(a)
        assert me.call("CLIENT", "KILL", "ID", a_id) == b":0\r\n"  # gone already
        b_addr = f"127.0.0.1:{b.sock.getsockname()[1]}"
        assert me.call("CLIENT", "KILL", "ADDR", b_addr, "ID", b_id) == b":1\r\n"
        assert _closed(b)
        d_addr = f"127.0.0.1:{d.sock.getsockname()[1]}"
        assert me.call("CLIENT", "KILL", d_addr) == b"+OK\r\n"  # the old form
        assert _closed(d)
        assert me.call("CLIENT", "KILL", d_addr) == b"-ERR No such client\r\n"
        assert me.call("PING") == b"+PONG\r\n"


def test_client_kill_errors_are_redis_s(fresh: Cluster, plain) -> None:
    for args in (
        ("CLIENT", "KILL", "ID", "0"),
        ("CLIENT", "KILL", "ID", "x"),
        ("CLIENT", "KILL", "TYPE", "foo"),
        ("CLIENT", "KILL", "USER", "nobody"),
        ("CLIENT", "KILL", "SKIPME", "maybe"),
        ("CLIENT", "KILL", "ID"),
        ("CLIENT", "KILL", "ID", "1", "ADDR"),
        ("CLIENT", "KILL", "FOO", "bar"),
        ("CLIENT", "KILL", "1.2.3.4:5"),
        ("CLIENT", "KILL", "ID", "99999"),
        ("CLIENT", "KILL", "LADDR", "1.2.3.4:5"),
    ):
        got, want = both(fresh.port, plain.port, args)
        assert got == want, args


def test_client_kill_skipme_type_user_and_laddr(fresh: Cluster) -> None:
    laddr = f"127.0.0.1:{fresh.port}"
    with Raw(fresh.port) as me, Raw(fresh.port) as other, Raw(fresh.port) as sub:
        sub.send(("SUBSCRIBE", "news"))
        sub.read(1)
        assert me.call("CLIENT", "KILL", "TYPE", "master") == b":0\r\n"
        assert me.call("CLIENT", "KILL", "TYPE", "pubsub") == b":1\r\n"  # only the subscriber
        assert _closed(sub)
        assert other.call("PING") == b"+PONG\r\n"
        # SKIPME yes by default: the caller is never among those killed
        assert me.call("CLIENT", "KILL", "ID", _id(me)) == b":0\r\n"
        other_id = _id(other)
        filters = ("LADDR", laddr, "USER", "default", "TYPE", "normal", "ID", other_id)
        assert me.call("CLIENT", "KILL", *filters) == b":1\r\n"
        assert _closed(other)
        assert me.call("PING") == b"+PONG\r\n"
        assert me.call("CLIENT", "KILL", "MAXAGE", "100000") == b":0\r\n"  # nobody that old
        # SKIPME no: the caller gets its reply, then its connection is closed
        assert me.call("CLIENT", "KILL", "ID", _id(me), "SKIPME", "no") == b":1\r\n"
        assert _closed(me)


def test_killing_a_blocked_client_releases_its_pinned_connection(fresh: Cluster) -> None:
    key = keys_on_every_shard(fresh, prefix="kb")[2][0]
    shard = fresh.owner(key)
    before = len(router_conns(fresh, shard))
    with Raw(fresh.port) as blocked, Raw(fresh.port) as me:
        blocked_id = _id(blocked)
        blocked.send(("BLPOP", key, 0))
        wait_for(lambda: _blocked(fresh, blocked_id), "the client to block")
        assert me.call("CLIENT", "KILL", "ID", blocked_id) == b":1\r\n"
        assert _closed(blocked)
        wait_for(lambda: len(router_conns(fresh, shard)) <= before, "the pinned conn to close")
        r = fresh.client()
        r.rpush(key, "x")
        assert r.lrange(key, 0, -1) == [b"x"]  # nobody popped it
        assert r.blpop([key], 1) == (key.encode(), b"x")


# ---------------------------------------------------------------- CLIENT UNBLOCK


@pytest.mark.parametrize(
    "command",
    [
        ("BLPOP", "{k}", 0),
        ("BZPOPMIN", "{k}", 0),
        ("BLMOVE", "{k}", "{k}b", "LEFT", "RIGHT", 0),
        ("XREAD", "BLOCK", 0, "STREAMS", "{k}", "$"),
        ("WAIT", 1, 0),  # no replica: waits on every master
    ],
)
def test_client_unblock_timeout_and_error(fresh: Cluster, plain, command: tuple) -> None:
    for how in ("TIMEOUT", "ERROR"):
        replies = []
        for port in (fresh.port, plain.port):
            with Raw(port) as blocked, Raw(port) as me:
                blocked_id = _id(blocked)
                assert me.call("CLIENT", "UNBLOCK", blocked_id, how) == b":0\r\n"  # not blocked
                blocked.send(command)
                wait_for(lambda p=port, i=blocked_id: _blocked_on(p, i), "the client to block")
                assert me.call("CLIENT", "UNBLOCK", blocked_id, how) == b":1\r\n"
                replies.append(blocked.read(1)[0])
                assert blocked.call("PING") == b"+PONG\r\n"  # usable again
        assert replies[0] == replies[1], how
        want = b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n" if how == "ERROR" else None
        if want is not None:
            assert replies[0] == want


def test_client_unblock_loses_nothing_when_the_pop_already_happened(fresh: Cluster) -> None:
    key = keys_on_every_shard(fresh, prefix="ub")[1][0]
    r = fresh.client()
    with Raw(fresh.port) as blocked, Raw(fresh.port) as me:
        blocked_id = _id(blocked)
        blocked.send(("BLPOP", key, 0))
        wait_for(lambda: _blocked(fresh, blocked_id), "the client to block")
        r.rpush(key, "v")  # served at once: the pop happened
        got = blocked.read(1)[0]
        assert got == b"*2\r\n$%d\r\n%s\r\n$1\r\nv\r\n" % (len(key), key.encode())
        assert me.call("CLIENT", "UNBLOCK", blocked_id) == b":0\r\n"
    assert r.llen(key) == 0


def test_client_unblock_errors_are_redis_s(fresh: Cluster, plain) -> None:
    for args in (
        ("CLIENT", "UNBLOCK", "x"),
        ("CLIENT", "UNBLOCK", "1", "foo"),
        ("CLIENT", "UNBLOCK", "999999"),
    ):
        got, want = both(fresh.port, plain.port, args)
        assert got == want, args


# ---------------------------------------------------------------- CLIENT PAUSE


def test_client_pause_write_holds_writes_until_unpause(fresh: Cluster) -> None:
    key = keys_on_every_shard(fresh, prefix="pw")[0][0]
    fresh.client().set(key, "old")
    with Raw(fresh.port) as admin, Raw(fresh.port) as writer, Raw(fresh.port) as reader:
        # pipelined: the write right behind CLIENT PAUSE waits too
        admin.send(("CLIENT", "PAUSE", 60000, "WRITE"), ("SET", key + "x", "1"))
        try:
            assert admin.read(1) == [b"+OK\r\n"]
            writer.send(("SET", key, "new"), ("GET", key), ("EVAL", "return 1", 0))
            assert writer.quiet(0.3)  # the SET waits, and the GET behind it (in order)
            assert admin.quiet(0.01)
            assert reader.call("GET", key) == b"$3\r\nold\r\n"  # reads pass
            assert reader.call("EVAL_RO", "return 2", 0) == b":2\r\n"
        finally:
            assert reader.call("CLIENT", "UNPAUSE") == b"+OK\r\n"
        assert writer.read(3) == [b"+OK\r\n", b"$3\r\nnew\r\n", b":1\r\n"]
        assert admin.read(1) == [b"+OK\r\n"]


def test_client_pause_all_holds_everything_until_its_time_runs_out(fresh: Cluster) -> None:
    with Raw(fresh.port) as admin, Raw(fresh.port) as other:
        assert admin.call("CLIENT", "PAUSE", 700, "ALL") == b"+OK\r\n"
        other.send(("PING",), ("DBSIZE",))
        assert other.quiet(0.2)
        assert other.read(2, timeout=10) == [b"+PONG\r\n", b":0\r\n"]  # after ~0.7 s
        assert admin.call("PING") == b"+PONG\r\n"


def test_client_pause_errors_are_redis_s(fresh: Cluster, plain) -> None:
    for args in (
        ("CLIENT", "PAUSE", "x"),
        ("CLIENT", "PAUSE", "-1"),
        ("CLIENT", "PAUSE", "10", "foo"),
    ):
        got, want = both(fresh.port, plain.port, args)
        assert got == want, args


# ---------------------------------------------------------------- CLIENT REPLY, NO-TOUCH


def test_client_reply_off_and_skip_drop_replies_as_redis(fresh: Cluster, plain) -> None:
    commands = (
        ("CLIENT", "REPLY", "OFF"),
        ("SET", "{r}a", "1"),
        ("GET", "{r}a"),
        ("CLIENT", "REPLY", "ON"),
        ("GET", "{r}a"),
        ("CLIENT", "REPLY", "SKIP"),
        ("SET", "{r}a", "2"),
        ("GET", "{r}a"),
        ("MGET", "{r}a", "{r}b"),
        ("CLIENT", "REPLY", "FOO"),
        ("CLIENT", "REPLY", "OFF"),
        ("RESET",),  # turns replies back on
        ("PING",),
    )
    got, want = both(fresh.port, plain.port, *commands, replies=7)
    assert got == want
    assert got[:3] == [b"+OK\r\n", b"$1\r\n1\r\n", b"$1\r\n2\r\n"]


def test_client_no_touch_is_refused_with_the_reason(fresh: Cluster) -> None:
    with Raw(fresh.port) as c:
        refused = c.call("CLIENT", "NO-TOUCH", "ON")
        assert refused.startswith(b"-ERR CLIENT NO-TOUCH is not supported by the router")
        assert c.call("CLIENT", "NO-TOUCH", "OFF") == b"+OK\r\n"


# ---------------------------------------------------------------- CLIENT INFO / LIST


def _fields(line: bytes) -> dict[str, str]:
    return dict(f.split("=", 1) for f in line.decode().strip().split(" "))


def test_client_info_has_redis_s_fields_in_redis_s_order(fresh: Cluster, plain) -> None:
    got, want = both(fresh.port, plain.port, ("CLIENT", "INFO"))
    router, server = _fields(got[0].split(b"\r\n")[1]), _fields(want[0].split(b"\r\n")[1])
    assert list(router)[: len(server)] == list(server)
    assert list(router)[len(server) :] in ([], ["lib-name", "lib-ver"])  # 7.2's, SETINFO
    assert router["cmd"] == server["cmd"] == "client|info"


def test_client_list_shows_each_client_s_state(fresh: Cluster) -> None:
    key = keys_on_every_shard(fresh, prefix="cl")[0][0]
    with Raw(fresh.port) as tx, Raw(fresh.port) as sub, Raw(fresh.port) as me:
        tx.talk(("MULTI",), ("SET", key, "1"), ("GET", key))
        sub.talk(("SUBSCRIBE", "a", "b"), ("PSUBSCRIBE", "c*"), replies=3)
        lines = {
            int(f["id"]): f
            for f in (_fields(x) for x in me.call("CLIENT", "LIST").split(b"\r\n")[1].splitlines())
        }
        t, s = lines[_id_of(tx, lines, "multi")], lines[_id_of(sub, lines, "psubscribe")]
        assert (t["flags"], t["multi"], t["cmd"]) == ("x", "2", "get")
        assert (s["flags"], s["sub"], s["psub"], s["multi"]) == ("P", "2", "1", "-1")
        mine = _fields(me.call("CLIENT", "INFO").split(b"\r\n")[1])
        assert (mine["flags"], mine["multi"], mine["idle"]) == ("N", "-1", "0")
        only = me.call("CLIENT", "LIST", "TYPE", "pubsub").split(b"\r\n")[1].splitlines()
        assert [_fields(x)["id"] for x in only] == [s["id"]]


def _id_of(raw: Raw, lines: dict[int, dict[str, str]], cmd: str) -> int:
    port = raw.sock.getsockname()[1]
    return next(i for i, f in lines.items() if f["addr"].endswith(f":{port}"))
