"""The one fan-in (router.decide.fanin): wait for N replies, merge them in part order, once."""

from __future__ import annotations

import logging

import pytest

from router.decide.fanin import FanIn, FanInPart
from router.decide.merge import merge_min, merge_sum


def test_done_once_when_the_last_part_is_in_with_parts_in_part_order():
    got: list[bytes] = []
    seen: list[list[bytes]] = []

    def merger(parts: list[bytes]) -> bytes:
        seen.append(list(parts))
        return merge_sum(parts)

    fan = FanIn(3, merger, got.append)
    parts = [FanInPart(fan, i) for i in range(3)]
    parts[2].on_reply(b":3\r\n")
    parts[0].on_reply(b":1\r\n")
    assert got == []
    parts[1].on_reply(b":2\r\n")
    assert got == [b":6\r\n"]
    assert seen == [[b":1\r\n", b":2\r\n", b":3\r\n"]]


def test_parts_added_while_spreading_keep_it_open():
    got: list[bytes] = []
    fan = FanIn(1, merge_min, got.append)  # part 0 holds it open
    a, b = fan.add(), fan.add()
    a.on_reply(b":2\r\n")
    b.on_reply(b":1\r\n")
    assert got == []
    fan.on_part(0, b":5\r\n")
    assert got == [b":1\r\n"]


def test_a_merger_that_raises_becomes_an_error_reply(caplog: pytest.LogCaptureFixture):
    got: list[bytes] = []

    def broken(parts: list[bytes]) -> bytes:
        raise ValueError("bad part")

    fan = FanIn(1, broken, got.append)
    with caplog.at_level(logging.ERROR, logger="slotwarden.frontend"):
        FanInPart(fan, 0).on_reply(b"+OK\r\n")
    assert got == [b"-ERR router could not merge replies: bad part\r\n"]
    assert "merge failed" in caplog.text
