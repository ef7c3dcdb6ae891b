"""``tokens_total`` (performance_metrics v4) end to end: an app using only the OpenTelemetry SDK
sends performance metrics as log records and GenAI spans; a downstream consumer reads each one's
total from Kafka (AvroDeserializer + the registry), and the sender is told, in
``partial_success``, why the one whose total contradicts its input + output was refused, while
the good records sent in the same export are delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from harness import record_responses
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otlp_feedback.app import FeedbackApp
from otlp_feedback.encoding import load_schemas

pytestmark = pytest.mark.integration

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns
RESOURCE = Resource.create({"service.name": "chatbot"})
IN, OUT, TOTAL = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.total_tokens",
)
# request id -> (attributes, the tokens_total a consumer reads); None: rejected.
LOG_RECORDS: dict[str, tuple[dict[str, Any], int | None]] = {
    "req-derived": ({IN: 10, OUT: 15}, 25),
    "req-matching": ({IN: 10, OUT: 15, TOTAL: 25}, 25),
    "req-contradicting": ({IN: 10, OUT: 15, TOTAL: 30}, None),
    "req-total-only": ({TOTAL: 40}, 40),
}
GENAI_SPANS: dict[str, tuple[dict[str, Any], int]] = {
    "resp-derived": ({IN: 200, OUT: 50}, 250),
    "resp-sent": ({IN: 200, OUT: 50, TOTAL: 250}, 250),
}
REASON = (
    "gen_ai.usage.total_tokens 30 is not gen_ai.usage.input_tokens 10 + "
    "gen_ai.usage.output_tokens 15 (= 25)"
)


def test_tokens_total_is_read_or_derived_on_every_carrier_and_a_contradiction_is_refused(
    app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    endpoint = f"127.0.0.1:{app.port}"
    log_exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
    log_stub = record_responses(log_exporter)
    logs = LoggerProvider(resource=RESOURCE)
    # Batched, with a delay far past the test: force_flush sends the four records in one Export,
    # so the refusal and the deliveries around it answer the same request.
    logs.add_log_record_processor(
        BatchLogRecordProcessor(log_exporter, schedule_delay_millis=600_000)
    )
    traces = TracerProvider(resource=RESOURCE)
    traces.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    try:
        logger = logs.get_logger("llm-client")
        for request_id, (usage, _) in LOG_RECORDS.items():
            logger.emit(
                event_name="feedback.performance_metrics",
                timestamp=T0,
                attributes={
                    "feedback.request_id": request_id,
                    "gen_ai.request.model": "gpt-4o",
                    **usage,
                },
            )
        tracer = traces.get_tracer("llm-client")
        for response_id, (usage, _) in GENAI_SPANS.items():
            span = tracer.start_span(
                "chat gpt-4o",
                start_time=T0,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.id": response_id,
                    **usage,
                },
            )
            span.end(end_time=T0 + 250_000_000)
        assert logs.force_flush() and traces.force_flush()
    finally:
        logs.shutdown()
        traces.shutdown()

    # The sender is told which record was refused and why, with the three numbers.
    assert sum(r.partial_success.rejected_log_records for r in log_stub.responses) == 1
    messages = "\n".join(r.partial_success.error_message for r in log_stub.responses)
    assert REASON in messages

    # Every other record arrives, with its total, written with the newest schema (v4).
    expected = {
        **{rid: total for rid, (_, total) in LOG_RECORDS.items() if total is not None},
        **{rid: total for rid, (_, total) in GENAI_SPANS.items()},
    }
    records = kafka_reader(len(expected))
    newest = str(load_schemas().latest("performance_metrics").version).encode()
    assert newest == b"4"
    got = {}
    for record in records:
        assert record["headers"]["event_type"] == b"performance_metrics"
        assert record["headers"]["schema_version"] == newest
        value = record["value"]
        got[value["request_id"]] = value["tokens_total"]
        carrier = "genai_span" if value["request_id"].startswith("resp-") else "log_record"
        assert value["carrier"] == carrier
    assert got == expected
    assert app.pipeline.stats.accepted == len(expected) and app.pipeline.stats.rejected == 1
