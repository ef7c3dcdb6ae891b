"""``otlp-feedback tail``'s filters and output formats, without Kafka (``otlp_feedback.tail``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from otlp_feedback.cli import main
from otlp_feedback.events import FeedbackEvent
from otlp_feedback.tail import (
    KEY_FIELDS,
    TailFilter,
    json_line,
    parse_time,
    table_header,
    table_row,
)
from otlp_feedback.testing.events import sample_events

NOW = datetime(2025, 3, 1, 13, 0, 0, tzinfo=UTC)
EVENTS = sample_events()  # timestamped 2025-03-01 12:30:15.123456 UTC, service support-bot


def at(event: FeedbackEvent, when: datetime, **changes: object) -> FeedbackEvent:
    return event.model_copy(update={"timestamp": when, **changes})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - timedelta(seconds=30)),
        ("10m", NOW - timedelta(minutes=10)),
        ("1.5h", NOW - timedelta(minutes=90)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2025-02-28T09:15:00Z", datetime(2025, 2, 28, 9, 15, tzinfo=UTC)),
        ("2025-02-28T10:15:00+01:00", datetime(2025, 2, 28, 9, 15, tzinfo=UTC)),
        ("2025-02-28 09:15", datetime(2025, 2, 28, 9, 15, tzinfo=UTC)),  # naive: UTC
        ("2025-02-28", datetime(2025, 2, 28, tzinfo=UTC)),
    ],
)
def test_since_and_until_take_iso_8601_or_a_time_ago(text: str, expected: datetime) -> None:
    parsed = parse_time(text, NOW)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "-5m", "10y", ""])
def test_a_time_that_is_neither_iso_nor_relative_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="neither ISO-8601"):
        parse_time(text, NOW)


def test_a_bad_since_is_a_usage_error_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["tail", "--since", "yesterday"])
    assert exit_.value.code == 2
    assert "argument --since: 'yesterday' is neither ISO-8601" in capsys.readouterr().err


def test_an_unknown_type_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["tail", "--type", "user_feedbacks"])
    assert "invalid choice: 'user_feedbacks'" in capsys.readouterr().err


def test_filter_keeps_the_named_services_only() -> None:
    wanted = TailFilter(services={"ranker", "support-bot"})
    event = EVENTS["user_feedback"]
    assert wanted.matches(event)
    assert not wanted.matches(event.model_copy(update={"service": "billing"}))
    assert not wanted.matches(event.model_copy(update={"service": None}))


def test_filter_window_includes_since_and_excludes_until() -> None:
    since, until = datetime(2025, 3, 1, 12, tzinfo=UTC), datetime(2025, 3, 1, 13, tzinfo=UTC)
    wanted = TailFilter(since=since, until=until)
    event = EVENTS["system_health"]
    assert wanted.matches(at(event, since))
    assert wanted.matches(at(event, until - timedelta(microseconds=1)))
    assert not wanted.matches(at(event, since - timedelta(microseconds=1)))
    assert not wanted.matches(at(event, until))


def test_filter_compares_instants_across_time_zones() -> None:
    paris = timezone(timedelta(hours=1))
    wanted = TailFilter(since=datetime(2025, 3, 1, 13, 30, tzinfo=paris))  # 12:30 UTC
    assert wanted.matches(EVENTS["user_feedback"])  # 12:30:15 UTC


def test_empty_filter_keeps_everything() -> None:
    assert all(TailFilter().matches(e) for e in EVENTS.values())


def test_json_line_is_ascii_json_with_the_event_type_first() -> None:
    event = EVENTS["user_feedback"].model_copy(update={"comment": "très bien \x1b[2J\u202e"})
    line = json_line(event)
    assert line.isascii() and "\n" not in line
    decoded = json.loads(line)
    assert next(iter(decoded)) == "event_type" and decoded["event_type"] == "user_feedback"
    assert decoded["comment"] == "très bien \x1b[2J\u202e"


def test_table_rows_align_with_the_header_columns() -> None:
    header = table_header()
    assert header.split() == ["TIME", "(UTC)", "TYPE", "SERVICE", "DETAILS"]
    for event_type, event in EVENTS.items():
        row = table_row(event)
        assert row.index(event_type) == header.index("TYPE"), row
        assert row.index("support-bot") == header.index("SERVICE"), row
        first_detail = KEY_FIELDS[event_type][0] + "="
        assert row.index(first_detail) == header.index("DETAILS"), row


def test_table_row_shows_the_key_fields_of_each_type() -> None:
    rows = {t: table_row(e) for t, e in EVENTS.items()}
    assert rows["user_feedback"] == (
        "2025-03-01 12:30:15.123  user_feedback        support-bot       "
        'session_id=sess-1 rating=4.5 thumbs=up comment="Clear and correct." tags=helpful,fast'
    )
    assert rows["performance_metrics"].endswith(
        "model=gpt-4o latency_ms=812.5 input_tokens=120 output_tokens=48 tokens_total=168 "
        "cost_usd=0.0031 "
        "success=false error_type=timeout"
    )
    assert rows["model_response"].endswith(
        "model=gpt-4o quality_score=87.5 evaluation_name=relevance score_label=pass "
        "evaluator=judge-v3"
    )
    assert rows["system_health"].endswith(
        "status=degraded error_rate=0.02 cpu_percent=73.5 memory_percent=61 active_requests=17"
    )
    assert rows["experiment_result"].endswith(
        "experiment_id=prompt-v7 variant_id=B reward=1 latency_ms=640"
    )


def test_table_row_leaves_out_unset_fields_and_a_plain_success() -> None:
    event = EVENTS["performance_metrics"].model_copy(
        update={"latency_ms": None, "cost_usd": None, "success": True, "error_type": None}
    )
    assert table_row(event).endswith(
        "model=gpt-4o input_tokens=120 output_tokens=48 tokens_total=168"
    )


def test_table_row_escapes_unprintable_characters_and_cuts_long_values() -> None:
    event = EVENTS["user_feedback"].model_copy(
        update={
            "service": "svc\x1b[31m-with-a-very-long-name",
            "comment": "line one\nline two \u202egnp.exe" + "x" * 100,
        }
    )
    row = table_row(event)
    assert row.isprintable()
    assert "svc\\x1b[31m-wit…" in row
    assert 'comment="line one\\nline two \\u202egnp.exexxxxxxx…"' in row  # 40 chars


def test_a_dead_letter_prints_its_reason_first_then_the_record() -> None:
    from otlp_feedback.config import load_config
    from otlp_feedback.encoding.dead_letter import DeadLetter, from_value, to_outbound
    from otlp_feedback.mapping.records import SourceRecord
    from otlp_feedback.tail import letter_json_line, letter_table_row
    from otlp_feedback.validation.redaction import Redactor

    source = SourceRecord(
        event_name="feedback.user_feedback",
        event_type="user_feedback",
        carrier="log_record",
        record_attributes={"session.id": "s-1", "feedback.rating": 9},
        span_attributes={},
        resource_attributes={"service.name": "web\x1b[31m"},
        body_text=None,
        time_ns=1_740_832_215_000_000_000,
        trace_id=b"",
        span_id=b"",
    )
    letter = DeadLetter("feedback.rating: too high (got 9)", "log_records[0]", "e-1", source)
    redactor = Redactor(load_config().redaction)
    value = to_outbound(letter, "feedback.dlq", redactor, 1_000_000).value
    line = json.loads(letter_json_line(json.loads(value)))
    assert list(line)[:3] == ["reason", "event_type", "location"]
    assert line["attributes"] == {"session.id": "s-1", "feedback.rating": 9}
    row = letter_table_row(from_value(value))
    assert row.isprintable()
    assert row.startswith("2025-03-01 12:30:15.000  user_feedback")
    assert row.endswith("web\\x1b[31m       feedback.rating: too high (got 9)")
