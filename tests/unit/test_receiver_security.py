"""The receiver's admission control, through a real gRPC channel with the in-memory sink:
credentials before decoding, the client id on every record, per-client rate limits with
RetryInfo, and an audit line for every refusal."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from otlp_builders import Admit

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import AuditConfig, load_config
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver.audit import AUDIT_LOGGER, configure_audit_logging
from otlp_feedback.receiver.auth import hash_api_key
from otlp_feedback.receiver.guard import _peer_bucket
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing import logs_request, make_log_record, run_receiver, traces_request
from otlp_feedback.testing.security import make_jwt

TIMEOUT = 10.0
SECRET = "a-shared-secret-of-at-least-32-bytes!"
CHECKOUT_KEY = "ofk_checkout_6a0f1e"
FLOODER_KEY = "ofk_flooder_77b2c9"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

AUTH = {
    "mode": "any",
    "api_keys": [
        {"client_id": "checkout-web", "key_sha256": hash_api_key(CHECKOUT_KEY)},
        {
            "client_id": "flooder",
            "key_sha256": hash_api_key(FLOODER_KEY),
            # 5 events, then one every 1000 s: the second request is refused, whatever the pace.
            "rate_limit": {"events_per_s": 0.001, "burst": 5},
        },
    ],
    "jwt": {"secret": SECRET, "issuer": "https://idp.test", "audience": "otlp-feedback"},
}


def feedback(count: int = 1) -> ExportLogsServiceRequest:
    now = time.time_ns()
    records = [
        make_log_record(
            "feedback.user_feedback",
            {"session.id": f"s-{i}", "feedback.rating": 4},
            time_unix_nano=now,
        )
        for i in range(count)
    ]
    return logs_request(records, {"service.name": "security-test"})


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def export(
    channel: grpc.Channel, token: str | None, request: ExportLogsServiceRequest | None = None
) -> grpc.StatusCode:
    try:
        LogsServiceStub(channel).Export(
            request or feedback(),
            metadata=bearer(token) if token else None,
            timeout=TIMEOUT,
        )
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def audit_entries(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]


@pytest.fixture
def secured(sink: InMemorySink) -> Iterator[FeedbackApp]:
    with run_receiver(sink=sink, auth=AUTH) as app:
        yield app


@pytest.fixture
def channel(secured: FeedbackApp) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{secured.port}") as open_channel:
        yield open_channel


@pytest.fixture(autouse=True)
def _audit_logger_restored() -> Iterator[None]:
    """``configure_audit_logging`` changes a process-wide logger; put it back."""
    logger = logging.getLogger(AUDIT_LOGGER)
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    for handler in logger.handlers:
        if handler not in handlers:
            handler.close()
    logger.handlers[:], logger.propagate, logger.level = handlers, propagate, level


# --- authentication ---------------------------------------------------------------------------


def test_an_export_without_credentials_is_unauthenticated_and_delivers_nothing(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    assert export(channel, None) == grpc.StatusCode.UNAUTHENTICATED
    assert sink.records == []


def test_a_trace_export_needs_credentials_too(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        TraceServiceStub(channel).Export(traces_request([]), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_credentials_are_checked_before_the_request_is_decoded(channel: grpc.Channel) -> None:
    garbage = channel.unary_unary(LOGS_EXPORT)
    with pytest.raises(grpc.RpcError) as caught:
        garbage(b"\xff\xff\xff", timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_token_without_the_write_scope_is_permission_denied(channel: grpc.Channel) -> None:
    token = make_jwt(SECRET, subject="dashboard", scope="feedback:read")
    assert export(channel, token) == grpc.StatusCode.PERMISSION_DENIED


def test_an_api_key_client_id_is_a_kafka_header_on_every_event(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    assert export(channel, CHECKOUT_KEY, feedback(3)) == grpc.StatusCode.OK
    assert [dict(r.headers)["client_id"] for r in sink.records] == [b"checkout-web"] * 3


def test_a_jwt_subject_is_the_client_id_header(channel: grpc.Channel, sink: InMemorySink) -> None:
    assert export(channel, make_jwt(SECRET, subject="mobile-app")) == grpc.StatusCode.OK
    assert dict(sink.records[0].headers)["client_id"] == b"mobile-app"


def test_without_authentication_records_carry_no_client_id(sink: InMemorySink) -> None:
    with (
        run_receiver(sink=sink) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        assert export(channel, None) == grpc.StatusCode.OK
    assert "client_id" not in dict(sink.records[0].headers)


def test_the_health_service_needs_no_credentials(channel: grpc.Channel) -> None:
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=TIMEOUT
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# --- audit ------------------------------------------------------------------------------------


def test_an_authentication_failure_is_an_audit_line_without_the_credential(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    expired = make_jwt(SECRET, expires_in=-3600)
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        export(channel, expired)
    (entry,) = audit_entries(caplog)
    assert entry["event"] == "unauthenticated"
    assert entry["client"] is None
    assert entry["peer"].startswith("ipv4:127.0.0.1:")
    assert entry["method"] == LOGS_EXPORT
    assert entry["reason"] == "invalid token: Signature has expired"
    assert {"ts", "event", "client", "peer", "method", "reason"} <= entry.keys()
    assert expired not in caplog.text


def test_a_permission_denial_is_an_audit_line(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        export(channel, make_jwt(SECRET, subject="dashboard", scope="feedback:read"))
    (entry,) = audit_entries(caplog)
    assert entry["event"] == "permission_denied"
    assert "'dashboard' lacks the scope 'feedback:write'" in entry["reason"]


def test_the_audit_log_has_its_own_file_and_stays_out_of_the_application_log(
    tmp_path: Path, channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    configure_audit_logging(AuditConfig(path=path))
    with caplog.at_level(logging.DEBUG):
        export(channel, "not-a-key")
    assert audit_entries(caplog) == []  # nothing reached the root (application) handlers
    (line,) = path.read_text().splitlines()
    assert json.loads(line)["reason"] == "unknown API key"


# --- rate limits ------------------------------------------------------------------------------


def retry_info(error: grpc.RpcError) -> error_details_pb2.RetryInfo:
    status = rpc_status.from_call(error)
    assert status is not None
    (detail,) = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    return info


def test_a_client_over_its_rate_limit_gets_resource_exhausted_with_retry_info(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    stub = LogsServiceStub(channel)
    stub.Export(feedback(5), metadata=bearer(FLOODER_KEY), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Export(feedback(5), metadata=bearer(FLOODER_KEY), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_info(caught.value).retry_delay.seconds > 100  # 5 events at 0.001/s
    assert len(sink.records) == 5


def test_one_client_flooding_does_not_limit_another(
    channel: grpc.Channel, sink: InMemorySink
) -> None:
    assert export(channel, FLOODER_KEY, feedback(5)) == grpc.StatusCode.OK
    assert export(channel, FLOODER_KEY, feedback(5)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    for _ in range(3):
        assert export(channel, CHECKOUT_KEY, feedback(5)) == grpc.StatusCode.OK
    clients = [dict(r.headers)["client_id"] for r in sink.records]
    assert clients.count(b"checkout-web") == 15


def test_rate_limited_requests_are_counted_per_client_and_audited(
    secured: FeedbackApp, channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    export(channel, FLOODER_KEY, feedback(5))
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        export(channel, FLOODER_KEY, feedback(2))
        export(channel, FLOODER_KEY, feedback(2))
    metrics = secured.telemetry.exposition().decode()
    assert 'otlp_feedback_rate_limited_total{client="flooder"} 2.0' in metrics
    entries = audit_entries(caplog)
    assert [(e["event"], e["client"], e["events"]) for e in entries] == [
        ("rate_limited", "flooder", 2),
        ("rate_limited", "flooder", 2),
    ]
    assert entries[0]["retry_after_s"] > 0


def test_without_authentication_the_anonymous_limit_applies_per_peer_labelled_anonymous(
    sink: InMemorySink,
) -> None:
    with (
        run_receiver(
            sink=sink, rate_limit={"anonymous": {"events_per_s": 0.001, "burst": 3}}
        ) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        assert export(channel, None, feedback(3)) == grpc.StatusCode.OK
        assert export(channel, None, feedback(1)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        metrics = app.telemetry.exposition().decode()
    assert 'otlp_feedback_rate_limited_total{client="anonymous"} 1.0' in metrics


def test_a_request_refused_as_too_large_takes_no_tokens(sink: InMemorySink) -> None:
    with (
        run_receiver(
            sink=sink,
            rate_limit={"anonymous": {"events_per_s": 0.001, "burst": 3}},
            validation={"max_feedback_per_request": 3},
        ) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        assert export(channel, None, feedback(4)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert export(channel, None, feedback(3)) == grpc.StatusCode.OK


def test_rate_limiting_can_be_turned_off(sink: InMemorySink) -> None:
    with (
        run_receiver(
            sink=sink,
            rate_limit={"enabled": False, "anonymous": {"events_per_s": 0.001, "burst": 1}},
        ) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        assert export(channel, None, feedback(5)) == grpc.StatusCode.OK
        assert export(channel, None, feedback(5)) == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("peer", "bucket"),
    [
        ("ipv4:10.0.0.7:51234", "peer:10.0.0.7"),
        ("ipv6:[::1]:51234", "peer:::1"),
        ("ipv6:%5B::1%5D:51234", "peer:::1"),
        ("unix:/tmp/otlp.sock", "anonymous"),
        ("", "anonymous"),
    ],
)
def test_unauthenticated_traffic_is_limited_per_peer_address_not_per_connection(
    peer: str, bucket: str
) -> None:
    assert _peer_bucket(peer) == bucket


# --- the pipeline's part ----------------------------------------------------------------------


def test_the_pipeline_admits_the_count_of_feedback_records_before_validating(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    counted: list[int] = []
    request = feedback(2)
    request.resource_logs[0].scope_logs[0].log_records.append(make_log_record("not.feedback"))
    pipeline.export_logs(request, client_id="c", admission=Admit(counted.append))
    assert counted == [2]


def test_an_admission_refusal_delivers_nothing(pipeline: Pipeline, sink: InMemorySink) -> None:
    def refuse(events: int) -> None:
        raise RuntimeError("over the limit")

    with pytest.raises(RuntimeError):
        pipeline.export_logs(feedback(2), admission=Admit(refuse))
    assert sink.records == []


# --- start-up warnings and reload -------------------------------------------------------------


def test_serving_without_authentication_logs_a_loud_warning(
    sink: InMemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), run_receiver(sink=sink):
        pass
    assert "AUTHENTICATION IS OFF (auth.mode: none)" in caplog.text


def test_authentication_without_tls_warns_that_credentials_travel_in_clear(
    sink: InMemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), run_receiver(sink=sink, auth=AUTH):
        pass
    assert "TLS IS OFF" in caplog.text
    assert "AUTHENTICATION IS OFF" not in caplog.text


def test_reload_applies_new_api_keys_to_the_next_request(
    secured: FeedbackApp, channel: grpc.Channel
) -> None:
    rotated = {
        **AUTH,
        "api_keys": [{"client_id": "checkout-web", "key_sha256": hash_api_key("ofk_new")}],
    }
    secured.reload(load_config(receiver={"endpoint": "127.0.0.1:0"}, auth=rotated))
    assert export(channel, "ofk_new") == grpc.StatusCode.OK
    assert export(channel, CHECKOUT_KEY) == grpc.StatusCode.UNAUTHENTICATED


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_never_appear_when_settings_are_printed_or_dumped() -> None:
    settings = load_config(
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "feedback",
            "sasl_password": "kafka-pass-8c1d",
        },
        registry={"basic_auth_user": "sr", "basic_auth_password": "registry-pass-52aa"},
        auth=AUTH,
    )
    shown = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    for text in shown:
        for secret in ("kafka-pass-8c1d", "registry-pass-52aa", SECRET):
            assert secret not in text
