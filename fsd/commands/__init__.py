"""Command groups of the `fsd` CLI, one module per job."""
