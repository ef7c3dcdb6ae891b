"""Operating a running receiver: ``config check`` prints the effective settings with secrets
masked, and ``FeedbackApp.reload`` (SIGHUP in ``serve``) applies what can change live and names
what needs a restart."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from otlp_builders import MINIMAL, log_record, logs_request

from otlp_feedback.app import FeedbackApp
from otlp_feedback.cli import _wait_for_signal, main
from otlp_feedback.config import RedactionConfig, Settings, load_config
from otlp_feedback.errors import ConfigError
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink

SECRET_CONFIG = """
kafka:
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_username: svc-feedback
  sasl_password: hunter2-kafka
  extra:
    ssl.key.password: hunter2-key
    socket.keepalive.enable: true
registry:
  url: https://reg-user:hunter2-url@registry.example.com
  basic_auth_user: reg
  basic_auth_password: hunter2-registry
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


# --- otlp-feedback config check -----------------------------------------------------------


def test_config_check_prints_the_effective_settings_as_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTLP_FEEDBACK_KAFKA__PARTITIONS", "6")
    path = write(tmp_path, "kafka:\n  linger_ms: 20\nredaction:\n  detectors: [email]\n")

    assert main(["config", "check", str(path)]) == 0

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["kafka"]["linger_ms"] == 20.0  # from the file
    assert printed["kafka"]["partitions"] == 6  # from the environment
    assert printed["receiver"]["endpoint"] == "0.0.0.0:4317"  # a default
    assert printed["redaction"]["detectors"] == ["email"]
    assert load_config(**{k: v for k, v in printed.items() if k != "dev"}) is not None


def test_config_check_masks_every_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(write(tmp_path, SECRET_CONFIG))]) == 0

    out = capsys.readouterr().out
    assert "hunter2" not in out
    printed = yaml.safe_load(out)
    assert printed["kafka"]["sasl_password"] == "**********"
    assert printed["kafka"]["extra"] == {
        "ssl.key.password": "**********",
        "socket.keepalive.enable": True,
    }
    assert printed["registry"]["basic_auth_password"] == "**********"
    assert printed["registry"]["url"] == "https://**********@registry.example.com"
    assert printed["kafka"]["sasl_username"] == "svc-feedback"  # not a secret


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param("kafka:\n  partitions: 0\n", "kafka.partitions", id="bad-value"),
        pytest.param("kafka:\n  partitons: 3\n", "kafka.partitons: unknown key", id="typo"),
        pytest.param(
            "redaction:\n  fields: [coment]\n", "redaction.fields", id="unknown-redacted-field"
        ),
        pytest.param(
            "validation:\n  control_characters: drop\n",
            "validation.control_characters",
            id="bad-policy",
        ),
    ],
)
def test_config_check_exits_2_naming_the_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    assert main(["config", "check", str(write(tmp_path, text))]) == 2
    captured = capsys.readouterr()
    assert key in captured.err
    assert captured.out == ""


def test_config_check_of_a_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


# --- FeedbackApp.reload -------------------------------------------------------------------


