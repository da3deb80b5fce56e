"""Builds the optional C speedups (slotwarden/resp/_speedups.c); the rest is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the router
runs its pure-Python code (slotwarden.resp and friends), which is the reference.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "slotwarden.resp._speedups",
            ["slotwarden/resp/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
