"""Schema parsing, the seven compatibility levels, and the explanations of incompatibilities."""

from __future__ import annotations

import json
from typing import Any

import pytest

from otlp_feedback.registry.compat import (
    CompatibilityLevel,
    Incompatibility,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    ParsedSchema,
    check_compatibility,
    parse_level,
    parse_schema,
    parse_stored,
)

L = CompatibilityLevel


def record(*fields: dict[str, Any], name: str = "Feedback") -> ParsedSchema:
    return parse_schema(
        json.dumps({"type": "record", "name": name, "namespace": "otlp", "fields": list(fields)})
    )


ID = {"name": "id", "type": "string"}
SCORE_INT = {"name": "score", "type": "int"}
SCORE_LONG = {"name": "score", "type": "long"}
SCORE_STRING = {"name": "score", "type": "string"}
SCORE_DEFAULT = {"name": "score", "type": "int", "default": 0}
CHANNEL = {"name": "channel", "type": "string"}


# -- parsing ----------------------------------------------------------------------------------


def test_formatting_and_key_order_do_not_change_the_canonical_text() -> None:
    compact = '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}'
    spaced = '{ "fields": [ {"type": "int", "name": "a"} ],\n "name": "R", "type": "record" }'
    assert parse_schema(compact).canonical == parse_schema(spaced).canonical


def test_docs_and_defaults_are_part_of_the_identity() -> None:
    plain = record(SCORE_INT)
    assert record(SCORE_DEFAULT).canonical != plain.canonical
    assert record({**SCORE_INT, "doc": "1-5"}).canonical != plain.canonical


def test_canonical_text_is_stable_when_parsed_again() -> None:
    original = record(ID, {"name": "tags", "type": {"type": "array", "items": "string"}})
    assert parse_stored(original.canonical).canonical == original.canonical


@pytest.mark.parametrize(
    ("text", "schema_type", "references", "reason"),
    [
        ("not json", None, None, "Invalid schema"),
        ('{"type": "nope"}', None, None, "Invalid schema"),
        ('{"type": "record", "name": "R"}', None, None, "Invalid schema"),
        ("", None, None, "Empty schema"),
        (None, None, None, "Empty schema"),
        ('{"type": "object"}', "JSON", None, "only stores AVRO"),
        ('"int"', "PROTOBUF", None, "only stores AVRO"),
        ('"int"', "AVRO", [{"name": "x", "subject": "y", "version": 1}], "references"),
    ],
)
def test_invalid_requests_are_rejected_with_a_reason(
    text: object, schema_type: object, references: object, reason: str
) -> None:
    with pytest.raises(InvalidSchemaError, match=reason):
        parse_schema(text, schema_type, references)


def test_schema_type_avro_is_accepted_in_any_case_and_by_default() -> None:
    assert parse_schema('"int"', "avro").canonical == parse_schema('"int"').canonical == '"int"'


def test_levels_parse_in_any_case_and_unknown_ones_are_rejected() -> None:
    assert parse_level("full_transitive") is L.FULL_TRANSITIVE
    with pytest.raises(InvalidCompatibilityLevelError, match="BACKWARD_TRANSITIVE"):
        parse_level("SIDEWAYS")
    with pytest.raises(InvalidCompatibilityLevelError):
        parse_level(None)


# -- levels -----------------------------------------------------------------------------------

EDITS = {
    # name: (old, new)
    "remove field without default": (record(ID, SCORE_INT), record(ID)),
    "add required field": (record(ID), record(ID, CHANNEL)),
    "add field with default": (record(ID), record(ID, SCORE_DEFAULT)),
    "change int to string": (record(ID, SCORE_INT), record(ID, SCORE_STRING)),
    "widen int to long": (record(ID, SCORE_INT), record(ID, SCORE_LONG)),
}
COMPATIBLE_UNDER = {
    # edit: levels (of NONE, BACKWARD, FORWARD, FULL) under which it is allowed
    "remove field without default": {L.NONE, L.BACKWARD},
    "add required field": {L.NONE, L.FORWARD},
    "add field with default": {L.NONE, L.BACKWARD, L.FORWARD, L.FULL},
    "change int to string": {L.NONE},
    "widen int to long": {L.NONE, L.BACKWARD},
}


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("level", [L.NONE, L.BACKWARD, L.FORWARD, L.FULL])
def test_each_level_allows_exactly_the_expected_edits(edit: str, level: L) -> None:
    old, new = EDITS[edit]
    problems = check_compatibility(new, [(1, old)], level)
    assert (not problems) == (level in COMPATIBLE_UNDER[edit]), [p.describe() for p in problems]


def test_backward_checks_only_the_latest_version_but_transitive_checks_all() -> None:
    v1 = record(ID)
    v2 = record(ID, SCORE_DEFAULT)
    candidate = record(ID, SCORE_INT)  # drops the default v1 data needed
    history = [(1, v1), (2, v2)]
    assert check_compatibility(candidate, history, L.BACKWARD) == []
    problems = check_compatibility(candidate, history, L.BACKWARD_TRANSITIVE)
    assert [p.version for p in problems] == [1]


