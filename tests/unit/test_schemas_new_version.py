"""``otlp-feedback schemas new-version TYPE``: the next schema version (and proto field) from the
model, appended the way proto/README and the README's "Schema evolution" say, or refused.

The table tests drive the pure ``plan`` with models derived from ``SystemHealth`` (a type whose
history this step does not touch) against its real history or an edited copy of it; the CLI
tests run the command on a copy of ``schemas/avro`` and ``proto/`` laid out as in the repository.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc
from pydantic import Field

from otlp_feedback.encoding.schemas import default_schemas_dir, load_schemas
from otlp_feedback.events import EVENT_MODELS, FeedbackEvent, NonNegInt, SystemHealth
from otlp_feedback.schema_tools.explain import VersionedSchema
from otlp_feedback.schema_tools.new_version import (
    NewVersionRefused,
    append_to_proto,
    history_of,
    plan,
)
from otlp_feedback.testing.cli import run_cli as run

REPO = Path(__file__).parents[2]
PROTO = REPO / "proto" / "otlp_feedback" / "v1" / "events.proto"
HISTORY = history_of(load_schemas(), "system_health")
NEWEST = len(HISTORY)
KEYS = {"queue_depth": ("feedback.health.queue_depth",)}


class WithQueueDepth(SystemHealth):
    queue_depth: NonNegInt | None = None
    """Requests waiting for a worker."""


class WithTwoFields(SystemHealth):
    queue_depth: NonNegInt | None = None
    regions: list[str] = Field(default_factory=list)


class WithRequiredRegion(SystemHealth):
    region: str


class WithNonNullOptionalDefault(SystemHealth):
    queue_depth: NonNegInt | None = 0


class WithSum(SystemHealth):
    sum_fields: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("requests_total", ("active_requests", "queued_requests")),
    )
    queued_requests: NonNegInt | None = None
    requests_total: NonNegInt | None = None


def edited(edit: Callable[[list[dict[str, Any]]], None]) -> list[VersionedSchema]:
    """The history plus a hand-written next version: the newest with ``edit`` applied."""
    definition = json.loads(HISTORY[-1].text)
    edit(definition["fields"])
    return [*HISTORY, VersionedSchema(f"v{NEWEST + 1}", json.dumps(definition))]


def field(fields: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(f for f in fields if f["name"] == name)


# -- plan: what it adds --------------------------------------------------------------------


def test_a_new_optional_field_is_appended_nullable_with_a_doc_naming_its_key_and_version() -> None:
    new = plan(WithQueueDepth, HISTORY, KEYS)
    assert new is not None and new.version == NEWEST + 1
    fields = new.definition["fields"]
    assert fields[:-1] == HISTORY[-1].definition["fields"]  # the newest's fields, in order
    assert fields[-1] == {
        "name": "queue_depth",
        "type": ["null", "long"],
        "doc": "Requests waiting for a worker (feedback.health.queue_depth). "
        f"Added in v{NEWEST + 1}.",
        "default": None,
    }
    assert new.text == json.dumps(new.definition, indent=2) + "\n"  # the hand-written layout


@pytest.mark.parametrize(
    ("model", "keys", "expected"),
    [
        pytest.param(
            WithTwoFields,
            {},
            [
                ("queue_depth", ["null", "long"], None, f"Added in v{NEWEST + 1}."),
                ("regions", {"type": "array", "items": "string"}, [], f"Added in v{NEWEST + 1}."),
            ],
            id="two-fields-one-with-a-non-null-default",
        ),
        pytest.param(
            WithSum,
            {"requests_total": ("feedback.health.requests_total",)},
            [
                ("queued_requests", ["null", "long"], None, f"Added in v{NEWEST + 1}."),
                (
                    "requests_total",
                    ["null", "long"],
                    None,
                    "From feedback.health.requests_total, else active_requests + "
                    f"queued_requests. Added in v{NEWEST + 1}.",
                ),
            ],
            id="a-sum-field-says-what-it-sums",
        ),
    ],
)
def test_new_fields_are_appended_in_model_order(
    model: type[FeedbackEvent],
    keys: dict[str, tuple[str, ...]],
    expected: list[tuple[str, Any, Any, str]],
) -> None:
    new = plan(model, HISTORY, keys)
    assert new is not None
    assert [(f["name"], f["type"], f["default"], f["doc"]) for f in new.added] == expected
    assert new.definition["fields"][-len(expected) :] == list(new.added)


@pytest.mark.parametrize("event_type", list(EVENT_MODELS))
def test_nothing_to_add_when_the_newest_version_has_every_field(event_type: str) -> None:
    history = history_of(load_schemas(), event_type)  # type: ignore[arg-type]
    assert plan(EVENT_MODELS[event_type], history, {}) is None  # type: ignore[index]


# -- plan: what it refuses, naming the field ---------------------------------------------------


def add_gone(fields: list[dict[str, Any]]) -> None:
    fields.append({"name": "gone", "type": ["null", "string"], "default": None})


def active_requests_as_double(fields: list[dict[str, Any]]) -> None:
    field(fields, "active_requests")["type"] = ["null", "double"]


def drop_availability(fields: list[dict[str, Any]]) -> None:
    fields.remove(field(fields, "availability"))


@pytest.mark.parametrize(
    ("model", "history", "message"),
    [
        pytest.param(
            SystemHealth,
            edited(add_gone),
            f"field `gone` of system_health v{NEWEST + 1} is not in the model",
            id="field-removed-from-the-model",
        ),
        pytest.param(
            SystemHealth,
            edited(active_requests_as_double),
            f"field `active_requests` is null | double in system_health v{NEWEST + 1} but "
            "null | long in the model",
            id="type-change",
        ),
        pytest.param(
            WithRequiredRegion,
            HISTORY,
            "new field `region` is required in the model",
            id="new-required-field",
        ),
        pytest.param(
            WithNonNullOptionalDefault,
            HISTORY,
            "new field `queue_depth` is optional: its default must be None",
            id="optional-with-a-non-null-default",
        ),
        pytest.param(
            SystemHealth,
            edited(drop_availability),
            "field `availability` is out of place in the model",
            id="new-field-declared-before-existing-ones",
        ),
    ],
)
def test_refuses_what_appending_cannot_do_naming_the_field(
    model: type[FeedbackEvent], history: list[VersionedSchema], message: str
) -> None:
    with pytest.raises(NewVersionRefused) as refused:
        plan(model, history, {})
    assert message in str(refused.value)


# -- the .proto ----------------------------------------------------------------------------------


def test_proto_field_is_appended_with_the_next_number_and_only_once() -> None:
    new = plan(WithQueueDepth, HISTORY, KEYS)
    assert new is not None
    text, block = append_to_proto(PROTO.read_text(), "SystemHealth", new)
    assert block == [
        f"  // --- added in v{NEWEST + 1} ---",
        "  // Requests waiting for a worker (feedback.health.queue_depth). Added in "
        f"v{NEWEST + 1}.",
        "  optional int64 queue_depth = 23;",
    ]
    system_health = text[text.index("message SystemHealth") :]
    assert system_health[: system_health.index("\n}")].endswith("\n".join(block))
    assert append_to_proto(text, "SystemHealth", new) == (text, [])  # idempotent


def test_proto_next_number_skips_reserved_ones() -> None:
    new = plan(WithQueueDepth, HISTORY, KEYS)
    assert new is not None
    proto = (
        "message SystemHealth {\n  string event_id = 1;\n"
        '  reserved 2, 5 to 7;\n  reserved "old";\n}\n'
    )
    _, block = append_to_proto(proto, "SystemHealth", new)
    assert block[-1] == "  optional int64 queue_depth = 8;"


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """``schemas/avro`` and ``proto/`` laid out as in the repository, safe to edit."""
    root = tmp_path / "repo"
    shutil.copytree(default_schemas_dir(), root / "schemas" / "avro")
    shutil.copytree(REPO / "proto", root / "proto")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def compile_proto(root: Path, out: Path) -> descriptor_pb2.FileDescriptorProto:
    code = protoc.main(
        [
            "protoc",
            f"-I{root / 'proto'}",
            f"-I{files('grpc_tools') / '_proto'}",
            f"--descriptor_set_out={out}",
            "otlp_feedback/v1/events.proto",
        ]
    )
    assert code == 0
    (compiled,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return compiled


def test_command_writes_the_version_and_proto_field_then_check_passes_and_reruns_do_nothing(
    repo_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(EVENT_MODELS, "system_health", WithQueueDepth)
    schemas = repo_copy / "schemas" / "avro"
    code, out = run(capsys, "schemas", "new-version", "system_health", "--schemas-dir", schemas)
    assert code == 0, out
    written = schemas / "system_health" / f"v{NEWEST + 1}.avsc"
    assert f"wrote {written}" in out
    assert "  + queue_depth: null | long, default null" in out
    assert "  optional int64 queue_depth = 23;" in out
    assert json.loads(written.read_text())["fields"][-1]["name"] == "queue_depth"
    message = next(
        m
        for m in compile_proto(repo_copy, repo_copy.parent / "events.pb").message_type
        if m.name == "SystemHealth"
    )
    assert (message.field[-1].name, message.field[-1].number) == ("queue_depth", 23)

    code, out = run(capsys, "schemas", "check", "--local-only", "--schemas-dir", schemas)
    assert code == 0, out

    before = snapshot(repo_copy)
    code, out = run(capsys, "schemas", "new-version", "system_health", "--schemas-dir", schemas)
    assert (code, out.strip()) == (
        0,
        f"system_health: v{NEWEST + 1} already has every field of the model; nothing to do",
    )
    assert snapshot(repo_copy) == before


def test_dry_run_prints_what_it_would_write_and_writes_nothing(
    repo_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(EVENT_MODELS, "system_health", WithQueueDepth)
    before = snapshot(repo_copy)
    schemas = repo_copy / "schemas" / "avro"
    code, out = run(
        capsys, "schemas", "new-version", "system_health", "--schemas-dir", schemas, "--dry-run"
    )
    assert code == 0, out
    assert f"would write {schemas / 'system_health' / f'v{NEWEST + 1}.avsc'}" in out
    assert '"name": "queue_depth"' in out
    assert "  optional int64 queue_depth = 23;" in out
    assert snapshot(repo_copy) == before


def test_command_refuses_a_type_change_naming_the_field_and_writes_nothing(
    repo_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class ActiveRequestsAsFloat(SystemHealth):
        active_requests: float | None = None  # type: ignore[assignment]

    monkeypatch.setitem(EVENT_MODELS, "system_health", ActiveRequestsAsFloat)
    before = snapshot(repo_copy)
    schemas = repo_copy / "schemas" / "avro"
    code, out = run(capsys, "schemas", "new-version", "system_health", "--schemas-dir", schemas)
    assert code == 1
    assert "field `active_requests` is null | long" in out and "null | double in the model" in out
    assert snapshot(repo_copy) == before
