"""The sentinel's persisted state: epoch, last vote and latest topology.

Owns the file ``<state_dir>/<id>/state.json``. `StateStore.save` writes a
temporary file, fsyncs it, renames it over the old one and fsyncs the
directory, so after a crash the file holds either the old or the new state,
never a mix. Callers save *before* acting on a new state (answering a vote,
serving a topology). `StateStore.load` returns the saved state, or a fresh
one (epoch 0, no vote, no topology: the config's slot map applies) if there
is none. cluster.yaml is never written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from sentinel.decide.election import VoteState, on_vote_request
from sentinel.errors import StateError
from slotwarden.cluster.topology import SlotMap

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Persisted:
    votes: VoteState
    topology: SlotMap | None  # None: nothing newer than cluster.yaml yet


class StateStore:
    def __init__(self, state_dir: str | os.PathLike[str], sentinel_id: str) -> None:
        self.dir = Path(state_dir) / sentinel_id
        self.path = self.dir / "state.json"

    def load(self) -> Persisted:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return Persisted(VoteState(), None)
        try:
            data = json.loads(raw)
            votes = VoteState(
                epoch=int(data["epoch"]),
                voted_epoch=int(data["voted_epoch"]),
                voted_for=data["voted_for"],
            )
            topo = data.get("topology")
            return Persisted(votes, SlotMap.from_dict(topo) if topo else None)
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{self.path}: unreadable sentinel state ({exc})") from None

    def save(self, state: Persisted) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "epoch": state.votes.epoch,
            "voted_epoch": state.votes.voted_epoch,
            "voted_for": state.votes.voted_for,
            "topology": state.topology.to_dict() if state.topology else None,
        }
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(data, indent=1).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def answer_vote(
    store: StateStore, current: Persisted, epoch: int, candidate: str
) -> tuple[Persisted, bool]:
    """Decide a vote request and persist the outcome *before* returning it.

    If saving fails the exception propagates and no vote is granted.
    """
    votes, granted = on_vote_request(current.votes, epoch, candidate)
    new = replace(current, votes=votes)
    if votes != current.votes:
        store.save(new)
    return new, granted
