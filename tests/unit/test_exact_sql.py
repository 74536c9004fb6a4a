"""No reported value may come from an approximate aggregate.

APPROX_QUANTILES is exact on the local emulator (DuckDB) but approximate on
BigQuery, so the emulator tests could never catch it: this check reads every
SQL file, every Python module that builds SQL and the documentation's queries.
"""

from __future__ import annotations

import re
from datetime import date
from itertools import combinations
from pathlib import Path

import pytest
from rbm_analytics.core.config import Settings
from rbm_analytics.export.query import METRICS, SCALES, build_export_query

from tests.support import REPO_ROOT

APPROXIMATE = re.compile(r"\bAPPROX_[A-Z_]+\s*\(", re.IGNORECASE)
SOURCES = [
    p
    for folder in ("functions", "tools", "scripts", "infra", "docs")
    for p in sorted((REPO_ROOT / folder).rglob("*"))
    if p.suffix in {".sql", ".py", ".md", ".tf", ".json", ".js", ".html"}
] + [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(Path(p).relative_to(REPO_ROOT)))
def test_no_source_uses_an_approximate_aggregate(path: Path) -> None:
    if not path.exists():
        pytest.skip("not written yet")
    found = APPROXIMATE.findall(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name} uses {found}: percentiles must be exact nearest rank"


@pytest.mark.parametrize("scale", SCALES)
def test_no_export_query_uses_an_approximate_aggregate(scale: str) -> None:
    settings = Settings(project="demo-rbm-test", bq_dataset="rbm_analytics")
    names = list(METRICS)
    for chosen in [names, *combinations(names, 2)]:
        query = build_export_query(settings, start=date(2026, 1, 1), end=date(2026, 3, 31),
                                   scale=scale, metrics=list(chosen), agent=None,
                                   total=True)  # fmt: skip
        assert not APPROXIMATE.search(query.sql), chosen
