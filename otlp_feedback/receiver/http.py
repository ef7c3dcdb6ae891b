"""The OTLP/HTTP receiver: ``POST /v1/logs`` and ``POST /v1/traces`` on ``receiver.http.endpoint``,
and on the same server the events API, ``POST /api/v1/events`` (typed events as plain JSON:
``events_api.py`` holds its wire format, ``mapping/events_api.py`` its mapping; it enters the
pipeline at ``Pipeline.export_events`` with the same guard, caps, gzip and status table, and
answers in JSON, a wrong content type included; only a 405 is plain text there too).

What the OTLP spec ("OTLP/HTTP") asks of a server, and what this one does:

- bodies in ``application/x-protobuf`` or ``application/json`` (OTLP/JSON, ``otlp_json.py``),
  ``Content-Encoding: gzip`` or identity; a JSON request is turned into protobuf bytes and then
  takes exactly the path a protobuf one takes, so protobuf logs reach the native fast path;
- the response is in the request's content type: 200 with the ``Export*ServiceResponse``
  (``partial_success`` built by ``service.export_response``, the same as over gRPC); any error
  is the ``google.rpc.Status`` of ``status.http_status_for`` (the ONE error -> status table,
  gRPC and HTTP columns side by side), with ``Retry-After`` on 429 and 503;
- 404 (other paths), 405 (other methods) and 415 for a content type we cannot answer in are
  ``text/plain``: until the content type is known there is no encoding to write a Status in.

CORS (``receiver.http.cors``, ``cors.py``): off by default; with allowed origins, a preflight
``OPTIONS`` is answered on the event loop (nothing is authenticated or exported) and every
answer to an allowed origin carries its CORS headers.

The request size cap is gRPC's (``receiver.max_recv_msg_size_mib``), applied twice: to the body
as sent (a ``Content-Length`` over it is refused before reading; a body streaming past it is
cut off) and to the body after gzip, which is inflated with ``max_length`` so a gzip bomb costs
at most the cap before it is refused 413.

Authentication, rate limits and the audit log are the gRPC port's: ``FeedbackApp`` gives both
ports one ``RequestGuard``, which takes the request's header pairs and peer as gRPC hands them
over, so the same ``Authorization: Bearer`` rules, buckets and audit lines apply to both
transports; a SIGHUP reload of ``auth``/``rate_limit`` gives both the same new guard
(``set_guard``). The caller is the pipeline's admission, as over gRPC. TLS uses ``tls.*`` and
the same certificate reloader.

Threads: uvicorn's event loop (one thread, ``BackgroundHttpServer``) parses HTTP and reads bodies;
everything that costs CPU or blocks (authentication, gunzip, JSON, the pipeline and its wait for
Kafka) runs on a pool of ``receiver.http.max_workers`` threads (``otlp_http_*``), as the gRPC
port runs its handlers on ``otlp_*`` threads. At most ``receiver.http.max_concurrent_requests``
requests are in progress; more are answered 429 with Retry-After.

Why raw ASGI and not Starlette's routing: the receiver needs neither (two fixed paths; a body
streamed against our own cap rather than ``Request.body()``), and writing the 404/405/415
answers by hand keeps them exactly as OTLP clients expect. Not for speed: measured with a
no-op export, a request costs ~60 us here (mostly the hop to the worker thread) against
~80 us through Starlette's ``Router``/``Request``/``Response``, which is well under 1% of a
512-record export. uvicorn is the server the registry and ``/metrics`` already run on.
Lifecycle as ``GrpcReceiver``'s: ``start`` returns once the port is bound;
``shutdown`` is idempotent, safe before ``start``, stops accepting and lets requests in progress
finish within ``grace``; it does not shut the pipeline down (``FeedbackApp`` stops this port
before the gRPC one, whose shutdown flushes the pipeline).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.message import Message

from otlp_feedback import tokens
from otlp_feedback.config import CorsConfig, ReceiverConfig, TlsConfig
from otlp_feedback.errors import (
    BackpressureError,
    InvalidRequest,
    OtlpFeedbackError,
    RequestTooLarge,
    UnsupportedMediaType,
)
from otlp_feedback.httpserve import BackgroundHttpServer
from otlp_feedback.mapping import RawFeedback
from otlp_feedback.mapping.events_api import Refused, location_of, map_event
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.observability.tracing import RequestOrigin
from otlp_feedback.pipeline import ExportOutcome, Pipeline, Signal, check_count
from otlp_feedback.receiver import events_api, mint_api, otlp_json
from otlp_feedback.receiver.auth import MINT
from otlp_feedback.receiver.cors import CorsPolicy
from otlp_feedback.receiver.guard import Caller, RequestGuard
from otlp_feedback.receiver.service import export_response, run_export
from otlp_feedback.receiver.status import http_status_for
from otlp_feedback.receiver.tls import CertificateReloader, server_ssl_context

log = logging.getLogger(__name__)

ROUTES: dict[str, Signal] = {"/v1/logs": "logs", "/v1/traces": "traces"}
EVENTS_PATH = events_api.EVENTS_PATH
MINT_PATH = mint_api.MINT_PATH
PATHS = (*ROUTES, EVENTS_PATH, MINT_PATH)
_JSON_DOORS = {EVENTS_PATH: "the events API", MINT_PATH: "minting"}
_METRIC_LABELS = {**ROUTES, EVENTS_PATH: "events", MINT_PATH: "feedback_tokens"}
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
Encoding = Literal["protobuf", "json"]
_MEDIA_TYPES: dict[str, Encoding] = {PROTOBUF: "protobuf", JSON: "json"}
_CONTENT_TYPES: dict[Encoding, bytes] = {"protobuf": PROTOBUF.encode(), "json": JSON.encode()}

Headers = tuple[tuple[str, str], ...]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def export(
    pipeline: Pipeline, signal: Signal, payload: bytes, caller: Caller, headers: Headers
) -> ExportOutcome:
    """The one call from this transport into the pipeline: protobuf bytes, as gRPC hands them."""
    return pipeline.export(signal, payload, caller.client_id, caller, origin_of(pipeline, headers))


def origin_of(pipeline: Pipeline, headers: Headers) -> RequestOrigin | None:
    """The request's transport and trace headers, for its span (when the pipeline traces)."""
    return RequestOrigin.of("http", headers) if pipeline.tracing else None


