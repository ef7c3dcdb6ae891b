"""One frozen settings tree: defaults here, a YAML file over them, ``OTLP_FEEDBACK_*`` env on top.

Env overrides use ``__`` for nesting, e.g. ``OTLP_FEEDBACK_KAFKA__BOOTSTRAP_SERVERS``. Unknown
keys and bad values fail at start-up with a message naming the key (``load_config`` turns
pydantic's error into a ``ConfigError``). This is the only module that reads ``os.environ``.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import phonenumbers
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from otlp_feedback.errors import ConfigError
from otlp_feedback.events import EVENT_MODELS, EVENT_TYPES, EventType
from otlp_feedback.logthrottle import LIBRDKAFKA_LOGGER

_yaml_path: ContextVar[Path | None] = ContextVar("_yaml_path", default=None)


def _check_endpoint(endpoint: str) -> str:
    """``host:port`` with a port from 0 (pick a free one) to 65535."""
    _, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{endpoint!r} is not host:port with a port from 0 to 65535")
    return endpoint


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
"""A listen address; every one is checked the same way."""


def host_port(endpoint: Endpoint) -> tuple[str, int]:
    """The ``(host, port)`` an ``Endpoint`` binds: brackets of an IPv6 host removed, an empty
    host (``:4317``) meaning every interface."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# An origin: scheme://host[:port], lower case. Host: DNS labels or a bracketed IPv6 address.
ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(\d{1,5}))?$")


