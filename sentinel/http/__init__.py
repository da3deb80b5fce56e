"""The sentinel's HTTP face, the top of its layers below the process entry points.

- `api`: the aiohttp server - routes, auth rule, JSON answers.
- `validate`: the pure parsing of query fields and bodies; bad input is a 400.
- `metrics`: every Prometheus metric of a sentinel, with its help text, and
  the collector that reads the running `Sentinel` at scrape time.
"""
