"""Client-side caching libraries through the router (CLIENT TRACKING, issue 14), each also
against one bare redis-server (the tier's rule): a change made by another client reaches
every local copy.

- cashews' ``client_side=True``: a local copy of what it read, dropped on the invalidations
  of a pub/sub connection that turned ``CLIENT TRACKING on REDIRECT <its own id> BCAST
  PREFIX cashews:`` on and SUBSCRIBEd to ``__redis__:invalidate``. Through the router this
  used to be refused and cashews, by default, silently ran without its local cache (with
  ``suppress=False`` its ``init`` failed). With redis-py 8 it needs ``protocol=2``
  (docs/compatibility.md, *Client-side caching*).
- valkey-glide 2.6's ``ClientSideCache(server_assisted=True)``: RESP3, ``CLIENT TRACKING ON
  BCAST`` on its own connection.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import Target

KEYS = [f"item:{i}" for i in range(12)]
WAIT_S = 5.0  # a correctness bound with slack for a loaded CI box


async def eventually(check, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        assert time.monotonic() < deadline, f"{what} within {WAIT_S} s"
        await asyncio.sleep(0.02)


async def test_cashews_client_side_copies_are_invalidated(target: Target) -> None:
    pytest.importorskip("cashews")
    from cashews import Cache

    reader, writer = Cache(), Cache()
    # protocol=2: redis-py 8 speaks RESP3 by default, and then Redis sends the invalidations
    # of cashews' self-redirected connection as RESP3 pushes, which redis-py's pub/sub
    # drops: cashews' copies would never be invalidated, at a bare redis-server too
    opts = {"client_side": True, "suppress": False, "socket_timeout": 5, "protocol": 2}
    reader.setup(target.url, **opts)
    writer.setup(target.url, **opts)
    try:
        await reader.init()
        await writer.init()
        for i, k in enumerate(KEYS):
            await writer.set(k, f"v{i}")
        assert target.shards_holding([f"cashews:{k}" for k in KEYS]) == len(target.shard_ports)
        assert [await reader.get(k) for k in KEYS] == [f"v{i}" for i in range(12)]
        for i, k in enumerate(KEYS):  # another connection changes every key, on every shard
            if i % 2:
                await writer.set(k, f"w{i}")
            else:
                await writer.delete(k)
        for i, k in enumerate(KEYS):
            want = f"w{i}" if i % 2 else None

            async def seen(k: str = k, want: str | None = want) -> bool:
                return await reader.get(k) == want

            await eventually(seen, f"{k} = {want!r} in the reader's local copy")
    finally:
        await reader.close()
        await writer.close()


async def test_valkey_glide_server_assisted_cache_is_invalidated(target: Target) -> None:
    """valkey-glide 2.6's ``ClientSideCache(server_assisted=True)``: RESP3, ``CLIENT TRACKING
    ON BCAST`` on its connection; a change made by another client drops its copy (no TTL)."""
    glide = pytest.importorskip("glide")
    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    cache = glide.ClientSideCache.create(
        max_cache_kb=1024, entry_ttl_ms=0, enable_metrics=True, server_assisted=True
    )
    config = GlideClientConfiguration(
        [NodeAddress("127.0.0.1", target.port)],
        request_timeout=3000,
        protocol=glide.ProtocolVersion.RESP3,
        client_side_cache=cache,
    )
    client = await GlideClient.create(config)
    other = target.client()
    try:
        for i, k in enumerate(KEYS):
            other.set(k, f"v{i}")
        assert [await client.get(k) for k in KEYS] == [f"v{i}".encode() for i in range(12)]
        assert [await client.get(k) for k in KEYS] == [f"v{i}".encode() for i in range(12)]
        hit_rate = client.get_cache_hit_rate()
        assert hit_rate >= 0.5, hit_rate  # the second reads came from glide's cache
        assert target.shards_holding(KEYS) == len(target.shard_ports)
        for i, k in enumerate(KEYS):
            other.set(k, f"w{i}")
        for i, k in enumerate(KEYS):

            async def seen(k: str = k, i: int = i) -> bool:
                return await client.get(k) == f"w{i}".encode()

            await eventually(seen, f"{k} = w{i} in glide's cache")
    finally:
        await client.close()
