"""The dependency floors in pyproject.toml are real: the project works on them.

pyproject says ``redis>=X``, ``aiohttp>=Y``, ...; pip only ever installs the
newest, so nothing else would notice a floor that is too low (``redis>=5.0``
was: `sentinel` uses `redis.maint_notifications` and passes
``maint_notifications_config`` to `redis.asyncio.Redis`, which only redis-py
8.1.0 accepts). This test installs exactly the floor of every runtime
dependency (``pip install --no-deps --target``, from the package index) into
a temp dir and, in a subprocess with that dir first on ``sys.path``:

- checks that each installed version IS the floor (so the test can fail);
- imports every module of ``slotwarden``, ``router`` and ``sentinel``
  (``__main__`` modules excepted: importing one runs the command line);
- opens the sentinel's probe connection (`connect` of the ``sentinel``
  module named ``probe``) to a real redis-server and sends what the prober
  sends, PING and INFO replication.

The floors are read from pyproject.toml, so raising one there is all it takes.
It needs pip and the package index, nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from slotwarden.procs import RedisFarm

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("slotwarden", "router", "sentinel")


def floors() -> dict[str, str]:
    """``{distribution: floor}`` for every runtime dependency of this platform."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    out: dict[str, str] = {}
    for line in deps:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(default_environment()):
            continue
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{line!r}: a dependency states its floor as one `>=`"
        out[req.name] = lower[0]
    return out


def project_modules() -> list[str]:
    mods = []
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[-1] != "__main__":
                mods.append(".".join(parts))
    return mods


CHECK = textwrap.dedent(
    """
    import asyncio, importlib, importlib.metadata, json, sys
    from packaging.version import Version

    floors, modules, port = json.loads(sys.argv[1])
    for dist, floor in floors.items():
        got = importlib.metadata.version(dist)
        assert Version(got) == Version(floor), f"{dist} {got} is not the floor {floor}"
    import redis
    assert redis.__file__.startswith(sys.path[0]), redis.__file__
    assert Version(redis.__version__) == Version(floors["redis"]), redis.__version__

    for name in modules:
        importlib.import_module(name)

    [probe] = [m for m in modules if m.startswith("sentinel.") and m.endswith(".probe")]
    connect = importlib.import_module(probe).connect
    from slotwarden.cluster.topology import Address

    async def probe_once():
        client = connect(Address("127.0.0.1", port), 5.0, "floor-test")
        try:
            assert await client.ping()
            info = await client.info("replication")
            assert info["role"] == "master", info
        finally:
            await client.aclose()

    asyncio.run(probe_once())
    print("floor ok", len(modules), "modules", redis.__version__)
    """
)


def test_every_module_works_on_the_dependency_floors(farm: RedisFarm, tmp_path: Path) -> None:
    want = floors()
    assert "redis" in want
    target = tmp_path / "floors"
    pins = [f"{dist}=={floor}" for dist, floor in want.items()]
    pip_install = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pip = subprocess.run(
        [*pip_install, "--no-deps", "--target", str(target), *pins],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, f"pip install {' '.join(pins)}:\n{pip.stdout}{pip.stderr}"

    server = farm.start()
    modules = project_modules()
    assert len(modules) > 20
    script = f"import sys; sys.path.insert(0, {str(target)!r})\n{CHECK}"
    run = subprocess.run(
        [sys.executable, "-c", script, json.dumps([want, modules, server.port])],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"floor ok {len(modules)} modules {want['redis']}" in run.stdout
