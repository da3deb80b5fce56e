"""Mergers of fanned-out replies, fed real RESP bytes as shards send them.

Pure: no server. Every merger is checked for its happy path, for "first error
in part order wins", and for a malformed part answering a clear
``-ERR router expected ...`` instead of a wrong value or an exception.
"""

from __future__ import annotations

import hiredis
import pytest

from router.commands.spec import TABLE
from router.decide import algebra, diag, merge

OK = b"+OK\r\n"
NIL2 = b"$-1\r\n"
NULL3 = b"_\r\n"


def decode(raw: bytes) -> object:
    r = hiredis.Reader()
    r.feed(raw)
    got = r.gets()
    assert got is not False, f"incomplete reply {raw!r}"
    assert r.gets() is False, f"trailing bytes after the reply {raw!r}"
    return got


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(*items: bytes) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(items)


def assert_router_expected(raw: bytes, want: str) -> None:
    assert raw.startswith(f"-ERR router expected {want} from a shard, got ".encode()), raw
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == 1, raw


# ---------------------------------------------------------------- first error wins

ALL_MERGERS = {
    "sum": merge.merge_sum,
    "all_ok": merge.merge_all_ok,
    "ordered": merge.merge_ordered([[0], [1], [2]], 3),
    "concat": merge.merge_concat,
    "random": merge.merge_random,
}


@pytest.mark.parametrize("name", ALL_MERGERS)
def test_first_error_in_part_order_wins(name):
    parts = [b":1\r\n", b"-MOVED 1 h:1\r\n", b"-ERR second\r\n"]
    assert ALL_MERGERS[name](parts) == b"-MOVED 1 h:1\r\n"
    parts = [b"-CLUSTERDOWN shard a is unavailable\r\n", OK, b"-ERR later\r\n"]
    assert ALL_MERGERS[name](parts) == b"-CLUSTERDOWN shard a is unavailable\r\n"


def test_first_error_helper():
    assert merge.first_error([OK, b":1\r\n"]) is None
    assert merge.first_error([OK, b"-ERR x\r\n", b"-ERR y\r\n"]) == b"-ERR x\r\n"


# ---------------------------------------------------------------- sums


def test_sum_adds_integers():
    assert merge.merge_sum([b":3\r\n", b":0\r\n", b":39\r\n"]) == b":42\r\n"
    assert merge.merge_sum([b":1\r\n"]) == b":1\r\n"
    assert merge.merge_sum([b":9223372036854775807\r\n", b":-7\r\n"]) == (
        b":9223372036854775800\r\n"
    )


@pytest.mark.parametrize("bad", [OK, bulk(b"1"), NIL2, NULL3, array(b":1\r\n")])
def test_sum_of_a_non_integer_is_a_clear_error(bad):
    assert_router_expected(merge.merge_sum([b":1\r\n", bad]), "an integer")


# ---------------------------------------------------------------- all ok


def test_all_ok():
    assert merge.merge_all_ok([OK, OK, OK]) == OK


@pytest.mark.parametrize("bad", [b"+QUEUED\r\n", b":1\r\n", NIL2, b"+OK \r\n"])
def test_all_ok_with_one_other_reply_is_a_clear_error(bad):
    assert_router_expected(merge.merge_all_ok([OK, bad, OK]), "+OK")


# ---------------------------------------------------------------- ordered (MGET)


def test_ordered_puts_values_back_in_key_order_as_raw_elements():
    # request MGET k0 k1 k2 k3 k4: part 0 had k1,k3; part 1 had k0,k4,k2
    m = merge.merge_ordered([[1, 3], [0, 4, 2]], 5)
    crlf = bulk(b"a\r\nb\r\n")  # binary value containing CRLF
    part0 = array(crlf, NIL2)
    part1 = array(bulk(b"zero"), bulk(b""), bulk(b"\x00\xff"))
    got = m([part0, part1])
    assert got == array(bulk(b"zero"), crlf, bulk(b"\x00\xff"), NIL2, bulk(b""))
    assert decode(got) == [b"zero", b"a\r\nb\r\n", b"\x00\xff", None, b""]


def test_ordered_keeps_resp3_nulls_as_sent():
    m = merge.merge_ordered([[0, 2], [1]], 3, resp3=True)
    got = m([array(NULL3, bulk(b"v2")), array(NULL3)])
    assert got == array(NULL3, NULL3, bulk(b"v2"))


def test_ordered_keeps_resp2_nils_as_sent_even_for_resp3_placeholder():
    m = merge.merge_ordered([[1], [0]], 2, resp3=True)
    assert m([array(NIL2), array(bulk(b"x"))]) == array(bulk(b"x"), NIL2)


def test_ordered_with_duplicate_keys():
    # MGET a b a, a and b on different shards: part 0 asked "MGET a a"
    m = merge.merge_ordered([[0, 2], [1]], 3)
    assert m([array(bulk(b"A"), bulk(b"A")), array(bulk(b"B"))]) == array(
        bulk(b"A"), bulk(b"B"), bulk(b"A")
    )


