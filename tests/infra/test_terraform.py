"""infra/ parsed with python-hcl2: the deployment is wired to what the code reads.

No terraform binary or provider is available to plan here, so these tests
hold the configuration to the code: entry points, runtime, settings and
secrets, table schemas, the schedule, IAM and Firestore indexes.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import shutil
import subprocess
from datetime import date
from typing import Any

import pytest
from rbm_analytics.core import collections, config
from rbm_analytics.core import tables as schemas_bq
from rbm_analytics.refresh import plan as refresh_plan
from rbm_analytics.refresh import queries as firestore_queries
from rbm_analytics.refresh import watermark
from rbm_analytics.refresh.queries import QuerySpec

from tests.infra import hcl
from tests.support import REPO_ROOT

FUNCTIONS = ("ingest", "refresh", "export")
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}


@pytest.fixture(scope="module")
def tf() -> hcl.Config:
    return hcl.load()


def _literal_set(expr: str) -> list[str]:
    """The members of a literal ``toset([...])`` for_each."""
    m = re.fullmatch(r"\$\{toset\((\[.*\])\)\}", expr, re.S)
    assert m, f"not a literal toset: {expr}"
    return list(json.loads(m.group(1)))


def _expand(body: dict[str, Any], tf: hcl.Config) -> dict[str, dict[str, Any]]:
    """One copy of a resource per for_each key, with each.key substituted.

    Literal sets and locals are expanded; a for_each over a variable stays
    one symbolic copy keyed by the expression.
    """
    for_each = body.get("for_each")
    if for_each is None:
        return {"": body}
    if for_each.startswith("${toset(["):
        # For a set, each.value is each.key.
        text = json.dumps(body).replace("each.value", "each.key")
        body = json.loads(text)
        keys = _literal_set(for_each)
    elif m := re.fullmatch(r"\$\{local\.(\w+)\}", for_each):
        keys = list(tf.locals[m.group(1)])
    else:
        return {for_each: body}
    text = json.dumps(body)
    return {k: _fold(json.loads(text.replace("each.key", f'\\"{k}\\"'))) for k in keys}


def _fold(value: Any) -> Any:
    """``${"literal"}`` (left by substituting each.key) back to ``literal``."""
    if isinstance(value, dict):
        return {k: _fold(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fold(v) for v in value]
    if isinstance(value, str) and (m := re.fullmatch(r'\$\{"([^"$]*)"\}', value)):
        return m.group(1)
    return value


# --- parsing and variables ----------------------------------------------------


def test_every_tf_file_parses_and_the_layout_is_split_by_concern(tf: hcl.Config) -> None:
    expected = {
        "versions.tf", "variables.tf", "apis.tf", "service_accounts.tf", "iam.tf",
        "secrets.tf", "firestore.tf", "bigquery.tf", "functions.tf", "scheduler.tf",
        "monitoring.tf", "outputs.tf",
    }  # fmt: skip
    assert expected <= set(tf.files)
    assert len(tf.resources) > 20


def test_providers_are_pinned_to_the_current_google_provider(tf: hcl.Config) -> None:
    terraform = tf.files["versions.tf"]["terraform"][0]
    assert terraform["required_version"] == ">= 1.5"
    google = terraform["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert google["version"] == ">= 6.0, < 8.0"


def test_every_variable_has_a_type_and_description(tf: hcl.Config) -> None:
    for name, var in tf.variables.items():
        assert var.get("description"), f"variable {name} has no description"
        assert var.get("type"), f"variable {name} has no type"
    # Only the project is required; everything else has a working default.
    required = {name for name, var in tf.variables.items() if "default" not in var}
    assert required == {"project_id"}


def test_tfvars_example_sets_only_declared_variables(tf: hcl.Config) -> None:
    example = hcl.path("terraform.tfvars.example").read_text()
    assigned = set(re.findall(r"^#?\s*(\w+)\s*=", example, re.M))
    assert "project_id" in assigned
    assert assigned <= set(tf.variables), assigned - set(tf.variables)


# --- functions ----------------------------------------------------------------


def _main_entry_points() -> set[str]:
    tree = ast.parse((REPO_ROOT / "functions" / "main.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_three_functions_with_the_fixed_entry_points_and_runtime(tf: hcl.Config) -> None:
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    assert fn["for_each"] == "${local.functions}"
    assert set(tf.locals["functions"]) == set(FUNCTIONS)
    build = fn["build_config"][0]
    assert build["entry_point"] == "${each.value.entry_point}"
    for name in FUNCTIONS:
        assert tf.locals["functions"][name]["entry_point"] == name
    assert build["runtime"] == "${var.runtime}"
    assert tf.default("runtime") in {"python312", "python313"}
    assert build["source"][0]["storage_source"][0]["object"] == (
        "${google_storage_bucket_object.source.name}"
    )


def test_entry_points_exist_in_functions_main(tf: hcl.Config) -> None:
    defined = _main_entry_points()
    assert "ingest" in defined
    missing = set(FUNCTIONS) - defined
    if missing:
        # refresh and export land in functions/main.py separately.
        assert missing <= {"refresh", "export"}
        pytest.skip(f"not yet in functions/main.py: {sorted(missing)}")


def test_source_zip_is_the_functions_folder(tf: hcl.Config) -> None:
    archive = tf.data[("archive_file", "functions")]
    assert archive["source_dir"] == "${local.functions_dir}"
    assert tf.locals["functions_dir"] == "${path.module}/../functions"
    functions_dir = (hcl.INFRA / ".." / "functions").resolve()
    assert (functions_dir / "main.py").is_file()
    assert (functions_dir / "requirements.txt").is_file()
    # The object is named by content, so a code change makes new revisions.
    obj = tf.resource("google_storage_bucket_object", "source")
    assert "${data.archive_file.functions.output_md5}" in obj["name"]


def test_sizing_caps_ingest_and_serialises_refresh(tf: hcl.Config) -> None:
    sizing = tf.locals["functions"]
    assert sizing["ingest"]["max"] == "${var.ingest_max_instances}"
    assert sizing["ingest"]["concurrency"] == "${var.ingest_concurrency}"
    assert tf.default("ingest_concurrency") == 80
    assert 1 <= tf.default("ingest_max_instances") <= 100
    assert sizing["refresh"]["concurrency"] == 1
    assert sizing["refresh"]["max"] == 1
    assert sizing["refresh"]["timeout"] == "${var.refresh_timeout_seconds}"
    assert 1800 <= tf.default("refresh_timeout_seconds") <= 3600
    svc = tf.resource("google_cloudfunctions2_function", "fn")["service_config"][0]
    assert svc["max_instance_count"] == "${each.value.max}"
    assert svc["max_instance_request_concurrency"] == "${each.value.concurrency}"
    assert svc["timeout_seconds"] == "${each.value.timeout}"
    assert svc["service_account_email"] == "${google_service_account.sa[each.key].email}"


def test_env_vars_are_exactly_the_settings_the_code_reads(tf: hcl.Config) -> None:
    svc = tf.resource("google_cloudfunctions2_function", "fn")["service_config"][0]
    # The settings, plus functions-framework's own THREADS (gunicorn threads)
    # set to the instance's request concurrency.
    assert svc["environment_variables"] == (
        "${merge(local.env, {THREADS = tostring(each.value.concurrency)})}"
    )
    env = tf.locals["env"]
    plain = set(config.ENV_VARS) - set(config.SECRET_ENV_VARS)
    assert set(env) == plain
    assert env["BQ_DATASET"] == "${google_bigquery_dataset.analytics.dataset_id}"
    dataset = tf.resource("google_bigquery_dataset", "analytics")
    assert dataset["dataset_id"] == "${var.dataset_id}"
    assert env["GOOGLE_CLOUD_PROJECT"] == "${var.project_id}"
    assert env["FIRESTORE_DATABASE"] == "${var.firestore_database}"
    assert tf.resource("google_firestore_database", "db")["name"] == "${var.firestore_database}"


def test_variable_defaults_equal_the_code_defaults(tf: hcl.Config) -> None:
    """An unset variable deploys what Settings would assume anyway."""
    env = tf.locals["env"]
    defaults = {f.name: f.default for f in dataclasses.fields(config.Settings)}
    expected = {
        "FIRESTORE_DATABASE": defaults["firestore_database"],
        "BQ_DATASET": defaults["bq_dataset"],
        "BQ_LOCATION": defaults["bq_location"],
        "BACKFILL_DAYS": defaults["backfill_days"],
        "RETENTION_DAYS": defaults["retention_days"],
        "MAX_BODY_BYTES": defaults["max_body_bytes"],
        "FIRESTORE_DEADLINE_SECONDS": defaults["firestore_deadline_s"],
        "REFRESH_OVERLAP_SECONDS": defaults["refresh_overlap_s"],
        "FORWARD_URL": defaults["forward_url"],
        "FORWARD_TIMEOUT_SECONDS": defaults["forward_timeout_s"],
        "MIRROR_RETENTION_DAYS": defaults["mirror_retention_days"],
        "REFRESH_CHUNK_DOCUMENTS": defaults["refresh_chunk_documents"],
        "REFRESH_TIME_BUDGET_SECONDS": defaults["refresh_time_budget_s"],
        "SHARD_COUNT": defaults["shard_count"],
    }
    for name, code_default in expected.items():
        expr = env[name]
        if name == "BQ_DATASET":
            expr = tf.resource("google_bigquery_dataset", "analytics")["dataset_id"]
        (variable,) = hcl.refs(expr)
        assert tf.default(variable) == code_default, name


def test_secrets_are_mounted_from_secret_manager_per_function(tf: hcl.Config) -> None:
    assert set(_literal_set(tf.locals["secrets"])) == set(config.SECRET_ENV_VARS)
    per_function = tf.locals["function_secrets"]
    assert set(per_function) == set(FUNCTIONS)
    # Only ingest authenticates callers and hashes phone numbers.
    assert set(per_function["ingest"]) == set(config.SECRET_ENV_VARS)
    assert per_function["refresh"] == []
    assert per_function["export"] == []
    svc = tf.resource("google_cloudfunctions2_function", "fn")["service_config"][0]
    (dyn,) = svc["dynamic"]
    block = dyn["secret_environment_variables"]
    assert block["for_each"] == "${local.function_secrets[each.key]}"
    content = block["content"][0]
    assert content["key"] == "${secret_environment_variables.value}"
    assert content["secret"] == (
        "${google_secret_manager_secret.secret[secret_environment_variables.value].secret_id}"
    )
    # A plain env var must not shadow a secret.
    assert not set(tf.locals["env"]) & set(config.SECRET_ENV_VARS)


def test_secret_values_never_pass_through_terraform(tf: hcl.Config) -> None:
    types = {rtype for rtype, _ in tf.resources}
    assert "google_secret_manager_secret_version" not in types
    text = hcl.source_text()
    assert "secret_data" not in text
    for name in config.SECRET_ENV_VARS:
        assert name not in json.dumps(tf.variables), f"{name} is a Terraform variable"


# --- BigQuery -----------------------------------------------------------------


def test_tables_are_built_from_the_shared_schema_files(tf: hcl.Config) -> None:
    assert tf.locals["tables"] == '${jsondecode(file("${path.module}/schemas/tables.json"))}'
    table = tf.resource("google_bigquery_table", "table")
    assert table["for_each"] == "${local.tables}"
    assert table["schema"] == '${file("${path.module}/schemas/${each.key}.json")}'
    assert table["clustering"] == (
        "${length(each.value.cluster_fields) > 0 ? each.value.cluster_fields : null}"
    )
    assert table["dataset_id"] == "${google_bigquery_dataset.analytics.dataset_id}"
    (dyn,) = table["dynamic"]
    part = dyn["time_partitioning"]
    assert part["for_each"] == (
        "${each.value.partition_field == null ? [] : [each.value.partition_field]}"
    )
    content = part["content"][0]
    assert content["type"] == "DAY"
    assert content["field"] == "${time_partitioning.value}"
    # Partition expiry applies to the mirror tables only.
    assert 'each.value.kind == "mirror"' in content["expiration_ms"]
    assert "var.mirror_retention_days" in content["expiration_ms"]


def test_schema_files_equal_the_code_table_definitions() -> None:
    layout = json.loads(hcl.path("schemas/tables.json").read_text())
    defs = schemas_bq.table_defs()
    assert set(layout) == set(defs) == set(schemas_bq.ALL_TABLES)
    for name, spec in layout.items():
        schema_file = hcl.path(f"schemas/{name}.json")
        assert schema_file.is_file(), schema_file
        assert tuple(json.loads(schema_file.read_text())) == defs[name].fields, name
        assert spec["partition_field"] == defs[name].partition_field, name
        assert tuple(spec["cluster_fields"]) == defs[name].cluster_fields, name
        if spec["partition_field"]:
            columns = {f["name"]: f["type"] for f in defs[name].fields}
            assert columns[spec["partition_field"]] in {"DATE", "TIMESTAMP"}, name
    mirrors = {name for name, spec in layout.items() if spec["kind"] == "mirror"}
    assert mirrors == set(schemas_bq.MIRROR_TABLES)


def test_spec_tables_have_the_spec_partitioning_and_clustering() -> None:
    layout = json.loads(hcl.path("schemas/tables.json").read_text())
    spec = {
        "agent_messages": "sent_date",
        "user_messages": "event_date",
        "user_events": "event_date",
        "daily_metrics": "date",
        "daily_postbacks": "date",
    }
    for name, partition in spec.items():
        assert layout[name]["partition_field"] == partition
        assert layout[name]["cluster_fields"][0] == "agent_id"


# --- schedule -----------------------------------------------------------------


def test_scheduler_posts_to_refresh_with_oidc_each_morning_in_utc(tf: hcl.Config) -> None:
    job = tf.resource("google_cloud_scheduler_job", "refresh")
    assert job["schedule"] == "${var.refresh_schedule}"
    assert job["time_zone"] == "${var.refresh_time_zone}"
    assert tf.default("refresh_schedule") == "0 6 * * *"
    assert tf.default("refresh_time_zone") == "Etc/UTC"
    target = job["http_target"][0]
    assert target["http_method"] == "POST"
    assert target["uri"] == "${local.refresh_url}"
    assert tf.locals["refresh_url"] == (
        '${google_cloudfunctions2_function.fn["refresh"].service_config[0].uri}'
    )
    oidc = target["oidc_token"][0]
    assert oidc["service_account_email"] == '${google_service_account.sa["scheduler"].email}'
    assert oidc["audience"] == "${local.refresh_url}"
    assert "oauth_token" not in target


def test_scheduler_body_is_a_request_refresh_accepts_as_todays_run(tf: hcl.Config) -> None:
    target = tf.resource("google_cloud_scheduler_job", "refresh")["http_target"][0]
    m = re.fullmatch(r'\$\{base64encode\("(.*)"\)\}', target["body"])
    assert m, target["body"]
    body = m.group(1).encode()
    assert target["headers"] == {"Content-Type": "application/json"}
    today = date(2026, 3, 10)
    plan = refresh_plan.plan_from_body(body, today=today, window_days=8)
    assert plan == refresh_plan.plan(today=today, window_days=8)
    assert (plan.start, plan.end) == (date(2026, 3, 2), date(2026, 3, 9))


def test_attempt_deadline_fits_the_function_timeout_and_the_scheduler_ceiling(
    tf: hcl.Config,
) -> None:
    job = tf.resource("google_cloud_scheduler_job", "refresh")
    assert job["attempt_deadline"] == "${local.refresh_attempt_deadline}"
    assert tf.locals["refresh_attempt_deadline"] == (
        "${min(var.refresh_timeout_seconds, local.scheduler_max_deadline_seconds)}s"
    )
    # Cloud Scheduler allows 15 s to 30 min for HTTP targets.
    assert tf.locals["scheduler_max_deadline_seconds"] == 1800
    retry = job["retry_config"][0]
    assert retry["retry_count"] >= 1
    backoff = int(retry["min_backoff_duration"].removesuffix("s"))
    assert backoff >= 60
    assert int(retry["max_backoff_duration"].removesuffix("s")) >= backoff


# --- IAM ----------------------------------------------------------------------


def _bindings(tf: hcl.Config) -> set[tuple[str, str, str, str]]:
    """(resource type, target, role, member) of every IAM grant."""
    found = set()
    for (rtype, _name), body in tf.resources.items():
        if not rtype.endswith(("_iam_member", "_iam_binding", "_iam_policy")):
            continue
        assert rtype.endswith("_iam_member"), f"{rtype}: authoritative IAM resources are not used"
        for copy in _expand(body, tf).values():
            target = (
                copy.get("service")
                or copy.get("dataset_id")
                or copy.get("secret_id")
                or copy.get("bucket")
                or copy.get("project")
            )
            found.add((rtype, target, copy["role"], copy["member"]))
    return found


def _sa(name: str) -> str:
    return f'${{google_service_account.sa["{name}"].member}}'


def _fn(name: str) -> str:
    return f'${{google_cloudfunctions2_function.fn["{name}"].name}}'


def test_iam_grants_are_exactly_the_least_privilege_set(tf: hcl.Config) -> None:
    project = "${var.project_id}"
    dataset = "${google_bigquery_dataset.analytics.dataset_id}"
    secret_grants = {
        (
            "google_secret_manager_secret_iam_member",
            "${google_secret_manager_secret.secret[each.value.secret].secret_id}",
            "roles/secretmanager.secretAccessor",
            "${google_service_account.sa[each.value.function].member}",
        )
    }
    run = "google_cloud_run_service_iam_member"
    bq = "google_bigquery_dataset_iam_member"
    expected = {
        ("google_project_iam_member", project, "roles/datastore.user", _sa("ingest")),
        ("google_project_iam_member", project, "roles/datastore.user", _sa("refresh")),
        (bq, dataset, "roles/bigquery.dataEditor", _sa("refresh")),
        (bq, dataset, "roles/bigquery.dataViewer", _sa("export")),
        ("google_project_iam_member", project, "roles/bigquery.jobUser", _sa("refresh")),
        ("google_project_iam_member", project, "roles/bigquery.jobUser", _sa("export")),
        (run, _fn("ingest"), "roles/run.invoker", "allUsers"),
        (run, _fn("refresh"), "roles/run.invoker", _sa("scheduler")),
        (run, _fn("export"), "roles/run.invoker", "${each.value}"),
        ("google_project_iam_member", project, "roles/storage.objectViewer", _sa("builder")),
        ("google_project_iam_member", project, "roles/logging.logWriter", _sa("builder")),
        ("google_project_iam_member", project, "roles/artifactregistry.writer", _sa("builder")),
    } | secret_grants  # fmt: skip
    assert _bindings(tf) == expected


def test_firestore_grants_are_conditioned_on_the_database(tf: hcl.Config) -> None:
    grant = tf.resource("google_project_iam_member", "firestore_user")
    expression = grant["condition"][0]["expression"]
    assert expression == (
        'resource.name == "projects/${var.project_id}/databases/${var.firestore_database}"'
    )


def test_secret_access_follows_what_each_function_mounts(tf: hcl.Config) -> None:
    grants = tf.resource("google_secret_manager_secret_iam_member", "accessor")
    assert grants["for_each"] == "${local.secret_grants}"
    assert tf.locals["secret_grants"] == (
        "${merge([for fn, names in local.function_secrets : "
        '{for name in names : "${fn}/${name}" => {function = fn, secret = name}}] ...)}'
    )


def test_no_primitive_role_and_public_access_only_on_ingest(tf: hcl.Config) -> None:
    text = hcl.source_text()
    for role in PRIMITIVE_ROLES:
        assert f'"{role}"' not in text
    public = [
        (target, role) for _t, target, role, member in _bindings(tf) if member in PUBLIC_MEMBERS
    ]
    assert public == [(_fn("ingest"), "roles/run.invoker")]
    assert text.count("allUsers") == 1 + text.count("allUsers and allAuthenticatedUsers")


@pytest.mark.parametrize(
    ("member", "ok"),
    [
        ("user:ana@example.com", True),
        ("group:analysts@example.com", True),
        ("serviceAccount:bi@p.iam.gserviceaccount.com", True),
        ("allUsers", False),
        ("allAuthenticatedUsers", False),
    ],
)
def test_export_invokers_reject_public_members(tf: hcl.Config, member: str, ok: bool) -> None:
    condition = tf.variables["export_invokers"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(.+?)", m\)', condition)
    assert pattern, condition
    assert bool(re.search(pattern.group(1), member)) is ok


def test_one_service_account_per_function_plus_scheduler_and_builder(tf: hcl.Config) -> None:
    sa = tf.resource("google_service_account", "sa")
    assert sa["for_each"] == "${local.accounts}"
    assert set(tf.locals["accounts"]) == set(FUNCTIONS) | {"scheduler", "builder"}
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    assert fn["build_config"][0]["service_account"] == '${google_service_account.sa["builder"].id}'


def test_names_stay_within_google_limits_for_the_longest_prefix(tf: hcl.Config) -> None:
    """name_prefix's validation admits 20 characters: every derived name must still fit."""
    condition = tf.variables["name_prefix"]["validation"][0]["condition"]
    longest_prefix = "p" * 20
    assert re.search(re.search(r'regex\("(.+?)", var', condition).group(1), longest_prefix)
    assert not re.search(re.search(r'regex\("(.+?)", var', condition).group(1), "p" * 21)
    longest_project = "p" * 30
    for account in tf.locals["accounts"]:
        # Service account ids: 6 to 30 characters.
        assert 6 <= len(f"{longest_prefix}-{account}") <= 30, account
    for fn in FUNCTIONS:
        assert len(f"{longest_prefix}-{fn}") <= 49  # Cloud Run service names: 49 at most
    bucket = tf.resource("google_storage_bucket", "source")["name"]
    assert bucket == "${var.project_id}-${var.name_prefix}-source"
    assert len(f"{longest_project}-{longest_prefix}-source") <= 63


