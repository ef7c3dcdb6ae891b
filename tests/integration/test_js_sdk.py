"""The stock OpenTelemetry JS SDK in Node, over OTLP/HTTP, against the real broker and registry.

``node/emit.mjs`` drives ``@opentelemetry/sdk-logs`` with the two stock log exporters,
``@opentelemetry/exporter-logs-otlp-proto`` (protobuf) and ``exporter-logs-otlp-http`` (JSON),
and ``sdk-trace-base`` with the matching trace exporters, on the scenario this module gives it
on stdin; every field of every event is then read back from Kafka through the registry with
confluent-kafka's AvroDeserializer. The JS SDK differs from the Python one where it matters to
the receiver: it sends every integral number as an int (``4.0`` is ``4``), writes OTLP/JSON
with hex ids and 64-bit integers as strings, and reports a partial success only through
``diag.warn``.

Node must be there: the tests skip without ``node`` only outside CI (``OFB_TEST_REQUIRE_NODE``,
which ``.ci/run`` sets, or ``CI``, which CI services set), and fail wherever ``node`` is there
and its packages are not installed (``make install`` runs ``npm ci`` in ``node/``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings
from otlp_feedback.receiver.auth import hash_api_key

pytestmark = pytest.mark.integration

NODE_PROJECT = Path(__file__).parent / "node"
# npm writes this on every install; the Makefile uses it as its stamp too.
INSTALLED = NODE_PROJECT / "node_modules" / ".package-lock.json"

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
RESOURCE = {"service.name": "web-widget", "deployment.environment.name": "prod"}
# The newest schema version of each type, which producers write (and name in a header).
SCHEMA_VERSION = {"user_feedback": b"2", "performance_metrics": b"4", "model_response": b"3"}
# (protocol, compression): each exporter package, and gzip on one of them.
VARIANTS = [("proto", "none"), ("json", "gzip")]


def _node_required() -> bool:
    """Under ``.ci/run`` (``OFB_TEST_REQUIRE_NODE``) or a CI service (``CI``), unless "", 0 or
    false: there a missing ``node`` is a failure, not a skip."""
    return any(
        os.environ.get(name, "").lower() not in ("", "0", "false")
        for name in ("OFB_TEST_REQUIRE_NODE", "CI")
    )


@pytest.fixture
def node() -> str:
    """The ``node`` binary, checked before the receiver starts (tests list it first)."""
    node = shutil.which("node")
    if node is None:
        if _node_required():
            pytest.fail("node is not on PATH, and CI or OFB_TEST_REQUIRE_NODE is set")
        pytest.skip("node is not on PATH (the OTel JS SDK tests need Node >= 18.19)")
    if not INSTALLED.exists():
        pytest.fail(
            f"the OTel JS SDK is not installed: run `make install` (npm ci in {NODE_PROJECT})"
        )
    return node


def _hr(ns: int) -> list[int]:
    """An OTel JS ``HrTime``: [seconds, nanoseconds]."""
    return [ns // 10**9, ns % 10**9]


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def emit(
    node: str,
    app: FeedbackApp,
    protocol: str,
    scenario: dict[str, Any],
    compression: str,
    headers: tuple[str, ...] = (),
) -> tuple[int, dict[str, Any]]:
    """Run ``node/emit.mjs`` against ``app``'s OTLP/HTTP port, with ``name=value`` request
    ``headers``; (exit code, its JSON report)."""
    done = subprocess.run(
        [node, str(NODE_PROJECT / "emit.mjs"), "--endpoint", f"http://127.0.0.1:{app.http_port}",
         "--protocol", protocol, "--compression", compression,
         *(arg for header in headers for arg in ("--header", header))],
        input=json.dumps({"resource": RESOURCE, **scenario}).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr.decode()
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def emitted(
    node: str,
    app: FeedbackApp,
    protocol: str,
    scenario: dict[str, Any],
    compression: str,
    items: tuple[str, int],
    headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``emit``, asserting that the SDK exported: exit 0, one export of ``items`` (signal,
    count) answered with success, no warning; its report."""
    code, report = emit(node, app, protocol, scenario, compression, headers)
    assert code == 0, report
    signal, count = items
    assert report["exports"] == [{"signal": signal, "code": 0, "error": None, "items": count}]
    assert report["warnings"] == []
    return report


