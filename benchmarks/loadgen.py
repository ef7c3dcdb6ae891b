"""Load generator for OTLP logs Export: over gRPC (the default) or OTLP/HTTP (``--transport``).

Builds a few realistic ``ExportLogsServiceRequest``s of feedback log records (all five event
types, with the attributes real senders put on them), serialises them to bytes once, then runs
``--procs`` processes with ``--concurrency`` threads each, every thread keeping one blocking
Export call in flight over a raw bytes channel (``http``: one keep-alive ``http.client``
connection per thread, ``POST /v1/logs`` with ``application/x-protobuf``; ``http-json``: the
same requests as OTLP/JSON, encoded once up front). The run is bounded by ``--duration`` and, if
given, ``--requests``; every call has a deadline. Prints requests, records, errors by status
code, throughput and Export latency p50/p99.

Run: ``.venv/bin/python benchmarks/loadgen.py --target 127.0.0.1:18202 --duration 10``.
``benchmarks/e2e.py`` imports ``run`` and ``build_payloads``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
EVENT_TYPES = (
    "user_feedback",
    "performance_metrics",
    "model_response",
    "system_health",
    "experiment_result",
)
MODELS = ("gpt-4o-2024-08-06", "claude-sonnet-4", "llama-3.1-70b-instruct", "gemini-1.5-pro")
COMMENTS = (
    "Great answer, exactly what I needed.",
    "The code did not compile; it used a removed API.",
    "Too long, but correct.",
    "Réponse utile, merci ! 👍",
    "",
)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        any_value = AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = AnyValue(double_value=value)
    elif isinstance(value, list):
        items = [AnyValue(string_value=v) for v in value]
        any_value = AnyValue(array_value=ArrayValue(values=items))
    else:
        any_value = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=any_value)


def _attributes(event_type: str, rng: random.Random, n: int) -> dict[str, Any]:
    """The attributes a real SDK would put on one feedback record of ``event_type``."""
    request_id = f"chatcmpl-{rng.getrandbits(64):016x}"
    common: dict[str, Any] = {
        "gen_ai.response.id": request_id,
        "user.id": f"user-{rng.randrange(10_000)}",
        "session.id": f"sess-{rng.getrandbits(48):012x}",
        "app.route": "/v1/chat",
        "app.tenant": f"tenant-{rng.randrange(50)}",
    }
    model = rng.choice(MODELS)
    if event_type == "user_feedback":
        return {
            **common,
            "feedback.rating": float(rng.randint(1, 5)),
            "feedback.thumbs": rng.choice(("up", "down")),
            "feedback.comment": f"{rng.choice(COMMENTS)} #{n}",
            "feedback.tags": rng.sample(["helpful", "wrong", "slow", "verbose", "safe"], 2),
        }
    if event_type == "performance_metrics":
        return {
            **common,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": rng.randint(10, 8000),
            "gen_ai.usage.output_tokens": rng.randint(1, 2000),
            "feedback.latency_ms": round(rng.uniform(80, 9000), 3),
            "feedback.cost_usd": round(rng.uniform(0, 0.2), 6),
            "feedback.success": rng.random() > 0.05,
            "feedback.cache_hit": rng.random() > 0.7,
            "feedback.metric.ttft_ms": round(rng.uniform(20, 900), 2),
        }
    if event_type == "model_response":
        return {
            **common,
            "gen_ai.request.model": model,
            "feedback.quality_score": round(rng.uniform(0, 100), 2),
            "feedback.quality.accuracy": round(rng.random(), 4),
            "feedback.quality.relevance": round(rng.random(), 4),
            "feedback.quality.coherence": round(rng.random(), 4),
            "feedback.quality.groundedness": round(rng.random(), 4),
            "feedback.prompt_hash": f"{rng.getrandbits(128):032x}",
            "feedback.response_length": rng.randint(1, 20_000),
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.request.temperature": 0.7,
            "gen_ai.request.max_tokens": 1024,
        }
    if event_type == "system_health":
        return {
            "feedback.health.status": rng.choice(("healthy", "healthy", "degraded")),
            "feedback.health.error_rate": round(rng.random() / 10, 5),
            "feedback.health.availability": round(0.99 + rng.random() / 100, 5),
            "feedback.health.cpu_percent": round(rng.uniform(1, 99), 2),
            "feedback.health.memory_mb": round(rng.uniform(100, 4000), 1),
            "feedback.health.active_requests": rng.randint(0, 500),
            "host.name": f"pod-{rng.randrange(20)}",
        }
    return {
        **common,
        "feedback.experiment.id": f"exp-{rng.randrange(30)}",
        "feedback.experiment.type": rng.choice(("ab_test", "multi_armed_bandit")),
        "feedback.experiment.variant_id": rng.choice(("control", "treatment-a", "treatment-b")),
        "feedback.experiment.reward": round(rng.uniform(-1, 1), 4),
        "feedback.experiment.cost": round(rng.uniform(0, 0.05), 5),
        "feedback.experiment.latency_ms": round(rng.uniform(50, 3000), 2),
    }


def build_request(records: int, seed: int, now_ns: int | None = None) -> ExportLogsServiceRequest:
    """One request of ``records`` feedback log records, event types in rotation, all distinct."""
    rng = random.Random(seed)
    now_ns = now_ns or time.time_ns()
    log_records = []
    for n in range(records):
        event_type = EVENT_TYPES[n % len(EVENT_TYPES)]
        attrs = _attributes(event_type, rng, n)
        log_records.append(
            LogRecord(
                time_unix_nano=now_ns - rng.randrange(60 * 10**9),
                observed_time_unix_nano=now_ns,
                event_name=f"feedback.{event_type}",
                trace_id=rng.randbytes(16),
                span_id=rng.randbytes(8),
                attributes=[_kv(k, v) for k, v in attrs.items()],
            )
        )
    resource = [
        _kv("service.name", "chat-api"),
        _kv("service.version", "1.42.0"),
        _kv("deployment.environment.name", "prod"),
        _kv("telemetry.sdk.language", "python"),
    ]
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=resource),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name="feedback-sdk"), log_records=log_records
                    )
                ],
            )
        ]
    )


def build_payloads(count: int, records: int, transport: str = "grpc") -> list[bytes]:
    """``count`` distinct serialised requests (different seeds, so event ids differ), as
    protobuf, or as OTLP/JSON (hex ids) for ``http-json``."""
    requests = [build_request(records, seed) for seed in range(count)]
    if transport != "http-json":
        return [r.SerializeToString() for r in requests]
    return [_otlp_json(r) for r in requests]


def _otlp_json(request: ExportLogsServiceRequest) -> bytes:
    data = json_format.MessageToDict(request)
    for resource in data.get("resourceLogs", []):
        for scope in resource.get("scopeLogs", []):
            for record in scope.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return json.dumps(data).encode()


class _HttpExport:
    """``POST /v1/logs`` on one keep-alive connection; raises ``_HttpError`` on a non-200."""

    def __init__(self, target: str, content_type: str, timeout: float) -> None:
        host, _, port = target.rpartition(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self._headers = {"Content-Type": content_type}
        self._json = content_type == "application/json"

    def __call__(self, payload: bytes) -> int:
        """The rejected records of the response's partial_success."""
        try:
            self._connection.request("POST", "/v1/logs", payload, self._headers)
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._connection.close()
            raise _HttpError(type(exc).__name__) from exc
        if response.status != 200:
            raise _HttpError(str(response.status))
        if self._json:
            partial = json.loads(body).get("partialSuccess", {})
            return int(partial.get("rejectedLogRecords", 0))
        return ExportLogsServiceResponse.FromString(body).partial_success.rejected_log_records