def peer_of(client: tuple[str, int] | list[Any] | None) -> str:
    """ASGI's ``scope["client"]`` as gRPC reports a peer: ``ipv4:1.2.3.4:5678``,
    ``ipv6:[::1]:5678``; ``unknown`` when the server does not know it."""
    if not client:
        return "unknown"
    host, port = client[0], client[1]
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


def inflate(body: bytes, limit: int) -> bytes:
    """Gunzip ``body`` (one or more gzip members), refusing to produce more than ``limit`` bytes.

    Raises ``RequestTooLarge`` past the limit (having inflated at most ``limit + 1`` bytes) and
    ``InvalidRequest`` for a body that is not gzip or is cut short.
    """
    out: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        try:
            chunk = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            raise InvalidRequest(f"the gzip body cannot be decompressed: {exc}") from exc
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(
                f"the request inflates past the {limit}-byte limit (receiver.max_recv_msg_size_mib)"
            )
        out.append(chunk)
        if not inflater.eof:
            raise InvalidRequest("the gzip body is truncated")
        rest = inflater.unused_data
        if not rest:
            return b"".join(out)


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP response, and the gRPC code name it is counted under."""

    status: int
    content_type: bytes
    body: bytes
    code: str
    retry_after_s: int | None = None


_TEXT = b"text/plain; charset=utf-8"


def _text(status: int, message: str) -> Answer:
    return Answer(status, _TEXT, message.encode(), "")


class ExportHandler:
    """The blocking half of a request, run on a worker thread: authenticate, decode, export,
    answer. Thread-safe; never raises (every failure is an ``Answer``)."""

    def __init__(
        self,
        pipeline: Pipeline,
        max_body_bytes: int,
        max_rejection_messages: int,
        telemetry: Telemetry,
        guard: RequestGuard,
    ) -> None:
        self._pipeline = pipeline
        self.max_body_bytes = max_body_bytes
        self._max_messages = max_rejection_messages
        self._telemetry = telemetry
        self.guard = guard  # replaced whole on a reload; each request reads it once

    def handle(
        self,
        path: str,
        encoding: Encoding,
        gzipped: bool,
        headers: Headers,
        peer: str,
        body: bytes,
    ) -> Answer:
        if path == EVENTS_PATH:
            return self._events(gzipped, headers, peer, body)
        if path == MINT_PATH:
            return self._mint(gzipped, headers, peer, body)
        signal = ROUTES[path]

        def decode_and_export(sent: bytes) -> ExportOutcome:
            raw = inflate(sent, self.max_body_bytes) if gzipped else sent
            payload = otlp_json.to_protobuf(signal, raw) if encoding == "json" else raw
            return export(self._pipeline, signal, payload, caller, headers)

        try:
            # Refusals are audited by the guard; the application log stays quiet, as for gRPC.
            caller = self.guard.check(headers, peer, path)
            outcome = run_export(decode_and_export, body)  # a bug becomes InternalError (500)
        except OtlpFeedbackError as exc:
            return error_answer(exc, encoding)
        self._telemetry.feedback_per_request.observe(outcome.accepted + outcome.rejected)
        response = export_response(signal, outcome, self._max_messages)
        return Answer(200, _CONTENT_TYPES[encoding], _encode(response, encoding), "OK")

    def _events(self, gzipped: bool, headers: Headers, peer: str, body: bytes) -> Answer:
        """``POST /api/v1/events``: the OTLP path's steps, with typed JSON events mapped here
        (each on its own: a bad one never costs the others) instead of decoded by the
        pipeline."""

        def map_and_export(sent: bytes) -> tuple[list[RawFeedback | Refused], ExportOutcome]:
            raw = inflate(sent, self.max_body_bytes) if gzipped else sent
            items = events_api.parse(raw)
            check_count(len(items), self._pipeline.max_per_request)  # before any mapping
            mapped = [map_event(item, location_of(i)) for i, item in enumerate(items)]
            records = [m for m in mapped if isinstance(m, RawFeedback)]
            origin = origin_of(self._pipeline, headers)
            return mapped, self._pipeline.export_events(records, caller.client_id, caller, origin)

        try:
            caller = self.guard.check(headers, peer, EVENTS_PATH)
            mapped, outcome = run_export(map_and_export, body)
        except OtlpFeedbackError as exc:
            return error_answer(exc, "json")
        self._telemetry.feedback_per_request.observe(len(mapped))
        return Answer(
            200,
            _CONTENT_TYPES["json"],
            events_api.answer(mapped, outcome, self._pipeline.rules.redactor.redact_text),
            "OK",
        )

    def _mint(self, gzipped: bool, headers: Headers, peer: str, body: bytes) -> Answer:
        """``POST /v1/feedback-tokens`` (``mint_api``): a caller allowed to mint gets a token
        acting for its own client id, signed with the keys of the guard in force."""
        guard = self.guard  # read once: its keys and its authenticator are one config
        if not guard.tokens.enabled:
            return _text(404, "404 feedback tokens are off: set tokens.signing_key_id")
        try:
            caller = guard.check(headers, peer, MINT_PATH, MINT)
            raw = inflate(body, self.max_body_bytes) if gzipped else body
            args = mint_api.parse(raw)
            assert caller.client_id is not None  # minting needs an authenticated caller
            try:
                token = tokens.mint(guard.tokens, client_id=caller.client_id, **args)
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from exc
        except OtlpFeedbackError as exc:
            return error_answer(exc, "json")
        claims = tokens.TokenVerifier(guard.tokens).verify(token)
        guard.audit.minted(
            client=caller.client_id,
            peer=peer,
            method=MINT_PATH,
            token=claims.fingerprint,
            expires_at=claims.expires_at,
            max_events=claims.max_events,
        )
        body_out = mint_api.answer(token, claims.expires_at, claims.max_events)
        return Answer(200, _CONTENT_TYPES["json"], body_out, "OK")


def error_answer(exc: OtlpFeedbackError, encoding: Encoding) -> Answer:
    """``exc`` as OTLP/HTTP answers it: the status-table row, a Status body in ``encoding``."""
    status = http_status_for(exc)
    return Answer(
        status.status,
        _CONTENT_TYPES[encoding],
        _encode(status.body, encoding),
        status.grpc_code.name,
        status.retry_after_s,
    )


def _encode(message: Message, encoding: Encoding) -> bytes:
    return otlp_json.from_message(message) if encoding == "json" else message.SerializeToString()


class OtlpHttpApp:
    """The ASGI application (raw ASGI: see the module docstring for why)."""

    def __init__(
        self,
        handler: ExportHandler,
        executor: ThreadPoolExecutor,
        max_concurrent_requests: int,
        telemetry: Telemetry,
        cors: CorsPolicy | None = None,
    ) -> None:
        self._handler = handler
        self._cors = cors or CorsPolicy(CorsConfig())
        self._executor = executor
        self._max_concurrent = max_concurrent_requests
        self._in_progress = 0  # touched on the event loop thread only
        self._telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        cors = self._cors
        origin = _header(scope["headers"], b"origin") if cors.enabled else None
        extra = cors.headers(origin)
        if path not in PATHS:
            await _send(send, _text(404, f"404 page not found: {path}; this port serves "
                                         f"POST {', POST '.join(PATHS)}"), extra)  # fmt: skip
            return
        if scope["method"] == "OPTIONS" and cors.enabled:
            # A preflight: answered here, on the event loop, before any guard or pipeline.
            allowed = cors.preflight_headers(origin)
            if allowed is None:
                await _send(send, _text(403, f"403 origin {origin!r} is not allowed (CORS)"))
            else:
                await _send(send, Answer(204, b"", b"", "OK"), allowed)
            return
        if scope["method"] != "POST":
            text = _text(405, "405 method not allowed, supported: [POST]")
            await _send(send, text, [*extra, (b"allow", b"POST")])
            return
        started = time.perf_counter()
        answer = await self._export(scope, receive, path)
        await _send(send, answer, extra)
        signal = _METRIC_LABELS[path]
        self._telemetry.export_seconds.labels(signal, "http").observe(time.perf_counter() - started)
        self._telemetry.export_responses.labels(signal, answer.code, "http").inc()

    async def _export(self, scope: Scope, receive: Receive, path: str) -> Answer:
        metadata = _metadata(scope["headers"])
        headers = dict(metadata)  # a repeated header: the last one (authorization aside)
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        encoding = _MEDIA_TYPES.get(media)
        if path in _JSON_DOORS and encoding != "json":
            # The events API and minting speak JSON only, so their clients read a JSON Status.
            return error_answer(
                UnsupportedMediaType(
                    f"unsupported media type {media!r}, {_JSON_DOORS[path]} takes {JSON}"
                ),
                "json",
            )
        if encoding is None:
            # Refused by the table's row like any error, but in plain text: there is no
            # encoding the client is known to read a Status in.
            refused = http_status_for(
                UnsupportedMediaType(
                    f"unsupported media type {media!r}, supported: [{PROTOBUF}, {JSON}]"
                )
            )
            text = f"{refused.status} {refused.body.message}"
            return Answer(refused.status, _TEXT, text.encode(), refused.grpc_code.name)
        if self._in_progress >= self._max_concurrent:
            busy = BackpressureError(
                f"{self._max_concurrent} requests in progress "
                "(receiver.http.max_concurrent_requests); retry later",
                retry_after=1.0,
            )
            return error_answer(busy, encoding)
        self._in_progress += 1
        try:
            gzipped = _gzipped(headers.get("content-encoding", ""))
            body = await _read_body(receive, headers, self._handler.max_body_bytes)
            peer = peer_of(scope.get("client"))
            loop = asyncio.get_running_loop()
            # ``handle`` never raises: the excepts below are the body's, read on this loop.
            return await loop.run_in_executor(
                self._executor, self._handler.handle, path, encoding, gzipped, metadata, peer, body
            )
        except OtlpFeedbackError as exc:
            return error_answer(exc, encoding)
        except _Disconnected:
            return Answer(499, b"", b"", "CANCELLED")  # nobody to answer; counted as gRPC does
        finally:
            self._in_progress -= 1


class _Disconnected(Exception):
    """The client went away before the body was complete."""


def _metadata(raw: list[tuple[bytes, bytes]]) -> Headers:
    """ASGI headers (names already lower-case) as ``str`` pairs: every entry kept, so the
    authenticator sees a repeated ``authorization`` and refuses it as it does over gRPC."""
    return tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)


def _gzipped(content_encoding: str) -> bool:
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return False
    if coding == "gzip":
        return True
    raise UnsupportedMediaType(
        f"Content-Encoding {coding!r} is not supported: send gzip or identity"
    )


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(
            f"the request is {declared} bytes, over the {limit}-byte limit "
            "(receiver.max_recv_msg_size_mib)"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(
                f"the request is over the {limit}-byte limit (receiver.max_recv_msg_size_mib)"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(raw: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first ``name`` header of an ASGI scope (names are lower-case there)."""
    for key, value in raw:
        if key == name:
            return value.decode("latin-1")
    return None


