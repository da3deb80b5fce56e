"""Live edits of cluster.yaml with three real sentinels and a real router.

The sentinels and the router all watch the same file. An invalid edit is
rejected by every sentinel (one log line per problem, the rejected counter)
and nothing changes. A valid edit (slots moved, a shard added, a replica
removed, a timing changed, a sentinel added) becomes exactly one new epoch,
published by one sentinel to every other and to the router, and keys route
to their new owner. After a failover, an edit that still names the old
master keeps the promoted one (the failover state wins over the file).
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest
import redis
import yaml
from test_sentinel_harness import SECRET, SentinelCluster, metric, scrape

from slotwarden.cluster.slots import key_hash_slot, parse_ranges
from slotwarden.procs import RedisFarm, RouterProc, free_port, wait_for_port


def key_in(ranges: str) -> str:
    """A key whose hash slot is in ``ranges``."""
    wanted = {s for lo, hi in parse_ranges(ranges) for s in range(lo, hi + 1)}
    for i in range(100000):
        key = f"key:{i}"
        if key_hash_slot(key.encode()) in wanted:
            return key
    raise AssertionError(f"no key found for slots {ranges}")


def router_topology(sc: SentinelCluster) -> dict:
    with urllib.request.urlopen(f"http://{sc.router_admin}/topology", timeout=2) as resp:
        return json.loads(resp.read())


def layout(topology: dict) -> list[tuple[str, str, str, list[str]]]:
    return [(s["name"], s["slots"], s["master"], s["replicas"]) for s in topology["shards"]]


def write(sc: SentinelCluster, data: dict) -> None:
    with open(sc.config, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)


@pytest.fixture(scope="module")
def live():
    farm = RedisFarm()
    sc = router = None
    try:
        sc = SentinelCluster(farm, shards=2, replicas=1, failover_timeout_ms=3000)
        with open(sc.config) as f:
            sc.data = yaml.safe_load(f)
        sc.start_all()
        for shard in range(2):  # a replica that never synced is not promoted (issue 11)
            sc.wait_in_sync(shard)
        port = int(sc.data["router"]["listen"].rsplit(":", 1)[1])
        router = RouterProc(sc.config, port, str(sc.root / "router.log"), env={
            "SLOTWARDEN_SECRET": SECRET})  # fmt: skip
        router.start()
        host, admin = sc.router_admin.rsplit(":", 1)
        wait_for_port(host, int(admin))
        sc.router = router
        # a registered router that never answers holds the movers ("waiting-routers"): an
        # edit here stays one epoch, its migration is not ended by a mover meanwhile
        for sid in sc.ids:
            sc.http(sid, "/topology?after=-1&router=127.0.0.1:1")
        sc.client = redis.Redis(port=port, socket_timeout=5, decode_responses=True)
        yield sc
    finally:
        if router is not None:
            router.stop()
        if sc is not None:
            sc.close()
        farm.close()


def test_invalid_edit_is_rejected_logged_and_changes_nothing(live):
    sc = live
    before = {sid: sc.topology(sid) for sid in sc.ids}
    bad = json.loads(json.dumps(sc.data))
    bad["shards"][0]["slots"] = "0-9000"  # overlaps shard b
    bad["shards"][1]["master"] = "127.0.0.1"  # malformed
    bad["sentinel"]["quorum"] = 7  # more than the sentinels
    write(sc, bad)
    problems = [
        "shards[1].master: malformed address '127.0.0.1'",
        "shards: slots 8192-9000 are assigned to both 'a' and 'b'",
        "sentinel.quorum: 7 is larger than the number of sentinels (3)",
    ]

    def rejected_everywhere():
        return all(
            "reload (file changed) rejected: 3 problem(s)" in sc.log(sid)
            and all(f"reload rejected: {p}" in sc.log(sid) for p in problems)
            for sid in sc.ids
        )

    sc.wait_for(rejected_everywhere, 10, "every sentinel rejecting the edit")
    for sid in sc.ids:
        assert metric(sc, sid, "slotwarden_sentinel_config_reloads_total", result="rejected") == 1
        assert metric(sc, sid, "slotwarden_sentinel_config_reloads_total", result="applied") == 0
        assert metric(sc, sid, "slotwarden_sentinel_config_last_reload_successful") == 0
        assert metric(sc, sid, "slotwarden_sentinel_quorum") == 2
        assert sc.topology(sid) == before[sid]
        assert sc.topology(sid)["epoch"] == 0
    assert router_topology(sc)["epoch"] == 0
    sc.client.set("still", "served")
    assert sc.client.get("still") == "served"


def test_valid_edit_becomes_one_epoch_everywhere_and_keys_follow(live):
    sc = live
    c_master = sc.farm.start()
    c_replica = sc.farm.start(["--replicaof", "127.0.0.1", str(c_master.port)])
    s4 = free_port()
    a_master, b_master = (m.addr for m in sc.masters)
    a_replica = sc.replicas[0][0].addr
    edit = json.loads(json.dumps(sc.data))
    a, b = edit["shards"]
    a["slots"] = "1000-8191"
    b["slots"] = "0-999,8192-11999"
    b["replicas"] = []  # a replica removed
    edit["shards"].append(
        {"name": "c", "slots": "12000-16383", "master": c_master.addr,
         "replicas": [c_replica.addr]}
    )  # fmt: skip
    edit["sentinel"]["down_after_ms"] = 600
    edit["sentinel"]["peers"].append({"id": "s4", "listen": f"127.0.0.1:{s4}"})
    write(sc, edit)
    expected = [
        ("a", "1000-8191", a_master, [a_replica]),
        ("b", "0-999,8192-11999", b_master, []),
        ("c", "12000-16383", c_master.addr, [c_replica.addr]),
    ]

    def published():
        topos = [sc.topology(sid) for sid in sc.ids] + [router_topology(sc)]
        epochs = {t["epoch"] for t in topos}
        return len(epochs) == 1 and all(layout(t) == expected for t in topos) and topos[0]

    # a new epoch (usually 1; a split vote skips one) with the edited layout everywhere
    epoch = sc.wait_for(published, 15, "the edited layout on every sentinel and the router")[
        "epoch"
    ]
    assert epoch >= 1
    sc.wait_for(
        lambda: all("reload (file changed) applied" in sc.log(sid) for sid in sc.ids),
        10,
        "every sentinel applying the edit",
    )
    logs = {sid: sc.log(sid) for sid in sc.ids}
    published_by = [
        (sid, line)
        for sid in sc.ids
        for line in logs[sid].splitlines()
        if "published the edited cluster.yaml" in line
    ]
    assert len(published_by) == 1 and f"epoch {epoch}: " in published_by[0][1], published_by
    leaders = [published_by[0][0]]
    # its term is over: its opinion says so, freeing the sentinels that voted for it
    # (`election.term_ended`) even when a term has nothing to publish
    status, opinion = sc.http(leaders[0], "/opinion")
    assert status == 200 and opinion["led_epoch"] == epoch, opinion
    assert "1000 slot(s) 0-999 start moving from shard a to shard b" in logs[leaders[0]]
    assert "shard c added" in logs[leaders[0]]
    for sid in sc.ids:
        assert "sentinel.down_after_ms 500 -> 600" in logs[sid]
        assert "sentinel s4 at" in logs[sid]
        assert metric(sc, sid, "slotwarden_sentinel_config_reloads_total", result="applied") == 1
        assert metric(sc, sid, "slotwarden_sentinel_config_last_reload_successful") == 1
        assert metric(sc, sid, "slotwarden_sentinel_peers_configured") == 4
        assert metric(sc, sid, "slotwarden_sentinel_peer_up", peer="s4") == 0
        assert metric(sc, sid, "slotwarden_sentinel_topology_epoch") == epoch
        assert (
            "slotwarden_sentinel_node_state",
            frozenset({"shard": "c", "node": c_master.addr, "state": "up"}.items()),
        ) in scrape(sc, sid)
        assert not [k for k in scrape(sc, sid) if ("node", sc.replicas[1][0].addr) in k[1]]
    assert f"topology epoch 0 -> {epoch}" in sc.router.log()
    # the moved slots are a migration still 'preparing' (the silent router above holds it):
    # the router holds their requests - nothing is written on the source or the target -
    # and answers -TRYAGAIN after command_timeout_ms (keys following their slots is
    # tests/integration/test_resharding.py's and test_sentinel_mover.py's subject)
    assert {(m["slots"], m["state"]) for m in router_topology(sc)["migrations"]} == {
        ("0-999", "preparing"),
        ("12000-16383", "preparing"),
    }
    for ranges, source, target in (
        ("0-999", a_master, b_master),
        ("12000-16383", b_master, c_master.addr),
    ):
        key = key_in(ranges)
        with pytest.raises(redis.exceptions.TryAgainError, match="is about to move"):
            sc.client.set(key, ranges)
        for owner in (source, target):
            node = redis.Redis(port=int(owner.rsplit(":", 1)[1]), decode_responses=True)
            assert node.get(key) is None, (key, owner)
            node.close()
    # SIGHUP re-reads the same file: applied, nothing to publish
    sc.procs["s2"].send_signal(signal.SIGHUP)
    sc.wait_for(lambda: "reload (SIGHUP): nothing changed" in sc.log("s2"), 5, "SIGHUP reload")
    time.sleep(0.3)
    assert all(sc.topology(sid)["epoch"] == epoch for sid in sc.ids)
    sc.data = edit
    sc.c_nodes = (c_master, c_replica)


def test_slot_move_after_a_failover_keeps_the_promoted_master(live):
    sc = live
    old, promoted = sc.masters[0], sc.replicas[0][0]
    old.kill(signal.SIGKILL)

    def failed_over():
        topos = [sc.topology(sid) for sid in sc.ids]
        epochs = {t["epoch"] for t in topos}
        return len(epochs) == 1 and topos[0]["shards"][0]["master"] == promoted.addr and topos[0]

    done = sc.wait_for(failed_over, 15, "shard a failed over on every sentinel")
    epoch = done["epoch"]
    # the operator moves slots and still names the old master for shard a
    edit = json.loads(json.dumps(sc.data))
    edit["shards"][0]["slots"] = "2000-8191"
    edit["shards"][2]["slots"] = "1000-1999,12000-16383"
    assert edit["shards"][0]["master"] == old.addr
    write(sc, edit)
    c_master = sc.c_nodes[0]
    expected = [
        ("a", "2000-8191", promoted.addr, [old.addr]),
        ("b", "0-999,8192-11999", sc.masters[1].addr, []),
        ("c", "1000-1999,12000-16383", c_master.addr, [sc.c_nodes[1].addr]),
    ]

    def published():
        topos = [sc.topology(sid) for sid in sc.ids] + [router_topology(sc)]
        return all(t["epoch"] > epoch and layout(t) == expected for t in topos)

    sc.wait_for(published, 15, "the edit published on top of the failover")
    assert f"shard a keeps master {promoted.addr} from the failover state" in sc.logs_text()
    assert sc.role(promoted) == ("master", None)
    moved = key_in("1000-1999")  # migrating a -> c, held while 'preparing'
    stayed = key_in("2000-8191")
    assert sc.client.set(stayed, "v") is True
    with pytest.raises(redis.exceptions.TryAgainError, match="is about to move"):
        sc.client.set(moved, "v")
    on_c = redis.Redis(port=c_master.port)
    on_promoted = redis.Redis(port=promoted.port)
    assert on_c.get(moved) is None and on_promoted.get(moved) is None
    assert on_promoted.get(stayed) == b"v"
    on_c.close()
    on_promoted.close()
    assert "Traceback" not in sc.logs_text()
