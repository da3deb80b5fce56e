"""cluster.yaml loading and validation, and the topology model it produces."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from slotwarden.cluster import config as cfg
from slotwarden.cluster.errors import ConfigError
from slotwarden.cluster.slots import SLOT_COUNT
from slotwarden.cluster.topology import Address, Shard, SlotMap

REPO = Path(__file__).resolve().parents[3]
BUNDLED = REPO / "cluster.yaml"
PACKAGED = REPO / "slotwarden" / "cluster.yaml"


def base() -> dict:
    """The bundled cluster.yaml as plain data, to be broken one way per test."""
    return yaml.safe_load(BUNDLED.read_text())


def problems_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfg.parse(data)
    return info.value.problems


def only_problem(data: object) -> str:
    found = problems_of(data)
    assert len(found) == 1, found
    return found[0]


# -- the bundled file ------------------------------------------------------


def test_bundled_file_loads():
    c = cfg.load(BUNDLED)
    assert c.name == "demo"
    assert c.path == str(BUNDLED)
    assert c.router.listen == Address("127.0.0.1", 7777)
    assert c.router.admin == Address("127.0.0.1", 7780)
    assert [s.name for s in c.shards] == ["a", "b", "c"]
    assert [s.slots for s in c.shards] == [((0, 5460),), ((5461, 10922),), ((10923, 16383),)]
    assert [str(s.master) for s in c.shards] == [
        "127.0.0.1:7001",
        "127.0.0.1:7002",
        "127.0.0.1:7003",
    ]
    assert [[str(r) for r in s.replicas] for s in c.shards] == [
        ["127.0.0.1:7101"],
        ["127.0.0.1:7102"],
        ["127.0.0.1:7103"],
    ]
    s = c.sentinel
    assert s is not None
    assert (s.quorum, s.down_after_ms, s.failover_timeout_ms) == (2, 1000, 10000)
    assert s.secret_env == "SLOTWARDEN_SECRET"
    assert [(p.id, str(p.listen)) for p in s.peers] == [
        ("s1", "127.0.0.1:26701"),
        ("s2", "127.0.0.1:26702"),
        ("s3", "127.0.0.1:26703"),
    ]


def test_bundled_slotmap_covers_all_slots():
    m = cfg.load(BUNDLED).slotmap(epoch=3)
    assert m.epoch == 3
    assert len(m.owner) == SLOT_COUNT
    assert set(m.owner) == {0, 1, 2}
    assert [m.ranges_of(i) for i in range(3)] == ["0-5460", "5461-10922", "10923-16383"]
    assert m.shards[0] == Shard("a", Address("127.0.0.1", 7001), (Address("127.0.0.1", 7101),))


def test_packaged_copy_is_identical():
    assert PACKAGED.read_bytes() == BUNDLED.read_bytes()


def test_bundled_file_sets_every_router_key_to_its_default():
    # The bundled file documents every default; keep the two in step.
    explicit = cfg.load(BUNDLED).router
    defaults = cfg.parse({**base(), "router": {"listen": "127.0.0.1:7777"}}).router
    assert explicit == defaults
    assert set(base()["router"]) == set(cfg.ROUTER_KEYS)


def test_router_defaults():
    data = base()
    data["router"] = {"listen": "10.0.0.1:6379"}
    del data["sentinel"]
    c = cfg.parse(data)
    assert c.sentinel is None
    assert c.path is None
    r = c.router
    assert r.listen == Address("10.0.0.1", 6379)
    assert r.admin == Address("127.0.0.1", 7780)
    assert (r.command_timeout_ms, r.connect_timeout_ms) == (2000, 1000)
    assert r.backend_connections == 1
    assert (r.reconnect_min_ms, r.reconnect_max_ms) == (50, 2000)
    assert r.max_clients == 10000
    assert r.max_pending_per_client == 1024
    assert r.client_output_limit_bytes == 67108864
    assert r.max_bulk_bytes == 536870912
    assert r.max_args == 2147483647  # INT_MAX, as Redis 7
    assert r.max_inline_bytes == 65536
    assert r.drain_timeout_ms == 5000


def test_sentinel_defaults():
    data = base()
    data["sentinel"] = {
        "quorum": 1,
        "down_after_ms": 500,
        "failover_timeout_ms": 5000,
        "peers": [{"id": "only", "listen": "127.0.0.1:26701"}],
    }
    s = cfg.parse(data).sentinel
    assert s is not None
    assert s.probe_interval_ms == 100
    assert s.secret_env == "SLOTWARDEN_SECRET"
    assert s.secret_file is None
    assert s.state_dir == ".slotwarden/state"
    assert s.max_replica_lag_ms is None  # 10 x down_after_ms (sentinel Timing.replica_lag)


def test_slots_forms():
    data = base()
    data["shards"][0]["slots"] = "0-100, 200-5460"
    data["shards"][1]["slots"] = "101-199,5461-10922"
    data["shards"][2]["slots"] = "10923-16383"
    c = cfg.parse(data)
    assert c.shards[0].slots == ((0, 100), (200, 5460))
    assert c.shards[0].slot_count == 101 + 5261
    assert c.shards[1].slots_text == "101-199,5461-10922"
    # a YAML integer is a single slot
    data["shards"][2]["slots"] = "10923-16382"
    data["shards"].append({"name": "d", "slots": 16383, "master": "127.0.0.1:7004"})
    c = cfg.parse(data)
    assert c.shards[3].slots == ((16383, 16383),)
    assert c.shards[3].replicas == ()
    assert c.slotmap().ranges_of(3) == "16383"


def test_replicas_optional_and_empty():
    data = base()
    del data["shards"][0]["replicas"]
    data["shards"][1]["replicas"] = []
    data["shards"][2]["replicas"] = None
    c = cfg.parse(data)
    assert [s.replicas for s in c.shards] == [(), (), ()]


def test_255_shards_are_accepted_256_are_not():
    def many(n: int) -> dict:
        data = base()
        del data["sentinel"]
        data.pop("backend", None)  # no password to remote nodes: no TLS needed
        per = SLOT_COUNT // n
        shards = []
        for i in range(n):
            lo = i * per
            hi = SLOT_COUNT - 1 if i == n - 1 else lo + per - 1
            shards.append(
                {"name": f"s{i}", "slots": f"{lo}-{hi}", "master": f"10.0.0.1:{1000 + i}"}
            )
        data["shards"] = shards
        return data

    m = cfg.parse(many(255)).slotmap()
    assert m.owner[SLOT_COUNT - 1] == 254
    assert only_problem(many(256)) == "shards: 256 shards listed, at most 255 are supported"


def test_config_objects_are_frozen():
    c = cfg.load(BUNDLED)
    with pytest.raises(AttributeError):
        c.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        c.router.listen = Address("x", 1)  # type: ignore[misc]


# -- one problem at a time -------------------------------------------------


def test_malformed_master_address():
    data = base()
    data["shards"][1]["master"] = "127.0.0.1"
    assert only_problem(data) == "shards[1].master: malformed address '127.0.0.1' (want host:port)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("localhost", "router.listen: malformed address 'localhost' (want host:port)"),
        ("127.0.0.1:0", "router.listen: malformed address '127.0.0.1:0' (port must be 1-65535)"),
        ("127.0.0.1:x", "router.listen: malformed address '127.0.0.1:x' (port must be 1-65535)"),
        (7777, "router.listen: malformed address 7777 (want host:port)"),
        (None, "router.listen: malformed address nothing (want host:port)"),
    ],
)
def test_malformed_listen(value, message):
    data = base()
    data["router"]["listen"] = value
    assert only_problem(data) == message


def test_listen_missing():
    data = base()
    del data["router"]["listen"]
    assert only_problem(data) == ("router.listen: missing (want host:port, e.g. 127.0.0.1:7777)")


def test_router_missing_or_not_a_mapping():
    data = base()
    del data["router"]
    assert only_problem(data).startswith("router: missing")
    data["router"] = "127.0.0.1:7777"
    assert only_problem(data).startswith("router: must be a mapping with keys listen, admin,")


def test_gap():
    data = base()
    data["shards"][1]["slots"] = "5471-10922"
    assert only_problem(data) == "shards: slots 5461-5470 are not assigned to any shard"


def test_several_gaps_one_message():
    data = base()
    data["shards"][0]["slots"] = "1-5460"
    data["shards"][2]["slots"] = "10923-16382"
    assert only_problem(data) == "shards: slots 0,16383 are not assigned to any shard"


def test_single_slot_gap_wording():
    data = base()
    data["shards"][2]["slots"] = "10923-16382"
    assert only_problem(data) == "shards: slot 16383 is not assigned to any shard"


def test_overlap():
    data = base()
    data["shards"][0]["slots"] = "0-5460,100-200"
    data["shards"][1]["slots"] = "100-200,5461-10922"
    found = problems_of(data)
    assert found == [
        "shards[0].slots: slots 100-200 are listed twice",
        "shards: slots 100-200 are assigned to both 'a' and 'b'",
    ]


def test_overlap_between_three_shards():
    data = base()
    data["shards"][1]["slots"] = "5000-10922"
    data["shards"][2]["slots"] = "5000-5010,10923-16383"
    assert problems_of(data) == [
        "shards: slots 5000-5460 are assigned to both 'a' and 'b'",
        "shards: slots 5000-5010 are assigned to both 'a' and 'c'",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0-99999", "shards[0].slots: slot range '0-99999' is outside 0-16383 or reversed"),
        ("5460-0", "shards[0].slots: slot range '5460-0' is outside 0-16383 or reversed"),
        ("zero-5460", "shards[0].slots: malformed slot range 'zero-5460' (want N or N-M)"),
        (
            None,
            "shards[0].slots: missing (want slot ranges like '0-5460' or '0-100,200-300', "
            "or '' for a shard that owns no slots)",
        ),
        (
            [0, 5460],
            "shards[0].slots: must be slot ranges like '0-5460' or '0-100,200-300', got a list",
        ),
        (True, "shards[0].slots: must be slot ranges like '0-5460' or '0-100,200-300', got True"),
    ],
)
def test_bad_slots_no_gap_noise(value, message):
    # A shard whose slots do not parse must not also produce a bogus gap report.
    data = base()
    data["shards"][0]["slots"] = value
    assert only_problem(data) == message


def test_address_used_twice():
    data = base()
    data["shards"].append(
        {
            "name": "d",
            "slots": 16383,
            "master": "127.0.0.1:7004",
            "replicas": ["127.0.0.1:7001"],
        }
    )
    data["shards"][2]["slots"] = "10923-16382"
    assert only_problem(data) == (
        "shards[3].replicas[0]: address 127.0.0.1:7001 is used twice (also shards[0].master)"
    )


def test_replica_equal_to_its_own_master():
    data = base()
    data["shards"][2]["replicas"] = ["127.0.0.1:7003"]
    assert only_problem(data) == (
        "shards[2].replicas[0]: address 127.0.0.1:7003 is used twice (also shards[2].master)"
    )


def test_router_ports_collide_with_redis():
    data = base()
    data["shards"][0]["master"] = "127.0.0.1:7777"
    data["shards"][1]["replicas"] = ["127.0.0.1:7780"]
    assert problems_of(data) == [
        "shards[0].master: address 127.0.0.1:7777 is used twice (also router.listen)",
        "shards[1].replicas[0]: address 127.0.0.1:7780 is used twice (also router.admin)",
    ]


def test_default_admin_port_collides_with_redis():
    data = base()
    del data["router"]["admin"]
    data["shards"][0]["master"] = "127.0.0.1:7780"
    assert only_problem(data) == (
        "shards[0].master: address 127.0.0.1:7780 is used twice (also router.admin)"
    )


def test_sentinel_listen_collides_with_redis():
    data = base()
    data["sentinel"]["peers"][2]["listen"] = "127.0.0.1:7102"
    assert only_problem(data) == (
        "sentinel.peers[2].listen: address 127.0.0.1:7102 is used twice "
        "(also shards[1].replicas[0])"
    )


def test_unknown_top_key_with_suggestion():
    data = base()
    data["shardz"] = data.pop("shards")
    found = problems_of(data)
    assert found == [
        "unknown key 'shardz' (known: name, router, shards, sentinel, backend, tls); "
        "did you mean 'shards'?",
        "shards: missing (the cluster needs at least one shard)",
    ]


def test_unknown_key_without_suggestion():
    data = base()
    data["zzzzzz"] = 1
    assert (
        only_problem(data)
        == "unknown key 'zzzzzz' (known: name, router, shards, sentinel, backend, tls)"
    )


@pytest.mark.parametrize(
    ("where", "key", "message"),
    [
        (("router",), "comand_timeout_ms", "router: unknown key 'comand_timeout_ms'"),
        (("shards", 1), "replica", "shards[1]: unknown key 'replica'"),
        (("sentinel",), "qorum", "sentinel: unknown key 'qorum'"),
        (("sentinel", "peers", 0), "addr", "sentinel.peers[0]: unknown key 'addr'"),
    ],
)
def test_unknown_nested_keys(where, key, message):
    data = base()
    section = data
    for step in where:
        section = section[step]
    section[key] = "x"
    found = only_problem(data)
    assert found.startswith(message + " (known: ")
    if key != "addr":
        assert "; did you mean '" in found


def test_quorum_larger_than_sentinels():
    data = base()
    data["sentinel"]["quorum"] = 4
    assert only_problem(data) == "sentinel.quorum: 4 is larger than the number of sentinels (3)"


@pytest.mark.parametrize("value", [0, -1])
def test_quorum_at_least_one(value):
    data = base()
    data["sentinel"]["quorum"] = value
    assert only_problem(data) == f"sentinel.quorum: must be >= 1, got {value}"


def test_sentinel_required_keys():
    data = base()
    for key in ("quorum", "down_after_ms", "failover_timeout_ms", "peers"):
        del data["sentinel"][key]
    assert problems_of(data) == [
        "sentinel.quorum: missing",
        "sentinel.down_after_ms: missing",
        "sentinel.failover_timeout_ms: missing",
        "sentinel.peers: missing",
    ]


def test_sentinel_peers_empty_or_wrong():
    data = base()
    data["sentinel"]["peers"] = []
    assert only_problem(data) == "sentinel.peers: must list at least one sentinel"
    data["sentinel"]["peers"] = "s1"
    assert only_problem(data) == "sentinel.peers: must be a list of {id, listen} entries, got 's1'"


def test_probe_interval_must_be_below_down_after():
    data = base()
    data["sentinel"]["probe_interval_ms"] = 1000
    assert only_problem(data) == (
        "sentinel.probe_interval_ms: 1000 must be smaller than sentinel.down_after_ms (1000)"
    )


@pytest.mark.parametrize("value", [0, -5, "10s", True, 1.5])
def test_max_replica_lag_ms_must_be_a_positive_integer(value):
    data = base()
    data["sentinel"]["max_replica_lag_ms"] = value
    assert only_problem(data).startswith("sentinel.max_replica_lag_ms: must be")
    data["sentinel"]["max_replica_lag_ms"] = 30000
    s = cfg.parse(data).sentinel
    assert s is not None and s.max_replica_lag_ms == 30000


def test_secret_env_must_be_a_variable_name():
    data = base()
    data["sentinel"]["secret_env"] = "not a name"
    assert only_problem(data).startswith("sentinel.secret_env: must be an environment variable")


def test_duplicate_shard_names():
    data = base()
    data["shards"][2]["name"] = "a"
    assert only_problem(data) == "shards[2].name: 'a' is used twice (also shards[0].name)"


def test_duplicate_sentinel_ids():
    data = base()
    data["sentinel"]["peers"][1]["id"] = "s1"
    assert only_problem(data) == (
        "sentinel.peers[1].id: 's1' is used twice (also sentinel.peers[0].id)"
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("command_timeout_ms", "abc", "must be a positive integer, got 'abc'"),
        ("command_timeout_ms", "2000", "must be a positive integer, got '2000'"),
        ("max_clients", 1.5, "must be a positive integer, got 1.5"),
        ("max_clients", True, "must be a positive integer, got True"),
        ("max_clients", [1], "must be a positive integer, got a list"),
        ("backend_connections", 0, "must be >= 1, got 0"),
        ("drain_timeout_ms", -5, "must be >= 1, got -5"),
    ],
)
def test_wrong_types(key, value, message):
    data = base()
    data["router"][key] = value
    assert only_problem(data) == f"router.{key}: {message}"


def test_reconnect_min_above_max():
    data = base()
    data["router"]["reconnect_min_ms"] = 5000
    assert only_problem(data) == (
        "router.reconnect_min_ms: 5000 is larger than router.reconnect_max_ms (2000)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "shards: must list at least one shard"),
        (None, "shards: missing (the cluster needs at least one shard)"),
        ({"a": 1}, "shards: must be a list of shards, got a mapping"),
    ],
)
def test_empty_or_wrong_shards(value, message):
    data = base()
    data["shards"] = value
    assert only_problem(data) == message


def test_shard_not_a_mapping():
    data = base()
    data["shards"][2] = "c"
    assert problems_of(data) == [
        "shards[2]: must be a mapping with keys name, slots, master, replicas, backend, got 'c'",
        # its slots are unknown, so no gap is claimed
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "nothing"), ("", "''"), ("has space", "'has space'"), ("-x", "'-x'"), (12, "12")],
)
def test_bad_cluster_name(value, shown):
    data = base()
    data["name"] = value
    assert only_problem(data) == (
        f"name: {shown} is not a valid name "
        "(letters, digits, '_', '.', '-'; starting with a letter or digit)"
    )


def test_missing_everything():
    assert problems_of({}) == [
        "name: missing (the cluster's name, e.g. 'demo')",
        "router: missing (at least 'listen: host:port' is required)",
        "shards: missing (the cluster needs at least one shard)",
    ]


def test_not_a_mapping():
    assert problems_of([1, 2]) == [
        "the file: must be a mapping with keys name, router, shards, sentinel, backend, tls, "
        "got a list"
    ]
    assert problems_of(None) == [
        "the file is empty (want a mapping with keys name, router, shards, sentinel, backend, tls)"
    ]


# -- files -----------------------------------------------------------------


def test_file_not_found(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        cfg.load(missing)
    assert info.value.source == str(missing)
    assert info.value.problems == [f"file not found (looked at {missing})"]
    assert str(info.value).startswith(f"{missing}: file not found")


def test_yaml_syntax_error_has_line_number(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: demo\nrouter:\n  listen: 127.0.0.1:7777\n  admin: [oops\nshards: []\n")
    with pytest.raises(ConfigError) as info:
        cfg.load(path)
    [problem] = info.value.problems
    assert problem.startswith("YAML syntax error at line ")
    assert "line 4" in problem or "line 5" in problem


def test_yaml_tab_indentation(tmp_path):
    path = tmp_path / "tabs.yaml"
    path.write_text("name: demo\nrouter:\n\tlisten: 127.0.0.1:7777\n")
    with pytest.raises(ConfigError) as info:
        cfg.load(path)
    assert info.value.problems == [
        "YAML syntax error at line 3, column 1: found character '\\t' that cannot start any token"
        " (while scanning for the next token)"
    ]


def test_duplicate_yaml_keys_are_reported(tmp_path):
    text = BUNDLED.read_text().replace(
        "  listen: 127.0.0.1:7777\n", "  listen: 127.0.0.1:7777\n  listen: 127.0.0.1:7778\n"
    )
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        cfg.load(path)
    [problem] = info.value.problems
    line = text.splitlines().index("  listen: 127.0.0.1:7778") + 1
    assert problem == (
        f"line {line}: key 'listen' appears twice in one mapping (also line {line - 1}); "
        "the earlier value would be silently ignored"
    )


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text(
        "name: demo\n"
        "router: {listen: '127.0.0.1:7777'}\n"
        "defaults: &d {slots: 0-16383, master: '127.0.0.1:7001'}\n"
    )
    with pytest.raises(ConfigError) as info:
        cfg.load(path)
    # only the unknown helper key; anchors themselves are fine YAML
    assert info.value.problems[0].startswith("unknown key 'defaults'")
    path.write_text(
        "name: demo\n"
        "router: {listen: '127.0.0.1:7777'}\n"
        "shards:\n"
        "  - &a {name: a, slots: 0-16383, master: '127.0.0.1:7001'}\n"
        "  - <<: *a\n"
        "    name: b\n"
        "    slots: 5\n"
        "    master: '127.0.0.1:7002'\n"
    )
    with pytest.raises(ConfigError) as info:
        cfg.load(path)
    assert info.value.problems == ["shards: slot 5 is assigned to both 'a' and 'b'"]


def test_many_problems_in_one_file_are_all_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        """\
name: demo
shardz: 1
router:
  listen: 127.0.0.1:7777
  command_timeout_ms: abc
