"""Builds the optional C speedups; the rest is in pyproject.toml.

Two extensions, sharing the RESP framing in slotwarden/resp/_frame.h:
``slotwarden.resp._speedups`` (the per-request byte work: framing, hashing,
splitting and merging) and ``router.wire._hot`` (the router's hot path: a
single-key or MGET/MSET/DEL-like request from the client's bytes to its
backends' queues and the reply back to the client's socket, without a Python
frame per request).

Without a C compiler the install still succeeds and the router runs its
pure-Python code (slotwarden.resp, router.wire.client and friends), which is
the reference.
``SLOTWARDEN_REQUIRE_SPEEDUPS=1`` in the environment makes a failed compile
fail the build instead (deploy/docker/Dockerfile sets it, so an image never
ships without them by accident).
"""

import os

from setuptools import Extension, setup

REQUIRED = os.environ.get("SLOTWARDEN_REQUIRE_SPEEDUPS", "") not in ("", "0")

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
FRAME = "slotwarden/resp/_frame.h"

setup(
    ext_modules=[
        Extension(
            "slotwarden.resp._speedups",
            ["slotwarden/resp/_speedups.c"],
            depends=[FRAME],
            optional=not REQUIRED,
            extra_compile_args=FLAGS,
        ),
        Extension(
            "router.wire._hot",
            ["router/wire/_hot.c"],
            include_dirs=["slotwarden/resp"],
            depends=[FRAME],
            optional=not REQUIRED,
            extra_compile_args=FLAGS,
        ),
    ]
)
