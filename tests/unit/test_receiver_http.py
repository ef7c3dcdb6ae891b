"""The OTLP/HTTP receiver: its ASGI app driven by Starlette's TestClient over an in-memory
pipeline, and (for what needs sockets: staying up, concurrency, TLS, lifecycle) the real server
on a free loopback port."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from otlp_builders import (
    DATA_DIR,
    MINIMAL,
    event_records,
    log_record,
    logs_request,
    span,
    span_event,
    traces_request,
)
from starlette.testclient import TestClient

from otlp_feedback import errors
from otlp_feedback.config import load_config
from otlp_feedback.errors import (
    DeliveryTimeout,
    InvalidRequest,
    OtlpFeedbackError,
    RateLimited,
    RequestTooLarge,
    SinkUnavailable,
)
from otlp_feedback.observability.metrics import NATIVE, Telemetry
from otlp_feedback.pipeline import ExportOutcome, Pipeline
from otlp_feedback.receiver.auth import hash_api_key
from otlp_feedback.receiver.http import HttpReceiver, inflate, peer_of
from otlp_feedback.receiver.otlp_json import to_protobuf
from otlp_feedback.receiver.status import STATUS_TABLE, http_status_for, status_for
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing import run_receiver
from otlp_feedback.testing.receiver import guarded_test_client, http_test_client
from otlp_feedback.testing.security import Pki, make_jwt, make_pki

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
KEY = "s3cret-key-of-client-a"
HS_SECRET = "a-shared-secret-of-at-least-32-bytes!"


def valid_logs(count: int = 1) -> ExportLogsServiceRequest:
    return logs_request(
        *(log_record("feedback.user_feedback", MINIMAL["user_feedback"]) for _ in range(count))
    )


def mixed_logs() -> ExportLogsServiceRequest:
    return logs_request(
        log_record("feedback.user_feedback", MINIMAL["user_feedback"]),
        log_record("feedback.user_feedback", {"feedback.rating": 4}),  # no session.id
        log_record("feedback.user_feedback", {"session.id": "s", "feedback.rating": 9}),
    )


def otlp_json(message: Any) -> str:
    """``message`` in OTLP/JSON: protobuf's JSON mapping with hex trace and span ids."""

    def hex_ids(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64decode(v).hex() if k in ID_KEYS else hex_ids(v)
                for k, v in node.items()
            }
        return [hex_ids(v) for v in node] if isinstance(node, list) else node

    return json.dumps(hex_ids(json_format.MessageToDict(message)))


ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


def fixture_bytes(name: str) -> bytes:
    return (DATA_DIR / name).read_bytes()


class _Raising:
    """A pipeline stand-in whose export raises ``exc``."""

    tracing = False

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def export(self, signal: str, payload: bytes, *_: Any) -> ExportOutcome:
        raise self.exc


@pytest.fixture
def client(pipeline: Pipeline, executor: ThreadPoolExecutor) -> TestClient:
    return http_test_client(pipeline, executor)


def status_of(response: httpx.Response) -> status_pb2.Status:
    if response.headers["content-type"].startswith("application/json"):
        return json_format.Parse(response.text, status_pb2.Status())
    return status_pb2.Status.FromString(response.content)


def retry_delay(status: status_pb2.Status) -> float | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


# --- Export: protobuf and JSON ------------------------------------------------------------------


