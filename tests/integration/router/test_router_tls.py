"""The router over TLS: clients -> router, router -> shards (Redis TLS), HTTPS admin API.

Real redis-servers listen on ``tls-port`` only (``port 0``) with certificates
from a throwaway CA made by openssl and require client certificates; a real
``slotwarden router`` runs from a cluster.yaml with a ``tls:`` section, and
real clients (redis-py with ``ssl=True``, urllib) talk to it.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from slotwarden.procs import (
    RedisFarm,
    RedisProc,
    RouterProc,
    TLSFiles,
    free_port,
    make_tls_files,
    redis_tls_args,
    wait_for_port,
    write_cluster_yaml,
)


def tls_shards(farm: RedisFarm, files: TLSFiles, count: int) -> list[RedisProc]:
    out = []
    for _ in range(count):
        port = free_port()
        out.append(farm.start(redis_tls_args(files, port), port=port))
    return out


def tls_router(
    root: Path, shards: list[RedisProc], files: TLSFiles, **extra: object
) -> tuple[RouterProc, int, int]:
    path = root / "cluster.yaml"
    router_port, admin_port = write_cluster_yaml(str(path), shards)
    data = yaml.safe_load(path.read_text())
    data["tls"] = {**files.every_hop(), **extra}
    path.write_text(yaml.safe_dump(data))
    router = RouterProc(str(path), router_port, str(root / "router.log")).start()
    wait_for_port("127.0.0.1", admin_port)
    return router, router_port, admin_port


def tls_client(port: int, files: TLSFiles, cert: bool = True, **kw: object) -> redis.Redis:
    mine = {"ssl_certfile": files.cert, "ssl_keyfile": files.key} if cert else {}
    return redis.Redis(port=port, ssl=True, ssl_ca_certs=files.ca, socket_timeout=5, **mine, **kw)


@pytest.fixture(scope="module")
def tls_setup(tmp_path_factory) -> Iterator[tuple[TLSFiles, RouterProc, int, int, list]]:
    root = tmp_path_factory.mktemp("tls")
    files = make_tls_files(root / "ca")
    farm = RedisFarm()
    try:
        shards = tls_shards(farm, files, 2)
        router, port, admin = tls_router(root, shards, files, client_ca_file=files.ca)
        try:
            yield files, router, port, admin, shards
        finally:
            router.stop()
    finally:
        farm.close()


def test_redis_py_over_tls_through_the_router_to_tls_shards(tls_setup):
    files, router, port, _, shards = tls_setup
    r = tls_client(port, files, decode_responses=True)
    keys = [f"key:{i}" for i in range(20)]
    assert r.mset({k: k.upper() for k in keys}) is True  # fanned out to both shards
    assert r.mget(keys) == [k.upper() for k in keys]
    per_shard = [tls_client(s.port, files, decode_responses=True).dbsize() for s in shards]
    assert sum(per_shard) == 20 and all(per_shard), per_shard
    # dedicated (pinned) backend connections are TLS too: WATCH/MULTI/EXEC, BLPOP
    with r.pipeline() as pipe:
        pipe.watch("key:1")
        pipe.multi()
        pipe.set("key:1", "x")
        assert pipe.execute() == [True]
    r.rpush("list", "a")
    assert r.blpop(["list"], timeout=1) == ("list", "a")
    assert r.blpop(["list"], timeout=0.2) is None
    info = r.info()
    assert info["shards_up"] == 2, router.log()


def test_plain_client_and_client_without_certificate_are_refused(tls_setup):
    files, _, port, _, _ = tls_setup
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_timeout=2).ping()
    with pytest.raises(redis.ConnectionError):  # tls.client_ca_file: certificates required
        tls_client(port, files, cert=False).ping()
    assert tls_client(port, files).ping() is True


def test_admin_api_is_https_verified_by_the_ca_and_plain_http_fails(tls_setup):
    files, _, _, admin, _ = tls_setup
    ctx = ssl.create_default_context(cafile=files.ca)
    with urllib.request.urlopen(f"https://127.0.0.1:{admin}/health", context=ctx, timeout=5) as r:
        assert json.loads(r.read()) == {"ok": True}
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{admin}/health", timeout=5).read()
    # a client that does not trust the CA refuses the router's certificate
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(
            f"https://127.0.0.1:{admin}/health", context=ssl.create_default_context(), timeout=5
        )
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_router_refuses_a_shard_whose_certificate_is_from_another_ca(tmp_path, farm):
    ours = make_tls_files(tmp_path / "ours")
    theirs = make_tls_files(tmp_path / "theirs")
    (shard,) = tls_shards(farm, theirs, 1)
    router, port, _ = tls_router(tmp_path, [shard], ours)
    try:
        r = tls_client(port, ours)
        with pytest.raises(redis.ResponseError) as info:
            r.get("k")
        text = str(info.value)
        assert text.startswith("shard a is unavailable"), text
        assert "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text, text
        assert "CERTIFICATE_VERIFY_FAILED" in router.log()
    finally:
        router.stop()
