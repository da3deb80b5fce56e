"""Our hash slot agrees with a real redis-server's CLUSTER KEYSLOT."""

from __future__ import annotations

import random

import pytest
import redis

from slotwarden.cluster.slots import key_hash_slot


@pytest.fixture(scope="module")
def client(redis_cluster_node):
    c = redis.Redis(host=redis_cluster_node.host, port=redis_cluster_node.port)
    yield c
    c.close()


def server_slots(client: redis.Redis, keys: list[bytes]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("CLUSTER", "KEYSLOT", key)
    return [int(v) for v in pipe.execute()]


def random_keys(count: int, seed: int = 20240601) -> list[bytes]:
    rng = random.Random(seed)
    braces = b"{}{}{}ab\x00\xff"
    keys: list[bytes] = []
    for i in range(count):
        kind = i % 4
        if kind == 0:  # arbitrary binary, any byte value
            key = rng.randbytes(rng.randrange(0, 40))
        elif kind == 1:  # dense in braces: exercises every hash-tag edge case
            key = bytes(rng.choice(braces) for _ in range(rng.randrange(0, 12)))
        elif kind == 2:  # prefix{tag}suffix with binary parts
            key = (
                rng.randbytes(rng.randrange(0, 8))
                + b"{"
                + rng.randbytes(rng.randrange(0, 8))
                + b"}"
                + rng.randbytes(rng.randrange(0, 8))
            )
        else:  # printable application-style keys
            key = f"user:{rng.randrange(10**6)}:{rng.choice(['a', '{x}', '{}', '{{y}}'])}".encode()
        keys.append(key)
    return keys


def test_random_keys_match_server(client):
    keys = random_keys(10_000)
    assert sum(b"{" in k and b"}" in k for k in keys) > 2000  # tags really are exercised
    expected = server_slots(client, keys)
    mismatches = [
        (k, ours, theirs)
        for k, ours, theirs in zip(keys, map(key_hash_slot, keys), expected, strict=True)
        if ours != theirs
    ]
    assert mismatches == []


EDGE_KEYS = [
    b"",
    b"{}",
    b"{{a}}",
    b"{a}{b}",
    b"a{}b{c}",
    b"{",
    b"}",
    b"}{",
    b"foo{}{bar}",
    b"foo{{bar}}zap",
    b"foo{bar}{zap}",
    b"123456789",
    b"\x00",
    b"a\x00b{\x00}c",
    b"\xff\xfe{\xff}",
    b"{\x00\xff}\x00",
    b"\xff{}\xff",
    bytes(range(256)),
]


def test_edge_cases_match_server(client):
    assert [key_hash_slot(k) for k in EDGE_KEYS] == server_slots(client, EDGE_KEYS)
