"""Notices when a file changes: the watch behind live cluster.yaml edits (router and sentinel).

Polling the file's mtime and size (no extra dependency). No asyncio here:
the caller's loop asks `FileWatch.changed` every `POLL_S` seconds and
decides what a change means.
"""

from __future__ import annotations

import os

POLL_S = 1.0  # how often the file's mtime/size is checked


class FileWatch:
    """Notices when a file's mtime or size changes. Shared by the router's and the
    sentinel's config reloaders."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def mark(self) -> None:
        """The file as it is now has been read."""
        self._stamp = self._file_stamp()

    def changed(self) -> bool:
        """True if the file differs from when it was last `mark`-ed (a missing file
        is no change: an editor's rename-into-place must not look like a deletion)."""
        stamp = self._file_stamp()
        return stamp is not None and stamp != self._stamp
