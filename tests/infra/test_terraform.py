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
from pathlib import Path
from typing import Any

import pytest
from rbm_analytics.core import collections, config
from rbm_analytics.core import tables as schemas_bq
from rbm_analytics.refresh import plan as refresh_plan
from rbm_analytics.refresh import queries as firestore_queries
from rbm_analytics.refresh import watermark
from rbm_analytics.refresh.queries import QuerySpec
from rbm_analytics_dev.local import job as local_job

from tests.infra import hcl, promql
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

    Literal sets, and locals holding a map or a literal set, are expanded; a
    for_each over anything else stays one symbolic copy keyed by the
    expression.
    """
    for_each = body.get("for_each")
    if for_each is None:
        return {"": body}
    literal = for_each
    if m := re.fullmatch(r"\$\{local\.(\w+)\}", for_each):
        literal = tf.locals[m.group(1)]
        if isinstance(literal, dict):
            text = json.dumps(body)
            return {k: _fold(json.loads(text.replace("each.key", f'\\"{k}\\"'))) for k in literal}
    if not (isinstance(literal, str) and literal.startswith('${toset(["')):
        return {for_each: body}
    # For a set, each.value is each.key.
    text = json.dumps(body).replace("each.value", "each.key")
    keys = _literal_set(literal)
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
    providers = terraform["required_providers"][0]
    assert providers["google"]["source"] == "hashicorp/google"
    # google_iap_web_cloud_run_service_iam_member arrived in 6.31.
    assert providers["google"]["version"] == ">= 6.31, < 8.0"
    # google-beta only for the preview iap_enabled field, on the same versions.
    assert providers["google-beta"]["source"] == "hashicorp/google-beta"
    assert providers["google-beta"]["version"] == providers["google"]["version"]
    beta_users = {
        key for key, body in tf.resources.items() if body.get("provider") == "google-beta"
    }
    assert beta_users == {
        ("google_cloud_run_v2_service", "export_iap"),
        ("google_cloud_run_v2_service_iam_member", "export_iap_agent"),
        ("google_project_service_identity", "iap"),
    }


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
    return {
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


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
    # Caches and a development install's metadata never ship.
    assert {"**/__pycache__/**", "**/*.pyc", "*.egg-info/**"} <= set(archive["excludes"])


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


# --- schedule and the refresh job ---------------------------------------------


def test_morning_scheduler_starts_the_refresh_job_through_the_run_admin_api(
    tf: hcl.Config,
) -> None:
    job = tf.resource("google_cloud_scheduler_job", "refresh")
    assert job["schedule"] == "${var.refresh_schedule}"
    assert job["time_zone"] == "${var.refresh_time_zone}"
    assert tf.default("refresh_schedule") == "0 6 * * *"
    assert tf.default("refresh_time_zone") == "Etc/UTC"
    target = job["http_target"][0]
    assert target["http_method"] == "POST"
    assert target["uri"] == "${local.refresh_job_run_url}"
    assert tf.locals["refresh_job_run_url"] == (
        "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}"
        "/jobs/${google_cloud_run_v2_job.refresh.name}:run"
    )
    # A Google API takes an OAuth access token (an OIDC token is for run.app).
    assert "oidc_token" not in target
    oauth = target["oauth_token"][0]
    assert oauth["service_account_email"] == '${google_service_account.sa["scheduler"].email}'
    assert oauth["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    # No overrides in a body: they would need run.jobs.runWithOverrides.
    assert "body" not in target
    assert "${google_cloud_run_v2_job_iam_member.refresh_job_scheduler}" in job["depends_on"]


def test_refresh_job_runs_the_refresh_functions_image_with_the_job_module(
    tf: hcl.Config,
) -> None:
    job = tf.resource("google_cloud_run_v2_job", "refresh")
    execution = job["template"][0]
    assert execution["task_count"] == "${var.refresh_tasks}"
    assert execution["parallelism"] == "${var.refresh_tasks}"
    # make run's local job starts as many tasks as a deployment does by default.
    assert tf.default("refresh_tasks") == local_job.DEFAULT_TASKS
    validation = tf.variables["refresh_tasks"]["validation"][0]["condition"]
    assert f"var.refresh_tasks <= {local_job.MAX_TASKS}" in validation
    assert tf.locals["refresh_job_module"] == local_job.JOB_MODULE
    task = execution["template"][0]
    # The job is the refresh function's account: the same Firestore and
    # BigQuery grants, nothing more.
    assert task["service_account"] == '${google_service_account.sa["refresh"].email}'
    assert task["timeout"] == "${var.refresh_task_timeout_seconds}s"
    # Longer than the refresh's own budget, so a task stops itself cleanly.
    assert tf.default("refresh_task_timeout_seconds") > tf.default("refresh_time_budget_seconds")
    (container,) = task["containers"]
    assert container["image"] == "${local.refresh_image}"
    assert tf.locals["refresh_image"] == (
        "${data.google_cloud_run_v2_service.refresh_function.template[0].containers[0].image}"
    )
    source = tf.data[("google_cloud_run_v2_service", "refresh_function")]
    assert source["name"] == (
        '${basename(google_cloudfunctions2_function.fn["refresh"].service_config[0].service)}'
    )
    # A buildpack image sets up python and the requirements in its launcher.
    assert container["command"] == ["launcher"]
    assert container["args"] == ["python", "-m", "${local.refresh_job_module}"]
    module = tf.locals["refresh_job_module"]
    assert module == "rbm_analytics.refresh.job"
    module_file = REPO_ROOT / "functions" / Path(*module.split(".")).with_suffix(".py")
    if not module_file.is_file():
        pytest.skip(f"{module_file.relative_to(REPO_ROOT)} is not on this branch yet")
    assert "__main__" in module_file.read_text()


def test_refresh_job_gets_exactly_the_functions_settings(tf: hcl.Config) -> None:
    container = tf.resource("google_cloud_run_v2_job", "refresh")["template"][0]["template"][0][
        "containers"
    ][0]
    (dyn,) = container["dynamic"]
    assert dyn["env"]["for_each"] == "${local.env}"
    assert dyn["env"]["content"][0] == {"name": "${env.key}", "value": "${env.value}"}


def test_intraday_scheduler_posts_a_body_refresh_reads_as_today_so_far(tf: hcl.Config) -> None:
    job = tf.resource("google_cloud_scheduler_job", "intraday")
    assert job["count"] == "${local.intraday_enabled ? 1 : 0}"
    assert tf.locals["intraday_enabled"] == '${var.intraday_schedule != ""}'
    assert job["schedule"] == "${var.intraday_schedule}"
    # Hourly by default.
    minute, hour, *rest = tf.default("intraday_schedule").split()
    assert minute.isdigit() and hour == "*" and rest == ["*", "*", "*"]
    target = job["http_target"][0]
    assert target["uri"] == "${local.refresh_url}"
    assert tf.locals["refresh_url"] == (
        '${google_cloudfunctions2_function.fn["refresh"].service_config[0].uri}'
    )
    oidc = target["oidc_token"][0]
    assert oidc["service_account_email"] == '${google_service_account.sa["scheduler"].email}'
    assert oidc["audience"] == "${local.refresh_url}"
    assert target["headers"] == {"Content-Type": "application/json"}
    assert target["body"] == "${base64encode(local.intraday_body)}"
    assert tf.locals["intraday_body"] == "${jsonencode({intraday = true})}"
    if "intraday" not in {f.name for f in dataclasses.fields(refresh_plan.RefreshPlan)}:
        pytest.skip("the refresh's intraday run is not on this branch yet")
    body = json.dumps({"intraday": True}).encode()
    today = date(2026, 3, 10)
    plan = refresh_plan.plan_from_body(body, today=today, window_days=8)
    assert plan.intraday is True
    assert (plan.start, plan.end) == (today, today)


def test_intraday_attempt_deadline_fits_the_function_timeout_and_the_scheduler_ceiling(
    tf: hcl.Config,
) -> None:
    job = tf.resource("google_cloud_scheduler_job", "intraday")
    assert job["attempt_deadline"] == "${local.refresh_attempt_deadline}"
    assert tf.locals["refresh_attempt_deadline"] == (
        "${min(var.refresh_timeout_seconds, local.scheduler_max_deadline_seconds)}s"
    )
    # Cloud Scheduler allows 15 s to 30 min for HTTP targets.
    assert tf.locals["scheduler_max_deadline_seconds"] == 1800
    for name in ("refresh", "intraday"):
        retry = tf.resource("google_cloud_scheduler_job", name)["retry_config"][0]
        assert retry["retry_count"] >= 1
        backoff = int(retry["min_backoff_duration"].removesuffix("s"))
        assert backoff >= 60
        assert int(retry["max_backoff_duration"].removesuffix("s")) >= backoff


def test_refresh_ingress_is_internal_unless_the_scheduler_must_reach_it(tf: hcl.Config) -> None:
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    assert fn["service_config"][0]["ingress_settings"] == "${each.value.ingress}"
    sizing = tf.locals["functions"]
    assert sizing["ingest"]["ingress"] == "ALLOW_ALL"
    assert sizing["export"]["ingress"] == "ALLOW_ALL"
    # Cloud Scheduler's HTTP requests are not internal traffic: the function
    # admits every network only while the intraday run posts to it.
    assert sizing["refresh"]["ingress"] == (
        '${local.intraday_enabled ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"}'
    )
    grant = tf.resource("google_cloud_run_service_iam_member", "refresh_scheduler")
    assert grant["count"] == "${local.intraday_enabled ? 1 : 0}"


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
                or copy.get("cloud_run_service_name")
                or copy.get("routine_id")
                or copy.get("table_id")
                or copy.get("dataset_id")
                or copy.get("secret_id")
                or copy.get("bucket")
                or copy.get("repository")
                or copy.get("name")
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
    secret_grants = {
        (
            "google_secret_manager_secret_iam_member",
            "${google_secret_manager_secret.secret[each.value.secret].secret_id}",
            "roles/secretmanager.secretAccessor",
            "${google_service_account.sa[each.value.function].member}",
        )
    }
    run = "google_cloud_run_service_iam_member"
    table = "google_bigquery_table_iam_member"
    viewer = "roles/bigquery.dataViewer"
    export_tables = {
        (table, "${google_bigquery_table.table[each.value].table_id}", viewer, _sa("export"))
    }
    expected = {
        ("google_project_iam_member", project, "roles/datastore.user", _sa("ingest")),
        ("google_project_iam_member", project, "roles/datastore.user", _sa("refresh")),
        (table, "${google_bigquery_table.view[each.key].table_id}", viewer, _sa("export")),
        ("google_bigquery_routine_iam_member",
         "${google_bigquery_routine.authorized[each.key].routine_id}", viewer, _sa("export")),
        ("google_bigquery_routine_iam_member",
         "${google_bigquery_routine.authorized[each.key].routine_id}", viewer, _sa("refresh")),
        ("google_project_iam_member", project, "roles/bigquery.jobUser", _sa("refresh")),
        ("google_project_iam_member", project, "roles/bigquery.jobUser", _sa("export")),
        (run, _fn("ingest"), "roles/run.invoker", "allUsers"),
        (run, _fn("refresh"), "roles/run.invoker", _sa("scheduler")),
        (run, _fn("export"), "roles/run.invoker", "${each.value}"),
        ("google_cloud_run_v2_job_iam_member", "${google_cloud_run_v2_job.refresh.name}",
         "roles/run.invoker", _sa("scheduler")),
        ("google_cloud_run_v2_service_iam_member",
         "${google_cloud_run_v2_service.export_iap[0].name}", "roles/run.invoker",
         "${local.iap_service_agent}"),
        ("google_iap_web_cloud_run_service_iam_member",
         "${google_cloud_run_v2_service.export_iap[0].name}", "roles/iap.httpsResourceAccessor",
         "${each.value}"),
        ("google_project_iam_member", project, "roles/logging.logWriter", _sa("builder")),
        ("google_project_iam_member", project, "roles/storage.objectViewer", _sa("builder")),
        ("google_storage_bucket_iam_member", "${google_storage_bucket.source.name}",
         "roles/storage.objectViewer", _sa("builder")),
        ("google_artifact_registry_repository_iam_member",
         "${google_artifact_registry_repository.images.name}", "roles/artifactregistry.writer",
         _sa("builder")),
    } | secret_grants | export_tables  # fmt: skip
    assert _bindings(tf) == expected


def _export_tables() -> set[str]:
    layout = json.loads(hcl.path("schemas/tables.json").read_text())
    return {name for name, spec in layout.items() if spec["kind"] == "daily"}


def test_export_reads_the_daily_tables_table_by_table_never_the_mirror(tf: hcl.Config) -> None:
    grant = tf.resource("google_bigquery_table_iam_member", "export_table_reader")
    assert grant["for_each"] == "${local.export_tables}"
    assert tf.locals["export_tables"] == (
        '${toset([for name, table in local.tables : name if table.kind == "daily"])}'
    )
    readable = _export_tables()
    assert readable == {"daily_metrics", "daily_postbacks", "response_samples"}
    # The columns that identify a user stay out of export's reach.
    for name in readable:
        columns = {f["name"] for f in json.loads(hcl.path(f"schemas/{name}.json").read_text())}
        assert "user_key" not in columns, name
    assert not readable & set(schemas_bq.MIRROR_TABLES)
    # No dataset-wide read for export: the main dataset's access list holds
    # the refresh (dataEditor) and the authorized functions, nothing else.
    # No dataset IAM resource at all: it would rewrite the access list
    # without the authorized functions.
    assert not tf.of_type("google_bigquery_dataset_iam_member")
    assert not tf.of_type("google_bigquery_dataset_iam_binding")
    access = tf.of_type("google_bigquery_dataset_access")
    assert set(access) == {"refresh_editor", "authorized_routine"}
    dataset = "${google_bigquery_dataset.analytics.dataset_id}"
    editor = access["refresh_editor"]
    assert (editor["dataset_id"], editor["role"], editor["user_by_email"]) == (
        dataset,
        "WRITER",
        '${google_service_account.sa["refresh"].email}',
    )


def test_week_and_month_reach_is_an_authorized_function_export_may_only_call(
    tf: hcl.Config,
) -> None:
    """export counts distinct users through period_reach, which reads the
    mirror on its behalf and returns counts only; export holds no read on the
    mirror, and on the reach dataset only the function itself."""
    authorized = {n for n, r in schemas_bq.routine_defs().items() if r.authorized}
    assert authorized == {"period_reach"}
    assert tf.locals["authorized_routines"] == (
        "${{for name, r in local.routines : name => r if try(r.authorized, false)}}"
    )
    assert tf.locals["analyst_routines"] == (
        "${{for name, r in local.routines : name => r if !try(r.authorized, false)}}"
    )
    # Its own dataset, named as the code names it.
    assert tf.locals["reach_dataset_id"] == "${var.dataset_id}_reach"
    assert schemas_bq.reach_dataset("rbm_analytics") == "rbm_analytics_reach"
    reach = tf.resource("google_bigquery_dataset", "reach")
    assert reach["dataset_id"] == "${local.reach_dataset_id}"
    assert reach["location"] == "${var.bq_location}"
    routine = tf.resource("google_bigquery_routine", "authorized")
    assert routine["for_each"] == "${local.authorized_routines}"
    assert routine["dataset_id"] == "${google_bigquery_dataset.reach.dataset_id}"
    assert routine["routine_type"] == "TABLE_VALUED_FUNCTION"
    # Authorized on the main dataset, re-authorized whenever it is replaced.
    entry = tf.resource("google_bigquery_dataset_access", "authorized_routine")
    assert entry["for_each"] == "${local.authorized_routines}"
    assert entry["dataset_id"] == "${google_bigquery_dataset.analytics.dataset_id}"
    assert entry["routine"] == [{
        "project_id": "${var.project_id}",
        "dataset_id": "${google_bigquery_dataset.reach.dataset_id}",
        "routine_id": "${google_bigquery_routine.authorized[each.key].routine_id}",
    }]  # fmt: skip
    assert entry["lifecycle"][0]["replace_triggered_by"] == [
        "${google_bigquery_routine.authorized[each.key]}"
    ]
    # export: the function, on the function only.
    grant = tf.resource("google_bigquery_routine_iam_member", "export_reach")
    assert grant["for_each"] == "${local.authorized_routines}"
    assert grant["dataset_id"] == "${google_bigquery_dataset.reach.dataset_id}"
    assert (grant["role"], grant["member"]) == ("roles/bigquery.dataViewer", _sa("export"))
    assert not [g for g in tf.of_type("google_bigquery_dataset_iam_member").values()
                if g["dataset_id"] == "${google_bigquery_dataset.reach.dataset_id}"]  # fmt: skip
    # What it returns: counts, never a user key.
    sql = schemas_bq.routine_sql("period_reach", "p", "d")
    final = sql[sql.rindex("\n  SELECT") :]
    assert re.findall(r"AS (\w+)", final) == ["date", "recipients", "responders"]
    assert "user_key" not in final
    # The analysts' functions that need reach wait for it.
    analyst = tf.resource("google_bigquery_routine", "routine")
    assert "${google_bigquery_dataset_access.authorized_routine}" in analyst["depends_on"]


def test_builder_reads_only_the_source_buckets_and_writes_only_its_repository(
    tf: hcl.Config,
) -> None:
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    assert fn["build_config"][0]["docker_repository"] == (
        "${google_artifact_registry_repository.images.id}"
    )
    grant = tf.resource("google_project_iam_member", "builder_function_sources")
    expression = hcl.render(
        grant["condition"][0]["expression"],
        tf,
        {"data.google_project.this.number": "123456789012"},
    )
    bucket = "projects/_/buckets/gcf-v2-sources-123456789012-us-central1"
    assert expression == (f'resource.name == "{bucket}" || resource.name.startsWith("{bucket}/")')
    # The condition admits that bucket and its objects, not a look-alike name.
    admitted = re.compile(rf"{re.escape(bucket)}(/.*)?")
    assert admitted.fullmatch(f"{bucket}/rbm-analytics-refresh/function-source.zip")
    assert not admitted.fullmatch(f"{bucket}-other/x")


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
    # The refresh's cursors must outlive any retention period.
    for state in (watermark.STATE_COLLECTION, watermark.STREAMS_COLLECTION):
        assert state not in _literal_set(tf.locals["collections"])


def _declared_indexes(tf: hcl.Config) -> set[tuple[str, tuple[str, ...]]]:
    out = set()
    indexes = tf.of_type("google_firestore_index").values()
    for body in (copy for index in indexes for copy in _expand(index, tf).values()):
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


def test_index_exemptions_never_touch_a_field_a_single_field_query_needs(
    tf: hcl.Config,
) -> None:
    """A composite index stands on its own; a single-field query needs the field's own index."""
    single = {
        (spec.collection, name)
        for spec in firestore_queries.FIRESTORE_QUERIES
        if not spec.needs_composite_index
        for name in (*spec.equality_fields, *spec.order_by, spec.range_field)
        if name
    }
    exempt = {
        (collection, name) for collection, names in tf.locals["unindexed"].items() for name in names
    }
    assert set(tf.locals["unindexed"]) <= set(collections.COLLECTIONS)
    assert not exempt & single, exempt & single
    # The change feed is read only through (shard, updated_at): the monotonic
    # update time has no single-field index to hot-spot.
    assert all(spec.needs_composite_index for spec in firestore_queries.CHANGED_SINCE)
    for collection in collections.COLLECTIONS:
        assert (collection, "updated_at") in exempt
    assert tf.resource("google_firestore_field", "unindexed")["index_config"] == [{}]


