"""sentinel.reshard.write_atomically: same mode, symlinks followed, no temp file left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sentinel.reshard import write_atomically


def test_mode_kept_symlink_followed_nothing_left(tmp_path: Path):
    real = tmp_path / "conf" / "cluster.yaml"
    real.parent.mkdir()
    real.write_text("old\n")
    os.chmod(real, 0o640)
    link = tmp_path / "cluster.yaml"
    link.symlink_to(real)
    write_atomically(str(link), "new: 1\n")
    assert link.is_symlink() and real.read_text() == "new: 1\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["cluster.yaml"]
