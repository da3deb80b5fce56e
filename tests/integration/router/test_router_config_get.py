"""CONFIG GET through the router never shows the shards' secrets or file paths (issue 10, item 1).

With the shards' password a client could talk to them directly, past every
refusal of the router. Every shard gets a masterauth and a requirepass-like
secret value here, so that a leak would show the value itself.
"""

from __future__ import annotations

import pytest
import redis
from compat import Raw

SECRET = "s3cret-masterauth-value"
# What the router must never show (issue 10: passwords, TLS keys, where files are).
CONFIG_HIDDEN = {
    "requirepass", "masterauth", "masteruser", "aclfile", "dir", "dbfilename", "logfile",
    "pidfile", "unixsocket", "unixsocketperm", "appendfilename", "appenddirname",
    "cluster-config-file", "tls-cert-file", "tls-key-file", "tls-key-file-pass",
    "tls-client-cert-file", "tls-client-key-file", "tls-client-key-file-pass",
    "tls-ca-cert-file", "tls-ca-cert-dir", "tls-dh-params-file",
}  # fmt: skip


@pytest.fixture
def secret_shards(fresh):
    for i in range(len(fresh.masters)):
        fresh.shard_client(i).config_set("masterauth", SECRET)
    yield fresh
    for i in range(len(fresh.masters)):
        fresh.shard_client(i).config_set("masterauth", "")


@pytest.mark.parametrize("protocol", [2, 3])
def test_config_get_hides_secrets_and_paths(secret_shards, protocol) -> None:
    r = redis.Redis(port=secret_shards.port, protocol=protocol)
    try:
        everything = r.config_get("*")
        assert everything, "CONFIG GET * answered nothing"
        assert "maxmemory" in everything and "maxmemory-policy" in everything
        assert not CONFIG_HIDDEN & set(everything), CONFIG_HIDDEN & set(everything)
        assert SECRET not in everything.values()
        for pattern in ("*pass*", "*auth*", "*user*", "tls-*", "dir", "*file*", "*socket*"):
            shown = r.config_get(pattern)
            assert not CONFIG_HIDDEN & set(shown), (pattern, shown)
        for name in sorted(CONFIG_HIDDEN):
            assert r.config_get(name) == {}, name
        # several patterns in one call (Redis 7): the harmless ones still answer
        both = r.config_get("masterauth", "maxmemory")
        assert set(both) == {"maxmemory"}
        # the shard itself has them: the router hid them
        direct = secret_shards.shard_client(0).config_get("masterauth")
        assert direct == {"masterauth": SECRET}
    finally:
        r.close()


def test_config_get_of_harmless_settings_is_the_shards(fresh) -> None:
    r = fresh.client()
    assert r.config_get("maxmemory-policy") == fresh.shard_client(0).config_get("maxmemory-policy")
    assert r.config_get("nosuch-setting") == {}


def test_config_get_is_refused_inside_multi(fresh) -> None:
    """EXEC's reply would not go through the filter: refused at queue time."""
    with Raw(fresh.port) as c:
        replies = c.talk(("MULTI",), ("CONFIG", "GET", "masterauth"), ("EXEC",))
    assert replies[0] == b"+OK\r\n"
    assert replies[1] == b"-ERR 'config get' inside MULTI is not supported by the router\r\n"
    assert replies[2].startswith(b"-EXECABORT"), replies