class _HttpError(Exception):
    pass


@dataclass
class LoadResult:
    """What one run (or one worker process) saw."""

    requests: int = 0
    records: int = 0
    rejected_records: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def merge(self, other: LoadResult) -> None:
        self.requests += other.requests
        self.records += other.records
        self.rejected_records += other.rejected_records
        self.errors = dict(Counter(self.errors) + Counter(other.errors))
        self.latencies_s.extend(other.latencies_s)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def summary(self) -> dict[str, Any]:
        elapsed = self.elapsed_s or float("nan")
        return {
            "requests": self.requests,
            "records": self.records,
            "rejected_records": self.rejected_records,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "requests_per_s": round(self.requests / elapsed, 1),
            "records_per_s": round(self.records / elapsed, 1),
            "latency_p50_ms": round(self.percentile_ms(0.50), 2),
            "latency_p99_ms": round(self.percentile_ms(0.99), 2),
        }


def _worker(
    target: str,
    payloads: list[bytes],
    records_per_request: int,
    concurrency: int,
    deadline_wall: float,
    max_requests: int | None,
    call_timeout_s: float,
    out: Any,
    transport: str = "grpc",
) -> None:
    """One load process: ``concurrency`` threads, each with one call in flight."""
    channel = grpc.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    )
    export = channel.unary_unary(
        EXPORT_METHOD,
        request_serializer=None,
        response_deserializer=ExportLogsServiceResponse.FromString,
    )
    content_type = "application/json" if transport == "http-json" else "application/x-protobuf"
    lock = threading.Lock()
    result = LoadResult()
    budget = [max_requests]

    def take() -> bool:
        with lock:
            if budget[0] is None:
                return True
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def loop(index: int) -> None:
        mine = LoadResult()
        n = index
        post = _HttpExport(target, content_type, call_timeout_s) if transport != "grpc" else None
        while time.time() < deadline_wall and take():
            payload = payloads[n % len(payloads)]
            n += concurrency
            started = time.perf_counter()
            try:
                if post is not None:
                    rejected = post(payload)
                else:
                    response = export(payload, timeout=call_timeout_s)
                    rejected = response.partial_success.rejected_log_records
            except grpc.RpcError as exc:
                code = exc.code().name if exc.code() else "UNKNOWN"
                mine.errors[code] = mine.errors.get(code, 0) + 1
                continue
            except _HttpError as exc:
                mine.errors[f"HTTP {exc}"] = mine.errors.get(f"HTTP {exc}", 0) + 1
                continue
            mine.latencies_s.append(time.perf_counter() - started)
            mine.requests += 1
            mine.records += records_per_request
            mine.rejected_records += rejected
        with lock:
            result.merge(mine)

    started = time.perf_counter()
    # Daemon threads: an interrupted worker process exits without waiting for its deadline.
    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.elapsed_s = time.perf_counter() - started
    channel.close()
    out.put(asdict(result))


