"""Which node credentials the sentinels use: ``sentinel.backend``, else the router's.

The router never reads the sentinels' password: its backend settings load with
the sentinels' variable unset.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from router.wire.backend import settings_from_config
from sentinel.act import probe
from slotwarden.cluster import config as cfg
from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.topology import Address

BUNDLED = Path(__file__).resolve().parents[3] / "cluster.yaml"


def bundled(**changes: object) -> cfg.ClusterConfig:
    data = yaml.safe_load(BUNDLED.read_text())
    data.update(changes)
    return cfg.parse(data)


@pytest.fixture(autouse=True)
def keep_probe_credentials() -> Iterator[None]:
    saved = dict(probe._AUTH), list(probe._DEFAULT_AUTH)
    yield
    probe._AUTH.clear()
    probe._AUTH.update(saved[0])
    probe._DEFAULT_AUTH[:] = saved[1]


def test_sentinels_use_their_own_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWARDEN_BACKEND_PASSWORD", "router-pw")
    monkeypatch.setenv("SLOTWARDEN_SENTINEL_PASSWORD", "sentinel-pw")
    probe.set_backend_auth(bundled())
    creds = probe._AUTH.get(Address("127.0.0.1", 7001), probe._DEFAULT_AUTH[0])
    assert creds is not None
    assert creds.auth_args() == [b"slotwarden-sentinel", b"sentinel-pw"]


def test_sentinels_fall_back_to_the_routers_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWARDEN_BACKEND_PASSWORD", "router-pw")
    monkeypatch.delenv("SLOTWARDEN_SENTINEL_PASSWORD", raising=False)
    data = yaml.safe_load(BUNDLED.read_text())
    del data["sentinel"]["backend"]
    probe.set_backend_auth(cfg.parse(data))
    creds = probe._DEFAULT_AUTH[0]
    assert creds is not None and creds.auth_args() == [b"slotwarden-router", b"router-pw"]


def test_sentinels_own_password_must_be_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWARDEN_BACKEND_PASSWORD", "router-pw")
    monkeypatch.delenv("SLOTWARDEN_SENTINEL_PASSWORD", raising=False)
    with pytest.raises(SecretError):
        probe.set_backend_auth(bundled())


def test_the_router_never_reads_the_sentinels_password() -> None:
    settings = settings_from_config(bundled(), {"SLOTWARDEN_BACKEND_PASSWORD": "router-pw"})
    assert settings.credentials is not None
    assert settings.credentials.auth_args() == [b"slotwarden-router", b"router-pw"]
