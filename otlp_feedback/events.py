"""The typed feedback events: what the pipeline validates into and what consumers read back.

Five event types share one envelope. They are plain pydantic models with flat fields (no nested
models) so that the encoder can hand ``model.__dict__`` straight to fastavro, and so that the
NEWEST Avro schema of each type in ``schemas/avro/<event_type>/vN.avsc`` mirrors its model one to
one (``tests/unit/test_schema_alignment.py`` proves they agree). Older versions stay on disk and
in the registry for consumers still reading them; a field added here needs a new schema version
with the field appended, optional and defaulting to null, which ``otlp-feedback schemas
new-version TYPE`` writes from the model (README, "Schema evolution").

Who uses this: ``validation`` builds these from mapped attributes; ``encoding`` writes them;
``consumer``/``tail`` read them back.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

EventType = Literal[
    "user_feedback",
    "performance_metrics",
    "model_response",
    "system_health",
    "experiment_result",
]
# How an event arrived: an OTLP log record, span event or GenAI span, or the events API's JSON.
# An Avro string, so a new carrier needs no new schema version. The field's doc lists the
# carriers of its schema's release (released versions are never edited, not even a doc:
# test_schema_alignment); each type's next version names events_api there too.
Carrier = Literal["log_record", "span_event", "genai_span", "events_api"]

UnitInterval = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
_MAX_LONG: Final = 2**63 - 1  # Avro long
NonNegInt = Annotated[int, Field(ge=0, le=_MAX_LONG)]
Percent = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


READ_BACK_KEY: Final = "read_back"
READ_BACK: Final = MappingProxyType({READ_BACK_KEY: True})
"""Validation context for events read back from Kafka: a rule added after an event was written
(``needs_one_of``, ``sum_fields``) must not make it unreadable."""


def _is_plain_str(annotation: Any) -> bool:
    """``str``, ``str | None`` or an ``Annotated`` str (constraints aside); not a ``Literal``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            return False
        annotation = members[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation is str


class FeedbackEvent(BaseModel):
    """The envelope every event carries.

    ``event_id`` is either the client's ``event.id`` or a UUIDv5 of the record's content, so a
    retried export yields the same id and consumers can drop duplicates.
    """

    # OTLP attributes are typed, so a value of another type is a sender bug to report, not to
    # paper over: strict mode refuses bool -> number, string -> number, float -> int, number ->
    # bool and so on. Two lossless widenings are kept (README, "Accepted value types"): an int
    # where a double is expected (strict mode allows it) and an int where a plain string is
    # expected, taken as its decimal text (numeric ids: ``_ints_as_text`` below).
    # A docstring under a field is its description: ``schemas new-version`` writes it into the
    # new field's Avro ``doc``.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        str_max_length=65536,
        strict=True,
        use_attribute_docstrings=True,
    )

    event_type: ClassVar[EventType]
    # The record key keeps related events in one partition: the first of these fields that is
    # set (overridden per type). Data rather than code so the native encoder reads it too.
    kafka_key_fields: ClassVar[tuple[str, ...]] = ("request_id", "trace_id")
    # An event needs at least one of these fields (none: no such rule). Data rather than code so
    # the native plan reads it too.
    needs_one_of: ClassVar[tuple[str, ...]] = ()
    # Fields that are the sum of others, as (field, parts): absent while every part is present,
    # the field is set to the parts' sum; present with every part present and not their sum,
    # the event is rejected naming the three numbers. Data rather than code so the native plan
    # reads it too.
    sum_fields: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = ()
    # The plain string fields (not literals, not list items), which take an int as its text.
    # Derived from the annotations when a model class is defined.
    text_fields: ClassVar[frozenset[str]] = frozenset()

    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    timestamp: datetime
    received_at: datetime
    carrier: Carrier
    service: str | None = None
    environment: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    request_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    # Set by the pipeline, never from what the sender sent (mapping maps no attribute to them).
    client_id: str | None = None  # the authenticated sender; None when auth is off
    redacted_fields: list[str] = Field(default_factory=list)  # e.g. comment, attributes.<key>

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.text_fields = frozenset(
            name for name, info in cls.model_fields.items() if _is_plain_str(info.annotation)
        )

    @model_validator(mode="before")
    @classmethod
    def _ints_as_text(cls, data: Any) -> Any:
        """An int sent where a plain string is expected becomes its decimal text (lossless)."""
        text = cls.text_fields
        # ``type(v) is int``, not isinstance: a bool is an int too, and stays refused.
        if isinstance(data, dict) and any(type(data.get(name)) is int for name in text):
            data = {k: str(v) if k in text and type(v) is int else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Self:
        """``needs_one_of`` and ``sum_fields``, for events being received.

        Neither applies to events read back (``READ_BACK``): one written before a rule existed
        must stay readable as written.
        """
        if (not self.needs_one_of and not self.sum_fields) or (
            info.context and info.context.get(READ_BACK_KEY)
        ):
            return self
        values = self.__dict__
        names = self.needs_one_of
        if names and all(values[name] is None for name in names):
            raise PydanticCustomError(
                "needs_one_of",
                "needs at least one of {fields}",
                {"fields": ", ".join(names)},
            )
        for total, parts in self.sum_fields:
            numbers = [values[part] for part in parts]
            if None in numbers:
                continue  # a total sent without all its parts is kept as sent
            expected = sum(numbers)
            sent = values[total]
            if sent is None:
                # Derived once while the (frozen) event is being built; a sum past the Avro
                # long range is left out rather than made up.
                if expected <= _MAX_LONG:
                    values[total] = expected
                    self.__pydantic_fields_set__.add(total)
            elif sent != expected:
                raise PydanticCustomError(
                    "sum_fields",
                    "{total} {sent} is not {parts} (= {expected})",
                    {
                        "total": total,
                        "sent": sent,
                        "parts": " + ".join(
                            f"{p} {n}" for p, n in zip(parts, numbers, strict=True)
                        ),
                        "expected": expected,
                        "numbers": {total: sent, **dict(zip(parts, numbers, strict=True))},
                    },
                )
        return self

    def kafka_key(self) -> str | None:
        """The record key: the first non-empty ``kafka_key_fields`` value.

        By default the request id, else the trace id, so a call's events stay together.
        """
        values = self.__dict__
        for name in self.kafka_key_fields:
            value = values[name]
            if value:
                return str(value)
        return None


class UserFeedback(FeedbackEvent):
    """What an end user said about a response: stars, thumbs, a comment, tags."""

    event_type: ClassVar[EventType] = "user_feedback"
    kafka_key_fields: ClassVar[tuple[str, ...]] = ("session_id",)
    needs_one_of: ClassVar[tuple[str, ...]] = ("rating", "thumbs", "comment")

    session_id: Annotated[str, Field(min_length=1)]
    rating: Annotated[float, Field(ge=0.0, le=5.0, allow_inf_nan=False)] | None = None
    thumbs: Literal["up", "down"] | None = None
    comment: Annotated[str, Field(max_length=1000)] | None = None
    tags: list[str] = Field(default_factory=list)


class PerformanceMetrics(FeedbackEvent):
    """Latency, tokens, cost and outcome of one model call."""

    event_type: ClassVar[EventType] = "performance_metrics"
    sum_fields: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("tokens_total", ("input_tokens", "output_tokens")),
    )

    model: Annotated[str, Field(min_length=1)]
    response_model: str | None = None
    provider: str | None = None
    operation: str | None = None
    latency_ms: NonNegFloat | None = None
    input_tokens: NonNegInt | None = None
    output_tokens: NonNegInt | None = None
    cost_usd: NonNegFloat | None = None
    success: bool = True
    error_type: str | None = None
    cache_hit: bool | None = None
    custom_metrics: dict[str, FiniteFloat] = Field(default_factory=dict)
    # v2
    cache_read_input_tokens: NonNegInt | None = None
    reasoning_output_tokens: NonNegInt | None = None
    # v4
    tokens_total: NonNegInt | None = None
    """Input plus output tokens of the call."""


