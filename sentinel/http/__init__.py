"""The sentinel's HTTP face: `api` (the aiohttp server) and `metrics` (``GET /metrics``)."""
