"""``load_config``: defaults, a YAML file, ``OTLP_FEEDBACK_*`` env on top, loud failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from otlp_feedback.config import Settings, load_config
from otlp_feedback.errors import ConfigError


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otlp-feedback.yaml"
    path.write_text(text)
    return path


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_need_no_file_and_no_env() -> None:
    settings = load_config()
    assert settings.receiver.endpoint == "0.0.0.0:4317"
    assert settings.receiver.max_recv_msg_size_mib == 16.0
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.registry.url == "http://127.0.0.1:8081"
    assert settings.registry.compatibility == "FULL_TRANSITIVE"
    assert settings.registry.auto_register is True
    assert settings.validation.max_rejection_messages == 5


def test_every_event_type_has_a_default_topic() -> None:
    kafka = load_config().kafka
    assert kafka.topic_for("user_feedback") == "feedback.user_feedback"
    assert kafka.topic_for("experiment_result") == "feedback.experiment_result"


def test_topic_map_may_name_only_some_types() -> None:
    kafka = load_config(kafka={"topics": {"user_feedback": "llm.thumbs"}}).kafka
    assert kafka.topic_for("user_feedback") == "llm.thumbs"
    assert kafka.topic_for("system_health") == "feedback.system_health"


def test_max_recv_size_is_converted_to_bytes() -> None:
    receiver = load_config(receiver={"max_recv_msg_size_mib": 0.5}).receiver
    assert receiver.max_recv_msg_bytes == 512 * 1024


def test_settings_are_frozen() -> None:
    settings = load_config()
    with pytest.raises(ValidationError, match="frozen"):
        settings.kafka.partitions = 3  # type: ignore[misc]


# --- sources and their order ------------------------------------------------------------------


def test_yaml_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
receiver:
  endpoint: 127.0.0.1:14317
kafka:
  bootstrap_servers: broker-1:9092,broker-2:9092
  partitions: 6
  topics:
    user_feedback: llm.feedback
validation:
  max_attributes: 16
""",
    )
    settings = load_config(path)
    assert settings.receiver.endpoint == "127.0.0.1:14317"
    assert settings.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.kafka.partitions == 6
    assert settings.kafka.topic_for("user_feedback") == "llm.feedback"
    assert settings.validation.max_attributes == 16
    assert settings.kafka.linger_ms == 5.0  # untouched keys keep their defaults


def test_path_may_be_a_string(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "log_level: DEBUG\n")
    assert load_config(str(path)).log_level == "DEBUG"


def test_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write_yaml(tmp_path, "")) == load_config()


def test_env_overrides_a_nested_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_FEEDBACK_KAFKA__BOOTSTRAP_SERVERS", "env-broker:9093")
    assert load_config().kafka.bootstrap_servers == "env-broker:9093"


def test_env_wins_over_yaml_and_merges_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_yaml(tmp_path, "kafka:\n  bootstrap_servers: yaml:9092\n  partitions: 6\n")
    monkeypatch.setenv("OTLP_FEEDBACK_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    kafka = load_config(path).kafka
    assert kafka.bootstrap_servers == "env:9092"
    assert kafka.partitions == 6


def test_explicit_overrides_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_FEEDBACK_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("OTLP_FEEDBACK_KAFKA__PARTITIONS", "4")
    kafka = load_config(kafka={"bootstrap_servers": "arg:9092"}).kafka
    assert kafka.bootstrap_servers == "arg:9092"
    assert kafka.partitions == 4


def test_env_values_are_parsed_to_the_field_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_FEEDBACK_RECEIVER__REUSE_PORT", "false")
    monkeypatch.setenv("OTLP_FEEDBACK_VALIDATION__MAX_AGE_DAYS", "30.5")
    settings = load_config()
    assert settings.receiver.reuse_port is False
    assert settings.validation.max_age_days == 30.5


# --- loud failures ----------------------------------------------------------------------------


def test_unknown_yaml_key_is_named(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "kafka:\n  bootstrap: broker:9092\n")
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap: unknown key"):
        load_config(path)


def test_unknown_top_level_yaml_section_is_named(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "recever:\n  endpoint: x\n")
    with pytest.raises(ConfigError, match="recever: unknown key"):
        load_config(path)


def test_unknown_env_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_FEEDBACK_KAFKAA__BOOTSTRAP_SERVERS", "x:1")
    with pytest.raises(ConfigError, match="OTLP_FEEDBACK_KAFKAA__BOOTSTRAP_SERVERS"):
        load_config()


def test_unknown_nested_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_FEEDBACK_KAFKA__BOOTSTRAP", "x:1")
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap: unknown key"):
        load_config()


def test_unknown_override_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"receiver\.port: unknown key"):
        load_config(receiver={"port": 4317})


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        pytest.param("kafka:\n  partitions: 0\n", "kafka.partitions", id="below-minimum"),
        pytest.param("receiver:\n  max_workers: many\n", "receiver.max_workers", id="not-an-int"),
        pytest.param("kafka:\n  compression: brotli\n", "kafka.compression", id="not-a-choice"),
        pytest.param("registry:\n  compatibility: LOOSE\n", "registry.compatibility",
                     id="unknown-mode"),
        pytest.param("kafka:\n  topics:\n    thumbs: t\n", "kafka.topics.thumbs",
                     id="unknown-event-type"),
        pytest.param("log_level: LOUD\n", "log_level", id="top-level"),
        pytest.param("validation:\n  max_attribute_value_len: 4\n",
                     "validation.max_attribute_value_len", id="too-small"),
    ],
)  # fmt: skip
def test_bad_value_is_named(tmp_path: Path, yaml_text: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_yaml(tmp_path, yaml_text))
    assert named in str(caught.value)


