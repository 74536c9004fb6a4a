"""Start and stop the local stand-ins for Firestore and BigQuery.

Each emulator runs in its own process group: ``gcloud`` forks a Java server
that outlives a plain kill, so stopping signals the whole group.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BQ_VENV = REPO_ROOT / ".venv-bq"


class PrerequisiteMissing(RuntimeError):
    """A tool the local stack needs is not installed; the message says how to get it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ManagedProcess:
    """A child process group with a readiness URL."""

    name: str
    argv: list[str]
    port: int
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ManagedProcess:
        if port_in_use(self.port):
            raise RuntimeError(f"{self.name}: port {self.port} is already in use")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode} while starting"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1):  # noqa: S310
                    return self
            except urllib.error.HTTPError:
                return self  # it answers HTTP: ready
            except (OSError, http.client.HTTPException):
                # Not listening yet, or listening but not yet speaking HTTP
                # (a bare status line while it starts): not ready.
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready within {timeout_s:.0f}s")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        """Stop the whole process group; SIGKILL whatever ignores SIGTERM."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout_s)
        # The Java server may outlive gcloud itself: clear the whole group.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """Freeze the group (SIGSTOP): clients see a server that does not answer."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)


def check_firestore_prerequisites() -> str:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise PrerequisiteMissing(
            "the Google Cloud CLI (gcloud) is not installed; install it and then "
            "'gcloud components install cloud-firestore-emulator' "
            "(or apt-get install google-cloud-cli-firestore-emulator)"
        )
    sdk_root = Path(os.path.realpath(gcloud)).parent.parent
    if (sdk_root / "platform").is_dir() and not (
        sdk_root / "platform" / "cloud-firestore-emulator"
    ).is_dir():
        raise PrerequisiteMissing(
            f"the Firestore emulator is not installed in the Google Cloud CLI at {sdk_root}; "
            "run 'gcloud components install cloud-firestore-emulator' "
            "(or apt-get install google-cloud-cli-firestore-emulator)"
        )
    if shutil.which("java") is None:
        raise PrerequisiteMissing(
            "Java 11+ is needed by the Firestore emulator; apt-get install openjdk-17-jre-headless"
        )
    return gcloud


def firestore_emulator(
    port: int,
    *,
    data_dir: Path | None = None,
    log_path: Path | None = None,
) -> ManagedProcess:
    """The official Firestore emulator; with ``data_dir`` it starts from the
    newest export there (see ``export_firestore``)."""
    gcloud = check_firestore_prerequisites()
    argv = [gcloud, "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}"]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        latest = latest_firestore_export(data_dir)
        if latest is not None:
            argv.append(f"--import-data={latest}")
    return ManagedProcess(
        name="firestore emulator",
        argv=argv,
        port=port,
        ready_url=f"http://127.0.0.1:{port}/",
        # Without a cap the emulator's heap grows to gigabytes and stays there.
        env={"JAVA_TOOL_OPTIONS": "-Xmx512m", "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
        log_path=log_path,
    )


# The emulator's --export-on-exit fails here (it names the database
# "projects/P/databases/" and gives up), and a SIGTERM skips it anyway: data
# is saved with an explicit export before stopping instead. Each export is a
# new firestore_export_<n> directory; the newest complete one is imported.
def latest_firestore_export(data_dir: Path) -> Path | None:
    """The metadata file of the newest complete export under ``data_dir``
    (what ``--import-data`` takes)."""
    exports = data_dir.glob("firestore_export_*/*.overall_export_metadata")
    return max(exports, key=lambda p: p.stat().st_mtime_ns, default=None)


def export_firestore(
    host: str, project: str, data_dir: Path, database: str = "(default)", timeout_s: float = 300
) -> Path:
    """Write every document to a new export under ``data_dir``; older exports
    are removed once the new one is complete. Returns its metadata file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    before = set(data_dir.glob("firestore_export_*"))
    started = time.time() - 1  # export names and mtimes have whole-second precision
    body = json.dumps(
        {
            "database": f"projects/{project}/databases/{database}",
            "export_directory": str(data_dir.resolve()),
        }
    ).encode()
    req = urllib.request.Request(
        f"http://{host}/emulator/v1/projects/{project}:export",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout_s):  # noqa: S310
        pass
    latest = latest_firestore_export(data_dir)
    if latest is None or latest.stat().st_mtime < started:
        raise RuntimeError(f"the Firestore emulator wrote no export into {data_dir}")
    for old in before:
        if old != latest.parent:
            shutil.rmtree(old, ignore_errors=True)
    return latest


def check_pubsub_prerequisites() -> str:
    gcloud = shutil.which("gcloud")
    sdk_root = Path(os.path.realpath(gcloud)).parent.parent if gcloud else None
    if gcloud is None or (
        sdk_root is not None
        and (sdk_root / "platform").is_dir()
        and not (sdk_root / "platform" / "pubsub-emulator").is_dir()
    ):
        raise PrerequisiteMissing(
            "the Pub/Sub emulator is not installed; run 'gcloud components install "
            "pubsub-emulator beta' (or apt-get install google-cloud-cli-pubsub-emulator)"
        )
    if shutil.which("java") is None:
        raise PrerequisiteMissing(
            "Java 11+ is needed by the Pub/Sub emulator; apt-get install openjdk-17-jre-headless"
        )
    return gcloud


def pubsub_emulator(port: int, *, log_path: Path | None = None) -> ManagedProcess:
    """The official Pub/Sub emulator (``gcloud beta``): push subscriptions deliver the
    standard envelope and redeliver whatever was not answered 2xx."""
    gcloud = check_pubsub_prerequisites()
    return ManagedProcess(
        name="pubsub emulator",
        argv=[gcloud, "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}"],
        port=port,
        ready_url=f"http://127.0.0.1:{port}/",
        env={"JAVA_TOOL_OPTIONS": "-Xmx256m", "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
        log_path=log_path,
    )


def bigquery_python() -> Path:
    python = BQ_VENV / "bin" / "python"
    if not (BQ_VENV / "bin" / "local-bigquery").exists():
        raise PrerequisiteMissing(
            f"the BigQuery emulator is not installed in {BQ_VENV}; run 'make .venv-bq' "
            "(needs Python 3.13, e.g. 'pyenv install 3.13')"
        )
    return python


def bigquery_emulator(
    port: int,
    grpc_port: int,
    project: str,
    data_dir: Path,
    *,
    log_path: Path | None = None,
) -> ManagedProcess:
    """``local-bigquery`` from its own Python 3.13 virtualenv."""
    bigquery_python()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(BQ_VENV / "bin" / "local-bigquery"),
        "serve",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--grpc-port", str(grpc_port),
        "--project", project,
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    return ManagedProcess(
        name="bigquery emulator",
        argv=argv,
        port=port,
        ready_url=f"http://127.0.0.1:{port}/bigquery/v2/projects/{project}/datasets",
        log_path=log_path,
    )


def wipe_firestore(host: str, project: str, database: str = "(default)") -> None:
    """Delete every document in the emulator (fast, unlike recursive_delete)."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/{database}/documents"
    req = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(req, timeout=30):  # noqa: S310
        pass


if __name__ == "__main__":  # pragma: no cover - manual smoke check
    print(free_port(), file=sys.stderr)
