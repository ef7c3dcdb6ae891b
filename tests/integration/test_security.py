"""Security end to end: the real OTel SDK exporter (bearer headers, TLS credentials) against a
receiver wired to the real broker and registry; what arrives is read back from Kafka.

Exact status codes come from raw gRPC stubs, or from the receiver's own response counter when
the SDK exporter (which only reports SUCCESS/FAILURE) made the call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otlp_feedback.app import FeedbackApp
from otlp_feedback.config import Settings, load_config
from otlp_feedback.receiver.auth import hash_api_key
from otlp_feedback.testing import logs_request, make_log_record
from otlp_feedback.testing.security import Pki, make_jwt, make_pki

pytestmark = pytest.mark.integration

Reader = Callable[..., list[dict[str, Any]]]

SECRET = "integration-secret-of-at-least-32-bytes"
JWT = {"secret": SECRET, "issuer": "https://idp.test", "audience": "otlp-feedback"}
FLOODER_KEY = "ofk_flooder_3c9d"
STEADY_KEY = "ofk_steady_81ea"
RESOURCE = Resource.create({"service.name": "secure-chatbot"})


def with_sections(settings: Settings, **sections: Any) -> Settings:
    """The integration ``settings`` (broker, registry, test topics) plus security sections."""
    base = {
        name: getattr(settings, name).model_dump()
        for name in ("receiver", "kafka", "registry", "spool", "observability")
    }
    return load_config(**base, **sections)


class RecordingLogExporter(OTLPLogExporter):
    """The SDK's OTLP/gRPC log exporter, remembering what each export returned."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results: list[LogRecordExportResult] = []

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        result = super().export(batch)
        self.results.append(result)
        return result


def emit_feedback(exporter: RecordingLogExporter, session: str) -> LogRecordExportResult:
    """One user feedback event through a LoggerProvider, exported synchronously."""
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.get_logger("feedback-widget").emit(
        event_name="feedback.user_feedback",
        attributes={"session.id": session, "feedback.rating": 5, "feedback.thumbs": "up"},
    )
    provider.shutdown()
    (result,) = exporter.results
    return result


def responses(app: FeedbackApp, code: str) -> float:
    """How many log Exports the receiver answered with ``code``."""
    labels = f'code="{code}",signal="logs",transport="grpc"'
    pattern = rf"otlp_feedback_export_responses_total\{{{labels}\}} (\S+)"
    match = re.search(pattern, app.telemetry.exposition().decode())
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def jwt_app(settings: Settings) -> Iterator[FeedbackApp]:
    with FeedbackApp(with_sections(settings, auth={"mode": "jwt", "jwt": JWT})) as running:
        yield running


def bearer_exporter(app: FeedbackApp, token: str | None) -> RecordingLogExporter:
    headers = {"authorization": f"Bearer {token}"} if token else None
    return RecordingLogExporter(
        endpoint=f"127.0.0.1:{app.port}", insecure=True, headers=headers, timeout=5
    )


# --- authentication ---------------------------------------------------------------------------


def test_an_sdk_exporter_without_a_token_is_refused_unauthenticated(jwt_app: FeedbackApp) -> None:
    result = emit_feedback(bearer_exporter(jwt_app, None), "s-anonymous")
    assert result == LogRecordExportResult.FAILURE
    assert responses(jwt_app, "UNAUTHENTICATED") == 1


def test_a_token_without_the_write_scope_is_refused_permission_denied(
    jwt_app: FeedbackApp,
) -> None:
    token = make_jwt(SECRET, subject="dashboard", scope="feedback:read")
    assert emit_feedback(bearer_exporter(jwt_app, token), "s-dash") == (
        LogRecordExportResult.FAILURE
    )
    assert responses(jwt_app, "PERMISSION_DENIED") == 1


def test_a_valid_token_delivers_the_event_with_its_client_id_and_an_expired_one_nothing(
    jwt_app: FeedbackApp, kafka_reader: Reader
) -> None:
    expired = make_jwt(SECRET, subject="mobile-app", expires_in=-3600)
    assert emit_feedback(bearer_exporter(jwt_app, expired), "s-expired") == (
        LogRecordExportResult.FAILURE
    )
    valid = make_jwt(SECRET, subject="mobile-app")
    assert emit_feedback(bearer_exporter(jwt_app, valid), "s-valid") == (
        LogRecordExportResult.SUCCESS
    )

    (record,) = kafka_reader(1)  # the reader fails on fewer and collects any extra
    assert record["headers"]["client_id"] == b"mobile-app"
    assert record["value"]["client_id"] == "mobile-app"  # in the Avro value too
    assert record["value"]["session_id"] == "s-valid"
    assert responses(jwt_app, "UNAUTHENTICATED") == 1


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", "integration")


