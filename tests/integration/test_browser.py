"""A real headless Chromium sends feedback from a page on another origin than the receiver's.

The page (``browser/page.html``) is served by a static HTTP server of this module on
``http://127.0.0.1:<A>``; the receiver's OTLP/HTTP port is ``http://127.0.0.1:<B>`` (another
port is another origin), with the page's origin in ``receiver.http.cors.allowed_origins``. The
page gets a feedback token (minted over ``POST /v1/feedback-tokens``, or by
``otlp_feedback.tokens.mint`` for the bad ones) in its URL fragment and sends a thumbs-down with
a comment as the README's browser example does: plain ``fetch`` of OTLP JSON to ``/v1/logs``, of
the events API, and the OTel JS web SDK's log exporter (``browser/sdk.js``, bundled by esbuild
here). The ``Authorization`` header makes Chromium preflight every request for real. Each event
is read back from Kafka through the registry, field by field; then the refusals as the page
observes them: an expired token (401), a token for another session (rejected by record), a
forged token (401), and a page on an origin not allowed (fetch rejects: the browser blocks it).

Chromium is Debian's ``chromium`` (``.ci/run`` installs it), driven by ``playwright-core`` from
``browser/`` (``make install`` runs ``npm ci`` there). As for ``test_js_sdk.py``: without them the
test skips on a developer's machine, and fails under ``.ci/run`` (``OFB_TEST_REQUIRE_NODE``)."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from test_js_sdk import SCHEMA_VERSION, _node_required

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, TokensConfig
from otlp_feedback.encoding.outbound import RECEIVER_HEADERS
from otlp_feedback.receiver.auth import hash_api_key
from otlp_feedback.tokens import mint

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).parent / "browser"
# npm writes this on every install; the Makefile uses it as its stamp too.
INSTALLED = PROJECT / "node_modules" / ".package-lock.json"
KEY = "k-2026-12-secret-of-at-least-32-bytes!"
FORGER = "another-secret-of-at-least-32-bytes!!"
MINTER = "backend-minting-key"
SESSION = "s-42"


@pytest.fixture
def tools() -> tuple[str, str]:
    """(node, chromium), checked before anything starts."""
    node, chromium = shutil.which("node"), shutil.which("chromium")
    if node is None or chromium is None:
        missing = "node" if node is None else "chromium"
        if _node_required():
            pytest.fail(f"{missing} is not on PATH, and CI or OFB_TEST_REQUIRE_NODE is set")
        pytest.skip(f"{missing} is not on PATH (the browser test needs Node and Chromium)")
    if not INSTALLED.exists():
        pytest.fail(f"playwright-core is not installed: run `make install` (npm ci in {PROJECT})")
    return node, chromium


@pytest.fixture
def site(tools: tuple[str, str], tmp_path: Path) -> Path:
    """The page's files: page.html, page.js, and sdk.js bundled for the browser by esbuild."""
    root = tmp_path / "site"
    root.mkdir()
    for name in ("page.html", "page.js"):
        shutil.copy(PROJECT / name, root / name)
    subprocess.run(
        [str(PROJECT / "node_modules" / ".bin" / "esbuild"), str(PROJECT / "sdk.js"),
         "--bundle", "--format=iife", "--log-level=warning",
         f"--outfile={root / 'sdk.bundle.js'}"],
        check=True, timeout=120,
    )  # fmt: skip
    return root


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the page loads are noise
        pass


def _serve(root: Path) -> Iterator[str]:
    """A static HTTP server of ``root`` on a free loopback port; yields its origin."""
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def page_origin(site: Path) -> Iterator[str]:
    yield from _serve(site)


@pytest.fixture
def other_origin(site: Path) -> Iterator[str]:
    """The same page from an origin the receiver does not allow."""
    yield from _serve(site)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], page_origin: str) -> Settings:
    return make_settings(
        receiver={
            "endpoint": "127.0.0.1:0",
            "http": {"endpoint": "127.0.0.1:0", "cors": {"allowed_origins": [page_origin]}},
            "delivery_timeout_s": 15,
        },
        auth={
            "mode": "api_key",
            "api_keys": [{"client_id": "shop-web", "key_sha256": hash_api_key(MINTER),
                          "scopes": ["feedback:mint"]}],
        },
        tokens={"keys": {"k1": KEY}, "signing_key_id": "k1"},
    )  # fmt: skip