# --- monitoring and outputs ---------------------------------------------------


ALERTS = {
    "refresh_failed", "refresh_missing", "ingest_5xx", "watermark_lag", "forward_failures",
    "auth_failures", "rate_drop", "agent_silent",
}  # fmt: skip
# What local.service_names renders to with the default name_prefix.
KNOWN = {
    f'local.service_names["{fn}"]': f"rbm-analytics-{fn}" for fn in FUNCTIONS
}  # fmt: skip


def _render(tf: hcl.Config, text: str) -> str:
    return hcl.render(text, tf, KNOWN)


def _condition(tf: hcl.Config, policy: str, kind: str) -> dict[str, Any]:
    (condition,) = tf.resource("google_monitoring_alert_policy", policy)["conditions"]
    return condition[kind][0]


def test_every_alert_is_documented_and_notifies(tf: hcl.Config) -> None:
    policies = tf.of_type("google_monitoring_alert_policy")
    assert set(policies) == ALERTS
    for name, policy in policies.items():
        assert policy["notification_channels"] == "${local.alert_channels}", name
        doc = policy["documentation"][0]
        assert doc["mime_type"] == "text/markdown"
        if name == "rate_drop":
            assert doc["content"] == "${local.rate_drop_docs[each.key]}"
            continue
        # What it means and what to do: a paragraph, not a title.
        assert len(doc["content"].split()) >= 40, name
        assert policy["severity"] in {"CRITICAL", "ERROR", "WARNING"}, name
    for name, doc in tf.locals["rate_drop_docs"].items():
        assert len(doc.split()) >= 40, name
    assert set(tf.locals["rate_drop_docs"]) == set(tf.locals["rate_drop_queries"])


