"""cluster.yaml ``sentinel.backend``: the sentinels' own node credentials (issue 10 item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slotwarden.cluster import config as cfg
from slotwarden.cluster.errors import ConfigError

BUNDLED = Path(__file__).resolve().parents[3] / "cluster.yaml"


def base() -> dict:
    return yaml.safe_load(BUNDLED.read_text())


def test_bundled_file_names_two_users():
    c = cfg.load(BUNDLED)
    assert c.backend is not None and c.backend.username == "slotwarden-router"
    assert c.backend.password == cfg.SecretRef(env="SLOTWARDEN_BACKEND_PASSWORD")
    assert c.sentinel is not None and c.sentinel.backend is not None
    assert c.sentinel.backend.username == "slotwarden-sentinel"
    assert c.sentinel.backend.password == cfg.SecretRef(env="SLOTWARDEN_SENTINEL_PASSWORD")


def test_sentinel_backend_is_optional():
    data = base()
    del data["sentinel"]["backend"]
    c = cfg.parse(data)
    assert c.sentinel is not None and c.sentinel.backend is None


def test_sentinel_backend_takes_the_backend_keys():
    data = base()
    data["sentinel"]["backend"] = {"username": "s", "password_file": "/run/s.pw"}
    c = cfg.parse(data)
    assert c.sentinel is not None and c.sentinel.backend is not None
    assert c.sentinel.backend.password == cfg.SecretRef(file="/run/s.pw")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"username": "s", "password": "x"}, "sentinel.backend.password: passwords are not"),
        ({"username": "s"}, "sentinel.backend: needs exactly one of password_env"),
        ({"username": "s", "password_env": "A", "user": "x"}, "sentinel.backend: unknown key"),
    ],
)
def test_sentinel_backend_problems(section, message):
    data = base()
    data["sentinel"]["backend"] = section
    with pytest.raises(ConfigError) as info:
        cfg.parse(data)
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("username", ["slotwarden-router", None])
def test_sentinels_and_router_may_not_share_a_user(username):
    data = base()
    if username is None:
        del data["backend"]["username"]
        del data["sentinel"]["backend"]["username"]
    else:
        data["sentinel"]["backend"]["username"] = username
    with pytest.raises(ConfigError) as info:
        cfg.parse(data)
    (problem,) = info.value.problems
    assert problem.startswith("sentinel.backend.username: names ")
    assert "need an ACL user of their own" in problem
