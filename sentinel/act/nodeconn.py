"""One way to open a connection to a Redis node from a sentinel: single, bounded, no retries.

Owns `node_client`, the redis-py client every `sentinel.act` module that talks
to a node builds (`probe`, `room`, `mover`): one connection, connect and read
bounded by ``timeout``, no retries of redis-py's own (the caller decides what
a failure means), authenticated with ``creds`` when cluster.yaml has some, TLS
per the ``tls:`` section. Invariant: the password goes into redis-py's
connection settings only - never into a log line or an exception text built
here.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from slotwarden.cluster.secrets import BackendCredentials
from slotwarden.cluster.topology import Address


def node_client(
    addr: Address,
    creds: BackendCredentials | None,
    timeout: float,
    tls: dict[str, Any],
    name: str | None = None,
) -> aioredis.Redis:
    """A single-connection client to ``addr``; ``name`` is sent with CLIENT SETNAME
    (None: not sent - the router's ACL user may not have it)."""
    username = password = None
    if creds is not None:
        *user, pw = creds.auth_args()
        username = user[0].decode() if user else None
        password = pw.decode()
    return aioredis.Redis(
        host=addr.host,
        port=addr.port,
        username=username,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
        client_name=name,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        **tls,
    )