class CorsConfig(_Section):
    """CORS on the OTLP/HTTP port (``receiver/cors.py``); no origins = no CORS headers at all."""

    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Exact origins (https://app.example.com) or https://*.example.com patterns.",
    )
    allowed_headers: list[str] = Field(
        default_factory=lambda: ["accept", "authorization", "content-encoding", "content-type"],
        description="Request headers a page may send (the OTel JS exporters send these).",
    )
    max_age_s: int = Field(
        600, ge=0, le=86400, description="How long a browser may cache a preflight answer."
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for entry in origins:
            wildcard = "://*." in entry
            match = ORIGIN.match(entry.replace("://*.", "://", 1) if wildcard else entry)
            if match is None:
                raise ValueError(
                    f"{entry!r} is not an origin: scheme://host[:port] in lower case (http or "
                    "https, no path, no trailing slash), or scheme://*.domain[:port]"
                )
            if wildcard and (match[2].startswith("[") or "." not in match[2]):
                raise ValueError(f"{entry!r}: a wildcard needs a domain of two labels or more")
        return origins

    @field_validator("allowed_headers")
    @classmethod
    def _headers(cls, headers: list[str]) -> list[str]:
        for name in headers:
            if not re.fullmatch(r"[a-z0-9-]+", name):
                raise ValueError(f"{name!r} is not a header name in lower case")
        return headers


class HttpReceiverConfig(_Section):
    """The OTLP/HTTP server (``receiver/http.py``); size limit, TLS and auth as for gRPC.

    The default endpoint binds every interface, as ``receiver.endpoint``'s ``0.0.0.0:4317``
    does: both doors are reachable from the same places (a container's published ports, a pod
    IP); narrow them together."""

    enabled: bool = True
    endpoint: Endpoint = Field(
        "0.0.0.0:4318",
        description="host:port (4318 is OTLP/HTTP's port); port 0 picks a free one.",
    )
    max_workers: int = Field(
        16, ge=1, le=1024, description="Threads running exports (decode, pipeline, Kafka wait)."
    )
    max_concurrent_requests: int = Field(
        64, ge=1, description="Requests in progress at once; beyond it 429 with Retry-After."
    )
    cors: CorsConfig = CorsConfig()

    @property
    def host_port(self) -> tuple[str, int]:
        return host_port(self.endpoint)


class ReceiverConfig(_Section):
    """The OTLP/gRPC server, and (``http``) the OTLP/HTTP one."""

    endpoint: Endpoint = "0.0.0.0:4317"
    max_recv_msg_size_mib: float = Field(16.0, gt=0, le=1024)
    max_workers: int = Field(16, ge=1, le=1024)
    max_concurrent_rpcs: int = Field(64, ge=1)
    delivery_timeout_s: float = Field(
        10.0, gt=0, description="How long an Export waits for Kafka to confirm its events."
    )
    reuse_port: bool = Field(
        True, description="SO_REUSEPORT, so several processes can share the port."
    )
    native_fast_path: bool = Field(
        True,
        description="Map, validate and encode log records in C where the result is provably "
        "the Python path's (otlp_feedback.native); off: Python for everything.",
    )
    http: HttpReceiverConfig = HttpReceiverConfig()

    @property
    def max_recv_msg_bytes(self) -> int:
        return int(self.max_recv_msg_size_mib * 1024 * 1024)


class KafkaConfig(_Section):
    """The Kafka producer and topic layout."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: dict[EventType, str] = Field(
        default_factory=lambda: {t: f"feedback.{t}" for t in EVENT_TYPES},
        description="Topic per event type; missing types fall back to feedback.<type>.",
    )
    dlq_topic: str | None = Field(
        "feedback.dlq", description="Dead-letter topic for refused records; null disables it."
    )
    create_topics: bool = True
    partitions: int = Field(12, ge=1)
    replication_factor: int = Field(1, ge=1, description="Use 3 on a real cluster.")
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    linger_ms: float = Field(5.0, ge=0)
    batch_size_bytes: int = Field(1_000_000, ge=1024)
    queue_max_messages: int = Field(500_000, ge=1000)
    message_max_bytes: int = Field(1_000_000, ge=1024)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Passed to librdkafka as is (e.g. socket.keepalive.enable).",
    )

    @model_validator(mode="after")
    def _check(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                "kafka.security_protocol SASL_* needs sasl_mechanism, sasl_username, sasl_password"
            )
        return self

    def topic_for(self, event_type: EventType) -> str:
        return self.topics.get(event_type, f"feedback.{event_type}")

    def all_topics(self) -> list[str]:
        """Every topic the receiver writes: one per event type, then the dead-letter topic."""
        topics = [self.topic_for(t) for t in EVENT_TYPES]
        return [*topics, self.dlq_topic] if self.dlq_topic else topics

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by producer, admin and consumer, with librdkafka's own
        log lines routed through Python logging (``logthrottle``)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "logger": LIBRDKAFKA_LOGGER,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            assert self.sasl_password is not None
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf


class RegistryConfig(_Section):
    """Where schemas are registered and looked up (any Confluent-compatible registry)."""

    url: str = "http://127.0.0.1:8081"
    basic_auth_user: str | None = None
    basic_auth_password: SecretStr | None = None
    auto_register: bool = Field(
        True, description="Register local schemas at start-up; else only look them up."
    )
    compatibility: Literal[
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ] = "FULL_TRANSITIVE"
    schemas_dir: Path | None = Field(
        None, description="Folder of <event_type>/vN.avsc; default: the bundled schemas."
    )
    id_cache: bool = Field(
        True,
        description="Keep the schema ids of the last good start on disk, to serve with them "
        "when the registry is down at the next start (pipeline/schema_cache.py).",
    )
    id_cache_file: Path | None = Field(
        None, description="Where; default: schema-ids.json beside spool.directory."
    )

    def client_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"url": self.url}
        if self.basic_auth_user and self.basic_auth_password:
            conf["basic.auth.user.info"] = (
                f"{self.basic_auth_user}:{self.basic_auth_password.get_secret_value()}"
            )
        return conf


class DeliveryConfig(_Section):
    """How the Kafka path fails over to the spool: attempt deadline, in-flight budget, breaker."""

    attempt_timeout_s: float = Field(
        5.0, gt=0, description="Direct Kafka attempt per Export before its events are spooled."
    )
    max_inflight_events: int = Field(
        200_000, ge=1, description="Events awaiting Kafka at once; beyond it, spool or refuse."
    )
    breaker_failure_threshold: int = Field(
        3, ge=1, description="Consecutive Kafka failures that open the circuit."
    )
    breaker_reset_timeout_s: float = Field(
        5.0, gt=0, description="Open circuit waits this long before a half-open probe."
    )
    replay_batch_records: int = Field(5000, ge=1)
    retry_initial_backoff_s: float = Field(0.2, gt=0)
    retry_max_backoff_s: float = Field(5.0, gt=0)
    refuse_retry_after_s: float = Field(
        2.0, gt=0, description="RetryInfo delay sent when an Export is refused for backpressure."
    )


class SpoolConfig(_Section):
    """The on-disk spool that takes accepted events while Kafka is unavailable or slow."""

    enabled: bool = True
    directory: Path = Field(Path(".otlp-feedback/spool"), description="Segment files live here.")
    max_bytes: int = Field(
        1 << 30, ge=1 << 16, description="Size cap; beyond it Exports are refused."
    )
    segment_bytes: int = Field(64 << 20, ge=1 << 12, description="Roll to a new segment past this.")
    fsync: Literal["always", "interval", "never"] = Field(
        "always",
        description="always: fsync before answering OK; interval: every fsync_interval_ms.",
    )
    fsync_interval_ms: int = Field(100, ge=1)


class ValidationConfig(_Section):
    """Limits applied to incoming feedback."""

    max_future_skew_s: float = Field(
        86_400.0, ge=0, description="Reject events timestamped further ahead than this."
    )
    max_age_days: float = Field(
        3650.0, gt=0, description="Reject events older than this (absurd timestamps)."
    )
    max_attributes: int = Field(128, ge=0, description="Attributes kept in the string map.")
    max_attribute_value_len: int = Field(4096, ge=16)
    max_rejection_messages: int = Field(5, ge=1, description="Problems named in partial_success.")
    max_feedback_per_request: int = Field(
        50_000,
        ge=1,
        description="More feedback records in one request are refused RESOURCE_EXHAUSTED.",
    )
    max_string_length: int = Field(
        65_536,
        ge=1,
        le=65_536,
        description="Longer strings in event fields are rejected (65536 is the models' own cap).",
    )
    log_rejections: Literal["DEBUG", "INFO", "WARNING"] = Field(
        "INFO",
        description="Level of the rejection log (event type, reason; each kind at most once a "
        "minute with a count of the rest). dev: WARNING.",
    )
    control_characters: Literal["keep", "strip", "reject"] = Field(
        "strip",
        description="Control, bidi and line-separator characters in strings (tab and newline "
        "are always kept): keep as sent, strip, or reject the record.",
    )


Detector = Literal["email", "phone", "card", "ssn", "ip"]


class RedactionPattern(_Section):
    """An extra PII pattern: matches of ``regex`` become ``replacement``."""

    name: str = Field(min_length=1)
    regex: str = Field(min_length=1)
    replacement: str = "[REDACTED]"

    @model_validator(mode="after")
    def _check(self) -> RedactionPattern:
        try:
            pattern = re.compile(self.regex)
        except re.error as exc:
            raise ValueError(f"pattern {self.name!r}: invalid regex: {exc}") from exc
        if pattern.search(self.replacement):
            # Redacting twice must change nothing (replays and retries go through it again).
            raise ValueError(f"pattern {self.name!r}: the replacement matches its own regex")
        return self


class RedactionConfig(_Section):
    """PII scrubbed from free-text fields before events are encoded (``validation/redaction``)."""

    enabled: bool = True
    fields: list[str] = Field(
        default_factory=lambda: ["comment", "explanation"],
        description="Event fields scrubbed (string fields of the typed events).",
    )
    attribute_keys: list[str] = Field(
        default_factory=lambda: [
            "*comment*",
            "*text*",
            "*message*",
            "*query*",
            "*prompt*",
            "*explanation*",
        ],
        description="Globs (case-insensitive) over attribute keys whose values are scrubbed.",
    )
    detectors: list[Detector] = Field(
        default_factory=lambda: list(get_args(Detector)),
        description="Built-in detectors switched on.",
    )
    phone_regions: list[str] = Field(
        default_factory=lambda: [
            *("US", "CA", "MX", "BR"),  # the Americas
            *("GB", "IE", "DE", "AT", "CH", "FR", "BE", "NL", "ES", "PT", "IT", "SE"),  # Europe
            *("JP", "IN", "AU", "NZ"),  # Asia-Pacific
        ],
        description="ISO 3166 region codes whose national phone formats (no '+') the phone "
        "detector knows, tried in this order; international numbers ('+') are found whatever "
        "the list.",
    )
    extra_patterns: list[RedactionPattern] = Field(default_factory=list)

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: list[str]) -> list[str]:
        unknown = [code for code in regions if code not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s) {unknown} (ISO 3166 codes, upper case)")
        return regions

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: list[str]) -> list[str]:
        known = {name for model in EVENT_MODELS.values() for name in model.model_fields}
        unknown = [name for name in fields if name not in known]
        if unknown:
            raise ValueError(f"unknown event field(s) {unknown}")
        return fields


class ObservabilityConfig(_Section):
    """The operator's HTTP endpoint: Prometheus /metrics, /healthz, /readyz."""

    enabled: bool = True
    endpoint: Endpoint = Field("0.0.0.0:9464", description="host:port; port 0 picks a free one.")

    @property
    def host_port(self) -> tuple[str, int]:
        return host_port(self.endpoint)


# Hosts that mean "this machine" when an exporter dials them.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "ip6-localhost"})


class OtlpTelemetryConfig(_Section):
    """The receiver's own spans and metrics sent over OTLP (``observability/selftelemetry.py``).

    Off until ``endpoint`` is set. Metrics are what ``/metrics`` shows, under the same names;
    spans are one per request (``export logs``, ``export traces``, ``export events``) with a
    child per stage (ingest, encode, deliver), joined to the sender's trace when the request
    carries ``traceparent``. Standard ``OTEL_EXPORTER_OTLP_*`` variables the SDK reads still
    fill what is not set here (e.g. a CA file)."""

    endpoint: str | None = Field(
        None,
        description="http(s)://host:port of a collector; unset: no self-telemetry. Never this "
        "receiver's own port (its spans would come back to it).",
    )
    protocol: Literal["grpc", "http/protobuf"] = "grpc"
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Sent with every export (e.g. a collector's API key)."
    )
    timeout_s: float = Field(
        10.0, gt=0, le=300, description="One export's deadline, retries included."
    )
    traces: bool = Field(True, description="Send spans.")
    metrics: bool = Field(True, description="Send metrics.")
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of requests traced when the sender's traceparent does not decide "
        "(a sampled parent is always followed, an unsampled one never).",
    )
    metrics_interval_s: float = Field(
        60.0, gt=0, description="How often the metrics are sent (and once more at shutdown)."
    )
    service_name: str = Field("otlp-feedback", min_length=1, description="service.name")
    resource_attributes: dict[str, str] = Field(
        default_factory=dict,
        description="More resource attributes (deployment.environment.name, k8s.pod.name...).",
    )

    @field_validator("endpoint")
    @classmethod
    def _url(cls, endpoint: str | None) -> str | None:
        if endpoint is not None:
            otlp_target(endpoint, "grpc")  # raises ValueError naming what is wrong
        return endpoint

    @property
    def enabled(self) -> bool:
        return self.endpoint is not None and (self.traces or self.metrics)


