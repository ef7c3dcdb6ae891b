"""Server TLS (optionally mutual) for the OTLP ports, with rotated certificates picked up live.

``server_credentials(tls)`` builds ``grpc.dynamic_ssl_server_credentials`` around a
``CertificateReloader``. gRPC calls the reloader before every new connection's handshake; it
stats the certificate, key and client CA files and re-reads them only when one changed (mtime,
size or inode, so a rename-into-place rotation counts). A half-rotated pair (new certificate,
old key) is not served: the reloader keeps the previous files until the pair matches again, and
logs once per change. Connections already open keep their session.

With ``tls.client_ca_file`` every client must present a certificate signed by that CA (gRPC
Python cannot ask for a client certificate without requiring it).

The OTLP/HTTP port uses the same files, the same reloader and the same rule through
``server_ssl_context``: an ``ssl.SSLContext`` whose handshake callback (``sni_callback``, which
OpenSSL runs on every ClientHello, with or without SNI) asks the reloader whether the files
changed and, if they did and the pair matches, moves the connection to a context built from them.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from otlp_feedback.config import TlsConfig
from otlp_feedback.errors import ConfigError

log = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int], ...]  # (mtime_ns, size, inode) per file


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """The PEM bytes currently served."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.private_key, self.cert_chain)], root_certificates=self.client_ca
        )


class CertificateReloader:
    """The ``certificate_configuration_fetcher`` of ``dynamic_ssl_server_credentials``.

    ``load()`` reads the files once (raises ``ConfigError``); calling the instance returns a new
    configuration when a file changed since, else None (gRPC then keeps the current one). The
    call never raises: gRPC invokes it on its own threads, per handshake.
    """

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None = None):
        self._paths = [(cert_file, "tls.cert_file"), (key_file, "tls.key_file")]
        if client_ca_file is not None:
            self._paths.append((client_ca_file, "tls.client_ca_file"))
        self._cert_file = cert_file
        self._key_file = key_file
        self._client_ca_file = client_ca_file
        self._lock = threading.Lock()
        self._stamp: _Stamp | None = None  # of the files currently served
        self._refused: _Stamp | None = None  # of files that failed to load (logged once)
        self.current: CertificateFiles | None = None
        self.reloads = 0

    def load(self) -> grpc.ServerCertificateConfiguration:
        """Read and check the files now. Raises ``ConfigError`` naming the bad file."""
        with self._lock:
            stamp = self._stat()
            self.current = self._read()
            self._stamp = stamp
            return self.current.configuration()

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            try:
                stamp = self._stat()
            except ConfigError as exc:  # mid-rotation: a file briefly missing
                self._log_refusal((), exc)
                return None
            if stamp == self._stamp or stamp == self._refused:
                return None
            try:
                files = self._read()
            except ConfigError as exc:
                self._log_refusal(stamp, exc)
                return None
            self.current, self._stamp, self._refused = files, stamp, None
            self.reloads += 1
        log.info("TLS certificate files changed; serving the new certificate to new connections")
        return files.configuration()

    def _log_refusal(self, stamp: _Stamp, exc: ConfigError) -> None:
        if stamp != self._refused:  # once per distinct state, not once per handshake
            log.warning("keeping the current TLS certificate: %s", exc)
        self._refused = stamp

    def _stat(self) -> _Stamp:
        stamps = []
        for path, key in self._paths:
            try:
                st = os.stat(path)
            except OSError as exc:
                raise ConfigError(f"{key}: cannot read {path}: {exc}") from exc
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def _read(self) -> CertificateFiles:
        cert = _read(self._cert_file, "tls.cert_file")
        key = _read(self._key_file, "tls.key_file")
        ca = _read(self._client_ca_file, "tls.client_ca_file") if self._client_ca_file else None
        _check_pair(cert, key, self._cert_file, self._key_file)
        if ca is not None:
            try:
                x509.load_pem_x509_certificates(ca)
            except ValueError as exc:
                raise ConfigError(f"tls.client_ca_file: {self._client_ca_file}: {exc}") from exc
        return CertificateFiles(cert, key, ca)


def server_credentials(config: TlsConfig) -> tuple[grpc.ServerCredentials, CertificateReloader]:
    """Credentials for ``add_secure_port``, and the reloader behind them.

    Raises ``ConfigError`` if the files cannot be read or the key does not match the certificate.
    """
    assert config.cert_file is not None and config.key_file is not None  # config checks it
    reloader = CertificateReloader(config.cert_file, config.key_file, config.client_ca_file)
    initial = reloader.load()
    credentials = grpc.dynamic_ssl_server_credentials(
        initial, reloader, require_client_authentication=config.client_ca_file is not None
    )
    return credentials, reloader


def server_ssl_context(config: TlsConfig) -> tuple[ssl.SSLContext, CertificateReloader]:
    """An ``SSLContext`` for the OTLP/HTTP port that follows certificate rotation, and the
    reloader behind it (the gRPC port's rule: a changed, matching pair is served to new
    connections; anything else keeps the current files, logged once).

    Raises ``ConfigError`` if the files cannot be read or the key does not match.
    """
    assert config.cert_file is not None and config.key_file is not None  # config checks it
    reloader = CertificateReloader(config.cert_file, config.key_file, config.client_ca_file)
    reloader.load()
    base = _ssl_context(config)
    serving = [base]  # the context new connections get; replaced whole on a rotation

    def on_hello(conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: object) -> None:
        # Never raises: an exception here fails the handshake of an innocent client.
        if reloader() is not None:  # changed, and the new pair checked out
            try:
                serving[0] = _ssl_context(config)
            except ConfigError as exc:  # rotated again between the check and the load
                log.warning("keeping the current TLS certificate: %s", exc)
        if serving[0] is not base:
            conn.context = serving[0]

    base.sni_callback = on_hello
    return base, reloader


def _ssl_context(config: TlsConfig) -> ssl.SSLContext:
    assert config.cert_file is not None and config.key_file is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
        if config.client_ca_file is not None:
            context.load_verify_locations(cafile=config.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"tls: cannot load {config.cert_file} / {config.key_file}: {exc}"
        ) from exc
    context.set_alpn_protocols(["http/1.1"])
    return context


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc}") from exc


def _check_pair(cert_pem: bytes, key_pem: bytes, cert_file: Path, key_file: Path) -> None:
    """gRPC would accept a mismatched pair and fail every handshake; refuse it here instead."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ConfigError(f"tls.cert_file: {cert_file} is not a PEM certificate: {exc}") from exc
    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise ConfigError(
            f"tls.key_file: {key_file} is not an unencrypted PEM private key: {exc}"
        ) from exc
    ours = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    theirs = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if ours != theirs:
        raise ConfigError(f"tls.key_file: {key_file} does not match the certificate {cert_file}")
