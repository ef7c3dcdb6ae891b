"""The events API, ``POST /api/v1/events``, through the OTLP/HTTP port's ASGI app (Starlette's
TestClient) over a real pipeline into the in-memory sink: what a web developer sends, what it
answers, and what reaches the event and dead-letter topics."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from otlp_builders import RECEIVED_NS, event_records
from starlette.testclient import TestClient

from otlp_feedback.config import Settings, load_config
from otlp_feedback.consumer import EventDecoder
from otlp_feedback.dlq import ReplayReport, _replay_batch
from otlp_feedback.encoding.dead_letter import from_value
from otlp_feedback.events import UserFeedback
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver.auth import hash_api_key
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.receiver import guarded_test_client, http_test_client

URL = "/api/v1/events"
JSON = {"content-type": "application/json"}
KEY = "s3cret-key-of-the-web-app"
THUMBS_DOWN: dict[str, Any] = {
    "event_type": "user_feedback",
    "session_id": "s-1",
    "thumbs": "down",
    "comment": "wrong total",
}


@contextmanager
def running(
    settings: Settings, registry: InMemoryRegistry, sink: InMemorySink
) -> Iterator[Pipeline]:
    """A started pipeline on ``settings`` (as the ``pipeline`` fixture, whose settings are the
    defaults), shut down on leaving."""
    pipeline = Pipeline(settings, registry, sink, clock_ns=lambda: RECEIVED_NS)
    pipeline.start()
    try:
        yield pipeline
    finally:
        pipeline.shutdown(1.0)


@pytest.fixture
def client(pipeline: Pipeline, executor: ThreadPoolExecutor) -> TestClient:
    return http_test_client(pipeline, executor)


def post(client: TestClient, body: Any, **headers: str) -> httpx.Response:
    return client.post(URL, content=json.dumps(body), headers={**JSON, **headers})


def decoded(registry: InMemoryRegistry, sink: InMemorySink) -> list[Any]:
    """The events on the event topics, decoded as a consumer reads them."""
    decoder = EventDecoder(registry, {f"feedback.{t}": t for t in ("user_feedback",)})
    return [decoder.decode(r.topic, r.value, r.headers) for r in event_records(sink)]


def letters(sink: InMemorySink) -> list[Any]:
    return [(r, from_value(r.value)) for r in sink.records if r.topic == "feedback.dlq"]


def status_of(response: httpx.Response) -> status_pb2.Status:
    assert response.headers["content-type"] == "application/json"
    return json_format.Parse(response.text, status_pb2.Status())


# --- accepted events --------------------------------------------------------------------------


def test_one_event_is_accepted_and_reaches_kafka_typed_from_the_events_api(
    client: TestClient, registry: InMemoryRegistry, sink: InMemorySink
) -> None:
    sent_at = datetime.fromtimestamp(RECEIVED_NS // 10**9 - 60, UTC)  # a minute before
    response = post(client, {**THUMBS_DOWN, "timestamp": sent_at.isoformat()})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"accepted": 1, "rejected": []}
    (event,) = decoded(registry, sink)
    assert isinstance(event, UserFeedback)
    assert (event.carrier, event.session_id, event.thumbs, event.comment) == (
        "events_api",
        "s-1",
        "down",
        "wrong total",
    )
    assert event.timestamp == sent_at
    assert event.received_at.timestamp() * 1e9 == RECEIVED_NS
    (record,) = event_records(sink)
    assert record.key == b"s-1"  # user feedback is keyed by session, as over OTLP


def test_a_list_keeps_the_good_events_around_the_bad_ones_and_names_each_by_index(
    client: TestClient, registry: InMemoryRegistry, sink: InMemorySink
) -> None:
    body = [
        {**THUMBS_DOWN, "session_id": "good-0"},
        "not an event",
        {**THUMBS_DOWN, "carrier": "log_record"},
        {"event_type": "thumbs"},
        {**THUMBS_DOWN, "session_id": "good-4", "rating": 4.5},
        {**THUMBS_DOWN, "rating": "5"},
    ]
    response = post(client, body)
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "rejected": [
            {
                "index": 1,
                "event_type": None,
                "reason": "an event must be a JSON object, got a string",
            },
            {
                "index": 2,
                "event_type": "user_feedback",
                "reason": "carrier is set by the receiver, not by the sender",
            },
            {
                "index": 3,
                "event_type": "thumbs",
                "reason": 'unknown event_type "thumbs": one of user_feedback, '
                "performance_metrics, model_response, system_health, experiment_result",
            },
            {
                "index": 5,
                "event_type": "user_feedback",
                "reason": "rating: expected a number (double or int), got a string ('5')",
            },
        ],
    }
    assert [e.session_id for e in decoded(registry, sink)] == ["good-0", "good-4"]
    # Records the pipeline rejected are dead letters; what the door refused has no event type.
    assert [(letter.location, letter.source.carrier) for _, letter in letters(sink)] == [
        ("events[2]", "events_api"),
        ("events[5]", "events_api"),
    ]


def test_an_empty_list_is_processed(client: TestClient, sink: InMemorySink) -> None:
    response = post(client, [])
    assert (response.status_code, response.json()) == (200, {"accepted": 0, "rejected": []})
    assert sink.records == []


def test_a_retried_event_keeps_its_id_and_an_event_id_sent_is_kept(
    client: TestClient, registry: InMemoryRegistry, sink: InMemorySink
) -> None:
    post(client, THUMBS_DOWN)
    post(client, dict(reversed(list(THUMBS_DOWN.items()))))
    post(client, {**THUMBS_DOWN, "event_id": "fb-42"})
    first, retried, keyed = decoded(registry, sink)
    assert first.event_id == retried.event_id != keyed.event_id == "fb-42"


def test_gzip_bodies_are_inflated(
    client: TestClient, registry: InMemoryRegistry, sink: InMemorySink
) -> None:
    response = client.post(
        URL,
        content=gzip.compress(json.dumps(THUMBS_DOWN).encode()),
        headers={**JSON, "content-encoding": "gzip"},
    )
    assert response.json() == {"accepted": 1, "rejected": []}
    assert len(decoded(registry, sink)) == 1


def test_redaction_scrubs_the_event_and_its_dead_letter_alike(
    client: TestClient, registry: InMemoryRegistry, sink: InMemorySink
) -> None:
    pii = "mail me at jane.doe@example.com"
    good = {**THUMBS_DOWN, "comment": pii, "attributes": {"user_message": pii, "page": "/a"}}
    bad = {**good, "thumbs": "sideways", "service": "checkout-web"}
    response = post(client, [good, bad])
    assert response.json()["accepted"] == 1
    (event,) = decoded(registry, sink)
    assert event.comment == "mail me at [EMAIL]"
    assert event.attributes == {"user_message": "mail me at [EMAIL]", "page": "/a"}
    assert event.redacted_fields == ["comment", "attributes.user_message"]
    ((record, letter),) = letters(sink)
    body = json.loads(record.value)
    assert body["attributes"]["comment"] == "mail me at [EMAIL]"
    assert body["attributes"]["attributes"] == {"user_message": "mail me at [EMAIL]", "page": "/a"}
    assert b"jane.doe" not in record.value
    assert dict(record.headers)["source_service"] == b"checkout-web"
    assert dict(record.headers)["carrier"] == b"events_api"
    assert letter.source.event_type == "user_feedback"


# --- refused whole: the OTLP/HTTP statuses, as a JSON google.rpc.Status ----------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b'"thumbs down"', "the body must be one event (a JSON object) or a list"),
        (b"42", "the body must be one event"),
        (b'{"event_type": "user_feedback", "rating": NaN}', "NaN is not a JSON value"),
        (b'{"comment": "\xff"}', "the JSON body is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["not JSON", "a string", "a number", "NaN", "bad UTF-8", "deep nesting"],
)
def test_a_body_that_is_not_an_event_or_a_list_is_400(
    client: TestClient, sink: InMemorySink, body: bytes, message: str
) -> None:
    response = client.post(URL, content=body, headers=JSON)
    assert response.status_code == 400
    status = status_of(response)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert message in status.message
    assert sink.records == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-protobuf", ""])
def test_a_body_that_is_not_json_by_its_content_type_is_415_in_json(
    client: TestClient, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(URL, content=json.dumps(THUMBS_DOWN), headers=headers)
    assert response.status_code == 415
    assert "the events API takes application/json" in status_of(response).message


def test_content_type_parameters_are_accepted(client: TestClient) -> None:
    response = client.post(
        URL,
        content=json.dumps(THUMBS_DOWN),
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert response.json() == {"accepted": 1, "rejected": []}


def test_more_items_than_max_feedback_per_request_are_413_before_any_is_mapped(
    executor: ThreadPoolExecutor, registry: InMemoryRegistry, sink: InMemorySink
) -> None:
    settings = load_config(validation={"max_feedback_per_request": 3})
    with running(settings, registry, sink) as pipeline:
        client = http_test_client(pipeline, executor, settings)
        response = post(client, [1, 2, 3, 4])  # none of them an event: still counted
        assert response.status_code == 413
        assert "validation.max_feedback_per_request" in status_of(response).message
        assert post(client, [THUMBS_DOWN] * 3).json()["accepted"] == 3


def test_a_body_over_the_size_cap_is_413(pipeline: Pipeline, executor: ThreadPoolExecutor) -> None:
    settings = load_config(receiver={"max_recv_msg_size_mib": 1})
    client = http_test_client(pipeline, executor, settings)
    big = [{**THUMBS_DOWN, "comment": "x" * 1000}] * 1100
    response = post(client, big)
    assert response.status_code == 413
    assert status_of(response).code == code_pb2.RESOURCE_EXHAUSTED


def test_get_is_405_and_the_404_names_the_events_api(client: TestClient) -> None:
    assert client.get(URL).status_code == 405
    missing = client.post("/api/v1/event", content=b"{}", headers=JSON)
    assert missing.status_code == 404
    assert "POST /api/v1/events" in missing.text


# --- the same guard as OTLP ------------------------------------------------------------------


def test_credentials_are_required_as_on_the_otlp_paths(
    pipeline: Pipeline, executor: ThreadPoolExecutor, sink: InMemorySink
) -> None:
    keys = [{"client_id": "web-app", "key_sha256": hash_api_key(KEY)}]
    client = guarded_test_client(pipeline, executor, auth={"mode": "api_key", "api_keys": keys})
    missing = post(client, THUMBS_DOWN)
    assert missing.status_code == 401
    assert status_of(missing).code == code_pb2.UNAUTHENTICATED
    assert "authorization: Bearer" in status_of(missing).message
    assert post(client, THUMBS_DOWN, authorization="Bearer wrong").status_code == 401
    good = post(client, THUMBS_DOWN, authorization=f"Bearer {KEY}")
    assert good.json() == {"accepted": 1, "rejected": []}
    (record,) = event_records(sink)
    assert dict(record.headers)["client_id"] == b"web-app"


def test_a_client_id_in_the_body_is_rejected_and_never_overrides_the_authenticated_one(
    pipeline: Pipeline, executor: ThreadPoolExecutor, sink: InMemorySink
) -> None:
    keys = [{"client_id": "web-app", "key_sha256": hash_api_key(KEY)}]
    client = guarded_test_client(pipeline, executor, auth={"mode": "api_key", "api_keys": keys})
    spoofed = {**THUMBS_DOWN, "client_id": "admin"}
    response = post(client, [spoofed, THUMBS_DOWN], authorization=f"Bearer {KEY}")
    assert response.json()["rejected"][0]["reason"] == (
        "client_id is set by the receiver, not by the sender"
    )
    assert [dict(r.headers)["client_id"] for r in event_records(sink)] == [b"web-app"]


def test_the_rate_limit_counts_events_and_answers_429_with_retry_after(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    limit = {"anonymous": {"events_per_s": 1, "burst": 2}}
    client = guarded_test_client(pipeline, executor, rate_limit=limit)
    assert post(client, [THUMBS_DOWN, THUMBS_DOWN]).status_code == 200
    limited = post(client, [THUMBS_DOWN, THUMBS_DOWN])
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert status_of(limited).code == code_pb2.RESOURCE_EXHAUSTED


def test_responses_are_counted_under_the_events_signal_and_the_http_transport(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    telemetry = Telemetry()
    client = http_test_client(pipeline, executor, telemetry=telemetry)
    post(client, THUMBS_DOWN)
    client.post(URL, content=b"[", headers=JSON)
    responses = telemetry.export_responses
    assert responses.labels("events", "OK", "http")._value.get() == 1
    assert responses.labels("events", "INVALID_ARGUMENT", "http")._value.get() == 1


# --- dead-letter replay -----------------------------------------------------------------------


class _Letter:
    """What ``dlq._replay_batch`` reads of a consumed dead letter."""

    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value

    def offset(self) -> int:
        return 0


def test_a_dead_letter_of_the_events_api_replays_through_its_own_mapping(
    executor: ThreadPoolExecutor, registry: InMemoryRegistry, sink: InMemorySink
) -> None:
    strict = load_config(validation={"max_string_length": 10})
    with running(strict, registry, sink) as pipeline:
        response = post(
            http_test_client(pipeline, executor, strict), {**THUMBS_DOWN, "event_id": "fb-7"}
        )
    assert "over the 10-character limit" in response.json()["rejected"][0]["reason"]
    ((record, _),) = letters(sink)

    sink.records.clear()
    with running(load_config(), registry, sink) as relaxed:
        report = ReplayReport()
        _replay_batch(relaxed, [_Letter(record.value)], report)  # type: ignore[list-item]
    assert (report.replayed, report.still_failing) == (1, 0)
    (event,) = decoded(registry, sink)
    assert (event.event_id, event.carrier, event.comment) == ("fb-7", "events_api", "wrong total")


# --- what a reason quotes is scrubbed ---------------------------------------------------------


def test_what_a_reason_quotes_of_the_body_is_scrubbed_in_the_answer_the_log_and_the_dlq(
    client: TestClient, sink: InMemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    # A value cut at the quote limit must not leave a fragment the scrubbing would miss.
    long = "x" * 50 + " carol.jones@example.com trailing"
    body = [
        {**THUMBS_DOWN, "timestamp": "alice@example.com"},
        {**THUMBS_DOWN, "timestamp": long},
        {**THUMBS_DOWN, "dave@example.com": 1},
        {"event_type": "bob@example.com"},
    ]
    with caplog.at_level("INFO", logger="otlp_feedback.rejections"):
        response = post(client, body)
    assert response.status_code == 200
    rejected = response.json()["rejected"]
    assert [r["index"] for r in rejected] == [0, 1, 2, 3]
    assert "[EMAIL]" in rejected[0]["reason"] and "[EMAIL]" in rejected[2]["reason"]
    assert rejected[3]["event_type"] == "[EMAIL]"
    # The letters keep each record as sent (scrubbed where redaction covers it, for replay);
    # what their reasons quote is scrubbed like every reason.
    reasons = [letter.reason for _, letter in letters(sink)]
    reasons += [dict(record.headers)["reason"].decode() for record, _ in letters(sink)]
    assert len(reasons) == 6  # three letters: the door's refusal is not one
    for leaked in ("alice", "carol", "dave", "bob", "example.com"):
        assert leaked not in response.text
        assert leaked not in caplog.text
        assert all(leaked not in reason for reason in reasons)
