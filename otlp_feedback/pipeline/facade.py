"""The ``Pipeline``: composes the stages, and is what every receiver calls.

    start-up ──SchemaBinding, RedactionRules──► (held; rules re-read once per request)

    export(signal, payload) ─┐
    export_events(feedback) ─┴► ingest ──Batch──► admission ──Batch──► process ──Processed──►
                                 deliver ──ExportOutcome──► telemetry (once per request)
                                                             rejection log (``log_rejections``)

``export`` is the one entry point for OTLP requests as sent (gRPC today, OTLP/HTTP next):
``signal`` says which request message the bytes are. ``export_events`` is the entry for typed
events that arrive already mapped (the events API, dead-letter replay); they enter the same
stages after mapping. ``export_logs``/``export_traces`` take a decoded request (in-process
callers: tests, benchmarks). Each returns an ``ExportOutcome`` once every accepted event (and
every dead letter) is confirmed by the sink, or raises: ``InvalidRequest`` (undecodable),
``RequestTooLarge`` or the admission's refusal (nothing validated), or a ``RetryableError`` so
the client retries the whole request.

Lifecycle: ``start`` once: starts the sink, then binds schemas and compiles the native plan.
It returns at once if the registry answers nothing (``RegistryUnavailable``): a background
thread retries the binding with jittered backoff until it answers (``started`` turns True) or
``shutdown`` interrupts it; meanwhile requests raise ``RegistryUnavailable`` (retryable:
UNAVAILABLE/503 with a retry delay) and ``not_ready`` says why; unless the schema id cache
(``id_cache``, ``schema_cache``) holds the ids of the last good start and matches this one:
then the pipeline serves with those at once, and the background binding confirms them. A
registry that answers and refuses a schema (``SchemaError``) is a configuration error:
``start`` raises it. ``when_ready`` registers a callback for the moment the schemas are bound
(the gRPC receiver turns its health service SERVING then), so nothing polls ``started``.
``shutdown`` is idempotent and safe before ``start``. Requests before ``start`` or after
``shutdown`` raise ``SinkUnavailable`` (retryable).

Redaction reload (``set_redaction``): the redactor and the native plan compiled from it are one
immutable ``RedactionRules``, swapped by one assignment and read once per request, so a request
never pairs one rule set's C gate with another's redactor.

Thread-safe after ``start``: any number of request threads may call the entry points.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_feedback.backoff import retry_until
from otlp_feedback.config import RedactionConfig, Settings
from otlp_feedback.encoding.outbound import EventEncoder
from otlp_feedback.errors import OtlpFeedbackError, RegistryUnavailable, SinkUnavailable
from otlp_feedback.events import EventType
from otlp_feedback.logthrottle import REJECTIONS_LOGGER
from otlp_feedback.mapping import RawFeedback
from otlp_feedback.mapping.convention import FEEDBACK_EVENT_NAMES
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.observability.tracing import RequestOrigin, RequestTracer, StageClock
from otlp_feedback.pipeline.admission import Admission, admit
from otlp_feedback.pipeline.deliver import Delivery
from otlp_feedback.pipeline.ingest import (
    Batch,
    Signal,
    events_batch,
    ingest_payload,
    logs_batch,
    traces_batch,
)
from otlp_feedback.pipeline.outcome import ExportOutcome, PipelineStats
from otlp_feedback.pipeline.process import Processor
from otlp_feedback.pipeline.startup import (
    RedactionRules,
    SchemaBinding,
    bind_schemas,
    cached_binding,
    compile_rules,
    max_value_bytes,
    topics_of,
)
from otlp_feedback.registry.client import SchemaRegistry
from otlp_feedback.sinks.base import Sink
from otlp_feedback.validation import Rejection, Validator
from otlp_feedback.validation.redaction import Redactor

log = logging.getLogger(__name__)

# The schema bootstrap's retries while the registry is down, and the retry delay a refused
# client is told (about one bootstrap attempt: it may well be serving by then).
_BOOTSTRAP_INITIAL_BACKOFF_S = 0.5
_BOOTSTRAP_MAX_BACKOFF_S = 10.0
_UNBOUND_RETRY_AFTER_S = 2.0


class Pipeline:
    """The processing pipeline of one receiver process. Thread-safe after ``start``."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        sink: Sink,
        clock_ns: Callable[[], int] = time.time_ns,
        telemetry: Telemetry | None = None,
        tracer: RequestTracer | None = None,
        id_cache: Path | None = None,
    ) -> None:
        self._settings = settings
        self._id_cache = id_cache  # the schema id cache (``schema_cache``); None: none
        self._tracer = tracer  # None: no spans, and no clock read for them
        self._telemetry = telemetry or Telemetry()
        self._registry = registry
        self._clock_ns = clock_ns
        self._validator = Validator(settings.validation)
        # Read once per request (``self._rules``), replaced by one assignment on reload.
        self._rules = compile_rules(settings, settings.redaction, None)
        self._binding: SchemaBinding | None = None
        self._processor: Processor | None = None  # set by ``start``: it needs the encoder
        self._delivery = Delivery(sink, settings, self._telemetry)
        self._max_per_request = settings.validation.max_feedback_per_request
        self._rejection_level = logging.getLevelName(settings.validation.log_rejections)
        self._unknown_names = UnknownNames()
        self._shut_down = False
        self._stop = threading.Event()  # set by shutdown: interrupts the schema bootstrap
        self._bootstrap: threading.Thread | None = None
        self._bootstrap_error: str | None = None  # why schemas are not bound yet
        # ``when_ready`` callbacks not called yet; the lock orders a registration against
        # the binding, so each callback runs exactly once, whichever comes first.
        self._ready_lock = threading.Lock()
        self._on_ready: list[Callable[[], None]] = []
        self.started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sink, then bind schema ids and compile the native plan, in the background
        if the registry does not answer (see the module docstring). Raises ``SchemaError``."""
        self._delivery.start()
        try:
            self._bind()
        except RegistryUnavailable as exc:
            self._bootstrap_error = f"schema registry unavailable: {exc}"
            if self._serve_cached_ids():
                log.warning(
                    "%s; serving with the schema ids of the last good start (%s), confirming "
                    "them in the background",
                    exc,
                    self._id_cache,
                )
            else:
                log.warning("%s; serving UNAVAILABLE and retrying in the background", exc)
            self._bootstrap = threading.Thread(
                target=self._bind_in_background, name="schema-bootstrap", daemon=True
            )
            self._bootstrap.start()

    def _serve_cached_ids(self) -> bool:
        if self._id_cache is None:
            return False
        binding, why = cached_binding(self._settings, self._id_cache)
        if binding is None:
            log.info("not using the schema id cache: %s", why)
            return False
        self._publish(binding)
        return True

    def _bind(self) -> None:
        binding = bind_schemas(self._settings, self._registry, self._id_cache)
        if self._binding is not None:  # served from the cache until now
            before, after = self._binding.encoder.schema_ids(), binding.encoder.schema_ids()
            if before != after:
                log.warning(
                    "the registry's schema ids %s differ from the cached ones %s: using the "
                    "registry's from now on",
                    after,
                    before,
                )
        self._publish(binding)

    def _publish(self, binding: SchemaBinding) -> None:
        self._binding = binding
        self._rules = compile_rules(
            self._settings, self._rules.redactor.config, binding, self._telemetry
        )
        # Published last: a request sees either no processor (UNAVAILABLE) or a complete one.
        self._processor = Processor(
            self._validator, binding.encoder, max_value_bytes(self._settings.kafka)
        )
        self._bootstrap_error = None
        with self._ready_lock:
            self.started = True
            callbacks, self._on_ready = self._on_ready, []
        log.info("pipeline started; schema ids %s", binding.encoder.schema_ids())
        for callback in callbacks:
            callback()

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the schemas are bound: at once (in this thread) if they are,
        else from the thread that binds them (``start``'s, or the schema bootstrap's). Never
        called if the pipeline shuts down first. ``callback`` must be quick and not raise."""
        with self._ready_lock:
            if not self.started:
                self._on_ready.append(callback)
                return
        callback()

    def _bind_in_background(self) -> None:
        def attempt() -> bool:
            try:
                self._bind()
            except OtlpFeedbackError as exc:
                # A refusal (SchemaError) may be a registry still loading, or one an operator
                # fixes without restarting us: keep trying, and say why in /readyz and the log.
                kind = "unavailable" if isinstance(exc, RegistryUnavailable) else "refused"
                self._bootstrap_error = f"schema registry {kind}: {exc}"
                log.warning("binding schemas failed (%s), retrying", exc)
                return False
            return True

        retry_until(
            attempt,
            self._stop,
            _BOOTSTRAP_INITIAL_BACKOFF_S,
            _BOOTSTRAP_MAX_BACKOFF_S,
        )

    @property
    def not_ready(self) -> str | None:
        """Why requests are refused for now (schemas not bound yet); None once bound."""
        if self.started:
            return None
        return self._bootstrap_error or "schema ids are not resolved"

    def force_flush(self, timeout: float) -> bool:
        return self._delivery.force_flush(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking requests and flush the sink. Idempotent; safe before start."""
        if self._shut_down:
            return
        self._shut_down = True
        self._stop.set()
        if self._bootstrap is not None:
            # A registry call in flight ends by its own timeout; the thread is a daemon and
            # publishes nothing a stopped pipeline reads, so it is not waited for long.
            self._bootstrap.join(min(timeout, 0.5))
        self._delivery.shutdown(timeout)

    # -- what the pipeline holds -------------------------------------------------------------

    @property
    def stats(self) -> PipelineStats:
        """The counters since start (a copy, read from the telemetry)."""
        return PipelineStats.of(self._telemetry)

    @property
    def topics(self) -> dict[EventType, str]:
        return topics_of(self._settings.kafka)

    @property
    def encoder(self) -> EventEncoder | None:
        """The event encoder bound at start (None before)."""
        return self._binding.encoder if self._binding is not None else None

    @property
    def id_cache(self) -> Path | None:
        """The schema id cache this pipeline writes and, with the registry down, reads."""
        return self._id_cache

    @property
    def tracing(self) -> bool:
        """Whether requests are traced: a transport then passes each one's ``origin``."""
        return self._tracer is not None

    @property
    def max_per_request(self) -> int:
        """The per-request limit of feedback records (``validation.max_feedback_per_request``)."""
        return self._max_per_request

    @property
    def rules(self) -> RedactionRules:
        """The rule set the next request will use."""
        return self._rules

    def set_redaction(self, config: RedactionConfig) -> None:
        """Swap the redaction rules (config reload). Requests already running keep the old
        pair whole: both are built first, then published by one assignment."""
        self._rules = compile_rules(self._settings, config, self._binding, self._telemetry)

    # -- the entry points --------------------------------------------------------------------

    def export(
        self,
        signal: Signal,
        payload: bytes,
        client_id: str | None = None,
        admission: Admission | None = None,
        origin: RequestOrigin | None = None,
    ) -> ExportOutcome:
        """One OTLP request as sent: what every transport calls.

        ``client_id`` (the authenticated sender) goes on every event record as the Kafka
        header ``client_id``; ``admission`` (the caller's, e.g. its rate limit) is asked once,
        with the request's count of feedback records, before any is validated; ``origin``
        (the transport and the request's ``traceparent``) is for the request's spans, when
        ``tracing``. Raises ``InvalidRequest`` if ``payload`` is not a ``signal`` request.
        """
        if self._tracer is not None:
            return self._tracer.run(
                f"export {signal}",
                origin,
                lambda clock: self._export(signal, payload, client_id, admission, clock),
            )
        return self._export(signal, payload, client_id, admission, None)

    def _export(
        self,
        signal: Signal,
        payload: bytes,
        client_id: str | None,
        admission: Admission | None,
        clock: StageClock | None,
    ) -> ExportOutcome:
        rules = self._rules  # the one read: this request's plan and redactor
        running = self._processor is not None and not self._shut_down
        # A scoped caller's records are each held to its scope by process, so none takes C.
        scoped = admission is not None and admission.scope is not None
        native = rules.native if running and not scoped else None
        batch = ingest_payload(signal, payload, native, self._clock_ns(), client_id)
        return self._run(batch, rules.redactor, client_id, admission, clock)

    def export_events(
        self,
        feedback: Sequence[RawFeedback],
        client_id: str | None = None,
        admission: Admission | None = None,
        origin: RequestOrigin | None = None,
    ) -> ExportOutcome:
        """Typed events that arrive already mapped (the events API builds them from JSON;
        dead-letter replay from letters): admission, process and deliver as for ``export``.
        The records are the pipeline's from here on (``client_id`` is written into them)."""

        def run(clock: StageClock | None) -> ExportOutcome:
            batch = events_batch(feedback, self._clock_ns())
            return self._run(batch, self._rules.redactor, client_id, admission, clock)

        if self._tracer is not None and origin is not None:  # replay is no request: no span
            return self._tracer.run("export events", origin, run)
        return run(None)

    def export_logs(
        self,
        request: ExportLogsServiceRequest,
        client_id: str | None = None,
        admission: Admission | None = None,
    ) -> ExportOutcome:
        """``export`` for a logs request already decoded (the Python path)."""
        batch = logs_batch(request, self._clock_ns())
        return self._run(batch, self._rules.redactor, client_id, admission, None)

    def export_traces(
        self,
        request: ExportTraceServiceRequest,
        client_id: str | None = None,
        admission: Admission | None = None,
    ) -> ExportOutcome:
        """``export`` for a traces request already decoded."""
        batch = traces_batch(request, self._clock_ns())
        return self._run(batch, self._rules.redactor, client_id, admission, None)

    def _run(
        self,
        batch: Batch,
        redactor: Redactor,
        client_id: str | None,
        admission: Admission | None,
        clock: StageClock | None,
    ) -> ExportOutcome:
        """admission -> process -> deliver, then the request is counted (once). ``clock``
        (tracing only) notes when ingest, process ("encode") and deliver ended."""
        if clock is not None:
            clock.mark()
            clock.batch = batch
            clock.client_id = client_id
        processor = self._processor
        if processor is None and self._bootstrap is not None and not self._shut_down:
            raise RegistryUnavailable(
                f"not serving yet: {self.not_ready}", retry_after=_UNBOUND_RETRY_AFTER_S
            )
        if processor is None or self._shut_down:
            # Not started yet (the ports open before ``start``: for milliseconds) or stopped.
            state = "shut down" if self._shut_down else "not started yet"
            raise SinkUnavailable(f"pipeline is {state}", retry_after=1.0)
        if batch.unknown_names:
            self._unknown_names.warn(batch.unknown_names, redactor)
        admit(batch, self._max_per_request, admission)
        scope = admission.scope if admission is not None else None
        processed = processor.process(batch, redactor, client_id, scope)
        if clock is not None:
            clock.mark()
        outcome = self._delivery.deliver(batch, processed, redactor)
        if clock is not None:
            clock.mark()
        self._telemetry.count_request(outcome)
        if outcome.rejections:
            log_rejections(outcome.rejections, self._rejection_level)
        return outcome


class UnknownNames:
    """Warns once per ``feedback.*`` event name that announces no type, with the nearest
    known name: such a record is ignored, not rejected, so neither the sender (partial_success
    counts only rejections) nor the rejection log would say a word about a misspelling.

    The name is the sender's text, so it is shown as a rejection reason quotes a value
    (``Redactor.quote``): scrubbed by the request's redactor (an e-mail address or a phone
    number in it is masked) and cut to ``SHOWN_CHARS``. What is remembered is that shown form:
    names that would print the same line are one warning, and memory stays bounded.
    """

    MAX_NAMES = 1000  # names warned about and remembered; beyond, new ones are not warned
    SHOWN_CHARS = 80  # of a name in the log line (the known names are under 30)

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def warn(self, names: Sequence[str], redactor: Redactor) -> None:
        for name in dict.fromkeys(names):
            if len(self._warned) >= self.MAX_NAMES:
                return
            shown = redactor.quote(name, self.SHOWN_CHARS)
            if shown in self._warned:
                continue
            self._warned.add(shown)  # a race may warn twice: harmless
            log.warning(
                "ignored records named %s: no event type has that name%s (known: %s)",
                shown,
                did_you_mean(name),
                ", ".join(FEEDBACK_EVENT_NAMES),
            )


def did_you_mean(name: str) -> str:
    """``"; did you mean 'feedback.user_feedback'?"`` for the nearest known name, if any (only
    ever a known name: nothing of ``name`` itself is shown)."""
    close = difflib.get_close_matches(name, FEEDBACK_EVENT_NAMES, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def log_rejections(rejections: Sequence[Rejection], level: int) -> None:
    """One line per rejection to ``otlp_feedback.rejections``, whose ``Throttle`` passes each
    (event type, category, reason) at most once a minute with a count of the rest: the sender
    may never read partial_success (the OTel SDKs drop it), so the operator must see why."""
    if not REJECTIONS_LOGGER.isEnabledFor(level):
        return
    for r in rejections:
        REJECTIONS_LOGGER.log(
            level, "rejected a %s record (%s): %s", r.event_type, r.category, r.reason
        )
