"""PII redaction: what each detector catches, what merely looks like PII and must survive, and
how the pipeline records what it scrubbed (events, Kafka headers, dead letters)."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader
from hypothesis import given
from hypothesis import strategies as st
from otlp_builders import MINIMAL, RECEIVED_AT, event_of, log_record, logs_request, only
from pydantic import Field

from otlp_feedback.config import RedactionConfig, load_config
from otlp_feedback.encoding import load_schemas
from otlp_feedback.encoding.dead_letter import from_value
from otlp_feedback.encoding.outbound import redacted_header
from otlp_feedback.events import UserFeedback
from otlp_feedback.mapping import map_logs_request
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.validation.detectors import luhn_valid
from otlp_feedback.validation.redaction import Redactor

REDACTOR = Redactor(RedactionConfig())


def redact(text: str) -> str:
    return REDACTOR.redact_text(text)


# --- each detector ------------------------------------------------------------------------

TRUE_POSITIVES = [
    # e-mail
    ("write to jane.doe@example.com today", "write to [EMAIL] today"),
    ("JANE_DOE+tag@mail.example.co.uk", "[EMAIL]"),
    ("<ops-team@intra.example.org>", "<[EMAIL]>"),
    ("jürgen@bücher.de", "[EMAIL]"),
    ('mail "john doe"@example.com now', "mail [EMAIL] now"),
    # In single quotes (as a rejection reason quotes a value): the quote is not the local part.
    ("'jane.doe@example.com' wrote", "'[EMAIL]' wrote"),
    ("admin@[IPv6:2001:db8::7]", "[EMAIL]"),
    ("root@[192.0.2.10]", "[EMAIL]"),  # the whole address, not root@[[IP]]
    # phone: international
    ("call +44 20 7946 0958", "call [PHONE]"),
    ("call +1 (415) 555-2671.", "call [PHONE]."),
    ("+4917012345678", "[PHONE]"),
    ("+33.1.23.45.67.89", "[PHONE]"),
    # phone: US formats
    ("(415) 555-2671", "[PHONE]"),
    ("415-555-2671", "[PHONE]"),
    ("415.555.2671", "[PHONE]"),
    ("415 555 2671", "[PHONE]"),
    ("1-800-555-0199", "[PHONE]"),
    # phone: national formats (redaction.phone_regions), written with the trunk prefix
    ("call 020 7946 0321", "call [PHONE]"),
    ("Berlin: 030 12345678", "Berlin: [PHONE]"),
    ("01 23 45 67 89", "[PHONE]"),
    ("03-1234-5678", "[PHONE]"),
    ("(02) 9876 5432", "[PHONE]"),
    ("+49 (0)30 1234567", "[PHONE]"),
    # card numbers (all pass Luhn)
    ("card 4111 1111 1111 1111 exp 12/27", "card [CARD] exp 12/27"),
    ("4111-1111-1111-1111", "[CARD]"),
    ("4111111111111111", "[CARD]"),
    ("mc 5500 0000 0000 0004", "mc [CARD]"),
    ("amex 3782 822463 10005", "amex [CARD]"),
    ("6011000990139424", "[CARD]"),
    ("2024 4111 1111 1111 1111", "2024 [CARD]"),  # a year before the card stays
    ("4111 1111-1111 1111", "[CARD]"),  # mixed separators
    ("5555.5555.5555.4444", "[CARD]"),
    # US social security numbers
    ("ssn 123-45-6789", "ssn [SSN]"),
    ("123 45 6789", "[SSN]"),
    ("078-05-1120.", "[SSN]."),
    ("my SSN is 123456789", "my SSN is [SSN]"),  # nine bare digits need a context word
    ("Soc. Sec. No. 078051120", "Soc. Sec. No. [SSN]"),
    # IP addresses
    ("from 192.168.1.10, retried", "from [IP], retried"),
    ("10.0.0.1:8080", "[IP]:8080"),
    ("192.168.001.010", "[IP]"),  # leading zeros, as some tools print them
    ("2001:db8::8a2e:370:7334", "[IP]"),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[IP]"),
    ("loopback ::1 and fe80::1: link-local", "loopback [IP] and [IP]: link-local"),
    ("mapped ::ffff:192.168.1.1.", "mapped [IP]."),
]


@pytest.mark.parametrize(("text", "expected"), TRUE_POSITIVES)
def test_each_detector_replaces_what_it_finds_with_its_placeholder(
    text: str, expected: str
) -> None:
    assert redact(text) == expected


LOOK_ALIKES = [
    pytest.param("order 4111 1111 1111 1112", id="order-id-failing-luhn-grouped"),
    pytest.param("order #1234567890123", id="order-id-failing-luhn-13-digits"),
    pytest.param("tracking 12345678901234567890123", id="digit-run-longer-than-a-card"),
    pytest.param("ORD-4111-1111-1111-1111", id="card-digits-inside-an-id"),
    pytest.param("upgraded to 1.2.3.4.5", id="version-five-parts"),
    pytest.param("v2.10.3 and 10.2", id="version-short"),
    pytest.param("at 2024-01-15T10:30:00Z", id="iso-timestamp"),
    pytest.param("2024-01-15 10:30:00.123", id="sql-timestamp"),
    pytest.param("epoch 1700000000 ms 1700000000123", id="epoch-timestamps"),
    pytest.param("took 10:30 then 12:30:45", id="times"),
    pytest.param("costs $1,299.99 or EUR 1.299,00 or 12345.67", id="prices"),
    pytest.param("on 01/15/2024 or 15.01.2024", id="dates"),
    pytest.param("000-12-3456", id="ssn-area-000"),
    pytest.param("666-12-3456", id="ssn-area-666"),
    pytest.param("912-12-3456", id="ssn-area-9xx"),
    pytest.param("123-00-4567", id="ssn-group-00"),
    pytest.param("123-45-0000", id="ssn-serial-0000"),
    pytest.param("room 101, 12345 units, 555-1234", id="short-digit-runs"),
    pytest.param("4155552671", id="bare-10-digits-not-a-phone"),
    pytest.param("030/12345678x", id="phone-glued-to-a-word"),
    pytest.param("1.0.0+20130313144700", id="semver-build-metadata"),
    pytest.param("order 123456789 shipped", id="bare-9-digits-without-ssn-context"),
    pytest.param("FedEx ground 242912485186997", id="luhn-valid-outside-issuer-ranges"),
    pytest.param("track 1Z 0X5 W87 88 5751 8567", id="ups-number-in-groups"),
    pytest.param("root@[999.1.1.1]", id="address-literal-not-an-address"),
    pytest.param("+1.5 and +12 345", id="signed-numbers"),
    pytest.param("999.1.1.1, 256.0.0.1 and 192.168.001.256", id="invalid-ipv4"),
    pytest.param("mac 00:1a:2b:3c:4d:5e", id="mac-address"),
    pytest.param("std::vector, 16:9, Foo::Bar", id="colons"),
    pytest.param("a :: b", id="lone-double-colon"),
    pytest.param("user@localhost", id="address-without-domain"),
    pytest.param("Great answer, thanks! 5 stars.", id="plain-feedback"),
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_text_that_only_looks_like_pii_survives(text: str) -> None:
    assert redact(text) == text


def test_several_kinds_of_pii_in_one_string_are_all_replaced() -> None:
    text = (
        "Reach me at jane@example.com or +1 415 555 2671; card 4111 1111 1111 1111, "
        "ssn 123-45-6789, from 10.1.2.3 (order 1234567890123)"
    )
    assert redact(text) == (
        "Reach me at [EMAIL] or [PHONE]; card [CARD], ssn [SSN], from [IP] (order 1234567890123)"
    )


@pytest.mark.parametrize("text", [text for text, _ in TRUE_POSITIVES])
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


_FRAGMENTS = st.sampled_from(
    [
        "jane@example.com",
        "+44 20 7946 0958",
        "415-555-2671",
        "020 7946 0321",
        '"j d"@example.com',
        "root@[10.0.0.1]",
        "SSN 123456789",
        "4111 1111-1111 1111",
        "123-45-6789",
        "192.168.1.10",
        "fe80::1",
        "1.2.3.4.5",
        "2024-01-15T10:30:00Z",
        "[EMAIL]",
        "@",
        ":",
        "-",
        ".",
        " ",
        "0",
        "12",
        "999",
    ]
)


@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=5)), max_size=12).map("".join))
def test_redaction_is_idempotent_on_any_mix_of_fragments(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("378282246310005", True),
        ("6011000990139424", True),
        ("4111111111111112", False),
        ("1234567890123", False),
    ],
)
def test_luhn_check(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


# --- configuration ------------------------------------------------------------------------


def test_only_the_configured_detectors_run() -> None:
    redactor = Redactor(RedactionConfig(detectors=["email"]))
    assert redactor.redact_text("jane@example.com, 415-555-2671") == "[EMAIL], 415-555-2671"


def test_phone_regions_decide_which_national_formats_are_phones() -> None:
    text = "030 12345678 or +49 30 12345678"
    assert Redactor(RedactionConfig(phone_regions=["US"])).redact_text(text) == (
        "030 12345678 or [PHONE]"  # a "+" number is found whatever the regions
    )
    assert Redactor(RedactionConfig(phone_regions=["DE"])).redact_text(text) == (
        "[PHONE] or [PHONE]"
    )


def test_past_its_matcher_budget_the_phone_detector_fails_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otlp_feedback.validation import phones

    text = "build 2024.01.15.1"  # nine digits that some regions' numbers could be
    assert redact(text) == text
    monkeypatch.setattr(phones, "MATCHER_CALLS_PER_TEXT", 0)
    assert redact(text) == "build [PHONE]"  # over-redacted, never leaked


@pytest.mark.parametrize(
    "text", [text for text, _ in TRUE_POSITIVES] + [p.values[0] for p in LOOK_ALIKES]
)
def test_a_detector_whose_trigger_does_not_fire_changes_nothing(text: str) -> None:
    # The native gate evaluates the declared triggers: they must be necessary conditions.
    for rule in REDACTOR.detectors:
        for part in (text, *text.split(" ")):
            if not rule.trigger.fires(part):
                assert rule.scrub(part) == part, rule.name


def test_extra_patterns_replace_their_matches_literally() -> None:
    config = RedactionConfig(
        extra_patterns=[{"name": "employee", "regex": r"EMP-\d{6}", "replacement": r"[EMP\1]"}]
    )
    assert Redactor(config).redact_text("by EMP-004211 today") == r"by [EMP\1] today"


def test_extra_patterns_run_on_text_without_digits_at_signs_or_colons() -> None:
    config = RedactionConfig(extra_patterns=[{"name": "project", "regex": "Project Falcon"}])
    assert Redactor(config).redact_text("about Project Falcon") == "about [REDACTED]"


@pytest.mark.parametrize(
    ("redaction", "key"),
    [
        pytest.param({"fields": ["coment"]}, "redaction.fields", id="unknown-field"),
        pytest.param({"detectors": ["iban"]}, "redaction.detectors", id="unknown-detector"),
        pytest.param({"phone_regions": ["UK"]}, "redaction.phone_regions", id="unknown-region"),
        pytest.param(
            {"extra_patterns": [{"name": "x", "regex": "("}]},
            "redaction.extra_patterns",
            id="bad-regex",
        ),
        pytest.param(
            {"extra_patterns": [{"name": "x", "regex": "RED", "replacement": "[RED]"}]},
            "redaction.extra_patterns",
            id="replacement-matches-its-own-regex",
        ),
    ],
)
def test_bad_redaction_config_fails_naming_the_key(redaction: dict[str, Any], key: str) -> None:
    from otlp_feedback.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        load_config(redaction=redaction)


def test_disabled_redaction_leaves_text_alone() -> None:
    redactor = Redactor(RedactionConfig(enabled=False))
    assert redactor.redact_text("jane@example.com") == "jane@example.com"


# --- events -------------------------------------------------------------------------------


def feedback_event(**attributes: Any) -> UserFeedback:
    raw = only(map_logs_request(logs_request(log_record(
        "feedback.user_feedback", {**MINIMAL["user_feedback"], **attributes}
    ))))  # fmt: skip
    event = event_of(raw)
    assert isinstance(event, UserFeedback)
    return event


def test_comment_and_matching_attributes_are_scrubbed_and_named() -> None:
    event = feedback_event(
        **{
            "feedback.comment": "mail me: jane@example.com",
            "app.UserComment": "or call 415-555-2671",
            "app.user_id": "jane@example.com",  # an identifier, not free text: kept
            "app.prompt": "no PII here",
        }
    )
    clean, redacted = REDACTOR.redact_event(event)
    assert redacted == ["comment", "attributes.app.UserComment"]
    assert clean.comment == "mail me: [EMAIL]"  # type: ignore[attr-defined]
    assert clean.attributes == {
        "app.UserComment": "or call [PHONE]",
        "app.user_id": "jane@example.com",
        "app.prompt": "no PII here",
    }
    assert event.comment == "mail me: jane@example.com"  # the original is untouched


def test_an_event_without_pii_is_returned_as_is() -> None:
    event = feedback_event(**{"feedback.comment": "Spot on, thanks"})
    assert REDACTOR.redact_event(event) == (event, [])


class _FeedbackWithEnvelope(UserFeedback):
    """What the events will look like once the envelope carries ``redacted_fields``."""

    redacted_fields: list[str] = Field(default_factory=list)


def test_events_whose_model_has_redacted_fields_get_it_set() -> None:
    event = _FeedbackWithEnvelope(
        event_id="e", timestamp=RECEIVED_AT, received_at=RECEIVED_AT, carrier="log_record",
        session_id="s", comment="ssn 123-45-6789", attributes={"chat.text": "at 10.1.2.3"},
    )  # fmt: skip
    clean, _ = REDACTOR.redact_event(event)
    assert isinstance(clean, _FeedbackWithEnvelope)
    assert clean.redacted_fields == ["comment", "attributes.chat.text"]


def test_the_redacted_header_is_clipped_so_a_huge_key_cannot_oversize_the_record() -> None:
    assert redacted_header(["comment", "attributes.a"]) == b"comment,attributes.a"
    assert len(redacted_header(["attributes." + "k" * 5000])) == 1024


# --- the pipeline -------------------------------------------------------------------------

SCHEMAS = load_schemas()


def decoded(value: bytes) -> dict[str, Any]:
    result = schemaless_reader(BytesIO(value[5:]), SCHEMAS.latest("user_feedback").parsed, None)
    assert isinstance(result, dict)
    return result


def test_pipeline_writes_the_scrubbed_event_and_names_the_fields_in_a_header(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    pipeline.export_logs(logs_request(log_record("feedback.user_feedback", {
        **MINIMAL["user_feedback"], "feedback.comment": "card 4111 1111 1111 1111",
        "app.query": "jane@example.com",
    })))  # fmt: skip
    (record,) = sink.records
    assert decoded(record.value)["comment"] == "card [CARD]"
    assert decoded(record.value)["attributes"] == {"app.query": "[EMAIL]"}
    assert dict(record.headers)["redacted"] == b"comment,attributes.app.query"
    assert pipeline.stats.redacted_by_type == {"user_feedback": 1}


def test_an_event_without_pii_gets_no_redacted_header(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    pipeline.export_logs(logs_request(log_record("feedback.user_feedback", {
        **MINIMAL["user_feedback"], "feedback.comment": "Spot on",
    })))  # fmt: skip
    assert "redacted" not in dict(sink.records[0].headers)


def test_a_dead_letter_keeps_the_record_but_not_its_pii(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    comment = "I am jane@example.com, " + "x" * 1000  # too long: rejected
    pipeline.export_logs(logs_request(log_record(
        "feedback.user_feedback", {"session.id": "s", "app.note_text": "call 415-555-2671"},
        body=comment,
    )))  # fmt: skip
    (record,) = sink.records
    assert record.topic == "feedback.dlq"
    assert b"jane@example.com" not in record.value
    assert b"415-555-2671" not in record.value
    assert b"jane@example.com" not in dict(record.headers)["reason"]
    letter = from_value(record.value)
    assert letter.source.body_text is not None
    assert letter.source.body_text.startswith("I am [EMAIL], ")
    assert letter.source.record_attributes["app.note_text"] == "call [PHONE]"


def test_new_redaction_rules_apply_to_the_next_request(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    def send(comment: str) -> str:
        sink.records.clear()
        pipeline.export_logs(logs_request(log_record("feedback.user_feedback", {
            **MINIMAL["user_feedback"], "feedback.comment": comment,
        })))  # fmt: skip
        return str(decoded(sink.records[0].value)["comment"])

    assert send("jane@example.com") == "[EMAIL]"
    pipeline.set_redaction(RedactionConfig(enabled=False))
    assert send("jane@example.com") == "jane@example.com"
