"""The sentinels' own ACL user (issue 10 item 2): every call of probe and actuator works with it.

A real master and replica carry the users `slotwarden up` writes (router,
sentinels, replication, a password-protected default user). With
``sentinel.backend`` the sentinel's probe, every actuator call and the pass over
cluster.yaml's ``redis:`` block (CONFIG GET/SET, sentinel.act.redisconf) succeed;
with the router's user instead (no ``sentinel.backend``) the ones a failover
needs are refused, which is why the sentinels need a user of their own. The
replica replicates as the replication user. A kill -9 failover with these
users is `tests/integration/test_up.py::test_up_sentinels_fail_over_a_killed_master`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from sentinel.act import probe
from sentinel.act.actuator import Actuator
from sentinel.act.probe import Prober, connect
from sentinel.act.redisconf import RedisConfigApplier
from sentinel.decide.model import Event, NodeRole, Timing
from slotwarden.acl import (
    AclUser,
    as_server_args,
    node_conf,
    password_hash,
    replication_user,
    router_rule,
    sentinel_rule,
)
from slotwarden.cluster import config as cfg
from slotwarden.cluster.topology import Address
from slotwarden.procs import RedisFarm

ROUTER_PW = secrets.token_urlsafe(16)
SENTINEL_PW = secrets.token_urlsafe(16)
ADMIN_PW = secrets.token_urlsafe(16)
TIMING = Timing(down_after=2.0, probe_interval=0.1, failover_timeout=5.0)


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Address, Address]]:
    users = [
        AclUser("slotwarden-router", router_rule(), password_hash(ROUTER_PW.encode()), ""),
        AclUser("slotwarden-sentinel", sentinel_rule(), password_hash(SENTINEL_PW.encode()), ""),
    ]
    repl_pw = secrets.token_urlsafe(16)
    args = as_server_args(node_conf(ADMIN_PW, [*users, replication_user(repl_pw.encode())],
                                    repl_pw))  # fmt: skip
    farm = RedisFarm()
    try:
        master = farm.start(args)
        replica = farm.start([*args, "--replicaof", "127.0.0.1", str(master.port)])
        admin = redis.Redis(port=replica.port, password=ADMIN_PW)
        deadline = time.monotonic() + 10
        while admin.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replication user cannot sync"
            time.sleep(0.05)
        yield Address("127.0.0.1", master.port), Address("127.0.0.1", replica.port)
    finally:
        farm.close()


def config_for(master: Address, replica: Address, own_user: bool) -> cfg.ClusterConfig:
    sentinel: dict[str, object] = {
        "quorum": 1,
        "down_after_ms": 2000,
        "failover_timeout_ms": 5000,
        "peers": [{"id": "s1", "listen": "127.0.0.1:1"}],
    }
    if own_user:
        sentinel["backend"] = {"username": "slotwarden-sentinel", "password_env": "T_SENTINEL"}
    return cfg.parse(
        {
            "name": "acl",
            "router": {"listen": "127.0.0.1:2", "admin": "127.0.0.1:3"},
            "shards": [
                {
                    "name": "a",
                    "slots": "0-16383",
                    "master": str(master),
                    "replicas": [str(replica)],
                }
            ],
            "backend": {"username": "slotwarden-router", "password_env": "T_ROUTER"},
            "sentinel": sentinel,
        }
    )


@pytest.fixture(autouse=True)
def passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("T_ROUTER", ROUTER_PW)
    monkeypatch.setenv("T_SENTINEL", SENTINEL_PW)
    saved = dict(probe._AUTH), list(probe._DEFAULT_AUTH)
    yield
    probe._AUTH.clear()
    probe._AUTH.update(saved[0])
    probe._DEFAULT_AUTH[:] = saved[1]


async def every_call(master: Address, replica: Address) -> dict[str, bool]:
    """Run each thing the sentinel sends; what succeeded."""
    done: dict[str, bool] = {}
    prober = Prober(master, TIMING, "slotwarden-sentinel-test")
    client = connect(master, 2.0, "slotwarden-sentinel-test")
    try:
        await prober.probe_once(client)
        done["probe"] = prober.obs.role is NodeRole.MASTER
    except Exception:
        done["probe"] = False
    finally:
        await client.aclose()
    act = Actuator("slotwarden-sentinel-test", 2.0, {})
    done["role"] = await act.check_master(master)
    done["pause"] = await act.pause_writes(master, 50)
    done["unpause"] = await act.unpause(master)
    done["caught_up"] = await act.caught_up(master, replica)
    done["repoint"] = await act.repoint(replica, master)
    done["promote"] = await act.promote(replica)
    if done["promote"]:
        assert await act.repoint(replica, master)
    done["redis_config"] = await apply_redis_config(master, replica)
    return done


async def apply_redis_config(master: Address, replica: Address) -> bool:
    """The sentinels' pass of cluster.yaml's redis: block (CONFIG GET, CONFIG SET) sets a
    value each node does not have yet."""
    admin = redis.Redis(port=master.port, password=ADMIN_PW, decode_responses=True)
    try:
        value = int(admin.config_get("maxmemory-samples")["maxmemory-samples"]) % 60 + 1
    finally:
        admin.close()
    config = dataclasses.replace(
        config_for(master, replica, own_user=True), redis=(("maxmemory-samples", str(value)),)
    )
    events: list[Event] = []
    applier = RedisConfigApplier("s1", "slotwarden-sentinel-test", lambda: (config,
                                 config.slotmap()), {}, events.append)  # fmt: skip
    try:
        await applier.apply_once(config, config.slotmap())
    finally:
        await applier.close(applier.clients)
    return not applier.drift and [e.kind for e in events] == ["redis-config"] * 2


def test_every_sentinel_call_works_with_the_sentinel_user(nodes) -> None:
    master, replica = nodes
    probe.set_backend_auth(config_for(master, replica, own_user=True))
    done = asyncio.run(every_call(master, replica))
    assert all(done.values()), done


def test_the_routers_user_cannot_do_a_sentinels_work(nodes) -> None:
    master, replica = nodes
    probe.set_backend_auth(config_for(master, replica, own_user=False))
    done = asyncio.run(every_call(master, replica))
    assert not any(done.values()), done
