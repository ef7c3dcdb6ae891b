"""The command line explains itself: ``--version``, a help text on every option, and which
schemas folder the ``schemas`` commands read."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from otlp_feedback import cli


def _commands(
    parser: argparse.ArgumentParser, name: str = "otlp-feedback"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from _commands(subparser, f"{name} {sub}")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("otlp-feedback ")


def test_every_option_has_a_help_text() -> None:
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in _commands(cli._parser())
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not action.help
    ]
    assert not missing, missing


def test_schemas_commands_read_the_checkouts_schemas_and_say_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from otlp_feedback.encoding.schemas import default_schemas_dir

    assert cli.schemas_folder(tmp_path / "given", tmp_path) == tmp_path / "given"
    assert cli.schemas_folder(None, tmp_path) == default_schemas_dir()
    shutil.copytree(default_schemas_dir(), tmp_path / "schemas" / "avro")
    assert cli.schemas_folder(None, tmp_path) == tmp_path / "schemas" / "avro"

    monkeypatch.chdir(tmp_path)
    assert cli.main(["schemas", "check", "--local-only"]) == 0
    assert f"schemas: {tmp_path / 'schemas' / 'avro'}" in capsys.readouterr().err


def test_httpx_request_lines_stay_out_of_the_log() -> None:
    import logging

    from otlp_feedback.logsetup import configure_logging

    configure_logging("INFO", "pretty")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