def test_forward_transitive_protects_readers_of_every_old_version() -> None:
    history = [(1, record(ID, SCORE_INT)), (2, record(ID, SCORE_DEFAULT))]
    candidate = record(ID)  # v1 readers need "score" and have no default for it
    assert check_compatibility(candidate, history, L.FORWARD) == []
    problems = check_compatibility(candidate, history, L.FORWARD_TRANSITIVE)
    assert [(p.version, p.new_is_reader) for p in problems] == [(1, False)]


def test_full_transitive_reports_both_directions_for_every_version() -> None:
    history = [(1, record(ID, SCORE_INT)), (2, record(ID, SCORE_INT, name="Feedback"))]
    problems = check_compatibility(record(ID, SCORE_STRING), history, L.FULL_TRANSITIVE)
    assert sorted((p.version, p.new_is_reader) for p in problems) == [
        (1, False),
        (1, True),
        (2, False),
        (2, True),
    ]


def test_nothing_registered_means_compatible() -> None:
    assert check_compatibility(record(ID), [], L.FULL_TRANSITIVE) == []


# -- explanations -----------------------------------------------------------------------------


def only(problems: list[Incompatibility]) -> Incompatibility:
    assert len(problems) == 1, [p.describe() for p in problems]
    return problems[0]


def test_missing_default_names_the_field_and_its_location() -> None:
    problem = only(check_compatibility(record(ID, CHANNEL), [(3, record(ID))], L.BACKWARD))
    assert problem.kind == "READER_FIELD_MISSING_DEFAULT_VALUE"
    assert (problem.location, problem.path) == ("/fields/1", "otlp.Feedback.channel")
    assert problem.describe() == (
        "READER_FIELD_MISSING_DEFAULT_VALUE at 'otlp.Feedback.channel' (/fields/1): "
        "field 'channel' has no default value and the writer's schema lacks it "
        "(the new schema cannot read data written with version 3)"
    )


def test_removed_field_under_forward_is_explained_from_the_old_readers_side() -> None:
    problem = only(check_compatibility(record(ID), [(1, record(ID, SCORE_INT))], L.FORWARD))
    assert problem.path == "otlp.Feedback.score"
    assert "version 1 cannot read data written with the new schema" in problem.describe()


def test_type_change_carries_avros_reason() -> None:
    old, new = EDITS["change int to string"]
    problem = only(check_compatibility(new, [(1, old)], L.BACKWARD))
    assert (problem.kind, problem.location) == ("TYPE_MISMATCH", "/fields/1/type")
    assert problem.detail == "reader type: string not compatible with writer type: int"


def test_narrowing_a_union_is_located_at_the_field_not_the_root() -> None:
    old = record({"name": "note", "type": ["null", "string"], "default": None})
    new = record({"name": "note", "type": "string"})
    problem = only(check_compatibility(new, [(1, old)], L.BACKWARD))
    assert (problem.location, problem.path) == ("/fields/0/type", "otlp.Feedback.note")
    assert "writer type: null" in problem.detail


def test_nested_enum_fixed_and_union_problems_each_get_a_location() -> None:
    old = record(
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["UP", "DOWN"]}},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "items", "type": {"type": "array", "items": ["int", "string"]}},
    )
    new = record(
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["UP"]}},
        {"name": "hash", "type": {"type": "fixed", "name": "Digest", "size": 8}},
        {"name": "items", "type": {"type": "array", "items": ["int", "boolean"]}},
    )
    problems = check_compatibility(new, [(1, old)], L.BACKWARD)
    found = {(p.kind, p.location, p.path) for p in problems}
    assert found == {
        ("MISSING_ENUM_SYMBOLS", "/fields/0/type/symbols", "otlp.Feedback.kind"),
        ("NAME_MISMATCH", "/fields/1/type/name", "otlp.Feedback.hash"),
        ("FIXED_SIZE_MISMATCH", "/fields/1/type/size", "otlp.Feedback.hash"),
        (
            "MISSING_UNION_BRANCH",
            "/fields/2/type/items/1",
            "otlp.Feedback.items[]<writer branch 1>",
        ),
    }
    assert all(p.location for p in problems), "every avro message was placed"
    enum_problem = next(p for p in problems if p.kind == "MISSING_ENUM_SYMBOLS")
    assert "['DOWN']" in enum_problem.detail


def test_several_missing_fields_are_reported_separately() -> None:
    problems = check_compatibility(record(ID, CHANNEL, SCORE_INT), [(1, record(ID))], L.BACKWARD)
    assert [p.path for p in problems] == ["otlp.Feedback.channel", "otlp.Feedback.score"]
