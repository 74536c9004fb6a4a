"""Benchmarks: measurements against a baseline taken in the same run.

Run with ``make bench`` (or ``python -m bench NAME …``). Each measurement is
one JSON line: ``{"name", "value", "unit", "baseline", "ratio", "target",
"meets"}``. Shared, noisy machines drift in absolute speed, so every number
that carries a target is a ratio to something measured beside it.
"""
