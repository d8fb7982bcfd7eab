"""The `hmtl` command line: one module per command group; argument parsing only."""
