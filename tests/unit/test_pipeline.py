"""``Pipeline``: map -> validate -> encode -> deliver, with the in-memory registry and sink."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_builders import (
    MINIMAL,
    RECEIVED_AT,
    RECEIVED_NS,
    event_records,
    log_record,
    logs_request,
)

from otlp_feedback import native
from otlp_feedback.config import Settings, load_config
from otlp_feedback.encoding import load_schemas
from otlp_feedback.errors import (
    DeliveryFailed,
    DeliveryTimeout,
    RequestTooLarge,
    RetryableError,
    SchemaError,
    SinkUnavailable,
)
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.native import NativeLogs
from otlp_feedback.pipeline import ExportOutcome, Pipeline, subject_for
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.validation.redaction import Redactor

SCHEMAS = load_schemas()


def mixed_request() -> ExportLogsServiceRequest:
    """2 valid, 2 invalid, 2 non-feedback records."""
    return logs_request(
        log_record("feedback.user_feedback", {"event.id": "ok-1", **MINIMAL["user_feedback"]}),
        log_record("", {"http.method": "GET"}, body="GET / 200"),
        log_record("feedback.user_feedback", {"event.id": "bad-1", "session.id": "s",
                                              "feedback.rating": 9}),
        log_record("feedback.system_health", {"event.id": "ok-2", **MINIMAL["system_health"]}),
        log_record("browser.page_view", {"session.id": "s"}),
        log_record("feedback.user_feedback", {"event.id": "bad-2", "feedback.rating": 3}),
    )  # fmt: skip


def three_valid_request() -> ExportLogsServiceRequest:
    return logs_request(
        *(
            log_record("feedback.user_feedback", {"event.id": eid, **MINIMAL["user_feedback"]})
            for eid in ("a", "b", "c")
        )
    )


def test_mixed_request_counts_accepted_rejected_and_ignored_exactly(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    outcome = pipeline.export_logs(mixed_request())
    assert (outcome.accepted, outcome.rejected, outcome.ignored) == (2, 2, 2)
    assert [record.event_id for record in event_records(sink)] == ["ok-1", "ok-2"]
    assert [record.topic for record in event_records(sink)] == [
        "feedback.user_feedback",
        "feedback.system_health",
    ]


def test_outcome_message_names_the_first_problems(pipeline: Pipeline) -> None:
    outcome = pipeline.export_logs(mixed_request())
    assert outcome.message(limit=5) == (
        "2 feedback record(s) rejected: "
        "resource_logs[0].scope_logs[0].log_records[2] (user_feedback): "
        "feedback.rating: Input should be less than or equal to 5 (got 9); "
        "resource_logs[0].scope_logs[0].log_records[5] (user_feedback): session.id is required"
    )


def test_outcome_message_is_cut_at_the_limit_and_counts_the_rest(pipeline: Pipeline) -> None:
    message = pipeline.export_logs(mixed_request()).message(limit=1)
    assert message.startswith("2 feedback record(s) rejected: ")
    assert "feedback.rating" in message
    assert "session.id" not in message
    assert message.endswith("; and 1 more")


def test_outcome_message_is_empty_without_rejections() -> None:
    assert ExportOutcome(accepted=3, ignored=1).message(limit=5) == ""


def test_stats_add_up_over_requests(pipeline: Pipeline) -> None:
    pipeline.export_logs(mixed_request())
    pipeline.export_logs(mixed_request())
    stats = pipeline.stats
    assert (stats.requests, stats.accepted, stats.rejected, stats.ignored) == (2, 4, 4, 4)
    assert stats.delivery_failures == 0


def test_request_without_feedback_delivers_nothing(pipeline: Pipeline, sink: InMemorySink) -> None:
    outcome = pipeline.export_logs(logs_request(log_record("", {}, body="just a log")))
    assert (outcome.accepted, outcome.rejected, outcome.ignored) == (0, 0, 1)
    assert sink.records == []


def test_trace_export_runs_the_same_stages(
    pipeline: Pipeline, sink: InMemorySink, traces_fixture: ExportTraceServiceRequest
) -> None:
    outcome = pipeline.export_traces(traces_fixture)
    assert (outcome.accepted, outcome.rejected, outcome.ignored) == (9, 1, 4)
    assert "feedback.experiment.type" in outcome.message(limit=5)
    assert len(event_records(sink)) == 9


def test_received_at_comes_from_the_pipeline_clock(pipeline: Pipeline, sink: InMemorySink) -> None:
    pipeline.export_logs(three_valid_request())
    value = sink.records[0].value
    record = schemaless_reader(BytesIO(value[5:]), SCHEMAS.latest("user_feedback").parsed, None)
    assert isinstance(record, dict)
    assert record["received_at"] == RECEIVED_AT


# --- delivery failures ------------------------------------------------------------------------


def test_sink_timeout_propagates_as_a_retryable_error(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    sink.fail_with = DeliveryTimeout("Kafka did not confirm 3 records", retry_after=2.0)
    with pytest.raises(RetryableError) as caught:
        pipeline.export_logs(three_valid_request())
    assert caught.value is sink.fail_with
    assert caught.value.retry_after == 2.0
    assert pipeline.stats.delivery_failures == 1
    assert pipeline.stats.requests == 0  # the client will retry the whole request


def test_unexpected_sink_error_propagates(pipeline: Pipeline, sink: InMemorySink) -> None:
    sink.fail_with = RuntimeError("librdkafka exploded")
    with pytest.raises(RuntimeError, match="exploded"):
        pipeline.export_logs(three_valid_request())
    assert pipeline.stats.accepted == 0


def test_records_kafka_refused_become_rejections_and_the_rest_count_accepted(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    sink.fail_with = DeliveryFailed("1 record refused", failed={"b": "MSG_SIZE_TOO_LARGE"})
    outcome = pipeline.export_logs(three_valid_request())
    assert (outcome.accepted, outcome.rejected) == (2, 1)
    (rejection,) = outcome.rejections
    assert rejection.location == "resource_logs[0].scope_logs[0].log_records[1]"
    assert rejection.reason == "Kafka refused it: MSG_SIZE_TOO_LARGE"
    assert pipeline.stats.accepted == 2


def test_kafka_refusals_add_to_validation_rejections(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    sink.fail_with = DeliveryFailed("refused", failed={"ok-2": "TOPIC_AUTHORIZATION_FAILED"})
    outcome = pipeline.export_logs(mixed_request())
    assert (outcome.accepted, outcome.rejected, outcome.ignored) == (1, 3, 2)
    assert outcome.rejections[-1].reason == "Kafka refused it: TOPIC_AUTHORIZATION_FAILED"


# --- schemas and the registry -----------------------------------------------------------------


def test_start_registers_every_schema_under_the_topic_subject(
    pipeline: Pipeline, registry: InMemoryRegistry
) -> None:
    for event_type in EVENT_TYPES:
        subject = f"feedback.{event_type}-value"
        assert registry.lookup(subject, SCHEMAS.latest(event_type).text) > 0


def test_start_sets_full_transitive_compatibility_on_every_subject(
    pipeline: Pipeline, registry: InMemoryRegistry
) -> None:
    assert registry.compatibility == {
        f"feedback.{event_type}-value": "FULL_TRANSITIVE" for event_type in EVENT_TYPES
    }


def test_values_carry_the_registry_id_of_their_schema(
    pipeline: Pipeline, registry: InMemoryRegistry, sink: InMemorySink
) -> None:
    pipeline.export_logs(mixed_request())
    for record in event_records(sink):
        subject = subject_for(record.topic)
        schema_id = registry.lookup(subject, SCHEMAS.latest(record.event_type).text)
        assert record.value[:5] == b"\x00" + schema_id.to_bytes(4, "big")


def test_subjects_follow_configured_topics_and_compatibility() -> None:
    settings = load_config(
        kafka={"topics": {"user_feedback": "llm.thumbs"}},
        registry={"compatibility": "BACKWARD"},
    )
    registry = InMemoryRegistry()
    Pipeline(settings, registry, InMemorySink()).start()
    assert registry.compatibility["llm.thumbs-value"] == "BACKWARD"
    assert registry.compatibility["feedback.system_health-value"] == "BACKWARD"
    assert "feedback.user_feedback-value" not in registry.compatibility


def test_without_auto_register_start_fails_if_a_schema_is_not_registered() -> None:
    settings = load_config(registry={"auto_register": False})
    with pytest.raises(SchemaError) as caught:
        Pipeline(settings, InMemoryRegistry(), InMemorySink()).start()
    assert "feedback.user_feedback-value" in str(caught.value)


def test_without_auto_register_start_looks_ids_up_and_sets_no_compatibility() -> None:
    registry = InMemoryRegistry()
    ids = {t: registry.register(f"feedback.{t}-value", SCHEMAS.latest(t).text) for t in EVENT_TYPES}
    sink = InMemorySink()
    running = Pipeline(
        load_config(registry={"auto_register": False}), registry, sink, clock_ns=lambda: RECEIVED_NS
    )
    running.start()
    running.export_logs(three_valid_request())
    assert sink.records[0].value[1:5] == ids["user_feedback"].to_bytes(4, "big")
    assert registry.compatibility == {}


# --- lifecycle --------------------------------------------------------------------------------


def test_export_before_start_is_refused_as_retryable(settings: Settings) -> None:
    idle = Pipeline(settings, InMemoryRegistry(), InMemorySink())
    with pytest.raises(SinkUnavailable):
        idle.export_logs(three_valid_request())


def test_export_after_shutdown_is_refused_as_retryable(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    pipeline.shutdown(1.0)
    with pytest.raises(SinkUnavailable) as caught:
        pipeline.export_logs(three_valid_request())
    assert caught.value.retry_after is not None
    assert sink.records == []


def test_start_starts_the_sink_and_shutdown_stops_it(settings: Settings) -> None:
    sink = InMemorySink()
    running = Pipeline(settings, InMemoryRegistry(), sink)
    running.start()
    assert sink.started
    assert running.force_flush(1.0)
    running.shutdown(1.0)
    assert not sink.started


def test_a_flood_of_feedback_records_in_one_request_is_refused_whole(sink: InMemorySink) -> None:
    settings = load_config(validation={"max_feedback_per_request": 2})
    pipeline = Pipeline(settings, InMemoryRegistry(), sink, clock_ns=lambda: RECEIVED_NS)
    pipeline.start()
    with pytest.raises(RequestTooLarge, match=r"3 feedback records, over the limit of 2"):
        pipeline.export_logs(three_valid_request())
    assert sink.records == []


def test_invalid_records_are_dead_lettered_with_their_reason(
    pipeline: Pipeline, sink: InMemorySink
) -> None:
    outcome = pipeline.export_logs(mixed_request())

    letters = [r for r in sink.records if r.topic == "feedback.dlq"]
    assert outcome.dead_lettered == len(letters) == outcome.rejected == 2
    reasons = {dict(r.headers)["reason"] for r in letters}
    assert any(b"feedback.rating" in reason for reason in reasons)
    assert {r.key for r in letters} >= {b"bad-1"}


# --- redaction reload ---------------------------------------------------------------------------


def _holds_rules(value: object) -> bool:
    """Whether an attribute read hands out redaction rules: a redactor, a native plan, or an
    object carrying one (whatever the pipeline calls them)."""
    rule_types = (Redactor, NativeLogs)
    return isinstance(value, rule_types) or any(
        isinstance(getattr(value, name, None), rule_types) for name in ("redactor", "native")
    )


@pytest.mark.skipif(not native.AVAILABLE, reason="native extension not built")
def test_a_reload_between_a_requests_reads_cannot_pair_old_and_new_rules(
    sink: InMemorySink,
) -> None:
    # Redaction off, then on. A request reads its rules; a reload lands right after that first
    # read; the request goes on. Had it read the redactor and the native plan separately, it
    # would pair the old plan (no gate: the e-mail in the first comment is encoded by C as is)
    # with the new redactor (the deferred second record's e-mail is scrubbed). One read serves
    # both, so the request keeps the rules it began with, whole.
    new_rules = load_config().redaction

    class ReloadAfterFirstRead(Pipeline):
        armed = False

        def __getattribute__(self, name: str) -> Any:
            value = super().__getattribute__(name)
            if object.__getattribute__(self, "armed") and _holds_rules(value):
                self.armed = False
                self.set_redaction(new_rules)
            return value

    pipeline = ReloadAfterFirstRead(
        load_config(redaction={"enabled": False}), InMemoryRegistry(), sink,
        clock_ns=lambda: RECEIVED_NS,
    )  # fmt: skip
    pipeline.start()
    payload = logs_request(
        log_record("feedback.user_feedback", {**MINIMAL["user_feedback"],
                                              "feedback.comment": "mail jane@example.com"}),
        # A control character to strip: C defers this record to Python.
        log_record("feedback.user_feedback", {**MINIMAL["user_feedback"],
                                              "feedback.comment": "mail\x1b jane@example.com"}),
    ).SerializeToString()  # fmt: skip

    pipeline.armed = True
    outcome = pipeline.export("logs", payload)
    assert not pipeline.armed, "the reload did not happen mid-request"
    assert (outcome.native, outcome.deferred) == (1, 1)
    assert outcome.redacted_by_type == {}, "old plan paired with the new redactor"

    sink.records.clear()
    outcome = pipeline.export("logs", payload)  # the next request: the new rules, whole
    assert outcome.redacted_by_type == {"user_feedback": 2}
    assert (outcome.native, outcome.deferred) == (0, 2)
    pipeline.shutdown(1.0)


@pytest.fixture
def rejection_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    from otlp_feedback.logthrottle import REJECTIONS_THROTTLE

    REJECTIONS_THROTTLE.reset()
    caplog.set_level("DEBUG", logger="otlp_feedback.rejections")
    return caplog


def test_rejections_are_logged_with_event_type_and_reason_each_kind_once(
    pipeline: Pipeline, rejection_log: pytest.LogCaptureFixture
) -> None:
    # The OTel SDKs drop partial_success without a word: the log is where a newcomer sees why.
    pipeline.export_logs(mixed_request())
    pipeline.export_logs(mixed_request())  # the same two problems again: held back, counted
    lines = [
        (r.levelname, r.getMessage())
        for r in rejection_log.records
        if r.name == "otlp_feedback.rejections"
    ]
    assert lines == [
        (
            "INFO",
            "rejected a user_feedback record (invalid): "
            "feedback.rating: Input should be less than or equal to 5 (got 9)",
        ),
        ("INFO", "rejected a user_feedback record (invalid): session.id is required"),
    ]


def test_dev_logs_rejections_at_warning() -> None:
    from otlp_feedback.config import dev_settings

    assert dev_settings().validation.log_rejections == "WARNING"
    assert load_config().validation.log_rejections == "INFO"


def misspelt_request() -> ExportLogsServiceRequest:
    return logs_request(
        log_record("feedback.user_feedbak", {"session.id": "s", "feedback.thumbs": "up"}),
        log_record("feedback.user_feedback", {"event.id": "ok", **MINIMAL["user_feedback"]}),
        log_record("feedback.user_feedbak", {"session.id": "s", "feedback.thumbs": "up"}),
        log_record("browser.page_view", {"session.id": "s"}),
    )


@pytest.mark.parametrize("path", ["native", "python"])
def test_a_misspelt_feedback_name_is_warned_about_once_with_the_nearest_name(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level("WARNING", logger="otlp_feedback.pipeline.facade")
    request = misspelt_request()
    for _ in range(2):
        if path == "native":
            outcome = pipeline.export("logs", request.SerializeToString())
        else:
            outcome = pipeline.export_logs(request)
        assert (outcome.accepted, outcome.ignored) == (1, 3)
        assert outcome.native == (1 if path == "native" else 0)  # C encoded the good one
    warned = [r.getMessage() for r in caplog.records if "no event type" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].startswith(
        "ignored records named 'feedback.user_feedbak': no event type has that name; "
        "did you mean 'feedback.user_feedback'?"
    )


@pytest.mark.parametrize("path", ["native", "python"])
def test_the_bare_prefix_is_an_unknown_feedback_name_on_both_paths(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    # C and Python share the rule (``conv.is_unknown_feedback_name``): "feedback." itself too.
    caplog.set_level("WARNING", logger="otlp_feedback.pipeline.facade")
    request = logs_request(log_record("feedback.", {"session.id": "s"}))
    if path == "native":
        pipeline.export("logs", request.SerializeToString())
    else:
        pipeline.export_logs(request)
    assert any("ignored records named 'feedback.'" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", ["native", "python"])
def test_pii_in_an_unknown_feedback_name_is_masked_in_the_warning_and_the_name_is_clipped(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level("WARNING", logger="otlp_feedback.pipeline.facade")
    attributes = {"session.id": "s", "feedback.thumbs": "up"}
    request = logs_request(
        log_record("feedback.user_feedback john.doe@example.com", attributes),
        log_record("feedback.user_feedback call +44 20 7946 0958", attributes),
        log_record("feedback.user_feedbak " + "x" * 500, attributes),
    )
    for _ in range(2):  # once per name, still
        if path == "native":
            pipeline.export("logs", request.SerializeToString())
        else:
            pipeline.export_logs(request)
    warned = [r.getMessage() for r in caplog.records if "no event type" in r.getMessage()]
    assert len(warned) == 3
    assert "john.doe@example.com" not in caplog.text and "7946" not in caplog.text
    assert warned[0].startswith(
        "ignored records named 'feedback.user_feedback [EMAIL]': no event type has that name; "
        "did you mean 'feedback.user_feedback'?"
    )
    assert warned[1].startswith("ignored records named 'feedback.user_feedback call [PHONE]'")
    shown = warned[2].removeprefix("ignored records named ").split(":")[0]
    assert shown == "'feedback.user_feedbak " + "x" * 57 + "..."  # 80 characters, then "..."


def test_a_misspelt_span_event_name_is_warned_about_too(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    caplog.set_level("WARNING", logger="otlp_feedback.pipeline.facade")
    span = Span(name="chat", trace_id=b"t" * 16, span_id=b"s" * 8)
    span.events.add(name="feedback.sytem_health")
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    pipeline.export_traces(request)
    assert any("did you mean 'feedback.system_health'" in r.getMessage() for r in caplog.records)
