"""Exponential backoff shared by everything the service retries (SR deliveries, study analyses)."""

from __future__ import annotations


def backoff_s(attempts: int, initial_s: float, max_s: float) -> float:
    """Delay before attempt ``attempts + 1`` after ``attempts`` failures: ``initial_s`` doubling up to ``max_s``."""
    return min(initial_s * 2 ** max(attempts - 1, 0), max(max_s, initial_s))
