"""The `slotwarden` command line: router, check, up (and later sentinel, status)."""
