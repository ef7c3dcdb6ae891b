"""Start-up: bind each event type to its schema's registry id, and compile the rules a request
reads (the redactor and the native plan built from it).

Called by ``Pipeline.start`` (``bind_schemas``, then ``compile_rules``) and on a redaction
reload (``compile_rules`` again). Hands the later stages a ``SchemaBinding`` (the encoder they
encode with) and a ``RedactionRules`` (read once per request, replaced whole on reload).

``bind_schemas`` resolves a registry id for each event type's newest local schema, registering
the local history (oldest to newest) and setting the subject's compatibility mode first when
``registry.auto_register`` is on, or only looking the newest one up when it is off. Raises
``SchemaError``/``RegistryUnavailable``. Nothing here runs per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from otlp_feedback.config import KafkaConfig, RedactionConfig, Settings
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.outbound import EventEncoder
from otlp_feedback.events import EVENT_TYPES, EventType
from otlp_feedback.native import NativeLogs, build_plan
from otlp_feedback.registry.client import SchemaRegistry
from otlp_feedback.validation.redaction import Redactor

# Room for the record's key, headers and batch framing under kafka.message_max_bytes.
_RECORD_OVERHEAD_BYTES = 1024


def subject_for(topic: str) -> str:
    """TopicNameStrategy: the value schema of ``topic`` lives under ``<topic>-value``."""
    return f"{topic}-value"


def topics_of(kafka: KafkaConfig) -> dict[EventType, str]:
    """The topic each event type is produced to."""
    return {t: kafka.topic_for(t) for t in EVENT_TYPES}


def max_value_bytes(kafka: KafkaConfig) -> int:
    """The largest encoded event Kafka is sure to take (``kafka.message_max_bytes`` less room
    for the key, headers and batch framing); a larger one is rejected as ``too_large``."""
    return kafka.message_max_bytes - _RECORD_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class SchemaBinding:
    """What start-up hands the stages: each type's serializer (newest local schema and its
    registry id), its topic, and the encoder built from both. Immutable."""

    serializers: dict[EventType, AvroEventSerializer]
    topics: dict[EventType, str]
    encoder: EventEncoder


@dataclass(frozen=True, slots=True)
class RedactionRules:
    """One rule set: the redactor and the native plan whose gate was compiled from it (None
    when the fast path is off or not built). Replaced whole, never changed."""

    redactor: Redactor
    native: NativeLogs | None = None


def bind_schemas(settings: Settings, registry: SchemaRegistry) -> SchemaBinding:
    """Resolve a registry id for each type's newest local schema. Raises ``SchemaError``
    (a schema is missing or refused) or ``RegistryUnavailable``."""
    cfg = settings.registry
    schemas = load_schemas(cfg.schemas_dir)
    topics = topics_of(settings.kafka)
    serializers: dict[EventType, AvroEventSerializer] = {}
    for event_type, topic in topics.items():
        subject = subject_for(topic)
        latest = schemas.latest(event_type)
        if cfg.auto_register:
            registry.set_compatibility(subject, cfg.compatibility)
            for schema in schemas.versions[event_type]:  # history first, oldest to newest
                schema_id = registry.register(subject, schema.text)
        else:
            schema_id = registry.lookup(subject, latest.text)
        serializers[event_type] = AvroEventSerializer(latest, schema_id)
    return SchemaBinding(serializers, topics, EventEncoder(serializers, topics))


def redactor_for(settings: Settings, config: RedactionConfig) -> Redactor:
    return Redactor(config, settings.validation.max_attribute_value_len)


def compile_rules(
    settings: Settings, config: RedactionConfig, binding: SchemaBinding | None
) -> RedactionRules:
    """A redactor for ``config`` and, once schemas are bound (``binding``), the native plan
    built from that very redactor, so the plan's gate and the redactor always agree."""
    redactor = redactor_for(settings, config)
    if not settings.receiver.native_fast_path or binding is None:
        return RedactionRules(redactor)
    native = build_plan(
        binding.serializers, binding.topics, settings.validation, redactor,
        max_value_bytes(settings.kafka),
    )  # fmt: skip
    return RedactionRules(redactor, native)