def test_refresh_failure_and_absence_watch_the_function_and_the_job(tf: hcl.Config) -> None:
    metric = _render(tf, tf.resource("google_logging_metric", "refresh_errors")["filter"])
    assert metric == (
        '((resource.type="cloud_run_revision"'
        ' AND resource.labels.service_name="rbm-analytics-refresh")'
        ' OR (resource.type="cloud_run_job"'
        ' AND resource.labels.job_name="rbm-analytics-refresh-job"))'
        " AND severity>=ERROR"
    )
    failed = _condition(tf, "refresh_failed", "condition_threshold")
    assert _render(tf, failed["filter"]) == (
        'metric.type="logging.googleapis.com/user/rbm-analytics-refresh-errors"'
    )
    assert (failed["comparison"], failed["threshold_value"]) == ("COMPARISON_GT", 0)
    missing = _condition(tf, "refresh_missing", "condition_absent")
    assert _render(tf, missing["filter"]) == (
        'metric.type="run.googleapis.com/job/completed_execution_count"'
        ' AND resource.type="cloud_run_job"'
        ' AND resource.labels.job_name="rbm-analytics-refresh-job"'
        ' AND metric.labels.result="succeeded"'
    )
    # Absence may look back at most 23.5 h, window plus absence at most 25 h.
    window = int(missing["aggregations"][0]["alignment_period"].removesuffix("s"))
    absence = int(missing["duration"].removesuffix("s"))
    assert absence <= 23.5 * 3600
    assert window + absence == 25 * 3600


