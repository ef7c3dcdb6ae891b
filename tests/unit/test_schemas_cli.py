"""``otlp-feedback schemas list|check|register|diff``: the schema evolution workflow.

Every test works on a copy of the shipped ``schemas/avro`` and edits it as a schema author
would: a new version file next to the old ones. Registry tests use the bundled registry on a
free loopback port, reached over HTTP with the same client the command uses.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otlp_feedback.encoding.schemas import default_schemas_dir, load_schemas
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.registry.client import ConfluentRegistry, InMemoryRegistry
from otlp_feedback.registry.runner import RegistryServer
from otlp_feedback.schema_tools import check_registry, level_of, register
from otlp_feedback.testing.cli import run_cli as run

Edit = Callable[[list[dict[str, Any]]], None]
SUBJECTS = {t: f"feedback.{t}-value" for t in EVENT_TYPES}
# Derived from the shipped history rather than pinned, so that a new version (appended by
# `schemas new-version`) does not mean editing these tests.
SHIPPED = load_schemas()
PM_NEWEST = SHIPPED.latest("performance_metrics").version


def versions(first: int, last: int, sep: str = ", ") -> str:
    """``v1, v2, v3`` for (1, 3)."""
    return sep.join(f"v{n}" for n in range(first, last + 1))


@pytest.fixture
def schemas_dir(tmp_path: Path) -> Path:
    """A copy of the shipped schemas, safe to edit."""
    return Path(shutil.copytree(default_schemas_dir(), tmp_path / "avro"))


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    with RegistryServer(db_path=tmp_path / "registry.db") as server:
        yield server.url


def config(tmp_path: Path, registry_url: str = "http://127.0.0.1:1", **registry: Any) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"registry": {"url": registry_url, **registry}}))
    return path


def add_version(schemas_dir: Path, event_type: str, edit: Edit) -> str:
    """Write the next version of ``event_type``: its newest version with ``edit`` applied."""
    folder = schemas_dir / event_type
    newest = max(int(p.stem[1:]) for p in folder.glob("v*.avsc"))
    schema = json.loads((folder / f"v{newest}.avsc").read_text())
    edit(schema["fields"])
    (folder / f"v{newest + 1}.avsc").write_text(json.dumps(schema, indent=2) + "\n")
    return f"v{newest + 1}"


def field(fields: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(f for f in fields if f["name"] == name)


# -- the edits a schema author might make ------------------------------------------------------


def remove_session_id(fields: list[dict[str, Any]]) -> None:
    fields.remove(field(fields, "session_id"))


def input_tokens_as_string(fields: list[dict[str, Any]]) -> None:
    field(fields, "input_tokens")["type"] = ["null", "string"]


def add_required_judge(fields: list[dict[str, Any]]) -> None:
    fields.append({"name": "judge", "type": "string"})


def rename_variant_id(fields: list[dict[str, Any]]) -> None:
    field(fields, "variant_id")["name"] = "variant"


def rename_variant_id_with_alias(fields: list[dict[str, Any]]) -> None:
    renamed = field(fields, "variant_id")
    renamed["name"], renamed["aliases"] = "variant", ["variant_id"]


def add_optional_note(fields: list[dict[str, Any]]) -> None:
    fields.append({"name": "note", "type": ["null", "string"], "default": None})


INCOMPATIBLE_EDITS = [
    pytest.param(
        "user_feedback",
        remove_session_id,
        ["field `session_id` removed without default: consumers on v1, v2 cannot read v3 data"],
        id="remove-a-field-without-default",
    ),
    pytest.param(
        "performance_metrics",
        input_tokens_as_string,
        [
            "field `input_tokens` changed type from `null | long` to `null | string`: "
            f"consumers on {versions(1, PM_NEWEST)} cannot read v{PM_NEWEST + 1} data; "
            f"v{PM_NEWEST + 1} cannot read data written with {versions(1, PM_NEWEST)}"
        ],
        id="change-a-type",
    ),
    pytest.param(
        "model_response",
        add_required_judge,
        ["field `judge` added without default: v4 cannot read data written with v1, v2, v3"],
        id="add-a-required-field",
    ),
    pytest.param(
        "experiment_result",
        rename_variant_id,
        [
            "field `variant` added without default: v3 cannot read data written with v1, v2",
            "field `variant_id` removed without default: consumers on v1, v2 cannot read v3 data",
            "hint: if `variant_id` was renamed to `variant`: under FULL_TRANSITIVE",
        ],
        id="rename-without-alias",
    ),
]


# -- check --local-only ------------------------------------------------------------------------


def test_shipped_schemas_pass_the_local_check(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "schemas", "check", "--local-only")
    assert code == 0, out
    assert "performance_metrics (feedback.performance_metrics-value, FULL_TRANSITIVE" in out
    assert "  v2   ok: compatible with v1" in out
    count = sum(len(history) for history in SHIPPED.versions.values())
    assert out.rstrip().endswith(f"OK: {count} schema versions of 5 event types")


@pytest.mark.parametrize(("event_type", "edit", "explanations"), INCOMPATIBLE_EDITS)
def test_incompatible_edit_fails_the_local_check_with_an_explanation(
    capsys: pytest.CaptureFixture[str],
    schemas_dir: Path,
    event_type: str,
    edit: Edit,
    explanations: list[str],
) -> None:
    version = add_version(schemas_dir, event_type, edit)
    code, out = run(capsys, "schemas", "check", "--local-only", "--schemas-dir", schemas_dir)
    assert code == 1
    assert f"  {version:<4} INCOMPATIBLE" in out
    for explanation in explanations:
        assert explanation in out
    assert "FAILED: 1 incompatible schema version(s)" in out


def test_optional_field_with_null_default_passes_full_transitive(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path
) -> None:
    add_version(schemas_dir, "performance_metrics", add_optional_note)
    code, out = run(capsys, "schemas", "check", "--local-only", "--schemas-dir", schemas_dir)
    assert code == 0, out
    assert "  v3   ok: compatible with v1, v2" in out


def test_alias_makes_a_rename_backward_compatible_but_not_full(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path, tmp_path: Path
) -> None:
    add_version(schemas_dir, "experiment_result", rename_variant_id_with_alias)
    args = ["schemas", "check", "--local-only", "--schemas-dir", schemas_dir]

    backward = config(tmp_path, compatibility="BACKWARD")
    assert run(capsys, *args, "--config", backward)[0] == 0

    code, out = run(capsys, *args)  # the default, FULL_TRANSITIVE
    assert code == 1
    assert "field `variant_id` removed without default: consumers on v1, v2 cannot read v3" in out


def test_non_transitive_mode_checks_only_the_previous_version(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path, tmp_path: Path
) -> None:
    add_version(schemas_dir, "performance_metrics", add_optional_note)
    code, out = run(
        capsys, "schemas", "check", "--local-only", "--schemas-dir", schemas_dir,
        "--config", config(tmp_path, compatibility="FULL"),
    )  # fmt: skip
    assert code == 0, out
    assert "  v3   ok: compatible with v2" in out


def test_transitive_mode_catches_what_pairwise_steps_miss(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path, tmp_path: Path
) -> None:
    # v3 drops an optional field (fine), v4 brings it back with another type (fine against v3).
    add_version(schemas_dir, "system_health", lambda fs: fs.remove(field(fs, "error_rate")))
    add_version(
        schemas_dir,
        "system_health",
        lambda fs: fs.append({"name": "error_rate", "type": ["null", "long"], "default": None}),
    )
    args = ["schemas", "check", "--local-only", "--schemas-dir", schemas_dir]

    assert run(capsys, *args, "--config", config(tmp_path, compatibility="FULL"))[0] == 0

    code, out = run(capsys, *args)  # FULL_TRANSITIVE
    assert code == 1
    # Only one way round: a v1/v2 reader promotes v4's long to its double, but not back.
    assert (
        "field `error_rate` changed type from `null | double` to `null | long`: "
        "v4 cannot read data written with v1, v2 [MISSING_UNION_BRANCH]"
    ) in out


def test_gap_in_version_numbers_is_a_problem(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path
) -> None:
    v1 = schemas_dir / "system_health" / "v1.avsc"
    shutil.copy(v1, v1.with_name("v4.avsc"))
    code, out = run(capsys, "schemas", "check", "--local-only", "--schemas-dir", schemas_dir)
    assert code == 1
    assert "problem: versions must be numbered v1..v3 without gaps; found v1, v2, v4" in out


def test_invalid_schema_file_fails_naming_the_file(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path
) -> None:
    broken = schemas_dir / "system_health" / "v2.avsc"
    broken.write_text('{"type": "record", "name": "SystemHealth", "fields": [{"name": "x"}]}')
    code, out = run(capsys, "schemas", "check", "--local-only", "--schemas-dir", schemas_dir)
    assert code == 1
    assert f"{broken}: invalid Avro schema" in out


# -- against a registry ------------------------------------------------------------------------


@pytest.mark.parametrize(("event_type", "edit", "explanations"), INCOMPATIBLE_EDITS)
def test_incompatible_edit_fails_the_registry_check_and_registers_nothing(
    capsys: pytest.CaptureFixture[str],
    schemas_dir: Path,
    tmp_path: Path,
    registry_url: str,
    event_type: str,
    edit: Edit,
    explanations: list[str],
) -> None:
    cfg = config(tmp_path, registry_url)
    assert run(capsys, "schemas", "register", "--config", cfg, "--schemas-dir", schemas_dir)[0] == 0
    version = add_version(schemas_dir, event_type, edit)

    code, out = run(capsys, "schemas", "check", "--config", cfg, "--schemas-dir", schemas_dir)
    assert code == 1
    assert f"  {version:<4} INCOMPATIBLE: not registered; checked against v1" in out
    for explanation in explanations:
        assert explanation in out

    code, out = run(capsys, "schemas", "register", "--config", cfg, "--schemas-dir", schemas_dir)
    assert code == 1
    assert out.rstrip().endswith("nothing registered")
    registered = ConfluentRegistry({"url": registry_url}).subject_versions(SUBJECTS[event_type])
    assert len(registered) == int(version[1:]) - 1


def test_registry_check_passes_the_shipped_schemas_before_and_after_registering(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry_url: str
) -> None:
    cfg = config(tmp_path, registry_url)
    code, out = run(capsys, "schemas", "check", "--config", cfg)
    assert code == 0, out
    assert "  v2   ok: not registered; compatible with v1" in out

    assert run(capsys, "schemas", "register", "--config", cfg)[0] == 0
    code, out = run(capsys, "schemas", "check", "--config", cfg)
    assert code == 0, out
    assert "(feedback.model_response-value, FULL_TRANSITIVE from the registry)" in out
    assert "  v2   ok: registered as version 2 (id " in out


def test_register_sets_the_mode_and_is_idempotent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry_url: str
) -> None:
    cfg = config(tmp_path, registry_url)
    code, first = run(capsys, "schemas", "register", "--config", cfg)
    assert code == 0, first
    assert "feedback.performance_metrics-value: compatibility unset -> FULL_TRANSITIVE" in first
    assert "  v2   registered as version 2 (id " in first

    code, again = run(capsys, "schemas", "register", "--config", cfg)
    assert code == 0, again
    assert "feedback.performance_metrics-value: compatibility FULL_TRANSITIVE" in again
    assert " registered as" not in again.replace("already registered as", "")

    registry = ConfluentRegistry({"url": registry_url})
    for event_type, subject in SUBJECTS.items():
        assert registry.subject_compatibility(subject) == "FULL_TRANSITIVE"
        assert len(registry.subject_versions(subject)) == len(load_schemas().versions[event_type])


def test_register_applies_the_configured_mode(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry_url: str
) -> None:
    cfg = config(tmp_path, registry_url, compatibility="BACKWARD")
    assert run(capsys, "schemas", "register", "--config", cfg)[0] == 0
    registry = ConfluentRegistry({"url": registry_url})
    assert registry.subject_compatibility("feedback.user_feedback-value") == "BACKWARD"


def test_registry_check_uses_the_subjects_own_mode_and_notes_what_register_would_set(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path, tmp_path: Path, registry_url: str
) -> None:
    cfg = config(tmp_path, registry_url)
    assert run(capsys, "schemas", "register", "--config", cfg, "--schemas-dir", schemas_dir)[0] == 0
    ConfluentRegistry({"url": registry_url}).set_compatibility(
        "feedback.model_response-value", "NONE"
    )
    add_version(schemas_dir, "model_response", add_required_judge)

    code, out = run(capsys, "schemas", "check", "--config", cfg, "--schemas-dir", schemas_dir)
    assert code == 0, out
    assert "model_response (feedback.model_response-value, NONE from the registry)" in out
    assert "note: registry.compatibility is FULL_TRANSITIVE; `schemas register` would set it" in out
    # register checks under the mode it sets, so it refuses.
    code, out = run(capsys, "schemas", "register", "--config", cfg, "--schemas-dir", schemas_dir)
    assert code == 1
    assert "field `judge` added without default" in out


def test_released_version_edited_in_place_is_a_history_problem(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path, tmp_path: Path, registry_url: str
) -> None:
    cfg = config(tmp_path, registry_url)
    assert run(capsys, "schemas", "register", "--config", cfg, "--schemas-dir", schemas_dir)[0] == 0
    v1 = schemas_dir / "system_health" / "v1.avsc"
    schema = json.loads(v1.read_text())
    add_optional_note(schema["fields"])  # compatible, but v1 was released: it may not change
    v1.write_text(json.dumps(schema))

    code, out = run(capsys, "schemas", "check", "--config", cfg, "--schemas-dir", schemas_dir)
    assert code == 1
    assert "system_health (feedback.system_health-value" in out
    assert "  v1   ok: not registered; compatible with registry version 1 (id " in out
    assert "  problem: registry version 1 (id " in out
    assert ") matches no local version: released versions are kept forever" in out


def table(out: str) -> list[list[str]]:
    """The rows of ``schemas list`` output, cells split on the two-space column gaps."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


