"""The receiver's own spans: one per request, a child per stage, joined to the sender's trace.

    export logs   (SERVER; parent: the request's ``traceparent``, if any)
    ├── ingest    records found, ignored, native/deferred
    ├── encode    validate, redact, encode: accepted, rejected, redacted
    └── deliver   Kafka (or spool) confirmation, dead letters

The pipeline does not build spans while it works: it notes the time each stage ended
(``StageClock.mark``, a clock read) and ``RequestTracer`` builds the spans afterwards with
those start and end times. So a request costs nothing when tracing is off (the pipeline holds
no tracer), a span is never left open by a stage that raised, and whether to record is decided
knowing the request: one with no feedback record and no ``traceparent`` is not traced, so that
the receiver's own spans, coming back through a collector that forwards to it, do not make
more spans for ever (a loop the config refuses for its own port: ``Settings``).

Span attributes are counts, the signal, the transport and the client id; never a record's
content, a rejection's reason or an error's message (either may quote what the sender sent:
a JSON parse error names the value it could not read). A request that failed has the stage it
failed in marked ERROR with ``error.type``, the error's class.

``traceparent`` and ``tracestate`` are read by the W3C propagator; a malformed one is ignored
(a new trace starts), as the W3C spec asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.util.types import AttributeValue

INGEST, ENCODE, DELIVER = "ingest", "encode", "deliver"
STAGES = (INGEST, ENCODE, DELIVER)
_PROPAGATOR = TraceContextTextMapPropagator()
_ATTR = "otlp_feedback."


@dataclass(frozen=True, slots=True)
class RequestOrigin:
    """Where a request came from, for its span: the transport and the W3C trace headers."""

    transport: str
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def of(cls, transport: str, headers: Iterable[tuple[str, str]]) -> RequestOrigin:
        """From header pairs with lower-case names (gRPC metadata, the HTTP receiver's)."""
        traceparent = tracestate = None
        for key, value in headers:
            if key == "traceparent":
                traceparent = value
            elif key == "tracestate":
                tracestate = value
        return cls(transport, traceparent, tracestate)

    def context(self) -> Context | None:
        """The sender's span as a parent context; None without a ``traceparent``."""
        if self.traceparent is None:
            return None
        carrier = {"traceparent": self.traceparent}
        if self.tracestate is not None:
            carrier["tracestate"] = self.tracestate
        return _PROPAGATOR.extract(carrier)


class BatchCounts(Protocol):
    """What the ingest span reads of a batch (``pipeline.ingest.Batch``)."""

    ignored: int
    native: int
    deferred: int

    def __len__(self) -> int: ...


class OutcomeCounts(Protocol):
    """What the encode and deliver spans read of an outcome (``pipeline.ExportOutcome``)."""

    @property
    def accepted(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def dead_lettered(self) -> int: ...
    @property
    def redacted_by_type(self) -> dict[str, int]: ...


@dataclass(slots=True)
class StageClock:
    """The times one request's stages ended (ns since the epoch), noted by the pipeline."""

    start_ns: int
    ends: list[int] = field(default_factory=list)  # in ``STAGES`` order
    batch: BatchCounts | None = None
    client_id: str | None = None

    def mark(self) -> None:
        """The current stage ended now (the next in ``STAGES``)."""
        self.ends.append(time.time_ns())


Outcome = TypeVar("Outcome", bound=OutcomeCounts)


class RequestTracer:
    """Builds each request's spans on ``tracer`` (the receiver's own ``TracerProvider``'s)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def run(
        self,
        name: str,
        origin: RequestOrigin | None,
        work: Callable[[StageClock], Outcome],
    ) -> Outcome:
        """Run ``work`` (one request), then record its spans; ``work``'s result or error is
        passed on unchanged."""
        clock = StageClock(time.time_ns())
        try:
            outcome = work(clock)
        except BaseException as exc:
            self._record(name, origin, clock, None, exc, time.time_ns())
            raise
        self._record(name, origin, clock, outcome, None, time.time_ns())
        return outcome

    def _record(
        self,
        name: str,
        origin: RequestOrigin | None,
        clock: StageClock,
        outcome: OutcomeCounts | None,
        error: BaseException | None,
        end_ns: int,
    ) -> None:
        parent = origin.context() if origin is not None else None
        batch = clock.batch
        if error is None and parent is None and (batch is None or len(batch) == 0):
            return  # nothing of ours in it: see the module docstring (loops)
        root = self._tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            start_time=clock.start_ns,
            attributes=_request_attributes(origin, clock, outcome),
        )
        if not root.is_recording():  # sampled out
            return
        in_root = trace.set_span_in_context(root)
        starts = [clock.start_ns, *clock.ends]
        for index, stage in enumerate(STAGES):
            ended = index < len(clock.ends)
            if not ended and error is None:
                break  # stages never noted (a caller with no stages): the request span alone
            span = self._tracer.start_span(
                stage,
                context=in_root,
                start_time=starts[index],
                attributes=_stage_attributes(stage, batch, outcome) if ended else None,
            )
            if not ended:  # the stage that raised: the last one
                _fail(span, error)
                span.end(end_ns)
                break
            span.end(clock.ends[index])
        if error is not None:
            _fail(root, error)
        root.end(end_ns)


def _fail(span: trace.Span, error: BaseException | None) -> None:
    if error is not None:
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR))  # no message: see the module docstring


def _request_attributes(
    origin: RequestOrigin | None, clock: StageClock, outcome: OutcomeCounts | None
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    if origin is not None:
        attributes[_ATTR + "transport"] = origin.transport
    if clock.client_id is not None:
        attributes[_ATTR + "client_id"] = clock.client_id
    if clock.batch is not None:
        attributes[_ATTR + "records"] = len(clock.batch)
    if outcome is not None:
        attributes[_ATTR + "accepted"] = outcome.accepted
        attributes[_ATTR + "rejected"] = outcome.rejected
    return attributes


def _stage_attributes(
    stage: str, batch: BatchCounts | None, outcome: OutcomeCounts | None
) -> dict[str, AttributeValue]:
    counts: Sequence[tuple[str, int]] = ()
    if stage == INGEST and batch is not None:
        counts = (
            ("records", len(batch)),
            ("ignored", batch.ignored),
            ("native", batch.native),
            ("deferred", batch.deferred),
        )
    elif stage == ENCODE and outcome is not None:
        counts = (
            ("accepted", outcome.accepted),
            ("rejected", outcome.rejected),
            ("redacted", sum(outcome.redacted_by_type.values())),
        )
    elif stage == DELIVER and outcome is not None:
        counts = (("delivered", outcome.accepted), ("dead_lettered", outcome.dead_lettered))
    return {_ATTR + key: value for key, value in counts}
