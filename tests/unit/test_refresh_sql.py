"""The refresh's SQL files: only table paths are formatted in, values are parameters."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from rbm_analytics.core.errors import ConfigError
from rbm_analytics.core.tables import table_defs
from rbm_analytics.refresh import warehouse

SQL_FILES = sorted(
    p.name
    for package in warehouse.SQL_PACKAGES
    for p in resources.files(package).joinpath("sql").iterdir()
    if p.name.endswith(".sql")
)


def test_every_mirror_table_has_its_merge() -> None:
    assert set(warehouse.MERGES.values()) <= set(SQL_FILES)
    assert set(warehouse.MERGES) == {"agent_messages", "user_messages", "user_events"}


@pytest.mark.parametrize("name", SQL_FILES)
def test_only_identifiers_are_templated(name: str) -> None:
    text = warehouse._sql_text(name)
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders <= {"dataset", "staging"}
    rendered = warehouse.sql(name, "proj.ds", staging="_staging_x")
    assert "${" not in rendered
    # Every table it names is one of ours (or the run's staging table).
    tables = set(re.findall(r"`proj\.ds\.(\w+)`", rendered))
    assert tables <= set(table_defs()) | {"_staging_x"}


def test_merges_write_every_mirror_column() -> None:
    for table, name in warehouse.MERGES.items():
        rendered = warehouse.sql(name, "p.d", staging="s")
        insert = rendered[rendered.index("INSERT") :]
        for column in table_defs()[table].columns:
            assert re.search(rf"\b{column}\b", insert), (table, column)


def test_daily_insert_names_every_daily_metrics_column() -> None:
    rendered = re.sub(r"--[^\n]*", "", warehouse.sql("replace_daily.sql", "p.d"))
    start = rendered.index("INSERT INTO `p.d.daily_metrics` (")
    columns = rendered[start : rendered.index(")", start)]
    listed = re.findall(r"\w+", columns.split("(", 1)[1])
    assert listed == list(table_defs()["daily_metrics"].columns)


def test_the_cutoff_is_the_documented_expression() -> None:
    rendered = warehouse.sql("replace_daily.sql", "p.d")
    cutoffs = re.findall(r"TIMESTAMP_ADD\(TIMESTAMP\((\w+)\), INTERVAL (@\w+) DAY\)", rendered)
    assert cutoffs and {w for _, w in cutoffs} == {"@window_days"}


def test_bad_dataset_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="BQ_DATASET"):
        warehouse.Warehouse(None, "demo-proj", "ds`; DROP TABLE x; --", "US")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        warehouse.Warehouse(None, "proj`.x", "ds", "US")  # type: ignore[arg-type]
