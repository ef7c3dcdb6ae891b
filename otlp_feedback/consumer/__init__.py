"""The read side: the feedback topics as typed events, for downstream applications and ``tail``.

::

    from otlp_feedback.config import load_config
    from otlp_feedback.consumer import FeedbackConsumer

    with FeedbackConsumer(load_config(), group_id="quality-dashboard") as consumer:
        for item in consumer:              # ConsumedEvent(event, topic, partition, offset, ...)
            handle(item.event)             # a UserFeedback, PerformanceMetrics, ...
        # asking for the next item marks this one processed (reader.py: the commit contract)

- ``decoder.py``: ``EventDecoder``, Confluent-framed Avro bytes -> typed event, with the writer
  schema fetched by id from the registry and projected onto the reader's version. No Kafka.
- ``reader.py``: ``FeedbackConsumer``, the Kafka consumer around it: topic selection, the
  commit-after-processing contract, and ``on_error="raise" | "skip"``.
"""

from otlp_feedback.consumer.decoder import EventDecoder, frame_schema_id
from otlp_feedback.consumer.reader import ConsumedEvent, FeedbackConsumer, OnError

__all__ = ["ConsumedEvent", "EventDecoder", "FeedbackConsumer", "OnError", "frame_schema_id"]