# --- Firestore ----------------------------------------------------------------


def test_firestore_native_database_with_ttl_on_expire_at(tf: hcl.Config) -> None:
    db = tf.resource("google_firestore_database", "db")
    assert db["type"] == "FIRESTORE_NATIVE"
    ttl = tf.resource("google_firestore_field", "ttl")
    assert ttl["field"] == "expire_at"
    assert ttl["ttl_config"] == [{}]
    assert ttl["for_each"] == "${local.collections}"
    assert set(_literal_set(tf.locals["collections"])) == set(collections.COLLECTIONS)
    assert (
        "expire_at"
        in (REPO_ROOT / "functions" / "rbm_analytics" / "ingest" / "store.py").read_text()
    )
    # The refresh's watermark must outlive any retention period.
    assert watermark.STATE_COLLECTION not in _literal_set(tf.locals["collections"])


def _declared_indexes(tf: hcl.Config) -> set[tuple[str, tuple[str, ...]]]:
    out = set()
    for body in tf.of_type("google_firestore_index").values():
        fields = tuple(f["field_path"] for f in body["fields"] if f["field_path"] != "__name__")
        out.add((body["collection"], fields))
    return out


def _missing_indexes(
    specs: tuple[QuerySpec, ...], declared: set[tuple[str, tuple[str, ...]]]
) -> list[QuerySpec]:
    """Specs that need a composite index and have none declared.

    Firestore's composite index lists equality fields first, then the range
    or order-by fields in query order.
    """
    missing = []
    for spec in specs:
        if not spec.needs_composite_index:
            continue
        ordered = list(spec.equality_fields)
        for name in ((spec.range_field,) if spec.range_field else ()) + spec.order_by:
            if name not in ordered:
                ordered.append(name)
        if (spec.collection, tuple(ordered)) not in declared:
            missing.append(spec)
    return missing


