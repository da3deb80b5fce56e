"""Diagnostics merged over every master (router.decide.diag)."""

from __future__ import annotations

import hiredis

from router.decide import diag
from slotwarden.resp.encode import encode_command

NAMES = ["a", "b", "c"]


def decode(raw: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()


def entry(i: int, ts: int) -> list[object]:
    return [i, ts, 5, [b"GET", b"k"], b"127.0.0.1:1", b""]


def slowlog(*entries: list[object]) -> bytes:
    return diag.encode(list(entries), False)


def test_slowlog_get_merges_newest_first_and_names_the_shard() -> None:
    parts = [slowlog(entry(2, 30), entry(1, 10)), slowlog(entry(7, 20)), slowlog()]
    merger = diag.build("slowlog-get", [b"SLOWLOG", b"GET"], NAMES)
    got = decode(merger(parts))
    assert [(e[1], e[5]) for e in got] == [(30, b"a"), (20, b"b"), (10, b"a")]
    two = decode(diag.build("slowlog-get", [b"SLOWLOG", b"GET", b"2"], NAMES)(parts))
    assert len(two) == 2
    every = decode(diag.build("slowlog-get", [b"SLOWLOG", b"GET", b"-1"], NAMES)(parts))
    assert len(every) == 3


def test_slowlog_get_orders_entries_of_one_second_by_id() -> None:
    """SLOWLOG RESET through the router is logged by every master (id 0); a GET after it,
    in the same second, on shard b (id 1) is newer than all three (redis-py's
    test_slowlog_get)."""
    reset = [0, 50, 5, [b"SLOWLOG", b"RESET"], b"127.0.0.1:1", b""]
    get = [1, 50, 5, [b"GET", b"k"], b"127.0.0.1:1", b""]
    parts = [slowlog(reset), slowlog(get, reset), slowlog(reset)]
    got = decode(diag.build("slowlog-get", [b"SLOWLOG", b"GET"], NAMES)(parts))
    assert [(e[3][0], e[5]) for e in got] == [
        (b"GET", b"b"), (b"SLOWLOG", b"a"), (b"SLOWLOG", b"b"), (b"SLOWLOG", b"c")
    ]  # fmt: skip


def test_first_error_wins_and_malformed_is_named() -> None:
    merger = diag.build("slowlog-get", [b"SLOWLOG", b"GET"], NAMES)
    assert merger([slowlog(), b"-ERR x\r\n", b"-ERR y\r\n"]) == b"-ERR x\r\n"
    bad = merger([slowlog(), b":1\r\n", slowlog()])
    assert bad.startswith(b"-ERR router expected a SLOWLOG GET array from shard b")


def test_latency_latest_prefixes_events_and_history_is_by_time() -> None:
    latest = [diag.encode([[b"command", 100, 5, 9]], False), diag.encode([], False),
              diag.encode([[b"fork", 50, 1, 1]], False)]  # fmt: skip
    got = decode(diag.build("latency-latest", [], NAMES)(latest))
    assert got == [[b"a:command", 100, 5, 9], [b"c:fork", 50, 1, 1]]
    hist = [diag.encode([[10, 1], [30, 3]], False), diag.encode([[20, 2]], False),
            diag.encode([], False)]  # fmt: skip
    assert decode(diag.build("latency-history", [], NAMES)(hist)) == [[10, 1], [20, 2], [30, 3]]


def test_doctor_puts_each_report_under_its_shard() -> None:
    parts = [b"$2\r\nok\r\n", b"$4\r\nfine\r\n", b"$1\r\n!\r\n"]
    text = decode(diag.build("doctor", [], NAMES)(parts))
    assert text == b"=== shard a ===\nok\n\n=== shard b ===\nfine\n\n=== shard c ===\n!\n"
    verbatim = [b"=6\r\ntxt:ok\r\n"] * 3
    got = diag.build("doctor", [], NAMES)(verbatim)
    assert got.startswith(b"=") and b"txt:=== shard a ===" in got


def stats(total: int, startup: int, keys: int, dataset: int, ratio: float, db: int) -> dict:
    return {
        b"peak.allocated": total * 2,
        b"total.allocated": total,
        b"startup.allocated": startup,
        b"keys.count": keys,
        b"keys.bytes-per-key": 1,
        b"dataset.bytes": dataset,
        b"dataset.percentage": 1.0,
        b"peak.percentage": 1.0,
        b"allocator.allocated": total,
        b"allocator.active": total,
        b"allocator-fragmentation.ratio": ratio,
        b"db.0": {b"overhead.hashtable.main": db, b"overhead.hashtable.expires": 0},
    }


def test_memory_stats_sums_and_recomputes_in_both_protocols() -> None:
    maps = [stats(1000, 100, 10, 450, 1.5, 7), stats(3000, 100, 0, 1350, 2.5, 0)]
    for resp3 in (True, False):
        if resp3:
            parts = [diag.encode(m, True) for m in maps]
        else:  # RESP2: a flat array, doubles as bulk strings
            parts = [diag.encode([x for k, v in m.items() for x in (k, v)], False) for m in maps]
        got = decode(diag.build("memory-stats", [], NAMES)(parts))
        if not resp3:
            got = dict(zip(got[0::2], got[1::2], strict=True))
            got[b"db.0"] = dict(zip(got[b"db.0"][0::2], got[b"db.0"][1::2], strict=True))
        assert got[b"total.allocated"] == 4000 and got[b"keys.count"] == 10
        assert got[b"keys.bytes-per-key"] == 380  # (4000 - 200) / 10
        assert float(got[b"dataset.percentage"]) == 1800 * 100 / 3800
        assert float(got[b"peak.percentage"]) == 50.0
        assert float(got[b"allocator-fragmentation.ratio"]) == 1.0
        assert got[b"db.0"][b"overhead.hashtable.main"] == 7


def test_every_built_merger_is_named_by_a_row() -> None:
    from router.commands.spec import TABLE

    named = {s.merger for t in TABLE.values() for s in (t, *(t.subcommands or {}).values())}
    assert set(diag.BUILT) <= named
    assert encode_command([b"x"])  # the module is importable without the wire layer
