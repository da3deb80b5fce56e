"""cluster.yaml's ``redis:`` blocks (issue 13, shard config): parsing, refusals, the merge
of the top block with a shard's, and values normalised the way Redis reports them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from slotwarden.cluster import config as cfg
from slotwarden.cluster.errors import ConfigError
from slotwarden.cluster.redisconf import normalise, same, server_args, settings_for

BASE = {
    "name": "t",
    "router": {"listen": "127.0.0.1:7777"},
    "shards": [
        {"name": "a", "slots": "0-8191", "master": "127.0.0.1:7001"},
        {"name": "b", "slots": "8192-16383", "master": "127.0.0.1:7002"},
    ],
}


def parse(top: object = None, shard_a: object = None) -> cfg.ClusterConfig:
    data = copy.deepcopy(BASE)
    if top is not None:
        data["redis"] = top
    if shard_a is not None:
        data["shards"][0]["redis"] = shard_a
    return cfg.parse(data)


def problems(top: object = None, shard_a: object = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(top, shard_a)
    return exc.value.problems


def test_no_block_means_no_settings() -> None:
    config = parse()
    assert config.redis == () and config.shards[0].redis == ()
    assert settings_for(config, "a") == {}


def test_top_block_normalised_as_redis_reports_it() -> None:
    config = parse(
        {
            "maxmemory": "100mb",
            "maxmemory-policy": "ALLKEYS-LRU",
            "lazyfree-lazy-eviction": True,  # YAML's yes
            "replica-ignore-maxmemory": "no",
            "hz": 50,
            "notify-keyspace-events": "Ex",
            "active-defrag-ignore-bytes": "1gb",
            "maxmemory-clients": "10%",
        }
    )
    assert dict(config.redis) == {
        "maxmemory": "104857600",
        "maxmemory-policy": "allkeys-lru",
        "lazyfree-lazy-eviction": "yes",
        "replica-ignore-maxmemory": "no",
        "hz": "50",
        "notify-keyspace-events": "Ex",
        "active-defrag-ignore-bytes": "1073741824",
        "maxmemory-clients": "10%",
    }


@pytest.mark.parametrize(
    ("text", "bytes_"),
    [("100mb", 104857600), ("100MB", 104857600), ("1g", 10**9), ("1gb", 2**30),
     ("5k", 5000), ("5kb", 5120), ("10b", 10), ("0", 0), (12345, 12345)],
)  # fmt: skip
def test_sizes_as_redis_memtoull_takes_them(text: object, bytes_: int) -> None:
    assert normalise("maxmemory", text) == str(bytes_)


def test_shard_block_overrides_the_top_one_key_by_key() -> None:
    config = parse(
        {"maxmemory": "100mb", "maxmemory-policy": "allkeys-lru"},
        {"maxmemory": "1gb", "timeout": 300},
    )
    assert settings_for(config, "a") == {
        "maxmemory": "1073741824", "maxmemory-policy": "allkeys-lru", "timeout": "300",
    }  # fmt: skip
    assert settings_for(config, "b") == {
        "maxmemory": "104857600", "maxmemory-policy": "allkeys-lru",
    }  # fmt: skip
    # a shard no longer in the file (a draining migration source): the top block only
    assert settings_for(config, "gone") == dict(config.redis)
    assert server_args(settings_for(config, "a")) == [
        "--maxmemory", "1073741824", "--maxmemory-policy", "allkeys-lru", "--timeout", "300",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "key", ["dir", "dbfilename", "port", "bind", "requirepass", "masterauth", "replicaof",
            "tls-port", "tls-cert-file", "aclfile", "rename-command", "protected-mode",
            "save", "appendonly", "cluster-enabled", "enable-debug-command"],
)  # fmt: skip
def test_settings_slotwarden_owns_are_refused_naming_the_key(key: str) -> None:
    (problem,) = problems({key: "x"})
    assert problem.startswith(f"redis.{key}: ")
    assert "not settable from cluster.yaml" in problem


def test_refusals_name_the_key_in_a_shard_block_and_every_problem_is_listed() -> None:
    found = problems(
        {"maxmemry": "1mb", "maxmemory-policy": "lru", "hz": 0},
        {"dir": "/tmp", "maxmemory": "lots", "timeout": 1.5},
    )
    assert "shards[0].redis.dir: set by slotwarden up / not settable from cluster.yaml" in found
    assert any(p.startswith("shards[0].redis.maxmemory: must be a size") for p in found)
    assert "shards[0].redis.timeout: must be an integer, got 1.5" in found
    assert any(
        p.startswith("redis.maxmemry: not among the settings") and "'maxmemory'" in p for p in found
    )
    assert any(p.startswith("redis.maxmemory-policy: must be one of") for p in found)
    assert "redis.hz: must be in 1..500 (Redis's range), got 0" in found
    assert len(found) == 6, found


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ([1, 2], "redis: must be a mapping of Redis config names to values"),
        ({"maxmemory": [1]}, "redis.maxmemory: must be a size"),
        ({"maxmemory": None}, "redis.maxmemory: must be a size"),
        ({"maxmemory": "-1"}, "redis.maxmemory: must be a size"),
        ({"lazyfree-lazy-eviction": "maybe"}, "redis.lazyfree-lazy-eviction: must be yes or no"),
        ({"hz": True}, "redis.hz: must be"),
        ({"notify-keyspace-events": "Eq"}, "redis.notify-keyspace-events: 'Eq' has flags"),
        ({"maxmemory": 1, "MAXMEMORY": 2}, "redis.MAXMEMORY: maxmemory is set twice"),
    ],
)
def test_values_must_be_scalars_redis_takes(block: object, message: str) -> None:
    found = problems(block)
    assert any(p.startswith(message) for p in found), found


def test_same_compares_as_redis_reports() -> None:
    assert same("maxmemory", "104857600", "104857600")
    assert not same("maxmemory", "104857600", "0")
    assert same("maxmemory-policy", "allkeys-lru", "allkeys-lru")
    assert same("lazyfree-lazy-eviction", "yes", "yes")
    # notify-keyspace-events: Redis reorders the flags and says "A" for g$lshzxetd
    assert same("notify-keyspace-events", "Ex", "xE")
    assert same("notify-keyspace-events", "KEg$lshzxetd", "AKE")
    # ... and drops "n" from its answer when "A" is set (Redis 7.0)
    assert same("notify-keyspace-events", "AKEn", "AKE")
    assert not same("notify-keyspace-events", "Ex", "")
    assert same("notify-keyspace-events", "", "")


def test_the_bundled_example_block_parses(tmp_path: Path) -> None:
    """Both cluster.yaml copies carry the same commented example; uncommented, it loads."""
    repo = Path(__file__).resolve().parents[3]
    texts = [
        (repo / "cluster.yaml").read_text(),
        (repo / "slotwarden" / "cluster.yaml").read_text(),
    ]
    assert texts[0] == texts[1]
    example = "# redis:\n#   maxmemory: 100mb\n#   maxmemory-policy: allkeys-lru\n"
    assert example in texts[0]
    path = tmp_path / "cluster.yaml"
    path.write_text(texts[0].replace(example, example.replace("# ", "").replace("#", "")))
    config = cfg.load(path)
    assert dict(config.redis) == {"maxmemory": "104857600", "maxmemory-policy": "allkeys-lru"}
    assert yaml.safe_load(path.read_text())["redis"]["maxmemory"] == "100mb"
