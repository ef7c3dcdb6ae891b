"""The pipeline's stages and their hand-offs: ingest -> ``Batch`` (one type for both paths,
nothing decoded twice), admission (once, on the batch's count), the entry for typed events that
arrive already mapped, and the receiver calling only the one entry point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from otlp_builders import MINIMAL, RECEIVED_NS, Admit, log_record, logs_request, span, span_event
from otlp_builders import traces_request as build_traces_request

from otlp_feedback import native
from otlp_feedback.config import load_config
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import DeliveryFailed, InvalidRequest, RateLimited, RequestTooLarge
from otlp_feedback.mapping import RawFeedback, map_logs_request
from otlp_feedback.observability.tracing import RequestOrigin
from otlp_feedback.pipeline import ExportOutcome, Pipeline, ingest
from otlp_feedback.receiver.service import ExportService
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.observe import outcome_facts, record_facts

needs_native = pytest.mark.skipif(not native.AVAILABLE, reason="native extension not built")


def feedback(event_id: str, **attributes: Any) -> Any:
    return log_record(
        "feedback.user_feedback",
        {"event.id": event_id, **MINIMAL["user_feedback"], **attributes},
    )


def three_records() -> ExportLogsServiceRequest:
    """Three feedback records and one that is not; C encodes ``a`` and ``c``, and defers ``b``
    (a control character to strip)."""
    return logs_request(
        feedback("a"),
        log_record("", {"http.method": "GET"}, body="GET / 200"),
        feedback("b", **{"feedback.comment": "ok\x1b then"}),
        feedback("c"),
    )


def started(sink: InMemorySink, native_fast_path: bool = True, **overrides: Any) -> Pipeline:
    receiver = {"endpoint": "127.0.0.1:0", "native_fast_path": native_fast_path}
    settings = load_config(receiver=receiver, **overrides)
    pipeline = Pipeline(settings, InMemoryRegistry(), sink, clock_ns=lambda: RECEIVED_NS)
    pipeline.start()
    return pipeline


@dataclass
class Calls:
    """What ingest decoded and mapped during one request."""

    decoded: int = 0
    mapped: list[int | None] = field(default_factory=list)  # records each call mapped (None: all)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    seen = Calls()
    real_decode, real_map = ingest.decode, ingest.map_logs_request

    def decode(cls: Any, payload: bytes) -> Any:
        seen.decoded += 1
        return real_decode(cls, payload)

    def map_logs(request: ExportLogsServiceRequest, only: Any = None) -> Any:
        seen.mapped.append(None if only is None else len(only))
        return real_map(request, only=only)

    monkeypatch.setattr(ingest, "decode", decode)
    monkeypatch.setattr(ingest, "map_logs_request", map_logs)
    return seen


class RefusingSink(InMemorySink):
    """Kafka refusing the events whose id is in ``refuse`` for good; the rest get through."""

    def __init__(self, refuse: set[str]) -> None:
        super().__init__()
        self.refuse = refuse

    def deliver(self, records: Sequence[OutboundRecord], timeout: float) -> None:
        refused = [r for r in records if r.topic != "feedback.dlq" and r.event_id in self.refuse]
        super().deliver([r for r in records if r not in refused], timeout)
        if refused:
            raise DeliveryFailed("refused", failed={r.event_id: "too large" for r in refused})


# --- ingest: one batch type, nothing decoded twice ------------------------------------------


def test_python_and_native_ingest_give_one_batch_type_with_the_same_records_in_order() -> None:
    payload = three_records().SerializeToString()
    python = ingest.ingest_payload("logs", payload, None, RECEIVED_NS, None)
    assert [type(e) for e in python.entries] == [RawFeedback] * 3
    assert (len(python), python.ignored, python.received_ns) == (3, 1, RECEIVED_NS)
    assert (python.native, python.deferred) == (0, 0)
    if not native.AVAILABLE:
        return
    sink = InMemorySink()
    plan = started(sink).rules.native
    assert plan is not None
    fast = ingest.ingest_payload("logs", payload, plan, RECEIVED_NS, None)
    assert [type(e) for e in fast.entries] == [OutboundRecord, RawFeedback, OutboundRecord]
    assert (len(fast), fast.ignored, fast.native, fast.deferred) == (3, 1, 2, 1)
    # Every record's source, found on demand, is what the Python path mapped.
    by_position = fast.sources(range(3))
    assert [by_position[p].source for p in range(3)] == [raw.source for raw in python.entries]


@needs_native
def test_a_partly_deferred_request_is_decoded_once_and_maps_only_its_deferred_record(
    calls: Calls,
) -> None:
    sink = InMemorySink()
    outcome = started(sink).export("logs", three_records().SerializeToString())
    assert (outcome.native, outcome.deferred, outcome.accepted) == (2, 1, 3)
    assert calls.decoded == 1
    assert calls.mapped == [1]


@needs_native
def test_a_kafka_refusal_maps_only_the_refused_records_from_the_request_decoded_once(
    calls: Calls,
) -> None:
    payload = three_records().SerializeToString()
    fast = started(RefusingSink({"a", "b"})).export("logs", payload)
    assert calls.decoded == 1  # for the deferred record; the refusal reuses it
    assert calls.mapped == [1, 1]  # the deferred "b", then the refused native "a" only
    slow_sink = RefusingSink({"a", "b"})
    slow = started(slow_sink, native_fast_path=False).export("logs", payload)
    assert outcome_facts(fast) == outcome_facts(slow)
    assert fast.accepted == 1
    assert [r.category for r in fast.rejections] == ["kafka_refused"] * 2


@needs_native
def test_a_refusal_of_an_all_native_request_decodes_it_once_then(calls: Calls) -> None:
    request = logs_request(feedback("a"), feedback("b"), feedback("c"))
    outcome = started(RefusingSink({"c"})).export("logs", request.SerializeToString())
    assert (outcome.native, outcome.deferred) == (3, 0)
    assert [r.describe() for r in outcome.rejections] == [
        "resource_logs[0].scope_logs[0].log_records[2] (user_feedback): Kafka refused it: too large"
    ]
    assert calls.decoded == 1
    assert calls.mapped == [1]


def test_an_undecodable_payload_is_an_invalid_request_for_either_signal() -> None:
    sink = InMemorySink()
    pipeline = started(sink)
    for signal in ("logs", "traces"):
        with pytest.raises(InvalidRequest):
            pipeline.export(signal, b"\xff\xff\xff")  # type: ignore[arg-type]
    assert sink.records == []


# --- admission: once, on the batch's count --------------------------------------------------


@pytest.mark.parametrize("native_fast_path", [True, False], ids=["native", "python"])
def test_admission_is_asked_once_with_the_batchs_count_before_anything_is_validated(
    native_fast_path: bool,
) -> None:
    sink = InMemorySink()
    asked: list[int] = []

    def refuse(events: int) -> None:
        asked.append(events)
        raise RateLimited("over the limit", retry_after=1.0)

    pipeline = started(sink, native_fast_path)
    with pytest.raises(RateLimited):
        pipeline.export("logs", three_records().SerializeToString(), "c", Admit(refuse))
    assert asked == [3]
    assert sink.records == []
    assert pipeline.stats.requests == 0


def test_the_per_request_limit_is_checked_before_the_callers_admission() -> None:
    asked: list[int] = []
    pipeline = started(InMemorySink(), validation={"max_feedback_per_request": 2})
    with pytest.raises(RequestTooLarge):
        pipeline.export("logs", three_records().SerializeToString(), None, Admit(asked.append))
    assert asked == []  # a refused flood takes no tokens from the caller's bucket


# --- typed events that arrive already mapped --------------------------------------------------


def test_typed_events_enter_the_same_stages_as_an_otlp_request() -> None:
    # What the events API will hand over: RawFeedback records (here mapped from OTLP, so the
    # two runs can be compared), through admission, validation, redaction, encoding, delivery.
    request = logs_request(
        feedback("ok-1"),
        feedback("bad-1", **{"feedback.rating": 9}),
        feedback("mail", **{"feedback.comment": "write to jane@example.com"}),
    )
    by_otlp_sink, by_events_sink = InMemorySink(), InMemorySink()
    by_otlp = started(by_otlp_sink, native_fast_path=False).export(
        "logs", request.SerializeToString(), "tenant-a"
    )
    asked: list[int] = []
    by_events = started(by_events_sink).export_events(
        map_logs_request(request).feedback, "tenant-a", Admit(asked.append)
    )
    assert asked == [3]
    assert outcome_facts(by_events) == outcome_facts(by_otlp)
    assert (by_events.accepted, by_events.rejected, by_events.dead_lettered) == (2, 1, 1)
    assert by_events.redacted_by_type == {"user_feedback": 1}
    assert [record_facts(r) for r in by_events_sink.records] == [
        record_facts(r) for r in by_otlp_sink.records
    ]
    events = [r for r in by_events_sink.records if r.topic != "feedback.dlq"]
    assert all(("client_id", b"tenant-a") in r.headers for r in events)


def test_typed_events_are_held_to_the_per_request_limit() -> None:
    pipeline = started(InMemorySink(), validation={"max_feedback_per_request": 1})
    mapped = map_logs_request(logs_request(feedback("a"), feedback("b"))).feedback
    with pytest.raises(RequestTooLarge):
        pipeline.export_events(mapped)


# --- the receiver calls the one entry point ---------------------------------------------------


class EntryPointOnly:
    """A pipeline with nothing but the entry point (and whether it traces, so the service
    knows to read the trace headers): the service must need no more."""

    tracing = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, str | None, object]] = []
        self.origins: list[object] = []

    def export(
        self,
        signal: str,
        payload: bytes,
        client_id: str | None,
        admission: object,
        origin: object = None,
    ) -> ExportOutcome:
        self.calls.append((signal, payload, client_id, admission))
        self.origins.append(origin)
        return ExportOutcome(accepted=1)


class Context:
    """Just what the service reads of a gRPC context."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def code(self) -> grpc.StatusCode | None:
        return None


