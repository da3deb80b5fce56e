"""Hash slots: CRC16-XMODEM, the hash-tag rule, slot range parsing/formatting."""

from __future__ import annotations

import random

import pytest

from slotwarden.cluster.slots import SLOT_COUNT, crc16, format_ranges, key_hash_slot, parse_ranges


def test_crc16_check_value():
    # The standard CRC-16/XMODEM check value, and Redis's own crc16 test vector.
    assert crc16(b"123456789") == 0x31C3
    assert crc16(b"") == 0


def test_known_slots_from_redis_docs():
    assert key_hash_slot(b"foo") == 12182
    assert key_hash_slot(b"somekey") == 11058
    assert key_hash_slot(b"foo{hash_tag}") == 2515
    assert key_hash_slot(b"{user1000}.following") == key_hash_slot(b"{user1000}.followers")


def whole(key: bytes) -> int:
    return crc16(key) % SLOT_COUNT


# key -> the bytes Redis hashes for it
HASH_TAG_CASES = [
    (b"{}", b"{}"),  # empty tag: whole key
    (b"{{a}}", b"{a"),  # first '{', first '}' after it
    (b"{a}{b}", b"a"),  # only the first tag counts
    (b"a{}b{c}", b"a{}b{c}"),  # first tag empty: whole key, later tags ignored
    (b"{", b"{"),
    (b"}", b"}"),
    (b"}{", b"}{"),
    (b"}a{b}", b"b"),  # a '}' before the '{' does not matter
    (b"foo{}{bar}", b"foo{}{bar}"),
    (b"foo{{bar}}zap", b"{bar"),
    (b"foo{bar}{zap}", b"bar"),
    (b"{user1000}.following", b"user1000"),
    (b"", b""),
    (b"\x00", b"\x00"),
    (b"a\x00b{\x00}c", b"\x00"),
    (b"\xff\xfe{\xff}", b"\xff"),
    (b"{\x00\xff}\x00", b"\x00\xff"),
    (b"\xff{}\xff", b"\xff{}\xff"),
]


@pytest.mark.parametrize(("key", "hashed"), HASH_TAG_CASES, ids=repr)
def test_hash_tag_rule(key: bytes, hashed: bytes):
    assert key_hash_slot(key) == whole(hashed)


def test_same_tag_same_slot():
    for tag in (b"x", b"user:1", b"\x00", b"{"):
        slots = {
            key_hash_slot(prefix + b"{" + tag + b"}" + suffix)
            for prefix in (b"", b"a", b"}")
            for suffix in (b"", b"z", b"{q}")
        }
        assert slots == {whole(tag)}


def test_slot_always_in_range():
    rng = random.Random(7)
    for _ in range(2000):
        key = rng.randbytes(rng.randrange(0, 20))
        assert 0 <= key_hash_slot(key) < SLOT_COUNT


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("0-16383", [(0, 16383)]),
        ("0-5460", [(0, 5460)]),
        ("7", [(7, 7)]),
        ("0-100,200-300", [(0, 100), (200, 300)]),
        (" 0 - 1 , 5 ", [(0, 1), (5, 5)]),
        ("16383", [(16383, 16383)]),
        ("3-3", [(3, 3)]),
    ],
)
def test_parse_ranges(text: str, ranges: list[tuple[int, int]]):
    assert parse_ranges(text) == ranges


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty slot range"),
        ("1,,2", "empty slot range"),
        ("1,", "empty slot range"),
        ("a-b", "malformed slot range 'a-b'"),
        ("1-2-3", "malformed slot range"),
        ("-1", "malformed slot range '-1'"),
        ("5-1", "outside 0-16383 or reversed"),
        ("16384", "outside 0-16383"),
        ("0-16384", "outside 0-16383"),
    ],
)
def test_parse_ranges_errors(text: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_ranges(text)


@pytest.mark.parametrize(
    ("slots", "text"),
    [
        ([], ""),
        ([5], "5"),
        ([0, 1, 2, 5], "0-2,5"),
        ([5, 1, 2, 0, 2], "0-2,5"),  # unordered, duplicated
        (range(SLOT_COUNT), "0-16383"),
        ([0, 16383], "0,16383"),
    ],
)
def test_format_ranges(slots, text: str):
    assert format_ranges(slots) == text


def test_round_trip_random_sets():
    rng = random.Random(11)
    for _ in range(200):
        slots = set(rng.sample(range(SLOT_COUNT), rng.randrange(1, 300)))
        # also add some runs
        start = rng.randrange(SLOT_COUNT - 100)
        slots |= set(range(start, start + rng.randrange(1, 100)))
        text = format_ranges(slots)
        expanded = {s for lo, hi in parse_ranges(text) for s in range(lo, hi + 1)}
        assert expanded == slots
        assert format_ranges(expanded) == text