def test_list_shows_local_and_registered_versions_ids_and_mode(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path, tmp_path: Path, registry_url: str
) -> None:
    cfg = config(tmp_path, registry_url)
    code, out = run(capsys, "schemas", "list", "--config", cfg)
    assert code == 0, out
    header, _, performance, *_ = table(out)
    assert header == [
        "SUBJECT", "LOCAL", "REGISTERED (version, id, local)", "COMPATIBILITY", "STATUS"
    ]  # fmt: skip
    assert performance == [
        "feedback.performance_metrics-value", versions(1, PM_NEWEST, " "), "-",
        "unset (global BACKWARD)",
        "not registered",
    ]  # fmt: skip

    released = tmp_path / "released"  # what an earlier release registered: v1 only
    shutil.copytree(schemas_dir, released)
    for newer in released.glob("*/v*.avsc"):
        if newer.name != "v1.avsc":
            newer.unlink()
    assert run(capsys, "schemas", "register", "--config", cfg, "--schemas-dir", released)[0] == 0

    _, user_feedback, performance, *_ = table(run(capsys, "schemas", "list", "--config", cfg)[1])
    assert user_feedback == [
        "feedback.user_feedback-value", "v1 v2", "1 (id 1, v1)", "FULL_TRANSITIVE",
        "v2 not registered",
    ]  # fmt: skip
    assert performance == [
        "feedback.performance_metrics-value", versions(1, PM_NEWEST, " "), "1 (id 2, v1)",
        "FULL_TRANSITIVE", f"{versions(2, PM_NEWEST)} not registered",
    ]  # fmt: skip