# scheme :// host (a name or a bracketed IPv6 address) [:port] [/path]
_OTLP_URL = re.compile(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:\[\]]+)(?::(\d{1,5}))?(/.*)?")


def otlp_target(endpoint: str, protocol: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an OTLP exporter URL; the port defaults to the protocol's
    (4317 for gRPC, 4318 for HTTP). Raises ``ValueError`` for anything but http(s)://host[:port]
    with an optional path."""
    match = _OTLP_URL.fullmatch(endpoint)
    if match is None or (match[3] is not None and int(match[3]) > 65535):
        raise ValueError(f"{endpoint!r} is not http(s)://host[:port] with a port up to 65535")
    default = 4317 if protocol == "grpc" else 4318
    return match[1], match[2].strip("[]").lower(), int(match[3]) if match[3] else default


class TelemetryConfig(_Section):
    """The receiver's own telemetry pushed out (``/metrics`` is pulled: ``observability``)."""

    otlp: OtlpTelemetryConfig = OtlpTelemetryConfig()


class ClientRateLimit(_Section):
    """One client's token bucket: ``events_per_s`` refill, room for ``burst`` events."""

    events_per_s: float = Field(gt=0)
    burst: int = Field(ge=1)


class ApiKeyConfig(_Section):
    """A static API key, stored only as its SHA-256 (``otlp-feedback auth hash-key``)."""

    client_id: str = Field(min_length=1, max_length=200)
    key_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256 of the key."
    )
    rate_limit: ClientRateLimit | None = Field(
        None, description="This client's limit; else rate_limit.clients, else the default."
    )
    scopes: list[Literal["feedback:write", "feedback:mint"]] = Field(
        default_factory=lambda: ["feedback:write"],  # type: ignore[arg-type]
        description="feedback:write sends feedback; feedback:mint mints feedback tokens.",
    )