def test_ingest_5xx_alert(tf: hcl.Config) -> None:
    ingest = _condition(tf, "ingest_5xx", "condition_threshold")
    assert _render(tf, ingest["filter"]) == (
        'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision"'
        ' AND resource.labels.service_name="rbm-analytics-ingest"'
        ' AND metric.labels.response_code_class="5xx"'
    )
    assert int(ingest["duration"].removesuffix("s")) >= 300


def test_watermark_lag_alert_fires_long_before_the_ttl_could_delete_unmirrored_documents(
    tf: hcl.Config,
) -> None:
    metric = tf.resource("google_logging_metric", "watermark_lag")
    assert _render(tf, metric["filter"]).endswith(
        ' AND jsonPayload.message="refresh run" AND jsonPayload.watermark_lag_s:*'
    )
    assert metric["value_extractor"] == "EXTRACT(jsonPayload.watermark_lag_s)"
    assert metric["metric_descriptor"][0]["value_type"] == "DISTRIBUTION"
    condition = _condition(tf, "watermark_lag", "condition_threshold")
    assert condition["threshold_value"] == "${local.watermark_lag_threshold_s}"
    threshold = float(_render(tf, condition["threshold_value"]))
    assert threshold == tf.default("watermark_lag_alert_hours") * 3600 == 3 * 86400
    # Days of margin before RETENTION_DAYS deletes a document nobody mirrored.
    assert threshold <= tf.default("retention_days") * 86400 / 4
    assert condition["comparison"] == "COMPARISON_GT"
    assert condition["aggregations"][0]["per_series_aligner"] == "ALIGN_PERCENTILE_99"
    assert condition["aggregations"][0]["cross_series_reducer"] == "REDUCE_MAX"
    # The threshold is a bucket boundary, so the percentile crosses it exactly
    # when a run reported more.
    bounds = [int(b) for b in tf.locals["watermark_lag_bounds"]]
    rendered = sorted({b for b in bounds if b != threshold} | {int(threshold)})
    assert rendered == sorted(rendered) and int(threshold) in rendered
    assert bounds == sorted(bounds)
    doc = tf.resource("google_monitoring_alert_policy", "watermark_lag")["documentation"][0]
    assert "RETENTION_DAYS" in doc["content"]
    check = tf.files["monitoring.tf"]["check"][0]["watermark_alert_before_retention"]
    assert check["assert"][0]["condition"] == (
        "${var.watermark_lag_alert_hours <= var.retention_days * 24 / 4}"
    )


