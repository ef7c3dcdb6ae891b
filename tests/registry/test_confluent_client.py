"""The registry over real HTTP, driven by confluent-kafka's own client and Avro serdes.

Also covers ``RegistryServer``'s lifecycle and the ``python -m`` entrypoint.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from otlp_feedback.registry.runner import RegistryServer

FEEDBACK_V1 = {
    "type": "record",
    "name": "Feedback",
    "namespace": "otlp.feedback",
    "fields": [
        {"name": "trace_id", "type": "string"},
        {"name": "score", "type": "int"},
        {"name": "comment", "type": ["null", "string"], "default": None},
    ],
}


def schema(fields_change: dict[str, object] | None = None, drop: str = "") -> Schema:
    """FEEDBACK_V1 with one field replaced/added (by name) or dropped."""
    fields = [f for f in FEEDBACK_V1["fields"] if isinstance(f, dict) and f["name"] != drop]
    if fields_change is not None:
        fields = [f for f in fields if f["name"] != fields_change["name"]] + [fields_change]
    return Schema(json.dumps({**FEEDBACK_V1, "fields": fields}), "AVRO")


V1 = schema()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(db_path=tmp_path_factory.mktemp("registry") / "r.db") as server:
        yield server


@pytest.fixture
def client(registry: RegistryServer) -> Iterator[SchemaRegistryClient]:
    c = SchemaRegistryClient({"url": registry.url})
    yield c
    c.close()


@pytest.fixture
def subject(request: pytest.FixtureRequest) -> str:
    """A subject no other test in the shared registry uses."""
    return f"{request.node.name}-value"


def test_avro_serializer_round_trips_a_record_through_the_registry(
    client: SchemaRegistryClient,
) -> None:
    ctx = SerializationContext("feedback", MessageField.VALUE)
    serializer = AvroSerializer(client, V1.schema_str)
    deserializer = AvroDeserializer(client)
    record = {"trace_id": "abc", "score": 5, "comment": "great"}

    data = serializer(record, ctx)

    assert data is not None
    registered = client.get_latest_version("feedback-value")
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == registered.schema_id
    assert (
        SchemaRegistryClient({"url": client.config()["url"]})
        .get_schema(registered.schema_id)
        .schema_str
        == registered.schema.schema_str
    )
    assert deserializer(data, ctx) == record


def test_registration_is_idempotent_and_ids_are_shared_across_subjects(
    client: SchemaRegistryClient, subject: str
) -> None:
    first = client.register_schema(subject, V1)
    fresh = SchemaRegistryClient({"url": client.config()["url"]})  # no client-side cache
    assert fresh.register_schema(subject, V1) == first
    assert fresh.register_schema(f"{subject}-copy", V1) == first
    assert fresh.get_versions(subject) == [1]
    assert {(v.subject, v.version) for v in fresh.get_schema_versions(first)} >= {
        (subject, 1),
        (f"{subject}-copy", 1),
    }
    looked_up = fresh.lookup_schema(subject, V1)
    assert (looked_up.schema_id, looked_up.version) == (first, 1)


@pytest.mark.parametrize(
    ("level", "edit"),
    [
        ("FORWARD", {"drop": "score"}),  # remove a field without default
        ("BACKWARD", {"fields_change": {"name": "score", "type": "string"}}),  # change type
        ("BACKWARD", {"fields_change": {"name": "channel", "type": "string"}}),  # add required
        ("FULL", {"fields_change": {"name": "channel", "type": "string"}}),
    ],
)
def test_incompatible_edits_are_refused_with_409_and_a_reason(
    client: SchemaRegistryClient, subject: str, level: str, edit: dict[str, object]
) -> None:
    client.register_schema(subject, V1)
    assert client.set_compatibility(subject, level) == {"compatibility": level}
    changed = schema(**edit)  # type: ignore[arg-type]

    assert client.test_compatibility(subject, changed, verbose=True) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, changed)

    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "otlp.feedback.Feedback." in refused.value.error_message


def test_compatible_edit_is_accepted_under_full_transitive(
    client: SchemaRegistryClient, subject: str
) -> None:
    client.register_schema(subject, V1)
    client.set_compatibility(subject, "FULL_TRANSITIVE")
    with_default = schema({"name": "channel", "type": "string", "default": "web"})
    assert client.test_compatibility_all_versions(subject, with_default) is True
    client.register_schema(subject, with_default)
    assert client.get_versions(subject) == [1, 2]


def test_soft_and_hard_deletes_follow_confluent_rules(
    client: SchemaRegistryClient, subject: str
) -> None:
    schema_id = client.register_schema(subject, V1)
    client.register_schema(subject, schema({"name": "channel", "type": "string", "default": ""}))

    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert client.get_versions(subject, deleted=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as not_soft_deleted:
        client.delete_subject(subject, permanent=True)
    assert not_soft_deleted.value.error_code == 40405

    assert client.delete_subject(subject) == [1]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    assert client.get_schema(schema_id).schema_str is not None  # still readable by id
    assert client.delete_subject(subject, permanent=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_version(subject, 1, deleted=True)
    assert gone.value.error_code == 40401


def test_config_endpoints_through_the_client(client: SchemaRegistryClient, subject: str) -> None:
    assert client.get_compatibility() == "BACKWARD"
    with pytest.raises(SchemaRegistryError) as unset:
        client.get_compatibility(subject)
    assert unset.value.error_code == 40408
    client.set_compatibility(subject, "none")
    assert client.get_compatibility(subject) == "NONE"
    assert client.get_config(subject).compatibility_level is not None
    assert client.delete_config(subject).compatibility_level is not None
    with pytest.raises(SchemaRegistryError) as invalid:
        client.set_compatibility(subject, "SIDEWAYS")
    assert invalid.value.error_code == 42203
    assert client.get_schema_types() == ["AVRO"]
    assert client.get_global_mode() == "READWRITE"


def test_non_avro_schema_is_refused_with_42201(client: SchemaRegistryClient, subject: str) -> None:
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema('{"type": "object"}', "JSON"))
    assert refused.value.error_code == 42201
    assert "AVRO" in refused.value.error_message


def test_restart_on_the_same_database_keeps_ids_and_versions(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    widened = schema({"name": "channel", "type": "string", "default": ""})
    with RegistryServer(db_path=db) as first:
        c = SchemaRegistryClient({"url": first.url})
        id_a = c.register_schema("a-value", V1)
        id_b = c.register_schema("a-value", widened)
        c.set_compatibility("a-value", "FULL")

    with RegistryServer(db_path=db) as second:
        c = SchemaRegistryClient({"url": second.url})
        assert c.get_versions("a-value") == [1, 2]
        assert c.get_version("a-value", 1).schema_id == id_a
        assert c.get_latest_version("a-value").schema_id == id_b
        assert c.get_compatibility("a-value") == "FULL"
        assert c.register_schema("a-value", V1) == id_a  # still registered: no new version
        assert c.register_schema("b-value", V1) == id_a
        new_id = c.register_schema("c-value", Schema('"string"', "AVRO"))
        assert new_id not in (id_a, id_b)


@pytest.mark.parametrize("round_", [1, 2])
def test_start_then_shutdown_leaves_nothing_listening(tmp_path: Path, round_: int) -> None:
    server = RegistryServer(db_path=tmp_path / f"r{round_}.db")
    server.start()
    assert httpx.get(server.url + "/").json() == {}
    server.shutdown()
    server.shutdown()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/")


def test_shutdown_before_start_is_safe_and_start_twice_is_refused(tmp_path: Path) -> None:
    RegistryServer(db_path=tmp_path / "never.db").shutdown()
    with RegistryServer(db_path=tmp_path / "r.db") as server, pytest.raises(RuntimeError):
        server.start()


def test_a_port_in_use_fails_start_with_os_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RegistryServer(db_path=tmp_path / "r.db", port=taken.getsockname()[1])
        with pytest.raises(OSError):
            server.start()
        with pytest.raises(RuntimeError, match="not been started"):
            _ = server.url


def test_module_entrypoint_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "otlp_feedback.registry.runner", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--db", str(tmp_path / "r.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        assert httpx.get(url + "/subjects").json() == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
