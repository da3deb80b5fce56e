"""`ClientConn.on_route_change`: when a slot moves to another existing master (no node
goes away, so no connection is lost), the router's hook moves the client's
subscriptions there. In process: a real `Router`, real redis-servers, a real socket
client; the hook is called as the route table calls it after `apply_slotmap`."""

from __future__ import annotations

import asyncio

import redis

from router.app import Router
from slotwarden.cluster.config import parse
from slotwarden.cluster.slots import key_hash_slot
from slotwarden.cluster.topology import SlotMap


async def _read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float = 5) -> bytes:
    data = b""
    while marker not in data:
        data += await asyncio.wait_for(reader.read(65536), timeout)
    return data


async def test_subscriptions_follow_a_slot_to_its_new_master(farm) -> None:
    masters = [farm.start() for _ in range(2)]
    config = parse(
        {
            "name": "route-change",
            "router": {"listen": "127.0.0.1:1", "admin": "127.0.0.1:2"},
            "shards": [
                {"name": "a", "slots": "0-8191", "master": masters[0].addr},
                {"name": "b", "slots": "8192-16383", "master": masters[1].addr},
            ],
        }
    )
    channel = next(f"rc{i}" for i in range(1000) if key_hash_slot(f"rc{i}".encode()) < 8192)
    slot = key_hash_slot(channel.encode())
    loop = asyncio.get_running_loop()
    router = Router(config)
    direct = [redis.Redis(port=m.port) for m in masters]
    async with asyncio.TaskGroup() as tg:
        router.routes.attach(tg)
        router.routes.apply_slotmap(config.slotmap(0))
        server = await loop.create_server(router.new_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"SUBSCRIBE %s\r\n" % channel.encode())
            assert b":1\r\n" in await _read_until(reader, b":1\r\n")
            assert direct[0].pubsub_numsub(channel)[0][1] == 1

            # the channel's slot moves from a to b; both masters stay
            shards = router.routes.route.slotmap.shards
            ranges = [
                [(0, slot - 1), (slot + 1, 8191)] if slot else [(1, 8191)],
                [(slot, slot), (8192, 16383)],
            ]
            ranges = [[r for r in rs if r[0] <= r[1]] for rs in ranges]
            router.routes.apply_slotmap(SlotMap.build(1, list(shards), ranges))
            for client in list(router.clients.by_id.values()):
                client.on_route_change()
            for _ in range(200):
                if direct[1].pubsub_numsub(channel)[0][1] == 1:
                    break
                await asyncio.sleep(0.02)
            assert direct[1].pubsub_numsub(channel)[0][1] == 1
            assert direct[0].pubsub_numsub(channel)[0][1] == 0
            assert direct[1].publish(channel, "moved") == 1
            got = await _read_until(reader, b"moved")
            assert got.startswith(b"*3\r\n$7\r\nmessage\r\n")  # no extra confirmation first
            writer.close()
        finally:
            server.close()
            for node in router.routes.nodes.values():
                node.stop()
