"""router.decide.walk: SCAN's and cross-shard LMPOP/ZMPOP's requests, one after another."""

from __future__ import annotations

from router.decide.walk import NILS, MpopWalk, ScanWalk
from slotwarden.resp.encode import encode_array, encode_bulk, encode_command


def scan_reply(cursor: int, *keys: bytes) -> bytes:
    return encode_array(
        [encode_bulk(str(cursor).encode()), encode_array([encode_bulk(k) for k in keys])]
    )


def test_scan_goes_on_while_shards_finish_under_count() -> None:
    walk = ScanWalk.of([b"SCAN", b"0", b"MATCH", b"k*"], 3)
    assert isinstance(walk, ScanWalk)
    assert walk.first() == (0, encode_command([b"SCAN", b"0", b"MATCH", b"k*"]))
    assert walk.step(scan_reply(0, b"a")) == (1, encode_command([b"SCAN", b"0", b"MATCH", b"k*"]))
    assert walk.step(scan_reply(0)) == (2, encode_command([b"SCAN", b"0", b"MATCH", b"k*"]))
    assert walk.step(scan_reply(0, b"c")) == scan_reply(0, b"a", b"c")


def test_scan_stops_at_count_or_at_an_unfinished_shard() -> None:
    walk = ScanWalk.of([b"SCAN", b"0", b"COUNT", b"2"], 3)
    assert isinstance(walk, ScanWalk)
    walk.first()
    assert walk.step(scan_reply(0, b"a", b"b")) == scan_reply(1, b"a", b"b")  # next: shard 1
    walk = ScanWalk.of([b"SCAN", str((5 << 8) | 1).encode()], 3)
    assert isinstance(walk, ScanWalk)
    assert walk.first() == (1, encode_command([b"SCAN", b"5"]))
    assert walk.step(scan_reply(9, b"x")) == scan_reply((9 << 8) | 1, b"x")


def test_scan_bad_cursor_and_shard_errors() -> None:
    assert ScanWalk.of([b"SCAN", b"x"], 3) == b"-ERR invalid cursor\r\n"
    assert ScanWalk.of([b"SCAN", b"7"], 3) == b"-ERR invalid cursor\r\n"
    walk = ScanWalk.of([b"SCAN", b"0"], 3)
    assert isinstance(walk, ScanWalk)
    assert walk.step(b"-ERR boom\r\n") == b"-ERR boom\r\n"


def test_mpop_asks_runs_of_keys_in_order_and_stops_at_the_first_not_nil() -> None:
    slots = {b"a": 0, b"b": 0, b"c": 1, b"d": 0}  # key -> slot
    owner = bytes([0, 1])  # slot -> shard
    args = [b"LMPOP", b"4", b"a", b"b", b"c", b"d", b"LEFT", b"COUNT", b"2"]
    walk = MpopWalk.of(args, owner, slots.__getitem__)
    assert isinstance(walk, MpopWalk)
    assert walk.first() == (
        0,
        encode_command([b"LMPOP", b"2", b"a", b"b", b"LEFT", b"COUNT", b"2"]),
    )
    assert walk.step(b"*-1\r\n") == (
        1,
        encode_command([b"LMPOP", b"1", b"c", b"LEFT", b"COUNT", b"2"]),
    )
    popped = encode_array([encode_bulk(b"c"), encode_array([encode_bulk(b"1")])])
    assert walk.step(popped) == popped
    assert NILS == {b"*-1\r\n", b"$-1\r\n", b"_\r\n"}
    walk = MpopWalk.of(args, owner, slots.__getitem__)
    assert isinstance(walk, MpopWalk)
    assert isinstance(walk.step(b"_\r\n"), tuple)
    assert isinstance(walk.step(b"_\r\n"), tuple)
    assert walk.step(b"_\r\n") == b"_\r\n"  # every key empty: the nil as the shard sent it
    walk = MpopWalk.of(args, owner, slots.__getitem__)
    assert isinstance(walk, MpopWalk)
    assert walk.step(b"-WRONGTYPE x\r\n") == b"-WRONGTYPE x\r\n"
