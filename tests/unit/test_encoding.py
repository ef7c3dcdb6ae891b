"""Encoding: typed events -> Confluent-framed Avro bytes, and the Kafka record around them."""

from __future__ import annotations

import os
import re
import socket
import struct
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_builders import event_of

from otlp_feedback.encoding import AvroEventSerializer, SerializationContext, load_schemas
from otlp_feedback.encoding.outbound import (
    RECEIVER_HEADERS,
    EventEncoder,
    add_request_headers,
    instance_id,
    package_version,
)
from otlp_feedback.errors import EncodingError
from otlp_feedback.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    READ_BACK,
    EventType,
    ExperimentResult,
    FeedbackEvent,
    ModelResponse,
    PerformanceMetrics,
    SystemHealth,
    UserFeedback,
)
from otlp_feedback.mapping import map_logs_request, map_traces_request

SCHEMAS = load_schemas()
TS = datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
RECEIVED = datetime(2025, 1, 1, 0, 1, 0, tzinfo=UTC)
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
ENVELOPE: dict[str, Any] = {"timestamp": TS, "received_at": RECEIVED, "service": "support-bot"}

# One fixed event per type; their bytes are pinned in GOLDEN_HEX below.
GOLDEN_EVENTS: dict[EventType, FeedbackEvent] = {
    "user_feedback": UserFeedback(
        **ENVELOPE,
        event_id="evt-uf-1",
        carrier="log_record",
        environment="staging",
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        session_id="sess-1",
        user_id="user-1",
        attributes={"app.ui": "web"},
        client_id="web-frontend",
        redacted_fields=["comment"],
        rating=4.5,
        thumbs="up",
        comment="Clear.",
        tags=["helpful"],
    ),
    "performance_metrics": PerformanceMetrics(
        **ENVELOPE,
        event_id="evt-pm-1",
        carrier="genai_span",
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        request_id="chatcmpl-1",
        model="gpt-4o",
        provider="openai",
        operation="chat",
        latency_ms=812.5,
        input_tokens=120,
        output_tokens=48,
        cost_usd=0.0031,
        success=False,
        error_type="timeout",
        cache_hit=True,
        custom_metrics={"ttft_ms": 95.0},
        cache_read_input_tokens=96,
        reasoning_output_tokens=7,
        tokens_total=168,
    ),
    "model_response": ModelResponse(
        **ENVELOPE,
        event_id="evt-mr-1",
        carrier="span_event",
        trace_id=TRACE_ID,
        model="gpt-4o",
        quality_score=87.5,
        accuracy=0.9,
        custom_scores={"tone": 0.7},
        evaluation_name="accuracy",
        finish_reasons=["stop", "length"],
        temperature=0.2,
        top_k=40,
        score_label="pass",
        evaluator="llm-judge",
    ),
    "system_health": SystemHealth(
        **{**ENVELOPE, "service": "ranker"},
        event_id="evt-sh-1",
        carrier="log_record",
        status="degraded",
        cpu_percent=71.5,
        active_requests=17,
    ),
    "experiment_result": ExperimentResult(
        **ENVELOPE,
        event_id="evt-er-1",
        carrier="log_record",
        experiment_id="exp-42",
        experiment_type="ab_test",
        variant_id="B",
        reward=1.0,
        latency_ms=640.0,
    ),
}

