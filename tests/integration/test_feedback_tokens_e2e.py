"""Browser feedback tokens against the real broker and registry, over HTTP as a page sends them:
a backend mints one (``POST /v1/feedback-tokens`` with a minting API key), the page's preflight
passes CORS, then OTLP/JSON logs and ``/api/v1/events`` carry feedback with the token; each
event in scope is read back from Kafka field by field, the one out of scope is rejected by
record (and reaches no topic, not even the dead letters). An expired, a forged and an
out-of-scope token, and a disallowed origin, are refused as the README says."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from harness import read_raw

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, TokensConfig
from otlp_feedback.receiver.auth import hash_api_key
from otlp_feedback.tokens import fingerprint, mint

pytestmark = pytest.mark.integration

KEY = "k-2026-12-secret-of-at-least-32-bytes!"
OTHER = "another-secret-of-at-least-32-bytes!!"
MINTER = "backend-minting-key"
ORIGIN = "https://shop.example.com"
SESSION = "s-42"
TRACE_ID = "5b8efff798038103d269b633813fc60c"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        receiver={
            "endpoint": "127.0.0.1:0",
            "http": {"endpoint": "127.0.0.1:0", "cors": {"allowed_origins": ["https://*.example.com"]}},
            "delivery_timeout_s": 15,
        },
        auth={
            "mode": "api_key",
            "api_keys": [
                {"client_id": "web-shop", "key_sha256": hash_api_key(MINTER),
                 "scopes": ["feedback:mint"]},
            ],
        },
        tokens={"keys": {"k1": KEY}, "signing_key_id": "k1"},
    )  # fmt: skip


@pytest.fixture
def http(app: FeedbackApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{app.http_port}", timeout=30) as client:
        yield client


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def otlp_logs(*records: dict[str, Any]) -> dict[str, Any]:
    resource = {"attributes": [_attr("service.name", "shop-web")]}
    return {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": list(records)}]}]}


def feedback_record(session: str, comment: str) -> dict[str, Any]:
    return {
        "timeUnixNano": str(time.time_ns()),
        "eventName": "feedback.user_feedback",
        "traceId": TRACE_ID,
        "attributes": [
            _attr("session.id", session),
            _attr("feedback.thumbs", "down"),
            _attr("feedback.comment", comment),
        ],
    }


def test_a_minted_token_sends_from_a_page_and_refusals_are_as_documented(
    app: FeedbackApp,
    settings: Settings,
    http: httpx.Client,
    kafka_reader: Callable[..., list[dict[str, Any]]],
) -> None:
    minted = http.post(
        "/v1/feedback-tokens",
        json={"session_id": SESSION, "trace_id": TRACE_ID, "ttl_s": 600, "max_events": 10},
        headers={"authorization": f"Bearer {MINTER}"},
    )
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    as_page = {"authorization": f"Bearer {token}", "origin": ORIGIN}

    preflight = http.options(
        "/v1/logs",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"]

    logs = http.post(
        "/v1/logs",
        json=otlp_logs(feedback_record(SESSION, "wrong total"), feedback_record("s-7", "x")),
        headers=as_page,
    )
    assert logs.status_code == 200, logs.text
    assert logs.headers["access-control-allow-origin"] == ORIGIN
    partial = logs.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "out of the feedback token's scope: the event's session id" in partial["errorMessage"]

    events = http.post(
        "/api/v1/events",
        json=[
            {"event_type": "user_feedback", "session_id": SESSION, "trace_id": TRACE_ID,
             "rating": 1.5, "event_id": "page-1"},
            {"event_type": "user_feedback", "session_id": SESSION, "trace_id": OTHER_TRACE,
             "rating": 2},
        ],
        headers=as_page,
    )  # fmt: skip
    assert events.status_code == 200, events.text
    body = events.json()
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [1]
    assert "the event's trace id is not the token's" in body["rejected"][0]["reason"]

    # Refused as documented, each before anything reaches Kafka.
    keys = TokensConfig.model_validate({"keys": {"k1": KEY}, "signing_key_id": "k1"})
    expired = mint(keys, client_id="web-shop", session_id=SESSION, clock=lambda: time.time() - 3600)
    forged_keys = TokensConfig.model_validate({"keys": {"k1": OTHER}, "signing_key_id": "k1"})
    forged = mint(forged_keys, client_id="web-shop", session_id=SESSION, max_events=1000)
    for bad in (expired, forged):
        refused = http.post(
            "/api/v1/events",
            json={"event_type": "user_feedback", "session_id": SESSION, "thumbs": "up"},
            headers={**as_page, "authorization": f"Bearer {bad}"},
        )
        assert refused.status_code == 401, refused.text
        assert refused.headers["access-control-allow-origin"] == ORIGIN  # the page reads it
    other_session = mint(keys, client_id="web-shop", session_id="s-other")
    out_of_scope = http.post(
        "/api/v1/events",
        json={"event_type": "user_feedback", "session_id": SESSION, "thumbs": "up"},
        headers={**as_page, "authorization": f"Bearer {other_session}"},
    )
    assert out_of_scope.status_code == 200
    assert out_of_scope.json()["accepted"] == 0
    assert "session id is not the token's" in out_of_scope.json()["rejected"][0]["reason"]
    blocked = http.options(
        "/api/v1/events",
        headers={"origin": "https://shop.example.com.attacker.net",
                 "access-control-request-method": "POST"},
    )  # fmt: skip
    assert blocked.status_code == 403
    assert "access-control-allow-origin" not in blocked.headers

    records = kafka_reader(2)
    assert len(records) == 2  # the two in scope, nothing else
    by_carrier = {r["value"]["carrier"]: r for r in records}
    logged, api = by_carrier["log_record"], by_carrier["events_api"]
    for record in (logged, api):
        assert record["topic"] == settings.kafka.topic_for("user_feedback")
        assert record["key"] == SESSION.encode()
        assert record["headers"]["client_id"] == b"web-shop"
        v = record["value"]
        assert (v["session_id"], v["trace_id"], v["client_id"]) == (SESSION, TRACE_ID, "web-shop")
    v = logged["value"]
    assert (v["thumbs"], v["comment"], v["rating"], v["service"]) == (
        "down",
        "wrong total",
        None,
        "shop-web",
    )
    v = api["value"]
    assert (v["event_id"], v["rating"], v["thumbs"], v["comment"]) == ("page-1", 1.5, None, None)
    # Out-of-scope records are not dead-lettered (replayed, they would escape the scope). A
    # request's dead letters are confirmed by Kafka before its answer, so none can come later.
    assert settings.kafka.dlq_topic is not None
    with pytest.raises(AssertionError):
        read_raw(settings, settings.kafka.dlq_topic, 1, timeout=3.0)
    assert fingerprint(token) != token


def test_a_token_budget_is_a_hard_403_once_spent(
    app: FeedbackApp, http: httpx.Client, kafka_reader: Callable[..., list[dict[str, Any]]]
) -> None:
    keys = TokensConfig.model_validate({"keys": {"k1": KEY}, "signing_key_id": "k1"})
    token = mint(keys, client_id="web-shop", session_id=SESSION, max_events=2)
    event = {"event_type": "user_feedback", "session_id": SESSION, "thumbs": "up"}
    headers = {"authorization": f"Bearer {token}"}
    first = http.post("/api/v1/events", json=[event, {**event, "thumbs": "down"}], headers=headers)
    assert first.status_code == 200 and first.json()["accepted"] == 2
    spent = http.post("/api/v1/events", json=event, headers=headers)
    assert spent.status_code == 403
    assert "event budget of 2" in spent.json()["message"]
    assert len(kafka_reader(2)) == 2
