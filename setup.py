"""Builds the optional C speedups (slotwarden/resp/_speedups.c); the rest is in pyproject.toml.

Without a C compiler the install still succeeds and the router runs its
pure-Python code (slotwarden.resp and friends), which is the reference.
``SLOTWARDEN_REQUIRE_SPEEDUPS=1`` in the environment makes a failed compile
fail the build instead (deploy/docker/Dockerfile sets it, so an image never
ships without them by accident).
"""

import os

from setuptools import Extension, setup

REQUIRED = os.environ.get("SLOTWARDEN_REQUIRE_SPEEDUPS", "") not in ("", "0")

setup(
    ext_modules=[
        Extension(
            "slotwarden.resp._speedups",
            ["slotwarden/resp/_speedups.c"],
            optional=not REQUIRED,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
