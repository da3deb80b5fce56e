"""Bad input to a sentinel's HTTP endpoint: a 400 with a one-line reason, never a 500.

Issue 10, items 6 and 8: ``GET /topology?timeout=nan`` used to stall the run
cycle until restart (with ``/health`` still 200); a 300-shard topology, a
100,000-deep JSON body or a top-level JSON array gave a 500 with a traceback.
"""

from __future__ import annotations

import json
import time

import pytest
from test_sentinel_harness import SECRET, SentinelCluster, sentinel_cluster

from slotwarden.procs import http_call


@pytest.fixture(scope="module")
def one():
    with sentinel_cluster(sentinels=1, quorum=1, replicas=1) as sc:
        sc.start("s1")
        yield sc


def send(sc: SentinelCluster, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    """Status and raw body text (a 500 from aiohttp is not JSON)."""
    return http_call(sc.ports["s1"], method, path, body, SECRET)


def assert_400(status: int, text: str) -> str:
    assert status == 400, (status, text)
    reason = json.loads(text)["error"]
    assert isinstance(reason, str) and reason and "\n" not in reason and len(reason) <= 200
    assert "Traceback" not in reason and "indices" not in reason  # not Python's own words
    return reason


@pytest.mark.parametrize(
    "query",
    [
        "timeout=nan",
        "timeout=NaN",
        "timeout=inf",
        "timeout=-inf",
        "timeout=-1",
        "timeout=1e400",
        "timeout=abc",
        "after=nan",
        "after=1.5",
        "after=-2",
        f"after={1 << 63}",
        "after=" + "9" * 40,
        "router=127.0.0.1:0",
        "router=127.0.0.1:65536",
        "router=127.0.0.1:nan",
    ],
)
def test_bad_query_fields_get_400(one, query: str) -> None:
    assert_400(*send(one, "GET", f"/topology?{query}"))


def test_timeout_nan_does_not_stall_the_sentinel(one) -> None:
    send(one, "GET", "/topology?after=0&timeout=nan")
    # the run cycle keeps going: /health stays 200 well past several probe intervals
    time.sleep(1.5)
    status, text = send(one, "GET", "/health")
    assert status == 200, text
    # and a good long poll still times out on time
    started = time.monotonic()
    status, _ = send(one, "GET", "/topology?after=0&timeout=0.3")
    assert status == 200 and time.monotonic() - started < 5


def good_topology(sc: SentinelCluster) -> dict:
    return sc.topology("s1")


BAD_BODIES: list[tuple[str, bytes]] = [
    ("not json", b"{nope"),
    ("not utf-8", b'{"a": "\xff\xfe"}'),
    ("array", b"[1, 2, 3]"),
    ("string", b'"x"'),
    ("null", b"null"),
    ("deep", b"[" * 100_000 + b"]" * 100_000),
    ("deep object", b'{"a": ' * 100_000 + b"1" + b"}" * 100_000),
    ("nan", b'{"epoch": NaN}'),
]


@pytest.mark.parametrize("path", ["/topology", "/vote", "/failover"])
@pytest.mark.parametrize("name,body", BAD_BODIES, ids=[n for n, _ in BAD_BODIES])
def test_bad_bodies_get_400(one, path: str, name: str, body: bytes) -> None:
    assert_400(*send(one, "POST", path, body))


def shards_body(count: int, epoch: int = 5) -> dict:
    step = 16384 // count
    shards = []
    for i in range(count):
        last = 16383 if i == count - 1 else (i + 1) * step - 1
        shards.append(
            {"name": f"s{i}", "slots": f"{i * step}-{last}", "master": f"127.0.0.1:{i + 1}"}
        )
    return {"epoch": epoch, "shards": shards}


@pytest.mark.parametrize(
    "body",
    [
        shards_body(300),
        {"epoch": True, "shards": []},
        {"epoch": 1.5, "shards": []},
        {"epoch": -1, "shards": []},
        {"epoch": 1 << 63, "shards": []},
        {"epoch": 10**30, "shards": []},
        {"epoch": 7},
        {"epoch": 7, "shards": "x"},
        {"epoch": 7, "shards": [[1, 2]]},
        {"epoch": 7, "shards": [{"name": "a", "slots": "0-16383", "master": "h:0"}]},
        {"epoch": 7, "shards": [{"name": "a", "slots": "0-99999", "master": "h:1"}]},
        {"epoch": 7, "shards": [{"name": "a", "slots": "0-16383", "master": "h:1", "replicas": 5}]},
    ],
    ids=lambda b: json.dumps(b)[:40],
)
def test_bad_topologies_get_400_and_change_nothing(one, body: dict) -> None:
    before = good_topology(one)
    assert_400(*send(one, "POST", "/topology", json.dumps(body).encode()))
    assert good_topology(one) == before


@pytest.mark.parametrize(
    "body",
    [
        {"epoch": 1 << 63, "candidate": "s1"},
        {"epoch": 10**30, "candidate": "s1"},
        {"epoch": 1e300, "candidate": "s1"},
        {"epoch": True, "candidate": "s1"},
        {"epoch": 1, "candidate": ["s1"]},
        {"epoch": 1, "candidate": {"a": 1}},
    ],
    ids=lambda b: json.dumps(b)[:40],
)
def test_bad_votes_get_400(one, body: dict) -> None:
    assert_400(*send(one, "POST", "/vote", json.dumps(body).encode()))


@pytest.mark.parametrize(
    "body",
    [
        {"shard": ["a"]},
        {"shard": {"a": 1}},
        {"shard": "shard0", "to": 5},
        {"shard": "shard0", "to": ["127.0.0.1:1"]},
        {"shard": "shard0", "to": "127.0.0.1:0"},
        {"shard": "shard0", "to": "127.0.0.1:99999"},
    ],
    ids=lambda b: json.dumps(b)[:40],
)
def test_bad_failovers_get_400(one, body: dict) -> None:
    shard = good_topology(one)["shards"][0]["name"]
    if body.get("shard") == "shard0":
        body = {**body, "shard": shard}
    assert_400(*send(one, "POST", "/failover", json.dumps(body).encode()))


def test_health_is_still_200_after_all_that(one) -> None:
    status, text = send(one, "GET", "/health")
    assert status == 200, text
