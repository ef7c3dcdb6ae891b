"""Assemble a running receiver from settings: registry client + sinks + pipeline + the OTLP/gRPC
and OTLP/HTTP servers (one pipeline, one guard behind both).

The sink chain is Kafka behind a ``FailoverSink`` (circuit breaker, in-flight budget and, when
``spool.enabled``, the disk spool). ``FeedbackApp`` is what ``otlp-feedback serve``/``dev`` run
and what tests start in-process; tests may pass their own ``registry``/``sink`` (e.g. the
in-memory doubles), which then replace the whole chain. One ``Telemetry`` is built here and
handed to every component at construction; they report into it and ``/metrics`` reads only it
(and, with ``telemetry.otlp`` set, ``SelfTelemetry`` sends it and the request spans over OTLP).
``reload`` applies the settings that can change while serving (``serve`` calls it on SIGHUP).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from otlp_feedback.config import Settings
from otlp_feedback.httpserve import BackgroundHttpServer
from otlp_feedback.observability.http import create_app as create_http_app
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.receiver import GrpcReceiver
from otlp_feedback.receiver.guard import RequestGuard
from otlp_feedback.receiver.http import HttpReceiver
from otlp_feedback.registry.client import ConfluentRegistry, SchemaRegistry
from otlp_feedback.sinks.base import Sink
from otlp_feedback.sinks.failover import FailoverSink
from otlp_feedback.sinks.kafka import KafkaSink
from otlp_feedback.sinks.spool import Spool

if TYPE_CHECKING:
    from otlp_feedback.observability.selftelemetry import SelfTelemetry

log = logging.getLogger(__name__)

# What can change while serving; the rest (sockets, producer, spool, schemas) is set up once
# and needs a restart. ``auth``, ``rate_limit`` and ``tokens`` (feedback token keys: rotation)
# make a new guard, given to both ports, which keeps the old one's token budgets. A
# receiver that can take some of its settings live names their key prefixes in
# ``reloadable_keys`` and applies them in ``reload(settings)``.
_GUARDED = ("auth", "rate_limit", "tokens")
_RELOADABLE = ("log_level", "redaction", *_GUARDED)


class FeedbackApp:
    """The whole service. ``start`` then ``shutdown`` (idempotent, safe before start)."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = Telemetry()
        # One guard behind both ports (same credentials, same rate-limit buckets), replaced
        # whole on a reload. ConfigError: a key file that cannot be used.
        self.guard = RequestGuard.from_settings(settings, self.telemetry)
        # The schema bootstrap retries with its own backoff (``Pipeline``), which shutdown
        # interrupts; the client's own retries (1.7 s per call on a refused connection) would
        # only hold ``start`` up, so there are none.
        self.registry = registry or ConfluentRegistry(
            {**settings.registry.client_config(), "max.retries": 0}
        )
        self.kafka: KafkaSink | None = None
        self.failover: FailoverSink | None = None
        if sink is None:
            self.kafka = KafkaSink(settings.kafka, settings.kafka.all_topics(), self.telemetry)
            spool = Spool(settings.spool) if settings.spool.enabled else None
            self.failover = FailoverSink(
                self.kafka, spool, settings.delivery, telemetry=self.telemetry
            )
            sink = self.failover
        self.sink = sink
        # Opt-in (telemetry.otlp): the receiver's own spans and metrics to a collector. The
        # OTel SDK is imported only then: a receiver without it does not pay for loading it.
        self.self_telemetry: SelfTelemetry | None = None
        if settings.telemetry.otlp.enabled:
            from otlp_feedback.observability.selftelemetry import SelfTelemetry

            self.self_telemetry = SelfTelemetry(settings.telemetry.otlp, self.telemetry)
        tracer = self.self_telemetry.tracer if self.self_telemetry is not None else None
        self.pipeline = Pipeline(
            settings,
            self.registry,
            sink,
            telemetry=self.telemetry,
            tracer=tracer,
            # The cache names the registry by ``registry.url``: only for the one built from it
            # (a registry handed in, a test's double, is another).
            id_cache=settings.schema_id_cache_file() if registry is None else None,
        )
        # Both ports take the same settings, pipeline, telemetry, TLS and guard.
        door = (
            settings.receiver,
            self.pipeline,
            settings.validation.max_rejection_messages,
            self.telemetry,
        )
        self.receiver = GrpcReceiver(*door, tls=settings.tls, guard=self.guard)
        self.otlp_http: HttpReceiver | None = None
        if settings.receiver.http.enabled:
            self.otlp_http = HttpReceiver(*door, tls=settings.tls, guard=self.guard)
        self.http: BackgroundHttpServer | None = None

    @property
    def port(self) -> int:
        if self.receiver.port is None:
            raise RuntimeError("not started")
        return self.receiver.port

    @property
    def http_port(self) -> int:
        """The OTLP/HTTP port. Raises ``RuntimeError`` before start or when it is disabled."""
        if self.otlp_http is None or self.otlp_http.port is None:
            raise RuntimeError("OTLP/HTTP is not serving")
        return self.otlp_http.port

    def start(self) -> None:
        """Open the ports, then open the spool, start Kafka and bind the schemas.

        Returns at once whatever Kafka or the registry is doing: topic creation and, if the
        registry does not answer, the schema binding go on in the background; until the
        schemas are bound requests are answered UNAVAILABLE/503 with a retry delay and
        ``/readyz`` says why (``Pipeline``). Raises ``SchemaError`` (a schema refused),
        ``OSError`` (a port taken), ``ConfigError``.
        """
        try:
            obs = self.settings.observability
            if obs.enabled:
                self._start_http(*obs.host_port)
            self.receiver.start()
            if self.otlp_http is not None:
                self.otlp_http.start()
            self.pipeline.start()
            if self.self_telemetry is not None:
                self.self_telemetry.start()
        except BaseException:
            if self.otlp_http is not None:
                self.otlp_http.shutdown(1.0)
            self.receiver.shutdown(1.0)  # also shuts the pipeline down; safe before start
            if self.http is not None:
                self.http.shutdown(1.0)
            if self.self_telemetry is not None:
                self.self_telemetry.shutdown(1.0)
            raise

    def _start_http(self, host: str, port: int) -> None:
        http = BackgroundHttpServer(
            create_http_app(self), host=host, port=port, name="otlp-feedback-http"
        )
        try:
            http.start()
        except OSError as exc:
            # Several receiver processes sharing the gRPC port (SO_REUSEPORT) on one host
            # cannot share this one: the first serves it; the others run without it.
            log.warning(
                "metrics/health endpoint %s:%d unavailable (%s); this process serves none",
                host,
                port,
                exc,
            )
            return
        self.http = http
        log.info("metrics and health on %s (/metrics /healthz /readyz)", http.url)

    def reload(self, new: Settings) -> list[str]:
        """Apply what ``new`` changes and can change live; log the rest as needing a restart.

        Returns the dotted keys applied. Key names are logged, never values (secrets). Call from
        one thread at a time (``serve`` calls it from its main loop); requests in flight finish
        with the rules they started with.
        """
        changed = _changed_keys(self.settings, new)
        receiver_reload: Callable[[Settings], Any] | None = getattr(self.receiver, "reload", None)
        receiver_keys = tuple(getattr(self.receiver, "reloadable_keys", ()))
        if receiver_reload is None:
            receiver_keys = ()
        ours = [k for k in changed if _under(k, _RELOADABLE)]
        theirs = [k for k in changed if k not in ours and _under(k, receiver_keys)]
        restart = [k for k in changed if k not in ours and k not in theirs]
        if restart:
            log.warning("config reload: needs a restart, not applied: %s", ", ".join(restart))
        applied = [*ours, *theirs]
        effective = _take(self.settings, new, applied) if applied else self.settings
        # What may refuse (ConfigError) goes first, before anything has changed.
        guard = (
            RequestGuard.from_settings(effective, self.telemetry, self.guard.ledger)
            if any(_under(k, _GUARDED) for k in ours)
            else None
        )
        if theirs and receiver_reload is not None:
            receiver_reload(effective)
        if guard is not None:
            self.guard = guard
            self.receiver.set_guard(guard)
            if self.otlp_http is not None:
                self.otlp_http.set_guard(guard)
        if any(_under(k, ("redaction",)) for k in ours):
            self.pipeline.set_redaction(effective.redaction)
        if "log_level" in ours:
            logging.getLogger().setLevel(effective.log_level)
        self.settings = effective
        if applied:
            log.info("config reloaded: applied %s", ", ".join(applied))
        elif not restart:
            log.info("config reloaded: nothing changed")
        return applied

    def shutdown(self, grace: float = 10.0) -> None:
        """Health NOT_SERVING, finish in-flight requests, flush Kafka, keep the rest spooled.

        The HTTP port closes and drains first, then the gRPC port, whose shutdown flushes the
        pipeline: no request on either port is still running when the pipeline shuts down.
        """
        if self.otlp_http is not None:
            self.otlp_http.shutdown(grace)
        self.receiver.shutdown(grace)  # also shuts the pipeline and its sinks down
        if self.self_telemetry is not None:
            # After the pipeline: its last requests' spans and counts go out too. Bounded, so
            # a collector that is down does not hold the exit up.
            self.self_telemetry.shutdown(min(grace, 5.0))
        if self.http is not None:
            self.http.shutdown(2.0)

    def __enter__(self) -> FeedbackApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _leaves(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every setting (sections flattened; lists and maps are values)."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out.update(_leaves(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = value
    return out


def _changed_keys(old: Settings, new: Settings) -> list[str]:
    before, after = _leaves(old), _leaves(new)
    missing = object()  # an optional section may be a model on one side and None on the other
    return [k for k in {**before, **after} if before.get(k, missing) != after.get(k, missing)]


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _take(old: Any, new: Any, keys: list[str]) -> Any:
    """``old`` with the values at the dotted ``keys`` taken from ``new`` (models are frozen)."""
    heads: dict[str, list[str]] = {}
    for key in keys:
        head, _, rest = key.partition(".")
        heads.setdefault(head, []).append(rest)
    update = {}
    for head, rests in heads.items():
        old_value, new_value = getattr(old, head), getattr(new, head)
        if isinstance(old_value, BaseModel) and isinstance(new_value, BaseModel) and all(rests):
            update[head] = _take(old_value, new_value, rests)
        else:
            update[head] = new_value
    return old.model_copy(update=update)


def settle_process_heap() -> None:
    """Exempt what start-up built from the cyclic garbage collector (``gc.freeze``).

    For the process entry points (``serve``, ``dev``, the benchmarks' receiver), once the app
    has started; not done by ``FeedbackApp.start``, since a library user's heap is theirs.
    Schemas, native plans, compiled patterns and libphonenumber's metadata live as long as the
    process, and without this every full collection walks them again: measured end to end it
    cost 7-17% of throughput and 50 ms of p99 latency (benchmarks/RESULTS.md, Session 4).
    """
    gc.collect()  # what is garbage now must not become permanent
    gc.freeze()
