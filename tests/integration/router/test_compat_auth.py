"""Authentication: router users (AUTH, AUTH user pass, HELLO ... AUTH, NOAUTH until then),
compared with a real redis-server that has the same users; and backend credentials sent
on every connection the router opens to the shards."""

from __future__ import annotations

import os

import pytest
import redis
import yaml
from compat import Raw, both
from conftest import Cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from slotwarden.procs import RouterProc, free_port, write_cluster_yaml
from slotwarden.resp.encode import encode_command

DEFAULT_PW = "default-secret-pw"
ALICE_PW = "alice-secret-pw"


@pytest.fixture(scope="module")
def secured(session_farm):
    """A router with users ``default`` (password from env) and ``alice`` (from a file),
    and a plain redis-server with the same two users."""
    pw_file = os.path.join(session_farm.root, "alice.pw")
    with open(pw_file, "w") as f:
        f.write(ALICE_PW + "\n")
    users = [
        {"name": "default", "password_env": "TEST_ROUTER_DEFAULT_PW"},
        {"name": "alice", "password_file": pw_file},
    ]
    c = Cluster(
        session_farm, extra_router={"users": users}, env={"TEST_ROUTER_DEFAULT_PW": DEFAULT_PW}
    )
    plain = session_farm.start(["--requirepass", DEFAULT_PW])
    redis.Redis(port=plain.port, password=DEFAULT_PW).acl_setuser(
        "alice", enabled=True, passwords=[f"+{ALICE_PW}"], keys=["*"], commands=["+@all"]
    )
    try:
        yield c, plain
    finally:
        c.router.stop()
        for m in c.masters:
            m.stop()
        plain.stop()


def test_auth_conversation_matches_redis_byte_for_byte(secured) -> None:
    c, plain = secured
    script = [
        ("GET", "x"), ("PING",), ("CLIENT", "SETNAME", "n"), ("SUBSCRIBE", "ch"),
        ("NOSUCH",), ("GET",),  # unknown commands and arity come before NOAUTH
        ("MULTI",), ("EXEC",),
        ("HELLO",), ("HELLO", "3"), ("HELLO", "2", "AUTH", "default", "wrong"),
        ("AUTH", "wrong"), ("AUTH", "a", "b", "c"), ("AUTH", "nobody", DEFAULT_PW),
        ("AUTH", DEFAULT_PW), ("GET", "x"), ("ACL", "WHOAMI"),
        ("AUTH", "alice", "wrong"), ("ACL", "WHOAMI"),  # a failed AUTH keeps the user
        ("AUTH", "alice", ALICE_PW), ("ACL", "WHOAMI"),
        ("RESET",), ("GET", "x"),  # RESET logs out
        ("QUIT",),
    ]  # fmt: skip
    ours, theirs = both(c.port, plain.port, *script)
    assert ours == theirs
    assert ours[0] == b"-NOAUTH Authentication required.\r\n"
    assert ours[7] == (
        b"-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n"
    )


def test_hello_auth_selects_the_protocol_and_names_the_client(secured) -> None:
    c, _ = secured
    with Raw(c.port) as conn:
        got = conn.call("HELLO", "3", "AUTH", "alice", ALICE_PW, "SETNAME", "worker")
        assert got.startswith(b"%7\r\n")
        assert conn.call("CLIENT", "GETNAME") == b"$6\r\nworker\r\n"
        assert conn.call("GET", "missing") == b"_\r\n"  # RESP3 null


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_with_credentials(secured, protocol) -> None:
    c, _ = secured
    r = redis.Redis(port=c.port, password=DEFAULT_PW, protocol=protocol)
    assert r.set("{auth}k", "v") and r.get("{auth}k") == b"v"
    alice = redis.Redis(port=c.port, username="alice", password=ALICE_PW, protocol=protocol)
    assert alice.acl_whoami() in ("alice", b"alice")  # redis-py decodes only for RESP2
    once = Retry(NoBackoff(), 0)  # redis-py would retry an AuthenticationError
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(
            port=c.port, username="alice", password="nope", protocol=protocol, retry=once
        ).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=c.port, protocol=protocol, retry=once).get("{auth}k")


def test_passwords_never_reach_the_log(secured) -> None:
    c, _ = secured
    with Raw(c.port) as conn:
        conn.talk(("AUTH", "wrong-guess-pw"), ("AUTH", "alice", ALICE_PW))
    c.router.proc.send_signal(0)
    log = c.router.log()
    for secret in (DEFAULT_PW, ALICE_PW, "wrong-guess-pw"):
        assert secret not in log


def _router_with_backend(
    farm, backend: dict, env: dict[str, str], passwords: tuple[str, ...] = ("backend-pw-123",) * 2
) -> tuple[RouterProc, list]:
    masters = [farm.start(["--requirepass", pw]) for pw in passwords]
    path = os.path.join(farm.root, f"cluster-{free_port()}.yaml")
    port, _ = write_cluster_yaml(path, masters)
    with open(path) as f:
        data = yaml.safe_load(f)
    data["backend"] = backend.pop("cluster", backend)
    for shard in data["shards"]:
        if shard["name"] in backend:
            shard["backend"] = backend[shard["name"]]
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    router = RouterProc(path, port, path + ".log", env=env).start()
    return router, masters


