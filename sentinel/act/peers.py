"""HTTP clients of a sentinel: its peer sentinels and the routers it pushes to.

Owns the wire format of sentinel-to-sentinel and sentinel-to-router calls
(paths, JSON bodies, the Bearer secret) on the client side; `sentinel.http.api`
is the server side. Invariant: every call has a deadline and returns a
parsed answer or None (with the reason logged at debug level); a peer or
router that is down, slow or answering garbage never raises into the run cycle.
The secret is sent in a header and never logged. With cluster.yaml
``tls.http`` every call is HTTPS and verifies the server against ``tls.ca_file``.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from slotwarden.cluster import trust
from slotwarden.cluster.secrets import bearer
from slotwarden.cluster.tls import TLSConfig, http_client_context, http_scheme
from slotwarden.cluster.topology import Address, SlotMap

log = logging.getLogger("sentinel.peers")


def url(addr: Address, path: str, scheme: str = "http") -> str:
    host = f"[{addr.host}]" if ":" in addr.host else addr.host
    return f"{scheme}://{host}:{addr.port}{path}"


class PeerClient:
    """One aiohttp session shared by every outgoing call of a sentinel process."""

    def __init__(self, secret: str, tls: TLSConfig | None = None) -> None:
        """``tls``: cluster.yaml's tls section (HTTPS when ``tls.http``); raises
        `SecretError` when its files cannot be loaded."""
        self._headers = bearer(secret)
        self._session: aiohttp.ClientSession | None = None
        self._ssl = http_client_context(tls)
        self.scheme = http_scheme(tls)

    async def __aenter__(self) -> PeerClient:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=aiohttp.TCPConnector(
                limit=64, force_close=False, ssl=self._ssl if self._ssl is not None else True
            ),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, addr: Address, path: str, timeout: float, body: object = None
    ) -> Any:
        """The decoded JSON answer of a 200 reply, else None."""
        assert self._session is not None, "use `async with PeerClient(...)`"
        try:
            async with self._session.request(
                method,
                url(addr, path, self.scheme),
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                if resp.status != 200:
                    log.debug("%s %s%s: HTTP %d", method, addr, path, resp.status)
                    return None
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("%s %s%s failed: %s: %s", method, addr, path, type(exc).__name__, exc)
            return None

    async def call_any(
        self, method: str, addr: Address, path: str, timeout: float, body: object = None
    ) -> dict[str, Any] | None:
        """Like `call`, but also returns the JSON body of a non-200 answer."""
        assert self._session is not None, "use `async with PeerClient(...)`"
        try:
            async with self._session.request(
                method,
                url(addr, path, self.scheme),
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                return _dict(await resp.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("%s %s%s failed: %s: %s", method, addr, path, type(exc).__name__, exc)
            return None

    # -- peers -----------------------------------------------------------------

    async def opinion(self, peer: Address, timeout: float) -> dict[str, Any] | None:
        return _dict(await self.call("GET", peer, "/opinion", timeout))

    async def vote(
        self, peer: Address, epoch: int, candidate: str, timeout: float
    ) -> dict[str, Any] | None:
        body = {"epoch": epoch, "candidate": candidate}
        return _dict(await self.call("POST", peer, "/vote", timeout, body))

    async def topology(self, peer: Address, timeout: float) -> SlotMap | None:
        return parse_topology(await self.call("GET", peer, "/topology", timeout))

    async def routers(self, peer: Address, timeout: float) -> dict[str, int | None] | None:
        """The peer's registered routers and the epoch each reported (``GET /routers``),
        or None (no answer, or not that shape)."""
        return parse_routers(await self.call("GET", peer, "/routers", timeout))

    # -- peers and routers alike ---------------------------------------------

    async def push(
        self, target: Address, topology: SlotMap, timeout: float
    ) -> dict[str, Any] | None:
        """POST the topology; routers and sentinels both answer {applied, epoch}."""
        return _dict(await self.call("POST", target, "/topology", timeout, topology.to_dict()))


def parse_topology(data: object) -> SlotMap | None:
    """``data`` as a `SlotMap` (`slotwarden.cluster.trust.parse_topology`: any malformed
    shape, a non-integer or out-of-range epoch), or None, logged."""
    if not isinstance(data, dict):
        return None
    try:
        return trust.parse_topology(data)
    except trust.TopologyRefused as exc:
        log.warning("ignoring a malformed topology: %s", exc)
        return None


def parse_routers(data: object) -> dict[str, int | None] | None:
    """``{"routers": {"host:port": epoch or null}}`` as a dict, or None if malformed."""
    routers = data.get("routers") if isinstance(data, dict) else None
    if not isinstance(routers, dict):
        return None
    out: dict[str, int | None] = {}
    for addr, epoch in routers.items():
        if not isinstance(addr, str) or not (
            epoch is None or (isinstance(epoch, int) and not isinstance(epoch, bool))
        ):
            return None
        out[addr] = epoch
    return out


def _dict(data: object) -> dict[str, Any] | None:
    return data if isinstance(data, dict) else None