def test_watermark_lag_field_is_what_the_refresh_logs() -> None:
    routes = REPO_ROOT / "functions" / "rbm_analytics" / "refresh"
    text = "".join(p.read_text() for p in routes.glob("*.py"))
    if "watermark_lag_s" not in text:
        pytest.skip("the refresh does not log watermark_lag_s on this branch yet")
    assert '"refresh run"' in text


def test_forward_failure_alert_counts_every_relay_outcome_but_ok(tf: hcl.Config) -> None:
    relay = (REPO_ROOT / "functions" / "rbm_analytics" / "ingest" / "relay.py").read_text()
    # The outcomes ingest logs; "ok" is the only success.
    assert 'Outcome = Literal["ok", ' in relay
    assert '"forward_outcome": self.outcome' in relay
    metric = tf.resource("google_logging_metric", "forward_failures")
    assert _render(tf, metric["filter"]) == (
        'resource.type="cloud_run_revision" AND resource.labels.service_name="rbm-analytics-ingest"'
        ' AND jsonPayload.message="ingest request"'
        ' AND jsonPayload.forward_outcome:* AND jsonPayload.forward_outcome!="ok"'
    )
    assert metric["label_extractors"]["agent_id"] == "EXTRACT(jsonPayload.agent_id)"
    condition = _condition(tf, "forward_failures", "condition_threshold")
    assert "${google_logging_metric.forward_failures.name}" in condition["filter"]
    assert condition["threshold_value"] == "${var.forward_failures_per_5min}"
    assert condition["aggregations"][0]["alignment_period"] == "300s"
    assert condition["aggregations"][0]["group_by_fields"] == ["metric.label.agent_id"]
    assert condition["duration"] == "600s"


