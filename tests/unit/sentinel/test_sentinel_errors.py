"""errors: one exception root for the sentinel package, under the project's root."""

from __future__ import annotations

import ast
from pathlib import Path

from sentinel import errors
from slotwarden.cluster.errors import SlotwardenError

SENTINEL = Path(__file__).resolve().parents[3] / "sentinel"


def test_every_sentinel_exception_derives_from_sentinel_error():
    assert issubclass(errors.SentinelError, SlotwardenError)
    for cls in (errors.ElectionError, errors.FailoverError, errors.StateError, errors.SetupError):
        assert issubclass(cls, errors.SentinelError), cls


def test_exceptions_are_declared_only_in_errors_py():
    """No second root: every exception class of the package lives in sentinel/errors.py."""
    elsewhere = []
    for path in sorted(SENTINEL.rglob("*.py")):
        if path.name == "errors.py" and path.parent == SENTINEL:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            bases = [b.id for b in getattr(node, "bases", []) if isinstance(b, ast.Name)]
            if any(b.endswith(("Error", "Exception")) for b in bases):
                elsewhere.append(f"{path.relative_to(SENTINEL)}: {node.name}")
    assert elsewhere == []
