"""One frozen settings tree: defaults here, a YAML file over them, ``OTLP_FEEDBACK_*`` env on top.

Env overrides use ``__`` for nesting, e.g. ``OTLP_FEEDBACK_KAFKA__BOOTSTRAP_SERVERS``. Unknown
keys and bad values fail at start-up with a message naming the key (``load_config`` turns
pydantic's error into a ``ConfigError``). This is the only module that reads ``os.environ``.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from otlp_feedback.errors import ConfigError
from otlp_feedback.events import EVENT_TYPES, EventType

_yaml_path: ContextVar[Path | None] = ContextVar("_yaml_path", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReceiverConfig(_Section):
    """The OTLP/gRPC server."""

    endpoint: str = "0.0.0.0:4317"
    max_recv_msg_size_mib: float = Field(16.0, gt=0, le=1024)
    max_workers: int = Field(16, ge=1, le=1024)
    max_concurrent_rpcs: int = Field(64, ge=1)
    delivery_timeout_s: float = Field(
        10.0, gt=0, description="How long an Export waits for Kafka to confirm its events."
    )
    reuse_port: bool = Field(
        True, description="SO_REUSEPORT, so several processes can share the port."
    )

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
        """librdkafka settings shared by producer, admin and consumer."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
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


class ObservabilityConfig(_Section):
    """The operator's HTTP endpoint: Prometheus /metrics, /healthz, /readyz."""

    enabled: bool = True
    endpoint: str = Field("0.0.0.0:9464", description="host:port; port 0 picks a free one.")

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.endpoint.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


class DevConfig(_Section):
    """What ``otlp-feedback dev`` starts."""

    broker_port: int = 9092
    registry_port: int = 8081
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
    observability: ObservabilityConfig = ObservabilityConfig()
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

    Raises ``ConfigError`` naming every bad key, e.g. ``kafka.partitions: Input should be
    greater than or equal to 1``.
    """
    _reject_unknown_env()
    token = _yaml_path.set(Path(path) if path else None)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    finally:
        _yaml_path.reset(token)


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{key}: {msg}")
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
