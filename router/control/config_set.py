"""CONFIG SET and CONFIG RESETSTAT on every node of every shard; settings remembered for new nodes.

With ``router.allow_config_set: true`` a client's CONFIG SET or CONFIG
RESETSTAT (router.wire.client hands it to `ConfigWrites.request`) goes to
every node the route names, masters and replicas (so a failover keeps the
setting), each on a side connection of its own (router.wire.side: the
router's backend credentials and TLS, bounded by connect + command
timeout), all at once. The client gets ``+OK`` only if every node applied
it; otherwise the error `router.decide.config_set.verdict` makes, naming the
nodes that refused or failed and why. What was refused before any node saw
it (secrets, files, replication ... `router.decide.config_set.check`) never
leaves the router. CONFIG RESETSTAT also resets the router's own INFO
counters (``on_resetstat``: router.control.serverinfo's baseline).

Remembered: the last value of each parameter a CONFIG SET applied on at
least one node, in memory (a restarted router forgets them). When the route
table applies a new slot map (`on_slotmap`, from router.control.routes) the
remembered settings go, in one CONFIG SET, to every node the router has not
seen before (a replica added by a reload, a node a push or the sentinels
promoted) and to every node that missed one earlier (down at the time);
a failure there is logged (the node is tried again at the next topology
change), never sent to a client.

Invariant: every task runs in the app's TaskGroup (`attach`) and is bounded
by the side connections' timeouts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from router.control.running import RunningConfig
from router.decide import config_set as rules
from router.decide.config_set import NodeReply
from router.wire import side
from router.wire.backend import settings_for_shard
from router.wire.node import RouteSource
from router.wire.ports import Waiter
from router.wire.turn import LoopTurn
from slotwarden.cluster.topology import Address, SlotMap

log = logging.getLogger("slotwarden.router")


def nodes_of(slotmap: SlotMap) -> list[tuple[Address, str, str]]:
    """Every node of ``slotmap``: (address, shard name, role), masters first per shard."""
    out: list[tuple[Address, str, str]] = []
    for shard in slotmap.shards:
        out.append((shard.master, shard.name, "master"))
        out += [(r, shard.name, "replica") for r in shard.replicas]
    return out


class ConfigWrites:
    def __init__(self, running: RunningConfig, routes: RouteSource, turn: LoopTurn) -> None:
        self.running = running
        self.routes = routes
        self.turn = turn
        self.settings: dict[bytes, bytes] = {}  # remembered: parameter (lower case) -> value
        self.seen: set[Address] = set()  # nodes of every route applied since start
        self.behind: set[Address] = set()  # nodes known to miss a remembered setting
        self._spawn: Callable[..., asyncio.Task[None]] | None = None
        self.on_resetstat: Callable[[], None] | None = None  # the router's own INFO stats

    def attach(self, tg: asyncio.TaskGroup) -> None:
        self._spawn = tg.create_task

    # ------------------------------------------------------------ clients

    def request(self, args: list[bytes], waiter: Waiter) -> None:
        """Answer ``waiter`` with the reply to CONFIG SET/RESETSTAT ``args``, later."""
        resetstat = args[1].lower() == b"resetstat"
        error = None if resetstat else rules.check(args)
        if error is not None:
            waiter.on_reply(error)
            return
        assert self._spawn is not None, "attach() first"
        self._spawn(self._run(args, waiter, resetstat), name="config set")

    async def _run(self, args: list[bytes], waiter: Waiter, resetstat: bool) -> None:
        nodes = nodes_of(self.routes.route.slotmap)
        replies = await self._everywhere(nodes, args)
        command = "CONFIG RESETSTAT" if resetstat else "CONFIG SET"
        if resetstat and self.on_resetstat is not None:
            self.on_resetstat()
        if not resetstat and rules.applied_anywhere(replies):
            self.settings.update(rules.pairs(args))
            for (addr, _, _), reply in zip(nodes, replies, strict=True):
                if reply.reply[:1] != b"+":
                    self.behind.add(addr)
            names = b" ".join(n for n, _ in rules.pairs(args)).decode("utf-8", "replace")
            log.info("CONFIG SET %s through the router: applied on %d of %d nodes", names,
                     sum(r.reply[:1] == b"+" for r in replies), len(replies))  # fmt: skip
            # a slot map applied meanwhile may have brought nodes this one did not reach
            sent = {addr for addr, _, _ in nodes}
            late = [n for n in nodes_of(self.routes.route.slotmap) if n[0] not in sent]
            if late and self._spawn is not None:
                self.behind.update(addr for addr, _, _ in late)
                self._spawn(self._catch_up(late, self._remembered()), name="config set catch-up")
        waiter.on_reply(rules.verdict(command, replies))
        self.turn.flush()

    async def _everywhere(
        self, nodes: list[tuple[Address, str, str]], args: list[bytes]
    ) -> list[NodeReply]:
        running = self.running
        calls = [
            side.call(addr, settings_for_shard(running.backend, running.config, shard, addr), args)
            for addr, shard, _ in nodes
        ]
        replies = await asyncio.gather(*calls)
        return [
            NodeReply(f"{addr} (shard {shard} {role})", reply)
            for (addr, shard, role), reply in zip(nodes, replies, strict=True)
        ]

    # ------------------------------------------------------------ topology

    def on_slotmap(self, slotmap: SlotMap) -> None:
        """The route table applied ``slotmap``: the remembered settings go to its nodes
        not seen before and to those that missed one."""
        nodes = nodes_of(slotmap)
        todo = [n for n in nodes if n[0] not in self.seen or n[0] in self.behind]
        self.seen.update(addr for addr, _, _ in nodes)
        if not todo or not self.settings or self._spawn is None:
            return
        self._spawn(self._catch_up(todo, self._remembered()), name="config set catch-up")

    def _remembered(self) -> list[bytes]:
        """One CONFIG SET of every remembered setting."""
        args = [b"CONFIG", b"SET"]
        for name, value in self.settings.items():
            args += [name, value]
        return args

    async def _catch_up(self, nodes: list[tuple[Address, str, str]], args: list[bytes]) -> None:
        replies = await self._everywhere(nodes, args)
        names = ", ".join(n.decode("utf-8", "replace") for n in args[2::2])
        for (addr, _, _), reply in zip(nodes, replies, strict=True):
            if reply.reply[:1] == b"+":
                self.behind.discard(addr)
                log.info("remembered CONFIG SET (%s) applied to %s", names, reply.node)
            else:
                self.behind.add(addr)
                why = reply.reply[1:].rstrip(b"\r\n").decode("utf-8", "replace")
                log.warning(
                    "remembered CONFIG SET (%s) failed on %s: %s (tried again at the next "
                    "topology change)", names, reply.node, why,
                )  # fmt: skip
