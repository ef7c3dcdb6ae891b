"""Hostile requests one by one, each with its exact outcome at the real gRPC receiver (in-process,
in-memory registry and sink, real clock).

Some requests cannot be built with the protobuf API (it refuses invalid UTF-8 and nesting past
its depth limit), so ``embed`` writes the wire bytes by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import (
    SEVERITY_NUMBER_INFO,
    LogRecord,
    ResourceLogs,
    ScopeLogs,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import ValidationConfig
from otlp_feedback.receiver.service import LOGS_SERVICE, TRACE_SERVICE
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing import logs_request, make_log_record, run_receiver
from otlp_feedback.testing.observe import decode_event

TIMEOUT = 30.0
MIB = 1024 * 1024
VALID_FEEDBACK = {"session.id": "s-1", "feedback.rating": 4}


@pytest.fixture
def sink() -> InMemorySink:
    return InMemorySink()


@pytest.fixture
def registry() -> InMemoryRegistry:
    return InMemoryRegistry()


@pytest.fixture
def app(sink: InMemorySink, registry: InMemoryRegistry) -> Iterator[FeedbackApp]:
    with run_receiver(sink=sink, registry=registry) as running:
        yield running


@pytest.fixture
def channel(app: FeedbackApp) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as open_channel:
        yield open_channel


def export_bytes(channel: grpc.Channel, service: str, payload: bytes) -> bytes:
    """Send ``payload`` as is (no client-side serialization, so any bytes can be sent)."""
    call = channel.unary_unary(
        f"/{service}/Export",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    response: bytes = call(payload, timeout=TIMEOUT)
    return response


def export_logs(channel: grpc.Channel, *records: LogRecord) -> ExportLogsServiceResponse:
    request = logs_request(records, resource={"service.name": "svc"})
    response: ExportLogsServiceResponse = LogsServiceStub(channel).Export(request, timeout=TIMEOUT)
    return response


def feedback(event_id: str, **attributes: Any) -> LogRecord:
    """A user feedback record (valid unless ``attributes`` spoil it), timed at receipt."""
    return make_log_record(
        "feedback.user_feedback", {"event.id": event_id, **VALID_FEEDBACK, **attributes}
    )


def delivered(sink: InMemorySink, registry: InMemoryRegistry) -> dict[str, dict[str, Any]]:
    """Delivered events by event id, read back as a consumer would."""
    return {
        record.event_id: decode_event(record, registry)
        for record in sink.records
        if record.topic != "feedback.dlq"
    }


def retry_info(error: grpc.RpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None


# --- hand-written wire bytes -------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def embed(message: type[Message], field: str, payload: bytes) -> bytes:
    """``payload`` as the length-delimited ``field`` of ``message``, exactly as protobuf writes
    it, but without checking that a string is UTF-8 or how deep messages nest."""
    number = message.DESCRIPTOR.fields_by_name[field].number
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def logs_request_bytes(*records: bytes) -> bytes:
    scope = b"".join(embed(ScopeLogs, "log_records", record) for record in records)
    return embed(
        ExportLogsServiceRequest, "resource_logs", embed(ResourceLogs, "scope_logs", scope)
    )


def traces_request_bytes(*spans: bytes) -> bytes:
    scope = b"".join(embed(ScopeSpans, "spans", span) for span in spans)
    return embed(
        ExportTraceServiceRequest, "resource_spans", embed(ResourceSpans, "scope_spans", scope)
    )


def string_attribute(key: bytes, value: bytes) -> bytes:
    """A log record's attribute ``key`` with a string value."""
    value_bytes = embed(AnyValue, "string_value", value)
    return embed(
        LogRecord, "attributes", embed(KeyValue, "key", key) + embed(KeyValue, "value", value_bytes)
    )


def nested_value(depth: int) -> bytes:
    """An AnyValue holding an array holding an AnyValue ... ``depth`` arrays deep."""
    value = embed(AnyValue, "string_value", b"x")
    for _ in range(depth):
        value = embed(AnyValue, "array_value", embed(ArrayValue, "values", value))
    return value


def test_hand_written_bytes_are_what_protobuf_writes() -> None:
    """The builder the other byte-level tests rely on, checked against protobuf itself."""
    record = embed(LogRecord, "event_name", b"feedback.user_feedback") + string_attribute(
        b"session.id", b"s-1"
    )
    expected = make_log_record("feedback.user_feedback", {"session.id": "s-1"})
    decoded = ExportLogsServiceRequest.FromString(logs_request_bytes(record))
    assert decoded.resource_logs[0].scope_logs[0].log_records == [expected]


