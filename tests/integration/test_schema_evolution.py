"""Schema evolution against the real broker and registry.

performance_metrics and model_response moved to v2 (two optional fields each, null default),
then to v3 (the envelope's client_id and redacted_fields); performance_metrics then to v4
(tokens_total). A producer still on v1 and the
receiver on the newest version write into the same topic; consumers pinned to v1 or v2 read
everything in it, ignoring fields their version lacks and filling missing ones with defaults.
``otlp-feedback schemas`` checks and registers against the same registry, and the registry itself
refuses an incompatible version under FULL_TRANSITIVE.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_reader
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.schemas import default_schemas_dir
from otlp_feedback.errors import SchemaError
from otlp_feedback.events import EVENT_MODELS, EventType, ModelResponse, PerformanceMetrics
from otlp_feedback.pipeline import subject_for
from otlp_feedback.registry.client import ConfluentRegistry
from otlp_feedback.testing import logs_request, make_log_record
from otlp_feedback.testing.cli import run_cli as run

pytestmark = pytest.mark.integration

SCHEMAS = load_schemas()
EVOLVED: tuple[EventType, ...] = ("performance_metrics", "model_response")
# What the receiver writes for each EVOLVED type: the newest local version, derived rather than
# pinned, so that the next version does not mean editing this file.
NEWEST: dict[EventType, int] = {t: SCHEMAS.latest(t).version for t in EVOLVED}
assert min(NEWEST.values()) >= 3
NEW_FIELDS: dict[EventType, dict[str, Any]] = {
    "performance_metrics": {"cache_read_input_tokens": 512, "reasoning_output_tokens": 64},
    "model_response": {"score_label": "pass", "evaluator": "human:ana"},
}
# What the receiver is sent: v2's attributes on top of fields v1 already had.
V2_ATTRIBUTES: dict[EventType, dict[str, Any]] = {
    "performance_metrics": {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 900,
        "gen_ai.usage.cache_read.input_tokens": 512,
        "gen_ai.usage.reasoning.output_tokens": 64,
    },
    "model_response": {
        "gen_ai.request.model": "gpt-4o",
        "feedback.quality_score": 91.0,
        "gen_ai.evaluation.score.label": "pass",
        "feedback.evaluator": "human:ana",
    },
}
T0 = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
# What the producer still on v1 writes.
V1_EVENTS = {
    "performance_metrics": PerformanceMetrics(
        event_id="performance_metrics-v1", timestamp=T0, received_at=T0, carrier="log_record",
        model="gpt-4o", input_tokens=100,
    ),
    "model_response": ModelResponse(
        event_id="model_response-v1", timestamp=T0, received_at=T0, carrier="log_record",
        model="gpt-4o", quality_score=75.0,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Written:
    """One record as it sits in Kafka."""

    topic: str
    raw: bytes
    headers: dict[str, bytes]

    @property
    def schema_id(self) -> int:
        return int.from_bytes(self.raw[1:5], "big")


@dataclass(frozen=True)
class MixedTopics:
    """Per evolved type: the record the v1 producer wrote and the one the receiver wrote."""

    v1: dict[EventType, Written]
    newest: dict[EventType, Written]  # written by the receiver under NEWEST[type]
    ids: dict[tuple[EventType, int], int]  # (type, version) -> registry id


def schema_ids(settings: Settings) -> dict[tuple[EventType, int], int]:
    registry = ConfluentRegistry(settings.registry.client_config())
    return {
        (t, s.version): registry.lookup(subject_for(settings.kafka.topic_for(t)), s.text)
        for t in EVOLVED
        for s in SCHEMAS.versions[t]
    }


def produce_with_v1(settings: Settings, ids: dict[tuple[EventType, int], int]) -> None:
    """What a producer still on v1 does: frame with v1's registry id, write v1's fields."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    failures: list[Any] = []
    for event_type, event in V1_EVENTS.items():
        serializer = AvroEventSerializer(SCHEMAS.version(event_type, 1), ids[event_type, 1])
        producer.produce(
            settings.kafka.topic_for(event_type),
            serializer(event),
            key=event.event_id.encode(),
            headers=[("event_type", event_type.encode()), ("schema_version", b"1")],
            on_delivery=lambda err, _msg: failures.append(err) if err else None,
        )
    assert producer.flush(30) == 0
    assert not failures


