"""Input sanitisation in ``Validator``: string length limit, control-character policy, and the
attribute count/length limits, each naming the key the sender used when it rejects."""

from __future__ import annotations

from typing import Any

import pytest
from otlp_builders import event_of, log_record, logs_request, only, validate

from otlp_feedback.config import ValidationConfig
from otlp_feedback.events import UserFeedback
from otlp_feedback.mapping import RawFeedback, map_logs_request
from otlp_feedback.validation import Rejection
from otlp_feedback.validation.validator import CONTROL_CHARACTERS

CONTROLS = "\x00\x07\x1b[2J\x7f\x85\u200e\u2028\u202e\u2066\ufeff\r"


def user_feedback(**attributes: Any) -> RawFeedback:
    record = log_record(
        "feedback.user_feedback", {"session.id": "s", "feedback.rating": 4, **attributes}
    )
    return only(map_logs_request(logs_request(record)))


def accepted(raw: RawFeedback, **limits: Any) -> UserFeedback:
    event = event_of(raw, ValidationConfig(**limits))
    assert isinstance(event, UserFeedback)
    return event


def reason(raw: RawFeedback, **limits: Any) -> str:
    result = validate(raw, ValidationConfig(**limits))
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result.reason


# --- validation.max_string_length ---------------------------------------------------------


def test_a_string_field_longer_than_max_string_length_is_rejected_naming_the_key() -> None:
    raw = user_feedback(**{"user.id": "u" * 101})
    assert reason(raw, max_string_length=100) == (
        "user.id: 101 characters, over the 100-character limit (validation.max_string_length)"
    )


def test_a_string_of_exactly_max_string_length_is_accepted() -> None:
    assert accepted(user_feedback(**{"user.id": "u" * 100}), max_string_length=100)


def test_list_items_and_map_keys_are_held_to_max_string_length_too() -> None:
    # (The resource's service.name, "support-bot", has 11 characters.)
    tags = user_feedback(**{"feedback.tags": ["ok", "t" * 13]})
    assert reason(tags, max_string_length=12).startswith("feedback.tags: 13 characters")
    long_metric = {"gen_ai.request.model": "m", "feedback.metric." + "k" * 20: 1.0}
    raw = only(map_logs_request(logs_request(
        log_record("feedback.performance_metrics", long_metric)
    )))  # fmt: skip
    assert reason(raw, max_string_length=12).startswith(f"feedback.metric.{'k' * 20}: 20 char")


def test_attribute_values_are_truncated_not_rejected() -> None:
    event = accepted(user_feedback(**{"app.note": "n" * 50}), max_attribute_value_len=16)
    assert event.attributes == {"app.note": "n" * 16}


def test_at_most_max_attributes_attributes_are_kept() -> None:
    event = accepted(user_feedback(**{f"app.k{i}": i for i in range(4)}), max_attributes=2)
    assert event.attributes == {"app.k0": "0", "app.k1": "1"}


# --- validation.control_characters --------------------------------------------------------


def test_control_characters_are_stripped_by_default_in_fields_lists_and_attributes() -> None:
    event = accepted(
        user_feedback(**{
            "feedback.comment": f"fine{CONTROLS}answer",
            "feedback.tags": [f"t{CONTROLS}ag"],
            f"app.{CONTROLS}key": f"v{CONTROLS}alue",
        })
    )  # fmt: skip
    assert event.comment == "fine[2Janswer"
    assert event.tags == ["t[2Jag"]
    assert event.attributes == {"app.[2Jkey": "v[2Jalue"}


def test_tab_newline_and_emoji_joiners_are_content_and_kept() -> None:
    text = "line one\n\tline two \U0001f469\u200d\U0001f4bb"
    assert accepted(user_feedback(**{"feedback.comment": text})).comment == text


def test_keep_delivers_control_characters_as_sent() -> None:
    raw = user_feedback(**{"feedback.comment": f"a{CONTROLS}b", "app.x": CONTROLS})
    event = accepted(raw, control_characters="keep")
    assert event.comment == f"a{CONTROLS}b"
    assert event.attributes == {"app.x": CONTROLS}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(
            {"feedback.comment": "bad\x1bcomment"},
            "feedback.comment: control character U+001B is not allowed "
            "(validation.control_characters: reject)",
            id="field",
        ),
        pytest.param(
            {"app.note": "bidi \u202e trick"},
            "app.note: control character U+202E is not allowed "
            "(validation.control_characters: reject)",
            id="attribute",
        ),
    ],
)
def test_reject_refuses_the_record_naming_the_key_and_the_code_point(
    attributes: dict[str, str], expected: str
) -> None:
    assert reason(user_feedback(**attributes), control_characters="reject") == expected


def test_every_control_character_the_policy_handles_is_not_printable() -> None:
    # The validator skips the regex for strings where str.isprintable() is True (hot path);
    # that is only sound while no character the regex matches counts as printable.
    matched = [chr(c) for c in range(0x110000) if CONTROL_CHARACTERS.match(chr(c))]
    assert matched and not [c for c in matched if c.isprintable()]