def test_auth_failure_alert_counts_401_and_403_at_ingest(tf: hcl.Config) -> None:
    condition = _condition(tf, "auth_failures", "condition_threshold")
    assert _render(tf, condition["filter"]) == (
        'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision"'
        ' AND resource.labels.service_name="rbm-analytics-ingest"'
        ' AND metric.labels.response_code=one_of("401", "403")'
    )
    assert condition["threshold_value"] == "${var.auth_failures_per_5min}"
    assert condition["aggregations"][0]["alignment_period"] == "300s"
    assert condition["aggregations"][0]["per_series_aligner"] == "ALIGN_DELTA"


def test_business_metrics_read_ingests_and_the_refreshs_log_lines(tf: hcl.Config) -> None:
    events = tf.resource("google_logging_metric", "webhook_events")
    assert _render(tf, events["filter"]).endswith(
        ' AND jsonPayload.message="ingest request"'
        ' AND (jsonPayload.route="webhook" OR jsonPayload.route="pubsub")'
        ' AND jsonPayload.outcome="stored"'
    )
    assert events["label_extractors"] == {
        "agent_id": "EXTRACT(jsonPayload.agent_id)", "kind": "EXTRACT(jsonPayload.kind)",
    }  # fmt: skip
    routes = (REPO_ROOT / "functions" / "rbm_analytics" / "ingest" / "routes.py").read_text()
    for field in ('fields["agent_id"]', 'fields["kind"]', 'outcome="stored"'):
        assert field in routes, field
    for route in ('"webhook"', '"pubsub"'):
        assert f"web.Route({route}" in routes, route
    # The rates: yesterday's line of a closed refresh run, per agent; the
    # fields are the refresh's (asserted in tests/integration/test_refresh_intraday.py).
    daily = tf.resource("google_logging_metric", "daily_counts")
    assert _literal_set(daily["for_each"]) == ["sent", "delivered", "read"]
    assert _render(tf, daily["filter"]) == _render(tf, tf.locals["refresh_logs"]) + (
        ' AND jsonPayload.message="daily metrics"'
        " AND jsonPayload.age_days=1 AND jsonPayload.partial=false"
    )
    assert daily["value_extractor"] == "EXTRACT(jsonPayload.${each.key})"
    assert daily["label_extractors"] == {"agent_id": "EXTRACT(jsonPayload.agent_id)"}
    assert daily["metric_descriptor"][0]["value_type"] == "DISTRIBUTION"
    refresh = (REPO_ROOT / "functions" / "rbm_analytics" / "refresh" / "routes.py").read_text()
    for field in ('"daily metrics"', "agent_id=", "sent=", "delivered=", "read=",
                  "partial=", "age_days="):  # fmt: skip
        assert field in refresh, field
    # PromQL names: the first "/" to ":", other invalid characters to "_".
    assert _render(tf, tf.locals["promql"]["webhook_events"]) == EVENTS
    for count, name in (("sent", SENT), ("delivered", DELIVERED), ("read", READ)):
        assert _render(tf, tf.locals["promql"][f"daily_{count}"]) == name


EVENTS = "logging_googleapis_com:user_rbm_analytics_webhook_events"
SENT = "logging_googleapis_com:user_rbm_analytics_daily_sent_sum"
DELIVERED = "logging_googleapis_com:user_rbm_analytics_daily_delivered_sum"
READ = "logging_googleapis_com:user_rbm_analytics_daily_read_sum"
INGEST = {("monitored_resource", "cloud_run_revision"), ("service_name", "rbm-analytics-ingest")}


