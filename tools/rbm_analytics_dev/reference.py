"""The daily metrics in plain Python, straight from their definitions.

This is the ground truth the tests and the simulator compare the SQL with, so
it shares no code with the production package it checks: it has its own
8-day rule, its own durations and its own percentile. Written for
obviousness, not speed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def nearest_rank(samples: Sequence[int | float], p: int) -> int | float:
    """The ceil(p * n / 100)-th smallest of the n samples (never interpolated)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]
