"""The cut rule: wherever text that redaction covers is shortened (a value quoted in a
rejection reason, an attribute value cut at ``validation.max_attribute_value_len``, a
dead-letter value cut to fit), no fragment of a PII item survives at the edge."""

from __future__ import annotations

import re

import pytest
from otlp_builders import log_record, only, validate

from otlp_feedback.config import RedactionConfig, ValidationConfig, load_config
from otlp_feedback.cutrule import CUT_MARGIN, cut_text
from otlp_feedback.mapping import map_logs_request
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.observe import decode_event
from otlp_feedback.testing.otlp import logs_request, make_log_record
from otlp_feedback.validation import Rejection
from otlp_feedback.validation.redaction import Redactor

REDACTOR = Redactor(RedactionConfig())
# One item per detector; the text around them holds no digit and no "@".
ITEMS = [
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "john.smith@example.com",
    "+44 20 7946 0958",
    "(415) 555-2671",
    "078-05-1120",
    "192.168.10.20",
    "2001:db8::7",
]


def leaks(text: str) -> bool:
    """A fragment of an item: any digit or "@" (the filler has neither); "::" of an IPv6."""
    return re.search(r"[0-9@]|::", text) is not None


@pytest.mark.parametrize("item", ITEMS)
def test_a_cut_at_any_position_of_an_item_leaves_no_fragment(item: str) -> None:
    limit = 60
    for offset in range(-2, len(item) + 2):
        text = "word " * 20
        text = text[: limit - offset] + " " + item + " and then more words"
        shown = REDACTOR.cut(text, limit)
        assert len(shown) <= limit
        assert not leaks(shown), (offset, shown)


def test_the_window_costs_the_limit_not_the_length_sent() -> None:
    calls: list[int] = []

    def scrub(text: str) -> str:
        calls.append(len(text))
        return text

    cut_text("a@b.c 4111 " * 1_500_000, 100, scrub)
    assert calls == [100 + CUT_MARGIN]


def test_a_token_longer_than_the_margin_is_kept_as_cut() -> None:
    blob = "x" * 10_000
    assert cut_text(blob, 4096) == "x" * 4096
    assert cut_text("short words then " + blob, 30) == "short words then " + "x" * 13


def test_a_token_split_by_the_cut_is_dropped() -> None:
    assert cut_text("alpha beta gamma", 8) == "alpha "
    assert cut_text("alpha beta gamma", 6) == "alpha "
    assert cut_text("alpha beta", 100) == "alpha beta"


@pytest.mark.parametrize("item", ITEMS)
def test_a_rejection_reason_never_quotes_an_unscrubbed_value(item: str) -> None:
    """The outside test: a comment over 1,000 characters quoted 60 characters unscrubbed."""
    for prefix in ("", "I would rather not say it, but here it is: ", "x" * 40 + " "):
        comment = prefix + item + " " + "blah " * 250
        record = log_record(
            "feedback.user_feedback", {"session.id": "s", "feedback.comment": comment}
        )
        raw = only(map_logs_request(logs_request([record])))
        result = validate(raw)
        assert isinstance(result, Rejection)
        assert "at most 1000 characters" in result.reason
        assert not leaks(result.reason.replace("1000", "")), result.reason


def test_a_quoted_value_says_it_was_cut() -> None:
    assert REDACTOR.quote("a" * 10, 60) == "'aaaaaaaaaa'"
    assert REDACTOR.quote("word " * 40, 20).endswith("...")
    assert REDACTOR.quote("mail jo@example.com", 60) == "'mail [EMAIL]'"


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("item", ITEMS)
def test_an_attribute_value_cut_at_the_limit_leaves_no_fragment(item: str, native: bool) -> None:
    limit = ValidationConfig().max_attribute_value_len
    settings = load_config(receiver={"endpoint": "127.0.0.1:0", "native_fast_path": native})
    sink, registry = InMemorySink(), InMemoryRegistry()
    pipeline = Pipeline(settings, registry, sink)
    pipeline.start()
    try:
        for offset in range(0, len(item) + 1):
            value = ("word " * (limit // 5))[: limit - offset] + " " + item + " " + "more " * 99
            record = make_log_record(
                "feedback.user_feedback",
                {"session.id": "s", "feedback.rating": 4, "app.prompt": value, "app.id": value},
            )
            outcome = pipeline.export("logs", logs_request([record]).SerializeToString())
            assert outcome.accepted == 1
            attributes = decode_event(sink.records.pop(), registry)["attributes"]
            prompt = attributes["app.prompt"]  # covered by redaction.attribute_keys
            assert len(prompt) <= limit and not leaks(prompt), (offset, prompt[-60:])
            assert attributes["app.id"] == value[:limit]  # not covered: cut as sent
    finally:
        pipeline.shutdown()
