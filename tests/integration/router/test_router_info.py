"""INFO, ROLE and CLUSTER through a real router over 3 shards: the router answers like a
standalone Redis 7.0 master (issue 12 item 2).

Field names per section are compared with a real redis-server's INFO; values
are checked against the masters' (memory, keyspace, hits summed) and the
router's own state (clients, commands); ``redis-cli --stat`` prints real numbers.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

import pytest
import redis
from conftest import own_cluster

from router.decide.standalone import PROBES
from slotwarden.cluster.slots import key_hash_slot

SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu",
            "cluster")  # fmt: skip
# Fields a real 7.0 server shows that the router leaves out (router.decide.info says why).
ABSENT = {
    "server": {"atomicvar_api", "gcc_version", "lru_clock"},
    "clients": {
        "client_recent_max_input_buffer",
        "client_recent_max_output_buffer",
        "clients_in_timeout_table",
    },
    "stats": {
        "total_reads_processed",
        "total_writes_processed",
        "reply_buffer_shrinks",
        "reply_buffer_expands",
    },
}
EXTRA = {"server": {"slotwarden_version"}}


def raw_info(client: redis.Redis, *sections: str) -> str:
    """INFO's text as sent (redis-py's parser would hide section headers)."""
    conn = client.connection_pool.get_connection()
    try:
        conn.send_command("INFO", *sections)
        value = conn.read_response()
    finally:
        client.connection_pool.release(conn)
    return value.decode() if isinstance(value, bytes) else str(value)


def parse(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# "):
            current = out.setdefault(line[2:].strip().lower(), {})
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value
    return out


@pytest.fixture(scope="module")
def r(cluster):
    c = cluster.client()
    yield c
    c.close()


def test_every_section_has_a_real_servers_fields(cluster, r, redis_plain) -> None:
    real = parse(raw_info(redis.Redis(port=redis_plain.port), "everything"))
    mine = parse(raw_info(r, "everything"))
    for section in SECTIONS:
        want = set(real[section]) - ABSENT.get(section, set())
        got = set(mine[section])
        assert want <= got, (section, want - got)
        assert got - set(real[section]) <= EXTRA.get(section, set()), (section, got - want)
    for section in ("modules", "commandstats", "errorstats", "keyspace", "router"):
        assert section in mine
    assert mine["latencystats"] == {}  # not timed per command: see router.decide.info


def test_values_are_the_routers_and_the_masters(fresh, r) -> None:
    shards = [fresh.shard_client(i) for i in range(3)]
    for i, s in enumerate(shards):
        s.config_set("maxmemory", str((i + 1) * 100 * 1024 * 1024))
    try:
        for i in range(30):
            r.set(f"k{i}", "v", ex=1000 if i % 2 else None)
        for i in range(10):
            r.get(f"k{i}")
            r.get(f"missing{i}")
        extra = [fresh.client() for _ in range(3)]
        for c in extra:
            c.ping()
        text = raw_info(r)
        info = parse(text)
        sums = [parse(raw_info(s, "everything")) for s in shards]
        server = info["server"]
        assert server["redis_version"] == min(s["server"]["redis_version"] for s in sums)
        assert server["redis_mode"] == "standalone"
        assert int(server["tcp_port"]) == fresh.port
        assert int(server["process_id"]) == fresh.router.proc.pid
        assert int(info["clients"]["connected_clients"]) >= 4
        assert int(info["clients"]["connected_clients"]) == len(
            r.client_list()
        )  # the router's clients
        assert info["replication"]["role"] == "master"
        assert info["replication"]["connected_slaves"] == "0"
        assert info["cluster"]["cluster_enabled"] == "0"
        assert info["memory"]["maxmemory"] == str(600 * 1024 * 1024)
        assert info["memory"]["maxmemory_human"] == "600.00M"
        used = int(info["memory"]["used_memory"])
        masters_used = sum(int(s["memory"]["used_memory"]) for s in sums)
        assert 0.9 * masters_used < used < 1.1 * masters_used
        assert (
            info["keyspace"]["db0"]
            == "keys=30,expires=15," + info["keyspace"]["db0"].split(",", 2)[2]
        )
        stats = info["stats"]
        assert int(stats["keyspace_hits"]) == sum(int(s["stats"]["keyspace_hits"]) for s in sums)
        assert int(stats["keyspace_misses"]) == 10
        assert int(stats["keyspace_hits"]) == 10
        assert int(stats["total_commands_processed"]) >= 50
        assert int(stats["total_connections_received"]) >= 4
        for c in extra:
            c.close()
        cmdstats = parse(raw_info(r, "commandstats"))["commandstats"]
        assert cmdstats["cmdstat_get"].startswith("calls=20,")
        assert r.info("default").keys() == r.info().keys()
    finally:
        for s in shards:
            s.config_set("maxmemory", "0")


def test_section_arguments_behave_as_redis(r) -> None:
    assert list(parse(raw_info(r, "clients", "MEMORY"))) == ["clients", "memory"]
    assert list(parse(raw_info(r, "Replication"))) == ["replication"]
    assert raw_info(r, "nosuchsection") == ""
    default = parse(raw_info(r))
    assert "commandstats" not in default and "keyspace" in default and "server" in default
    assert "commandstats" in parse(raw_info(r, "all"))
    assert "commandstats" in parse(raw_info(r, "everything"))
    assert "commandstats" in parse(raw_info(r, "default", "commandstats"))
    # what redis-py's own test fixture reads
    assert r.info()["arch_bits"] in (32, 64)
    assert r.info()["cluster_enabled"] == 0
    assert r.info("replication")["role"] == "master"


def test_role_answers_like_a_master_without_replicas(r, cluster) -> None:
    assert r.execute_command("ROLE") == [b"master", 0, []]
    r3 = redis.Redis(port=cluster.port, protocol=3)
    assert r3.execute_command("ROLE") == [b"master", 0, []]
    r3.close()


def test_cluster_keyslot_is_local_and_probes_say_cluster_is_disabled(r) -> None:
    for key in (b"a", b"{user1}x", b"\xff\x00", b""):
        assert r.execute_command("CLUSTER", "KEYSLOT", key) == key_hash_slot(key)
    for probe in ("INFO", "NODES", "SLOTS", "SHARDS", "MYID"):
        with pytest.raises(redis.ResponseError, match=r"^This instance has cluster support"):
            r.execute_command("CLUSTER", probe)
    assert "info" in PROBES
    with pytest.raises(redis.ResponseError, match="not allowed"):
        r.execute_command("CLUSTER", "FAILOVER")


def stat_lines(port: int, want: int) -> list[str]:
    """The data lines ``redis-cli --stat -i 0.2`` prints (run on a terminal, so each line
    comes as it is printed), until ``want`` of them or 20 s."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ["redis-cli", "-p", str(port), "--stat", "-i", "0.2"], stdout=slave, stderr=slave
    )
    os.close(slave)
    buf = b""
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while len(lines) < want and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                buf += os.read(master, 4096)
            except OSError:
                break
            *done, buf = buf.split(b"\n")
            lines += [d.decode().strip() for d in done if d.strip()[:1].isdigit()]
    finally:
        proc.kill()
        proc.wait(timeout=10)
        os.close(master)
    return lines


def test_redis_cli_stat_prints_real_numbers(cluster) -> None:
    r = cluster.client()
    r.set("statkey", "v")
    lines = stat_lines(cluster.port, 3)
    assert len(lines) >= 3, lines
    for line in lines:
        assert "-9223372036854775808" not in line, line
        keys, mem, clients, blocked, requests = line.split()[:5]
        assert int(keys) >= 1 and mem[0].isdigit() and int(clients) >= 2 and blocked == "0"
        assert int(requests) > 0
    r.close()


def test_the_routers_own_sections_answer_while_a_shard_is_down() -> None:
    with own_cluster() as c:
        r = c.client()
        assert r.info()["redis_mode"] == "standalone"
        c.masters[1].kill(signal.SIGKILL)
        assert r.info("replication")["role"] == "master"
        assert r.execute_command("ROLE") == [b"master", 0, []]
        with pytest.raises(redis.exceptions.ClusterDownError, match=r"shard b is unavailable"):
            r.info()
        r.close()