# Written once with fastavro (schema id 7) under the schema version in GOLDEN_VERSION, and pinned:
# a change here is a wire-format change that every consumer will see, so it must be deliberate
# (and come with a new schema version).
GOLDEN_VERSION: dict[EventType, int] = {
    "user_feedback": 2,
    "performance_metrics": 4,
    "model_response": 3,
    "system_health": 2,
    "experiment_result": 2,
}
GOLDEN_HEX: dict[EventType, str] = {
    "user_feedback": (
        "0000000007106576742d75662d318089f2a0b7a69506809cffd9b7a69506146c6f675f7265636f72"
        "640216737570706f72742d626f74020e73746167696e670240356238656666663739383033383130"
        "3364323639623633333831336663363063022065656531396237656333633162313734000c736573"
        "732d31020c757365722d31020c6170702e7569067765620002187765622d66726f6e74656e64020e"
        "636f6d6d656e740002000000000000124002047570020c436c6561722e020e68656c7066756c00"
    ),
    "performance_metrics": (
        "0000000007106576742d706d2d318089f2a0b7a69506809cffd9b7a695061467656e61695f737061"
        "6e0216737570706f72742d626f740002403562386566666637393830333831303364323639623633"
        "333831336663363063022065656531396237656333633162313734021463686174636d706c2d3100"
        "000000000c6770742d346f00020c6f70656e616902086368617402000000000064894002f0010260"
        "021361c3d32b65693f00020e74696d656f75740201020e747466745f6d730000000000c057400002"
        "c001020e02d002"
    ),
    "model_response": (
        "0000000007106576742d6d722d318089f2a0b7a69506809cffd9b7a69506147370616e5f6576656e"
        "740216737570706f72742d626f740002403562386566666637393830333831303364323639623633"
        "33383133666336306300000000000000020c6770742d346f020000000000e0554002cdcccccccccc"
        "ec3f000000000208746f6e65666666666666e63f0002106163637572616379000000040873746f70"
        "0c6c656e67746800029a9999999999c93f0000025002087061737302126c6c6d2d6a75646765"
    ),
    "system_health": (
        "0000000007106576742d73682d318089f2a0b7a69506809cffd9b7a69506146c6f675f7265636f72"
        "640c72616e6b65720000000000000000001064656772616465640000020000000000e05140000000"
        "0222"
    ),
    "experiment_result": (
        "0000000007106576742d65722d318089f2a0b7a69506809cffd9b7a69506146c6f675f7265636f72"
        "640216737570706f72742d626f740000000000000000000c6578702d34320e61625f746573740242"
        "02000000000000f03f000002000000000000844000"
    ),
}

# The same events as pinned when the version before the envelope's client_id and redacted_fields
# (the version in BEFORE_ENVELOPE_VERSION) was the newest. Data written then is still in Kafka.
BEFORE_ENVELOPE_VERSION: dict[EventType, int] = {
    "user_feedback": 1,
    "performance_metrics": 2,
    "model_response": 2,
    "system_health": 1,
    "experiment_result": 1,
}
PREVIOUS_GOLDEN_HEX: dict[EventType, str] = {
    "user_feedback": (
        "0000000007106576742d75662d318089f2a0b7a69506809cffd9b7a69506146c6f675f7265636f7264"
        "0216737570706f72742d626f74020e73746167696e67024035623865666666373938303338313033"
        "6432363962363333383133666336306302206565653139623765633363316231373400"
        "0c736573732d31020c757365722d31020c6170702e75690677656200020000000000001240020475"
        "70020c436c6561722e020e68656c7066756c00"
    ),
    "performance_metrics": (
        "0000000007106576742d706d2d318089f2a0b7a69506809cffd9b7a695061467656e61695f737061"
        "6e0216737570706f72742d626f740002403562386566666637393830333831303364323639623633"
        "333831336663363063022065656531396237656333633162313734021463686174636d706c2d3100"
        "00000c6770742d346f00020c6f70656e616902086368617402000000000064894002f00102600213"
        "61c3d32b65693f00020e74696d656f75740201020e747466745f6d730000000000c057400002c001"
        "020e"
    ),
    "model_response": (
        "0000000007106576742d6d722d318089f2a0b7a69506809cffd9b7a69506147370616e5f6576656e"
        "740216737570706f72742d626f740002403562386566666637393830333831303364323639623633"
        "3338313366633630630000000000020c6770742d346f020000000000e0554002cdccccccccccec3f"
        "000000000208746f6e65666666666666e63f0002106163637572616379000000040873746f700c6c"
        "656e67746800029a9999999999c93f0000025002087061737302126c6c6d2d6a75646765"
    ),
    "system_health": (
        "0000000007106576742d73682d318089f2a0b7a69506809cffd9b7a69506146c6f675f7265636f72"
        "640c72616e6b65720000000000000010646567726164656400000200000000"
        "00e051400000000222"
    ),
    "experiment_result": (
        "0000000007106576742d65722d318089f2a0b7a69506809cffd9b7a69506146c6f675f7265636f72"
        "640216737570706f72742d626f74000000000000000c6578702d34320e61625f7465737402420200"
        "0000000000f03f000002000000000000844000"
    ),
}

# performance_metrics as pinned when v3 was the newest version (v4's tokens_total did not exist
# yet): the same bytes without the trailing total.
V3_GOLDEN_HEX: dict[EventType, str] = {
    "performance_metrics": (
        "0000000007106576742d706d2d318089f2a0b7a69506809cffd9b7a695061467656e61695f737061"
        "6e0216737570706f72742d626f740002403562386566666637393830333831303364323639623633"
        "333831336663363063022065656531396237656333633162313734021463686174636d706c2d3100"
        "000000000c6770742d346f00020c6f70656e616902086368617402000000000064894002f0010260"
        "021361c3d32b65693f00020e74696d656f75740201020e747466745f6d730000000000c057400002"
        "c001020e"
    ),
}