class JwtConfig(_Section):
    """Bearer JWTs: HS256 with ``secret`` or RS256 with ``public_key_file`` (exactly one)."""

    secret: SecretStr | None = Field(None, description="HS256 key; at least 32 bytes.")
    public_key_file: Path | None = Field(None, description="RS256 public key, PEM.")
    issuer: str | None = Field(None, description="Required `iss`.")
    audience: str | None = Field(None, description="Required `aud`.")
    required_scope: str = Field(
        "feedback:write", min_length=1, description="Needed in `scope` (space-separated) or `scp`."
    )
    leeway_s: float = Field(30.0, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")

    @property
    def configured(self) -> bool:
        return self.secret is not None or self.public_key_file is not None

    @property
    def algorithm(self) -> Literal["HS256", "RS256"]:
        return "HS256" if self.secret is not None else "RS256"

    @model_validator(mode="after")
    def _check(self) -> JwtConfig:
        if self.secret is not None and self.public_key_file is not None:
            raise ValueError("auth.jwt: set secret (HS256) or public_key_file (RS256), not both")
        # RFC 7518 3.2: an HS256 key must be at least as long as the hash output.
        if self.secret is not None and len(self.secret.get_secret_value().encode()) < 32:
            raise ValueError("auth.jwt.secret must be at least 32 bytes")
        if self.configured and not (self.issuer and self.audience):
            raise ValueError("auth.jwt needs issuer and audience")
        return self


class AuthConfig(_Section):
    """Who may call Export: ``none`` (anyone), ``api_key``, ``jwt``, or ``any`` of the two."""

    mode: Literal["none", "api_key", "jwt", "any"] = "none"
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    jwt: JwtConfig = JwtConfig()

    @model_validator(mode="after")
    def _check(self) -> AuthConfig:
        if self.mode in ("api_key", "any") and not self.api_keys:
            raise ValueError(f"auth.mode {self.mode} needs at least one auth.api_keys entry")
        if self.mode in ("jwt", "any") and not self.jwt.configured:
            raise ValueError(f"auth.mode {self.mode} needs auth.jwt.secret or public_key_file")
        hashes = [k.key_sha256 for k in self.api_keys]
        if len(hashes) != len(set(hashes)):
            raise ValueError("auth.api_keys: the same key_sha256 appears twice")
        return self


class TokensConfig(_Section):
    """Browser feedback tokens (``otlp_feedback/tokens.py``): HS256 JWTs with key ids.

    Tokens are accepted (whatever ``auth.mode`` says) once ``signing_key_id`` names one of
    ``keys``; every key in ``keys`` verifies, so a key rotates by adding the new one, signing
    with it, and removing the old once its tokens have expired (each step a SIGHUP)."""

    keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="Key id -> HS256 secret (at least 32 bytes)."
    )
    signing_key_id: str | None = Field(None, description="The key new tokens are signed with.")
    max_ttl_s: float = Field(
        3600.0, ge=1, le=7 * 86400, description="The longest lifetime a token may be minted with."
    )
    default_ttl_s: float = Field(900.0, gt=0, description="Lifetime when mint names none.")
    default_max_events: int = Field(20, ge=1, description="Event budget when mint names none.")
    max_events_limit: int = Field(1000, ge=1, description="The largest budget a token may carry.")
    rate_limit: ClientRateLimit = Field(
        ClientRateLimit(events_per_s=1.0, burst=10),
        description="Each token's own token bucket, counted in feedback events.",
    )
    max_tracked: int = Field(
        100_000, ge=1, description="Tokens whose budget is kept; the oldest forgotten beyond."
    )

    @property
    def enabled(self) -> bool:
        return self.signing_key_id is not None

    @field_validator("keys")
    @classmethod
    def _keys(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, secret in keys.items():
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", key_id):
                raise ValueError(f"key id {key_id!r}: 1-64 of A-Z a-z 0-9 . _ -")
            # RFC 7518 3.2: an HS256 key must be at least as long as the hash output.
            if len(secret.get_secret_value().encode()) < 32:
                raise ValueError(f"key {key_id!r} must be at least 32 bytes")
        return keys

    @model_validator(mode="after")
    def _check(self) -> TokensConfig:
        if self.signing_key_id is not None and self.signing_key_id not in self.keys:
            raise ValueError(f"tokens.signing_key_id {self.signing_key_id!r} is not in tokens.keys")
        if self.default_ttl_s > self.max_ttl_s:
            raise ValueError("tokens.default_ttl_s is over tokens.max_ttl_s")
        if self.default_max_events > self.max_events_limit:
            raise ValueError("tokens.default_max_events is over tokens.max_events_limit")
        return self


class TlsConfig(_Section):
    """TLS on the OTLP/gRPC port; files are re-read when they change (certificate rotation)."""

    enabled: bool = False
    cert_file: Path | None = Field(None, description="Server certificate chain, PEM.")
    key_file: Path | None = Field(None, description="Server private key, PEM.")
    client_ca_file: Path | None = Field(
        None, description="Mutual TLS: clients must present a certificate signed by this CA."
    )

    @model_validator(mode="after")
    def _check(self) -> TlsConfig:
        if self.enabled and not (self.cert_file and self.key_file):
            raise ValueError("tls.enabled needs tls.cert_file and tls.key_file")
        if self.client_ca_file is not None and not self.enabled:
            raise ValueError("tls.client_ca_file (mutual TLS) needs tls.enabled: true")
        return self


class RateLimitConfig(_Section):
    """A token bucket of feedback events per authenticated client id (API key, JWT subject,
    feedback token's client). Unauthenticated peers (``auth.mode: none``) are limited only when
    ``anonymous`` is set: a sidecar or collector gateway sends everything from one address, and
    a default per-address limit would throttle the whole deployment."""

    enabled: bool = True
    events_per_s: float = Field(
        1000.0, gt=0, description="Default refill rate per authenticated client."
    )
    burst: int = Field(2000, ge=1, description="Default bucket size per authenticated client.")
    anonymous: ClientRateLimit | None = Field(
        None,
        description="Each unauthenticated peer address's bucket; unset: unauthenticated "
        "requests are not rate-limited.",
    )
    max_clients: int = Field(
        10_000, ge=1, description="Buckets kept; the least recently used is forgotten beyond."
    )
    clients: dict[str, ClientRateLimit] = Field(
        default_factory=dict, description="Per client id overrides."
    )


class AuditConfig(_Section):
    """The audit log: JSON lines for refused requests, apart from the application log."""

    enabled: bool = True
    path: Path | None = Field(None, description="Append here; default: its own stderr stream.")


class DevConfig(_Section):
    """What ``otlp-feedback dev`` starts (see ``dev_settings``)."""

    host: str = Field(
        "127.0.0.1",
        description="Interface dev's receiver and metrics ports bind unless their endpoints "
        "are set; 0.0.0.0 opens them to the network (auth is off by default).",
    )
    broker_port: int = Field(9092, ge=1, le=65535)
    registry_port: int = Field(8081, ge=1, le=65535)
    data_dir: Path = Path(".otlp-feedback")


class Settings(BaseSettings):
    """The whole configuration. Build it with ``load_config``."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="OTLP_FEEDBACK_",
        env_nested_delimiter="__",
    )

    receiver: ReceiverConfig = ReceiverConfig()
    kafka: KafkaConfig = KafkaConfig()
    registry: RegistryConfig = RegistryConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    spool: SpoolConfig = SpoolConfig()
    validation: ValidationConfig = ValidationConfig()
    redaction: RedactionConfig = RedactionConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    auth: AuthConfig = AuthConfig()
    tokens: TokensConfig = TokensConfig()
    tls: TlsConfig = TlsConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    audit: AuditConfig = AuditConfig()
    dev: DevConfig = DevConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "pretty"] = "json"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @model_validator(mode="after")
    def _check_client_limits(self) -> Settings:
        # An API key's own limit and rate_limit.clients name the same bucket (the client id).
        limits: dict[str, ClientRateLimit] = dict(self.rate_limit.clients)
        for key in self.auth.api_keys:
            if key.rate_limit is None:
                continue
            known = limits.setdefault(key.client_id, key.rate_limit)
            if known != key.rate_limit:
                raise ValueError(
                    f"auth.api_keys: client {key.client_id!r} has two different rate limits"
                )
        return self

    @model_validator(mode="after")
    def _no_telemetry_loop(self) -> Settings:
        # The receiver's own spans sent to its own OTLP port would be received, traced and sent
        # again, for ever. A collector in between is the operator's to configure; this is not.
        otlp = self.telemetry.otlp
        if otlp.endpoint is None or not otlp.enabled:
            return self
        _, host, port = otlp_target(otlp.endpoint, otlp.protocol)
        own = [self.receiver.endpoint]
        if self.receiver.http.enabled:
            own.append(self.receiver.http.endpoint)
        for endpoint in own:
            bind, bind_port = host_port(endpoint)
            bind = bind.lower()
            same_host = host == bind or (host in _LOCAL_HOSTS and bind in _LOCAL_HOSTS)
            if same_host and bind_port == port:
                raise ValueError(
                    f"telemetry.otlp.endpoint {otlp.endpoint} is this receiver's own port "
                    f"({endpoint}): its spans would come back to it, for ever; send them to a "
                    "collector"
                )
        return self

    def schema_id_cache_file(self) -> Path | None:
        """The schema id cache's path (``registry.id_cache_file``, else ``schema-ids.json``
        in ``spool.directory``'s parent: the receiver's state folder); None when it is off."""
        if not self.registry.id_cache:
            return None
        return self.registry.id_cache_file or self.spool.directory.parent / "schema-ids.json"

    def client_rate_limits(self) -> dict[str, ClientRateLimit]:
        """Per client id limits: rate_limit.clients, then those set on API keys."""
        limits = dict(self.rate_limit.clients)
        for key in self.auth.api_keys:
            if key.rate_limit is not None:
                limits.setdefault(key.client_id, key.rate_limit)
        return limits


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``load_config`` (lowest priority after defaults)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ is overridden; pydantic-settings never calls this

    def __call__(self) -> dict[str, Any]:
        path = _yaml_path.get()
        if path is None:
            return {}
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        return data


def load_config(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, ``path`` (YAML), env and ``overrides`` (highest).

    Without ``kafka.bootstrap_servers`` or ``registry.url``, every command dials the dev stack
    the settings describe (``dev.broker_port``, ``dev.registry_port`` on loopback): a config
    that moves ``dev``'s ports moves ``tail``'s, ``schemas``' and ``dlq``'s with them.

    Raises ``ConfigError`` naming every bad key, e.g. ``kafka.partitions: Input should be
    greater than or equal to 1``.
    """
    _reject_unknown_env()
    token = _yaml_path.set(Path(path) if path else None)
    try:
        return _on_the_dev_stack(Settings(**overrides))
    except ValidationError as exc:
        # Not ``from exc``: pydantic's own message repeats each failing section's input, secrets
        # (kafka.sasl_password, auth.jwt.secret) in plain text, and a traceback would print it.
        # ``_describe`` names every problem without the values.
        raise ConfigError(_describe(exc)) from None
    finally:
        _yaml_path.reset(token)


