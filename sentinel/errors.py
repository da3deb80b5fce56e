"""The sentinel's exceptions: one root, `SentinelError`, and its kinds.

`SentinelError` derives from `slotwarden.cluster.errors.SlotwardenError`
(the project's root). Invariant: everything the `sentinel` package raises
on purpose derives from `SentinelError`, so a caller that catches it catches
them all; a bad cluster.yaml or an unreadable secret is the shared model's
`slotwarden.cluster.errors.ConfigError` / `SecretError`, not ours. Imports
nothing else from the project.
"""

from __future__ import annotations

from slotwarden.cluster.errors import SlotwardenError


class SentinelError(SlotwardenError):
    """Root of every exception raised by the `sentinel` package."""


class ElectionError(SentinelError):
    """A role transition that the election's table does not allow."""


class FailoverError(SentinelError):
    """A failover step transition that `STEPS` does not allow."""


class StateError(SentinelError):
    """The state file exists but cannot be read back."""


class SetupError(SentinelError):
    """A problem that stops the sentinel before it starts (one sentence)."""


class BadInput(SentinelError):
    """An HTTP client sent something we refuse; the message (one line) is the 400's reason."""


class MoverInterrupted(SentinelError):
    """A mover's pass stops short (`sentinel.act.mover`); it starts again from a new SCAN."""


class LockLost(MoverInterrupted):
    """A big key's lock expired under its mover (a stall of more than 10 s): copy abandoned."""


class SourceMoved(MoverInterrupted):
    """The source shard has a new master: the pass restarts on it."""


class NotInTopology(MoverInterrupted):
    """The migration is no longer in the latest topology (its mover is being stopped)."""