def test_every_query_that_needs_a_composite_index_has_one(tf: hcl.Config) -> None:
    declared = _declared_indexes(tf)
    assert _missing_indexes(firestore_queries.FIRESTORE_QUERIES, declared) == []
    # Declared indexes serve a query the code makes (none are left over).
    needed = {spec.collection for spec in firestore_queries.FIRESTORE_QUERIES}
    assert {collection for collection, _ in declared} <= needed


def test_the_index_check_catches_a_query_without_its_index(tf: hcl.Config) -> None:
    composite = QuerySpec(
        collection="agent_messages",
        equality_fields=("agent_id",),
        range_field="updated_at",
        order_by=("updated_at",),
    )
    assert composite.needs_composite_index
    assert _missing_indexes((composite,), _declared_indexes(tf)) == [composite]
    declared = {("agent_messages", ("agent_id", "updated_at"))}
    assert _missing_indexes((composite,), declared) == []


def test_index_exemptions_never_touch_a_queried_field(tf: hcl.Config) -> None:
    queried = {
        (spec.collection, name)
        for spec in firestore_queries.FIRESTORE_QUERIES
        for name in (*spec.equality_fields, *spec.order_by, spec.range_field)
        if name
    }
    assert ("agent_messages", "updated_at") in queried
    exempt = {
        (collection, name) for collection, names in tf.locals["unindexed"].items() for name in names
    }
    assert set(tf.locals["unindexed"]) <= set(collections.COLLECTIONS)
    assert not exempt & queried, exempt & queried
    assert tf.resource("google_firestore_field", "unindexed")["index_config"] == [{}]


