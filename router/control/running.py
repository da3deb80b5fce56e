"""The running configuration: cluster.yaml as parsed, and what the router derives from it.

One `RunningConfig` is shared by everything that reads the config while
serving (client connections through the `router.wire.ports.ConfigSource`
port, the route table, the client registry, the metrics). A reload
(router.control.reload) replaces its fields, so readers see the new config
from their next read on.

Invariant: ``backend`` and ``users`` were derived from a config whose secrets
could be read; a reload whose secrets cannot be read keeps the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.decide.users import Users
from router.wire.backend import BackendSettings, settings_from_config
from slotwarden.cluster.config import ClusterConfig


@dataclass(slots=True)
class RunningConfig:
    config: ClusterConfig
    backend: BackendSettings  # timeouts, pool sizes and credentials of backend connections
    users: Users  # who clients AUTH as

    @classmethod
    def load(cls, config: ClusterConfig) -> RunningConfig:
        """Raises `SecretError` when a password cluster.yaml names cannot be read."""
        return cls(config, settings_from_config(config), Users.load(config))
