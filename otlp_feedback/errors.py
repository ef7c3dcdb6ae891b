"""The error hierarchy. Every failure the pipeline raises is one of these.

::

    OtlpFeedbackError
    ├── ConfigError                      bad settings; raised at start-up, names the key
    ├── RetryableError                   try the same thing again later; carries retry_after
    │   ├── DeliveryTimeout              Kafka did not confirm every event within the deadline
    │   ├── BackpressureError            an in-flight budget is full
    │   │   ├── SpoolFull                the disk spool is at its cap (or disabled)
    │   │   └── RateLimited              the client sent more events/s than its rate limit
    │   ├── SinkUnavailable              the broker cannot be reached / producer is rebuilding
    │   └── RegistryUnavailable          the schema registry did not answer
    └── PermanentError                   retrying the same input will fail the same way
        ├── InvalidRequest               the OTLP request itself cannot be used
        │   └── UnsupportedMediaType     OTLP/HTTP: a content type or encoding we do not speak
        ├── RequestTooLarge              over the configured size
        ├── SchemaError                  the registry refused a schema
        ├── EncodingError                an event could not be encoded (a bug or a schema drift)
        ├── DeliveryFailed               Kafka refused a record for good (e.g. too large)
        ├── InternalError                a bug in this package (an unexpected exception)
        ├── Unauthenticated              missing, malformed, unknown or expired credentials
        ├── PermissionDenied             valid credentials that lack the required scope
        └── UnreadableRecord             a record read back from Kafka is not a typed event
            ├── CorruptFrame             not Confluent-framed Avro: bad magic byte, too short,
            │                            or a body the writer schema cannot decode
            └── UnknownSchemaId          the frame names a schema id the registry does not have

``receiver/status.py`` is the one place that turns these into gRPC status codes and HTTP
statuses (one table, a column for each transport). Third-party
exceptions are wrapped at the boundary with ``raise ... from exc``. ``UnreadableRecord`` and its
subclasses are raised by ``consumer`` (the read side), never by the receiver.
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


class RateLimited(BackpressureError):
    """The client's token bucket holds fewer events than the request carries; ``retry_after``
    is the time until it holds enough."""


class SinkUnavailable(RetryableError):
    """The sink cannot take records right now (broker down, producer being rebuilt)."""


class RegistryUnavailable(RetryableError):
    """The schema registry could not be reached."""


class PermanentError(OtlpFeedbackError):
    """A failure that retrying the same input cannot fix."""


class InvalidRequest(PermanentError):
    """The OTLP request cannot be decoded or used at all."""


class UnsupportedMediaType(InvalidRequest):
    """OTLP/HTTP only: a ``Content-Type`` or ``Content-Encoding`` the receiver does not speak
    (HTTP 415; INVALID_ARGUMENT in the gRPC column, which never raises it)."""


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


class Unauthenticated(PermanentError):
    """The request carries no usable credentials (missing, malformed, unknown key, bad or
    expired token). The message says which, and never repeats the credential."""


class PermissionDenied(PermanentError):
    """The credentials are valid but do not grant writing feedback (the scope is missing)."""


class UnreadableRecord(PermanentError):
    """A record on a feedback topic cannot be read as a typed event.

    Raised as such when the frame decodes but is not an event of the topic's type (the writer
    schema cannot be projected onto the reader's, or the record fails the model's validation).
    ``topic``, ``partition`` and ``offset`` locate the record when it came from Kafka.
    """

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class CorruptFrame(UnreadableRecord):
    """The bytes are not Confluent-framed Avro: wrong magic byte, shorter than the 5-byte
    header, or a body the writer schema cannot decode (truncated, garbage, trailing bytes)."""


class UnknownSchemaId(UnreadableRecord):
    """The frame names a schema id the registry does not know (or that is not a usable Avro
    schema). A registry that cannot be reached is ``RegistryUnavailable`` instead."""
