"""``otlp-feedback tail`` with no broker to read from: a clear error and exit 1, not exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from otlp_feedback import cli
from otlp_feedback.embedded.tansu import free_port


def test_tail_with_no_broker_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "BROKER_CHECK_S", 1.0)
    port = free_port()  # nothing listens there
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dev": {"broker_port": port}}))

    code = cli.main(["tail", "--config", str(config), "--idle-timeout", "1"])

    assert code == 1
    err = capsys.readouterr().err
    assert f"no Kafka broker answered at 127.0.0.1:{port}" in err
    assert "otlp-feedback dev" in err
