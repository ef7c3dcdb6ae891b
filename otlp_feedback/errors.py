"""The error hierarchy. Every failure the pipeline raises is one of these.

::

    OtlpFeedbackError
    ├── ConfigError                      bad settings; raised at start-up, names the key
    ├── RetryableError                   try the same thing again later; carries retry_after
    │   ├── DeliveryTimeout              Kafka did not confirm every event within the deadline
    │   ├── BackpressureError            an in-flight budget is full
    │   │   └── SpoolFull                the disk spool is at its cap (or disabled)
    │   ├── SinkUnavailable              the broker cannot be reached / producer is rebuilding
    │   └── RegistryUnavailable          the schema registry did not answer
    └── PermanentError                   retrying the same input will fail the same way
        ├── InvalidRequest               the OTLP request itself cannot be used
        ├── RequestTooLarge              over the configured size
        ├── SchemaError                  the registry refused a schema
        ├── EncodingError                an event could not be encoded (a bug or a schema drift)
        ├── DeliveryFailed               Kafka refused a record for good (e.g. too large)
        └── InternalError                a bug in this package (an unexpected exception)

``receiver/status.py`` is the one place that turns these into gRPC status codes. Third-party
exceptions are wrapped at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class OtlpFeedbackError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(OtlpFeedbackError):
    """The configuration is invalid; the message names the offending key."""


class RetryableError(OtlpFeedbackError):
    """A transient failure: the client should retry, after ``retry_after`` seconds if set."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryTimeout(RetryableError):
    """Kafka did not confirm every accepted event before the delivery deadline."""


class BackpressureError(RetryableError):
    """A bounded budget (in-flight events, spool) is full; the request was refused whole."""


class SpoolFull(BackpressureError):
    """The disk spool reached its size cap (or is disabled) while Kafka is unavailable."""


class SinkUnavailable(RetryableError):
    """The sink cannot take records right now (broker down, producer being rebuilt)."""


class RegistryUnavailable(RetryableError):
    """The schema registry could not be reached."""


class PermanentError(OtlpFeedbackError):
    """A failure that retrying the same input cannot fix."""


class InvalidRequest(PermanentError):
    """The OTLP request cannot be decoded or used at all."""


class RequestTooLarge(PermanentError):
    """The request exceeds a configured size limit."""


class SchemaError(PermanentError):
    """The schema registry refused a schema or a schema file is invalid."""


class EncodingError(PermanentError):
    """An event could not be encoded to Avro."""


class DeliveryFailed(PermanentError):
    """Kafka refused records permanently; ``failed`` maps each event id to the reason."""

    def __init__(self, message: str, *, failed: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.failed = failed or {}


class InternalError(PermanentError):
    """An unexpected exception inside the pipeline (a bug); wraps it for the status mapping."""
