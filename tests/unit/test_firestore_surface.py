"""The Firestore client internals the write encoder relies on, pinned and checked.

``ingest.writes`` encodes Commit requests as raw protobufs and sends them
through the client's own GAPIC stub (about 300 us of CPU less per event than
the public ``WriteBatch`` path). That uses three private attributes of
``google.cloud.firestore.Client``. The deploy pins the library's exact
version (functions/requirements.txt); these tests fail loudly the day an
upgrade moves that surface, before a deploy could.
"""

from __future__ import annotations

import inspect
import re
from importlib import metadata

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from rbm_analytics.ingest import writes

from tests.support import REPO_ROOT


def _pinned(name: str) -> str:
    text = (REPO_ROOT / "functions" / "requirements.txt").read_text()
    match = re.search(rf"^{re.escape(name)}==(\S+)$", text, re.MULTILINE)
    assert match, f"{name} is not pinned to an exact version in functions/requirements.txt"
    return match.group(1)


def test_the_deploy_pins_the_firestore_version_the_tests_run() -> None:
    assert _pinned("google-cloud-firestore") == metadata.version("google-cloud-firestore")
    assert _pinned("protobuf") == metadata.version("protobuf")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> firestore.Client:
    # No network: the stub is built lazily and never called here.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    return firestore.Client(
        project="demo-surface",
        database="db-1",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
    )


def test_private_attributes_the_encoder_uses_still_exist(client: firestore.Client) -> None:
    assert client._database_string == "projects/demo-surface/databases/db-1"
    metadata_pairs = list(client._rpc_metadata)
    assert ("google-cloud-resource-prefix", client._database_string) in metadata_pairs
    commit = client._firestore_api.commit
    params = inspect.signature(commit).parameters
    assert {"request", "retry", "timeout", "metadata"} <= set(params)


def test_encoded_write_names_the_document_in_the_clients_database(
    client: firestore.Client,
) -> None:
    doc = writes.DocWrite("agent_messages", "m-1", {"agent_id": "a"}, ())
    pb = writes.Committer(client).encode(doc)
    assert pb.update.name == ("projects/demo-surface/databases/db-1/documents/agent_messages/m-1")
    assert list(pb.update_mask.field_paths) == ["agent_id"]
