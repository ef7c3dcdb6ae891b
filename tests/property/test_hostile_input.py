"""Hostile input, as properties: whatever a request holds, no exception escapes, every feedback
record is either delivered or rejected with a reason, and bad records never take good ones down.

The request generators and the invariants live in ``hostile_requests``. The pipeline runs on the
in-memory registry and sink with a fixed clock; the last property drives the real gRPC receiver
with raw (often undecodable) bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.message import Message
from hostile_requests import (
    CLEAN_RESOURCE,
    GOOD_LOG_ATTRIBUTES,
    RECEIVED_NS,
    U64_MAX,
    HostileCase,
    check_invariants,
    hostile_cases,
    hostile_values,
    key_values,
    logs_cases,
    traces_cases,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import ValidationConfig
from otlp_feedback.mapping import MappedRequest, map_logs_request, map_traces_request
from otlp_feedback.pipeline import ExportOutcome, Pipeline
from otlp_feedback.receiver.service import LOGS_SERVICE, TRACE_SERVICE
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing import logs_request, make_log_record, run_receiver

# Module fixtures are shared on purpose: each example starts by clearing the sink.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = ValidationConfig()
TIMEOUT = 10.0


def process(
    pipeline: Pipeline, sink: InMemorySink, case: HostileCase
) -> tuple[MappedRequest, ExportOutcome]:
    sink.records.clear()
    if isinstance(case.request, ExportLogsServiceRequest):
        mapped = map_logs_request(case.request)
    else:
        mapped = map_traces_request(case.request)
    return mapped, pipeline.export_events(mapped.feedback)


def assert_delivered_or_rejected(
    pipeline: Pipeline, sink: InMemorySink, registry: InMemoryRegistry, case: HostileCase
) -> None:
    mapped, outcome = process(pipeline, sink, case)
    check_invariants(
        mapped,
        outcome,
        sink.records,
        registry,
        feedback=case.feedback,
        good_ids=case.good_ids,
        ignored=case.ignored,
    )


@PROPERTY
@given(case=logs_cases())
def test_every_feedback_log_record_is_delivered_or_rejected_and_good_ones_always_arrive(
    pipeline: Pipeline, sink: InMemorySink, registry: InMemoryRegistry, case: HostileCase
) -> None:
    assert_delivered_or_rejected(pipeline, sink, registry, case)


@PROPERTY
@given(case=traces_cases())
def test_every_feedback_span_event_and_genai_span_is_delivered_or_rejected(
    pipeline: Pipeline, sink: InMemorySink, registry: InMemoryRegistry, case: HostileCase
) -> None:
    assert_delivered_or_rejected(pipeline, sink, registry, case)


# One attribute of an otherwise valid record replaced by a random value: the five feedback.*
# event types (gen_ai.evaluation.result is left out: its evaluation name picks the event type).
MORE_KEYS = (
    "event.id",
    "session.id",
    "user.id",
    "service.name",
    "gen_ai.response.id",
    "feedback.request_id",
    "feedback.comment",
    "feedback.thumbs",
    "feedback.tags",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "gen_ai.usage.input_tokens",
    "feedback.success",
    "feedback.metric.ttft_ms",
    "feedback.quality.accuracy",
    "feedback.prompt_hash",
    "gen_ai.response.finish_reasons",
    "gen_ai.request.top_k",
    "feedback.health.error_rate",
    "feedback.health.active_requests",
    "feedback.experiment.reward",
    "feedback.experiment.cost",
)


@st.composite
def one_bad_attribute(draw: st.DrawFn) -> tuple[LogRecord, str]:
    name, attributes = draw(st.sampled_from(GOOD_LOG_ATTRIBUTES[:5]))
    key = draw(st.sampled_from([*attributes, *MORE_KEYS]))
    pairs = [*((k, v) for k, v in attributes.items() if k != key), (key, draw(hostile_values))]
    record = LogRecord(event_name=name)
    record.attributes.extend(key_values(pairs))
    return record, key


@PROPERTY
@given(bad=one_bad_attribute())
def test_a_rejection_names_the_attribute_the_sender_must_fix(
    pipeline: Pipeline, sink: InMemorySink, bad: tuple[LogRecord, str]
) -> None:
    record, key = bad
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(key_values(list(CLEAN_RESOURCE.items())))
    resource_logs.scope_logs.add().log_records.append(record)
    _, outcome = process(pipeline, sink, HostileCase(request))
    assert outcome.accepted + outcome.rejected == 1
    for rejection in outcome.rejections:
        assert key in rejection.reason or rejection.reason.startswith("encoded event is")


@PROPERTY
@given(time_ns=st.one_of(st.integers(0, U64_MAX), st.integers(0, RECEIVED_NS + 10**15)))
def test_an_absurd_timestamp_is_rejected_naming_the_timestamp(
    pipeline: Pipeline, sink: InMemorySink, time_ns: int
) -> None:
    name, attributes = GOOD_LOG_ATTRIBUTES[0]
    record = LogRecord(event_name=name, time_unix_nano=time_ns)
    record.attributes.extend(key_values(list(attributes.items())))
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.append(record)
    _, outcome = process(pipeline, sink, HostileCase(request))
    oldest = RECEIVED_NS - int(LIMITS.max_age_days * 86_400 * 10**9)
    newest = RECEIVED_NS + int(LIMITS.max_future_skew_s * 10**9)
    if time_ns == 0 or oldest <= time_ns <= newest:  # 0: no time, the receive time is used
        assert outcome.accepted == 1
    else:
        assert [r.reason.split()[0] for r in outcome.rejections] == ["timestamp"]


# --- raw bytes against the real gRPC receiver ------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[FeedbackApp]:
    with run_receiver() as app:
        yield app


@pytest.fixture(scope="module")
def channel(receiver: FeedbackApp) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as open_channel:
        yield open_channel


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random edits: overwrite, delete, insert, truncate."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out)))
        edit = draw(st.sampled_from(["overwrite", "delete", "insert", "truncate"]))
        if edit == "overwrite" and at < len(out):
            out[at] = draw(st.integers(0, 255))
        elif edit == "delete":
            del out[at : at + draw(st.integers(1, 8))]
        elif edit == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del out[at:]
    return bytes(out)


raw_payloads = st.one_of(
    st.binary(max_size=256),
    hostile_cases.map(lambda case: case.request.SerializeToString()),
    hostile_cases.flatmap(lambda case: mutated(case.request.SerializeToString())),
)
RESPONSES: dict[str, type[Message]] = {
    LOGS_SERVICE: ExportLogsServiceResponse,
    TRACE_SERVICE: ExportTraceServiceResponse,
}
REJECTED_COUNT = {LOGS_SERVICE: "rejected_log_records", TRACE_SERVICE: "rejected_spans"}


def test_any_bytes_get_ok_or_invalid_argument_and_the_receiver_keeps_serving(
    channel: grpc.Channel, receiver: FeedbackApp
) -> None:
    def export(service: str, payload: bytes) -> bytes:
        call = channel.unary_unary(
            f"/{service}/Export",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        response: bytes = call(payload, timeout=TIMEOUT)
        return response

    @settings(PROPERTY, max_examples=200)
    @given(service=st.sampled_from(sorted(RESPONSES)), payload=raw_payloads)
    def answers_ok_or_invalid_argument(service: str, payload: bytes) -> None:
        try:
            answer = RESPONSES[service].FromString(export(service, payload))
        except grpc.RpcError as exc:  # never UNKNOWN or INTERNAL
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
            assert "cannot decode" in exc.details()
            return
        partial = answer.partial_success
        assert (getattr(partial, REJECTED_COUNT[service]) > 0) == bool(partial.error_message)

    answers_ok_or_invalid_argument()

    after = make_log_record(
        "feedback.user_feedback",
        {"event.id": "after-the-storm", "session.id": "s", "feedback.rating": 5},
    )
    response = export(LOGS_SERVICE, logs_request([after]).SerializeToString())
    assert ExportLogsServiceResponse.FromString(response) == ExportLogsServiceResponse()
    sink = receiver.sink
    assert isinstance(sink, InMemorySink)
    assert "after-the-storm" in {record.event_id for record in sink.records}
