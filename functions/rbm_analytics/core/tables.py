"""BigQuery table definitions, read from the JSON schema files infra/ uses too.

The analysts' views come the same way: ``views/<name>.sql`` (a generated copy
of ``infra/views/``, which Terraform reads) with ``${project}`` and
``${dataset}`` filled in; so do their table functions: ``routines/<name>.sql``
holds the body and ``routines/routines.json`` the arguments.

``schemas/*.json`` (a generated copy of ``infra/schemas/``) hold each table's
columns in BigQuery's JSON schema format; ``schemas/tables.json`` holds the
partitioning and clustering. Terraform reads the same files, and a test
compares the two, so the code and the deployed tables cannot drift apart.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from rbm_analytics.core import logs
from rbm_analytics.core.errors import ConfigError

MIRROR_TABLES = ("agent_messages", "user_messages", "user_events")
DAILY_TABLES = ("daily_metrics", "daily_postbacks", "response_samples")
LOG_TABLES = ("refresh_runs",)
ALL_TABLES = MIRROR_TABLES + DAILY_TABLES + LOG_TABLES


@dataclass(frozen=True)
class TableDef:
    name: str
    fields: tuple[dict[str, Any], ...]
    partition_field: str | None
    cluster_fields: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.fields)

    def schema(self) -> list[bigquery.SchemaField]:
        return [
            bigquery.SchemaField(
                f["name"], f["type"], mode=f.get("mode", "NULLABLE"),
                description=str(f.get("description", "")),
            )
            for f in self.fields
        ]  # fmt: skip

    def table(self, dataset_ref: str) -> bigquery.Table:
        table = bigquery.Table(f"{dataset_ref}.{self.name}", schema=self.schema())
        if self.partition_field:
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=self.partition_field
            )
        if self.cluster_fields:
            table.clustering_fields = list(self.cluster_fields)
        return table


# BigQuery's naming rules: project ids (optionally with a domain prefix) and
# dataset ids. Anything else in the settings would end up inside backquotes.
_PROJECT = re.compile(r"(?:[a-z][a-z0-9.-]{0,62}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
_DATASET = re.compile(r"[A-Za-z0-9_]{1,1024}")


def dataset_path(project: str, dataset: str) -> str:
    """``project.dataset``; a ConfigError (503, the deployment is wrong) when they are not ids."""
    if not _PROJECT.fullmatch(project):
        raise ConfigError(f"GOOGLE_CLOUD_PROJECT {project[:64]!r} is not a BigQuery project id")
    if not _DATASET.fullmatch(dataset):
        raise ConfigError(f"BQ_DATASET {dataset[:64]!r} is not a BigQuery dataset id")
    return f"{project}.{dataset}"


def _read(name: str) -> Any:
    return json.loads(resources.files("rbm_analytics.core").joinpath("schemas", name).read_text())


@cache
def table_defs() -> dict[str, TableDef]:
    layout = _read("tables.json")
    return {
        name: TableDef(
            name=name,
            fields=tuple(_read(f"{name}.json")),
            partition_field=spec["partition_field"],
            cluster_fields=tuple(spec["cluster_fields"]),
        )
        for name, spec in layout.items()
    }


@cache
def view_names() -> tuple[str, ...]:
    """The analysts' views, named after their files."""
    folder = resources.files("rbm_analytics.core").joinpath("views")
    return tuple(
        sorted(f.name.removesuffix(".sql") for f in folder.iterdir() if f.name.endswith(".sql"))
    )


def view_sql(name: str, project: str, dataset: str) -> str:
    """The view ``name``'s query for ``project.dataset`` (ids validated by the caller)."""
    text = resources.files("rbm_analytics.core").joinpath("views", f"{name}.sql").read_text()
    return string.Template(text).substitute(project=project, dataset=dataset)


def reach_dataset(dataset: str) -> str:
    """The dataset holding the authorized functions over the mirror (infra/ names it alike)."""
    return f"{dataset}_reach"


@dataclass(frozen=True)
class RoutineDef:
    """A table function for analysts: its name, description and typed arguments.

    An ``authorized`` one reads the mirror tables (user keys) yet returns only
    counts: it lives in the reach dataset, which the main dataset authorizes,
    so its callers need no access to the mirror.
    """

    name: str
    description: str
    arguments: tuple[tuple[str, str], ...]  # (name, GoogleSQL type)
    authorized: bool = False

    def home(self, dataset: str) -> str:
        """The dataset the function lives in."""
        return reach_dataset(dataset) if self.authorized else dataset

    def routine(self, project: str, dataset: str) -> bigquery.Routine:
        """The Routines API resource (what Terraform's google_bigquery_routine sends)."""
        return bigquery.Routine(
            f"{project}.{self.home(dataset)}.{self.name}",
            type_="TABLE_VALUED_FUNCTION",
            language="SQL",
            description=self.description,
            body=routine_sql(self.name, project, dataset),
            arguments=[
                bigquery.RoutineArgument(
                    name=arg,
                    data_type=bigquery.StandardSqlDataType(
                        type_kind=bigquery.StandardSqlTypeNames[kind]
                    ),
                )
                for arg, kind in self.arguments
            ],
        )


# routines.update replaces the whole resource: every field this code sets.
ROUTINE_FIELDS = ("type_", "language", "description", "body", "arguments")


