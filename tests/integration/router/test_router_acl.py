"""The router's backend ACL user (issue 10 item 2): scripts cannot run what the router refuses.

Two real redis-servers carry the users `slotwarden.acl` writes (the router's
rule from `router.commands.acl`, the sentinels' from `sentinel.act.acl`, a
password-protected default user); a real router authenticates as its own user.
Every command the router refuses that a script may call is tried from EVAL and
from a FUNCTION through the router and must be refused by the shard itself;
ordinary scripts and every routing shape keep working; and ``ACL DRYRUN`` on a
real server checks the generated rule against every row of the command table.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator

import hiredis
import pytest
import redis
import yaml

from router.commands.acl import FIRST_ARG_ONLY, ROUTER_SENT, SCRIPT_SAFE_LOCAL, shard_may_run
from router.commands.spec import TABLE, CommandSpec
from router.commands.table import Shape
from slotwarden.acl import (
    AclUser,
    as_server_args,
    node_conf,
    password_hash,
    router_rule,
    sentinel_rule,
)
from slotwarden.procs import RedisFarm, RouterProc, write_cluster_yaml

ROUTER_USER = "slotwarden-router"
LIBRARY = """#!lua name=acltest
redis.register_function('acl_run', function(keys, args) return redis.call(unpack(args)) end)
"""
RUN = "return redis.call(unpack(ARGV))"
# Arguments that make a refused form of an otherwise allowed command.
REFUSED_FORMS = (["select", "1"], ["info", "clients"], ["info"], ["info", "everything"])


class AclCluster:
    def __init__(self) -> None:
        self.farm = RedisFarm()
        self.admin_password = secrets.token_urlsafe(16)
        router_password = secrets.token_urlsafe(16)
        users = [
            AclUser(ROUTER_USER, router_rule(), password_hash(router_password.encode()), ""),
            AclUser("slotwarden-sentinel", sentinel_rule(), password_hash(b"s3ntinel"), ""),
        ]
        args = as_server_args(node_conf(self.admin_password, users, "unused"))
        self.masters = [self.farm.start(args) for _ in range(2)]
        self.config = os.path.join(self.farm.root, "cluster.yaml")
        self.port, _ = write_cluster_yaml(self.config, self.masters)
        with open(self.config) as f:
            data = yaml.safe_load(f)
        data["backend"] = {"username": ROUTER_USER, "password_env": "TEST_ROUTER_PASSWORD"}
        with open(self.config, "w") as f:
            yaml.safe_dump(data, f)
        log = os.path.join(self.farm.root, "router.log")
        env = {"TEST_ROUTER_PASSWORD": router_password}
        self.router = RouterProc(self.config, self.port, log, env=env).start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10)

    def admin(self, i: int = 0) -> redis.Redis:
        return redis.Redis(
            port=self.masters[i].port, password=self.admin_password, socket_timeout=10
        )

    def close(self) -> None:
        self.router.stop()
        self.farm.close()


@pytest.fixture(scope="module")
def acl_cluster() -> Iterator[AclCluster]:
    c = AclCluster()
    try:
        yield c
    finally:
        c.close()


def every_spec() -> list[CommandSpec]:
    out: list[CommandSpec] = []
    for spec in TABLE.values():
        if spec.subcommands is None:
            out.append(spec)
        else:
            out.extend(spec.subcommands.values())
            if spec.shape is not Shape.REJECTED:  # COMMAND alone is a command too
                out.append(spec)
    return out


def call_args(spec: CommandSpec) -> list[str]:
    """A request for ``spec`` with as many arguments as its arity needs ("0" each)."""
    args = spec.name.split("|")
    if spec.name in FIRST_ARG_ONLY:
        args.append(FIRST_ARG_ONLY[spec.name])
    return args + ["0"] * (abs(spec.arity) - len(args))


def server_commands(admin: redis.Redis) -> dict[str, set[str]]:
    """Every command and subcommand the server knows -> its flags."""
    conn = admin.connection_pool.get_connection()
    try:  # the raw reply: redis-py's COMMAND parser drops the subcommands
        conn.send_command("COMMAND")
        entries = conn.read_response()
    finally:
        admin.connection_pool.release(conn)
    known: dict[str, set[str]] = {}
    for entry in entries:
        known[entry[0].decode()] = {f.decode() for f in entry[2]}
        for sub in entry[9] or []:
            known[sub[0].decode()] = {f.decode() for f in sub[2]}
    return known


def refused_script_calls(admin: redis.Redis) -> list[list[str]]:
    """Every command the router refuses (or answers itself) that a script may call."""
    known = server_commands(admin)
    calls = [
        call_args(spec)
        for spec in every_spec()
        if not shard_may_run(spec)
        and spec.name not in FIRST_ARG_ONLY  # SELECT: its refused forms are below
        and spec.name in known
        and "noscript" not in known[spec.name]
    ]
    return calls + [list(form) for form in REFUSED_FORMS]


def is_acl_refusal(exc: redis.ResponseError) -> bool:
    text = str(exc)
    # Redis 7.0's text from a script; later versions say NOPERM
    return "can't run this command or subcommand" in text or text.startswith("NOPERM")


def test_the_issue_commands_are_among_those_tried(acl_cluster: AclCluster) -> None:
    names = {c[0] for c in refused_script_calls(acl_cluster.admin())}
    issue = {"migrate", "swapdb", "move", "select", "pfselftest", "pfdebug",
             "restore-asking", "info"}  # fmt: skip
    assert issue <= names


def test_scripts_cannot_run_what_the_router_refuses(acl_cluster: AclCluster) -> None:
    r = acl_cluster.client()
    calls = refused_script_calls(acl_cluster.admin())
    assert len(calls) > 20
    allowed = []
    for call in calls:
        try:
            reply = r.eval(RUN, 0, *call)
        except redis.ResponseError as exc:
            if is_acl_refusal(exc):
                continue
            allowed.append((call, f"error {exc}"))
            continue
        allowed.append((call, reply))
    assert not allowed, f"EVAL ran (or refused otherwise) through the router: {allowed}"


def test_functions_cannot_run_what_the_router_refuses(acl_cluster: AclCluster) -> None:
    r = acl_cluster.client()
    assert r.function_load(LIBRARY, replace=True) in (b"acltest", "acltest")
    calls = refused_script_calls(acl_cluster.admin())
    allowed = []
    for call in calls:
        try:
            reply = r.fcall("acl_run", 0, *call)
        except redis.ResponseError as exc:
            if is_acl_refusal(exc):
                continue
            allowed.append((call, f"error {exc}"))
            continue
        allowed.append((call, reply))
    assert not allowed, f"FCALL ran (or refused otherwise) through the router: {allowed}"


def test_migrate_from_a_script_moves_nothing(acl_cluster: AclCluster) -> None:
    r = acl_cluster.client()
    target = acl_cluster.masters[1]
    assert r.set("{m}k", "v") is True
    with pytest.raises(redis.ResponseError) as exc:
        r.eval(RUN, 1, "{m}k", "migrate", "127.0.0.1", str(target.port), "{m}k", "0", "1000",
               "COPY", "AUTH", acl_cluster.admin_password)  # fmt: skip
    assert is_acl_refusal(exc.value)
    assert all(acl_cluster.admin(i).dbsize() <= 1 for i in range(2))
    assert acl_cluster.admin(1).get("{m}k") is None or acl_cluster.admin(1).get("{m}k") == b"v"


def test_ordinary_scripts_and_functions_still_work(acl_cluster: AclCluster) -> None:
    r = acl_cluster.client()
    assert r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "s:1", "v") == b"OK"
    assert r.eval("return redis.call('GET', KEYS[1])", 1, "s:1") == b"v"
    assert r.eval("return redis.call('INCR', KEYS[1])", 1, "s:n") == 1
    assert r.eval("return redis.call('INCRBY', KEYS[1], 2)", 1, "s:n") == 3
    assert len(r.eval("return redis.call('TIME')", 0)) == 2
    assert r.eval("return redis.call('SELECT', '0')", 0) == b"OK"
    assert b"# Keyspace" in r.eval("return redis.call('INFO', 'keyspace')", 0)
    assert r.eval("return redis.call('PING')", 0) == b"PONG"
    r.function_load(LIBRARY, replace=True)
    assert r.fcall("acl_run", 1, "f:1", "SET", "f:1", "x") == b"OK"
    assert r.fcall("acl_run", 1, "f:1", "GET", "f:1") == b"x"
    assert r.fcall("acl_run", 1, "f:n", "INCR", "f:n") == 1
    sha = r.script_load("return redis.call('GET', KEYS[1])")
    assert r.evalsha(sha, 1, "s:1") == b"v"


def test_every_routing_shape_still_works(acl_cluster: AclCluster) -> None:
    r = acl_cluster.client()
    r.flushall()
    keys = [f"k{i}" for i in range(20)]
    assert r.mset({k: k for k in keys}) is True
    assert r.mget(keys) == [k.encode() for k in keys]
    assert r.exists(*keys) == 20
    assert r.dbsize() == 20
    assert sorted(r.keys("*")) == sorted(k.encode() for k in keys)
    assert len(list(r.scan_iter(count=5))) == 20
    assert "db0" in r.info()
    assert r.config_get("maxmemory-policy")
    assert isinstance(r.slowlog_get(), list)
    assert r.command_count() > 100
    assert r.object("encoding", "k1") is not None
    assert r.memory_usage("k1") > 0
    pipe = r.pipeline(transaction=True)
    pipe.incr("{t}a").incr("{t}b")
    assert pipe.execute() == [1, 1]
    with r.pipeline() as pipe:
        pipe.watch("{t}a")
        pipe.multi()
        pipe.set("{t}a", "w")
        assert pipe.execute() == [True]
    assert r.blpop(["nothing"], timeout=0.1) is None
    r.rpush("list", "x")
    assert r.blpop(["list"], timeout=1) == (b"list", b"x")
    p = r.pubsub()
    p.subscribe("chan")
    assert p.get_message(timeout=2)["type"] == "subscribe"
    assert r.publish("chan", "hello") == 1
    assert p.get_message(timeout=2)["data"] == b"hello"
    assert r.pubsub_numsub("chan") == [(b"chan", 1)]
    p.close()
    assert r.wait(0, 100) == 0
    assert r.delete(*keys) == 20
    assert r.execute_command("ACL", "CAT")
    resp3 = redis.Redis(port=acl_cluster.port, protocol=3, socket_timeout=10)
    assert resp3.set("r3", "v") is True  # HELLO 3 AUTH on the router's RESP3 connections
    assert resp3.eval("return redis.call('GET', KEYS[1])", 1, "r3") == b"v"


def test_cross_shard_commands_run_as_the_router_user(acl_cluster: AclCluster) -> None:
    # what the router sends to compute them (MEMORY USAGE, DUMP, MULTI, RESTORE, DEL,
    # EXEC: router.wire.gather) is allowed by the generated rule
    from slotwarden.cluster.slots import key_hash_slot

    r = acl_cluster.client()
    names = [f"x{i}" for i in range(40)]
    a = next(k for k in names if key_hash_slot(k.encode()) < 8192)  # shard a
    b = next(k for k in names if key_hash_slot(k.encode()) >= 8192)  # shard b
    r.delete(a, b)
    r.sadd(a, "1", "2")
    r.sadd(b, "2", "3")
    assert r.sinter(a, b) == {b"2"}
    assert r.sunionstore(a, [a, b]) == 3
    assert r.smembers(a) == {b"1", b"2", b"3"}
    r.delete(a, b)


def test_dryrun_of_every_table_row_matches_the_router(acl_cluster: AclCluster) -> None:
    """ACL DRYRUN on a real server: every command the router sends to a shard is allowed
    to its user, every one it refuses or answers itself is denied (PING, ECHO, TIME and
    SELECT 0 excepted, for scripts)."""
    admin = acl_cluster.admin()
    known = server_commands(admin)
    forwarded = {Shape.SINGLE, Shape.FANOUT_SUM, Shape.FANOUT_ORDERED, Shape.FANOUT_OK,
                 Shape.ALL_MASTERS, Shape.ANY}  # fmt: skip
    wrong = []
    checked = 0
    for spec in every_spec():
        if spec.name not in known:  # CLIENT SETINFO, CLIENT NO-TOUCH (7.2)
            assert spec.shape is Shape.LOCAL, spec.name
            continue
        args = call_args(spec)
        reply = admin.execute_command("ACL", "DRYRUN", ROUTER_USER, *args)
        allowed = reply in (b"OK", "OK")
        checked += 1
        if "no_auth" in known[spec.name]:  # AUTH, HELLO, QUIT, RESET: every user may
            expect = True
        elif spec.shape is Shape.REJECTED:
            expect = False
        elif spec.shape in forwarded:
            expect = True
        elif spec.name in ROUTER_SENT:  # CLIENT ID, CLIENT UNBLOCK: the router's own
            expect = True
        elif spec.shape is Shape.LOCAL:
            expect = spec.name in SCRIPT_SAFE_LOCAL or spec.name in FIRST_ARG_ONLY
        else:  # PINNED: the router serves it unless it answers "not supported"
            expect = shard_may_run(spec)
        if allowed != expect:
            wrong.append((args, reply))
    for form in REFUSED_FORMS:
        reply = admin.execute_command("ACL", "DRYRUN", ROUTER_USER, *form)
        if reply in (b"OK", "OK"):
            wrong.append((form, reply))
    assert checked > 300
    assert not wrong, wrong


def test_router_user_cannot_run_what_the_sentinels_send(acl_cluster: AclCluster) -> None:
    admin = acl_cluster.admin()
    for args in (["role"], ["replicaof", "no", "one"], ["client", "pause", "10", "write"],
                 ["info", "replication"]):  # fmt: skip
        reply = admin.execute_command("ACL", "DRYRUN", ROUTER_USER, *args)
        assert reply not in (b"OK", "OK"), args
        reply = admin.execute_command("ACL", "DRYRUN", "slotwarden-sentinel", *args)
        assert reply in (b"OK", "OK"), args
    # CONFIG GET/SET (the redis: blocks the sentinels apply) but not the rest of CONFIG
    for args in (["get", "k"], ["eval", "return 1", "0"], ["config", "rewrite"], ["flushall"]):
        reply = admin.execute_command("ACL", "DRYRUN", "slotwarden-sentinel", *args)
        assert reply not in (b"OK", "OK"), args


def test_client_tracking_works_as_the_router_user(acl_cluster: AclCluster) -> None:
    # The router's tracking connections (HELLO 3, CLIENT TRACKING ON BCAST, PING) run
    # as its backend user: its rule grants them (issue 14).
    sock = socket.create_connection(("127.0.0.1", acl_cluster.port), timeout=10)
    reader = hiredis.Reader()

    def read() -> object:
        while (item := reader.gets()) is False:
            reader.feed(sock.recv(65536))
        return item

    def call(*args: str) -> object:
        sock.sendall(b"*%d\r\n" % len(args))
        sock.sendall(b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args))
        return read()

    try:
        call("HELLO", "3")
        assert call("CLIENT", "TRACKING", "ON") == b"OK"
        time.sleep(0.5)  # its tracking connections go live
        assert call("GET", "acl-tracked") is None
        # remembered: its shard's tracking connection is live (else: dropped at once)
        assert b"tracking_total_keys:1" in call("INFO", "stats")  # type: ignore[operator]
        acl_cluster.client().set("acl-tracked", "1")
        assert read() == [b"invalidate", [b"acl-tracked"]]
    finally:
        sock.close()