@pytest.mark.parametrize(
    "bad",
    [
        array(bulk(b"only one")),  # too short
        array(bulk(b"1"), bulk(b"2"), bulk(b"3")),  # too long
        bulk(b"not an array"),
        b"*2\r\n$1\r\nx\r\n",  # truncated array
        b"*-1\r\n",
        b":2\r\n",
    ],
)
def test_ordered_with_a_malformed_part_is_a_clear_error(bad):
    m = merge.merge_ordered([[0, 1], [2]], 3)
    assert_router_expected(m([bad, array(bulk(b"z"))]), "an array of 2")


# ---------------------------------------------------------------- concat (KEYS)


def test_concat_joins_arrays_in_part_order():
    got = merge.merge_concat([array(bulk(b"a"), bulk(b"b\r\nc")), array(), array(bulk(b"d"))])
    assert got == array(bulk(b"a"), bulk(b"b\r\nc"), bulk(b"d"))
    assert merge.merge_concat([array(), array()]) == b"*0\r\n"


@pytest.mark.parametrize("bad", [bulk(b"x"), b":0\r\n", NIL2])
def test_concat_of_a_non_array_is_a_clear_error(bad):
    assert_router_expected(merge.merge_concat([array(), bad]), "an array")


# ---------------------------------------------------------------- random (RANDOMKEY)


@pytest.mark.parametrize("nil", [NIL2, NULL3])
def test_random_picks_among_shards_that_have_a_key(nil):
    parts = [nil, bulk(b"k1"), nil, bulk(b"k3")]
    picked = {merge.merge_random(parts) for _ in range(200)}
    assert picked == {bulk(b"k1"), bulk(b"k3")}


@pytest.mark.parametrize("nil", [NIL2, NULL3])
def test_random_when_no_shard_has_a_key_is_nil_in_the_client_protocol(nil):
    assert merge.merge_random([nil, nil, nil]) == nil


def test_random_with_one_key_always_picks_it():
    assert {merge.merge_random([NIL2, bulk(b"only"), NIL2]) for _ in range(50)} == {bulk(b"only")}


# ---------------------------------------------------------------- scan cursors


def scan_reply(cursor: bytes, keys: list[bytes]) -> bytes:
    return array(bulk(cursor), array(*(bulk(k) for k in keys)))


def test_scan_mid_shard_encodes_shard_in_low_bits():
    m = merge.scan_cursor_merge(shard=2, shard_count=3, shard_bits=8)
    got = m([scan_reply(b"17", [b"a", b"b\r\nc"])])
    assert decode(got) == [str((17 << 8) | 2).encode(), [b"a", b"b\r\nc"]]


def test_scan_end_of_a_shard_moves_to_the_next_shard():
    m = merge.scan_cursor_merge(shard=0, shard_count=3, shard_bits=8)
    assert decode(m([scan_reply(b"0", [b"x"])])) == [b"1", [b"x"]]
    m = merge.scan_cursor_merge(shard=1, shard_count=3, shard_bits=8)
    assert decode(m([scan_reply(b"0", [])])) == [b"2", []]


def test_scan_end_of_the_last_shard_is_cursor_zero():
    m = merge.scan_cursor_merge(shard=2, shard_count=3, shard_bits=8)
    assert decode(m([scan_reply(b"0", [b"last"])])) == [b"0", [b"last"]]
    m = merge.scan_cursor_merge(shard=0, shard_count=1, shard_bits=8)
    assert decode(m([scan_reply(b"0", [])])) == [b"0", []]


def test_scan_large_shard_cursor():
    m = merge.scan_cursor_merge(shard=1, shard_count=2, shard_bits=8)
    inner = 2**50 + 3
    assert decode(m([scan_reply(str(inner).encode(), [])]))[0] == str((inner << 8) | 1).encode()


def test_scan_error_part_is_forwarded():
    m = merge.scan_cursor_merge(shard=0, shard_count=3, shard_bits=8)
    assert m([b"-ERR invalid cursor\r\n"]) == b"-ERR invalid cursor\r\n"


@pytest.mark.parametrize(
    "bad", [array(bulk(b"0")), bulk(b"0"), array(bulk(b"0"), bulk(b"k")), b":0\r\n"]
)
def test_scan_with_a_malformed_part_is_a_clear_error(bad):
    m = merge.scan_cursor_merge(shard=0, shard_count=3, shard_bits=8)
    assert_router_expected(m([bad]), "a SCAN reply")


# ---------------------------------------------------------------- INFO


def test_every_merger_the_command_table_names_exists():
    named = {
        spec.merger
        for top in TABLE.values()
        for spec in (top, *(top.subcommands or {}).values())
        if spec.merger is not None
    }
    # plus the SINGLE rows computed across shards (router.decide.algebra), no merger of theirs
    assert named == set(merge.MERGERS) | merge.BUILT | set(diag.BUILT) | algebra.COMPUTED


@pytest.mark.parametrize(
    ("parts", "merged"),
    [
        ([b":2\r\n"], b":2\r\n"),
        ([b"-ERR x\r\n"], b"-ERR x\r\n"),
        ([b":2\r\n", b":0\r\n", b":1\r\n"], b":0\r\n"),
        (
            [b":2\r\n", b"-CLUSTERDOWN shard b is unavailable\r\n"],
            b"-CLUSTERDOWN shard b is unavailable\r\n",
        ),
    ],
)
def test_merge_min_is_the_smallest_count_or_the_first_error(parts, merged):
    assert merge.merge_min(parts) == merged
