"""router.wire.tally: many clients' identical log lines become one line with their count."""

from __future__ import annotations

import asyncio
import logging

import pytest

from router.wire.tally import LogTally


def test_one_line_per_message_with_the_distinct_count(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.tally")
    lost = "shard a (127.0.0.1:7001): %d subscription connections lost; resubscribing"
    back = "shard a (127.0.0.1:7002): %d clients resubscribed"

    async def scenario() -> None:
        tally = LogTally(log, window=0.05)
        for who in range(100):
            tally.add(lost, who)
            tally.add(lost, who)  # a retry of the same client counts once
        tally.add(back, 1)
        await asyncio.sleep(0.15)
        tally.add(back, 2)  # a later window: a line of its own
        await asyncio.sleep(0.15)

    with caplog.at_level(logging.INFO, logger="test.tally"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        "shard a (127.0.0.1:7001): 100 subscription connections lost; resubscribing",
        "shard a (127.0.0.1:7002): 1 clients resubscribed",
        "shard a (127.0.0.1:7002): 1 clients resubscribed",
    ]
