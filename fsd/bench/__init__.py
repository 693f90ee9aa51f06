"""Benchmarks: model size and FLOPs, accuracy side by side with baselines, speed."""