def run(
    target: str,
    *,
    procs: int = 1,
    concurrency: int = 4,
    duration_s: float = 10.0,
    requests: int | None = None,
    records: int = 512,
    distinct_payloads: int = 8,
    call_timeout_s: float = 30.0,
    wait_ready_s: float = 10.0,
    transport: str = "grpc",
) -> LoadResult:
    """Drive ``target`` (gRPC, or OTLP/HTTP: ``http`` protobuf, ``http-json``) and return the
    merged result. Bounded: ends within ``duration_s + call_timeout_s`` (plus start-up)."""
    payloads = build_payloads(distinct_payloads, records, transport)
    if transport == "grpc":
        grpc.channel_ready_future(grpc.insecure_channel(target)).result(timeout=wait_ready_s)
    ctx = mp.get_context("spawn")  # gRPC does not survive fork
    queue = ctx.Queue()
    per_proc = None if requests is None else -(-requests // procs)
    deadline = time.time() + duration_s + 1.0  # +1 s: spawned processes take a moment to start
    workers = [
        ctx.Process(
            target=_worker,
            args=(
                target,
                payloads,
                records,
                concurrency,
                deadline,
                per_proc,
                call_timeout_s,
                queue,
                transport,
            ),
            daemon=True,
        )
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    merged = LoadResult()
    try:
        for _ in workers:
            part = queue.get(timeout=duration_s + call_timeout_s + 30)
            merged.merge(LoadResult(**part))
    except BaseException:
        for w in workers:  # interrupted or timed out: do not wait for the deadline
            w.terminate()
        raise
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.kill()
                w.join(timeout=5)
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:18202")
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight per process")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--requests", type=int, default=None, help="stop after this many")
    parser.add_argument("--records", type=int, default=512, help="log records per request")
    parser.add_argument("--payloads", type=int, default=8, help="distinct requests to rotate")
    parser.add_argument("--transport", default="grpc", choices=["grpc", "http", "http-json"])
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    result = run(
        args.target,
        procs=args.procs,
        concurrency=args.concurrency,
        duration_s=args.duration,
        requests=args.requests,
        records=args.records,
        distinct_payloads=args.payloads,
        transport=args.transport,
    )
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