def drive(chromium_tools: tuple[str, str], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``browser/drive.mjs``: each step opens its URL in Chromium and awaits its call."""
    node, chromium = chromium_tools
    done = subprocess.run(
        [node, str(PROJECT / "drive.mjs"), "--chromium", chromium],
        input=json.dumps(steps).encode(),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and done.stdout, (done.stdout, done.stderr.decode())
    report: list[dict[str, Any]] = json.loads(done.stdout)
    return report


def test_a_real_browser_sends_feedback_across_origins_and_is_refused_as_documented(
    tools: tuple[str, str],
    page_origin: str,
    other_origin: str,
    app: FeedbackApp,
    settings: Settings,
    kafka_reader: Callable[..., list[dict[str, Any]]],
) -> None:
    receiver = f"http://127.0.0.1:{app.http_port}"
    assert page_origin != receiver
    minted = httpx.post(
        f"{receiver}/v1/feedback-tokens",
        json={"session_id": SESSION, "ttl_s": 600, "max_events": 10},
        headers={"authorization": f"Bearer {MINTER}"},
        timeout=30,
    )
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    keys = TokensConfig.model_validate({"keys": {"k1": KEY}, "signing_key_id": "k1"})
    expired = mint(keys, client_id="shop-web", session_id=SESSION, clock=lambda: time.time() - 3600)
    other_session = mint(keys, client_id="shop-web", session_id="s-other")
    forger = TokensConfig.model_validate({"keys": {"k1": FORGER}, "signing_key_id": "k1"})
    forged = mint(forger, client_id="shop-web", session_id=SESSION)

    def step(origin: str, with_token: str, call: str, comment: str) -> dict[str, Any]:
        fragment = urlencode({"receiver": receiver, "token": with_token})
        return {"url": f"{origin}/page.html#{fragment}", "call": call, "args": [SESSION, comment]}

    steps = {
        "logs": step(page_origin, token, "thumbsDownLogs", "wrong total (otlp json)"),
        "events": step(page_origin, token, "thumbsDownEvent", "wrong total (events api)"),
        "sdk": step(page_origin, token, "sdkThumbsDown", "wrong total (web sdk)"),
        "expired logs": step(page_origin, expired, "thumbsDownLogs", "x"),
        "expired events": step(page_origin, expired, "thumbsDownEvent", "x"),
        "other session logs": step(page_origin, other_session, "thumbsDownLogs", "x"),
        "other session events": step(page_origin, other_session, "thumbsDownEvent", "x"),
        "forged logs": step(page_origin, forged, "thumbsDownLogs", "x"),
        "forged events": step(page_origin, forged, "thumbsDownEvent", "x"),
        "disallowed logs": step(other_origin, token, "thumbsDownLogs", "x"),
        "disallowed events": step(other_origin, token, "thumbsDownEvent", "x"),
    }
    report = dict(zip(steps, drive(tools, list(steps.values())), strict=True))
    assert all(not r["errors"] for r in report.values()), report
    seen = {name: r["result"] for name, r in report.items()}

    # Sent: the page reads each answer, which it could not without the receiver's CORS headers.
    assert seen["logs"] == {"status": 200, "body": {}, "retryAfter": None}
    assert seen["events"] == {
        "status": 200,
        "body": {"accepted": 1, "rejected": []},
        "retryAfter": None,
    }
    assert seen["sdk"] == {"results": [{"code": 0, "error": ""}], "logged": []}  # SUCCESS
    # Refused, as the README's table says, and as the page sees it.
    for name in ("expired", "forged"):
        reason = "Signature has expired" if name == "expired" else "Signature verification failed"
        for carrier in ("logs", "events"):
            assert seen[f"{name} {carrier}"] == {
                "status": 401,
                "body": {"code": 16, "message": f"invalid feedback token: {reason}"},
                "retryAfter": None,
            }
    out_of_scope = "out of the feedback token's scope: the event's session id is not the token's"
    assert seen["other session logs"] == {
        "status": 200,
        "body": {"partialSuccess": {
            "rejectedLogRecords": "1",
            "errorMessage": "1 feedback record(s) rejected: resource_logs[0].scope_logs[0]"
                            f".log_records[0] (user_feedback): {out_of_scope}",
        }},
        "retryAfter": None,
    }  # fmt: skip
    assert seen["other session events"] == {
        "status": 200,
        "body": {"accepted": 0, "rejected": [
            {"index": 0, "event_type": "user_feedback", "reason": out_of_scope},
        ]},
        "retryAfter": None,
    }  # fmt: skip
    # The browser blocks the page on an origin not allowed: its preflight gets no CORS headers.
    for carrier, path in (("logs", "/v1/logs"), ("events", "/api/v1/events")):
        assert seen[f"disallowed {carrier}"] == {"error": "TypeError: Failed to fetch"}
        assert any(  # Chromium says why on the console (its wording, so only the gist)
            f"'{receiver}{path}' from origin '{other_origin}' has been blocked by CORS policy"
            in line
            and "preflight" in line
            for line in report[f"disallowed {carrier}"]["console"]
        ), report[f"disallowed {carrier}"]

    # The three sent land in Kafka, nothing else (refusals reach no topic).
    records = kafka_reader(3)
    assert len(records) == 3
    by_comment = {r["value"]["comment"]: r for r in records}
    expected = {
        "wrong total (otlp json)": ("log_record", "shop-web"),
        "wrong total (events api)": ("events_api", None),
        "wrong total (web sdk)": ("log_record", "shop-web"),
    }
    assert set(by_comment) == set(expected)
    for comment, (carrier, service) in expected.items():
        record = by_comment[comment]
        value = dict(record["value"])
        event_id, received_at = value.pop("event_id"), value.pop("received_at")
        timestamp = value.pop("timestamp")
        assert value == {
            "carrier": carrier,
            "service": service,
            "environment": None,
            "trace_id": None,
            "span_id": None,
            "request_id": None,
            "session_id": SESSION,
            "user_id": None,
            "attributes": {},
            "client_id": "shop-web",  # the token's, from the minting key's client
            "redacted_fields": [],
            "rating": None,
            "thumbs": "down",
            "comment": comment,
            "tags": [],
        }, comment
        assert record["raw"][0] == 0  # Confluent framing: magic byte, then the schema id
        assert record["topic"] == settings.kafka.topic_for("user_feedback")
        assert record["key"] == SESSION.encode()
        assert record["headers"] == {
            "event_type": b"user_feedback",
            "event_id": event_id.encode(),
            "schema_version": SCHEMA_VERSION["user_feedback"],
            "client_id": b"shop-web",
            **dict(RECEIVER_HEADERS),  # which receiver produced it
        }
        assert isinstance(received_at, datetime) and received_at.tzinfo is not None
        assert isinstance(timestamp, datetime) and timestamp <= received_at