@pytest.fixture
def root_level() -> Iterator[None]:
    """Reload sets the root logger's level; put it back."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture
def app(settings: Settings, root_level: None) -> Iterator[FeedbackApp]:
    """A started app on the in-memory doubles."""
    with FeedbackApp(settings, InMemoryRegistry(), InMemorySink()) as running:
        yield running


def changed(settings: Settings, **sections: Any) -> Settings:
    """``settings`` with some sections (or top-level values) replaced."""
    update = {
        name: getattr(settings, name).model_copy(update=value) if isinstance(value, dict) else value
        for name, value in sections.items()
    }
    return settings.model_copy(update=update)


def test_reload_applies_a_new_log_level(app: FeedbackApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="otlp_feedback")
    applied = app.reload(changed(app.settings, log_level="WARNING"))

    assert applied == ["log_level"]
    assert logging.getLogger().level == logging.WARNING
    assert app.settings.log_level == "WARNING"
    assert "config reloaded: applied log_level" in caplog.text


def test_reload_applies_new_redaction_rules_to_the_next_request(
    app: FeedbackApp, caplog: pytest.LogCaptureFixture
) -> None:
    sink = app.sink
    assert isinstance(sink, InMemorySink)
    comment = {**MINIMAL["user_feedback"], "feedback.comment": "jane@example.com"}

    app.pipeline.export_logs(logs_request(log_record("feedback.user_feedback", comment)))
    applied = app.reload(changed(app.settings, redaction=RedactionConfig(enabled=False)))
    app.pipeline.export_logs(logs_request(log_record("feedback.user_feedback", comment)))

    assert applied == ["redaction.enabled"]
    first, second = sink.records
    assert b"jane@example.com" not in first.value
    assert b"jane@example.com" in second.value


def test_reload_leaves_restart_only_settings_alone_and_names_them(
    app: FeedbackApp, caplog: pytest.LogCaptureFixture
) -> None:
    new = changed(
        app.settings,
        log_level="DEBUG",
        kafka={"partitions": 7},
        receiver={"endpoint": "127.0.0.1:14317"},
    )
    applied = app.reload(new)

    assert applied == ["log_level"]
    assert app.settings.kafka.partitions != 7
    assert app.settings.receiver.endpoint == "127.0.0.1:0"
    assert app.settings.log_level == "DEBUG"
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.getMessage() == (
        "config reload: needs a restart, not applied: receiver.endpoint, kafka.partitions"
    )


def test_reload_logs_the_names_of_changed_secrets_never_their_values(
    app: FeedbackApp, caplog: pytest.LogCaptureFixture
) -> None:
    new = load_config(
        receiver={"endpoint": "127.0.0.1:0"},
        registry={"basic_auth_user": "reg", "basic_auth_password": "hunter2"},
    )
    app.reload(new)
    assert "registry.basic_auth_password" in caplog.text
    assert "hunter2" not in caplog.text


def test_reload_with_nothing_changed_applies_nothing(
    app: FeedbackApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="otlp_feedback")
    assert app.reload(app.settings) == []
    assert "config reloaded: nothing changed" in caplog.text


def test_a_receiver_that_can_reload_gets_the_keys_it_declares(app: FeedbackApp) -> None:
    received: list[Settings] = []
    receiver: Any = app.receiver
    receiver.reloadable_keys = ("receiver.delivery_timeout_s",)
    receiver.reload = received.append

    new = changed(app.settings, receiver={"delivery_timeout_s": 3.0, "max_workers": 2})
    applied = app.reload(new)

    assert applied == ["receiver.delivery_timeout_s"]
    (effective,) = received
    assert effective.receiver.delivery_timeout_s == 3.0
    assert effective.receiver.max_workers == app.settings.receiver.max_workers != 2
    assert app.settings is effective


def test_without_a_reload_hook_receiver_changes_need_a_restart(app: FeedbackApp) -> None:
    receiver: Any = app.receiver
    receiver.reload = None  # as for a receiver that has no hook

    new = changed(app.settings, receiver={"delivery_timeout_s": 3.0})
    assert app.reload(new) == []
    assert app.settings.receiver.delivery_timeout_s != 3.0


def test_a_reload_the_receiver_refuses_changes_nothing(app: FeedbackApp) -> None:
    def refuse(settings: Settings) -> None:
        raise ConfigError("invalid configuration: auth.keys_file: cannot read it")

    receiver: Any = app.receiver
    receiver.reloadable_keys = ("receiver.delivery_timeout_s",)
    receiver.reload = refuse
    before = app.settings

    new = changed(before, log_level="DEBUG", receiver={"delivery_timeout_s": 3.0})
    with pytest.raises(ConfigError, match="cannot read it"):
        app.reload(new)
    assert app.settings is before
    assert logging.getLogger().level != logging.DEBUG


# --- the serve loop -----------------------------------------------------------------------


@pytest.fixture
def restore_signal_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("taken_by", ["main thread", "another thread"])
def test_sighup_runs_the_reload_on_the_main_thread_and_sigterm_stops(
    restore_signal_handlers: None, taken_by: str
) -> None:
    # The kernel hands a process signal to any thread; when another thread takes it, the
    # main thread is not interrupted. pthread_kill pins the signal to one thread.
    reloaded_on: list[str] = []
    reloaded = threading.Event()
    returned = threading.Event()
    rescued: list[bool] = []
    main_ident = threading.get_ident()

    def on_reload() -> None:
        reloaded_on.append(threading.current_thread().name)
        reloaded.set()

    def placeholder(signum: int, frame: object) -> None:
        """Stands in until the loop installs its handlers (so no signal can kill pytest)."""

    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, placeholder)

    def send_signals() -> None:
        target = main_ident if taken_by == "main thread" else threading.get_ident()
        # No event announces that the loop has installed its handlers; poll for it.
        deadline = time.monotonic() + 10
        while signal.getsignal(signal.SIGHUP) is placeholder and time.monotonic() < deadline:
            time.sleep(0.001)
        signal.pthread_kill(target, signal.SIGHUP)
        reloaded.wait(10)
        signal.pthread_kill(target, signal.SIGTERM)
        if not returned.wait(10):  # a missed signal would hang pytest: unblock, then fail
            rescued.append(True)
            signal.pthread_kill(main_ident, signal.SIGTERM)

    sender = threading.Thread(target=send_signals)
    sender.start()
    _wait_for_signal(on_reload=on_reload)
    returned.set()
    sender.join()

    assert not rescued, "the loop missed a signal taken by another thread"
    assert reloaded_on == [threading.main_thread().name]


def test_settling_the_heap_exempts_what_start_up_built_from_the_cyclic_gc() -> None:
    import gc

    from otlp_feedback.app import settle_process_heap

    gc.unfreeze()
    try:
        settle_process_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # the rest of the test session keeps its ordinary collector
