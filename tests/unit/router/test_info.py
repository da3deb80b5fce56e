"""INFO built from the router's facts and the masters' INFO (router.decide.info)."""

from __future__ import annotations

import hiredis
import pytest

from router.decide import info
from router.decide.info import RouterFacts
from slotwarden.resp.encode import encode_bulk

FACTS = RouterFacts(
    server={"redis_version": "7.0.0", "redis_mode": "standalone", "tcp_port": 7000},
    clients={"connected_clients": 4, "blocked_clients": 1},
    stats={"total_commands_processed": 100, "total_connections_received": 9},
    replication={"role": "master", "connected_slaves": 0},
    cpu={"used_cpu_sys": "0.500000"},
    commands={"get": (10, 2, 1)},
    errors={"CROSSSLOT": 3, "ERR": 1},
    router={"shards": 3},
)


def master(version: str, used: int, maxmemory: int, policy: str, hits: int, errs: int,
           keys: int, expires: int, ttl: int) -> bytes:  # fmt: skip
    return encode_bulk(
        (
            f"# Server\r\nredis_version:{version}\r\nprocess_id:1\r\n\r\n"
            f"# Memory\r\nused_memory:{used}\r\nused_memory_human:x\r\nused_memory_peak:{used * 2}"
            f"\r\nused_memory_peak_perc:1.00%\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:x\r\n"
            f"maxmemory_policy:{policy}\r\nmem_fragmentation_ratio:9.99\r\nused_memory_rss:{used}"
            f"\r\nmem_allocator:jemalloc-5.3.0\r\n\r\n"
            f"# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:{hits}\r\n"
            f"rdb_last_bgsave_status:ok\r\nrdb_last_save_time:{1000 + hits}\r\n\r\n"
            f"# Stats\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:1\r\nexpired_keys:2\r\n"
            f"total_commands_processed:999999\r\nsync_full:5\r\n\r\n"
            f"# Errorstats\r\nerrorstat_WRONGTYPE:count={errs}\r\n\r\n"
            f"# Keyspace\r\ndb0:keys={keys},expires={expires},avg_ttl={ttl}\r\n"
        ).encode()
    )


PARTS = [
    master("7.0.15", 1 << 20, 1 << 20, "noeviction", 5, 1, 10, 2, 100),
    master("7.0.4", 3 << 20, 3 << 20, "noeviction", 7, 2, 5, 6, 1000),
    master("7.2.0", 0, 0, "allkeys-lru", 1, 0, 0, 0, 0),
]


def merged(*sections: bytes) -> dict[str, dict[str, str]]:
    answer = info.plan(list(sections), FACTS, ["a", "b", "c"])
    assert isinstance(answer, tuple)
    request, merger = answer
    assert request.startswith(b"*7\r\n$4\r\nINFO\r\n$8\r\nkeyspace\r\n")
    reader = hiredis.Reader()
    reader.feed(merger(PARTS))
    return parse(reader.gets())


def parse(text: bytes) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.decode().split("\r\n"):
        if line.startswith("# "):
            current = out.setdefault(line[2:], {})
        elif line:
            k, _, v = line.partition(":")
            current[k] = v
    return out


def test_server_is_the_routers_with_the_lowest_master_version() -> None:
    got = merged(b"server")
    assert list(got) == ["Server"]
    assert got["Server"] == {"redis_version": "7.0.4", "redis_mode": "standalone",
                             "tcp_port": "7000"}  # fmt: skip


def test_memory_is_summed_and_recomputed() -> None:
    mem = merged(b"memory")["Memory"]
    assert mem["used_memory"] == str(4 << 20)
    assert mem["used_memory_human"] == "4.00M"
    assert mem["used_memory_peak_perc"] == "50.00%"
    assert mem["maxmemory"] == "0"  # one master has no limit: neither has the whole
    assert mem["maxmemory_policy"] == "mixed"
    assert mem["mem_fragmentation_ratio"] == "1.00"
    assert mem["mem_allocator"] == "jemalloc-5.3.0"


def test_persistence_stats_errors_keyspace() -> None:
    got = merged(b"everything")
    assert got["Persistence"]["loading"] == "0"
    assert got["Persistence"]["rdb_changes_since_last_save"] == "13"
    assert got["Persistence"]["rdb_last_save_time"] == "1001"  # the oldest
    assert got["Persistence"]["rdb_last_bgsave_status"] == "ok"
    stats = got["Stats"]
    assert stats["keyspace_hits"] == "13" and stats["keyspace_misses"] == "3"
    assert stats["total_commands_processed"] == "100"  # the router's, not the masters'
    assert "sync_full" not in stats
    assert stats["total_error_replies"] == "7"  # 3 WRONGTYPE from masters + 4 own
    assert got["Errorstats"] == {"errorstat_CROSSSLOT": "count=3", "errorstat_ERR": "count=1",
                                 "errorstat_WRONGTYPE": "count=3"}  # fmt: skip
    assert got["Keyspace"] == {"db0": "keys=15,expires=8,avg_ttl=775"}
    assert got["Commandstats"] == {
        "cmdstat_get": "calls=10,usec=0,usec_per_call=0.00,rejected_calls=2,failed_calls=1"
    }
    assert got["Cluster"] == {"cluster_enabled": "0"}
    assert got["Router"] == {"shards": "3"}
    assert got["Modules"] == {} and got["Latencystats"] == {}


@pytest.mark.parametrize(
    ("args", "sections"),
    [
        ([], info.DEFAULT),
        ([b"default"], info.DEFAULT),
        ([b"ALL"], info.ALL),
        ([b"everything"], info.ALL),
        ([b"Clients", b"memory"], {"clients", "memory"}),
        ([b"nosuch"], set()),
        ([b"default", b"commandstats"], info.DEFAULT | {"commandstats"}),
    ],
)
def test_section_selection_is_redis_7(args: list[bytes], sections: set[str]) -> None:
    assert info.select(args) == sections


def test_router_only_sections_are_answered_without_the_masters() -> None:
    answer = info.plan([b"replication", b"clients"], FACTS, [])
    assert isinstance(answer, bytes)
    text = answer.split(b"\r\n", 1)[1]
    assert text.startswith(b"# Clients\r\nconnected_clients:4\r\nblocked_clients:1\r\n\r\n")
    assert b"# Replication\r\nrole:master\r\nconnected_slaves:0\r\n" in text
    assert info.plan([b"nosuch"], FACTS, []) == b"$0\r\n\r\n"


def test_a_shards_error_or_a_malformed_reply_is_the_answer() -> None:
    answer = info.plan([], FACTS, ["a", "b"])
    assert isinstance(answer, tuple)
    merger = answer[1]
    assert merger([PARTS[0], b"-ERR down\r\n"]) == b"-ERR down\r\n"
    assert merger([PARTS[0], b":1\r\n"]).startswith(b"-ERR router expected an INFO bulk string")


def test_resp3_verbatim_parts_are_read() -> None:
    text = b"txt:# Keyspace\r\ndb0:keys=4,expires=0,avg_ttl=0\r\n"
    verbatim = b"=%d\r\n%s\r\n" % (len(text), text)
    answer = info.plan([b"keyspace"], FACTS, ["a"])
    assert isinstance(answer, tuple)
    assert b"db0:keys=4,expires=0,avg_ttl=0" in answer[1]([verbatim])


def test_human() -> None:
    assert [info.human(n) for n in (0, 1023, 1536, 1 << 20, 3 << 30)] == [
        "0B", "1023B", "1.50K", "1.00M", "3.00G"]  # fmt: skip
