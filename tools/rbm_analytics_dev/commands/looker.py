"""``rbm-analytics looker-link``: open the analysts' views in Looker Studio.

Prints a Looker Studio Linking API URL: opened in a browser, it creates a
report (a copy of ``--template-report ID``, or a blank report without one)
whose data sources are this deployment's views, through the BigQuery
connector. The i-th view in name order is the data source alias ``ds<i>``
(``ds0`` = agent_daily, ``ds1`` = all_agents_daily): a template's data
sources must carry those aliases (Resource > Manage added data sources).
Terraform's ``looker_studio_url`` output is the same URL.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any
from urllib.parse import quote, urlencode

from rbm_analytics.core.errors import ConfigError
from rbm_analytics.core.tables import dataset_path, view_names

from rbm_analytics_dev.cli import EXIT_USAGE

CREATE_URL = "https://lookerstudio.google.com/reporting/create"
REPORT_NAME = "RBM Analytics"
# Looker Studio report ids are UUIDs; anything else would end up in the URL.
_REPORT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

EPILOG = """examples:
  rbm-analytics looker-link --project my-project --dataset rbm_analytics
  rbm-analytics looker-link --project my-project --dataset rbm_analytics \\
      --template-report 0b6c2f0e-1c0d-4f55-9a43-2d5e0c5f8d11
  xdg-open "$(rbm-analytics looker-link --project my-project --dataset rbm_analytics)"
"""


def data_source_aliases() -> dict[str, str]:
    """{alias: view}: ``ds<i>`` for the i-th view in name order."""
    return {f"ds{i}": view for i, view in enumerate(sorted(view_names()))}


def looker_url(project: str, dataset: str, template_report_id: str = "") -> str:
    """The Linking API URL whose data sources are the views of ``project.dataset``.

    A ConfigError when ``project`` or ``dataset`` are not BigQuery ids; a
    ValueError when the template id is not a report id.
    """
    dataset_path(project, dataset)
    if template_report_id and not _REPORT_ID.fullmatch(template_report_id):
        raise ValueError("--template-report is not a Looker Studio report id")
    params: list[tuple[str, str]] = []
    if template_report_id:
        params.append(("c.reportId", template_report_id))
    params.append(("r.reportName", REPORT_NAME))
    for alias, view in data_source_aliases().items():
        # connector present: the template's data source is replaced whole, so
        # every parameter the BigQuery connector needs for a table is given.
        params += [
            (f"ds.{alias}.connector", "bigQuery"),
            (f"ds.{alias}.type", "TABLE"),
            (f"ds.{alias}.projectId", project),
            (f"ds.{alias}.datasetId", dataset),
            (f"ds.{alias}.tableId", view),
        ]
    return f"{CREATE_URL}?{urlencode(params, quote_via=quote, safe=':')}"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "looker-link",
        aliases=["looker"],
        help="print a Looker Studio link whose data sources are the views",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--project", required=True, metavar="P", help="Google Cloud project id")
    parser.add_argument(
        "--dataset", required=True, metavar="D", help="BigQuery dataset (BQ_DATASET)"
    )
    parser.add_argument(
        "--template-report",
        default="",
        metavar="ID",
        help="report to copy (default: a blank report on the views)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        print(looker_url(args.project, args.dataset, args.template_report))
    except ConfigError as exc:
        option = "--project" if exc.message.startswith("GOOGLE_CLOUD_PROJECT") else "--dataset"
        print(f"rbm-analytics looker-link: {option} is not a BigQuery id", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"rbm-analytics looker-link: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0