def envelope(**fields: Any) -> dict[str, Any]:
    """The envelope fields of an event from this module's resource, as read back (no auth, no
    PII: ``client_id`` null and nothing redacted)."""
    return {
        "carrier": "log_record",
        "service": "web-widget",
        "environment": "prod",
        "trace_id": None,
        "span_id": None,
        "request_id": None,
        "session_id": None,
        "user_id": None,
        "attributes": {},
        "client_id": None,
        "redacted_fields": [],
        **fields,
    }


def user_feedback(**fields: Any) -> dict[str, Any]:
    return {"rating": None, "thumbs": None, "comment": None, "tags": [], **envelope(**fields)}


def performance_metrics(**fields: Any) -> dict[str, Any]:
    return {
        "model": None,
        "response_model": None,
        "provider": None,
        "operation": None,
        "latency_ms": None,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": None,
        "success": True,
        "error_type": None,
        "cache_hit": None,
        "custom_metrics": {},
        "cache_read_input_tokens": None,
        "reasoning_output_tokens": None,
        "tokens_total": None,
        **envelope(**fields),
    }


def model_response(**fields: Any) -> dict[str, Any]:
    return {
        "model": None,
        "quality_score": None,
        "accuracy": None,
        "relevance": None,
        "coherence": None,
        "completeness": None,
        "safety": None,
        "custom_scores": {},
        "evaluation_name": None,
        "explanation": None,
        "prompt_hash": None,
        "response_length": None,
        "finish_reasons": [],
        "temperature": None,
        "top_p": None,
        "max_tokens": None,
        "top_k": None,
        "score_label": None,
        "evaluator": None,
        **envelope(**fields),
    }


def check_record(record: dict[str, Any], key: bytes, expected: dict[str, Any]) -> str:
    """Assert one record read from Kafka field by field (framing, key, headers, every value
    field); the receiver-made ``event_id`` and ``received_at`` are checked for form. Returns
    the event id."""
    event_type = record["headers"]["event_type"].decode()
    value = dict(record["value"])
    event_id, received_at = value.pop("event_id"), value.pop("received_at")
    assert value == expected, event_type
    assert record["raw"][0] == 0  # Confluent framing: magic byte, then the schema id
    assert record["topic"].endswith("." + event_type)
    assert record["key"] == key
    assert record["headers"]["event_id"].decode() == event_id
    assert record["headers"].get("client_id") == (
        expected["client_id"].encode() if expected["client_id"] else None
    )
    assert record["headers"]["schema_version"] == SCHEMA_VERSION[event_type]
    assert record["headers"].get("trace_id") == (
        expected["trace_id"].encode() if expected["trace_id"] else None
    )
    assert isinstance(received_at, datetime) and received_at.tzinfo is not None
    return str(event_id)


