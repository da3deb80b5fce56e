"""Side connections: one command on a short-lived connection of its own to a node, bounded in time.

For what must not share the pipelined connections (router.wire.backend): the
router's CONFIG SET / RESETSTAT to every node of every shard, replicas
included (router.control.config_set). `call` connects as the shared
connections do (`open_to`: TLS when ``tls.backends``; the handshake with the
backend credentials `settings_for_shard` gives that node), sends the
command, reads its one reply and closes. It never raises for a node that is
down, hung or refusing: the answer is then an error reply the router makes
(``-ERR unreachable (Connection refused)``), and the whole call is bounded by
``connect_timeout + command_timeout``.
"""

from __future__ import annotations

import asyncio

from router.wire.backend import BackendSettings, handshake, open_to
from slotwarden.cluster.topology import Address
from slotwarden.resp.encode import encode_command, error_reply
from slotwarden.resp.errors import ProtocolError
from slotwarden.resp.replies import ReplyScanner


class _OneShot(asyncio.Protocol):
    """Collects ``want`` replies, then resolves ``done``."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.scanner = ReplyScanner()
        self.replies: list[bytes] = []
        self.done: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        try:
            self.scanner.feed(data)
            self.replies += self.scanner.replies()
        except ProtocolError as exc:
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if len(self.replies) >= self.want and not self.done.done():
            self.done.set_result(self.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("connection closed"))


async def call(addr: Address, settings: BackendSettings, args: list[bytes]) -> bytes:
    """``args``' reply from ``addr`` on a connection of its own, or an error naming why
    not (the handshake's refusal, unreachable, timed out)."""
    hello = handshake(settings.credentials, 2)
    proto = _OneShot(2 if hello else 1)
    transport: asyncio.BaseTransport | None = None
    limit = settings.connect_timeout + settings.command_timeout
    try:
        async with asyncio.timeout(limit):
            transport = await open_to(proto, addr, settings)
            transport.write(hello + encode_command(args))  # type: ignore[attr-defined]
            replies = await proto.done
    except TimeoutError:
        return error_reply(f"ERR timed out (no reply within {int(limit * 1000)} ms)")
    except (OSError, ProtocolError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return error_reply(f"ERR unreachable ({why})")
    finally:
        if transport is not None:
            transport.close()
    if hello and replies[0][:1] == b"-":
        why = replies[0][1:].rstrip(b"\r\n").decode("utf-8", "replace")[:200]
        return error_reply(f"ERR refused the router's backend credentials ({why})")
    return replies[-1]
