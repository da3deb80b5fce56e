"""TLS: the ``tls:`` section of cluster.yaml, the cleartext refusal, and the SSL contexts.

Owns which hops speak TLS and with which files:

- ``tls.backends``: router -> shards and sentinel -> nodes use Redis's own TLS
  (the addresses in ``shards[]`` are then the nodes' ``tls-port``); the nodes'
  certificates are verified against ``ca_file``, and ``cert_file``/``key_file``
  (when set) are presented as the client certificate (``tls-auth-clients``);
- ``tls.http``: the router's admin API and the sentinels' API are HTTPS
  (``cert_file``/``key_file``), and every client of them (router watcher,
  sentinel peers and pushes, ``status``, ``failover``) verifies ``ca_file``;
- ``tls.clients``: the router's client listener speaks TLS (``cert_file``/
  ``key_file``), requiring client certificates signed by ``client_ca_file``
  when that is set.

`cleartext_problems` is the refusal: a secret (the shared bearer secret, a
backend password) must not travel in clear to a non-loopback address unless
the file says ``tls.allow_cleartext: true``. Every problem names the address
and the key to set. Invariant: the check is a pure function of the parsed
config (a hostname other than ``localhost`` counts as non-loopback); the
context builders are the only code here that touches files (and imports
``ssl``, which loads ``socket``: this layer stays pure), and a file that
cannot be loaded is a `SecretError` naming the key, never a silent downgrade.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.topology import Address

if TYPE_CHECKING:
    import ssl  # imported by the context builders only: `ssl` loads `socket`


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """The ``tls:`` section. Nothing is TLS unless one of backends/http/clients says so."""

    ca_file: str | None = None  # CA that signs the nodes', sentinels' and router admin's certs
    cert_file: str | None = None  # this process's certificate (server and Redis client cert)
    key_file: str | None = None  # its private key
    backends: bool = False  # router -> shards, sentinel -> nodes over Redis TLS
    http: bool = False  # admin API and sentinel API over HTTPS, their clients verify ca_file
    clients: bool = False  # the router's client listener (router.listen) speaks TLS
    client_ca_file: str | None = None  # with clients: require client certs signed by this CA
    allow_cleartext: bool = False  # explicit opt-out of the cleartext refusal

    @property
    def any(self) -> bool:
        return self.backends or self.http or self.clients


TLS_KEYS = tuple(f.name for f in fields(TLSConfig))
_FILE_KEYS = ("ca_file", "cert_file", "key_file", "client_ca_file")
_BOOL_KEYS = ("backends", "http", "clients", "allow_cleartext")
_HOW = "set tls.{key}: true (see the tls: section of cluster.yaml) or tls.allow_cleartext: true"


def parse_tls(section: Mapping[Any, Any], problem: Callable[[str, str], None]) -> TLSConfig | None:
    """The ``tls:`` mapping (unknown keys already flagged by the caller) as a `TLSConfig`,
    or None after reporting each problem through ``problem(path, message)``."""
    ok = True
    kwargs: dict[str, Any] = {}
    for key in _FILE_KEYS:
        value = section.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            problem(f"tls.{key}", f"must be a file path, got {value!r}")
            ok = False
        else:
            kwargs[key] = value
    for key in _BOOL_KEYS:
        value = section.get(key)
        if value is None:
            continue
        if not isinstance(value, bool):
            problem(f"tls.{key}", f"must be true or false, got {value!r}")
            ok = False
        else:
            kwargs[key] = value
    if not ok:
        return None
    tls = TLSConfig(**kwargs)
    if (tls.backends or tls.http) and tls.ca_file is None:
        on = "tls.backends" if tls.backends else "tls.http"
        problem("tls.ca_file", f"missing: {on} needs the CA that signed the servers' certificates")
        ok = False
    if (tls.http or tls.clients) and (tls.cert_file is None or tls.key_file is None):
        on = "tls.http" if tls.http else "tls.clients"
        problem("tls.cert_file", f"{on} needs tls.cert_file and tls.key_file (the server side)")
        ok = False
    if (tls.cert_file is None) != (tls.key_file is None):
        problem("tls.key_file", "tls.cert_file and tls.key_file go together")
        ok = False
    if tls.client_ca_file is not None and not tls.clients:
        problem("tls.client_ca_file", "only means something with tls.clients: true")
        ok = False
    return tls if ok else None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs; any other name or address is not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cleartext_problems(
    tls: TLSConfig | None,
    admin: Address,
    peers: Sequence[tuple[str, Address]],
    secret_nodes: Sequence[tuple[str, Address]],
    user_listen: Address | None = None,
) -> list[str]:
    """Each place a secret would travel in clear to a non-loopback address.

    ``peers``: (field path, address) of every sentinel (given only when a shared
    secret is configured, i.e. there is a ``sentinel:`` section); ``admin``: the
    router's admin listener (checked only then too); ``secret_nodes``: (field
    path, address) of every Redis node the router sends a backend password to;
    ``user_listen``: the router's client listener, given only when router users
    are configured (clients send their passwords there with AUTH).
    """
    tls = tls or TLSConfig()
    if tls.allow_cleartext:
        return []
    out: list[str] = []
    if peers and not tls.http:
        for path, addr in peers:
            if not is_loopback(addr.host):
                out.append(
                    f"{path}: the shared secret would travel in clear over HTTP to {addr} "
                    f"(routers, peers and operators send it there); {_HOW.format(key='http')}"
                )
        if not is_loopback(admin.host):
            out.append(
                f"router.admin: HTTP listener on {admin} without TLS while a shared secret is "
                f"configured (sentinels send it there); {_HOW.format(key='http')}"
            )
    if user_listen is not None and not tls.clients and not is_loopback(user_listen.host):
        out.append(
            f"router.listen: clients would send their router.users passwords in clear to "
            f"{user_listen}; {_HOW.format(key='clients')}"
        )
    if not tls.backends:
        for path, addr in secret_nodes:
            if not is_loopback(addr.host):
                out.append(
                    f"{path}: the backend password would travel in clear to {addr}; "
                    f"{_HOW.format(key='backends')}"
                )
    return out


# -- SSL contexts (the only file access in this module) ---------------------


def _load(what: str, action: Callable[[], object]) -> None:
    import ssl

    try:
        action()
    except (OSError, ssl.SSLError) as exc:
        raise SecretError(f"{what}: cannot load it ({exc.strerror or exc})") from None


def client_context(tls: TLSConfig) -> ssl.SSLContext:
    """Verifies servers against ``ca_file`` (hostname included); presents
    ``cert_file``/``key_file`` as the client certificate when they are set."""
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if tls.ca_file is not None:
        ca = tls.ca_file
        _load(f"tls.ca_file {ca}", lambda: ctx.load_verify_locations(cafile=ca))
    _load_chain(ctx, tls)
    return ctx


def server_context(tls: TLSConfig, client_ca: str | None = None) -> ssl.SSLContext:
    """Serves ``cert_file``/``key_file``; with ``client_ca``, requires client certificates
    signed by it."""
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(ctx, tls)
    if client_ca is not None:
        _load(f"tls.client_ca_file {client_ca}", lambda: ctx.load_verify_locations(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _load_chain(ctx: ssl.SSLContext, tls: TLSConfig) -> None:
    cert, key = tls.cert_file, tls.key_file
    if cert is not None and key is not None:
        _load(f"tls.cert_file {cert} / tls.key_file {key}", lambda: ctx.load_cert_chain(cert, key))


def backend_context(tls: TLSConfig | None) -> ssl.SSLContext | None:
    """The context for connections to Redis nodes, or None when they are plain TCP."""
    return client_context(tls) if tls is not None and tls.backends else None


def http_client_context(tls: TLSConfig | None) -> ssl.SSLContext | None:
    """The context for HTTPS calls to sentinels and routers, or None for plain HTTP."""
    return client_context(tls) if tls is not None and tls.http else None


def http_server_context(tls: TLSConfig | None) -> ssl.SSLContext | None:
    """The context of the admin and sentinel HTTP listeners, or None for plain HTTP."""
    return server_context(tls) if tls is not None and tls.http else None


def client_listener_context(tls: TLSConfig | None) -> ssl.SSLContext | None:
    """The context of the router's client listener, or None for plain RESP."""
    if tls is None or not tls.clients:
        return None
    return server_context(tls, tls.client_ca_file)


def http_scheme(tls: TLSConfig | None) -> str:
    return "https" if tls is not None and tls.http else "http"


def redis_py_kwargs(tls: TLSConfig | None) -> dict[str, Any]:
    """redis-py connection arguments for a node (empty unless ``tls.backends``)."""
    if tls is None or not tls.backends:
        return {}
    return {
        "ssl": True,
        "ssl_ca_certs": tls.ca_file,
        "ssl_certfile": tls.cert_file,
        "ssl_keyfile": tls.key_file,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
    }
