"""Start-up: bind each event type to its schema's registry id, and compile the rules a request
reads (the redactor and the native plan built from it).

Called by ``Pipeline.start`` (``bind_schemas``, then ``compile_rules``) and on a redaction
reload (``compile_rules`` again). Hands the later stages a ``SchemaBinding`` (the encoder they
encode with) and a ``RedactionRules`` (read once per request, replaced whole on reload).

``bind_schemas`` resolves a registry id for each event type's newest local schema, registering
the local history (oldest to newest) and setting the subject's compatibility mode first when
``registry.auto_register`` is on, or only looking the newest one up when it is off, and writes
the ids to the schema id cache when given one. Raises ``SchemaError``/``RegistryUnavailable``.
``cached_binding`` is the same binding from that cache, when the registry does not answer and
the cache matches this start (``schema_cache``). Nothing here runs per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import otlp_feedback.pipeline.schema_cache as schema_cache
from otlp_feedback.config import KafkaConfig, RedactionConfig, Settings, without_userinfo
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.encoding.outbound import EventEncoder
from otlp_feedback.encoding.schemas import LocalSchema
from otlp_feedback.events import EVENT_TYPES, EventType
from otlp_feedback.native import NativeLogs, build_plan
from otlp_feedback.observability.metrics import Telemetry
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


def bind_schemas(
    settings: Settings, registry: SchemaRegistry, id_cache: Path | None = None
) -> SchemaBinding:
    """Resolve a registry id for each type's newest local schema, then write them to
    ``id_cache`` (if given). Raises ``SchemaError`` (a schema is missing or refused) or
    ``RegistryUnavailable``."""
    cfg = settings.registry
    schemas = load_schemas(cfg.schemas_dir)
    topics = topics_of(settings.kafka)
    ids: dict[EventType, int] = {}
    for event_type, topic in topics.items():
        subject = subject_for(topic)
        if cfg.auto_register:
            registry.set_compatibility(subject, cfg.compatibility)
            for schema in schemas.versions[event_type]:  # history first, oldest to newest
                ids[event_type] = registry.register(subject, schema.text)
        else:
            ids[event_type] = registry.lookup(subject, schemas.latest(event_type).text)
    latest = {t: schemas.latest(t) for t in topics}
    if id_cache is not None:
        subjects = {t: subject_for(topic) for t, topic in topics.items()}
        schema_cache.write(id_cache, _registry_key(cfg.url), subjects, latest, ids)
    return _binding(latest, topics, ids)


def cached_binding(settings: Settings, id_cache: Path) -> tuple[SchemaBinding | None, str]:
    """The binding of the last good start, read from ``id_cache``, if it matches this start
    exactly (``schema_cache.read``); else None and why."""
    schemas = load_schemas(settings.registry.schemas_dir)
    topics = topics_of(settings.kafka)
    subjects = {t: subject_for(topic) for t, topic in topics.items()}
    latest = {t: schemas.latest(t) for t in topics}
    ids, why = schema_cache.read(id_cache, _registry_key(settings.registry.url), subjects, latest)
    return (_binding(latest, topics, ids) if ids is not None else None), why


def _binding(
    latest: dict[EventType, LocalSchema], topics: dict[EventType, str], ids: dict[EventType, int]
) -> SchemaBinding:
    serializers = {t: AvroEventSerializer(latest[t], ids[t]) for t in topics}
    return SchemaBinding(serializers, topics, EventEncoder(serializers, topics))


def _registry_key(url: str) -> str:
    """The registry's URL without its user info: the cache names the registry, not the
    credentials, which it must not hold."""
    return without_userinfo(url)


def redactor_for(settings: Settings, config: RedactionConfig) -> Redactor:
    return Redactor(config, settings.validation.max_attribute_value_len)


def compile_rules(
    settings: Settings,
    config: RedactionConfig,
    binding: SchemaBinding | None,
    telemetry: Telemetry | None = None,
) -> RedactionRules:
    """A redactor for ``config`` and, once schemas are bound (``binding``), the native plan
    built from that very redactor, so the plan's gate and the redactor always agree. The plan
    reports the types it leaves to Python to ``telemetry``."""
    redactor = redactor_for(settings, config)
    if not settings.receiver.native_fast_path or binding is None:
        return RedactionRules(redactor)
    native = build_plan(
        binding.serializers, binding.topics, settings.validation, redactor,
        max_value_bytes(settings.kafka), telemetry=telemetry,
    )  # fmt: skip
    return RedactionRules(redactor, native)
