"""Browser feedback tokens: format, verification, key rotation (SIGHUP included), the scope
rule per record, budgets and rate limits, and audit lines that never hold a token."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from otlp_builders import MINIMAL, TRACE_ID, event_records, log_record, logs_request
from starlette.testclient import TestClient

from otlp_feedback.app import FeedbackApp
from otlp_feedback.cli import main
from otlp_feedback.config import ClientRateLimit, Settings, TokensConfig, load_config
from otlp_feedback.errors import ConfigError, PermissionDenied, RateLimited, Unauthenticated
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver.audit import AUDIT_LOGGER
from otlp_feedback.receiver.auth import MINT, Authenticator, Principal, hash_api_key
from otlp_feedback.receiver.budgets import TokenLedger
from otlp_feedback.receiver.guard import RequestGuard
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing import run_receiver
from otlp_feedback.testing.receiver import guarded_test_client, http_test_client
from otlp_feedback.testing.security import make_jwt
from otlp_feedback.tokens import (
    AUDIENCE,
    TOKEN_TYPE,
    FeedbackToken,
    TokenVerifier,
    fingerprint,
    mint,
    parse_duration,
)

K1 = "k1-secret-of-at-least-thirty-two-bytes!"
K2 = "k2-secret-of-at-least-thirty-two-bytes!"
API_KEY = "backend-api-key"
SESSION = "sess-1"  # MINIMAL["user_feedback"]'s session


def tokens_config(signing: str | None = "k1", **keys: str) -> TokensConfig:
    return TokensConfig.model_validate({"keys": keys or {"k1": K1}, "signing_key_id": signing})


CONFIG = tokens_config()


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


# --- the format -------------------------------------------------------------------------------


def test_a_token_is_an_hs256_jwt_naming_its_key_type_and_scope() -> None:
    token = mint(CONFIG, client_id="web", session_id=SESSION, ttl_s=60, max_events=5)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "kid": "k1", "typ": TOKEN_TYPE}
    claims = jwt.decode(token, K1, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"] == "web"
    assert claims["sid"] == SESSION
    assert "tid" not in claims
    assert claims["evt"] == ["user_feedback"]
    assert claims["max"] == 5
    assert claims["exp"] - claims["iat"] == 60
    assert len(claims["jti"]) >= 16


def test_verify_gives_back_the_claims() -> None:
    token = mint(
        CONFIG,
        client_id="web",
        trace_id=TRACE_ID.upper(),
        event_types=["user_feedback", "model_response"],
    )
    claims = TokenVerifier(CONFIG).verify(token)
    assert claims.client_id == "web"
    assert claims.trace_id == TRACE_ID  # lower-cased, as events carry it
    assert claims.session_id is None
    assert claims.event_types == {"user_feedback", "model_response"}
    assert claims.max_events == CONFIG.default_max_events
    assert claims.key_id == "k1"
    assert claims.fingerprint == fingerprint(token)
    assert token not in claims.fingerprint


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "session id, a trace id, or both"),
        ({"session_id": SESSION, "ttl_s": 3601}, "max_ttl_s"),
        ({"session_id": SESSION, "ttl_s": 0}, "max_ttl_s"),
        ({"session_id": SESSION, "max_events": 1001}, "max_events_limit"),
        ({"session_id": SESSION, "event_types": ["nope"]}, "event types"),
        ({"session_id": SESSION, "event_types": []}, "event types"),
        ({"trace_id": "xyz"}, "32 hex digits"),
        ({"trace_id": "0" * 32}, "not all zero"),
        ({"session_id": ""}, "session_id"),
    ],
)
def test_mint_refuses_what_its_bounds_do_not_allow(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mint(CONFIG, client_id="web", **kwargs)


def test_mint_without_a_signing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="signing_key_id"):
        mint(TokensConfig(), client_id="web", session_id=SESSION)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1.5m", 90)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_signing_key_id_must_name_a_key_and_keys_must_be_long() -> None:
    with pytest.raises(ConfigError, match="signing_key_id"):
        load_config(tokens={"keys": {"k1": K1}, "signing_key_id": "k2"})
    with pytest.raises(ConfigError, match="32 bytes"):
        load_config(tokens={"keys": {"k1": "short"}})


# --- refused tokens ---------------------------------------------------------------------------


def test_an_expired_token_is_unauthenticated() -> None:
    token = mint(CONFIG, client_id="web", session_id=SESSION, ttl_s=60, clock=lambda: 1000.0)
    with pytest.raises(Unauthenticated, match="expired"):
        TokenVerifier(CONFIG).verify(token)


def test_a_forged_token_is_unauthenticated() -> None:
    forged = mint(tokens_config(k1=K2), client_id="web", session_id=SESSION)  # kid k1, wrong key
    with pytest.raises(Unauthenticated, match="Signature verification failed"):
        TokenVerifier(CONFIG).verify(forged)


def test_a_token_with_its_claims_changed_is_unauthenticated() -> None:
    head, claims, sig = mint(CONFIG, client_id="web", session_id=SESSION).split(".")
    payload = json.loads(jwt.utils.base64url_decode(claims))
    payload["max"] = 1000
    changed = jwt.utils.base64url_encode(json.dumps(payload).encode()).decode()
    with pytest.raises(Unauthenticated):
        TokenVerifier(CONFIG).verify(f"{head}.{changed}.{sig}")


def test_unsigned_and_unknown_key_tokens_are_unauthenticated() -> None:
    claims = {
        "sub": "web",
        "aud": AUDIENCE,
        "exp": 2**40,
        "iat": 0,
        "jti": "x",
        "evt": [],
        "max": 1,
        "sid": "s",
    }
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1", "typ": TOKEN_TYPE})
    with pytest.raises(Unauthenticated):
        TokenVerifier(CONFIG).verify(unsigned)
    other = jwt.encode(claims, K1, algorithm="HS256", headers={"kid": "k9", "typ": TOKEN_TYPE})
    with pytest.raises(Unauthenticated, match="unknown key id"):
        TokenVerifier(CONFIG).verify(other)


# --- rotation ---------------------------------------------------------------------------------


def test_an_old_key_verifies_until_it_is_removed() -> None:
    old = mint(CONFIG, client_id="web", session_id=SESSION)
    rotated = tokens_config("k2", k1=K1, k2=K2)
    new = mint(rotated, client_id="web", session_id=SESSION)
    assert jwt.get_unverified_header(new)["kid"] == "k2"
    assert TokenVerifier(rotated).verify(old).key_id == "k1"
    assert TokenVerifier(rotated).verify(new).key_id == "k2"
    retired = tokens_config("k2", k2=K2)
    with pytest.raises(Unauthenticated, match="unknown key id"):
        TokenVerifier(retired).verify(old)
    assert TokenVerifier(retired).verify(new).key_id == "k2"


@pytest.fixture
def app(settings: Settings) -> Iterator[FeedbackApp]:
    with_tokens = settings.model_copy(update={"tokens": CONFIG})
    with FeedbackApp(with_tokens, InMemoryRegistry(), InMemorySink()) as running:
        yield running


def test_a_sighup_reload_swaps_keys_and_keeps_budgets(app: FeedbackApp) -> None:
    old = mint(CONFIG, client_id="web", session_id=SESSION, max_events=3)
    caller = app.guard.check(bearer(old), "ipv4:10.0.0.1:1", "/v1/logs")
    caller.admit(2)
    rotated = tokens_config("k2", k1=K1, k2=K2)
    assert "tokens.signing_key_id" in app.reload(
        app.settings.model_copy(update={"tokens": rotated})
    )
    caller = app.guard.check(bearer(old), "ipv4:10.0.0.1:1", "/v1/logs")  # still verifies
    with pytest.raises(PermissionDenied, match="2 used"):
        caller.admit(2)  # the budget outlived the reload
    retired = tokens_config("k2", k2=K2)
    app.reload(app.settings.model_copy(update={"tokens": retired}))
    with pytest.raises(Unauthenticated):
        app.guard.check(bearer(old), "ipv4:10.0.0.1:1", "/v1/logs")
    assert app.otlp_http is None or app.otlp_http.guard is app.guard


# --- one credential check ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["none", "api_key", "jwt", "any"])
def test_a_token_is_accepted_whatever_the_auth_mode(mode: str) -> None:
    auth = load_config(
        auth={
            "mode": mode,
            "api_keys": [{"client_id": "backend", "key_sha256": hash_api_key(API_KEY)}],
            "jwt": {"secret": K2, "issuer": "https://idp.test", "audience": "otlp-feedback"},
        },
    ).auth
    token = mint(CONFIG, client_id="web", session_id=SESSION)
    principal = Authenticator(auth, CONFIG).authenticate(bearer(token))
    assert principal is not None
    assert principal.method == "feedback_token"
    assert principal.client_id == "web"
    with pytest.raises(PermissionDenied, match="cannot be used for feedback:mint"):
        Authenticator(auth, CONFIG).authenticate(bearer(token), MINT)


def test_without_a_signing_key_a_token_is_just_an_unknown_credential() -> None:
    auth = load_config(
        auth={"mode": "api_key", "api_keys": [{"client_id": "b", "key_sha256": "0" * 64}]}
    ).auth
    token = mint(CONFIG, client_id="web", session_id=SESSION)
    no_signing = tokens_config(None)
    with pytest.raises(Unauthenticated, match="unknown API key"):
        Authenticator(auth, no_signing).authenticate(bearer(token))
    # auth.mode none lets it in as before: as nobody in particular, with no scope.
    assert Authenticator(load_config().auth, no_signing).authenticate(bearer(token)) is None


def test_minting_needs_the_mint_scope() -> None:
    auth = load_config(
        auth={
            "mode": "any",
            "api_keys": [
                {"client_id": "writer", "key_sha256": hash_api_key("w")},
                {
                    "client_id": "minter",
                    "key_sha256": hash_api_key("m"),
                    "scopes": ["feedback:mint"],
                },
            ],
            "jwt": {"secret": K2, "issuer": "https://idp.test", "audience": "otlp-feedback"},
        },
    ).auth
    authenticator = Authenticator(auth, CONFIG)
    assert authenticator.authenticate(bearer("m"), MINT) == Principal("minter", "api_key")
    with pytest.raises(PermissionDenied, match="lacks the scope 'feedback:mint'"):
        authenticator.authenticate(bearer("w"), MINT)
    with pytest.raises(PermissionDenied, match="lacks the scope 'feedback:write'"):
        authenticator.authenticate(bearer("m"))  # a minting key does not write
    minting_jwt = make_jwt(K2, scope="feedback:mint")
    assert authenticator.authenticate(bearer(minting_jwt), MINT) is not None
    with pytest.raises(PermissionDenied, match="feedback:mint"):
        authenticator.authenticate(bearer(make_jwt(K2)), MINT)
    with pytest.raises(PermissionDenied, match="authenticated caller"):
        Authenticator(load_config().auth, CONFIG).authenticate([], MINT)


# --- the scope rule, per record ---------------------------------------------------------------


def user_feedback(session: str = SESSION, trace: str = TRACE_ID) -> Any:
    return log_record(
        "feedback.user_feedback",
        {**MINIMAL["user_feedback"], "session.id": session},
        trace_id=trace,
    )


@pytest.fixture
def guard() -> RequestGuard:
    settings = load_config(tokens={"keys": {"k1": K1}, "signing_key_id": "k1"})
    return RequestGuard.from_settings(settings, Telemetry())


def test_records_outside_the_scope_are_rejected_one_by_one_and_not_dead_lettered(
    pipeline: Pipeline, sink: InMemorySink, guard: RequestGuard
) -> None:
    other_trace = "0af7651916cd43dd8448eb211c80319c"
    token = mint(CONFIG, client_id="web", session_id=SESSION, trace_id=TRACE_ID)
    request = logs_request(
        user_feedback(),
        user_feedback(session="sess-2"),
        user_feedback(trace=other_trace),
        log_record("feedback.model_response", {**MINIMAL["model_response"], "session.id": SESSION}),
    )
    caller = guard.check(bearer(token), "ipv4:10.0.0.1:1", "/v1/logs")
    outcome = pipeline.export("logs", request.SerializeToString(), caller.client_id, caller)
    assert outcome.accepted == 1
    assert outcome.native == 0  # a scoped request takes the Python path, record by record
    reasons = [r.reason for r in outcome.rejections]
    assert reasons == [
        "out of the feedback token's scope: the event's session id is not the token's",
        "out of the feedback token's scope: the event's trace id is not the token's",
        "out of the feedback token's scope: event type model_response (allowed: user_feedback)",
    ]
    assert {r.category for r in outcome.rejections} == {"out_of_scope"}
    assert outcome.dead_lettered == 0
    assert [r.event_type for r in sink.records] == ["user_feedback"]  # no dead letters either
    (record,) = event_records(sink)
    assert dict(record.headers)["client_id"] == b"web"


# --- budgets and rate limits ------------------------------------------------------------------


def claims(max_events: int = 5, token_id: str = "t1", expires_at: int = 2**40) -> FeedbackToken:
    return FeedbackToken(
        token_id,
        "k1",
        "web",
        frozenset({"user_feedback"}),
        SESSION,
        None,
        expires_at,
        max_events,
        "k1:abcdef012345",
    )


def test_a_budget_admits_whole_requests_until_spent() -> None:
    ledger = TokenLedger(ClientRateLimit(events_per_s=1000, burst=1000), 10)
    token = claims(max_events=5)
    ledger.acquire(token, 3)
    with pytest.raises(PermissionDenied, match="budget of 5: 3 used, 3 more asked"):
        ledger.acquire(token, 3)  # refused whole, nothing taken
    ledger.acquire(token, 2)
    assert ledger.used("t1") == 5
    with pytest.raises(PermissionDenied):
        ledger.acquire(token, 1)


def test_each_token_has_its_own_small_bucket() -> None:
    now = [0.0]
    ledger = TokenLedger(ClientRateLimit(events_per_s=1, burst=2), 10, clock=lambda: now[0])
    ledger.acquire(claims(token_id="a"), 2)
    with pytest.raises(RateLimited) as refused:
        ledger.acquire(claims(token_id="a"), 1)
    assert refused.value.retry_after == pytest.approx(1.0)
    ledger.acquire(claims(token_id="b"), 2)  # another token, another bucket
    now[0] = 1.0
    ledger.acquire(claims(token_id="a"), 1)
    assert ledger.used("a") == 3


def test_the_ledger_forgets_expired_tokens_first_when_full() -> None:
    ledger = TokenLedger(ClientRateLimit(events_per_s=10, burst=10), 2, wall=lambda: 100.0)
    ledger.acquire(claims(token_id="live", expires_at=200), 1)
    ledger.acquire(claims(token_id="dead", expires_at=50), 1)
    ledger.acquire(claims(token_id="new", expires_at=200), 1)
    assert len(ledger) == 2
    assert ledger.used("live") == 1
    assert ledger.used("dead") == 0


def test_a_full_ledger_forgets_what_expired_since_then_before_the_least_recently_used() -> None:
    wall = [100.0]
    ledger = TokenLedger(ClientRateLimit(events_per_s=10, burst=10), 2, wall=lambda: wall[0])
    ledger.acquire(claims(token_id="a", expires_at=300), 1)
    ledger.acquire(claims(token_id="b", expires_at=150), 1)
    wall[0] = 200.0  # b has expired since it was admitted
    ledger.acquire(claims(token_id="c", expires_at=300), 1)
    assert (ledger.used("a"), ledger.used("b"), ledger.used("c")) == (1, 0, 1)
    ledger.acquire(claims(token_id="a", expires_at=300), 1)  # a is now the most recently used
    ledger.acquire(claims(token_id="d", expires_at=300), 1)  # none expired: c goes
    assert (ledger.used("a"), ledger.used("c"), ledger.used("d")) == (2, 0, 1)
    assert len(ledger) == 2


# --- audit ------------------------------------------------------------------------------------


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]


def test_audit_lines_name_a_token_by_its_fingerprint_never_whole(
    guard: RequestGuard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    expired = mint(CONFIG, client_id="web", session_id=SESSION, clock=lambda: 1000.0)
    with pytest.raises(Unauthenticated):
        guard.check(bearer(expired), "ipv4:10.0.0.1:1", "/v1/logs")
    spent = mint(CONFIG, client_id="web", session_id=SESSION, max_events=1)
    caller = guard.check(bearer(spent), "ipv4:10.0.0.1:1", "/v1/logs")
    with pytest.raises(PermissionDenied):
        caller.admit(2)
    lines = audit_lines(caplog)
    assert [line["event"] for line in lines] == ["unauthenticated", "budget_spent"]
    assert lines[0]["token"] == fingerprint(expired)
    assert lines[1]["token"] == fingerprint(spent)
    assert lines[1]["client"] == "web"
    for token in (expired, spent):
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text  # not even the signature


# --- over HTTP --------------------------------------------------------------------------------


def test_a_token_sends_over_otlp_http_and_the_events_api(
    pipeline: Pipeline, sink: InMemorySink, guard: RequestGuard, executor: ThreadPoolExecutor
) -> None:
    client = http_test_client(pipeline, executor, guard=guard)
    token = mint(CONFIG, client_id="web", session_id=SESSION)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/x-protobuf"}
    ok = client.post(
        "/v1/logs", content=logs_request(user_feedback()).SerializeToString(), headers=headers
    )
    assert ok.status_code == 200
    item = {"event_type": "user_feedback", "session_id": "sess-2", "thumbs": "down"}
    events = client.post(
        "/api/v1/events",
        json=[item, {**item, "session_id": SESSION}],
        headers={"authorization": f"Bearer {token}"},
    )
    assert events.status_code == 200, events.text
    body = events.json()
    assert body["accepted"] == 1
    assert "out of the feedback token's scope" in json.dumps(body["rejected"])
    assert len(event_records(sink)) == 2
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    refused = client.post(
        "/v1/logs", content=b"", headers={**headers, "authorization": f"Bearer {forged}"}
    )
    assert refused.status_code == 401


# --- minting surfaces -------------------------------------------------------------------------


def minting_client(pipeline: Pipeline, executor: ThreadPoolExecutor, **tokens: Any) -> TestClient:
    return guarded_test_client(
        pipeline,
        executor,
        auth={
            "mode": "api_key",
            "api_keys": [
                {"client_id": "writer", "key_sha256": hash_api_key("w")},
                {
                    "client_id": "backend",
                    "key_sha256": hash_api_key(API_KEY),
                    "scopes": ["feedback:mint"],
                },
            ],
        },
        tokens=tokens or {"keys": {"k1": K1}, "signing_key_id": "k1"},
    )


def test_post_feedback_tokens_mints_for_the_callers_client_id(
    pipeline: Pipeline, executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    client = minting_client(pipeline, executor)
    response = client.post(
        "/v1/feedback-tokens",
        json={"session_id": SESSION, "ttl_s": 120, "max_events": 3},
        headers={"authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    claims = TokenVerifier(CONFIG).verify(body["token"])
    assert (claims.client_id, claims.session_id, claims.max_events) == ("backend", SESSION, 3)
    assert body["expires_at"] == claims.expires_at
    (line,) = audit_lines(caplog)
    assert line["event"] == "token_minted"
    assert line["client"] == "backend"
    assert line["token"] == claims.fingerprint
    assert body["token"] not in caplog.text
    sent = client.post(
        "/api/v1/events",
        json={"event_type": "user_feedback", "session_id": SESSION, "thumbs": "up"},
        headers={"authorization": f"Bearer {body['token']}"},
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("authorization", "body", "status"),
    [
        ("w", {"session_id": SESSION}, 403),  # a key without feedback:mint
        ("nope", {"session_id": SESSION}, 401),
        (API_KEY, {}, 400),  # bound to nothing
        (API_KEY, {"session_id": SESSION, "ttl_s": 99999}, 400),
        (API_KEY, {"session_id": SESSION, "client_id": "other"}, 400),  # acts for the caller only
        (API_KEY, ["x"], 400),
    ],
)
def test_post_feedback_tokens_refuses(
    pipeline: Pipeline,
    executor: ThreadPoolExecutor,
    authorization: str,
    body: Any,
    status: int,
) -> None:
    client = minting_client(pipeline, executor)
    response = client.post(
        "/v1/feedback-tokens", json=body, headers={"authorization": f"Bearer {authorization}"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"


def test_a_feedback_token_cannot_mint_and_minting_is_off_without_a_signing_key(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    client = minting_client(pipeline, executor)
    token = mint(CONFIG, client_id="web", session_id=SESSION)
    response = client.post(
        "/v1/feedback-tokens",
        json={"session_id": SESSION},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403
    off = minting_client(pipeline, executor, keys={"k1": K1})
    response = off.post(
        "/v1/feedback-tokens",
        json={"session_id": SESSION},
        headers={"authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 404


def test_the_cli_prints_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"tokens:\n  keys:\n    k1: {K1}\n  signing_key_id: k1\n")
    args = ["tokens", "mint", "--config", str(config), "--session-id", SESSION]
    args += ["--trace-id", TRACE_ID, "--max-events", "7", "--ttl", "15m"]
    assert main(args) == 0
    token = capsys.readouterr().out.strip()
    claims = TokenVerifier(CONFIG).verify(token)
    assert (claims.session_id, claims.trace_id, claims.max_events) == (SESSION, TRACE_ID, 7)
    assert claims.client_id == "browser"
    assert claims.event_types == {"user_feedback"}
    assert main([*args[:-2], "--ttl", "2h"]) == 2  # over tokens.max_ttl_s
    assert "max_ttl_s" in capsys.readouterr().err


# --- over gRPC --------------------------------------------------------------------------------


def test_a_token_sends_over_grpc_with_its_scope_and_a_bad_one_is_unauthenticated(
    sink: InMemorySink,
) -> None:
    now = time.time_ns()
    request = logs_request(
        log_record("feedback.user_feedback", MINIMAL["user_feedback"], time_ns=now),
        log_record(
            "feedback.user_feedback", {**MINIMAL["user_feedback"], "session.id": "s-9"}, time_ns=now
        ),
    )
    with (
        run_receiver(sink=sink, tokens={"keys": {"k1": K1}, "signing_key_id": "k1"}) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        token = mint(CONFIG, client_id="web", session_id=SESSION)
        response = LogsServiceStub(channel).Export(request, metadata=bearer(token), timeout=10)
        assert response.partial_success.rejected_log_records == 1
        assert "out of the feedback token's scope" in response.partial_success.error_message
        expired = mint(CONFIG, client_id="web", session_id=SESSION, clock=lambda: 1000.0)
        with pytest.raises(grpc.RpcError) as refused:
            LogsServiceStub(channel).Export(request, metadata=bearer(expired), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    (record,) = event_records(sink)
    assert dict(record.headers)["client_id"] == b"web"


def test_a_lifetime_cap_under_a_second_is_refused() -> None:
    # Token times are whole seconds: a cap under one would mint tokens the verifier refuses.
    from otlp_feedback.config import load_config as load
    from otlp_feedback.errors import ConfigError as Refused

    with pytest.raises(Refused, match=r"tokens\.max_ttl_s"):
        load(tokens={"max_ttl_s": 0.5})
