"""Stage 4 of the pipeline: typed events -> Confluent-framed Avro bytes."""

from otlp_feedback.encoding.avro import AvroEventSerializer, SerializationContext
from otlp_feedback.encoding.schemas import LocalSchema, SchemaSet, load_schemas

__all__ = [
    "AvroEventSerializer",
    "LocalSchema",
    "SchemaSet",
    "SerializationContext",
    "load_schemas",
]