# The same events as pinned when v1 was the newest version (v2's fields did not exist yet).
# Data written then is still in Kafka: the newest schema must keep reading it.
V1_GOLDEN_HEX: dict[EventType, str] = {
    "performance_metrics": (
        "0000000007106576742d706d2d318089f2a0b7a69506809cffd9b7a695061467656e61695f737061"
        "6e0216737570706f72742d626f7400024035623865666666373938303338313033643236396236"
        "3333383133666336306302206565653139623765633363316231373402146368617463"
        "6d706c2d310000000c6770742d346f00020c6f70656e6169020863686174020000000000648940"
        "02f0010260021361c3d32b65693f00020e74696d656f75740201020e747466745f6d7300000000"
        "00c0574000"
    ),
    "model_response": (
        "0000000007106576742d6d722d318089f2a0b7a69506809cffd9b7a69506147370616e5f657665"
        "6e740216737570706f72742d626f7400024035623865666666373938303338313033643236396236"
        "33333831336663363063000000000002"
        "0c6770742d346f020000000000e0554002cdccccccccccec3f000000000208746f6e6566666666"
        "6666e63f0002106163637572616379000000040873746f700c6c656e67746800029a9999999999"
        "c93f00000250"
    ),
}
V2_FIELDS: dict[EventType, tuple[str, ...]] = {
    "performance_metrics": ("cache_read_input_tokens", "reasoning_output_tokens"),
    "model_response": ("score_label", "evaluator"),
}


def serializer(event_type: EventType, schema_id: int = 7) -> AvroEventSerializer:
    return AvroEventSerializer(SCHEMAS.latest(event_type), schema_id)


def encoder() -> EventEncoder:
    serializers = {t: serializer(t, schema_id=i) for i, t in enumerate(EVENT_TYPES, start=1)}
    return EventEncoder(serializers, {t: f"feedback.{t}" for t in EVENT_TYPES})


def decode(event_type: EventType, framed: bytes) -> FeedbackEvent:
    """What a consumer does: skip the 5-byte frame, read the body, build the model."""
    record = schemaless_reader(BytesIO(framed[5:]), SCHEMAS.latest(event_type).parsed, None)
    assert isinstance(record, dict)
    return EVENT_MODELS[event_type](**record)


def test_golden_events_cover_every_event_type() -> None:
    assert set(GOLDEN_EVENTS) == set(EVENT_TYPES) == set(GOLDEN_HEX) == set(GOLDEN_VERSION)
    assert set(PREVIOUS_GOLDEN_HEX) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_golden_bytes_are_pinned_for_the_newest_schema_version(event_type: EventType) -> None:
    # A new schema version changes what producers write: re-pin deliberately when adding one.
    assert SCHEMAS.latest(event_type).version == GOLDEN_VERSION[event_type]


# --- framing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("schema_id", [0, 1, 7, 0x01020304, 2**31 - 1])
def test_value_starts_with_magic_byte_zero_and_big_endian_schema_id(schema_id: int) -> None:
    framed = serializer("user_feedback", schema_id)(GOLDEN_EVENTS["user_feedback"])
    assert framed[0] == 0
    assert framed[1:5] == schema_id.to_bytes(4, "big")
    assert struct.unpack(">bI", framed[:5]) == (0, schema_id)


def test_serializer_follows_the_confluent_callable_convention() -> None:
    event = GOLDEN_EVENTS["user_feedback"]
    ctx = SerializationContext("feedback.user_feedback")
    assert serializer("user_feedback")(event, ctx) == serializer("user_feedback")(event)


# --- golden bytes -----------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_golden_bytes_are_stable(event_type: EventType) -> None:
    assert serializer(event_type)(GOLDEN_EVENTS[event_type]).hex() == GOLDEN_HEX[event_type]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_golden_bytes_decode_to_the_golden_event(event_type: EventType) -> None:
    assert decode(event_type, bytes.fromhex(GOLDEN_HEX[event_type])) == GOLDEN_EVENTS[event_type]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_previous_schema_version_still_writes_its_golden_bytes(event_type: EventType) -> None:
    # client_id and redacted_fields (and later fields) are simply not in it: a producer pinned to
    # it is unchanged.
    previous = AvroEventSerializer(
        SCHEMAS.version(event_type, BEFORE_ENVELOPE_VERSION[event_type]), 7
    )
    assert previous(GOLDEN_EVENTS[event_type]).hex() == PREVIOUS_GOLDEN_HEX[event_type]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_previous_golden_bytes_decode_with_the_newest_schema_to_envelope_defaults(
    event_type: EventType,
) -> None:
    writer = SCHEMAS.version(event_type, BEFORE_ENVELOPE_VERSION[event_type]).parsed
    reader = SCHEMAS.latest(event_type).parsed
    body = BytesIO(bytes.fromhex(PREVIOUS_GOLDEN_HEX[event_type])[5:])
    record = schemaless_reader(body, writer, reader)
    assert isinstance(record, dict)
    assert record["client_id"] is None
    assert record["redacted_fields"] == []
    expected = with_(event_type, client_id=None, redacted_fields=[])
    assert EVENT_MODELS[event_type](**record) == expected