INVALID_UTF8 = [
    pytest.param(
        LOGS_SERVICE,
        logs_request_bytes(embed(LogRecord, "event_name", b"feedback.\xff\xfe")),
        id="log-event-name",
    ),
    pytest.param(
        LOGS_SERVICE,
        logs_request_bytes(string_attribute(b"session.\xc3\x28", b"s")),
        id="attribute-key",
    ),
    pytest.param(
        LOGS_SERVICE,
        logs_request_bytes(string_attribute(b"feedback.comment", b"ok \xed\xa0\x80")),
        id="attribute-value-surrogate",
    ),
    pytest.param(
        TRACE_SERVICE,
        traces_request_bytes(embed(Span, "events", embed(Span.Event, "name", b"feedback.\x80"))),
        id="span-event-name",
    ),
]


@pytest.mark.parametrize(("service", "payload"), INVALID_UTF8)
def test_invalid_utf8_in_a_string_field_is_invalid_argument_naming_the_decode_problem(
    channel: grpc.Channel, sink: InMemorySink, service: str, payload: bytes
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        export_bytes(channel, service, payload)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot decode Export" in caught.value.details()
    assert "bad UTF-8" in caught.value.details()
    assert retry_info(caught.value) is None
    assert sink.records == []


def test_a_request_nested_past_the_protobuf_depth_limit_is_invalid_argument(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    too_deep = embed(LogRecord, "body", nested_value(200))
    with pytest.raises(grpc.RpcError) as caught:
        export_bytes(channel, LOGS_SERVICE, logs_request_bytes(too_deep))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot decode ExportLogsServiceRequest" in caught.value.details()
    assert "Depth" in caught.value.details()


def test_deep_but_legal_nesting_is_delivered_as_json_in_attributes(
    channel: grpc.Channel, sink: InMemorySink, registry: InMemoryRegistry
) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    response = export_logs(channel, feedback("deep", **{"app.deep": deep}))
    assert response == ExportLogsServiceResponse()
    attributes = delivered(sink, registry)["deep"]["attributes"]
    assert attributes["app.deep"] == "[" * 40 + '"x"' + "]" * 40


def test_a_request_over_the_size_limit_is_resource_exhausted_without_retry_info(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    oversized = feedback("big", **{"app.pad": "x" * (17 * MIB)})  # limit: 16 MiB
    with pytest.raises(grpc.RpcError) as caught:
        export_logs(channel, oversized)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_info(caught.value) is None  # resending the same request cannot succeed
    assert export_logs(channel, feedback("small")) == ExportLogsServiceResponse()
    assert [record.event_id for record in sink.records] == ["small"]


def test_a_compressed_request_that_inflates_past_the_size_limit_is_resource_exhausted(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    bomb = logs_request([feedback("bomb", **{"app.pad": "x" * (40 * MIB)})])  # gzips to ~40 KiB
    with pytest.raises(grpc.RpcError) as caught:
        LogsServiceStub(channel).Export(bomb, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_info(caught.value) is None
    assert sink.records == []


@pytest.mark.parametrize(
    ("service", "response_type", "payload"),
    [
        pytest.param(LOGS_SERVICE, ExportLogsServiceResponse, b"", id="logs-no-bytes"),
        pytest.param(TRACE_SERVICE, ExportTraceServiceResponse, b"", id="traces-no-bytes"),
        pytest.param(
            LOGS_SERVICE,
            ExportLogsServiceResponse,
            ExportLogsServiceRequest(
                resource_logs=[ResourceLogs(), ResourceLogs(scope_logs=[ScopeLogs()])]
            ).SerializeToString(),
            id="logs-empty-resources-and-scopes",
        ),
        pytest.param(
            TRACE_SERVICE,
            ExportTraceServiceResponse,
            ExportTraceServiceRequest(
                resource_spans=[ResourceSpans(), ResourceSpans(scope_spans=[ScopeSpans()])]
            ).SerializeToString(),
            id="traces-empty-resources-and-scopes",
        ),
    ],
)
def test_an_empty_request_is_ok_without_partial_success(
    channel: grpc.Channel,
    app: FeedbackApp,
    service: str,
    response_type: type[Message],
    payload: bytes,
) -> None:
    response = response_type.FromString(export_bytes(channel, service, payload))
    assert not response.HasField("partial_success")
    assert (app.pipeline.stats.requests, app.pipeline.stats.ignored) == (1, 0)


TINY_RECORDS = 1_000_000
# Just a severity or a kind: 4 bytes each on the wire with framing, so ~4 MB in all.
TINY_LOG_RECORD = LogRecord(severity_number=SEVERITY_NUMBER_INFO).SerializeToString()
TINY_SPAN = Span(kind=Span.SPAN_KIND_INTERNAL).SerializeToString()


@pytest.mark.parametrize(
    ("service", "build"),
    [
        pytest.param(
            LOGS_SERVICE,
            lambda: logs_request_bytes(*[TINY_LOG_RECORD] * TINY_RECORDS),
            id="log-records",
        ),
        pytest.param(
            TRACE_SERVICE, lambda: traces_request_bytes(*[TINY_SPAN] * TINY_RECORDS), id="spans"
        ),
    ],
)
def test_a_million_tiny_non_feedback_records_are_ok_and_counted_ignored(
    channel: grpc.Channel,
    app: FeedbackApp,
    sink: InMemorySink,
    service: str,
    build: Callable[[], bytes],
) -> None:
    payload = build()
    assert len(payload) < app.settings.receiver.max_recv_msg_bytes
    export_bytes(channel, service, payload)  # OK: an error status would raise
    assert (app.pipeline.stats.requests, app.pipeline.stats.ignored) == (1, TINY_RECORDS)
    assert sink.records == []


TEN_MB = 10 * 1000 * 1000


@pytest.mark.parametrize("key", ["feedback.comment", "session.id", "feedback.thumbs"])
def test_a_10mb_value_of_a_convention_key_is_rejected_naming_it_and_neighbours_are_delivered(
    channel: grpc.Channel, sink: InMemorySink, registry: InMemoryRegistry, key: str
) -> None:
    response = export_logs(
        channel, feedback("before"), feedback("huge", **{key: "c" * TEN_MB}), feedback("after")
    )
    assert response.partial_success.rejected_log_records == 1
    message = response.partial_success.error_message
    assert f"log_records[1] (user_feedback): {key}: " in message
    assert len(message) < 500  # the value is not echoed back whole
    assert sorted(delivered(sink, registry)) == ["after", "before"]


def test_a_10mb_value_of_another_attribute_is_truncated_to_the_configured_length(
    channel: grpc.Channel, sink: InMemorySink, registry: InMemoryRegistry
) -> None:
    response = export_logs(channel, feedback("huge", **{"app.prompt": "p" * TEN_MB}))
    assert response == ExportLogsServiceResponse()
    limit = ValidationConfig().max_attribute_value_len
    assert delivered(sink, registry)["huge"]["attributes"]["app.prompt"] == "p" * limit


def test_a_rejection_reason_stays_short_however_long_the_key_it_names(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    """Regression: the key was echoed whole, so five 1 MB keys made a 10 MB partial_success
    message, over the 4 MiB a gRPC client accepts by default (the client saw an error)."""
    long_key = "feedback.quality." + "k" * MIB
    records = [
        make_log_record("feedback.model_response", {"event.id": f"r{i}", long_key: math.nan})
        for i in range(5)
    ]
    response = export_logs(channel, *records)
    assert response.partial_success.rejected_log_records == 5
    message = response.partial_success.error_message
    assert "(model_response): feedback.quality.kkkk" in message
    assert len(message) < 5 * 500


@pytest.mark.parametrize("rating", [math.nan, math.inf, -math.inf])
def test_a_non_finite_rating_is_rejected_naming_feedback_rating(
    channel: grpc.Channel, sink: InMemorySink, registry: InMemoryRegistry, rating: float
) -> None:
    response = export_logs(channel, feedback("bad", **{"feedback.rating": rating}), feedback("ok"))
    assert response.partial_success.rejected_log_records == 1
    assert "feedback.rating: Input should be a finite number" in (
        response.partial_success.error_message
    )
    assert list(delivered(sink, registry)) == ["ok"]


CONTROL_TEXT = "ok\x00\x07\x08\x1b[2J\x7f\x85\u2028\u202e\ufeff\tdone\n"


def test_control_characters_in_a_comment_are_stripped_by_default_but_tab_and_newline_kept(
    channel: grpc.Channel, sink: InMemorySink, registry: InMemoryRegistry
) -> None:
    response = export_logs(channel, feedback("ctl", **{"feedback.comment": CONTROL_TEXT}))
    assert response == ExportLogsServiceResponse()
    assert delivered(sink, registry)["ctl"]["comment"] == "ok[2J\tdone\n"


@pytest.fixture
def keeping_channel(sink: InMemorySink, registry: InMemoryRegistry) -> Iterator[grpc.Channel]:
    """A receiver with ``validation.control_characters: keep``."""
    with (
        run_receiver(
            sink=sink, registry=registry, validation={"control_characters": "keep"}
        ) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as open_channel,
    ):
        yield open_channel


def test_with_keep_control_characters_in_a_comment_are_delivered_verbatim(
    keeping_channel: grpc.Channel, sink: InMemorySink, registry: InMemoryRegistry
) -> None:
    """Kept as sent (Avro carries them); escaping is then the reader's job."""
    response = export_logs(keeping_channel, feedback("ctl", **{"feedback.comment": CONTROL_TEXT}))
    assert response == ExportLogsServiceResponse()
    assert delivered(sink, registry)["ctl"]["comment"] == CONTROL_TEXT


def test_control_characters_in_a_rejected_value_are_escaped_in_the_reason(
    keeping_channel: grpc.Channel, sink: InMemorySink
) -> None:
    thumbs = {"feedback.thumbs": "\x1b[31mup\x00"}
    response = export_logs(keeping_channel, feedback("ctl", **thumbs))
    message = response.partial_success.error_message
    assert "(got '\\x1b[31mup\\x00')" in message
    assert "\x1b" not in message
    assert "\x00" not in message