def test_unreachable_registry_fails_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = run(capsys, "schemas", "check", "--config", config(tmp_path))
    assert code == 1
    assert "schema registry unreachable" in out


def test_in_memory_registry_supports_the_same_workflow() -> None:
    registry = InMemoryRegistry()
    level = level_of("FULL_TRANSITIVE")
    schemas = load_schemas()
    first = register(schemas, SUBJECTS, registry, level)
    again = register(schemas, SUBJECTS, registry, level)
    assert first.ok and again.ok
    assert all(new for r in first.registrations for *_, new in r.versions)
    assert not any(new for r in again.registrations for *_, new in r.versions)
    assert registry.subject_compatibility("feedback.user_feedback-value") == "FULL_TRANSITIVE"
    assert check_registry(schemas, SUBJECTS, registry, level).ok


# -- diff --------------------------------------------------------------------------------------


def test_diff_of_the_shipped_evolution(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "schemas", "diff", "performance_metrics:v1", "performance_metrics:v2")
    assert code == 0
    assert out.splitlines() == [
        "performance_metrics:v1 -> performance_metrics:v2",
        "  + cache_read_input_tokens: null | long, default null",
        "  + reasoning_output_tokens: null | long, default null",
        "2 added, 0 removed, 0 changed",
        "backward: yes (performance_metrics:v2 reads data written with performance_metrics:v1)",
        "forward:  yes (performance_metrics:v1 reads data written with performance_metrics:v2)",
    ]


