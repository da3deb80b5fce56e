"""The exception roots: `SlotwardenError` for the whole project, `ClusterError` for this package.

Every package has one root that derives from `SlotwardenError`:
`slotwarden.cluster` → `ClusterError`, `slotwarden.resp` → `ProtocolError`,
`router` → `RouterError`, `sentinel` → `SentinelError`. Invariant: a
caller that catches a package's root catches everything that package raises
on purpose.
"""

from __future__ import annotations


class SlotwardenError(Exception):
    """Root of every exception slotwarden raises on purpose."""


class ClusterError(SlotwardenError):
    """Root of the exceptions of `slotwarden.cluster` (the shared model)."""


class ConfigError(ClusterError):
    """An invalid cluster.yaml; ``problems`` holds one clear message per problem."""

    def __init__(self, problems: list[str], source: str = "cluster.yaml") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


class SecretError(ClusterError):
    """A secret cluster.yaml names (the shared secret, a password) cannot be read or used."""