def _series(metric: str, kind: str | None, window: str, offset: str = "0") -> tuple[Any, ...]:
    labels = INGEST | ({("kind", kind)} if kind else set())
    return (metric, frozenset(labels), window, offset)


def _daily(metric: str, window: str, offset: str = "0") -> tuple[Any, ...]:
    return (metric, frozenset(), window, offset)


def _rates(agents: dict[str, tuple[int, int, int, int, int, int]]) -> dict[tuple[Any, ...], Any]:
    """Per agent: sent, delivered, read yesterday, then over the 7 days before."""
    data: dict[tuple[Any, ...], dict[str, float]] = {}
    for agent, (s1, d1, r1, s7, d7, r7) in agents.items():
        for key, value in (
            (_daily(SENT, "1d"), s1),
            (_daily(DELIVERED, "1d"), d1),
            (_daily(READ, "1d"), r1),
            (_daily(SENT, "7d", "1d"), s7),
            (_daily(DELIVERED, "7d", "1d"), d7),
            (_daily(READ, "7d", "1d"), r7),
        ):  # fmt: skip
            data.setdefault(key, {})[agent] = value
    return data


def test_rate_drop_alerts_fire_for_the_agent_whose_rate_fell(tf: hcl.Config) -> None:
    queries = {k: _render(tf, v) for k, v in tf.locals["rate_drop_queries"].items()}
    data = _rates({
        # sent, delivered, read yesterday; the same over the 7 days before
        "steady":        (1000, 900, 540, 7000, 6300, 3780),   # 90 %, 54 % both times
        "reads_fell":    (1000, 900, 180, 7000, 6300, 3780),   # read 18 % vs 54 %
        "delivery_fell": (1000, 300, 180, 7000, 6300, 3780),   # delivered 30 % vs 90 %
        "slightly_less": (1000, 800, 450, 7000, 6300, 3780),   # 80 %, 45 %: within half
        "logged_twice":  (2000, 1800, 1080, 7000, 6300, 3780), # a rerun: same rates
        "tiny":          (50, 10, 1, 7000, 6300, 3780),        # too few messages yesterday
        "new_agent":     (1000, 900, 100, 0, 0, 0),            # no past to compare with
    })  # fmt: skip
    assert set(promql.evaluate(queries["delivery"], data)) == {"delivery_fell"}
    assert set(promql.evaluate(queries["read"], data)) == {"reads_fell", "delivery_fell"}
    for name in ("delivery", "read"):
        condition = tf.resource("google_monitoring_alert_policy", "rate_drop")["conditions"][0]
        promql_condition = condition["condition_prometheus_query_language"][0]
        assert promql_condition["query"] == "${each.value}"
        assert int(promql_condition["duration"].removesuffix("s")) >= 1800, name


def test_silence_alert_fires_for_a_usually_busy_agent_with_no_events(tf: hcl.Config) -> None:
    query = _render(tf, tf.locals["silence_query"])
    hours = tf.default("silence_hours")
    week = _series(EVENTS, None, "7d")
    recent = _series(EVENTS, None, f"{hours}h")
    data = {
        # 10 events an hour for a week: 60 per 6 hours on average.
        week: {"busy_now_silent": 1680, "busy_and_active": 1680, "quiet": 30, "zero_now": 1680},
        # No series at all for an agent without events; an explicit 0 counts too.
        recent: {"busy_and_active": 50, "quiet": 0, "zero_now": 0},
    }
    assert set(promql.evaluate(query, data)) == {"busy_now_silent", "zero_now"}


def test_each_business_query_names_only_metrics_defined_here(tf: hcl.Config) -> None:
    queries = [*tf.locals["rate_drop_queries"].values(), tf.locals["silence_query"]]
    for query in queries:
        rendered = _render(tf, query)
        names = set(re.findall(r"logging_googleapis_com:user_\w+", rendered))
        assert names <= {EVENTS, SENT, DELIVERED, READ}, names
        assert rendered.count("(") == rendered.count(")")


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


# --- adoption, IAP, views, the change feed index -----------------------------


def test_an_existing_firestore_database_can_be_adopted(tf: hcl.Config) -> None:
    db = tf.resource("google_firestore_database", "db")
    assert db["count"] == "${var.create_firestore_database ? 1 : 0}"
    assert tf.default("create_firestore_database") is True
    assert tf.locals["firestore_database"] == (
        "${var.create_firestore_database ? google_firestore_database.db[0].name"
        " : var.firestore_database}"
    )
    # Everything else in Firestore is applied to the created or adopted one.
    for rtype in ("google_firestore_field", "google_firestore_index"):
        for name, body in tf.of_type(rtype).items():
            assert body["database"] == "${local.firestore_database}", (rtype, name)
    assert "terraform -chdir=infra import 'google_firestore_database.db[0]'" in (
        hcl.path("firestore.tf").read_text()
    )


