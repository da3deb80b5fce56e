"""router.wire.backend.settings_for_shard: backend credentials only for cluster.yaml's nodes.

Defence in depth for issue 10, item 7: whatever a route names, AUTH goes only
to a node cluster.yaml lists for that shard.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from router.wire.backend import settings_for_shard, settings_from_config
from slotwarden.cluster.config import parse
from slotwarden.cluster.topology import Address

BUNDLED = Path(__file__).resolve().parents[3] / "cluster.yaml"
FOREIGN = Address("10.0.0.9", 6379)


def test_backend_credentials_go_only_to_listed_nodes() -> None:
    data = yaml.safe_load(BUNDLED.read_text())
    data["backend"] = {"password_env": "BACKEND_PW"}
    config = parse(data)
    settings = settings_from_config(config, {"BACKEND_PW": "pw"})
    a = config.shards[0]
    assert settings_for_shard(settings, config, "a", a.master).credentials is not None
    assert settings_for_shard(settings, config, "a", a.replicas[0]).credentials is not None
    assert settings_for_shard(settings, config, "a", FOREIGN).credentials is None
    assert settings_for_shard(settings, config, "b", a.master).credentials is None
