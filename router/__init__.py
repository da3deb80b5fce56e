"""slotwarden's data plane: a RESP proxy that routes every command by hash slot."""