def test_diff_of_two_files_names_removed_and_changed_fields(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path
) -> None:
    def edit(fields: list[dict[str, Any]]) -> None:
        remove_session_id(fields)
        field(fields, "rating")["type"] = ["null", "long"]
        field(fields, "comment")["default"] = None
        field(fields, "tags")["default"] = ["untagged"]

    add_version(schemas_dir, "user_feedback", edit)
    folder = schemas_dir / "user_feedback"
    code, out = run(capsys, "schemas", "diff", folder / "v2.avsc", folder / "v3.avsc")
    assert code == 0
    assert out.splitlines() == [
        f"{folder / 'v2.avsc'} -> {folder / 'v3.avsc'}",
        "  - session_id: string, no default",
        "  ~ rating: type null | double -> null | long",
        '  ~ tags: default [] -> ["untagged"]',
        "0 added, 1 removed, 2 changed",
        f"backward: NO ({folder / 'v3.avsc'} reads data written with {folder / 'v2.avsc'})",
        f"forward:  NO ({folder / 'v2.avsc'} reads data written with {folder / 'v3.avsc'})",
    ]


def test_diff_follows_a_declared_rename(
    capsys: pytest.CaptureFixture[str], schemas_dir: Path
) -> None:
    add_version(schemas_dir, "experiment_result", rename_variant_id_with_alias)
    code, out = run(
        capsys, "schemas", "diff", "experiment_result:v2", "experiment_result:3",
        "--schemas-dir", schemas_dir,
    )  # fmt: skip
    assert code == 0
    assert "  ~ variant: renamed from `variant_id` (alias); aliases [] -> ['variant_id']" in out
    assert "backward: yes" in out
    assert "forward:  NO" in out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("feedback:v1", "feedback:v1: unknown event type"),
        ("user_feedback:v9", "no local schema user_feedback v9"),
        ("no/such/file.avsc", "no/such/file.avsc: neither <event_type>:vN nor a readable"),
    ],
)
def test_diff_of_something_that_is_not_a_schema_fails_saying_why(
    capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    code, out = run(capsys, "schemas", "diff", "user_feedback:v1", spec)
    assert code == 1
    assert message in out
