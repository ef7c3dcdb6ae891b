"""The disk spool: round trips, all-or-nothing appends, the cap, segments, commit points, and
recovery from torn writes, flipped bytes and a SIGKILL mid-append."""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otlp_feedback.config import SpoolConfig
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import ConfigError, EncodingError, SinkUnavailable, SpoolFull
from otlp_feedback.events import EVENT_TYPES
from otlp_feedback.sinks.spool import Spool, encode_frame

SEGMENT = "00000000000000000001.seg"
_PATTERN = bytes(range(200))  # never the magic's first byte (0xf5), so resync tests are exact


def make_record(
    event_id: str, value_size: int = 200, *, key: bytes | None = b"k"
) -> OutboundRecord:
    n = int(event_id.split("-")[-1]) if event_id.split("-")[-1].isdigit() else 0
    return OutboundRecord(
        topic="feedback.user_feedback",
        key=key,
        value=(_PATTERN * (value_size // 200 + 2))[n % 200 : n % 200 + value_size],
        headers=[("event_type", b"user_feedback"), ("event_id", event_id.encode())],
        event_id=event_id,
        event_type="user_feedback",
    )


def spool_config(directory: Path, **overrides: Any) -> SpoolConfig:
    values: dict[str, Any] = {"directory": directory, "fsync": "never"}
    values.update(overrides)
    return SpoolConfig(**values)


def drain(spool: Spool, batch_size: int = 100) -> list[OutboundRecord]:
    out: list[OutboundRecord] = []
    while (batch := spool.peek(batch_size)) is not None:
        out += batch.records
        spool.commit(batch)
    return out


def ids(records: list[OutboundRecord]) -> list[str]:
    return [r.event_id for r in records]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(spool_config(tmp_path / "spool")) as s:
        yield s


# -- format and round trip ---------------------------------------------------------------------


# The on-disk format, pinned: a change here must come with a format version bump.
GOLDEN_FRAME = (
    "f5d14f46"  # magic
    "6e2e5ad6"  # crc32 of length + payload
    "2a000000"  # length 42
    "01"
    "00"
    "0100"
    "0100"
    "0d"
    "00000000"
    "02000000"
    "0100"  # version, flags (no key), lengths
    "74"
    "65"
    "73797374656d5f6865616c7468"
    "0076"  # topic, event_id, event_type, value
    "0100"
    "01000000"
    "68"
    "78"  # one header: "h" = b"x"
)


def test_frame_bytes_are_pinned() -> None:
    record = OutboundRecord(
        topic="t",
        key=None,
        value=b"\x00v",
        headers=[("h", b"x")],
        event_id="e",
        event_type="system_health",
    )
    assert encode_frame(record).hex() == GOLDEN_FRAME


def test_round_trip_preserves_every_field_and_order(spool: Spool) -> None:
    records = [
        make_record("a-1"),
        make_record("a-2", key=None),
        OutboundRecord("tópico", b"", b"", [], "ü-id", "model_response"),
        OutboundRecord(
            "t",
            b"\x00\xff",
            b"\x00" * 70_000,
            [("", b""), ("h", b"\xf5\xd1OF")],
            "x",
            "system_health",
        ),
        *(
            OutboundRecord(f"feedback.{t}", t.encode(), t.encode() * 3, [], t, t)
            for t in EVENT_TYPES
        ),
    ]
    spool.append(records[:3])
    spool.append(records[3:])
    assert spool.pending_records == len(records)
    assert drain(spool) == records
    assert spool.pending_records == 0
    assert spool.pending_bytes == 0


def test_peek_without_commit_returns_the_same_batch(spool: Spool) -> None:
    spool.append([make_record(f"r-{i}") for i in range(10)])
    first = spool.peek(4)
    again = spool.peek(4)
    assert first is not None and again is not None
    assert ids(first.records) == ids(again.records) == ["r-0", "r-1", "r-2", "r-3"]
    assert first.end == again.end
    spool.commit(first)
    spool.commit(again)  # the same batch twice: a no-op
    following = spool.peek(100)
    assert following is not None and ids(following.records) == [f"r-{i}" for i in range(4, 10)]


def test_commit_out_of_order_is_refused(spool: Spool) -> None:
    spool.append([make_record(f"r-{i}") for i in range(4)])
    first = spool.peek(2)
    assert first is not None
    spool.commit(first)
    second = spool.peek(2)
    assert second is not None
    forged = type(second)(
        second.records, second.end, second.end._replace(offset=second.end.offset + 1), 0
    )
    with pytest.raises(ValueError):
        spool.commit(forged)


def test_peek_respects_max_bytes_but_returns_at_least_one_record(spool: Spool) -> None:
    spool.append([make_record("big-0", 5000), make_record("s-1"), make_record("s-2")])
    batch = spool.peek(100, max_bytes=1000)
    assert batch is not None and ids(batch.records) == ["big-0"]
    spool.commit(batch)
    batch = spool.peek(100, max_bytes=700)
    assert batch is not None and ids(batch.records) == ["s-1", "s-2"]


def test_empty_spool_peeks_none(spool: Spool) -> None:
    assert spool.peek(10) is None
    assert spool.segment_count == 0


# -- appends: all or nothing, cap, failures ----------------------------------------------------


def test_append_with_an_unencodable_record_writes_nothing(spool: Spool) -> None:
    spool.append([make_record("ok-0")])
    bad = OutboundRecord("t", None, b"v", [("h" * 70_000, b"")], "bad", "user_feedback")
    with pytest.raises(EncodingError):
        spool.append([make_record("ok-1"), bad])
    assert spool.pending_records == 1
    assert ids(drain(spool)) == ["ok-0"]


def test_full_spool_refuses_the_whole_call_and_writes_nothing(tmp_path: Path) -> None:
    with Spool(spool_config(tmp_path, max_bytes=65536, segment_bytes=16384)) as spool:
        n = 0
        with pytest.raises(SpoolFull) as caught:
            while True:
                spool.append([make_record(f"r-{n + i}") for i in range(10)])
                n += 10
        assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 5
        on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
        assert on_disk <= 65536
        assert spool.pending_records == n
        assert spool.stats.rejected_full == 1
        assert ids(drain(spool)) == [f"r-{i}" for i in range(n)]
        spool.append([make_record("after-0")])  # draining freed the room
        assert spool.pending_records == 1


def test_disabled_spool_refuses_appends(tmp_path: Path) -> None:
    with Spool(spool_config(tmp_path / "off", enabled=False)) as spool:
        with pytest.raises(SpoolFull):
            spool.append([make_record("r-0")])
        assert spool.peek(10) is None
    assert not (tmp_path / "off").exists()


def test_failed_write_is_rolled_back(
    spool: Spool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool.append([make_record("ok-0")])
    size = spool.pending_bytes
    real_pwrite = os.pwrite
    calls = 0

    def half_then_enospc(fd: int, data: Any, offset: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_pwrite(fd, bytes(data[: len(data) // 2]), offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", half_then_enospc)
    with pytest.raises(SpoolFull):
        spool.append([make_record(f"lost-{i}") for i in range(5)])
    monkeypatch.undo()
    assert spool.pending_bytes == size
    assert (tmp_path / "spool" / SEGMENT).stat().st_size == size
    spool.append([make_record("ok-1")])
    assert ids(drain(spool)) == ["ok-0", "ok-1"]


def test_disabled_spool_still_replays_what_an_earlier_run_left(tmp_path: Path) -> None:
    with Spool(spool_config(tmp_path)) as spool:
        spool.append([make_record("left-0"), make_record("left-1")])
    with Spool(spool_config(tmp_path, enabled=False)) as spool:
        assert spool.pending_records == 2
        with pytest.raises(SpoolFull):
            spool.append([make_record("new-0")])
        assert ids(drain(spool)) == ["left-0", "left-1"]


def test_two_spools_cannot_share_a_directory(tmp_path: Path) -> None:
    with Spool(spool_config(tmp_path)), pytest.raises(ConfigError, match="in use"):
        Spool(spool_config(tmp_path)).open()
    with Spool(spool_config(tmp_path)) as spool:  # released on close
        assert spool.peek(1) is None


def test_failed_fsync_fails_the_append_and_rolls_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Spool(spool_config(tmp_path, fsync="always")) as spool:
        spool.append([make_record("ok-0")])

        def eio(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fdatasync", eio)
        with pytest.raises(SinkUnavailable):
            spool.append([make_record("maybe-1")])
        monkeypatch.undo()
        spool.append([make_record("ok-2")])
        assert spool.segment_count == 2
        # The failed call's records may still be replayed: at-least-once, never lost.
        assert ids(drain(spool)) == ["ok-0", "maybe-1", "ok-2"]


def test_fsync_always_batch_is_one_write_and_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Spool(spool_config(tmp_path, fsync="always")) as spool:
        spool.append([make_record("warm-0")])  # creates the segment (and fsyncs the directory)
        counts = {"pwrite": 0, "fdatasync": 0, "fsync": 0}
        for name in counts:
            real = getattr(os, name)

            def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
                counts[_name] += 1
                return _real(*args)

            monkeypatch.setattr(os, name, counted)
        spool.append([make_record(f"r-{i}") for i in range(512)])
        assert counts == {"pwrite": 1, "fdatasync": 1, "fsync": 0}


def test_interval_mode_fsyncs_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Signalled after Spool.sync returns, i.e. after it counted its fsync: an event set inside
    # os.fdatasync would fire before the counter moves, and the assertion would race it.
    synced = threading.Event()
    synced_by: list[str] = []
    real_sync = Spool.sync

    def watched(self: Spool) -> None:
        real_sync(self)
        if self.stats.fsyncs:
            synced_by.append(threading.current_thread().name)
            synced.set()

    monkeypatch.setattr(Spool, "sync", watched)
    with Spool(spool_config(tmp_path, fsync="interval", fsync_interval_ms=5)) as spool:
        spool.append([make_record("r-0")])
        assert synced.wait(10)
        assert spool.stats.fsyncs >= 1
        assert synced_by[0] == "spool-fsync"


def test_concurrent_appends_keep_each_call_contiguous(tmp_path: Path) -> None:
    threads, calls = 6, 20
    with Spool(spool_config(tmp_path, fsync="always", segment_bytes=8192)) as spool:

        def worker(t: int) -> None:
            for c in range(calls):
                n = 1 + (t * 7 + c) % 9
                spool.append([make_record(f"{t}-{c}-{n}-{i}") for i in range(n)])

        pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        assert spool.segment_count > 1
        got = [tuple(int(x) for x in i.split("-")) for i in ids(drain(spool, 37))]
    runs: list[tuple[int, int]] = []
    pos = 0
    while pos < len(got):
        t, c, n, _ = got[pos]
        assert [g[3] for g in got[pos : pos + n]] == list(range(n))
        assert all(g[:3] == (t, c, n) for g in got[pos : pos + n])
        runs.append((t, c))
        pos += n
    assert sorted(runs) == [(t, c) for t in range(threads) for c in range(calls)]
    for t in range(threads):
        assert [c for tt, c in runs if tt == t] == list(range(calls))


# -- segments and commit points ----------------------------------------------------------------


def test_segments_roll_and_are_deleted_once_committed(tmp_path: Path) -> None:
    with Spool(spool_config(tmp_path, segment_bytes=4096)) as spool:
        for b in range(10):
            spool.append([make_record(f"{b}-{i}") for i in range(5)])  # ~1.3 KB per call
        segments = sorted(tmp_path.glob("*.seg"))
        assert spool.segment_count == len(segments) >= 4
        assert all(p.stat().st_size <= 4096 for p in segments)
        batch = spool.peek(7)
        assert batch is not None
        spool.commit(batch)
        assert sorted(tmp_path.glob("*.seg")) == segments  # the first is only partly committed
        batch = spool.peek(13)  # through the end of the second segment (10 records each)
        assert batch is not None
        spool.commit(batch)
        assert not segments[0].exists() and not segments[1].exists() and segments[2].exists()
        assert len(drain(spool)) == 50 - 20
        # Even the segment being appended to goes once everything in it is committed.
        assert spool.segment_count == 0 and list(tmp_path.glob("*.seg")) == []
        spool.append([make_record("next-0")])
        assert [p.name for p in tmp_path.glob("*.seg")] == [f"{len(segments) + 1:020d}.seg"]


def test_reopen_returns_uncommitted_records_only(tmp_path: Path) -> None:
    config = spool_config(tmp_path, fsync="always", segment_bytes=4096)
    with Spool(config) as spool:
        spool.append([make_record(f"r-{i}") for i in range(30)])
        batch = spool.peek(12)
        assert batch is not None
        spool.commit(batch)
        spool.peek(5)  # peeked, not committed: must come back
    with Spool(config) as spool:
        assert spool.pending_records == 18
        spool.append([make_record("r-30")])
        assert ids(drain(spool)) == [f"r-{i}" for i in range(12, 31)]
    with Spool(config) as spool:
        assert spool.pending_records == 0 and spool.peek(10) is None


def test_segment_ids_are_not_reused_after_everything_was_deleted(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with Spool(config) as spool:
        spool.append([make_record("r-0")])
        drain(spool)
    with Spool(config) as spool:
        spool.append([make_record("r-1")])
    with Spool(config) as spool:  # the new segment must not pass for an old, committed one
        assert ids(drain(spool)) == ["r-1"]


def test_damaged_position_file_replays_rather_than_loses(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with Spool(config) as spool:
        spool.append([make_record(f"r-{i}") for i in range(6)])
        batch = spool.peek(2)
        assert batch is not None
        spool.commit(batch)
    (tmp_path / "position").write_bytes(b"garbage")
    with Spool(config) as spool:
        assert ids(drain(spool)) == [f"r-{i}" for i in range(6)]


# -- crash recovery ----------------------------------------------------------------------------

RECORDS = [make_record(f"c-{i}", 40 + 37 * i) for i in range(12)]
FRAMES = [encode_frame(r) for r in RECORDS]
DATA = b"".join(FRAMES)
BOUNDS = [sum(len(f) for f in FRAMES[:i]) for i in range(len(FRAMES) + 1)]


def reopen(data: bytes) -> tuple[list[OutboundRecord], Spool, int]:
    """Open a spool whose only segment holds ``data``; return what it yields and the file size."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / SEGMENT).write_bytes(data)
        with Spool(spool_config(Path(tmp))) as spool:
            path = Path(tmp) / SEGMENT
            size = path.stat().st_size if path.exists() else 0  # an empty segment is removed
            return drain(spool), spool, size


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(DATA)))
def test_torn_tail_is_truncated_and_every_intact_record_survives(cut: int) -> None:
    whole = max(i for i, b in enumerate(BOUNDS) if b <= cut)
    got, spool, size = reopen(DATA[:cut])
    assert got == RECORDS[:whole]
    assert spool.stats.truncated_bytes == cut - BOUNDS[whole]
    assert spool.stats.corrupt_records == 0
    assert size == BOUNDS[whole]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offset=st.integers(0, len(DATA) - 1), mask=st.integers(1, 255))
def test_a_flipped_byte_loses_only_its_own_record(offset: int, mask: int) -> None:
    damaged = bytearray(DATA)
    damaged[offset] ^= mask
    hit = max(i for i, b in enumerate(BOUNDS) if b <= offset)
    got, spool, _ = reopen(bytes(damaged))
    assert got == RECORDS[:hit] + RECORDS[hit + 1 :]
    if hit == len(RECORDS) - 1:  # damage at the very end looks like a torn write
        assert (spool.stats.truncated_bytes, spool.stats.corrupt_records) == (len(FRAMES[hit]), 0)
    else:
        assert (spool.stats.truncated_bytes, spool.stats.corrupt_records) == (0, 1)


def test_damaged_region_in_the_middle_is_skipped_and_later_records_recovered() -> None:
    damaged = bytearray(DATA)
    damaged[BOUNDS[3] + 5 : BOUNDS[6] + 2] = bytes(BOUNDS[6] + 2 - BOUNDS[3] - 5)
    got, spool, size = reopen(bytes(damaged))
    assert got == RECORDS[:3] + RECORDS[7:]
    assert spool.stats.corrupt_records == 1
    assert size == len(DATA)  # damage in the middle is skipped, not cut


def test_damage_appearing_after_open_is_skipped_when_read(tmp_path: Path) -> None:
    with Spool(spool_config(tmp_path)) as spool:
        spool.append(RECORDS)
        with open(tmp_path / SEGMENT, "r+b") as f:
            f.seek(BOUNDS[4] + 20)
            f.write(b"\xff\xff")
        assert drain(spool, 5) == RECORDS[:4] + RECORDS[5:]
        assert spool.stats.corrupt_records == 1
        assert spool.pending_records == 0


def _append_until_killed(directory: str, fsync: str, acks: Connection) -> None:
    """Child process: append numbered batches forever, reporting each after append returned."""
    with Spool(spool_config(Path(directory), fsync=fsync, segment_bytes=8 << 20)) as spool:
        batch = 0
        while True:
            spool.append([make_record(f"{batch}-{i}", 10_000) for i in range(100)])
            acks.send(batch)
            batch += 1


@pytest.mark.parametrize("fsync", ["always", "never"])
def test_sigkill_mid_append_loses_no_acknowledged_record(tmp_path: Path, fsync: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_append_until_killed, args=(str(tmp_path), fsync, send))
    child.start()
    send.close()
    acked = -1
    while acked < 10:
        acked = receive.recv()
    # Not a wait for an event: a random delay moves the kill off the ack, so it lands anywhere
    # in append() (encoding, mid-pwrite -> torn tail, fsync) rather than always between calls.
    time.sleep(random.uniform(0, 0.003))
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join()
    try:
        while True:  # acks already in the pipe were sent after their append returned
            acked = receive.recv()
    except EOFError:
        pass
    with Spool(spool_config(tmp_path)) as spool:
        got = [tuple(int(x) for x in i.split("-")) for i in ids(drain(spool, 500))]
    # Every acknowledged batch, whole and in order; after them at most a prefix of the one
    # being written when the kill landed (never acknowledged, so the client will retry it).
    expected = [(b, i) for b in range(acked + 1) for i in range(100)]
    assert got[: len(expected)] == expected
    assert got[len(expected) :] == [(acked + 1, i) for i in range(len(got) - len(expected))]


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_open_close_twice(tmp_path: Path, fsync: str) -> None:
    spool = Spool(spool_config(tmp_path, fsync=fsync))
    for round_ in range(2):
        spool.open()
        spool.open()  # idempotent
        spool.append([make_record(f"r-{round_}")])
        spool.close()
        spool.close()  # idempotent
    with Spool(spool_config(tmp_path)) as spool:
        assert ids(drain(spool)) == ["r-0", "r-1"]


def test_close_is_safe_before_open_and_appends_after_close_are_refused(tmp_path: Path) -> None:
    spool = Spool(spool_config(tmp_path / "never-opened"))
    spool.close()
    assert not (tmp_path / "never-opened").exists()
    with pytest.raises(SinkUnavailable):
        spool.append([make_record("r-0")])
