"""CORS on the OTLP/HTTP port: which origins pass, the preflight, and silence when it is off."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from otlp_builders import MINIMAL, log_record, logs_request
from starlette.testclient import TestClient

from otlp_feedback.config import CorsConfig, load_config
from otlp_feedback.errors import ConfigError
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver.cors import CorsPolicy
from otlp_feedback.testing.receiver import http_test_client

APP = "https://app.example.com"
PATTERN = "https://*.example.com"


def policy(*origins: str) -> CorsPolicy:
    return CorsPolicy(CorsConfig(allowed_origins=list(origins)))


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://a.b.example.com", True),
        ("https://example.com", False),  # the wildcard is for subdomains only
        ("http://app.example.com", False),  # another scheme
        ("https://app.example.com:8443", False),  # another port
        ("https://evil.com.example.com.attacker.net", False),
        ("https://app.example.com.attacker.net", False),
        ("https://badexample.com", False),
        ("https://attacker.net/.example.com", False),  # a path is not an origin
        ("https://user@app.example.com", False),
        ("null", False),
        ("", False),
        ("https://.example.com", False),
    ],
)
def test_a_wildcard_matches_whole_subdomain_labels_of_its_scheme_and_port(
    origin: str, allowed: bool
) -> None:
    assert policy(PATTERN).allows(origin) is allowed


def test_exact_origins_match_exactly() -> None:
    cors = policy("http://localhost:3000")
    assert cors.allows("http://localhost:3000")
    assert not cors.allows("http://localhost:3001")
    assert not cors.allows("http://localhost")
    assert not cors.allows("https://localhost:3000")


def test_a_wildcard_with_a_port_matches_that_port_only() -> None:
    cors = policy("https://*.example.com:8443")
    assert cors.allows("https://a.example.com:8443")
    assert not cors.allows("https://a.example.com")


@pytest.mark.parametrize(
    "entry",
    [
        "https://app.example.com/",
        "app.example.com",
        "https://App.example.com",
        "https://*.com",
        "*",
        "ftp://x.example.com",
        "https://*.example.com/path",
    ],
)
def test_an_entry_that_is_not_an_origin_fails_the_config(entry: str) -> None:
    with pytest.raises(ConfigError, match="allowed_origins"):
        load_config(receiver={"http": {"cors": {"allowed_origins": [entry]}}})


def test_no_origins_means_no_cors_at_all() -> None:
    assert not policy().enabled
    assert policy().headers(APP) == []
    assert policy().preflight_headers(APP) is None


# --- over the port ------------------------------------------------------------------------------


class _Untouchable:
    """A pipeline that fails the test if a request reaches it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the pipeline was touched: {name}")


def client_for(pipeline: Any, executor: ThreadPoolExecutor, *origins: str) -> TestClient:
    settings = load_config(receiver={"http": {"cors": {"allowed_origins": list(origins)}}})
    return http_test_client(pipeline, executor, settings)


def preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }


@pytest.mark.parametrize("path", ["/v1/logs", "/v1/traces", "/api/v1/events"])
def test_a_preflight_is_answered_without_touching_the_pipeline(
    executor: ThreadPoolExecutor, path: str
) -> None:
    client = client_for(_Untouchable(), executor, PATTERN)
    response = client.options(path, headers=preflight(APP))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-methods"] == "POST"
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers
    assert "content-length" not in response.headers


def test_a_preflight_from_an_origin_not_allowed_is_403_without_cors_headers(
    executor: ThreadPoolExecutor,
) -> None:
    client = client_for(_Untouchable(), executor, APP)
    response = client.options("/v1/logs", headers=preflight("https://attacker.net"))
    assert response.status_code == 403
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_answers_to_an_allowed_origin_carry_cors_headers_errors_included(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    client = client_for(pipeline, executor, APP)
    body = logs_request(log_record("feedback.user_feedback", MINIMAL["user_feedback"]))
    headers = {"origin": APP, "content-type": "application/x-protobuf"}
    ok = client.post("/v1/logs", content=body.SerializeToString(), headers=headers)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == APP
    assert ok.headers["access-control-expose-headers"] == "Retry-After"
    bad = client.post("/v1/logs", content=b"\xff", headers=headers)
    assert bad.status_code == 400
    assert bad.headers["access-control-allow-origin"] == APP
    other = client.post(
        "/v1/logs",
        content=body.SerializeToString(),
        headers={**headers, "origin": "https://attacker.net"},
    )
    assert other.status_code == 200  # CORS is the browser's rule, not access control
    assert "access-control-allow-origin" not in other.headers


def test_without_allowed_origins_options_is_405_and_no_cors_header_is_sent(
    pipeline: Pipeline, executor: ThreadPoolExecutor
) -> None:
    client = client_for(pipeline, executor)
    assert client.options("/v1/logs", headers=preflight(APP)).status_code == 405
    body = logs_request(log_record("feedback.user_feedback", MINIMAL["user_feedback"]))
    response = client.post(
        "/v1/logs",
        content=body.SerializeToString(),
        headers={"origin": APP, "content-type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("access-control-")]