def by_session_or_request(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in records:
        name = r["value"]["session_id"] or r["value"]["request_id"]
        assert name not in out, f"two records for {name}"
        out[name] = r
    return out


LOGS = [
    {
        "eventName": "feedback.user_feedback",
        "timestamp": _hr(T0),
        "body": "Great answer, thanks",
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
        "attributes": {
            "session.id": "sess-1",
            "user.id": "user-1",
            "gen_ai.response.id": "resp-1",
            "feedback.rating": 4,
            "feedback.thumbs": "up",
            "feedback.tags": ["helpful", "fast"],
            "app.page": "chat",
            "app.retries": 2,
            "app.beta": True,
        },
    },
    {
        "eventName": "feedback.user_feedback",
        "timestamp": _hr(T0 + 1_000_000),
        "attributes": {
            "session.id": "sess-2",
            "feedback.rating": 2.5,
            "feedback.thumbs": "down",
            "feedback.comment": "Missed the point",
        },
    },
    {
        "eventName": "feedback.performance_metrics",
        "timestamp": _hr(T0 + 2_000_000),
        "attributes": {
            "event.id": "perf-fixed-id",
            "feedback.request_id": "req-3",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "feedback.latency_ms": 812.5,
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 48,
            "gen_ai.usage.cache_read.input_tokens": 100,
            "feedback.cost_usd": 0.0031,
            "feedback.success": False,
            "error.type": "rate_limited",
            "feedback.cache_hit": True,
            "feedback.metric.ttft_ms": 95,  # 95.0 in JS is the int 95: widened back
        },
    },
]


@pytest.mark.parametrize(("protocol", "compression"), VARIANTS)
def test_js_sdk_logs_arrive_typed_and_complete(
    node: str,
    app: FeedbackApp,
    kafka_reader: Callable[..., list[dict[str, Any]]],
    protocol: str,
    compression: str,
) -> None:
    report = emitted(node, app, protocol, {"logs": LOGS}, compression, ("logs", 3))
    assert report["partialSuccess"] == []

    records = by_session_or_request(kafka_reader(3))
    assert sorted(records) == ["req-3", "sess-1", "sess-2"]
    first = check_record(
        records["sess-1"],
        b"sess-1",
        user_feedback(
            timestamp=_at(T0),
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
            session_id="sess-1",
            user_id="user-1",
            request_id="resp-1",
            rating=4.0,
            thumbs="up",
            comment="Great answer, thanks",
            tags=["helpful", "fast"],
            attributes={"app.page": "chat", "app.retries": "2", "app.beta": "true"},
        ),
    )
    assert uuid.UUID(first).version == 5
    second = check_record(
        records["sess-2"],
        b"sess-2",
        user_feedback(
            timestamp=_at(T0 + 1_000_000),
            session_id="sess-2",
            rating=2.5,
            thumbs="down",
            comment="Missed the point",
        ),
    )
    assert uuid.UUID(second).version == 5 and second != first
    perf = check_record(
        records["req-3"],
        b"req-3",
        performance_metrics(
            timestamp=_at(T0 + 2_000_000),
            request_id="req-3",
            model="gpt-4o",
            response_model="gpt-4o-2024-08-06",
            provider="openai",
            operation="chat",
            latency_ms=812.5,
            input_tokens=120,
            output_tokens=48,
            tokens_total=168,
            cache_read_input_tokens=100,
            cost_usd=0.0031,
            success=False,
            error_type="rate_limited",
            cache_hit=True,
            custom_metrics={"ttft_ms": 95.0},
        ),
    )
    assert perf == "perf-fixed-id"
    assert (app.pipeline.stats.accepted, app.pipeline.stats.rejected) == (3, 0)


MIXED = [
    {
        "eventName": "feedback.user_feedback",
        "timestamp": _hr(T0),
        "attributes": {"session.id": "m-1", "feedback.thumbs": "up"},
    },
    {  # no session.id
        "eventName": "feedback.user_feedback",
        "timestamp": _hr(T0),
        "attributes": {"feedback.rating": 4},
    },
    {  # out of range
        "eventName": "feedback.user_feedback",
        "timestamp": _hr(T0),
        "attributes": {"session.id": "m-3", "feedback.rating": 11},
    },
    {  # a number sent as a string
        "eventName": "feedback.user_feedback",
        "timestamp": _hr(T0),
        "attributes": {"session.id": "m-4", "feedback.rating": "5"},
    },
    {  # 12.0 is sent by JS as the int 12; 12.5 stays a double, which is no token count
        "eventName": "feedback.performance_metrics",
        "timestamp": _hr(T0),
        "attributes": {"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 12.5},
    },
    {
        "eventName": "feedback.performance_metrics",
        "timestamp": _hr(T0 + 1_000_000),
        "attributes": {"feedback.request_id": "m-6", "gen_ai.request.model": "gpt-4o-mini"},
    },
]


# The receiver's partial_success as the JS SDK reports it, word for word: where each rejected
# record sat in the request, its type, and why (the format test_otlp_http.py holds to gRPC's).
MIXED_REJECTED = "; ".join(
    [
        "4 feedback record(s) rejected: "
        "resource_logs[0].scope_logs[0].log_records[1] (user_feedback): session.id is required",
        "resource_logs[0].scope_logs[0].log_records[2] (user_feedback): "
        "feedback.rating: Input should be less than or equal to 5 (got 11)",
        "resource_logs[0].scope_logs[0].log_records[3] (user_feedback): "
        "feedback.rating: expected a number (double or int), got a string ('5')",
        "resource_logs[0].scope_logs[0].log_records[4] (performance_metrics): "
        "gen_ai.usage.input_tokens: expected an int, got a double (12.5)",
    ]
)


@pytest.mark.parametrize(("protocol", "compression"), VARIANTS)
def test_js_sdk_mixed_batch_gets_partial_success_and_the_good_records_land(
    node: str,
    app: FeedbackApp,
    kafka_reader: Callable[..., list[dict[str, Any]]],
    protocol: str,
    compression: str,
) -> None:
    # A partial success is a success to the SDK (nothing to retry); it reports the rejection.
    report = emitted(node, app, protocol, {"logs": MIXED}, compression, ("logs", 6))
    (partial,) = report["partialSuccess"]
    # int64 is a string in OTLP/JSON; the proto exporter's decoder gives a number.
    assert partial == {
        "rejectedLogRecords": 4 if protocol == "proto" else "4",
        "errorMessage": MIXED_REJECTED,
    }

    records = by_session_or_request(kafka_reader(2))
    assert sorted(records) == ["m-1", "m-6"]
    check_record(
        records["m-1"],
        b"m-1",
        user_feedback(timestamp=_at(T0), session_id="m-1", thumbs="up"),
    )
    check_record(
        records["m-6"],
        b"m-6",
        performance_metrics(timestamp=_at(T0 + 1_000_000), request_id="m-6", model="gpt-4o-mini"),
    )
    assert (app.pipeline.stats.accepted, app.pipeline.stats.rejected) == (2, 4)


SPANS = [
    {
        "name": "chat gpt-4o-mini",
        "startTime": _hr(T0 + 10_000_000),
        "endTime": _hr(T0 + 260_000_000),  # 250 ms later
        "attributes": {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.provider.name": "openai",
            "gen_ai.response.id": "resp-9",
            "gen_ai.usage.input_tokens": 30,
            "gen_ai.usage.output_tokens": 5,
            "error.type": "timeout",
            "session.id": "sess-9",
        },
        "events": [
            {
                "name": "feedback.user_feedback",
                "attributes": {"feedback.thumbs": "down", "feedback.comment": "too slow"},
                "time": _hr(T0 + 10_500_000),
            },
            {
                "name": "gen_ai.evaluation.result",
                "attributes": {
                    "gen_ai.evaluation.name": "relevance",
                    "gen_ai.evaluation.score.value": 0.66,
                    "gen_ai.evaluation.explanation": "partly on topic",
                },
                "time": _hr(T0 + 10_600_000),
            },
        ],
        "status": {"code": "ERROR", "message": "deadline exceeded"},
    }
]


@pytest.mark.parametrize(("protocol", "compression"), VARIANTS)
def test_js_sdk_genai_span_and_its_span_events_arrive_typed_and_complete(
    node: str,
    app: FeedbackApp,
    kafka_reader: Callable[..., list[dict[str, Any]]],
    protocol: str,
    compression: str,
) -> None:
    report = emitted(node, app, protocol, {"spans": SPANS}, compression, ("traces", 1))
    assert report["partialSuccess"] == []
    ((trace_id, span_id),) = [(s["traceId"], s["spanId"]) for s in report["spans"]]

    records = {r["headers"]["event_type"].decode(): r for r in kafka_reader(3)}
    assert sorted(records) == ["model_response", "performance_metrics", "user_feedback"]
    # A span event's unmapped span attributes travel with it (README, "Attribute precedence").
    span_attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": "30",
        "gen_ai.usage.output_tokens": "5",
        "error.type": "timeout",
    }
    span_envelope = {
        "service": "web-widget",
        "environment": "prod",
        "trace_id": trace_id,
        "span_id": span_id,
        "request_id": "resp-9",
        "session_id": "sess-9",
    }
    check_record(
        records["performance_metrics"],
        b"resp-9",
        performance_metrics(
            **span_envelope,
            carrier="genai_span",
            timestamp=_at(T0 + 260_000_000),
            model="gpt-4o-mini",
            provider="openai",
            operation="chat",
            latency_ms=250.0,
            input_tokens=30,
            output_tokens=5,
            tokens_total=35,
            success=False,
            error_type="timeout",
        ),
    )
    check_record(
        records["user_feedback"],
        b"sess-9",
        user_feedback(
            **span_envelope,
            carrier="span_event",
            timestamp=_at(T0 + 10_500_000),
            attributes={"gen_ai.request.model": "gpt-4o-mini", **span_attributes},
            thumbs="down",
            comment="too slow",
        ),
    )
    check_record(
        records["model_response"],
        b"resp-9",
        model_response(
            **span_envelope,
            carrier="span_event",
            timestamp=_at(T0 + 10_600_000),
            attributes=span_attributes,
            model="gpt-4o-mini",
            relevance=0.66,
            evaluation_name="relevance",
            explanation="partly on topic",
        ),
    )
    assert (app.pipeline.stats.accepted, app.pipeline.stats.rejected) == (3, 0)


def readme_snippet() -> str:
    """The JavaScript block of the README's "From Node / the browser JS SDK"."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### From Node / the browser JS SDK", 1)[1]
    return section.split("```js\n", 1)[1].split("```", 1)[0]


def test_the_readme_js_snippet_runs_as_printed(
    node: str, app: FeedbackApp, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    code = readme_snippet().replace("http://localhost:4318", f"http://127.0.0.1:{app.http_port}")
    # Imports resolve from the working directory for code given with --eval.
    done = subprocess.run(
        [node, "--input-type=module", "--eval", code],
        cwd=NODE_PROJECT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()

    (record,) = kafka_reader(1)
    value = record["value"]
    check_record(
        record,
        b"s-42",
        user_feedback(
            timestamp=value["timestamp"],  # the SDK's clock at emit
            environment=None,
            session_id="s-42",
            rating=5.0,
            thumbs="up",
            comment="Spot on, thanks",
        ),
    )
    assert value["timestamp"] <= value["received_at"]
    # What the README says of browsers: no CORS preflight is answered.
    preflight = httpx.options(
        f"http://127.0.0.1:{app.http_port}/v1/logs",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert preflight.status_code == 405


WIDGET_KEY = "js-widget-4c1d9e0f7a"


@pytest.mark.parametrize(("protocol", "compression"), VARIANTS)
def test_js_sdk_credentials_name_the_client_and_a_refusal_fails_the_export(
    node: str,
    make_settings: Callable[..., Settings],
    kafka_reader: Callable[..., list[dict[str, Any]]],
    protocol: str,
    compression: str,
) -> None:
    auth = {
        "mode": "api_key",
        "api_keys": [{"client_id": "web-widget-js", "key_sha256": hash_api_key(WIDGET_KEY)}],
    }
    one = {"logs": LOGS[1:2]}
    with FeedbackApp(make_settings(auth=auth)) as app:
        bearer = (f"authorization=Bearer {WIDGET_KEY}",)
        emitted(node, app, protocol, one, compression, ("logs", 1), bearer)
        refused_code, refused = emit(
            node, app, protocol, one, compression, ("authorization=Bearer not-a-key",)
        )
        unsigned_code, unsigned = emit(node, app, protocol, one, compression)

    # 401 is final to the SDK: the export fails (no retry), with the receiver's google.rpc.Status.
    assert (refused_code, unsigned_code) == (1, 1)
    for answer, reason in ((refused, "unknown API key"), (unsigned, "missing credentials")):
        (failed,) = answer["exports"]
        body = failed.pop("body")
        assert failed == {
            "signal": "logs",
            "code": 1,
            "error": "OTLPExporterError: Unauthorized",
            "items": 1,
            "status": 401,
        }
        if protocol == "json":
            assert json.loads(body)["code"] == 16  # UNAUTHENTICATED
            assert json.loads(body)["message"].startswith(reason)
        else:
            assert reason in body  # a serialized Status: its message is readable as text

    (record,) = kafka_reader(1)
    check_record(
        record,
        b"sess-2",
        user_feedback(
            timestamp=_at(T0 + 1_000_000),
            session_id="sess-2",
            rating=2.5,
            thumbs="down",
            comment="Missed the point",
            client_id="web-widget-js",
        ),
    )
