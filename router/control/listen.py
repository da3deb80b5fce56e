"""Binding the router's TCP sockets, with the one-line error a taken or bad address gets.

Used by the router (`router.app`: its client listener and admin endpoint) and by the
supervisor of ``router.workers`` (`router.control.supervisor`): both say
``cannot listen on HOST:PORT[ (router.admin)]: address already in use`` and exit 1,
never a traceback.
"""

from __future__ import annotations

import os
import socket

from router.errors import ListenError
from slotwarden.cluster.topology import Address


def cannot_listen(addr: Address, exc: OSError, what: str = "") -> ListenError:
    """``cannot listen on HOST:PORT[ (router.admin)]: address already in use`` (one line)."""
    why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return ListenError(f"cannot listen on {addr}{what}: {why}")


def bind_tcp(addr: Address, what: str = "") -> socket.socket:
    """A TCP socket bound to ``addr`` (SO_REUSEADDR), not yet listening; `ListenError`
    (`cannot_listen`, ``what`` naming the setting) if the address cannot be had."""
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr.host, addr.port))
    except OSError as exc:
        sock.close()
        raise cannot_listen(addr, exc, what) from None
    return sock