def test_every_collection_has_the_shard_and_update_time_index(tf: hcl.Config) -> None:
    declared = _declared_indexes(tf)
    for collection in collections.COLLECTIONS:
        assert (collection, ("shard", "updated_at")) in declared, collection
    index = tf.resource("google_firestore_index", "shard_updated")
    assert index["query_scope"] == "COLLECTION"
    assert [f["order"] for f in index["fields"]] == ["ASCENDING", "ASCENDING"]
    shards = REPO_ROOT / "functions" / "rbm_analytics" / "core" / "shards.py"
    if shards.is_file():
        assert 'SHARD_FIELD = "shard"' in shards.read_text()


def test_iap_puts_a_second_service_with_the_export_image_behind_the_proxy(
    tf: hcl.Config,
) -> None:
    assert tf.default("iap_enabled") is False
    service = tf.resource("google_cloud_run_v2_service", "export_iap")
    assert service["count"] == "${var.iap_enabled ? 1 : 0}"
    assert service["iap_enabled"] is True
    assert service["launch_stage"] == "BETA"
    template = service["template"][0]
    assert template["service_account"] == '${google_service_account.sa["export"].email}'
    (container,) = template["containers"]
    assert container["image"] == (
        "${data.google_cloud_run_v2_service.export_function[0].template[0].containers[0].image}"
    )
    (dyn,) = container["dynamic"]
    assert "local.env" in dyn["env"]["for_each"]
    agent = tf.resource("google_cloud_run_v2_service_iam_member", "export_iap_agent")
    assert agent["member"] == "${local.iap_service_agent}"
    assert tf.locals["iap_service_agent"] == (
        "serviceAccount:service-${data.google_project.this.number}"
        "@gcp-sa-iap.iam.gserviceaccount.com"
    )
    members = tf.resource("google_iap_web_cloud_run_service_iam_member", "export_iap_members")
    assert members["for_each"] == "${var.iap_enabled ? toset(var.iap_members) : toset([])}"
    assert members["role"] == "roles/iap.httpsResourceAccessor"
    assert tf.outputs["ui_iap_url"]["value"] == (
        '${var.iap_enabled ? "${google_cloud_run_v2_service.export_iap[0].uri}/ui" : ""}'
    )


@pytest.mark.parametrize(
    ("member", "ok"),
    [("domain:example.com", True), ("group:team@example.com", True), ("allUsers", False)],
)
def test_iap_members_reject_public_members(tf: hcl.Config, member: str, ok: bool) -> None:
    condition = tf.variables["iap_members"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(.+?)", m\)', condition)
    assert pattern, condition
    assert bool(re.search(pattern.group(1), member)) is ok


def test_views_come_from_sql_files_in_standard_sql(tf: hcl.Config) -> None:
    assert tf.locals["views"] == (
        '${{for f in fileset("${path.module}/views", "*.sql") : trimsuffix(f, ".sql") => f}}'
    )
    view = tf.resource("google_bigquery_table", "view")
    assert view["for_each"] == "${local.views}"
    definition = view["view"][0]
    assert definition["use_legacy_sql"] is False
    assert definition["query"].startswith('${templatefile("${path.module}/views/${each.value}"')
    # Each file's placeholders are the ones templatefile fills.
    for sql in sorted(hcl.path("views").glob("*.sql")) if hcl.path("views").is_dir() else []:
        placeholders = set(re.findall(r"\$\{(\w+)\}", sql.read_text()))
        assert placeholders <= {"project", "dataset"}, (sql.name, placeholders)


def test_table_functions_come_from_the_files_ensure_tables_reads(tf: hcl.Config) -> None:
    assert tf.locals["routines"] == ('${jsondecode(file("${path.module}/routines/routines.json"))}')
    for name in ("routine", "authorized"):
        routine = tf.resource("google_bigquery_routine", name)
        assert routine["routine_type"] == "TABLE_VALUED_FUNCTION"
        assert routine["language"] == "SQL"
        assert routine["definition_body"] == (
            '${templatefile("${path.module}/routines/${each.key}.sql", local.routine_vars)}'
        )
        (arguments,) = routine["dynamic"][0]["arguments"]["content"]
        assert arguments == {
            "name": "${arguments.value.name}",
            "data_type": "${jsonencode({typeKind = arguments.value.type})}",
        }
    assert tf.resource("google_bigquery_routine", "routine")["for_each"] == (
        "${local.analyst_routines}"
    )
    # The placeholders both fill, with the same values.
    assert tf.locals["routine_vars"] == {
        "project": "${var.project_id}",
        "dataset": "${google_bigquery_dataset.analytics.dataset_id}",
        "reach_dataset": "${local.reach_dataset_id}",
    }
    # The same names, arguments and types the functions create.
    spec = json.loads((hcl.path("routines") / "routines.json").read_text())
    assert {
        name: tuple((a["name"], a["type"]) for a in entry["arguments"])
        for name, entry in spec.items()
    } == {name: r.arguments for name, r in schemas_bq.routine_defs().items()}
    for sql in sorted(hcl.path("routines").glob("*.sql")):
        placeholders = set(re.findall(r"\$\{(\w+)\}", sql.read_text()))
        assert {"project", "dataset"} <= placeholders <= set(tf.locals["routine_vars"]), sql
