"""Coverage-guided fuzzing (atheris/libFuzzer) of decode -> map -> validate -> encode.

Each input is one byte choosing the carrier (even: logs, odd: traces) followed by the serialized
export request. An undecodable request is fine (the receiver answers INVALID_ARGUMENT); anything
decodable goes through ``Pipeline.process`` with the in-memory registry and sink, next to a
known-good record in a resource of its own, and must leave these true (else the harness raises,
which libFuzzer reports as a crash):

- no exception escapes;
- accepted + rejected == the feedback records found, and every rejection has a reason;
- the known-good record is delivered (hostile neighbours never take it down);
- every delivered event reads back with fastavro against its registered schema;
- the partial_success message is a valid protobuf string;
- for logs, the native fast path and the pure-Python path give the same records (bytes,
  headers, keys, ids), the same outcome, or the same error, for the bytes as sent.

Run by ``tests/fuzz/test_fuzz_smoke.py``; by hand (``corpus/`` holds the seeds; the first
directory given is where libFuzzer adds what it finds, so give it a scratch one)::

    cd tests/fuzz
    ../../.venv/bin/python fuzz_decode_map_validate.py /tmp/found corpus -dict=convention.dict
"""

from __future__ import annotations

import json
import struct
import sys
from functools import cache
from io import BytesIO
from typing import Any

import atheris
import fastavro
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

with atheris.instrument_imports(include=["otlp_feedback"]):
    from otlp_feedback.config import load_config
    from otlp_feedback.errors import OtlpFeedbackError
    from otlp_feedback.mapping import map_logs_request, map_traces_request
    from otlp_feedback.pipeline import Pipeline
    from otlp_feedback.registry.client import InMemoryRegistry
    from otlp_feedback.sinks.memory import InMemorySink
    from otlp_feedback.testing.otlp import key_values, make_log_record, make_span

RECEIVED_NS = 1_735_689_660_000_000_000  # the pipeline's clock: 2025-01-01T00:01:00Z
GOOD_ID = "fuzz-known-good"
GOOD_ATTRIBUTES = {"event.id": GOOD_ID, "session.id": "s-1", "feedback.rating": 4}
DLQ_TOPIC = "feedback.dlq"

REGISTRY = InMemoryRegistry()
SINK = InMemorySink()
PIPELINE = Pipeline(load_config(), REGISTRY, SINK, clock_ns=lambda: RECEIVED_NS)
PIPELINE.start()
NATIVE_SINK, PYTHON_SINK = InMemorySink(), InMemorySink()
NATIVE = Pipeline(load_config(), REGISTRY, NATIVE_SINK, clock_ns=lambda: RECEIVED_NS)
PYTHON = Pipeline(
    load_config(receiver={"native_fast_path": False}),
    REGISTRY,
    PYTHON_SINK,
    clock_ns=lambda: RECEIVED_NS,
)
NATIVE.start()
PYTHON.start()


def _export_as_sent(pipeline: Pipeline, sink: InMemorySink, payload: bytes) -> Any:
    sink.records.clear()
    try:
        out = pipeline.export("logs", payload)
    except OtlpFeedbackError as exc:
        return type(exc).__name__, str(exc)
    records = [(r.topic, r.key, r.value, r.headers, r.event_id, r.event_type) for r in sink.records]
    return out.accepted, out.ignored, out.message(100), dict(out.accepted_by_type), records


def same_native_and_python(payload: bytes) -> None:
    native = _export_as_sent(NATIVE, NATIVE_SINK, payload)
    python = _export_as_sent(PYTHON, PYTHON_SINK, payload)
    assert native == python, (native, python)


def with_known_good_record(
    request: ExportLogsServiceRequest | ExportTraceServiceRequest,
) -> None:
    """Add a valid user feedback record in a resource of its own (no hostile context)."""
    resource = key_values({"service.name": "fuzz"})
    if isinstance(request, ExportLogsServiceRequest):
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.extend(resource)
        record = make_log_record("feedback.user_feedback", GOOD_ATTRIBUTES)
        resource_logs.scope_logs.add().log_records.append(record)
    else:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(resource)
        span = make_span(events=[("feedback.user_feedback", GOOD_ATTRIBUTES, 0)])
        resource_spans.scope_spans.add().spans.append(span)


@cache
def _schema(schema_id: int) -> Any:
    return fastavro.parse_schema(json.loads(REGISTRY.schema_text(schema_id)))


def test_one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] % 2 == 0:
        same_native_and_python(data[1:])
    request: ExportLogsServiceRequest | ExportTraceServiceRequest
    try:
        if data[0] % 2 == 0:
            request = ExportLogsServiceRequest.FromString(data[1:])
        else:
            request = ExportTraceServiceRequest.FromString(data[1:])
    except DecodeError:
        return  # the receiver answers INVALID_ARGUMENT
    with_known_good_record(request)
    if isinstance(request, ExportLogsServiceRequest):
        mapped = map_logs_request(request)
    else:
        mapped = map_traces_request(request)
    found = len(mapped.feedback)

    SINK.records.clear()
    outcome = PIPELINE.export_events(mapped.feedback)

    assert outcome.accepted + outcome.rejected == found, (outcome, found)
    assert all(rejection.reason.strip() for rejection in outcome.rejections), outcome
    ExportLogsServiceResponse().partial_success.error_message = outcome.message(5)
    events = [record for record in SINK.records if record.topic != DLQ_TOPIC]
    assert len(events) == outcome.accepted, (outcome, len(events))
    assert GOOD_ID in {record.event_id for record in events}, outcome
    for record in events:
        magic, schema_id = struct.unpack(">bI", record.value[:5])
        event = fastavro.schemaless_reader(BytesIO(record.value[5:]), _schema(schema_id))
        assert isinstance(event, dict)
        assert (magic, event["event_id"]) == (0, record.event_id)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