def dev_settings(path: Path | str | None = None, *, host: str | None = None) -> Settings:
    """The settings ``otlp-feedback dev`` runs with: the dev stack of ``path``'s ``dev.*``.

    Kafka and the registry are the embedded ones on loopback (``dev.broker_port``,
    ``dev.registry_port``), whatever ``kafka.bootstrap_servers``/``registry.url`` say. The
    receiver's gRPC and HTTP ports and the metrics port bind ``host`` (default ``dev.host``,
    itself ``127.0.0.1``) unless the config sets their endpoint: auth is off by default, so
    ``dev`` is reachable only from this machine unless told otherwise. Logs are pretty, and
    rejections are logged at WARNING (``validation.log_rejections``) unless the config says.
    """
    base = load_config(path)
    dev = base.dev
    bind = host or dev.host
    receiver = base.receiver.model_dump(exclude_unset=True)
    http = receiver.setdefault("http", {})
    observability = base.observability.model_dump(exclude_unset=True)
    validation = base.validation.model_dump(exclude_unset=True)
    validation.setdefault("log_rejections", "WARNING")  # a newcomer sees why a record was refused
    receiver.setdefault("endpoint", _with_host(base.receiver.endpoint, bind))
    http.setdefault("endpoint", _with_host(base.receiver.http.endpoint, bind))
    observability.setdefault("endpoint", _with_host(base.observability.endpoint, bind))
    return load_config(
        path,
        receiver=receiver,
        observability=observability,
        validation=validation,
        kafka={
            **base.kafka.model_dump(exclude_unset=True),
            "bootstrap_servers": dev_broker(dev),
        },
        registry={**base.registry.model_dump(exclude_unset=True), "url": dev_registry(dev)},
        spool={"directory": dev.data_dir / "spool", **base.spool.model_dump(exclude_unset=True)},
        log_format="pretty",
    )