def test_bad_env_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_FEEDBACK_KAFKA__PARTITIONS", "0")
    with pytest.raises(ConfigError, match=r"kafka\.partitions: Input should be greater"):
        load_config()


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "kafka:\n  partitions: 0\n  linger_ms: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "kafka.partitions" in str(caught.value)
    assert "kafka.linger_ms" in str(caught.value)


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ConfigError, match="sasl_mechanism, sasl_username, sasl_password"):
        load_config(kafka={"security_protocol": "SASL_SSL"})


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_config(missing)


@pytest.mark.parametrize(
    "text",
    [pytest.param("- a\n- b\n", id="list"), pytest.param("just text\n", id="scalar")],
)
def test_yaml_must_hold_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write_yaml(tmp_path, text))


def test_malformed_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(write_yaml(tmp_path, "kafka: [unclosed\n"))


# --- secrets ----------------------------------------------------------------------------------


def sasl_settings(tmp_path: Path) -> Settings:
    path = write_yaml(
        tmp_path,
        """
kafka:
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_username: svc-feedback
  sasl_password: kafka-hunter2
registry:
  basic_auth_user: sr-user
  basic_auth_password: registry-hunter2
""",
    )
    return load_config(path)


def test_secrets_are_secret_str(tmp_path: Path) -> None:
    settings = sasl_settings(tmp_path)
    assert isinstance(settings.kafka.sasl_password, SecretStr)
    assert isinstance(settings.registry.basic_auth_password, SecretStr)


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    settings = sasl_settings(tmp_path)
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "kafka-hunter2" not in text
        assert "registry-hunter2" not in text


def test_secrets_reach_the_clients(tmp_path: Path) -> None:
    settings = sasl_settings(tmp_path)
    kafka = settings.kafka.client_config()
    assert kafka["sasl.password"] == "kafka-hunter2"
    assert kafka["sasl.username"] == "svc-feedback"
    assert kafka["security.protocol"] == "SASL_SSL"
    registry = settings.registry.client_config()
    assert registry["basic.auth.user.info"] == "sr-user:registry-hunter2"


def test_secret_from_env_is_secret_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_FEEDBACK_REGISTRY__BASIC_AUTH_PASSWORD", "env-hunter2")
    settings = load_config()
    assert isinstance(settings.registry.basic_auth_password, SecretStr)
    assert "env-hunter2" not in repr(settings)


@pytest.mark.parametrize(
    "key", ["receiver.endpoint", "receiver.http.endpoint", "observability.endpoint"]
)
@pytest.mark.parametrize("endpoint", ["localhost:99999", "localhost", "localhost:http"])
def test_every_listen_address_needs_a_port_from_0_to_65535(key: str, endpoint: str) -> None:
    section, *rest = key.split(".")
    value: object = endpoint
    for name in reversed(rest):
        value = {name: value}
    with pytest.raises(ConfigError, match=rf"{key}: .*not host:port"):
        load_config(**{section: value})
