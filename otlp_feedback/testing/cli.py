"""``run_cli``: the ``otlp-feedback`` command run in-process under pytest, its output captured."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from otlp_feedback.cli import main

if TYPE_CHECKING:  # pytest is a test dependency, not the package's
    import pytest


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    """Run ``otlp-feedback ARGV``; (exit code, its stdout then its stderr). The first stderr
    line, which names the schemas folder read (tests/unit/test_cli_help.py holds it), is left
    out."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    err = "".join(captured.err.splitlines(keepends=True)[1:])
    return code, captured.out + err