def test_protobuf_logs_are_accepted_with_an_empty_response_over_the_native_path(
    pipeline: Pipeline, executor: ThreadPoolExecutor, sink: InMemorySink
) -> None:
    telemetry = Telemetry()
    pipeline._telemetry = telemetry  # count this request's native records here
    client = http_test_client(pipeline, executor, telemetry=telemetry)
    response = client.post("/v1/logs", content=valid_logs(3).SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert ExportLogsServiceResponse.FromString(response.content) == ExportLogsServiceResponse()
    assert len(event_records(sink)) == 3
    assert telemetry.value(NATIVE, "native") == 3


def test_rejected_records_are_counted_in_partial_success_in_the_request_encoding(
    client: TestClient,
) -> None:
    response = client.post("/v1/logs", content=mixed_logs().SerializeToString(), headers=PROTOBUF)
    parsed = ExportLogsServiceResponse.FromString(response.content)
    assert response.status_code == 200
    assert parsed.partial_success.rejected_log_records == 2
    assert parsed.partial_success.error_message.startswith("2 feedback record(s) rejected: ")

    as_json = otlp_json(mixed_logs())
    response = client.post("/v1/logs", content=as_json, headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    # OTLP/JSON: lowerCamelCase names, 64-bit integers as strings.
    assert body["partialSuccess"]["rejectedLogRecords"] == "2"
    assert body["partialSuccess"]["errorMessage"] == parsed.partial_success.error_message


@pytest.mark.parametrize(
    ("path", "fixture", "cls"),
    [
        ("/v1/logs", "logs_feedback.json", ExportLogsServiceRequest),
        ("/v1/traces", "traces_feedback.json", ExportTraceServiceRequest),
    ],
)
def test_otlp_json_and_protobuf_of_one_request_give_the_same_kafka_records_and_response(
    pipeline: Pipeline,
    executor: ThreadPoolExecutor,
    sink: InMemorySink,
    path: str,
    fixture: str,
    cls: type[Any],
) -> None:
    client = http_test_client(pipeline, executor)
    as_protobuf = cls.FromString(to_protobuf(path.rpartition("/")[2], fixture_bytes(fixture)))
    by_protobuf = client.post(path, content=as_protobuf.SerializeToString(), headers=PROTOBUF)
    records_by_protobuf = list(sink.records)
    sink.records.clear()
    by_json = client.post(path, content=fixture_bytes(fixture), headers=JSON)
    assert by_protobuf.status_code == by_json.status_code == 200
    response_cls = ExportLogsServiceResponse if "logs" in path else ExportTraceServiceResponse
    assert response_cls.FromString(by_protobuf.content) == json_format.Parse(
        by_json.text, response_cls()
    )
    assert [(r.topic, r.key, r.value, r.headers) for r in sink.records] == [
        (r.topic, r.key, r.value, r.headers) for r in records_by_protobuf
    ]
    assert len(records_by_protobuf) > 3


def test_json_trace_and_span_ids_are_hex_and_other_bytes_stay_base64() -> None:
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "0102030405060708",
                                "kind": 3,  # an enum as an integer
                                "startTimeUnixNano": 1735689600000000000,  # a number
                                "endTimeUnixNano": "1735689601000000000",  # a string
                                "links": [{"traceId": "00" * 16, "spanId": "ff" * 8}],
                                "attributes": [
                                    {"key": "traceId", "value": {"stringValue": "not-hex"}},
                                    {"key": "blob", "value": {"bytesValue": "AAEC"}},
                                ],
                                "someFutureField": {"ignored": True},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    request = ExportTraceServiceRequest.FromString(to_protobuf("traces", json.dumps(body).encode()))
    (parsed,) = request.resource_spans[0].scope_spans[0].spans
    assert parsed.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert parsed.span_id.hex() == "eee19b7ec3c1b174"
    assert parsed.parent_span_id.hex() == "0102030405060708"
    assert parsed.links[0].trace_id == bytes(16) and parsed.links[0].span_id == b"\xff" * 8
    assert parsed.kind == 3
    assert parsed.start_time_unix_nano == 1735689600000000000
    assert parsed.end_time_unix_nano == 1735689601000000000
    assert parsed.attributes[0].value.string_value == "not-hex"
    assert parsed.attributes[1].value.bytes_value == base64.b64decode("AAEC")


def test_gzip_bodies_are_inflated(client: TestClient, sink: InMemorySink) -> None:
    body = gzip.compress(valid_logs(2).SerializeToString())
    response = client.post(
        "/v1/logs", content=body, headers={**PROTOBUF, "content-encoding": "gzip"}
    )
    assert response.status_code == 200
    assert len(event_records(sink)) == 2


def test_traces_over_protobuf(client: TestClient, sink: InMemorySink) -> None:
    request = traces_request(
        span(events=[span_event("feedback.user_feedback", MINIMAL["user_feedback"])])
    )
    response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    assert len(event_records(sink)) == 1


# --- the status table ---------------------------------------------------------------------------


def _error_classes() -> list[type[OtlpFeedbackError]]:
    return [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, OtlpFeedbackError)
    ]


# (gRPC code, HTTP status, retryable) for every error class: the table, stated as the spec.
EXPECTED = {
    "OtlpFeedbackError": ("INTERNAL", 500, False),
    "ConfigError": ("INTERNAL", 500, False),
    "RetryableError": ("UNAVAILABLE", 503, True),
    "DeliveryTimeout": ("UNAVAILABLE", 503, True),
    "BackpressureError": ("RESOURCE_EXHAUSTED", 429, True),
    "SpoolFull": ("RESOURCE_EXHAUSTED", 429, True),
    "RateLimited": ("RESOURCE_EXHAUSTED", 429, True),
    "SinkUnavailable": ("UNAVAILABLE", 503, True),
    "RegistryUnavailable": ("UNAVAILABLE", 503, True),
    "PermanentError": ("INTERNAL", 500, False),
    "InvalidRequest": ("INVALID_ARGUMENT", 400, False),
    "UnsupportedMediaType": ("INVALID_ARGUMENT", 415, False),
    "RequestTooLarge": ("RESOURCE_EXHAUSTED", 413, False),
    "SchemaError": ("INTERNAL", 500, False),
    "EncodingError": ("INTERNAL", 500, False),
    "DeliveryFailed": ("INTERNAL", 500, False),
    "InternalError": ("INTERNAL", 500, False),
    "Unauthenticated": ("UNAUTHENTICATED", 401, False),
    "PermissionDenied": ("PERMISSION_DENIED", 403, False),
    "UnreadableRecord": ("INTERNAL", 500, False),
    "CorruptFrame": ("INTERNAL", 500, False),
    "UnknownSchemaId": ("INTERNAL", 500, False),
}


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_has_one_row_giving_both_transports_their_status(
    cls: type[OtlpFeedbackError],
) -> None:
    exc = cls("boom")
    code, retry_after = status_for(exc)
    http = http_status_for(exc)
    assert (code.name, http.status, retry_after is not None) == EXPECTED[cls.__name__]
    assert http.grpc_code == code  # one row, two columns
    assert (http.retry_after_s is not None) == (retry_after is not None)
    assert http.body.code == getattr(code_pb2, code.name)
    assert (retry_delay(http.body) is not None) == (retry_after is not None)


def test_the_expected_table_names_every_error_class() -> None:
    assert {c.__name__ for c in _error_classes()} == set(EXPECTED)
    assert STATUS_TABLE[-1].error is OtlpFeedbackError  # the catch-all is last


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (RateLimited("slow down", retry_after=0.2), 429, "1"),
        (SinkUnavailable("kafka down", retry_after=3.0), 503, "3"),
        (DeliveryTimeout("no ack"), 503, "1"),
        (RequestTooLarge("too many records"), 413, None),
        (InvalidRequest("nope"), 400, None),
        (ValueError("a bug"), 500, None),
    ],
)
@pytest.mark.parametrize("headers", [PROTOBUF, JSON], ids=["protobuf", "json"])
def test_pipeline_errors_answer_the_table_status_with_a_status_body_and_retry_after(
    executor: ThreadPoolExecutor,
    exc: BaseException,
    status: int,
    retry_after: str | None,
    headers: dict[str, str],
) -> None:
    client = http_test_client(_Raising(exc), executor)
    body = b"{}" if headers is JSON else b""
    response = client.post("/v1/logs", content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == headers["content-type"]
    assert response.headers.get("retry-after") == retry_after
    parsed = status_of(response)
    assert parsed.message
    if retry_after is not None:
        assert retry_delay(parsed) == pytest.approx(getattr(exc, "retry_after", None) or 1.0)


# --- what is refused before the pipeline --------------------------------------------------------


def test_other_paths_are_404_and_other_methods_405(client: TestClient) -> None:
    assert client.post("/v1/metrics", content=b"", headers=PROTOBUF).status_code == 404
    assert client.post("/", content=b"", headers=PROTOBUF).status_code == 404
    response = client.get("/v1/logs")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert client.put("/v1/traces", content=b"", headers=PROTOBUF).status_code == 405


@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", "", "application/xml"])
def test_other_content_types_are_415(client: TestClient, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/logs", content=b"x", headers=headers)
    assert response.status_code == 415
    assert "application/x-protobuf" in response.text


def test_content_type_parameters_and_case_are_accepted(client: TestClient) -> None:
    body = otlp_json(valid_logs())
    response = client.post(
        "/v1/logs", content=body, headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert response.status_code == 200


def test_an_unknown_content_encoding_is_415_with_a_status_body(client: TestClient) -> None:
    response = client.post("/v1/logs", content=b"x", headers={**PROTOBUF, "content-encoding": "br"})
    assert response.status_code == 415
    assert "gzip or identity" in status_of(response).message


@pytest.fixture
def small(pipeline: Pipeline, executor: ThreadPoolExecutor) -> TestClient:
    """A client of a receiver whose size cap is 64 KiB."""
    settings = load_config(receiver={"max_recv_msg_size_mib": 1 / 16})
    return http_test_client(pipeline, executor, settings)


def test_a_declared_length_over_the_cap_is_413(small: TestClient) -> None:
    response = small.post("/v1/logs", content=b"\0" * (64 * 1024 + 1), headers=PROTOBUF)
    assert response.status_code == 413
    assert status_of(response).code == code_pb2.RESOURCE_EXHAUSTED
    assert "retry-after" not in response.headers


def test_a_streamed_body_over_the_cap_is_413(small: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"\0" * 8192

    response = small.post("/v1/logs", content=chunks(), headers=PROTOBUF)
    assert response.status_code == 413


def test_a_gzip_bomb_is_413_without_inflating_it_all(small: TestClient) -> None:
    bomb = gzip.compress(b"\0" * (64 << 20), 9)  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 64 * 1024
    response = small.post(
        "/v1/logs", content=bomb, headers={**PROTOBUF, "content-encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "inflates past" in status_of(response).message


def test_inflate_stops_at_the_cap_plus_one_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    produced: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, **kwargs: Any) -> None:
            self._inner = real(**kwargs)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self._inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    with pytest.raises(RequestTooLarge):
        inflate(gzip.compress(b"\0" * (32 << 20)), 1000)
    assert sum(produced) == 1001


def test_inflate_reads_concatenated_gzip_members() -> None:
    assert inflate(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"


# --- hostile bodies: a clear status, and the server stays up --------------------------------------


def _deep_json(depth: int) -> bytes:
    value = '{"stringValue": "x"}'
    for _ in range(depth):
        value = '{"arrayValue": {"values": [' + value + "]}}"
    record = '{"eventName": "feedback.user_feedback", "body": ' + value + "}"
    return ('{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + record + "]}]}]}").encode()


def _deep_protobuf(depth: int) -> bytes:
    request = valid_logs()
    value = request.resource_logs[0].scope_logs[0].log_records[0].body
    for _ in range(depth):
        value = value.array_value.values.add()
    value.string_value = "x"
    return request.SerializeToString()


VALID = valid_logs().SerializeToString()
HOSTILE = [
    ("truncated protobuf", PROTOBUF, VALID[: len(VALID) // 2], 400),
    ("garbage protobuf", PROTOBUF, b"\xff\xfe\xfd" * 100, 400),
    ("deeply nested protobuf", PROTOBUF, _deep_protobuf(300), 400),
    ("truncated gzip", {**PROTOBUF, "content-encoding": "gzip"}, gzip.compress(VALID)[:-12], 400),
    ("not gzip", {**PROTOBUF, "content-encoding": "gzip"}, VALID, 400),
    ("bad UTF-8 JSON", JSON, b'{"resourceLogs": ["\xff\xfe"]}', 400),
    ("not JSON", JSON, b"{resourceLogs:", 400),
    ("JSON array", JSON, b"[]", 400),
    ("JSON of the wrong shape", JSON, b'{"resourceLogs": {"a": 1}}', 400),
    ("deeply nested JSON", JSON, _deep_json(200), 400),
    ("bracket bomb JSON", JSON, b"[" * 1_000_000, 400),
    ("non-hex trace id", JSON, b'{"resourceLogs":[{"scopeLogs":[{"logRecords":'
     b'[{"traceId":"xyz"}]}]}]}', 400),
    ("20 MiB", PROTOBUF, b"\0" * (20 << 20), 413),
]  # fmt: skip


@pytest.fixture(scope="module")
def live() -> Iterator[Any]:
    """A real receiver on free ports (in-memory sink), shared by the hostile-body tests."""
    with run_receiver(validation={"max_age_days": 36500}) as app:
        yield app


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_a_hostile_body_gets_a_clear_status_and_the_server_stays_up(
    live: Any, headers: dict[str, str], body: bytes, status: int
) -> None:
    url = f"{live.otlp_http.url}/v1/logs"
    with httpx.Client(timeout=30) as http:
        response = http.post(url, content=body, headers=headers)
        assert response.status_code == status
        assert status_of(response).message
        after = http.post(url, content=VALID, headers=PROTOBUF)
    assert after.status_code == 200


# --- authentication, rate limits ------------------------------------------------------------------


def test_requests_without_or_with_bad_credentials_are_401_and_good_ones_pass(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    auth = {"mode": "api_key", "api_keys": [{"client_id": "a", "key_sha256": hash_api_key(KEY)}]}
    client = guarded_test_client(pipeline, executor, auth=auth)
    body = VALID
    missing = client.post("/v1/logs", content=body, headers=PROTOBUF)
    wrong = client.post(
        "/v1/logs", content=body, headers={**PROTOBUF, "authorization": "Bearer nope"}
    )
    good = client.post(
        "/v1/logs", content=body, headers={**PROTOBUF, "authorization": f"Bearer {KEY}"}
    )
    assert (missing.status_code, wrong.status_code, good.status_code) == (401, 401, 200)
    assert status_of(missing).code == code_pb2.UNAUTHENTICATED
    assert "unknown API key" in status_of(wrong).message


def test_two_authorization_headers_are_refused_as_two_metadata_entries_are(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    auth = {"mode": "api_key", "api_keys": [{"client_id": "a", "key_sha256": hash_api_key(KEY)}]}
    client = guarded_test_client(pipeline, executor, auth=auth)
    headers = [*PROTOBUF.items(), ("authorization", f"Bearer {KEY}"), ("authorization", "x")]
    response = client.post("/v1/logs", content=VALID, headers=headers)
    assert response.status_code == 401
    assert "more than one authorization" in status_of(response).message


def test_a_token_without_the_scope_is_403(pipeline: Pipeline, executor: ThreadPoolExecutor) -> None:
    jwt_config = {"secret": HS_SECRET, "issuer": "https://idp.test", "audience": "otlp-feedback"}
    client = guarded_test_client(pipeline, executor, auth={"mode": "jwt", "jwt": jwt_config})
    token = make_jwt(HS_SECRET, scope="something:else")
    response = client.post(
        "/v1/logs", content=VALID, headers={**JSON, "authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
    assert status_of(response).code == code_pb2.PERMISSION_DENIED


def test_the_rate_limit_answers_429_with_retry_after_and_retry_info(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    limit = {"anonymous": {"events_per_s": 1, "burst": 2}}
    client = guarded_test_client(pipeline, executor, rate_limit=limit)
    first = client.post("/v1/logs", content=valid_logs(2).SerializeToString(), headers=PROTOBUF)
    second = client.post("/v1/logs", content=valid_logs(2).SerializeToString(), headers=PROTOBUF)
    assert first.status_code == 200
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    delay = retry_delay(status_of(second))
    assert delay is not None and delay > 0


def test_a_peer_is_spelled_as_grpc_spells_it() -> None:
    assert peer_of(("10.0.0.7", 51234)) == "ipv4:10.0.0.7:51234"
    assert peer_of(("::1", 5678)) == "ipv6:[::1]:5678"
    assert peer_of(None) == "unknown"


# --- metrics, concurrency, lifecycle, reload, TLS ---------------------------------------------


def test_responses_are_counted_with_the_http_transport_label(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    telemetry = Telemetry()
    client = http_test_client(pipeline, executor, telemetry=telemetry)
    client.post("/v1/logs", content=VALID, headers=PROTOBUF)
    client.post("/v1/traces", content=b"\xff", headers=PROTOBUF)
    text = telemetry.exposition().decode()
    assert 'export_responses_total{code="OK",signal="logs",transport="http"} 1.0' in text
    assert (
        'export_responses_total{code="INVALID_ARGUMENT",signal="traces",transport="http"} 1.0'
        in text
    )
    assert 'export_duration_seconds_count{signal="logs",transport="http"} 1.0' in text


class _Blocking:
    """A pipeline stand-in whose export waits for ``release`` (after setting ``entered``)."""

    tracing = False

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, signal: str, payload: bytes, *_: Any) -> ExportOutcome:
        self.entered.set()
        assert self.release.wait(30)
        return ExportOutcome()

    def shutdown(self, timeout: float = 10.0) -> None:
        self.release.set()


def test_requests_over_max_concurrent_requests_are_429_with_retry_after() -> None:
    blocking = _Blocking()
    settings = load_config(
        receiver={"http": {"endpoint": "127.0.0.1:0", "max_concurrent_requests": 1}}
    )
    receiver = HttpReceiver(settings.receiver, blocking)  # type: ignore[arg-type]
    with receiver:
        url = f"{receiver.url}/v1/logs"
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, url, content=VALID, headers=PROTOBUF, timeout=30)
            assert blocking.entered.wait(30)
            busy = httpx.post(url, content=VALID, headers=PROTOBUF, timeout=30)
            blocking.release.set()
            assert first.result().status_code == 200
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "1"


def test_shutdown_lets_a_request_in_progress_finish() -> None:
    blocking = _Blocking()
    settings = load_config(receiver={"http": {"endpoint": "127.0.0.1:0"}})
    receiver = HttpReceiver(settings.receiver, blocking)  # type: ignore[arg-type]
    receiver.start()
    url = f"{receiver.url}/v1/logs"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, url, content=VALID, headers=PROTOBUF, timeout=30)
        assert blocking.entered.wait(30)
        stopping = pool.submit(receiver.shutdown, 10.0)
        blocking.release.set()
        assert first.result().status_code == 200
        stopping.result()
    assert not receiver.serving
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, content=VALID, headers=PROTOBUF, timeout=5)


@pytest.mark.parametrize("run", [1, 2])
def test_start_then_shutdown_twice_and_shutdown_before_start_are_safe(
    pipeline: Pipeline, run: int
) -> None:
    settings = load_config(receiver={"http": {"endpoint": "127.0.0.1:0"}})
    never_started = HttpReceiver(settings.receiver, pipeline)
    never_started.shutdown()
    receiver = HttpReceiver(settings.receiver, pipeline)
    with receiver:
        assert receiver.serving
        response = httpx.post(f"{receiver.url}/v1/logs", content=VALID, headers=PROTOBUF)
        assert response.status_code == 200
    receiver.shutdown()
    assert not receiver.serving


def test_a_reload_of_api_keys_reaches_the_http_port() -> None:
    old = {"mode": "api_key", "api_keys": [{"client_id": "a", "key_sha256": hash_api_key(KEY)}]}
    with run_receiver(auth=old) as app:
        url = f"{app.otlp_http.url}/v1/logs"
        new_key = "the-rotated-key-of-client-a"
        headers = {**PROTOBUF, "authorization": f"Bearer {new_key}"}
        assert httpx.post(url, content=VALID, headers=headers).status_code == 401
        new_auth = {**old, "api_keys": [{"client_id": "a", "key_sha256": hash_api_key(new_key)}]}
        app.reload(app.settings.model_copy(update={"auth": load_config(auth=new_auth).auth}))
        assert httpx.post(url, content=VALID, headers=headers).status_code == 200


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", "one")


def test_tls_serves_https_and_follows_certificate_rotation(tmp_path: Path, pki: Pki) -> None:
    other = make_pki(tmp_path / "other", "two")
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"

    def install(source: Pki) -> None:
        for src, dst in ((source.server_cert, cert), (source.server_key, key)):
            staged = dst.with_suffix(".new")
            shutil.copyfile(src, staged)
            os.replace(staged, dst)

    install(pki)
    tls = {"enabled": True, "cert_file": str(cert), "key_file": str(key)}
    with run_receiver(tls=tls) as app:
        url = f"{app.otlp_http.url}/v1/logs"
        assert url.startswith("https://")

        def post(ca: Path) -> int:
            with httpx.Client(
                verify=ssl.create_default_context(cafile=ca)
            ) as http:  # a new connection: a new handshake
                return http.post(url, content=VALID, headers=PROTOBUF).status_code

        assert post(pki.ca_cert) == 200
        with pytest.raises(httpx.TransportError):  # plaintext on the TLS port
            httpx.post(url.replace("https", "http"), content=VALID, timeout=5)
        install(other)
        assert post(other.ca_cert) == 200
        with pytest.raises(httpx.ConnectError):
            post(pki.ca_cert)
        assert app.otlp_http.certificates is not None
        assert app.otlp_http.certificates.reloads == 1


def test_mutual_tls_refuses_a_client_without_a_certificate(pki: Pki) -> None:
    tls = {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "client_ca_file": str(pki.ca_cert),
    }
    with run_receiver(tls=tls) as app:
        url = f"{app.otlp_http.url}/v1/logs"
        with_cert = ssl.create_default_context(cafile=pki.ca_cert)
        with_cert.load_cert_chain(pki.client_cert, pki.client_key)
        with httpx.Client(verify=with_cert) as http:
            assert http.post(url, content=VALID, headers=PROTOBUF).status_code == 200
        without = ssl.create_default_context(cafile=pki.ca_cert)
        with pytest.raises(httpx.TransportError), httpx.Client(verify=without) as http:
            http.post(url, content=VALID, headers=PROTOBUF)


def test_the_sink_received_nothing_from_refused_requests(
    executor: ThreadPoolExecutor, pipeline: Pipeline, sink: InMemorySink
) -> None:
    client = http_test_client(pipeline, executor)
    client.post("/v1/logs", content=VALID[:5], headers=PROTOBUF)
    client.post("/v1/logs", content=b"{", headers=JSON)
    assert sink.records == []


def test_an_app_without_http_opens_no_http_port() -> None:
    with run_receiver(receiver={"http": {"enabled": False}}) as app:
        assert app.otlp_http is None


class _GatedSink(InMemorySink):
    """Holds each delivery until ``release``; refuses one that resumes after shutdown."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def deliver(self, records: Any, timeout: float) -> None:
        self.entered.set()
        assert self.release.wait(30)
        if not self.started:
            raise SinkUnavailable("shut down under a request in progress")
        super().deliver(records, timeout)


def test_app_shutdown_finishes_an_http_request_in_progress_before_the_pipeline_stops() -> None:
    sink = _GatedSink()
    with run_receiver(sink=sink, validation={"max_age_days": 36500}) as app:
        url = f"{app.otlp_http.url}/v1/logs"
        with ThreadPoolExecutor(2) as pool:
            request = pool.submit(httpx.post, url, content=VALID, headers=PROTOBUF, timeout=30)
            assert sink.entered.wait(30)
            stopping = pool.submit(app.shutdown, 10.0)
            deadline = time.monotonic() + 30
            while app.otlp_http.serving:  # until shutdown began: the HTTP port is closing
                assert time.monotonic() < deadline and not stopping.done()
                threading.Event().wait(0.01)
            sink.release.set()
            assert request.result().status_code == 200
            stopping.result()
    assert len(event_records(sink)) == 1
