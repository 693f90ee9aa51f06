"""`fsd bench ...`: model complexity, the accuracy benchmark with its baselines and ablations,
and speed; their results belong in docs/benchmarks.md."""
