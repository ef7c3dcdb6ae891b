"""TLS on the OTLP port: server TLS, mutual TLS, and certificates rotated while serving.

Certificates are generated per test (``otlp_feedback.testing.security``); the receiver runs
in-process with the in-memory sink. Every channel uses its own subchannel pool so that each
test's connection is a new TLS handshake.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otlp_feedback.config import load_config
from otlp_feedback.errors import ConfigError
from otlp_feedback.receiver.tls import CertificateReloader
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing import logs_request, make_log_record, run_receiver
from otlp_feedback.testing.security import Pki, make_pki

TIMEOUT = 10.0


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", "one")


@pytest.fixture
def other_pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "other", "two")


def feedback() -> Any:
    record = make_log_record(
        "feedback.user_feedback",
        {"session.id": "s-1", "feedback.rating": 5},
        time_unix_nano=time.time_ns(),
    )
    return logs_request([record], {"service.name": "tls-test"})


def channel_to(
    port: int,
    ca: Path | None,
    client: tuple[Path, Path] | None = None,
) -> grpc.Channel:
    """A TLS channel trusting ``ca`` (plaintext when None), presenting ``client`` (cert, key)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    target = f"127.0.0.1:{port}"
    if ca is None:
        return grpc.insecure_channel(target, options=options)
    cert, key = client if client else (None, None)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.secure_channel(target, credentials, options=options)


def export_code(channel: grpc.Channel) -> grpc.StatusCode:
    with channel:
        try:
            LogsServiceStub(channel).Export(feedback(), timeout=TIMEOUT)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
