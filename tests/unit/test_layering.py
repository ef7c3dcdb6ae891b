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
# Modules any stage may import: settings, the error hierarchy, the typed events, the retry
# backoff, and the telemetry object the sinks count into.
# ``observability.tracing`` is how the pipeline notes its stages' times for its spans.
BASE = [
    "backoff",
    "config",
    "cutrule",
    "errors",
    "events",
    "logthrottle",
    "observability.metrics",
    "observability.tracing",
]

# The pipeline package's modules, in stage order, and the ones every stage may use.
PIPELINE_STAGES = ["schema_cache", "startup", "ingest", "admission", "process", "deliver", "facade"]
PIPELINE_BASE = ["outcome"]
# What pipeline modules may import from the rest of the package.
PIPELINE_USES = [*STAGES, *BASE, "native", "registry"]

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


def _pipeline_file(module: str) -> Path:
    return PACKAGE / "pipeline" / f"{module}.py"


def _pipeline_allowed(modules: list[str]) -> list[str]:
    return [f"otlp_feedback.{m}" for m in PIPELINE_USES] + [
        f"otlp_feedback.pipeline.{m}" for m in modules
    ]


@pytest.mark.parametrize("index", range(len(PIPELINE_STAGES)), ids=PIPELINE_STAGES)
def test_a_pipeline_stage_imports_no_later_stage_and_nothing_above_the_pipeline(
    index: int,
) -> None:
    allowed = _pipeline_allowed([*PIPELINE_STAGES[: index + 1], *PIPELINE_BASE])
    found = _violations([_pipeline_file(PIPELINE_STAGES[index])], allowed)
    assert found - ALLOWED_VIOLATIONS == set()


def test_the_pipelines_shared_values_import_no_pipeline_stage() -> None:
    found = _violations([_pipeline_file(m) for m in PIPELINE_BASE], _pipeline_allowed([]))
    assert found - ALLOWED_VIOLATIONS == set()


def test_every_pipeline_module_has_a_place_in_the_stage_order() -> None:
    modules = {p.stem for p in (PACKAGE / "pipeline").glob("*.py")} - {"__init__"}
    assert modules == {*PIPELINE_STAGES, *PIPELINE_BASE}


def test_the_pipeline_order_forbids_what_the_split_removed(tmp_path: Path) -> None:
    # Ingest must not reach process or delivery; process must not reach delivery.
    # (Each probe a file of its own: ``from otlp_feedback.pipeline import x`` would make the
    # checker read ``pipeline.process`` as a name imported from the package.)
    probes = {
        "stages.py": "from otlp_feedback.pipeline.process import Processor\n"
        "from otlp_feedback.pipeline.deliver import Delivery\n"
        "from otlp_feedback.pipeline.startup import RedactionRules\n"
        "from otlp_feedback.receiver.guard import Caller\n",
        "package.py": "from otlp_feedback.pipeline import Pipeline\n",
    }
    for name, text in probes.items():
        (tmp_path / name).write_text(text)
    allowed = _pipeline_allowed([*PIPELINE_STAGES[:2], *PIPELINE_BASE])  # as ingest
    files = [tmp_path / name for name in probes]
    found = _violations(files, allowed, module="otlp_feedback.pipeline.ingest")
    assert {name for _, name in found} == {
        "otlp_feedback.pipeline.process",
        "otlp_feedback.pipeline.deliver",
        "otlp_feedback.receiver.guard",
        "otlp_feedback.pipeline",
    }


def test_every_allowed_violation_still_happens() -> None:
    files = [p for s in STAGES for p in _stage_files(s)]
    files += [PACKAGE / f"{m.replace('.', '/')}.py" for m in BASE]
    files += [_pipeline_file(m) for m in [*PIPELINE_STAGES, *PIPELINE_BASE]]
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
