"""CONFIG SET / CONFIG RESETSTAT through the router with router.allow_config_set (issue 12
item 5): every master and replica gets it, as the router's own ACL user (whose rule
allows them only then); a node down is named in the error; the settings are remembered
and reach a node promoted by a topology push and a replica added by a live reload."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator

import pytest
import redis
import yaml
from compat import Raw, wait_for

from router.commands.acl import rule
from slotwarden.acl import AclUser, as_server_args, node_conf, password_hash
from slotwarden.procs import (
    RedisFarm,
    RedisProc,
    RouterProc,
    free_port,
    http_call,
    write_cluster_yaml,
)

ROUTER_USER = "slotwarden-router"
SECRET = "config-set-secret"


class ConfigCluster:
    """2 shards, a master and a replica each, plus a spare listed as a second replica of
    shard a but not started; every node with the router's ACL user (CONFIG SET allowed)."""

    def __init__(self) -> None:
        self.farm = RedisFarm()
        self.admin_password = secrets.token_urlsafe(16)
        self.router_password = router_password = secrets.token_urlsafe(16)
        router_user = AclUser(
            ROUTER_USER, tuple(rule(config_set=True)), password_hash(router_password.encode()), ""
        )
        self.args = as_server_args(node_conf(self.admin_password, [router_user], "unused"))
        self.masters = [self.farm.start(self.args) for _ in range(2)]
        self.replicas = [self.farm.start(self.args) for _ in range(2)]
        self.spare_port = free_port()
        self.spare: RedisProc | None = None
        self.config = os.path.join(self.farm.root, "cluster.yaml")
        self.port, self.admin_port = write_cluster_yaml(
            self.config, self.masters, [[r] for r in self.replicas],
            extra_router={"allow_config_set": True},
        )  # fmt: skip
        data = self.data()
        data["shards"][0]["replicas"].append(f"127.0.0.1:{self.spare_port}")
        data["backend"] = {"username": ROUTER_USER, "password_env": "TEST_ROUTER_PASSWORD"}
        self.write(data)
        log = os.path.join(self.farm.root, "router.log")
        env = {"TEST_ROUTER_PASSWORD": router_password, "SLOTWARDEN_SECRET": SECRET}
        self.router = RouterProc(self.config, self.port, log, env=env).start()

    def data(self) -> dict:
        with open(self.config) as f:
            return yaml.safe_load(f)

    def write(self, data: dict) -> None:
        with open(self.config, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)

    def nodes(self) -> list[RedisProc]:
        return [*self.masters, *self.replicas, *([self.spare] if self.spare else [])]

    def admin(self, node: RedisProc) -> redis.Redis:
        return redis.Redis(port=node.port, password=self.admin_password, socket_timeout=10)

    def setting(self, node: RedisProc, name: str) -> str:
        return self.admin(node).config_get(name)[name]

    def close(self) -> None:
        self.router.stop()
        self.farm.close()


@pytest.fixture
def cc() -> Iterator[ConfigCluster]:
    c = ConfigCluster()
    try:
        yield c
    finally:
        c.close()


def test_config_set_reaches_every_node_and_later_ones(cc: ConfigCluster) -> None:
    r = redis.Redis(port=cc.port, socket_timeout=10)
    spare = f"127.0.0.1:{cc.spare_port}"
    # the spare is down: named in the error; the 4 others applied it
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru", "hz", "17")
    text = str(info.value)
    assert text.startswith("CONFIG SET failed on 1 of 5 nodes: ")
    assert f"{spare} (shard a replica): unreachable (Connection refused)" in text
    assert text.endswith("applied on the other 4")
    for node in cc.nodes():
        assert cc.setting(node, "maxmemory-policy") == "allkeys-lru", node.addr
        assert cc.setting(node, "hz") == "17", node.addr
    # a value every node refuses: their own error, as one server says it
    with pytest.raises(redis.ResponseError, match="argument 'hz'"):
        r.config_set("hz", "not-a-number")
    # the spare comes up and a push makes it shard a's master: it gets what was set
    cc.spare = cc.farm.start(cc.args, port=cc.spare_port)
    status, body = http_call(cc.admin_port, "GET", "/topology")
    topo = json.loads(body)
    topo["epoch"] += 1
    old = topo["shards"][0]["master"]
    topo["shards"][0]["master"] = spare
    topo["shards"][0]["replicas"] = [old, cc.replicas[0].addr]
    status, body = http_call(cc.admin_port, "POST", "/topology", json.dumps(topo).encode(), SECRET)
    assert (status, json.loads(body)["applied"]) == (200, True), body
    wait_for(lambda: cc.setting(cc.spare, "hz") == "17", "the remembered hz on the new master")
    assert cc.setting(cc.spare, "maxmemory-policy") == "allkeys-lru"
    # a replica added by a live reload gets it too
    extra = cc.farm.start(cc.args)
    data = cc.data()
    data["shards"][1]["replicas"].append(extra.addr)
    cc.write(data)
    assert json.loads(http_call(cc.admin_port, "POST", "/reload", b"{}", SECRET)[1])["applied"]
    wait_for(lambda: cc.setting(extra, "hz") == "17", "the remembered hz on the new replica")
    # now every node is up: +OK, on all six
    assert r.config_set("hz", 19) is True
    assert r.config_resetstat() is True
    for node in [*cc.nodes(), extra]:
        assert cc.setting(node, "hz") == "19", node.addr
    log = cc.router.log()
    assert "remembered CONFIG SET (maxmemory-policy, hz) applied to " + spare in log
    assert cc.router_password not in log and SECRET not in log


def test_secret_file_and_replication_settings_stay_refused(cc: ConfigCluster) -> None:
    with Raw(cc.port) as c:
        refused = [("requirepass", "x"), ("masterauth", "x"), ("dir", "/tmp"),
                   ("dbfilename", "x.rdb"), ("replica-read-only", "no"), ("port", "1"),
                   ("tls-auth-clients", "no"), ("BIND", "0.0.0.0"),
                   ("enable-debug-command", "yes"), ("cluster-enabled", "yes")]  # fmt: skip
        for name, value in refused:
            reply = c.call("CONFIG", "SET", "hz", "20", name, value)
            assert reply.startswith(
                f"-ERR CONFIG SET failed (possibly related to argument '{name}') - not "
                "allowed through the router".encode()
            ), reply
        assert c.call("CONFIG", "SET", "hz") == (
            b"-ERR wrong number of arguments for 'config|set' command\r\n"
        )
        assert c.call("CONFIG", "SET", "hz", "20", "maxmemory") == (
            b"-ERR wrong number of arguments for 'config|set' command\r\n"
        )
    for node in cc.nodes():  # nothing was applied anywhere
        assert cc.setting(node, "hz") == "10"


def test_refused_by_default(fresh) -> None:
    with Raw(fresh.port) as c:
        for command in (("CONFIG", "SET", "hz", "20"), ("CONFIG", "RESETSTAT")):
            assert c.call(*command) == b"-ERR command not allowed through the router\r\n"
    assert fresh.shard_client(0).config_get("hz")["hz"] == "10"
