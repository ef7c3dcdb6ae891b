"""The dev stack (``config.dev_settings``): what ``otlp-feedback dev`` binds and dials."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from otlp_feedback.cli import _print_banner, forget_registry
from otlp_feedback.config import dev_settings, load_config


def test_dev_binds_loopback_by_default() -> None:
    settings = dev_settings()
    assert settings.receiver.endpoint == "127.0.0.1:4317"
    assert settings.receiver.http.endpoint == "127.0.0.1:4318"
    assert settings.observability.endpoint == "127.0.0.1:9464"


def test_dev_host_opens_the_ports_when_asked(tmp_path: Path) -> None:
    assert dev_settings(host="0.0.0.0").receiver.endpoint == "0.0.0.0:4317"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dev": {"host": "0.0.0.0"}}))
    settings = dev_settings(config)
    assert settings.receiver.http.endpoint == "0.0.0.0:4318"
    assert settings.observability.endpoint == "0.0.0.0:9464"


def test_an_endpoint_the_config_sets_is_kept(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "receiver": {"endpoint": "0.0.0.0:5317", "http": {"max_workers": 2}},
                "observability": {"endpoint": "127.0.0.1:0"},
            }
        )
    )
    settings = dev_settings(config)
    assert settings.receiver.endpoint == "0.0.0.0:5317"
    assert settings.receiver.http.endpoint == "127.0.0.1:4318"
    assert settings.receiver.http.max_workers == 2
    assert settings.observability.endpoint == "127.0.0.1:0"


def test_dev_dials_its_own_broker_and_registry(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": "elsewhere:9092", "partitions": 2},
                "dev": {"broker_port": 19092, "registry_port": 18081},
            }
        )
    )
    settings = dev_settings(config)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.kafka.partitions == 2
    assert settings.registry.url == "http://127.0.0.1:18081"
    assert settings.log_format == "pretty"


def test_every_command_dials_the_dev_stack_its_config_describes(tmp_path: Path) -> None:
    # tail, schemas and dlq load their settings with load_config: dev.* ports move them too.
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dev": {"broker_port": 19092, "registry_port": 18081}}))
    settings = load_config(config)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.registry.url == "http://127.0.0.1:18081"
    assert load_config().kafka.bootstrap_servers == "127.0.0.1:9092"


def test_a_broker_or_registry_the_config_names_wins_over_the_dev_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {"kafka": {"bootstrap_servers": "kafka:9092"}, "dev": {"broker_port": 19092}}
        )
    )
    assert load_config(config).kafka.bootstrap_servers == "kafka:9092"
    monkeypatch.setenv("OTLP_FEEDBACK_REGISTRY__URL", "http://registry:8081")
    assert load_config(config).registry.url == "http://registry:8081"


def test_dev_forgets_the_registry_as_the_memory_only_broker_forgets_its_topics(
    tmp_path: Path,
) -> None:
    for name in ("registry.db", "registry.db-journal", "tansu.log"):
        (tmp_path / name).write_text("last session")
    forget_registry(tmp_path / "registry.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tansu.log"]
    forget_registry(tmp_path / "registry.db")  # nothing there: fine


def test_the_dev_banner_says_the_broker_forgets(capsys: pytest.CaptureFixture[str]) -> None:
    _print_banner(dev_settings(), 4317, 4318)
    out = capsys.readouterr().out
    assert "keeps everything in memory" in out
    assert "registry is reset with it" in out
