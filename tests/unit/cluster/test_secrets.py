"""slotwarden.cluster.secrets: the one secret reader and the shared secret built on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slotwarden.cluster.config import ClusterConfig, SecretRef, parse
from slotwarden.cluster.errors import SecretError
from slotwarden.cluster.secrets import authorized, bearer, read_secret, read_secret_ref

BUNDLED = Path(__file__).resolve().parents[3] / "cluster.yaml"


def config(**sentinel: object) -> ClusterConfig:
    data = yaml.safe_load(BUNDLED.read_text())
    data["sentinel"].pop("secret_file", None)
    data["sentinel"].update(sentinel)
    return parse(data)


def test_reader_drops_a_files_line_break_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(" pass word \n")
    assert read_secret_ref(SecretRef(file=str(path)), "backend", {}) == b" pass word "
    assert read_secret_ref(SecretRef(env="PW"), "backend", {"PW": " x "}) == b" x "


def test_reader_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="PW is not set"):
        read_secret_ref(SecretRef(env="PW"), "backend", {})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecretError, match="is empty"):
        read_secret_ref(SecretRef(file=str(empty)), "backend", {})


def test_shared_secret_from_env_or_file(tmp_path: Path) -> None:
    cfg = config(secret_env="SW_TEST_SECRET")
    assert read_secret(cfg, {}) is None  # unset: no secret, topology changes refused
    assert read_secret(cfg, {"SW_TEST_SECRET": "  "}) is None  # blank counts as unset
    assert read_secret(cfg, {"SW_TEST_SECRET": "s3cret"}) == "s3cret"
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    assert read_secret(config(secret_file=str(path)), {}) == "from-file"
    with pytest.raises(SecretError, match=r"cannot read sentinel\.secret_file"):
        read_secret(config(secret_file=str(tmp_path / "missing")), {})


@pytest.mark.parametrize("value", [" s3cret", "s3cret ", "s3\tcret", "sécret"])
def test_shared_secret_must_survive_an_http_header(value: str) -> None:
    """HTTP servers drop a header's surrounding blanks: such a secret could never match,
    so it is refused at start-up rather than silently trimmed."""
    with pytest.raises(SecretError, match="printable ASCII"):
        read_secret(config(secret_env="SW_TEST_SECRET"), {"SW_TEST_SECRET": value})


def test_bearer_header_round_trip() -> None:
    header = bearer("s3cret")["Authorization"]
    assert authorized(header, "s3cret")
    assert not authorized(header, "other")
    assert not authorized(header, None)  # no secret configured: nothing is authorised
    assert not authorized(None, "s3cret")