def test_v3_schema_still_writes_the_v3_golden_bytes() -> None:
    v3 = AvroEventSerializer(SCHEMAS.version("performance_metrics", 3), 7)
    assert v3(GOLDEN_EVENTS["performance_metrics"]).hex() == V3_GOLDEN_HEX["performance_metrics"]


def test_v3_golden_bytes_read_back_with_the_newest_schema_without_a_derived_total() -> None:
    # What a consumer does (consumer/decoder.py): an event written before tokens_total existed
    # reads back as written, with no total, though its input and output tokens are both set.
    writer = SCHEMAS.version("performance_metrics", 3).parsed
    body = BytesIO(bytes.fromhex(V3_GOLDEN_HEX["performance_metrics"])[5:])
    record = schemaless_reader(body, writer, SCHEMAS.latest("performance_metrics").parsed)
    assert isinstance(record, dict) and record["tokens_total"] is None
    event = PerformanceMetrics.model_validate(record, context=READ_BACK)
    assert event == with_("performance_metrics", tokens_total=None)


@pytest.mark.parametrize("event_type", sorted(V1_GOLDEN_HEX))
def test_v1_schema_still_writes_the_v1_golden_bytes(event_type: EventType) -> None:
    # The v2 fields are simply not in v1: a producer pinned to v1 writes what it always wrote.
    v1 = AvroEventSerializer(SCHEMAS.version(event_type, 1), 7)
    assert v1(GOLDEN_EVENTS[event_type]).hex() == V1_GOLDEN_HEX[event_type]


@pytest.mark.parametrize("event_type", sorted(V1_GOLDEN_HEX))
def test_v1_golden_bytes_still_decode_with_the_newest_schema(event_type: EventType) -> None:
    writer = SCHEMAS.version(event_type, 1).parsed
    reader = SCHEMAS.latest(event_type).parsed
    body = BytesIO(bytes.fromhex(V1_GOLDEN_HEX[event_type])[5:])
    record = schemaless_reader(body, writer, reader)
    assert isinstance(record, dict)
    without_v2: dict[str, Any] = {name: None for name in V2_FIELDS[event_type]}
    without_v2.update(client_id=None, redacted_fields=[])  # not in v1 either
    assert EVENT_MODELS[event_type](**record) == with_(event_type, **without_v2)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_round_trip_through_avro_gives_back_an_equal_event(event_type: EventType) -> None:
    event = GOLDEN_EVENTS[event_type]
    decoded = decode(event_type, serializer(event_type)(event))
    assert decoded == event
    assert decoded.timestamp == TS  # microseconds survive timestamp-micros


def test_every_fixture_event_round_trips(
    logs_fixture: ExportLogsServiceRequest, traces_fixture: ExportTraceServiceRequest
) -> None:
    raws = [*map_logs_request(logs_fixture).feedback, *map_traces_request(traces_fixture).feedback]
    events = [
        event_of(raw)
        for raw in raws
        if not raw.source_attributes["test.case"].startswith("invalid")
    ]
    assert {event.event_type for event in events} == set(EVENT_TYPES)
    for event in events:
        assert decode(event.event_type, serializer(event.event_type)(event)) == event


def test_minimal_event_round_trips_with_defaults() -> None:
    event = SystemHealth(
        event_id="e", timestamp=TS, received_at=RECEIVED, carrier="log_record",
        service="s", status="healthy",
    )  # fmt: skip
    decoded = decode("system_health", serializer("system_health")(event))
    assert decoded == event
    assert decoded.attributes == {}


def test_event_that_does_not_fit_the_schema_raises_encoding_error_naming_it() -> None:
    # model_construct skips validation, as a bug upstream would.
    broken = UserFeedback.model_construct(
        **GOLDEN_EVENTS["user_feedback"].__dict__ | {"session_id": None}
    )
    with pytest.raises(EncodingError, match="user_feedback evt-uf-1 does not fit schema v2"):
        serializer("user_feedback")(broken)