def _on_the_dev_stack(settings: Settings) -> Settings:
    """``settings`` with the broker and registry nobody set pointed at the dev stack's."""
    update: dict[str, Any] = {}
    if "bootstrap_servers" not in settings.kafka.model_fields_set:
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": dev_broker(settings.dev)})
        kafka.model_fields_set.discard("bootstrap_servers")
        update["kafka"] = kafka
    if "url" not in settings.registry.model_fields_set:
        registry = settings.registry.model_copy(update={"url": dev_registry(settings.dev)})
        registry.model_fields_set.discard("url")
        update["registry"] = registry
    return settings.model_copy(update=update) if update else settings


def dev_broker(dev: DevConfig) -> str:
    """The embedded broker's bootstrap address."""
    return f"127.0.0.1:{dev.broker_port}"


def dev_registry(dev: DevConfig) -> str:
    """The bundled registry's URL."""
    return f"http://127.0.0.1:{dev.registry_port}"


def _with_host(endpoint: str, host: str) -> str:
    _, _, port = endpoint.rpartition(":")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# kafka.extra goes to librdkafka as plain text; keys like these hold credentials.
_SECRET_WORDS = ("password", "secret", "token", "credential", "private")


def without_userinfo(url: str, mask: str = "") -> str:
    """``url`` with its user info (``user:password@``) replaced by ``mask``."""
    return re.sub(r"//[^/@]*@", "//" + mask.replace("\\", "\\\\"), url)


def masked_yaml(settings: Settings) -> str:
    """The settings as YAML with every secret shown as ``**********``: ``SecretStr`` values
    (pydantic masks them in JSON mode), credential-like ``kafka.extra`` entries and user info
    in ``registry.url``."""
    data = settings.model_dump(mode="json")
    extra = data["kafka"]["extra"]
    for key in extra:
        if any(word in key.lower() for word in _SECRET_WORDS):
            extra[key] = "**********"
    data["registry"]["url"] = without_userinfo(data["registry"]["url"], "**********@")
    return yaml.safe_dump(data, sort_keys=False)


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{key}: {msg}" if key else msg)  # a rule across sections names its keys
    return "invalid configuration: " + "; ".join(problems)


def _reject_unknown_env() -> None:
    # pydantic-settings ignores env vars that match no field; a typo there would silently
    # leave a default in force, so name it instead.
    prefix = "OTLP_FEEDBACK_"
    known = {name.upper() for name in Settings.model_fields}
    unknown = [
        key
        for key in os.environ
        if key.startswith(prefix) and key[len(prefix) :].split("__")[0] not in known
    ]
    if unknown:
        raise ConfigError(f"invalid configuration: unknown environment variable(s) {unknown}")
