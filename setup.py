"""Builds the optional C speedups (router/_speedups.c); everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the router
runs its pure-Python code (router.resp and friends), which is the reference.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "router._speedups",
            ["router/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