# --- monitoring and outputs ---------------------------------------------------


def test_alerts_cover_refresh_failure_absence_and_ingest_5xx(tf: hcl.Config) -> None:
    policies = tf.of_type("google_monitoring_alert_policy")
    assert set(policies) == {"refresh_failed", "refresh_missing", "ingest_5xx"}
    metric = tf.resource("google_logging_metric", "refresh_errors")
    assert 'service_name="${local.service_names["refresh"]}"' in metric["filter"]
    assert "severity>=ERROR" in metric["filter"]
    failed = policies["refresh_failed"]["conditions"][0]["condition_threshold"][0]
    assert "${google_logging_metric.refresh_errors.name}" in failed["filter"]
    assert failed["comparison"] == "COMPARISON_GT"
    missing = policies["refresh_missing"]["conditions"][0]["condition_absent"][0]
    assert 'response_code_class="2xx"' in missing["filter"]
    assert 'local.service_names["refresh"]' in missing["filter"]
    # Absence may look back at most 23.5 h, window plus absence at most 25 h.
    window = int(missing["aggregations"][0]["alignment_period"].removesuffix("s"))
    absence = int(missing["duration"].removesuffix("s"))
    assert absence <= 23.5 * 3600
    assert window + absence == 25 * 3600
    ingest = policies["ingest_5xx"]["conditions"][0]["condition_threshold"][0]
    assert 'response_code_class="5xx"' in ingest["filter"]
    assert 'local.service_names["ingest"]' in ingest["filter"]
    assert int(ingest["duration"].removesuffix("s")) >= 300
    for policy in policies.values():
        assert policy["notification_channels"] == "${local.alert_channels}"


def test_outputs_give_the_urls_an_operator_needs(tf: hcl.Config) -> None:
    assert {"webhook_url", "agent_messages_url", "export_url", "ui_url", "dataset"} <= set(
        tf.outputs
    )
    assert tf.outputs["agent_messages_url"]["value"] == "${local.ingest_url}/agent-messages"
    assert tf.outputs["ui_url"]["value"] == "${local.export_url}/ui"
    assert tf.locals["ingest_url"] == (
        '${google_cloudfunctions2_function.fn["ingest"].service_config[0].uri}'
    )


def test_make_deploy_and_destroy_drive_infra() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^TF := \$\(TERRAFORM\) -chdir=infra$", makefile, re.M)
    for target, command in (("deploy", "apply"), ("destroy", "destroy")):
        body = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.M)
        assert body, f"no make {target}"
        assert f"$(TF) {command}" in body.group(1)


def test_terraform_fmt_is_clean() -> None:
    """Canonical formatting, where a terraform binary is installed (no provider needed)."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not installed on this machine")
    proc = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(hcl.INFRA)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