def _routine_file(name: str) -> str:
    return resources.files("rbm_analytics.core").joinpath("routines", name).read_text()


@cache
def routine_defs() -> dict[str, RoutineDef]:
    """The analysts' table functions, from ``routines/routines.json``."""
    spec = json.loads(_routine_file("routines.json"))
    return {
        name: RoutineDef(
            name=name,
            description=str(entry["description"]),
            arguments=tuple((str(a["name"]), str(a["type"])) for a in entry["arguments"]),
            authorized=bool(entry.get("authorized", False)),
        )
        for name, entry in spec.items()
    }


def routine_sql(name: str, project: str, dataset: str) -> str:
    """The table function ``name``'s body for ``project.dataset`` (ids validated by the caller)."""
    return string.Template(_routine_file(f"{name}.sql")).substitute(
        project=project, dataset=dataset, reach_dataset=reach_dataset(dataset)
    )


def _ensure_dataset(client: bigquery.Client, path: str, location: str) -> None:
    try:
        client.get_dataset(path)
    except NotFound:
        ds = bigquery.Dataset(path)
        ds.location = location
        client.create_dataset(ds, exists_ok=True)


def _ensure_routine(client: bigquery.Client, wanted: bigquery.Routine) -> None:
    # A table function whose body changed with a newer version is replaced:
    # it stores nothing, and callers expect the columns this code documents.
    try:
        have = client.get_routine(wanted.reference)
    except NotFound:
        client.create_routine(wanted, exists_ok=True)
        return
    if have.body != wanted.body:
        client.update_routine(wanted, list(ROUTINE_FIELDS))


def ensure_tables(
    client: bigquery.Client, project: str, dataset: str, location: str, *, reach: bool = False
) -> None:
    """Create the dataset, every missing table, view and table function; add missing columns.

    Looks before it creates: a deployed function holds dataEditor on its
    dataset only, and creating a dataset that exists is a 403 for it, not the
    409 ``exists_ok`` tolerates. Columns added by a newer version are
    appended as NULLABLE (BigQuery cannot add a REQUIRED column to a table
    with rows); nothing is ever dropped or retyped.

    ``reach``: also create the reach dataset, its authorized functions, and
    their authorization on the main dataset. Terraform does this in the cloud
    (the refresh's account may not create datasets or change access); the
    local stack and the tests ask for it.
    """
    path = f"{project}.{dataset}"
    _ensure_dataset(client, path, location)
    existing = {t.table_id for t in client.list_tables(path)}
    for tdef in table_defs().values():
        if tdef.name not in existing:
            client.create_table(tdef.table(path), exists_ok=True)
        else:
            add_missing_columns(client, f"{path}.{tdef.name}", tdef)
    for name in view_names():
        if name not in existing:
            view = bigquery.Table(f"{path}.{name}")
            view.view_query = view_sql(name, project, dataset)
            client.create_table(view, exists_ok=True)
    # The authorized functions first: the analysts' functions call them, and
    # BigQuery checks a function's body when it is created or replaced.
    authorized = [r.routine(project, dataset) for r in routine_defs().values() if r.authorized]
    missing: list[str] = []
    if reach:
        _ensure_dataset(client, f"{project}.{reach_dataset(dataset)}", location)
        for routine in authorized:
            _ensure_routine(client, routine)
            authorize_routine(client, path, routine)
    else:
        for routine in authorized:
            try:
                client.get_routine(routine.reference)
            except NotFound:
                missing.append(f"`{routine.project}.{routine.dataset_id}.{routine.routine_id}`")
    for rdef in routine_defs().values():
        if rdef.authorized:
            continue
        wanted = rdef.routine(project, dataset)
        needs = [name for name in missing if name in wanted.body]
        if needs:
            # BigQuery would refuse a body calling a function that does not
            # exist. Terraform creates the authorized functions in the cloud
            # (the local stack on the emulator); a later run creates this one.
            logs.warning("table function skipped", routine=rdef.name, needs=needs)
            continue
        _ensure_routine(client, wanted)


def authorize_routine(client: bigquery.Client, shared: str, routine: bigquery.Routine) -> None:
    """Let ``routine`` read dataset ``shared`` on its callers' behalf (an authorized function).

    What Terraform's google_bigquery_dataset_access with a ``routine`` block
    does: one ``routine`` entry in the dataset's access list.
    """
    ds = client.get_dataset(shared)
    entry = bigquery.AccessEntry(
        None, "routine", {"projectId": routine.project, "datasetId": routine.dataset_id,
                          "routineId": routine.routine_id},
    )  # fmt: skip
    if entry not in ds.access_entries:
        ds.access_entries = [*ds.access_entries, entry]
        client.update_dataset(ds, ["access_entries"])


def add_missing_columns(client: bigquery.Client, table_path: str, tdef: TableDef) -> list[str]:
    """Append the columns of ``tdef`` that the table lacks, as NULLABLE; their names."""
    table = client.get_table(table_path)
    have = {field.name for field in table.schema}
    missing = [f for f in tdef.schema() if f.name not in have]
    if missing:
        table.schema = [
            *table.schema,
            *(bigquery.SchemaField(f.name, f.field_type, mode="NULLABLE",
                                   description=f.description) for f in missing),
        ]  # fmt: skip
        client.update_table(table, ["schema"])
    return [f.name for f in missing]
