"""The ``tls:`` section of cluster.yaml and the refusal to send a secret in clear."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slotwarden.cluster import config as cfg
from slotwarden.cluster.errors import ConfigError

# slotwarden.cluster.tls is imported inside the tests that need it, so that the
# refusal tests fail by behaviour (not at import) on code without it.

REPO = Path(__file__).resolve().parents[3]


def base() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def problems_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfg.parse(data)
    return info.value.problems


def remote_sentinels(data: dict) -> dict:
    for i, peer in enumerate(data["sentinel"]["peers"]):
        peer["listen"] = f"10.0.0.{i + 1}:26701"
    return data


def test_bundled_demo_has_no_tls_and_loads():
    assert cfg.parse(base()).tls is None


def test_tls_section_parses():
    from slotwarden.cluster.tls import TLSConfig

    data = base()
    data["tls"] = {
        "ca_file": "ca.crt",
        "cert_file": "tls.crt",
        "key_file": "tls.key",
        "backends": True,
        "http": True,
        "clients": True,
        "client_ca_file": "clients-ca.crt",
    }
    tls = cfg.parse(data).tls
    assert tls == TLSConfig("ca.crt", "tls.crt", "tls.key", True, True, True, "clients-ca.crt")


def test_tls_section_problems():
    data = base()
    data["tls"] = {"backends": "yes", "http": True, "cafile": "x"}
    found = problems_of(data)
    assert any("tls: unknown key 'cafile'" in p and "ca_file" in p for p in found), found
    assert any(p.startswith("tls.backends: must be true or false") for p in found), found
    data["tls"] = {"http": True}
    found = problems_of(data)
    assert any(p.startswith("tls.ca_file: missing") for p in found), found
    assert any(p.startswith("tls.cert_file: tls.http needs") for p in found), found


def test_secret_over_http_to_remote_sentinel_is_refused():
    found = problems_of(remote_sentinels(base()))
    assert len(found) == 3, found
    assert found[0].startswith("sentinel.peers[0].listen: the shared secret would travel in clear")
    assert "10.0.0.1:26701" in found[0]
    assert "tls.http: true" in found[0] and "tls.allow_cleartext: true" in found[0]


def test_admin_on_all_interfaces_with_a_secret_is_refused():
    data = base()
    data["router"]["admin"] = "0.0.0.0:7780"
    (found,) = problems_of(data)
    assert found.startswith("router.admin: HTTP listener on 0.0.0.0:7780 without TLS")
    assert "tls.http: true" in found and "tls.allow_cleartext" in found
    # without a sentinel section no secret is configured: nothing to refuse
    del data["sentinel"]
    assert cfg.parse(data).router.admin.host == "0.0.0.0"


def test_router_user_passwords_to_a_remote_listener_are_refused():
    data = base()
    data["router"]["listen"] = "0.0.0.0:7777"
    assert cfg.parse(data).router.listen.host == "0.0.0.0"  # no users: no password to send
    data["router"]["users"] = [{"name": "default", "password_env": "APP_PASSWORD"}]
    (found,) = problems_of(data)
    assert found == (
        "router.listen: clients would send their router.users passwords in clear to "
        "0.0.0.0:7777; set tls.clients: true (see the tls: section of cluster.yaml) or "
        "tls.allow_cleartext: true"
    )
    data["tls"] = {"allow_cleartext": True}
    assert cfg.parse(data).router.users[0].name == "default"


def test_backend_password_to_remote_node_is_refused():
    data = base()
    data["backend"] = {"password_env": "SHARD_PASSWORD"}
    data["shards"][1]["master"] = "redis-b.internal:7002"
    data["shards"][2]["replicas"] = ["192.168.1.5:7103"]
    found = problems_of(data)
    assert found == [
        "shards[1].master: the backend password would travel in clear to redis-b.internal:7002; "
        "set tls.backends: true (see the tls: section of cluster.yaml) or "
        "tls.allow_cleartext: true",
        "shards[2].replicas: the backend password would travel in clear to 192.168.1.5:7103; "
        "set tls.backends: true (see the tls: section of cluster.yaml) or "
        "tls.allow_cleartext: true",
    ]
    # a per-shard password counts too; a shard without any password does not
    del data["backend"]
    data["shards"][1]["backend"] = {"password_env": "B_PASSWORD"}
    (found1,) = problems_of(data)
    assert found1.startswith("shards[1].master: the backend password")


def test_tls_or_explicit_opt_out_accepts_remote_addresses():
    from slotwarden.cluster.tls import TLSConfig

    data = remote_sentinels(base())
    data["router"]["admin"] = "0.0.0.0:7780"
    data["backend"] = {"password_env": "SHARD_PASSWORD"}
    data["shards"][0]["master"] = "10.0.1.1:7001"
    data["tls"] = {"allow_cleartext": True}
    assert cfg.parse(data).tls == TLSConfig(allow_cleartext=True)
    data["tls"] = {
        "ca_file": "ca.crt",
        "cert_file": "c.crt",
        "key_file": "c.key",
        "http": True,
        "backends": True,
    }
    assert cfg.parse(data).tls is not None
    data["tls"] = {"ca_file": "ca.crt", "cert_file": "c.crt", "key_file": "c.key", "http": True}
    (found,) = problems_of(data)  # HTTP is covered, the backend password is not
    assert found.startswith("shards[0].master: the backend password")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("redis-a", False),
    ],
)
def test_is_loopback(host, loopback):
    from slotwarden.cluster.tls import is_loopback

    assert is_loopback(host) is loopback


def test_check_command_refuses(tmp_path):
    from slotwarden.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(remote_sentinels(base())))
    assert main(["check", str(path)]) == 1