def test_both_rpcs_call_only_the_pipelines_entry_point_with_the_caller_as_admission() -> None:
    pipeline = EntryPointOnly()
    service = ExportService(pipeline, max_rejection_messages=5)  # type: ignore[arg-type]
    logs = service.export_logs(b"logs-bytes", Context())  # type: ignore[arg-type]
    traces = service.export_traces(b"trace-bytes", Context())  # type: ignore[arg-type]
    ExportLogsServiceResponse.FromString(logs)
    ExportTraceServiceResponse.FromString(traces)
    assert [(s, p, c) for s, p, c, _ in pipeline.calls] == [
        ("logs", b"logs-bytes", None),
        ("traces", b"trace-bytes", None),
    ]
    admission = pipeline.calls[0][3]
    admission.admit(1)  # type: ignore[attr-defined]  # the guard's caller: open, admits
    assert pipeline.origins == [RequestOrigin("grpc"), RequestOrigin("grpc")]


def test_traces_take_the_python_path_through_the_same_entry_point() -> None:
    sink = InMemorySink()
    request = build_traces_request(
        span(events=[span_event("feedback.user_feedback", MINIMAL["user_feedback"])])
    )
    outcome = started(sink).export("traces", request.SerializeToString())
    assert (outcome.accepted, outcome.native, outcome.deferred) == (1, 0, 0)
