"""Throwaway credentials for tests: a CA with server and client certificates, JWTs, RSA keys.

``make_pki(directory)`` writes a fresh CA, a server certificate for ``localhost``/``127.0.0.1``
and a client certificate, all PEM (EC P-256 keys: instant to generate). ``make_jwt`` signs a
token the way an identity provider would. Never use any of it outside tests.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class Pki:
    """Paths of the PEM files ``make_pki`` wrote."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path, name: str = "test") -> Pki:
    """A CA named ``name`` and the certificates it signed, as ``<name>-*.pem`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        _builder(_cn(f"{name} server"), ca_name, server_key.public_key())
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        _builder(_cn(f"{name} client"), ca_name, client_key.public_key())
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(
        ca_cert=directory / f"{name}-ca.pem",
        server_cert=directory / f"{name}-server.pem",
        server_key=directory / f"{name}-server-key.pem",
        client_cert=directory / f"{name}-client.pem",
        client_key=directory / f"{name}-client-key.pem",
    )
    pki.ca_cert.write_bytes(ca.public_bytes(Encoding.PEM))
    pki.server_cert.write_bytes(server.public_bytes(Encoding.PEM))
    pki.server_key.write_bytes(_private_pem(server_key))
    pki.client_cert.write_bytes(client.public_bytes(Encoding.PEM))
    pki.client_key.write_bytes(_private_pem(client_key))
    return pki


def make_rsa_key_pair(directory: Path) -> tuple[bytes, Path]:
    """An RS256 signing key (PEM bytes) and the path of its public key (PEM file)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = directory / "jwt-public.pem"
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return _private_pem(key), public


def make_jwt(
    key: str | bytes,
    *,
    algorithm: str = "HS256",
    subject: str = "test-client",
    issuer: str = "https://idp.test",
    audience: str = "otlp-feedback",
    scope: str | None = "feedback:write",
    expires_in: float = 300.0,
    **claims: Any,
) -> str:
    """A signed JWT; ``expires_in`` < 0 makes an expired one, ``scope=None`` leaves it out."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + int(expires_in),
        **claims,
    }
    if scope is not None:
        payload["scope"] = scope
    return jwt.encode(payload, key, algorithm=algorithm)


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
