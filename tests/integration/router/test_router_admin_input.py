"""Bad input to the router's admin endpoint: a 400 with a one-line reason, never a 500.

Issue 10, item 8: a 300-shard topology (OverflowError), a 100,000-deep JSON
body (RecursionError) and other malformed pushes gave a 500 with a traceback,
and a top-level JSON array a raw Python error text. Item 6: epochs must be
integers in range (``true``, 1.5, 2**63 were accepted or crashed).
"""

from __future__ import annotations

import json

import pytest
from conftest import own_cluster

from slotwarden.procs import http_call

SECRET = "test-secret-input"


@pytest.fixture(scope="module")
def admin_cluster():
    with own_cluster(env={"SLOTWARDEN_SECRET": SECRET}) as c:
        yield c


def send(cluster, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    """Status and raw body text (a 500 from aiohttp is not JSON)."""
    return http_call(cluster.admin_port, method, path, body, SECRET)


def shards_body(count: int, epoch: object = 5) -> dict:
    step = 16384 // count
    shards = []
    for i in range(count):
        last = 16383 if i == count - 1 else (i + 1) * step - 1
        shards.append(
            {"name": f"s{i}", "slots": f"{i * step}-{last}", "master": f"127.0.0.1:{i + 1}"}
        )
    return {"epoch": epoch, "shards": shards}


RAW_BODIES: list[tuple[str, bytes]] = [
    ("not json", b"{nope"),
    ("not utf-8", b'{"a": "\xff\xfe"}'),
    ("array", b"[1, 2, 3]"),
    ("string", b'"x"'),
    ("null", b"null"),
    ("deep", b"[" * 100_000 + b"]" * 100_000),
    ("deep object", b'{"a": ' * 100_000 + b"1" + b"}" * 100_000),
    ("nan epoch", b'{"epoch": NaN, "shards": []}'),
]
TOPOLOGIES: list[tuple[str, object]] = [
    ("300 shards", shards_body(300)),
    ("epoch true", shards_body(1, epoch=True)),
    ("epoch 1.5", shards_body(1, epoch=1.5)),
    ("epoch -1", shards_body(1, epoch=-1)),
    ("epoch 2**63", shards_body(1, epoch=1 << 63)),
    ("epoch 10**30", shards_body(1, epoch=10**30)),
    ("no shards", {"epoch": 7}),
    ("shards not a list", {"epoch": 7, "shards": "x"}),
    ("shard not an object", {"epoch": 7, "shards": [[1, 2]]}),
    ("port 0", {"epoch": 7, "shards": [{"name": "a", "slots": "0-16383", "master": "h:0"}]}),
    ("slot 99999", {"epoch": 7, "shards": [{"name": "a", "slots": "0-99999", "master": "h:1"}]}),
    (
        "replicas not a list",
        {"epoch": 7, "shards": [{"name": "a", "slots": "0-16383", "master": "h:1", "replicas": 5}]},
    ),
]
CASES = RAW_BODIES + [(name, json.dumps(t).encode()) for name, t in TOPOLOGIES]


@pytest.mark.parametrize("body", [b for _, b in CASES], ids=[n for n, _ in CASES])
def test_bad_topology_pushes_get_400_and_change_nothing(admin_cluster, body: bytes) -> None:
    before = send(admin_cluster, "GET", "/topology")
    status, text = send(admin_cluster, "POST", "/topology", body)
    assert status == 400, (status, text[-500:])
    reason = json.loads(text)["error"]
    assert reason.startswith("bad topology: ") and "\n" not in reason and len(reason) <= 214
    assert "indices" not in reason  # not Python's own words (was: a top-level array)
    assert send(admin_cluster, "GET", "/topology") == before
    assert send(admin_cluster, "GET", "/health") == (200, '{"ok": true}')
