"""The command line explains itself: ``--version``, and a help text on every option."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

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
