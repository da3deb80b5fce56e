"""slotwarden: a hash-slot router and sentinel-style failover manager for standalone Redis shards.

The distribution's version lives here; importing the package imports nothing
else. The shared layers are `slotwarden.cluster` (the model both processes
share) and `slotwarden.resp` (the codec); the command line is
`slotwarden.cli`, the local launcher `slotwarden.launcher`.
"""

__version__ = "0.1.0"
