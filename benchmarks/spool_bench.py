"""Throughput of the disk spool: append per fsync mode, and replay (peek + commit).

Records look like the pipeline's: ~200-byte Avro values, a 36-character key and event id, four
headers. Appends go in batches of ``--batch`` (512, one Export request's worth); each phase
stops after ``--seconds`` or ``--max-records``, whichever comes first, so the run is bounded.
``always`` is measured from one thread and from ``--threads`` threads (their fsyncs are shared:
group commit). Replay fills a spool, syncs it, then drains it ``--batch`` records per peek,
committing each batch (the position file is fsynced only with ``fsync=always``).

Run: ``.venv/bin/python benchmarks/spool_bench.py [--dir /some/disk]``; the spool directory
defaults to a temporary one (so the numbers are for whatever disk backs ``$TMPDIR``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Literal

from otlp_feedback.config import SpoolConfig
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.sinks.spool import Spool

FsyncMode = Literal["always", "interval", "never"]


def make_batch(size: int, seq: int) -> list[OutboundRecord]:
    batch = []
    for n in range(size):
        event_type = EVENT_TYPES[n % len(EVENT_TYPES)]
        event_id = str(uuid.UUID(int=(seq << 32) + n))
        batch.append(
            OutboundRecord(
                topic=f"feedback.{event_type}",
                key=str(uuid.UUID(int=n)).encode(),
                value=os.urandom(200),
                headers=[
                    ("event_type", event_type.encode()),
                    ("event_id", event_id.encode()),
                    ("schema_version", b"1"),
                    ("trace_id", os.urandom(16).hex().encode()),
                ],
                event_id=event_id,
                event_type=event_type,
            )
        )
    return batch


def bench_append(
    directory: Path, mode: FsyncMode, batches: list[list[OutboundRecord]], args: argparse.Namespace
) -> tuple[float, int]:
    """Records/s appending ``batches`` round-robin from ``threads`` threads; and the fsyncs."""
    config = SpoolConfig(directory=directory, fsync=mode, max_bytes=8 << 30, segment_bytes=64 << 20)
    per_thread = args.max_records // args.batch // args.threads_now
    deadline = time.monotonic() + args.seconds
    done = [0] * args.threads_now
    with Spool(config) as spool:

        def worker(t: int) -> None:
            for i in range(per_thread):
                if time.monotonic() >= deadline:
                    return
                spool.append(batches[(t + i) % len(batches)])
                done[t] += args.batch

        start = time.perf_counter()
        pool = [threading.Thread(target=worker, args=(t,)) for t in range(args.threads_now)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        elapsed = time.perf_counter() - start
        fsyncs = spool.stats.fsyncs
    return sum(done) / elapsed, fsyncs


def bench_replay(directory: Path, mode: FsyncMode, batch: int, seconds: float) -> tuple[float, int]:
    """Records/s draining ``directory`` with peek + commit (position file per ``mode``)."""
    config = SpoolConfig(directory=directory, fsync=mode, max_bytes=8 << 30)
    deadline = time.monotonic() + seconds
    count = 0
    with Spool(config) as spool:
        start = time.perf_counter()
        while time.monotonic() < deadline and (got := spool.peek(batch)) is not None:
            spool.commit(got)
            count += len(got.records)
        elapsed = time.perf_counter() - start
    return count / elapsed, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="parent of the spool directories")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="time cap per phase")
    parser.add_argument("--max-records", type=int, default=400_000, help="record cap per phase")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="spool-bench-", dir=args.dir))
    batches = [make_batch(args.batch, seq) for seq in range(8)]
    print(f"spool directory: {root}; batch {args.batch} records of ~200-byte values")
    try:
        phases: list[tuple[FsyncMode, int]] = [
            ("always", 1),
            ("always", args.threads),
            ("interval", 1),
            ("never", 1),
        ]
        for mode, threads in phases:
            args.threads_now = threads
            directory = root / f"{mode}-{threads}"
            rate, fsyncs = bench_append(directory, mode, batches, args)
            label = f"append fsync={mode:<8} threads={threads}"
            print(f"{label}: {rate:>10,.0f} records/s ({fsyncs} fsyncs)")
            shutil.rmtree(directory)
            os.sync()  # the next phase's fsyncs must not pay for this phase's dirty pages
        replay_modes: list[FsyncMode] = ["never", "always"]
        for mode in replay_modes:
            directory = root / f"replay-{mode}"
            args.threads_now = 1
            bench_append(directory, "never", batches, args)
            os.sync()  # replay a spool already on disk, not one still being written back
            rate, count = bench_replay(directory, mode, args.batch, args.seconds)
            print(f"replay position fsync={mode:<6}: {rate:>10,.0f} records/s ({count} records)")
            shutil.rmtree(directory)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