def tls_receiver(pki: Pki, sink: InMemorySink) -> Iterator[int]:
    tls = {"enabled": True, "cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    with run_receiver(sink=sink, tls=tls) as app:
        yield app.port


@pytest.fixture
def mtls_receiver(pki: Pki, sink: InMemorySink) -> Iterator[int]:
    tls = {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "client_ca_file": str(pki.ca_cert),
    }
    with run_receiver(sink=sink, tls=tls) as app:
        yield app.port


# --- TLS and mutual TLS -----------------------------------------------------------------------


def test_a_client_trusting_the_ca_exports_over_tls(
    tls_receiver: int, pki: Pki, sink: InMemorySink
) -> None:
    assert export_code(channel_to(tls_receiver, pki.ca_cert)) == grpc.StatusCode.OK
    assert len(sink.records) == 1


def test_a_client_that_does_not_trust_the_server_certificate_fails_the_handshake(
    tls_receiver: int, other_pki: Pki
) -> None:
    assert export_code(channel_to(tls_receiver, other_pki.ca_cert)) == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_on_the_tls_port_fails_at_once_without_hanging(
    tls_receiver: int, sink: InMemorySink
) -> None:
    assert export_code(channel_to(tls_receiver, None)) == grpc.StatusCode.UNAVAILABLE
    assert sink.records == []


def test_mutual_tls_admits_a_client_certificate_signed_by_the_client_ca(
    mtls_receiver: int, pki: Pki
) -> None:
    client = (pki.client_cert, pki.client_key)
    assert export_code(channel_to(mtls_receiver, pki.ca_cert, client)) == grpc.StatusCode.OK


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls_receiver: int, pki: Pki) -> None:
    assert export_code(channel_to(mtls_receiver, pki.ca_cert)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_a_certificate_from_another_ca(
    mtls_receiver: int, pki: Pki, other_pki: Pki
) -> None:
    stranger = (other_pki.client_cert, other_pki.client_key)
    code = export_code(channel_to(mtls_receiver, pki.ca_cert, stranger))
    assert code == grpc.StatusCode.UNAVAILABLE


# --- rotation ---------------------------------------------------------------------------------


def install(source: Pki, cert: Path, key: Path) -> None:
    """Rotate the way cert-manager or a deploy script does: write aside, rename into place."""
    for src, dst in ((source.server_cert, cert), (source.server_key, key)):
        staged = dst.with_suffix(".new")
        shutil.copyfile(src, staged)
        os.replace(staged, dst)


def test_a_rotated_certificate_is_served_to_new_connections_without_a_restart(
    tmp_path: Path, pki: Pki, other_pki: Pki, sink: InMemorySink
) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    install(pki, cert, key)
    tls = {"enabled": True, "cert_file": str(cert), "key_file": str(key)}
    with run_receiver(sink=sink, tls=tls) as app:
        assert export_code(channel_to(app.port, pki.ca_cert)) == grpc.StatusCode.OK
        install(other_pki, cert, key)
        assert export_code(channel_to(app.port, other_pki.ca_cert)) == grpc.StatusCode.OK
        assert export_code(channel_to(app.port, pki.ca_cert)) == grpc.StatusCode.UNAVAILABLE
        assert app.receiver.certificates is not None
        assert app.receiver.certificates.reloads == 1


def test_the_reloader_reports_no_change_while_the_files_are_unchanged(pki: Pki) -> None:
    reloader = CertificateReloader(pki.server_cert, pki.server_key)
    reloader.load()
    assert reloader() is None
    assert reloader() is None
    assert reloader.reloads == 0


def test_the_reloader_returns_a_new_configuration_when_the_files_change(
    tmp_path: Path, pki: Pki, other_pki: Pki
) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    install(pki, cert, key)
    reloader = CertificateReloader(cert, key)
    reloader.load()
    install(other_pki, cert, key)
    assert isinstance(reloader(), grpc.ServerCertificateConfiguration)
    assert reloader.current is not None
    assert reloader.current.cert_chain == other_pki.server_cert.read_bytes()
    assert reloader() is None  # and only once


def test_a_half_rotated_pair_is_not_served_until_the_key_matches(
    tmp_path: Path, pki: Pki, other_pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    install(pki, cert, key)
    reloader = CertificateReloader(cert, key)
    reloader.load()
    os.replace(shutil.copyfile(other_pki.server_cert, tmp_path / "staged.pem"), cert)
    with caplog.at_level(logging.WARNING, logger="otlp_feedback.receiver.tls"):
        assert reloader() is None
        assert reloader() is None  # the same broken state is logged once, not per handshake
    assert [r.getMessage() for r in caplog.records] == [
        f"keeping the current TLS certificate: tls.key_file: {key} does not match the "
        f"certificate {cert}"
    ]
    assert reloader.current is not None
    assert reloader.current.cert_chain == pki.server_cert.read_bytes()
    os.replace(shutil.copyfile(other_pki.server_key, tmp_path / "staged-key.pem"), key)
    assert reloader() is not None
    assert reloader.current.cert_chain == other_pki.server_cert.read_bytes()


def test_a_missing_file_during_rotation_keeps_the_current_certificate(
    tmp_path: Path, pki: Pki
) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    install(pki, cert, key)
    reloader = CertificateReloader(cert, key)
    reloader.load()
    key.unlink()
    assert reloader() is None


# --- configuration ----------------------------------------------------------------------------


def test_tls_without_certificate_files_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"tls\.enabled needs tls\.cert_file and tls\.key_file"):
        load_config(tls={"enabled": True})


def test_mutual_tls_without_tls_fails_at_start_up(pki: Pki) -> None:
    with pytest.raises(ConfigError, match=r"needs tls\.enabled"):
        load_config(tls={"client_ca_file": str(pki.ca_cert)})


def test_a_key_that_does_not_match_the_certificate_fails_start(
    pki: Pki, other_pki: Pki, sink: InMemorySink
) -> None:
    tls = {
        "enabled": True,
        "cert_file": str(pki.server_cert),
        "key_file": str(other_pki.server_key),
    }
    with (
        pytest.raises(ConfigError, match="does not match the certificate"),
        run_receiver(sink=sink, tls=tls),
    ):
        pass
    assert not sink.started


def test_an_unreadable_certificate_file_fails_start_naming_the_key(
    tmp_path: Path, pki: Pki, sink: InMemorySink
) -> None:
    tls = {
        "enabled": True,
        "cert_file": str(tmp_path / "gone.pem"),
        "key_file": str(pki.server_key),
    }
    with pytest.raises(ConfigError, match=r"tls\.cert_file"), run_receiver(sink=sink, tls=tls):
        pass