def tls_exporter(
    app: FeedbackApp, ca: Path, client: tuple[Path, Path] | None = None
) -> RecordingLogExporter:
    cert, key = client if client else (None, None)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    # A short timeout: a refused handshake is UNAVAILABLE, which the SDK retries until then.
    return RecordingLogExporter(
        endpoint=f"127.0.0.1:{app.port}", insecure=False, credentials=credentials, timeout=3
    )


def test_the_sdk_exports_over_tls_to_kafka(
    settings: Settings, pki: Pki, kafka_reader: Reader
) -> None:
    tls = {"enabled": True, "cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    with FeedbackApp(with_sections(settings, tls=tls)) as app:
        assert emit_feedback(tls_exporter(app, pki.ca_cert), "s-tls") == (
            LogRecordExportResult.SUCCESS
        )
    (record,) = kafka_reader(1)
    assert record["value"]["session_id"] == "s-tls"


def test_mutual_tls_delivers_from_a_certified_client_and_refuses_one_without_a_certificate(
    settings: Settings, pki: Pki, kafka_reader: Reader
) -> None:
    tls = {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "client_ca_file": str(pki.ca_cert),
    }
    with FeedbackApp(with_sections(settings, tls=tls)) as app:
        uncertified = tls_exporter(app, pki.ca_cert)
        assert emit_feedback(uncertified, "s-uncertified") == LogRecordExportResult.FAILURE
        certified = tls_exporter(app, pki.ca_cert, (pki.client_cert, pki.client_key))
        assert emit_feedback(certified, "s-certified") == LogRecordExportResult.SUCCESS
    (record,) = kafka_reader(1)
    assert record["value"]["session_id"] == "s-certified"


def test_a_plaintext_client_against_the_tls_port_gets_an_error_not_a_hang(
    settings: Settings, pki: Pki
) -> None:
    tls = {"enabled": True, "cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    with (
        FeedbackApp(with_sections(settings, tls=tls)) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        # The deadline is only a safety net: the handshake fails long before it.
        LogsServiceStub(channel).Export(feedback_request("s-plain", 1), timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


# --- rate limits ------------------------------------------------------------------------------


def feedback_request(session: str, count: int) -> Any:
    records = [
        make_log_record(
            "feedback.user_feedback", {"session.id": f"{session}-{i}", "feedback.rating": 3}
        )
        for i in range(count)
    ]
    return logs_request(records, {"service.name": "rate-test"})


def retry_delay_s(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None
    (detail,) = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


def test_a_flooding_client_is_refused_with_retry_info_while_another_gets_everything_through(
    settings: Settings, kafka_reader: Reader
) -> None:
    auth = {
        "mode": "api_key",
        "api_keys": [
            # 10 events, then one per 1000 s: the flood is refused whatever the machine's pace.
            {
                "client_id": "flooder",
                "key_sha256": hash_api_key(FLOODER_KEY),
                "rate_limit": {"events_per_s": 0.001, "burst": 10},
            },
            {"client_id": "steady", "key_sha256": hash_api_key(STEADY_KEY)},
        ],
    }
    with (
        FeedbackApp(with_sections(settings, auth=auth)) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        stub = LogsServiceStub(channel)
        flooder = (("authorization", f"Bearer {FLOODER_KEY}"),)
        steady = (("authorization", f"Bearer {STEADY_KEY}"),)
        refusals: list[grpc.RpcError] = []
        for n in range(5):
            try:
                stub.Export(feedback_request(f"flood-{n}", 10), metadata=flooder, timeout=15)
            except grpc.RpcError as exc:
                refusals.append(exc)
            stub.Export(feedback_request(f"steady-{n}", 10), metadata=steady, timeout=15)
        metrics = app.telemetry.exposition().decode()

    assert [e.code() for e in refusals] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4
    assert all(retry_delay_s(e) > 100 for e in refusals)
    assert 'otlp_feedback_rate_limited_total{client="flooder"} 4.0' in metrics
    records = kafka_reader(60)
    by_client = [r["headers"]["client_id"] for r in records]
    assert by_client.count(b"steady") == 50
    assert by_client.count(b"flooder") == 10