shards:
  - name: a
    slots: 0-200
    master: 127.0.0.1:7001
  - name: b
    slots: 100-5460
    master: 127.0.0.1
  - name: a
    slots: 5471-16383
    master: 127.0.0.1:7003
    replicas: [127.0.0.1:7001]
sentinel:
  quorum: 4
  down_after_ms: 1000
  failover_timeout_ms: 10000
  peers:
    - {id: s1, listen: 127.0.0.1:26701}
    - {id: s1, listen: 127.0.0.1:26702}
    - {id: s3, listen: 127.0.0.1:7777}
"""
    )
    with pytest.raises(ConfigError) as info:
        cfg.load(path)
    assert info.value.source == str(path)
    assert info.value.problems == [
        "unknown key 'shardz' (known: name, router, shards, sentinel, backend, tls); "
        "did you mean 'shards'?",
        "router.command_timeout_ms: must be a positive integer, got 'abc'",
        "shards[1].master: malformed address '127.0.0.1' (want host:port)",
        "shards[2].name: 'a' is used twice (also shards[0].name)",
        "shards[2].replicas[0]: address 127.0.0.1:7001 is used twice (also shards[0].master)",
        "shards: slots 100-200 are assigned to both 'a' and 'b'",
        "shards: slots 5461-5470 are not assigned to any shard",
        "sentinel.peers[1].id: 's1' is used twice (also sentinel.peers[0].id)",
        "sentinel.peers[2].listen: address 127.0.0.1:7777 is used twice (also router.listen)",
        "sentinel.quorum: 4 is larger than the number of sentinels (3)",
    ]


# -- the topology model ----------------------------------------------------


def test_slotmap_dict_round_trip():
    data = base()
    data["shards"][0]["slots"] = "0-100,200-5460"
    data["shards"][1]["slots"] = "101-199,5461-10922"
    m = cfg.parse(data).slotmap(epoch=7)
    d = m.to_dict()
    assert d["epoch"] == 7
    assert d["shards"][0] == {
        "name": "a",
        "slots": "0-100,200-5460",
        "master": "127.0.0.1:7001",
        "replicas": ["127.0.0.1:7101"],
    }
    again = SlotMap.from_dict(d)
    assert again == m
    assert again.to_dict() == d
    # and through JSON-compatible YAML text, as the sentinel publishes it
    assert SlotMap.from_dict(yaml.safe_load(yaml.safe_dump(d))) == m


def test_slotmap_from_dict_rejects_bad_data():
    d = cfg.load(BUNDLED).slotmap().to_dict()
    bad = copy.deepcopy(d)
    bad["shards"][2]["slots"] = "10923-16382"
    with pytest.raises(ValueError, match="unassigned"):
        SlotMap.from_dict(bad)
    bad = copy.deepcopy(d)
    bad["epoch"] = "1"
    with pytest.raises(TypeError):
        SlotMap.from_dict(bad)


def test_supersedes():
    c = cfg.load(BUNDLED)
    old, new = c.slotmap(epoch=1), c.slotmap(epoch=2)
    assert new.supersedes(None)
    assert new.supersedes(old)
    assert not old.supersedes(new)
    assert not new.supersedes(c.slotmap(epoch=2))  # same epoch: not accepted


# -- per-client limits on dedicated connections (issue 10, item 9) ---------------


def test_pinned_limits_defaults_and_checks():
    data = base()
    data["router"] = {"listen": "127.0.0.1:7777"}
    r = cfg.parse(data).router
    assert (r.pinned_per_source, r.pinned_per_user, r.pinned_reserved_for_pubsub) == (256, 384, 32)
    data["router"]["pinned_connections_per_node"] = 64
    assert cfg.parse(data).router.pinned_reserved_for_pubsub == 4  # at most 1/16 by default
    data["router"]["pinned_reserved_for_pubsub"] = 0
    assert cfg.parse(data).router.pinned_reserved_for_pubsub == 0
    data["router"]["pinned_reserved_for_pubsub"] = 64
    assert problems_of(data) == [
        "router.pinned_reserved_for_pubsub: 64 must be smaller than "
        "router.pinned_connections_per_node (64)"
    ]
    data["router"]["pinned_reserved_for_pubsub"] = 2
    data["router"]["pinned_per_source"] = 0
    data["router"]["pinned_per_user"] = True
    assert problems_of(data) == [
        "router.pinned_per_source: must be >= 1, got 0",
        "router.pinned_per_user: must be a positive integer, got True",
    ]


def test_max_args_defaults_to_redis_int_max_and_no_higher():
    """Redis 7 takes multibulk counts up to INT_MAX (issue 10, item 10); memory is
    bounded by the query buffer limit instead (1 GiB, Redis's default)."""
    data = base()
    data["router"] = {"listen": "127.0.0.1:7777"}
    r = cfg.parse(data).router
    assert r.max_args == 2147483647
    assert r.client_query_buffer_limit_bytes == 1073741824
    data["router"]["max_args"] = 2147483648
    assert problems_of(data) == [
        "router.max_args: 2147483648 is larger than 2147483647 (Redis's own ceiling, "
        "INT_MAX: a longer multibulk count is a protocol error there)"
    ]
    data["router"] = {"listen": "127.0.0.1:7777", "client_query_buffer_limit_bytes": 0}
    assert problems_of(data) == ["router.client_query_buffer_limit_bytes: must be >= 1, got 0"]


def test_allow_config_set_and_script_cache_bytes() -> None:
    r = cfg.parse(base()).router
    assert (r.allow_config_set, r.script_cache_bytes) == (False, 4 * 1024 * 1024)
    data = base()
    data["router"].update(allow_config_set=True, script_cache_bytes=0)
    r = cfg.parse(data).router
    assert (r.allow_config_set, r.script_cache_bytes) == (True, 0)
    data["router"]["allow_config_set"] = "yes"
    assert only_problem(data).startswith("router.allow_config_set: must be true or false")
    data["router"].update(allow_config_set=False, script_cache_bytes=-1)
    assert only_problem(data).startswith("router.script_cache_bytes")


def test_cross_shard_keys_default_to_compute_and_64_mib():
    """Issue 12 item 8: cross-shard multi-key commands computed, within a byte bound."""
    data = base()
    data["router"] = {"listen": "127.0.0.1:7777"}
    r = cfg.parse(data).router
    assert (r.cross_shard, r.max_cross_shard_bytes) == ("compute", 64 * 1024 * 1024)
    data["router"].update(cross_shard="strict", max_cross_shard_bytes=1000)
    r = cfg.parse(data).router
    assert (r.cross_shard, r.max_cross_shard_bytes) == ("strict", 1000)
    data["router"] = {"listen": "127.0.0.1:7777", "cross_shard": "always"}
    assert only_problem(data) == "router.cross_shard: must be one of compute, strict, got 'always'"
    data["router"] = {"listen": "127.0.0.1:7777", "max_cross_shard_bytes": 0}
    assert only_problem(data) == "router.max_cross_shard_bytes: must be >= 1, got 0"


def test_sentinel_migration_block_is_parsed_with_defaults() -> None:
    data = base()
    assert cfg.parse(data).sentinel.migration == cfg.MigrationConfig()
    data["sentinel"]["migration"] = {"keys_per_second": 0, "batch_keys": 50}
    got = cfg.parse(data).sentinel.migration
    assert got.keys_per_second == 0 and got.batch_keys == 50 and got.big_key_bytes == 1048576


def test_sentinel_migration_block_problems_name_the_field() -> None:
    data = base()
    data["sentinel"]["migration"] = {"batch_keys": 0, "chunk_item": 5}
    found = problems_of(data)
    assert any(p.startswith("sentinel.migration.batch_keys") for p in found), found
    assert any("did you mean 'chunk_items'" in p for p in found), found