def test_backend_credentials_are_used_on_every_connection(farm) -> None:
    router, _ = _router_with_backend(
        farm, {"password_env": "TEST_BACKEND_PW"}, {"TEST_BACKEND_PW": "backend-pw-123"}
    )
    try:
        for protocol in (2, 3):
            r = redis.Redis(port=router.port, protocol=protocol, socket_timeout=10)
            assert r.mset({f"b{i}": i for i in range(20)})  # both shards, shared connections
            assert r.blpop(["nothing"], timeout=0.2) is None  # a dedicated connection
            p = r.pubsub()
            p.subscribe("c1")
            assert p.get_message(timeout=5)["type"] == "subscribe"
            assert r.publish("c1", "m") == 1
            assert p.get_message(timeout=5)["data"] == b"m"
            p.close()
            with r.pipeline() as pipe:  # WATCH: a dedicated connection too
                pipe.watch("{w}k")
                pipe.multi()
                pipe.set("{w}k", 1)
                assert pipe.execute() == [True]
    finally:
        router.stop()
    assert "backend-pw-123" not in router.log()


def test_wrong_backend_credentials_are_a_clear_error(farm) -> None:
    pw_file = os.path.join(farm.root, "wrong.pw")
    with open(pw_file, "w") as f:
        f.write("not-the-password\n")
    router, _ = _router_with_backend(farm, {"username": "default", "password_file": pw_file}, {})
    try:
        r = redis.Redis(port=router.port, protocol=2, socket_timeout=10)
        with pytest.raises(redis.ResponseError) as caught:
            r.get("a")
        text = str(caught.value)
        assert "refused the router's backend credentials" in text and "WRONGPASS" in text, text
        with pytest.raises(redis.ResponseError, match="refused the router's backend credentials"):
            r.blpop(["a"], timeout=0.1)
    finally:
        router.stop()
    log = router.log()
    assert "refused the router's handshake (credentials)" in log
    assert "not-the-password" not in log


def test_a_shard_may_have_its_own_backend_credentials(farm) -> None:
    backend = {"cluster": {"password_env": "TEST_PW_A"}, "b": {"password_env": "TEST_PW_B"}}
    router, _ = _router_with_backend(
        farm, backend, {"TEST_PW_A": "pw-of-a", "TEST_PW_B": "pw-of-b"}, ("pw-of-a", "pw-of-b")
    )
    try:
        r = redis.Redis(port=router.port, socket_timeout=10)
        assert r.mset({f"s{i}": i for i in range(20)})  # keys on both shards
        assert r.dbsize() == 20
    finally:
        router.stop()


@pytest.mark.parametrize(
    "data",
    [
        b"*11\r\n",  # more than 10 arguments, refused at the count line
        b"*2\r\n$3\r\nGET\r\n$16385\r\n",  # a bulk over 16384 bytes, refused at its length line
        b"*2\r\n$3\r\nGET\r\n$200000000\r\nxx",  # nothing of a big bulk is buffered
        b"PING\r\n*12\r\n",  # after an answered request
    ],
)
def test_unauthenticated_limits_match_redis(secured, data) -> None:
    """Redis 7 closes a client that has not authenticated and sends more than 10
    arguments or a bulk over 16384 bytes; the router answers the same bytes (issue 10,
    item 4: before, it parsed and buffered everything)."""
    c, plain = secured
    replies = []
    for port in (c.port, plain.port):
        with Raw(port) as conn:
            conn.sock.sendall(data)
            got = conn.read(data.count(b"PING") + 1)
            assert conn.sock.recv(100) == b"", "the connection stays open"
            replies.append(got)
    assert replies[0] == replies[1], replies
    assert replies[0][-1].startswith(b"-ERR Protocol error: unauthenticated"), replies


def test_limits_lift_after_auth(secured) -> None:
    c, plain = secured
    big = "v" * 20000
    script = [("AUTH", DEFAULT_PW), ("MSET", *[f"{{t}}{i}" for i in range(12)]), ("SET", "k", big)]
    got, want = both(c.port, plain.port, *script)
    assert got == want == [b"+OK\r\n", b"+OK\r\n", b"+OK\r\n"], (got, want)


def test_requests_pipelined_behind_auth_get_the_full_limits(secured) -> None:
    """Redis runs AUTH before it parses the next request of the same write, so a
    pipelined AUTH lifts the limits for what follows it; the router does the same
    (before, everything in one read was framed with the limits from before AUTH)."""
    c, plain = secured
    keys = [f"{{t}}{i}".encode() for i in range(12)]
    data = b"".join(
        encode_command(args)
        for args in (
            [b"AUTH", DEFAULT_PW.encode()],
            [b"MSET", *[p for k in keys for p in (k, b"v")]],  # 25 arguments
            [b"SET", b"k", b"v" * 20000],  # a bulk over 16384 bytes
            [b"EXISTS", *keys],
        )
    )
    replies = []
    for port in (c.port, plain.port):
        with Raw(port) as conn:
            conn.sock.sendall(data)
            replies.append(conn.read(4))
    assert replies[0] == replies[1] == [b"+OK\r\n", b"+OK\r\n", b"+OK\r\n", b":12\r\n"], replies