async def _send(send: Send, answer: Answer, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    if answer.status == 499:
        return
    # RFC 9110 8.6: no Content-Length on a 204 (the preflight answer).
    headers = [] if answer.status == 204 else [(b"content-length", str(len(answer.body)).encode())]
    if answer.content_type:
        headers.insert(0, (b"content-type", answer.content_type))
    if answer.retry_after_s is not None:
        headers.append((b"retry-after", str(answer.retry_after_s).encode()))
    headers.extend(extra)
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class HttpReceiver:
    """The OTLP/HTTP port. ``port`` is the bound port (useful with an endpoint ending ``:0``)."""

    def __init__(
        self,
        config: ReceiverConfig,
        pipeline: Pipeline,
        max_rejection_messages: int = 5,
        telemetry: Telemetry | None = None,
        *,
        tls: TlsConfig | None = None,
        guard: RequestGuard | None = None,
    ) -> None:
        self._config = config
        self._tls = tls or TlsConfig()
        self._telemetry = telemetry or Telemetry()
        self._handler = ExportHandler(
            pipeline,
            config.max_recv_msg_bytes,
            max_rejection_messages,
            self._telemetry,
            guard or RequestGuard.open(self._telemetry),
        )
        self._executor: ThreadPoolExecutor | None = None
        self._server: BackgroundHttpServer | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.certificates: CertificateReloader | None = None
        self.port: int | None = None
        self.url: str | None = None

    def app(self, executor: ThreadPoolExecutor) -> OtlpHttpApp:
        """The ASGI application over ``executor`` (what ``start`` serves; tests call it too)."""
        return OtlpHttpApp(
            self._handler,
            executor,
            self._config.http.max_concurrent_requests,
            self._telemetry,
            CorsPolicy(self._config.http.cors),
        )

    def start(self) -> None:
        """Bind and serve. Raises ``OSError`` if the endpoint cannot be bound, ``ConfigError``
        if the TLS files cannot be used."""
        cfg = self._config.http
        context = None
        if self._tls.enabled:
            context, self.certificates = server_ssl_context(self._tls)
        host, port = cfg.host_port
        executor = ThreadPoolExecutor(cfg.max_workers, thread_name_prefix="otlp_http")
        server = BackgroundHttpServer(
            self.app(executor),
            host=host,
            port=port,
            name="otlp-http",
            ssl=context,
            reuse_port=self._config.reuse_port,
        )
        try:
            server.start()
        except BaseException:
            executor.shutdown(wait=False)
            raise
        with self._lock:
            self._executor, self._server = executor, server
        self.url = server.url
        self.port = server.port
        log.info(
            "OTLP/HTTP receiver listening on %s (port %d, %s)",
            cfg.endpoint,
            self.port,
            "TLS" if context is not None else "plaintext",
        )

    @property
    def guard(self) -> RequestGuard:
        """The guard in force (``FeedbackApp`` gives both ports the same one)."""
        return self._handler.guard

    def set_guard(self, guard: RequestGuard) -> None:
        """Use ``guard`` for the requests that start from now on (a config reload)."""
        self._handler.guard = guard

    @property
    def serving(self) -> bool:
        return self._server is not None and not self._stopped

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting; requests in progress get ``grace`` seconds. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            server, executor = self._server, self._executor
        if server is not None:
            server.shutdown(grace)
        if executor is not None:
            # A request the server stopped waiting for still holds a worker until the pipeline
            # answers it (bounded by the delivery timeout); the pipeline must outlive it.
            executor.shutdown(wait=True)
        if server is not None:
            log.info("OTLP/HTTP receiver stopped")

    def __enter__(self) -> HttpReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
