"""Stage 5 of the pipeline: deliver encoded records and confirm them (Kafka, or in memory)."""

from otlp_feedback.sinks.base import Sink
from otlp_feedback.sinks.memory import InMemorySink

__all__ = ["InMemorySink", "Sink"]
