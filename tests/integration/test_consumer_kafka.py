"""The consumer library and ``tail`` against the real broker and registry: typed events back as
sent, a pinned older reader, commit-after-processing across a restart, unreadable records, and
``tail``'s filters and table."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from confluent_kafka import Producer
from harness import tail_config
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.app import FeedbackApp
from otlp_feedback.cli import main
from otlp_feedback.config import Settings
from otlp_feedback.consumer import ConsumedEvent, FeedbackConsumer
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.outbound import EventEncoder
from otlp_feedback.errors import CorruptFrame, UnknownSchemaId
from otlp_feedback.events import EVENT_TYPES, EventType, FeedbackEvent, PerformanceMetrics
from otlp_feedback.pipeline import subject_for
from otlp_feedback.registry.client import ConfluentRegistry
from otlp_feedback.testing import logs_request, make_log_record
from otlp_feedback.testing.events import sample_events

pytestmark = pytest.mark.integration

# Longer than a consumer group join on Tansu; reads stop as soon as they have what they expect.
IDLE_S = 20.0
UF: EventType = "user_feedback"


@pytest.fixture
def produce(app: FeedbackApp, settings: Settings) -> Iterator[Callable[..., None]]:
    """Write typed events as the pipeline does (newest schema, ids from the registry the app
    registered them in), or raw values, straight to the topics."""
    registry = ConfluentRegistry(settings.registry.client_config())
    schemas = load_schemas()
    topics = {t: settings.kafka.topic_for(t) for t in EVENT_TYPES}
    serializers = {
        t: AvroEventSerializer(
            schemas.latest(t), registry.lookup(subject_for(topics[t]), schemas.latest(t).text)
        )
        for t in EVENT_TYPES
    }
    encoder = EventEncoder(serializers, topics)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})

    def send(*items: FeedbackEvent | tuple[str, bytes, bytes]) -> None:
        for item in items:
            if isinstance(item, FeedbackEvent):
                record = encoder.encode(item)
                headers: list[tuple[str, str | bytes | None]] = list(record.headers)
                producer.produce(record.topic, record.value, key=record.key, headers=headers)
            else:
                topic, key, value = item
                producer.produce(topic, value, key=key)
        assert producer.flush(30) == 0

    yield send


def consumer(settings: Settings, **options: Any) -> FeedbackConsumer:
    options.setdefault("group_id", f"g-{uuid.uuid4().hex[:8]}")
    return FeedbackConsumer(settings, from_beginning=True, **options)


def take(source: FeedbackConsumer, count: int) -> list[ConsumedEvent]:
    """The first ``count`` events (fewer if the topics go quiet for ``IDLE_S``)."""
    got: list[ConsumedEvent] = []
    for item in source.records(idle_timeout=IDLE_S):
        got.append(item)
        if len(got) == count:
            break
    return got


def same_session(n: int) -> FeedbackEvent:
    """User feedback number ``n`` of one session: one key, so one partition, in order."""
    return sample_events(n)[UF].model_copy(update={"session_id": "sess-ordered"})


def test_typed_events_come_back_equal_to_what_was_sent(
    settings: Settings, produce: Callable[..., None]
) -> None:
    sent = sample_events()
    produce(*sent.values())

    with consumer(settings) as reader:
        got = take(reader, len(sent))

    assert {item.event.event_type: item.event for item in got} == sent
    for item in got:
        assert item.topic == settings.kafka.topic_for(item.event.event_type)
        assert dict(item.headers)["event_id"] == item.event.event_id.encode()


def test_a_reader_pinned_to_v1_reads_records_written_with_the_newest_version(
    settings: Settings, produce: Callable[..., None]
) -> None:
    sent = sample_events()["performance_metrics"]
    assert isinstance(sent, PerformanceMetrics) and sent.cache_read_input_tokens == 64
    produce(sent)

    with consumer(
        settings, event_types=["performance_metrics"], reader_versions={"performance_metrics": 1}
    ) as pinned:
        (item,) = take(pinned, 1)

    newest = load_schemas().latest("performance_metrics").version
    assert newest > 1
    assert dict(item.headers)["schema_version"] == str(newest).encode()  # written with vN
    # v1 has neither the v2 token counts nor the v3 envelope fields: the reader's defaults.
    assert sent.client_id and sent.redacted_fields
    assert item.event == sent.model_copy(
        update={
            "cache_read_input_tokens": None,
            "reasoning_output_tokens": None,
            "client_id": None,
            "redacted_fields": [],
            "tokens_total": None,  # nor v4's total, which reading back does not derive
        }
    )


def test_a_group_resumes_at_the_first_event_its_consumer_did_not_process(
    settings: Settings, produce: Callable[..., None]
) -> None:
    sent = [same_session(n) for n in range(1, 6)]
    produce(*sent)
    group = f"g-{uuid.uuid4().hex[:8]}"

    processed: list[str] = []
    with consumer(settings, group_id=group, event_types=[UF]) as first:
        for item in first.records(idle_timeout=IDLE_S):
            if len(processed) == 2:
                break  # the 3rd event was consumed, but the caller did not process it
            processed.append(item.event.event_id)

    with consumer(settings, group_id=group, event_types=[UF]) as second:
        resumed = [item.event.event_id for item in take(second, 3)]

    assert processed == [e.event_id for e in sent[:2]]
    assert resumed == [e.event_id for e in sent[2:]]


def test_a_frame_naming_an_unknown_schema_id_raises_or_is_skipped(
    settings: Settings, produce: Callable[..., None]
) -> None:
    topic = settings.kafka.topic_for(UF)
    bogus = b"\x00" + (987_654).to_bytes(4, "big") + b"\x02\x00"
    good = same_session(1)
    produce((topic, b"sess-ordered", bogus), good)

    with consumer(settings, event_types=[UF]) as strict, pytest.raises(UnknownSchemaId) as err:
        take(strict, 1)
    assert "schema id 987654 is unknown" in str(err.value)
    assert (err.value.topic, err.value.offset) == (topic, 0)

    with consumer(settings, event_types=[UF], on_error="skip") as lenient:
        (item,) = take(lenient, 1)
    assert item.event == good and lenient.skipped == 1


def truncated_frame(settings: Settings) -> bytes:
    """A real user feedback frame with its last 12 bytes cut off."""
    topic = settings.kafka.topic_for(UF)
    schema = load_schemas().latest(UF)
    registry = ConfluentRegistry(settings.registry.client_config())
    schema_id = registry.lookup(subject_for(topic), schema.text)
    return AvroEventSerializer(schema, schema_id)(same_session(1))[:-12]


@pytest.mark.parametrize("kind", ["json-not-avro", "shorter-than-the-header", "truncated-body"])
def test_a_corrupt_frame_raises_corrupt_frame(
    settings: Settings, produce: Callable[..., None], kind: str
) -> None:
    value = {
        "json-not-avro": lambda: b'{"event_id": "e-1"}',
        "shorter-than-the-header": lambda: b"\x00\x00",
        "truncated-body": lambda: truncated_frame(settings),
    }[kind]()
    produce((settings.kafka.topic_for(UF), b"k", value))

    with consumer(settings, event_types=[UF]) as strict, pytest.raises(CorruptFrame):
        take(strict, 1)


# --- tail --------------------------------------------------------------------------------------


def export(app: FeedbackApp, service: str, *records: Any) -> None:
    stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))
    response = stub.Export(logs_request(list(records), {"service.name": service}), timeout=30)
    assert not response.partial_success.rejected_log_records


def feedback(session: str, minutes_ago: float, **attributes: Any) -> Any:
    when = time.time_ns() - int(minutes_ago * 60e9)
    return make_log_record(
        "feedback.user_feedback",
        {"session.id": session, "feedback.rating": 4, **attributes},
        time_unix_nano=when,
    )


def test_tail_prints_only_events_of_the_type_service_and_time_window_asked_for(
    app: FeedbackApp, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export(
        app,
        "web",
        feedback("s-recent", minutes_ago=1),
        feedback("s-in-window", minutes_ago=30),
        feedback("s-old", minutes_ago=180),
        make_log_record(
            "feedback.performance_metrics",
            {"gen_ai.request.model": "gpt-4o"},
            time_unix_nano=time.time_ns() - int(30 * 60e9),
        ),
    )
    export(app, "batch", feedback("s-other-service", minutes_ago=30))

    code = main(
        [
            "tail",
            "--config",
            tail_config(settings, tmp_path),
            "--type",
            "user_feedback",
            "--service",
            "web",
            "--since",
            "1h",
            "--until",
            "10m",
            "--idle-timeout",
            "8",
        ]
    )

    assert code == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["event_type"], e["service"], e["session_id"]) for e in printed] == [
        ("user_feedback", "web", "s-in-window")
    ]


def test_tail_table_output_aligns_time_type_service_and_key_fields(
    app: FeedbackApp, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export(
        app,
        "checkout-assistant",
        feedback("s-1", minutes_ago=2, **{"feedback.thumbs": "down"}),
        feedback("s-2", minutes_ago=1, **{"feedback.comment": "Wrong price"}),
    )
    config = tail_config(settings, tmp_path)

    code = main(["tail", "--config", config, "--from-beginning", "--output", "table", "--max", "2"])

    assert code == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["TIME", "(UTC)", "TYPE", "SERVICE", "DETAILS"]
    assert len(rows) == 2
    rows.sort()
    for row in rows:
        assert row.index("user_feedback") == header.index("TYPE")
        assert row.index("checkout-assist…") == header.index("SERVICE")  # cut to 16
        assert row.index("session_id=") == header.index("DETAILS")
    assert rows[0].endswith("session_id=s-1 rating=4 thumbs=down")
    assert rows[1].endswith('session_id=s-2 rating=4 comment="Wrong price"')


def test_tail_idle_timeout_counts_from_the_group_join_not_from_start(
    app: FeedbackApp, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The README's `tail --from-beginning --idle-timeout 3`: a group join on Tansu takes
    # about as long, and with the clock started before it tail printed nothing.
    export(app, "web", feedback("s-a", minutes_ago=1), feedback("s-b", minutes_ago=1))
    config = tail_config(settings, tmp_path)

    code = main(["tail", "--config", config, "--from-beginning", "--idle-timeout", "3"])

    assert code == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(e["session_id"] for e in printed) == ["s-a", "s-b"]


def test_dlq_tail_prints_why_a_record_was_refused_and_the_record(
    app: FeedbackApp, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub = LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))
    bad = make_log_record("feedback.user_feedback", {"session.id": "s-bad", "feedback.rating": 9})
    response = stub.Export(logs_request([bad], {"service.name": "web"}), timeout=30)
    assert response.partial_success.rejected_log_records == 1
    config = tail_config(settings, tmp_path)

    code = main(["dlq", "tail", "--config", config, "--from-beginning", "--max", "1"])

    assert code == 0
    (letter,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert list(letter)[:2] == ["reason", "event_type"]
    assert "feedback.rating" in letter["reason"]
    assert letter["event_type"] == "user_feedback"
    assert letter["attributes"]["session.id"] == "s-bad"

    code = main(["dlq", "tail", "--config", config, "--from-beginning", "--output", "table",
                 "--max", "1"])  # fmt: skip
    assert code == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["TIME", "(UTC)", "TYPE", "SERVICE", "REASON"]
    assert "user_feedback" in row and "web" in row and "feedback.rating" in row
