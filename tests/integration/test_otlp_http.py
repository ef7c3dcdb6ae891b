"""OTLP/HTTP against the real broker and registry: OTLP/JSON sent with curl, read back from
Kafka field by field, and one mixed valid/invalid request answered with the same
partial_success over gRPC, HTTP protobuf and HTTP JSON.

(The stock OTel Python SDK's HTTP exporters are driven through every carrier in
``test_sdk_end_to_end.py``, parametrized over both transports; the OTel JS SDK's, protobuf and
JSON, in ``test_js_sdk.py``.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.app import FeedbackApp
from otlp_feedback.testing import logs_request, make_log_record

pytestmark = pytest.mark.integration

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64: a string in OTLP/JSON
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def curl(url: str, body: dict[str, Any]) -> tuple[int, str]:
    """POST ``body`` as OTLP/JSON with curl, as the README shows; (status, response body)."""
    done = subprocess.run(
        ["curl", "-sS", "-X", "POST", url, "-H", "Content-Type: application/json",
         "--data-binary", "@-", "-w", "\n%{http_code}", "--max-time", "30"],
        input=json.dumps(body).encode(),
        capture_output=True,
        check=True,
    )  # fmt: skip
    text, _, status = done.stdout.decode().rpartition("\n")
    return int(status), text


def test_curl_with_otlp_json_logs_reaches_kafka_typed_and_complete(
    app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    body = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        _attr("service.name", "web-widget"),
                        _attr("deployment.environment.name", "prod"),
                    ]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "curl"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(T0),
                                "eventName": "feedback.user_feedback",
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "severityNumber": 9,
                                "body": {"stringValue": "Loved it"},
                                "attributes": [
                                    _attr("session.id", "curl-1"),
                                    _attr("user.id", "u-7"),
                                    _attr("feedback.rating", 5),
                                    _attr("feedback.thumbs", "up"),
                                    _attr("app.button", "thumbs"),
                                ],
                                "aFieldFromTheFuture": 1,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    status, text = curl(f"http://127.0.0.1:{app.http_port}/v1/logs", body)
    assert (status, json.loads(text)) == (200, {})

    (record,) = kafka_reader(1)
    v = record["value"]
    assert record["key"] == b"curl-1"
    assert record["headers"]["event_type"] == b"user_feedback"
    assert record["headers"]["trace_id"] == TRACE_ID.encode()
    assert (v["carrier"], v["service"], v["environment"]) == ("log_record", "web-widget", "prod")
    assert (v["session_id"], v["user_id"]) == ("curl-1", "u-7")
    assert (v["rating"], v["thumbs"], v["comment"]) == (5.0, "up", "Loved it")
    assert (v["trace_id"], v["span_id"]) == (TRACE_ID, SPAN_ID)
    assert v["timestamp"] == datetime.fromtimestamp(T0 / 1e9, UTC)
    assert v["attributes"] == {"app.button": "thumbs"}
    assert v["client_id"] is None and v["redacted_fields"] == []


def test_curl_with_otlp_json_traces_reaches_kafka_as_span_event_feedback(
    app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", "chat-api")]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "name": "POST /chat",
                                "kind": 2,
                                "startTimeUnixNano": str(T0),
                                "endTimeUnixNano": str(T0 + 10**9),
                                "attributes": [_attr("session.id", "curl-2")],
                                "events": [
                                    {
                                        "timeUnixNano": str(T0 + 5 * 10**8),
                                        "name": "feedback.user_feedback",
                                        "attributes": [
                                            _attr("feedback.thumbs", "down"),
                                            _attr("feedback.comment", "wrong answer"),
                                        ],
                                    }
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    status, text = curl(f"http://127.0.0.1:{app.http_port}/v1/traces", body)
    assert (status, json.loads(text)) == (200, {})

    (record,) = kafka_reader(1)
    v = record["value"]
    assert (v["carrier"], v["service"]) == ("span_event", "chat-api")
    assert (v["thumbs"], v["comment"], v["session_id"]) == ("down", "wrong answer", "curl-2")
    assert (v["trace_id"], v["span_id"]) == (TRACE_ID, SPAN_ID)
    assert v["timestamp"] == datetime.fromtimestamp((T0 + 5 * 10**8) / 1e9, UTC)


def _mixed() -> ExportLogsServiceRequest:
    def record(attributes: dict[str, Any]) -> Any:
        return make_log_record("feedback.user_feedback", attributes, time_unix_nano=T0)

    return logs_request(
        [
            record({"session.id": "m-1", "feedback.rating": 4}),
            record({"feedback.rating": 4}),  # no session.id
            record({"session.id": "m-3", "feedback.rating": 11}),  # out of range
            record({"session.id": "m-4", "feedback.thumbs": "sideways"}),
            record({"session.id": "m-5", "feedback.thumbs": "up"}),
        ],
        {"service.name": "mixed"},
    )


def _over_grpc(app: FeedbackApp) -> ExportLogsServiceResponse:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        response: ExportLogsServiceResponse = LogsServiceStub(channel).Export(_mixed(), timeout=30)
        return response


def _over_http_protobuf(app: FeedbackApp) -> ExportLogsServiceResponse:
    response = httpx.post(
        f"http://127.0.0.1:{app.http_port}/v1/logs",
        content=_mixed().SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
        timeout=30,
    )
    assert response.status_code == 200
    return ExportLogsServiceResponse.FromString(response.content)


def _over_http_json(app: FeedbackApp) -> ExportLogsServiceResponse:
    response = httpx.post(
        f"http://127.0.0.1:{app.http_port}/v1/logs",
        content=json_format.MessageToJson(_mixed()),  # no ids set: nothing to write as hex
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200
    return json_format.Parse(response.text, ExportLogsServiceResponse())


TRANSPORTS = {
    "grpc": _over_grpc,
    "http-protobuf": _over_http_protobuf,
    "http-json": _over_http_json,
}


def test_a_mixed_request_gets_the_same_partial_success_over_every_transport(
    app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    answers = {name: send(app) for name, send in TRANSPORTS.items()}
    expected = answers["grpc"].partial_success
    assert expected.rejected_log_records == 3
    assert expected.error_message.startswith("3 feedback record(s) rejected: ")
    assert "session.id is required" in expected.error_message
    for name, answer in answers.items():
        assert answer.partial_success == expected, name
    # Each transport delivered the two valid records (same content, same event ids).
    records = kafka_reader(2 * len(TRANSPORTS))
    assert {r["value"]["session_id"] for r in records} == {"m-1", "m-5"}
    assert len({r["value"]["event_id"] for r in records}) == 2
