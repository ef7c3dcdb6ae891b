"""Data moves one way: no stage imports a later stage, the pipeline or the app.

Stages in order: mapping -> validation -> encoding -> sinks. A stage module may import its own
package, earlier stages and the base modules below, nothing else of ``otlp_feedback`` (not
``pipeline``, ``app``, ``receiver``, ``cli``, and not ``testing``: production code must not
import test doubles). Base modules import only each other. Imports are read with ``ast`` from
every module file, including imports inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import otlp_feedback

PACKAGE = Path(otlp_feedback.__file__).parent
STAGES = ["mapping", "validation", "encoding", "sinks"]
# Modules any stage may import: settings, the error hierarchy, the typed events, and the
# telemetry object the sinks count into.
BASE = ["config", "errors", "events", "observability.metrics"]

# Known violations, each with why it is not fixed yet. The tests fail on any import not
# listed here, and on an entry that no longer happens (so the list only shrinks).
ALLOWED_VIOLATIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Every ``otlp_feedback`` module (or name in one) that ``path`` imports, anywhere in it;
    ``module`` is its dotted name (by default, from where it lies in the package)."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "otlp_feedback"}


def _within(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def _violations(
    files: list[Path], allowed: list[str], module: str | None = None
) -> set[tuple[str, str]]:
    """(module, import) pairs where ``module`` imports something outside ``allowed``.

    ``from otlp_feedback.x import y`` yields both ``otlp_feedback.x`` and ``otlp_feedback.x.y``;
    the module decides, so a function from an allowed module is allowed (and a name from a
    forbidden one is reported once, as its module). ``from otlp_feedback import x`` is x.
    """
    bad: set[tuple[str, str]] = set()
    for path in files:
        imports = _imports(path, module)
        for name in imports:
            parent = name.rpartition(".")[0]
            if parent in imports and parent != "otlp_feedback":
                continue  # a name imported from a module: the module decides
            if name != "otlp_feedback" and not _within(name, allowed):
                bad.add((module or _module_name(path), name))
    return bad


def _stage_files(stage: str) -> list[Path]:
    files = sorted((PACKAGE / stage).rglob("*.py"))
    assert files, f"no modules under otlp_feedback/{stage}"
    return files


@pytest.mark.parametrize("index", range(len(STAGES)), ids=STAGES)
def test_a_stage_imports_only_itself_earlier_stages_and_base_modules(index: int) -> None:
    allowed = [f"otlp_feedback.{m}" for m in [*STAGES[: index + 1], *BASE]]
    found = _violations(_stage_files(STAGES[index]), allowed)
    assert found - ALLOWED_VIOLATIONS == set()


def test_base_modules_import_only_base_modules() -> None:
    files = [PACKAGE / f"{m.replace('.', '/')}.py" for m in BASE]
    found = _violations(files, [f"otlp_feedback.{m}" for m in BASE])
    assert found - ALLOWED_VIOLATIONS == set()


def test_every_allowed_violation_still_happens() -> None:
    files = [p for s in STAGES for p in _stage_files(s)]
    files += [PACKAGE / f"{m.replace('.', '/')}.py" for m in BASE]
    imports = {(_module_name(p), name) for p in files for name in _imports(p)}
    assert ALLOWED_VIOLATIONS - imports == set(), "fixed: remove it from ALLOWED_VIOLATIONS"


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def late():\n"
        "    from otlp_feedback.pipeline import Pipeline\n"
        "from ..receiver import status\n"
        "from .kafka import KafkaSink\n"
        "import otlp_feedback.testing.kafka\n"
        "from otlp_feedback import app, config\n"
    )
    allowed = ["otlp_feedback.sinks", "otlp_feedback.config"]
    found = _violations([probe], allowed, module="otlp_feedback.sinks.probe")
    assert {name for _, name in found} == {
        "otlp_feedback.pipeline",
        "otlp_feedback.receiver",
        "otlp_feedback.testing.kafka",
        "otlp_feedback.app",
    }
