"""Per-record cost of each pipeline stage, in-process, no network.

Decodes the loadgen's 512-record request, then times each stage on its own (best of
``--repeat`` rounds): protobuf parse, mapping, validation, Avro encoding with the fast encoder
and with fastavro, the whole ``EventEncoder.encode`` (headers + key), the whole
``Pipeline.export_logs`` into the in-memory sink, the native fast path's C call alone, and the
whole ``Pipeline.export("logs", payload)`` (native) into the in-memory sink. ``--profile`` prints
a cProfile of the pipeline instead.

Run: ``.venv/bin/python benchmarks/stages.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import schemaless_writer
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import build_request
from machine import speed_index

from otlp_feedback.config import load_config
from otlp_feedback.encoding import AvroEventSerializer, load_schemas
from otlp_feedback.events import FeedbackEvent
from otlp_feedback.mapping import map_logs_request
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.validation import Validator
from otlp_feedback.validation.redaction import Redactor


def best_us_per_record(fn: Callable[[], Any], records: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best / records * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    payload = build_request(args.records, seed=1).SerializeToString()
    settings = load_config()
    sink = InMemorySink()
    pipeline = Pipeline(settings, InMemoryRegistry(), sink)
    pipeline.start()

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.repeat):
            pipeline.export_logs(ExportLogsServiceRequest.FromString(payload))
            sink.records.clear()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return

    request = ExportLogsServiceRequest.FromString(payload)
    validator = Validator(settings.validation)
    redactor = Redactor(settings.redaction, settings.validation.max_attribute_value_len)
    now_ns = time.time_ns()
    now = datetime.fromtimestamp(now_ns / 1e9, UTC)

    raws = map_logs_request(request).feedback

    def validate_all() -> list[Any]:
        # validate() sets the timestamp and stringified attributes in raw.fields; doing that
        # again on the same records gives the same result, so they can be validated repeatedly.
        return [validator.validate(raw, now_ns, now, redactor) for raw in raws]

    events: list[FeedbackEvent] = [e for e in validate_all() if isinstance(e, FeedbackEvent)]
    schemas = load_schemas()
    fast = {t: AvroEventSerializer(schemas.latest(t), 1) for t in schemas.versions}
    encoder = pipeline.encoder
    assert encoder is not None

    def fastavro_all() -> None:
        for e in events:
            buf = BytesIO()
            schemaless_writer(buf, fast[e.event_type].schema.parsed, e.__dict__)

    def export() -> None:
        pipeline.export_logs(ExportLogsServiceRequest.FromString(payload))
        sink.records.clear()

    native = pipeline.rules.native
    assert native is not None, "the native fast path is not built (see setup.py)"

    def native_all() -> None:
        native.export(payload, now_ns, None)

    def export_payload() -> None:
        pipeline.export("logs", payload)
        sink.records.clear()

    n, r = args.records, args.repeat
    parse = best_us_per_record(lambda: ExportLogsServiceRequest.FromString(payload), n, r)
    mapping = best_us_per_record(lambda: map_logs_request(request), n, r)
    validation = best_us_per_record(validate_all, n, r)
    rows = [
        ("protobuf parse", parse),
        ("mapping", mapping),
        ("validation (pydantic)", validation),
        ("avro: fastavro.schemaless_writer", best_us_per_record(fastavro_all, n, r)),
        (
            "avro: AvroEventSerializer",
            best_us_per_record(lambda: [fast[e.event_type](e) for e in events], n, r),
        ),
        (
            "EventEncoder.encode (avro+headers)",
            best_us_per_record(lambda: [encoder.encode(e) for e in events], n, r),
        ),
        ("Pipeline.export_logs, in-memory sink", best_us_per_record(export, n, r)),
        ("native: map+validate+encode (C)", best_us_per_record(native_all, n, r)),
        ("Pipeline.export logs payload (native)", best_us_per_record(export_payload, n, r)),
    ]
    print(f"machine speed index: {speed_index()} (see machine.py)")
    print(f"events: {len(events)} of {n} records; compiled writer: {fast['user_feedback'].is_fast}")
    result = native.export(payload, now_ns, None)
    assert result is not None
    print(f"native: {len(result.slots) - len(result.deferred)} of {n} records, rest deferred")
    for name, us in rows:
        print(f"{name:>38}: {us:6.2f} us/record")


if __name__ == "__main__":
    main()
