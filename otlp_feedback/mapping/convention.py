"""The feedback convention: which event names are feedback and which attribute feeds which field.

These tables are the public contract documented in the README ("The feedback convention");
change them only together with the README and the Avro schemas: a new field needs a new schema
version (README, "Schema evolution").
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from otlp_feedback.events import EventType

# Event names (log record ``event_name`` / ``event.name`` attribute, or span event name).
FEEDBACK_EVENT_NAMES: Final = MappingProxyType(
    {
        "feedback.user_feedback": "user_feedback",
        "feedback.performance_metrics": "performance_metrics",
        "feedback.model_response": "model_response",
        "feedback.system_health": "system_health",
        "feedback.experiment_result": "experiment_result",
    }
)
# Names under this prefix announce feedback; one that matches no type above is a mistake the
# sender should hear about (a misspelling), not a record that is simply not feedback.
FEEDBACK_PREFIX: Final = "feedback."
GENAI_EVALUATION_EVENT: Final = "gen_ai.evaluation.result"
GENAI_OPERATION_KEY: Final = "gen_ai.operation.name"
EVENT_NAME_ATTRIBUTE: Final = "event.name"
# The resource attribute naming the sender's service: a field (``service``) and, as sent, part
# of a record's content id (``records.deterministic_event_id``).
SERVICE_KEY: Final = "service.name"

# Keys read for every event type. Several keys may feed one field: the first one present wins.
ENVELOPE_KEYS: Final = MappingProxyType(
    {
        "event_id": ("event.id",),
        "session_id": ("session.id",),
        "user_id": ("user.id",),
        "request_id": ("gen_ai.response.id", "feedback.request_id"),
        "service": (SERVICE_KEY,),
        "environment": ("deployment.environment.name", "deployment.environment"),
    }
)

FIELD_KEYS: Final[MappingProxyType[EventType, MappingProxyType[str, tuple[str, ...]]]] = (
    MappingProxyType(
        {
            "user_feedback": MappingProxyType(
                {
                    "rating": ("feedback.rating",),
                    "thumbs": ("feedback.thumbs",),
                    "comment": ("feedback.comment",),
                    "tags": ("feedback.tags",),
                }
            ),
            "performance_metrics": MappingProxyType(
                {
                    "model": ("gen_ai.request.model", "gen_ai.response.model"),
                    "response_model": ("gen_ai.response.model",),
                    "provider": ("gen_ai.provider.name", "gen_ai.system"),
                    "operation": ("gen_ai.operation.name",),
                    "latency_ms": ("feedback.latency_ms",),
                    "input_tokens": ("gen_ai.usage.input_tokens",),
                    "output_tokens": ("gen_ai.usage.output_tokens",),
                    "cost_usd": ("feedback.cost_usd",),
                    "success": ("feedback.success",),
                    "error_type": ("error.type",),
                    "cache_hit": ("feedback.cache_hit",),
                    "cache_read_input_tokens": ("gen_ai.usage.cache_read.input_tokens",),
                    "reasoning_output_tokens": ("gen_ai.usage.reasoning.output_tokens",),
                    # Not an OTel semantic-conventions key (they define input and output
                    # only), but instrumentations send it; absent, the model derives the total
                    # from input + output (``PerformanceMetrics.sum_fields``). Schema v4.
                    "tokens_total": ("gen_ai.usage.total_tokens",),
                }
            ),
            "model_response": MappingProxyType(
                {
                    "model": ("gen_ai.request.model", "gen_ai.response.model"),
                    "quality_score": ("feedback.quality_score",),
                    "accuracy": ("feedback.quality.accuracy",),
                    "relevance": ("feedback.quality.relevance",),
                    "coherence": ("feedback.quality.coherence",),
                    "completeness": ("feedback.quality.completeness",),
                    "safety": ("feedback.quality.safety",),
                    "prompt_hash": ("feedback.prompt_hash",),
                    "response_length": ("feedback.response_length",),
                    "finish_reasons": ("gen_ai.response.finish_reasons",),
                    "temperature": ("gen_ai.request.temperature",),
                    "top_p": ("gen_ai.request.top_p",),
                    "max_tokens": ("gen_ai.request.max_tokens",),
                    "top_k": ("gen_ai.request.top_k",),
                    # Also what gen_ai.evaluation.result carries, so it no longer lands in
                    # ``attributes`` (schema v2).
                    "score_label": ("gen_ai.evaluation.score.label",),
                    "evaluator": ("gen_ai.evaluation.evaluator.name", "feedback.evaluator"),
                }
            ),
            "system_health": MappingProxyType(
                {
                    "status": ("feedback.health.status",),
                    "error_rate": ("feedback.health.error_rate",),
                    "availability": ("feedback.health.availability",),
                    "cpu_percent": ("feedback.health.cpu_percent",),
                    "memory_mb": ("feedback.health.memory_mb",),
                    "memory_percent": ("feedback.health.memory_percent",),
                    "network_mbps": ("feedback.health.network_mbps",),
                    "active_requests": ("feedback.health.active_requests",),
                }
            ),
            "experiment_result": MappingProxyType(
                {
                    "experiment_id": ("feedback.experiment.id",),
                    "experiment_type": ("feedback.experiment.type",),
                    "variant_id": ("feedback.experiment.variant_id",),
                    "reward": ("feedback.experiment.reward",),
                    "cost": ("feedback.experiment.cost",),
                    "quality": ("feedback.experiment.quality",),
                    "latency_ms": ("feedback.experiment.latency_ms",),
                    "user_satisfaction": ("feedback.experiment.user_satisfaction",),
                }
            ),
        }
    )
)

# A string log body is this field's value when no attribute sets it (the field's key wins).
BODY_FIELDS: Final[MappingProxyType[EventType, str]] = MappingProxyType(
    {"user_feedback": "comment"}
)

# Attribute-key prefixes collected into a map field: prefix -> (event type, field).
PREFIX_MAPS: Final = MappingProxyType(
    {
        "performance_metrics": ("feedback.metric.", "custom_metrics"),
        "model_response": ("feedback.quality.", "custom_scores"),
    }
)

# gen_ai.evaluation.result
EVAL_NAME: Final = "gen_ai.evaluation.name"
EVAL_SCORE: Final = "gen_ai.evaluation.score.value"
EVAL_LABEL: Final = "gen_ai.evaluation.score.label"
EVAL_EXPLANATION: Final = "gen_ai.evaluation.explanation"
USER_FEEDBACK_EVALUATION: Final = "user_feedback"
THUMBS_LABELS: Final = MappingProxyType({"thumbs_up": "up", "thumbs_down": "down"})
QUALITY_DIMENSIONS: Final = frozenset(
    {"accuracy", "relevance", "coherence", "completeness", "safety", "quality_score"}
)

# Which keys every type reads, so the rest can go to the event's string ``attributes`` map.
CONSUMED_KEYS: Final[MappingProxyType[EventType, frozenset[str]]] = MappingProxyType(
    {
        event_type: frozenset(
            key for keys in (*ENVELOPE_KEYS.values(), *fields.values()) for key in keys
        )
        | {EVENT_NAME_ATTRIBUTE, EVAL_NAME, EVAL_SCORE, EVAL_EXPLANATION}
        for event_type, fields in FIELD_KEYS.items()
    }
)


def is_unknown_feedback_name(event_name: str) -> bool:
    """A ``feedback.*`` name that announces no event type (``feedback.user_feedbak``)."""
    return event_name.startswith(FEEDBACK_PREFIX) and event_name not in FEEDBACK_EVENT_NAMES


def event_type_for(event_name: str | None) -> EventType | None:
    """The event type an event name announces, or None if it is not feedback.

    ``gen_ai.evaluation.result`` answers ``model_response``; the mapper refines it to
    ``user_feedback`` when ``gen_ai.evaluation.name`` is ``user_feedback``.
    """
    if not event_name:
        return None
    if event_name == GENAI_EVALUATION_EVENT:
        return "model_response"
    return FEEDBACK_EVENT_NAMES.get(event_name)  # type: ignore[return-value]
