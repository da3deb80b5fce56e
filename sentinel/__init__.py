"""slotwarden's control plane: quorum failure detection and failover (issue 3)."""