class ModelResponse(FeedbackEvent):
    """Quality of one model response, scored by a human, a rule or an LLM judge."""

    event_type: ClassVar[EventType] = "model_response"

    model: str | None = None
    quality_score: Percent | None = None
    accuracy: UnitInterval | None = None
    relevance: UnitInterval | None = None
    coherence: UnitInterval | None = None
    completeness: UnitInterval | None = None
    safety: UnitInterval | None = None
    custom_scores: dict[str, FiniteFloat] = Field(default_factory=dict)
    evaluation_name: str | None = None
    explanation: str | None = None
    prompt_hash: str | None = None
    response_length: NonNegInt | None = None
    finish_reasons: list[str] = Field(default_factory=list)
    temperature: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    top_p: UnitInterval | None = None
    max_tokens: NonNegInt | None = None
    top_k: NonNegInt | None = None
    # v2
    score_label: str | None = None
    evaluator: str | None = None


class SystemHealth(FeedbackEvent):
    """A service's own report of its health."""

    event_type: ClassVar[EventType] = "system_health"
    kafka_key_fields: ClassVar[tuple[str, ...]] = ("service",)

    service: Annotated[str, Field(min_length=1)]
    status: Literal["healthy", "degraded", "unhealthy"]
    error_rate: UnitInterval | None = None
    availability: UnitInterval | None = None
    cpu_percent: Percent | None = None
    memory_mb: NonNegFloat | None = None
    memory_percent: Percent | None = None
    network_mbps: NonNegFloat | None = None
    active_requests: NonNegInt | None = None


class ExperimentResult(FeedbackEvent):
    """The outcome of one arm of an experiment (A/B test, bandit, parameter sweep)."""

    event_type: ClassVar[EventType] = "experiment_result"
    kafka_key_fields: ClassVar[tuple[str, ...]] = ("experiment_id",)

    experiment_id: Annotated[str, Field(min_length=1)]
    experiment_type: Literal["ab_test", "multi_armed_bandit", "parameter_tuning"]
    variant_id: Annotated[str, Field(min_length=1)]
    reward: FiniteFloat | None = None
    cost: NonNegFloat | None = None
    quality: FiniteFloat | None = None
    latency_ms: NonNegFloat | None = None
    user_satisfaction: FiniteFloat | None = None


EVENT_MODELS: dict[EventType, type[FeedbackEvent]] = {
    m.event_type: m
    for m in (UserFeedback, PerformanceMetrics, ModelResponse, SystemHealth, ExperimentResult)
}
EVENT_TYPES: tuple[EventType, ...] = tuple(EVENT_MODELS)


def event_to_json_dict(event: FeedbackEvent) -> dict[str, Any]:
    """A JSON-ready dict with ``event_type`` included (what ``tail`` prints)."""
    data = event.model_dump(mode="json")
    return {"event_type": event.event_type, **data}