def send_to_receiver(app: FeedbackApp) -> None:
    """The receiver writes NEWEST[type], the newest version."""
    records = [
        make_log_record(f"feedback.{t}", {"event.id": f"{t}-v2", **V2_ATTRIBUTES[t]})
        for t in EVOLVED
    ]
    stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))
    response = stub.Export(logs_request(records, {"service.name": "svc"}), timeout=30)
    assert response.partial_success.rejected_log_records == 0, response


@pytest.fixture
def mixed(
    app: FeedbackApp, settings: Settings, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> MixedTopics:
    ids = schema_ids(settings)
    produce_with_v1(settings, ids)
    send_to_receiver(app)
    records = kafka_reader(2 * len(EVOLVED))
    assert len(records) == 2 * len(EVOLVED)
    v1: dict[EventType, Written] = {}
    newest: dict[EventType, Written] = {}
    for r in records:
        event_type = cast(EventType, r["headers"]["event_type"].decode())
        version = int(r["headers"]["schema_version"])
        assert version in (1, NEWEST[event_type]), (event_type, version)
        side = v1 if version == 1 else newest
        side[event_type] = Written(r["topic"], r["raw"], r["headers"])
    return MixedTopics(v1, newest, ids)


def read_as(
    settings: Settings, written: Written, reader_version: int, event_type: EventType
) -> dict[str, Any]:
    """Decode as a confluent-kafka consumer pinned to ``reader_version`` does."""
    deserializer = AvroDeserializer(
        SchemaRegistryClient({"url": settings.registry.url}),
        SCHEMAS.version(event_type, reader_version).text,
    )
    value = deserializer(written.raw, SerializationContext(written.topic, MessageField.VALUE))
    assert isinstance(value, dict)
    return value


def fastavro_read(written: Written, writer: int, reader: int, event_type: EventType) -> Any:
    return schemaless_reader(
        BytesIO(written.raw[5:]),
        SCHEMAS.version(event_type, writer).parsed,
        SCHEMAS.version(event_type, reader).parsed,
    )


# -- one topic, two versions -------------------------------------------------------------------


def test_receiver_writes_the_newest_and_the_v1_producer_v1_into_the_same_topic(
    mixed: MixedTopics, settings: Settings
) -> None:
    for event_type in EVOLVED:
        old, new = mixed.v1[event_type], mixed.newest[event_type]
        assert old.topic == new.topic == settings.kafka.topic_for(event_type)
        assert old.schema_id == mixed.ids[event_type, 1]
        assert new.schema_id == mixed.ids[event_type, NEWEST[event_type]] != old.schema_id
        assert new.headers["schema_version"] == str(NEWEST[event_type]).encode()


def test_consumer_following_the_writer_schema_decodes_both_versions(
    mixed: MixedTopics, settings: Settings
) -> None:
    # No reader schema: each record decodes with the schema its id names (the conftest reader).
    for event_type in EVOLVED:
        old = AvroDeserializer(SchemaRegistryClient({"url": settings.registry.url}))(
            mixed.v1[event_type].raw,
            SerializationContext(mixed.v1[event_type].topic, MessageField.VALUE),
        )
        assert old["event_id"] == f"{event_type}-v1"
        assert not set(NEW_FIELDS[event_type]) & set(old)
        new = read_as(settings, mixed.newest[event_type], NEWEST[event_type], event_type)
        assert {k: new[k] for k in NEW_FIELDS[event_type]} == NEW_FIELDS[event_type]
        assert (new["client_id"], new["redacted_fields"]) == (None, [])


# -- a consumer pinned to v1 -------------------------------------------------------------------


def test_consumer_pinned_to_v1_reads_the_newest_data_without_the_new_fields(
    mixed: MixedTopics, settings: Settings
) -> None:
    for event_type in EVOLVED:
        v1_fields = [f["name"] for f in SCHEMAS.version(event_type, 1).definition["fields"]]
        written = mixed.newest[event_type]

        value = read_as(settings, written, 1, event_type)
        assert list(value) == v1_fields
        assert value["event_id"] == f"{event_type}-v2"
        assert value["model"] == "gpt-4o"

        newest = NEWEST[event_type]
        assert fastavro_read(written, writer=newest, reader=1, event_type=event_type) == value


def test_consumer_pinned_to_v1_still_reads_v1_data(mixed: MixedTopics, settings: Settings) -> None:
    for event_type in EVOLVED:
        value = read_as(settings, mixed.v1[event_type], 1, event_type)
        assert value["event_id"] == f"{event_type}-v1"


# -- a consumer on v2 --------------------------------------------------------------------------


def test_consumer_on_v2_reads_v1_data_with_the_new_fields_defaulted(
    mixed: MixedTopics, settings: Settings
) -> None:
    for event_type in EVOLVED:
        written = mixed.v1[event_type]

        value = read_as(settings, written, 2, event_type)
        assert {k: value[k] for k in NEW_FIELDS[event_type]} == dict.fromkeys(
            NEW_FIELDS[event_type]
        )
        # The newest model takes it as is: v1 data is a valid v2 event.
        assert EVENT_MODELS[event_type](**value) == V1_EVENTS[event_type]

        assert fastavro_read(written, writer=1, reader=2, event_type=event_type) == value


def test_consumer_on_v2_reads_the_newest_data_in_full_but_the_envelope_additions(
    mixed: MixedTopics, settings: Settings
) -> None:
    for event_type in EVOLVED:
        value = read_as(settings, mixed.newest[event_type], 2, event_type)
        assert not {"client_id", "redacted_fields"} & set(value)
        event = EVENT_MODELS[event_type](**value)
        assert {k: getattr(event, k) for k in NEW_FIELDS[event_type]} == NEW_FIELDS[event_type]
        assert not {"gen_ai.evaluation.score.label", "feedback.evaluator"} & set(event.attributes)


# -- the registry and `otlp-feedback schemas` ------------------------------------------------


@pytest.fixture
def cli_config(settings: Settings, tmp_path: Path) -> Path:
    """A config file naming the test's registry and topics, as an operator would write it."""
    path = tmp_path / "config.yaml"
    topics = {t: settings.kafka.topic_for(t) for t in EVENT_MODELS}
    path.write_text(
        json.dumps({"registry": {"url": settings.registry.url}, "kafka": {"topics": topics}})
    )
    return path


def test_receiver_registered_the_history_that_schemas_check_expects(
    app: FeedbackApp, cli_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "schemas", "check", "--config", cli_config)
    assert code == 0, out
    assert "  v2   ok: registered as version 2 (id " in out

    code, out = run(capsys, "schemas", "list", "--config", cli_config)
    assert code == 0, out
    assert [line.rsplit("  ", 1)[-1] for line in out.splitlines()[1:]] == ["in sync"] * 5


def test_incompatible_version_fails_schemas_check_and_the_registry_refuses_it(
    app: FeedbackApp,
    settings: Settings,
    cli_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    schemas_dir = Path(shutil.copytree(default_schemas_dir(), tmp_path / "avro"))
    newest = NEWEST["performance_metrics"]
    folder = schemas_dir / "performance_metrics"
    bad = json.loads((folder / f"v{newest}.avsc").read_text())
    bad["fields"] = [f for f in bad["fields"] if f["name"] != "model"]
    (folder / f"v{newest + 1}.avsc").write_text(json.dumps(bad))

    args = ["--config", cli_config, "--schemas-dir", schemas_dir]
    code, out = run(capsys, "schemas", "check", *args)
    assert code == 1
    older = ", ".join(f"v{n}" for n in range(1, newest + 1))
    assert (
        f"field `model` removed without default: consumers on {older} cannot read v{newest + 1}"
        in out
    )
    code, out = run(capsys, "schemas", "register", *args)
    assert code == 1
    assert out.rstrip().endswith("nothing registered")

    # Past the tools, the registry enforces the subject's FULL_TRANSITIVE mode itself.
    subject = subject_for(settings.kafka.topic_for("performance_metrics"))
    registry = ConfluentRegistry(settings.registry.client_config())
    with pytest.raises(SchemaError, match="model"):
        registry.register(subject, json.dumps(bad))
    assert len(registry.subject_versions(subject)) == newest
    assert registry.subject_compatibility(subject) == "FULL_TRANSITIVE"
