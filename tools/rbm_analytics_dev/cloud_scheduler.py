"""The morning refresh's Cloud Scheduler job: read its state, run, pause, resume.

Talks to the Cloud Scheduler API through ``google-cloud-scheduler``'s REST
transport. With ``CLOUD_SCHEDULER_EMULATOR_HOST=host:port`` set, the same
calls go to a local stand-in over plain HTTP with anonymous credentials (the
tests run one; Google ships no Cloud Scheduler emulator).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import scheduler_v1
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2  # type: ignore[import-untyped]

EMULATOR_HOST_ENV = "CLOUD_SCHEDULER_EMULATOR_HOST"

# infra/ names the job <name_prefix>-refresh in <region>; these are its defaults.
DEFAULT_JOB = "rbm-analytics-refresh"
DEFAULT_LOCATION = "us-central1"


class SchedulerError(Exception):
    """A Cloud Scheduler call failed; the message says which job and why."""


@dataclass(frozen=True)
class JobRef:
    project: str
    location: str
    job: str

    @classmethod
    def parse(cls, job: str, location: str, project: str) -> JobRef:
        """A job id, or a full ``projects/P/locations/L/jobs/J`` name."""
        parts = job.split("/")
        if len(parts) == 6 and parts[0::2] == ["projects", "locations", "jobs"]:
            return cls(project=parts[1], location=parts[3], job=parts[5])
        if "/" in job or not job:
            raise SchedulerError(f"not a job id or projects/P/locations/L/jobs/J name: {job!r}")
        return cls(project=project, location=location, job=job)

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/jobs/{self.job}"


@dataclass(frozen=True)
class JobStatus:
    """What an operator wants to know about the job."""

    name: str
    schedule: str
    time_zone: str
    state: str
    target: str
    next_run: datetime | None
    last_attempt: datetime | None
    last_status_code: int | None
    last_status_message: str

    @property
    def last_status(self) -> str:
        """``OK``, or the failed attempt's gRPC code name and message."""
        if self.last_attempt is None or self.last_status_code is None:
            return "no attempt yet"
        if self.last_status_code == code_pb2.OK:
            return "OK"
        code = code_pb2.Code.Name(self.last_status_code)
        message = f": {self.last_status_message}" if self.last_status_message else ""
        return f"failed ({code}){message}"


def make_client() -> scheduler_v1.CloudSchedulerClient:
    """A REST client for Google's API, or for the stand-in the env names."""
    host = os.environ.get(EMULATOR_HOST_ENV, "").strip()
    if host:
        # The REST transport keeps an explicit http:// scheme in api_endpoint.
        endpoint = host if host.startswith(("http://", "https://")) else f"http://{host}"
        return scheduler_v1.CloudSchedulerClient(
            transport="rest",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
    return scheduler_v1.CloudSchedulerClient(transport="rest")


def _time(value: object) -> datetime | None:
    """A job timestamp in UTC, or None when unset.

    proto-plus hands Timestamp fields over as aware datetimes (None when
    unset); a raw protobuf Timestamp is accepted too.
    """
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, timestamp_pb2.Timestamp) and (value.seconds or value.nanos):
        return value.ToDatetime(tzinfo=UTC)
    return None


def _status(job: scheduler_v1.Job) -> JobStatus:
    target = ""
    if "http_target" in job:
        method = scheduler_v1.HttpMethod(job.http_target.http_method).name
        target = f"{method} {job.http_target.uri}"
    last_attempt = _time(job.last_attempt_time)
    return JobStatus(
        name=job.name,
        schedule=job.schedule,
        time_zone=job.time_zone or "Etc/UTC",
        state=scheduler_v1.Job.State(job.state).name,
        target=target,
        next_run=_time(job.schedule_time),
        last_attempt=last_attempt,
        # An absent status after an attempt is code 0, OK.
        last_status_code=job.status.code if last_attempt else None,
        last_status_message=job.status.message,
    )


class Scheduler:
    """The four operations the CLI offers, with errors an operator can act on."""

    def __init__(self, client: scheduler_v1.CloudSchedulerClient) -> None:
        self._client = client

    def _call(self, verb: str, ref: JobRef) -> JobStatus:
        method = {
            "status": self._client.get_job,
            "run": self._client.run_job,
            "pause": self._client.pause_job,
            "resume": self._client.resume_job,
        }[verb]
        try:
            job = method(name=ref.name)
        except gexc.NotFound:
            raise SchedulerError(
                f"job {ref.job!r} not found in project {ref.project!r}, location "
                f"{ref.location!r} ({ref.name}); check --job, --location and --project"
            ) from None
        except (gexc.PermissionDenied, gexc.Forbidden) as exc:
            raise SchedulerError(
                f"permission denied on {ref.name}: {exc.message} "
                "(status needs roles/cloudscheduler.viewer, run/pause/resume "
                "roles/cloudscheduler.jobRunner or admin)"
            ) from None
        except (gexc.FailedPrecondition, gexc.BadRequest) as exc:
            raise SchedulerError(f"cannot {verb} {ref.name}: {exc.message}") from None
        except gexc.GoogleAPICallError as exc:
            raise SchedulerError(f"Cloud Scheduler {verb} failed for {ref.name}: {exc}") from None
        return _status(job)

    def status(self, ref: JobRef) -> JobStatus:
        return self._call("status", ref)

    def run(self, ref: JobRef) -> JobStatus:
        """Start the job now; the attempt's result shows in a later ``status``."""
        return self._call("run", ref)

    def pause(self, ref: JobRef) -> JobStatus:
        return self._call("pause", ref)

    def resume(self, ref: JobRef) -> JobStatus:
        return self._call("resume", ref)
