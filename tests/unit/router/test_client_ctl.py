"""The pure part of CLIENT KILL / UNBLOCK / PAUSE / REPLY (router.decide.client_ctl)."""

from __future__ import annotations

import pytest

from router.commands.spec import lookup
from router.decide.client_ctl import (
    KillFilter,
    Pause,
    parse_kill,
    parse_pause,
    parse_unblock,
    reply_dropped,
    visible,
)
from router.decide.session import Session
from router.decide.users import Users


def req(*args: str | int) -> list[bytes]:
    return [str(a).encode() for a in args]


def session(id: int = 1, user: str = "default", users: Users | None = None, **kw) -> Session:
    s = Session(id=id, addr=f"10.0.0.{id}:5000{id}", laddr="127.0.0.1:7777", users=users, **kw)
    s.user = user
    return s


def test_old_form_matches_the_address_and_may_kill_the_caller() -> None:
    me = session(1)
    f = parse_kill(me, req("CLIENT", "KILL", "10.0.0.1:50001"))
    assert isinstance(f, KillFilter) and f.old_form and not f.skipme
    assert f.matches(me) and not f.matches(session(2))


def test_new_form_skips_the_caller_by_default_and_ands_the_filters() -> None:
    me, other = session(1), session(2)
    f = parse_kill(me, req("CLIENT", "KILL", "LADDR", "127.0.0.1:7777"))
    assert isinstance(f, KillFilter) and f.skipme
    assert not f.matches(me) and f.matches(other)
    f = parse_kill(me, req("CLIENT", "KILL", "ID", 2, "ADDR", "10.0.0.3:50003"))
    assert isinstance(f, KillFilter) and not f.matches(other)
    f = parse_kill(me, req("CLIENT", "KILL", "ID", 1, "SKIPME", "no"))
    assert isinstance(f, KillFilter) and f.matches(me)


def test_type_and_maxage() -> None:
    me = session(1)
    sub = session(2)
    sub.flags = "P"
    pubsub = parse_kill(me, req("CLIENT", "KILL", "TYPE", "pubsub"))
    normal = parse_kill(me, req("CLIENT", "KILL", "TYPE", "normal"))
    replica = parse_kill(me, req("CLIENT", "KILL", "TYPE", "slave"))
    assert isinstance(pubsub, KillFilter) and pubsub.matches(sub)
    assert isinstance(normal, KillFilter) and not normal.matches(sub)
    assert isinstance(replica, KillFilter) and not replica.matches(sub)
    old = parse_kill(me, req("CLIENT", "KILL", "MAXAGE", 60))
    assert isinstance(old, KillFilter)
    assert not old.matches(sub, now=sub.created + 10) and old.matches(sub, now=sub.created + 61)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("ID", 0), b"-ERR client-id should be greater than 0\r\n"),
        (("ID", "x"), b"-ERR client-id should be greater than 0\r\n"),
        (("TYPE", "foo"), b"-ERR Unknown client type 'foo'\r\n"),
        (("USER", "nobody"), b"-ERR No such user 'nobody'\r\n"),
        (("SKIPME", "maybe"), b"-ERR syntax error\r\n"),
        (("ID", 1, "ADDR"), b"-ERR syntax error\r\n"),
        (("FOO", "bar"), b"-ERR syntax error\r\n"),
    ],
)
def test_kill_errors_are_redis_s(args: tuple, error: bytes) -> None:
    assert parse_kill(session(), req("CLIENT", "KILL", *args)) == error


def test_with_router_users_a_client_kills_only_its_own_user_s_clients() -> None:
    users = Users({"alice": b"a", "bob": b"b"})
    alice, alice2, bob = (
        session(1, "alice", users),
        session(2, "alice", users),
        session(3, "bob", users),
    )
    assert visible(alice, alice2) and not visible(alice, bob)
    f = parse_kill(alice, req("CLIENT", "KILL", "LADDR", "127.0.0.1:7777"))
    assert isinstance(f, KillFilter) and f.matches(alice2) and not f.matches(bob)
    assert isinstance(parse_kill(alice, req("CLIENT", "KILL", "USER", "bob")), KillFilter)
    assert parse_kill(alice, req("CLIENT", "KILL", "USER", "default")).startswith(b"-ERR No such")


def test_unblock_and_pause_arguments() -> None:
    assert parse_unblock(req("CLIENT", "UNBLOCK", 5)) == (5, False)
    assert parse_unblock(req("CLIENT", "UNBLOCK", 5, "error")) == (5, True)
    assert parse_unblock(req("CLIENT", "UNBLOCK", 5, "x")) == (
        b"-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    )
    assert parse_pause(req("CLIENT", "PAUSE", 10)) == (10, True)
    assert parse_pause(req("CLIENT", "PAUSE", 10, "write")) == (10, False)
    assert parse_pause(req("CLIENT", "PAUSE", -1)) == b"-ERR timeout is negative\r\n"


def test_pause_write_holds_writes_and_may_replicate_commands_only() -> None:
    p = Pause()
    assert not p.holds(lookup(req("SET", "a", 1)), 0.0)  # not paused
    p.start(100.0, 1000, everything=False)
    for held in (("SET", "a", 1), ("EVAL", "x", 0), ("PUBLISH", "c", "m"), ("EXEC",)):
        assert p.holds(lookup(req(*held)), 100.5), held
    for passes in (("GET", "a"), ("EVAL_RO", "x", 0), ("PING",), ("CLIENT", "UNPAUSE")):
        assert not p.holds(lookup(req(*passes)), 100.5), passes
    assert not p.holds(lookup(req("SET", "a", 1)), 101.0)  # its time ran out
    assert p.until == 0.0


def test_pause_all_holds_everything_but_unpause_and_a_new_pause_never_shortens() -> None:
    p = Pause()
    p.start(0.0, 5000, everything=True)
    assert p.holds(lookup(req("GET", "a")), 1.0) and p.holds(None, 1.0)
    assert not p.holds(lookup(req("CLIENT", "UNPAUSE")), 1.0)
    p.start(1.0, 10, everything=False)
    assert p.everything and p.until == 5.0


def test_reply_modes() -> None:
    s = session()
    s.reply = "off"  # CLIENT REPLY OFF ran
    assert reply_dropped(s, "client|reply") and reply_dropped(s, "get")
    s.reply = "on"  # CLIENT REPLY ON ran
    assert not reply_dropped(s, "client|reply")
    s.reply = "skip-set"  # CLIENT REPLY SKIP ran: itself and the next reply dropped
    assert reply_dropped(s, "client|reply") and reply_dropped(s, "set")
    assert not reply_dropped(s, "get") and s.reply == "on"