# --- the Kafka record -------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_record_goes_to_the_event_types_topic_with_the_framed_value(event_type: EventType) -> None:
    event = GOLDEN_EVENTS[event_type]
    record = encoder().encode(event)
    assert record.topic == f"feedback.{event_type}"
    assert record.event_type == event_type
    assert record.event_id == event.event_id
    assert record.value[5:] == bytes.fromhex(GOLDEN_HEX[event_type])[5:]
    assert record.value[1:5] == (EVENT_TYPES.index(event_type) + 1).to_bytes(4, "big")


def test_headers_name_type_id_schema_version_and_trace() -> None:
    record = encoder().encode(GOLDEN_EVENTS["user_feedback"])
    assert record.headers == [
        ("event_type", b"user_feedback"),
        ("event_id", b"evt-uf-1"),
        ("schema_version", b"2"),
        ("trace_id", TRACE_ID.encode()),
    ]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_schema_version_header_is_the_newest_local_version(event_type: EventType) -> None:
    headers = dict(encoder().encode(GOLDEN_EVENTS[event_type]).headers)
    assert headers["schema_version"] == str(GOLDEN_VERSION[event_type]).encode()


def test_request_headers_then_the_receivers_lineage_end_every_record() -> None:
    record = encoder().encode(GOLDEN_EVENTS["user_feedback"])
    add_request_headers(record, ["comment"], "web")
    assert [name for name, _ in record.headers] == [
        "event_type", "event_id", "schema_version", "trace_id", "redacted", "client_id",
        "receiver_id", "receiver_version",
    ]  # fmt: skip
    assert tuple(record.headers[-2:]) == RECEIVER_HEADERS


def test_the_lineage_names_this_process_and_the_installed_version() -> None:
    (_, receiver_id), (_, receiver_version) = RECEIVER_HEADERS
    host = re.escape(socket.gethostname()[:64])
    assert re.fullmatch(rf"{host}-{os.getpid()}-[0-9a-f]{{8}}", receiver_id.decode())
    assert receiver_version == package_version().encode()
    # The random part tells apart two runs with the same host name and pid (pid 1 in containers).
    assert instance_id() != instance_id()


def test_trace_id_header_only_when_the_event_has_a_trace() -> None:
    record = encoder().encode(GOLDEN_EVENTS["system_health"])
    assert [name for name, _ in record.headers] == ["event_type", "event_id", "schema_version"]


def with_(event_type: EventType, **changes: Any) -> FeedbackEvent:
    return GOLDEN_EVENTS[event_type].model_copy(update=changes)


@pytest.mark.parametrize(
    ("event", "key"),
    [
        pytest.param(GOLDEN_EVENTS["user_feedback"], b"sess-1", id="user-feedback-by-session"),
        pytest.param(
            GOLDEN_EVENTS["performance_metrics"], b"chatcmpl-1", id="perf-by-request-id"
        ),
        pytest.param(
            with_("performance_metrics", request_id=None), TRACE_ID.encode(),
            id="perf-by-trace-id-without-request-id",
        ),
        pytest.param(
            with_("performance_metrics", request_id=None, trace_id=None), None,
            id="perf-unkeyed-without-either",
        ),
        pytest.param(
            with_("model_response", request_id="req-9"), b"req-9", id="model-response-by-request-id"
        ),
        pytest.param(
            GOLDEN_EVENTS["model_response"], TRACE_ID.encode(),
            id="model-response-by-trace-id-without-request-id",
        ),
        pytest.param(GOLDEN_EVENTS["system_health"], b"ranker", id="health-by-service"),
        pytest.param(GOLDEN_EVENTS["experiment_result"], b"exp-42", id="experiment-by-id"),
        pytest.param(
            with_("experiment_result", request_id="req-1", session_id="s"), b"exp-42",
            id="experiment-id-wins-over-request-and-session",
        ),
        pytest.param(
            with_("user_feedback", request_id="req-1"), b"sess-1",
            id="session-wins-over-request-id",
        ),
    ],
)  # fmt: skip
def test_record_key_keeps_related_events_in_one_partition(
    event: FeedbackEvent, key: bytes | None
) -> None:
    assert encoder().encode(event).key == key


def test_encoder_reports_the_schema_id_of_every_type() -> None:
    assert encoder().schema_ids() == {t: i for i, t in enumerate(EVENT_TYPES, start=1)}
