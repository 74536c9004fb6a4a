"""The metric catalog is the one list of metrics: everything that lists them agrees with it.

``make generate`` writes the schema, the daily SQL's column lists, the page's
checkboxes and the README table from the catalog, and ``make lint`` fails when
one is stale; these tests read each of them back, so a hand edit that slipped
past both (or a generator that lost a metric) fails here.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from importlib import resources

from rbm_analytics.core.tables import table_defs
from rbm_analytics.export import params, query
from rbm_analytics.metrics import catalog
from rbm_analytics.refresh import warehouse

from tests.daily_rows import daily, insert_daily
from tests.support import REPO_ROOT

STORED = [m.name for m in catalog.COLUMNS]


def test_entries_are_complete_and_unique() -> None:
    names = [m.name for m in catalog.CATALOG]
    assert len(names) == len(set(names))
    for m in catalog.CATALOG:
        assert m.label and m.definition and "\n" not in m.definition, m.name
        assert m.type in {"INT64", "FLOAT64", "TIMESTAMP"}, m.name
        if m.combine is catalog.Combine.WEIGHTED_AVERAGE:
            assert catalog.METRICS[str(m.weight)].combine is catalog.Combine.SUM
            assert catalog.METRICS[str(m.sum_ms)].type == "INT64"
        if m.combine is catalog.Combine.PERIOD_PERCENTILE:
            assert (
                m.sample in {"read_to_reply", "agent_response"} and 0 < int(m.percentile or 0) < 100
            )
        if m.combine is catalog.Combine.RATE:
            assert not m.stored and all(catalog.METRICS[c].stored for c in m.ratio or ())
    assert set(catalog.DEFAULT_METRICS) <= set(names)


def test_schema_files_are_the_catalogs_columns() -> None:
    for path in (
        REPO_ROOT / "infra" / "schemas" / "daily_metrics.json",
        resources.files("rbm_analytics.core").joinpath("schemas", "daily_metrics.json"),
    ):
        fields = json.loads(path.read_text())
        assert [f["name"] for f in fields] == ["date", "agent_id", *STORED]
        by_name = {f["name"]: f for f in fields}
        for m in catalog.COLUMNS:
            assert by_name[m.name]["type"] == m.type
            assert by_name[m.name]["mode"] == ("REQUIRED" if m.required else "NULLABLE")
    assert table_defs()["daily_metrics"].columns == ("date", "agent_id", *STORED)


def test_daily_sql_inserts_and_selects_every_column_in_catalog_order() -> None:
    text = re.sub(r"--[^\n]*", "", warehouse.sql("replace_daily.sql", "p.d"))
    start = text.index("INSERT INTO `p.d.daily_metrics` (")
    listed = re.findall(r"\w+", text[text.index("(", start) + 1 : text.index(")", start)])
    assert listed == ["date", "agent_id", *STORED]
    select = text[text.index("\nSELECT", start) : text.index("\nFROM sent_on_day", start)]
    aliases = [re.split(r"\s+AS\s+", line.strip().rstrip(","))[-1]
               for line in select.strip().splitlines()[1:] if line.strip()]  # fmt: skip
    assert aliases == ["date", "agent_id", *STORED]


def test_export_offers_every_metric_and_combines_each_as_the_catalog_says() -> None:
    assert query.METRICS is catalog.METRICS
    assert params.DEFAULT_METRICS == catalog.DEFAULT_METRICS
    assert list(query.METRICS) == [m.name for m in catalog.CATALOG]


class _Boxes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.boxes: list[tuple[str, str, bool]] = []
        self._open: tuple[str, str, bool] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name") == "metrics":
            self._open = (str(a["value"]), str(a["data-unit"]), "checked" in a)
            self._text = ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._open:
            name, unit, checked = self._open
            self.boxes.append((name, unit, checked, self._text.strip()))  # type: ignore[arg-type]
            self._open = None


def test_the_page_offers_the_catalogs_metrics_with_their_labels_and_units() -> None:
    parser = _Boxes()
    parser.feed(resources.files("rbm_analytics.export").joinpath("ui", "index.html").read_text())
    assert parser.boxes == [
        (m.name, m.unit.value, m.name in catalog.DEFAULT_METRICS, m.label)
        for m in catalog.CATALOG
        if m.unit is not None
    ]


def test_the_readme_table_lists_every_metric_with_its_definition() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \| ([^|]+) \|$", text, re.M)
    assert [(n, c.strip(), d.strip()) for n, c, d in rows if n in catalog.METRICS] == [
        (m.name, m.combine.value, m.definition) for m in catalog.CATALOG
    ]


def test_test_rows_have_every_column() -> None:
    row = daily("2026-01-01", "acme", reads_with_reply=2, read_to_reply_avg_s=1.5)
    assert list(row) == ["date", "agent_id", *STORED]
    assert row["read_to_reply_sum_ms"] == 3000
    sql = insert_daily("p.d.daily_metrics", "UNNEST([1]) AS a", date="DATE '2026-01-01'",
                       agent_id="'acme'")  # fmt: skip
    assert re.findall(r"\w+", sql[sql.index("(") + 1 : sql.index(")")]) == [
        "date",
        "agent_id",
        *STORED,
    ]
