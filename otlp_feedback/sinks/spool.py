"""The durable disk spool: accepted records wait here while Kafka cannot take them.

Who calls it: ``sinks/failover.py``. Request threads ``append`` (durable per ``spool.fsync``
before it returns, so the receiver may answer OK); the one replayer thread ``peek``s the oldest
records, produces them and ``commit``s them once Kafka confirmed them. ``open`` resumes whatever
a crash left behind. Delivery is at-least-once: after a crash a batch may be replayed twice, but
a record whose ``append`` returned is never lost (process crash: any ``fsync`` mode; machine
crash: ``always``, or within ``fsync_interval_ms`` for ``interval``).

On-disk format (integers little-endian)
---------------------------------------
``NNNNNNNNNNNNNNNNNNNN.seg`` -- segments with 20-digit, ever-increasing ids; each is a plain run
of frames. One ``append`` call is one contiguous ``pwrite`` into one segment::

    frame   = magic b"\\xf5\\xd1OF" | crc32 u32 | length u32 | payload (length bytes)
              (the crc covers the length field and the payload)
    payload = version u8 (=1) | flags u8 (bit 0: key present) | topic_len u16
              | event_id_len u16 | event_type_len u8 | key_len u32 | value_len u32
              | header_count u16 | topic | event_id | event_type | key | value
              | header_count x (name_len u16 | value_len u32 | name | value)

``position`` -- the commit point: b"OFSP" | segment u64 | offset u64 | crc32 u32. Everything
before (segment, offset) was delivered. It is written to ``position.tmp`` and ``os.replace``d
(with file and directory fsyncs when ``fsync`` is ``always``) before any segment is deleted, so
a crash can only leave it older, or unreadable without fsync (then every segment left is
replayed): more replays, never loss. One 24-byte file per commit is simpler than per-segment
markers and costs one rename per replayed batch.

``lock`` -- held with ``flock`` while the spool is open, so two processes cannot share a
directory (each receiver process needs its own); the kernel drops it when the process dies.

Recovery (``open``): segments older than the position are deleted; the rest are scanned from the
commit point frame by frame. A frame whose magic, length or CRC is wrong starts a damaged
region, and the scan re-synchronises at the next offset where a whole valid frame starts (found
by searching for the magic). A damaged region followed by valid frames is skipped, logged and
counted in ``stats.corrupt_records`` (one per region); one that runs to the end of its segment
is a torn write (a crash mid-append) and is truncated away, counted in ``stats.truncated_bytes``.
After ``open`` appends always go to a fresh segment, so recovered files are never written again.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import re
import struct
import threading
import zlib
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, cast

from otlp_feedback.config import SpoolConfig
from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import ConfigError, EncodingError, SinkUnavailable, SpoolFull
from otlp_feedback.events import EventType

log = logging.getLogger(__name__)

MAGIC = b"\xf5\xd1OF"
_FRAME = struct.Struct("<4sII")  # magic, crc32, length
_LENGTH = struct.Struct("<I")
_RECORD = struct.Struct("<BBHHBIIH")
_HEADER = struct.Struct("<HI")
_unpack_record = _RECORD.unpack_from
_unpack_header = _HEADER.unpack_from
_POSITION = struct.Struct("<4sQQ")
_POSITION_MAGIC = b"OFSP"
_VERSION = 1
_KEY_PRESENT = 1
_SEGMENT_NAME = re.compile(r"^\d{20}\.seg$")
RETRY_AFTER_S = 2.0  # the replayer frees room within seconds once Kafka is back

_Kind = Literal["good", "bad", "torn"]


class SpoolPosition(NamedTuple):
    """A place in the spool: a segment id and a byte offset in it. Ordered like the data."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Records returned by ``peek``; ``start``/``end`` bound them on disk (the commit token)."""

    records: list[OutboundRecord]
    start: SpoolPosition
    end: SpoolPosition
    nbytes: int


@dataclass(slots=True)
class SpoolStats:
    """Counters since this ``Spool`` was made; plain ints, safe to read from any thread."""

    appended: int = 0
    committed: int = 0
    corrupt_records: int = 0
    truncated_bytes: int = 0
    rejected_full: int = 0
    fsyncs: int = 0
    segments_deleted: int = 0


@dataclass(slots=True, eq=False)
class _Segment:
    id: int
    path: Path
    size: int  # bytes fully written; readers never look past it
    fd: int | None = None  # only the active segment is open for writing
    bad: dict[int, int] = field(default_factory=dict)  # damaged region start -> end


# -- framing --------------------------------------------------------------------------------


def encode_frame(record: OutboundRecord) -> bytes:
    """One record as a frame (see the module docstring). Raises ``EncodingError`` if a field
    exceeds its length prefix."""
    topic = record.topic.encode()
    event_id = record.event_id.encode()
    event_type = record.event_type.encode()
    key = record.key
    try:
        parts = [
            _RECORD.pack(
                _VERSION,
                _KEY_PRESENT if key is not None else 0,
                len(topic),
                len(event_id),
                len(event_type),
                len(key) if key is not None else 0,
                len(record.value),
                len(record.headers),
            ),
            topic,
            event_id,
            event_type,
            key or b"",
            record.value,
        ]
        for name, value in record.headers:
            raw = name.encode()
            parts += (_HEADER.pack(len(raw), len(value)), raw, value)
    except struct.error as exc:
        raise EncodingError(f"record {record.event_id} does not fit the spool format") from exc
    payload = b"".join(parts)
    length = _LENGTH.pack(len(payload))
    return _FRAME.pack(MAGIC, zlib.crc32(payload, zlib.crc32(length)), len(payload)) + payload


def decode_payload(payload: bytes) -> OutboundRecord:
    """The inverse of ``encode_frame``'s payload. Raises ``ValueError`` if malformed."""
    try:
        version, flags, tlen, ilen, elen, klen, vlen, count = _unpack_record(payload)
        if version != _VERSION:
            raise ValueError(f"unknown record version {version}")
        t = _RECORD.size
        i = t + tlen
        e = i + ilen
        k = e + elen
        v = k + klen
        pos = v + vlen
        headers = []
        for _ in range(count):
            nlen, hlen = _unpack_header(payload, pos)
            name = pos + _HEADER.size
            pos = name + nlen + hlen
            headers.append((payload[name : name + nlen].decode(), payload[name + nlen : pos]))
        if pos != len(payload):
            raise ValueError("record length does not match its fields")
        return OutboundRecord(  # positional: this is the replay's hot loop
            payload[t:i].decode(),
            payload[k:v] if flags & _KEY_PRESENT else None,
            payload[v : v + vlen],
            headers,
            payload[i:e].decode(),
            cast(EventType, payload[e:k].decode()),
        )
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed spool record: {exc}") from exc


def _frame_len(buf: mmap.mmap, pos: int, end: int) -> int:
    """The length of the valid frame at ``pos``, or 0 if none starts there."""
    if end - pos < _FRAME.size:
        return 0
    magic, crc, length = _FRAME.unpack_from(buf, pos)
    if magic != MAGIC or length > end - pos - _FRAME.size:
        return 0
    if zlib.crc32(buf[pos + 8 : pos + _FRAME.size + length]) != crc:
        return 0
    return _FRAME.size + length


def _scan(buf: mmap.mmap, start: int, end: int) -> Iterator[tuple[_Kind, int, int]]:
    """Yield ``(kind, a, b)`` regions covering ``[start, end)``: a good frame, a damaged region
    followed by a good frame ("bad"), or damage running to ``end`` ("torn")."""
    pos = start
    while pos < end:
        n = _frame_len(buf, pos, end)
        if n:
            yield "good", pos, pos + n
            pos += n
            continue
        nxt = pos
        while True:
            nxt = buf.find(MAGIC, nxt + 1, end)
            if nxt < 0:
                yield "torn", pos, end
                return
            if _frame_len(buf, nxt, end):
                break
        yield "bad", pos, nxt
        pos = nxt


# -- the spool --------------------------------------------------------------------------------


class Spool:
    """Append-only segment files plus a commit point (see the module docstring).

    Thread-safety: ``append`` from any number of threads; ``peek``/``commit`` from one reader.
    Lifecycle: ``open`` then ``close``; ``close`` is idempotent and safe before ``open``.
    Locks, always taken in this order: ``_sync_lock`` (one fsync at a time), ``_commit_lock``
    (the position file), ``_lock`` (segments and counters; never held across reads).
    """

    def __init__(self, config: SpoolConfig) -> None:
        self._config = config
        self._dir = Path(config.directory)
        self._position_path = self._dir / "position"
        self.stats = SpoolStats()
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._open = False
        self._reset()

    def _reset(self) -> None:
        self._segments: dict[int, _Segment] = {}  # ascending ids (insertion order)
        self._active: _Segment | None = None
        self._next_id = 1
        self._read_pos = SpoolPosition(0, 0)
        self._pending_records = 0
        self._disk_bytes = 0
        self._doomed: list[Path] = []  # committed segments awaiting deletion
        # Group commit: each write gets a sequence number; one fsync covers every write before
        # it, so concurrent appends share fsyncs instead of queueing behind each other.
        self._write_seq = 0
        self._synced_seq = 0
        self._unsafe = (1, 0)  # seqs whose fsync failed (lo, hi); empty while lo > hi
        self._roll_next = False

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory and resume what is on disk (see Recovery in the module
        docstring). Raises ``ConfigError`` if the directory cannot be used. A disabled spool
        still resumes an existing directory, so its records get replayed; it takes no appends."""
        with self._lock:
            if self._open:
                return
            self._reset()
            try:
                if self._config.enabled or self._dir.exists():
                    self._dir.mkdir(parents=True, exist_ok=True)
                    self._lock_directory()
                    self._recover()
            except OSError as exc:
                self._unlock_directory()
                raise ConfigError(f"spool.directory {self._dir}: cannot open: {exc}") from exc
            except BaseException:
                self._unlock_directory()
                raise
            self._open = True
        if self._config.enabled and self._config.fsync == "interval":
            self._stop.clear()
            self._flusher = threading.Thread(target=self._flush_loop, name="spool-fsync")
            self._flusher.daemon = True
            self._flusher.start()
        if self._pending_records:
            log.info("spool resumed: %d records pending in %s", self._pending_records, self._dir)

    def close(self) -> None:
        """Stop the flusher, fsync and close the segment being written. Idempotent."""
        with self._lock:
            if not self._open:
                return
            self._open = False
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        with self._sync_lock, self._lock:
            self._seal_active(fsync=True)
            self._unlock_directory()

    def _lock_directory(self) -> None:
        # Two processes appending to and deleting the same segments would destroy each other's
        # records; receivers sharing a port (SO_REUSEPORT) each need their own directory.
        fd = os.open(self._dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConfigError(
                f"spool.directory {self._dir} is in use by another spool; "
                "give each receiver process its own directory"
            ) from exc
        self._lock_fd = fd

    def _unlock_directory(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock (so does the process dying)
            self._lock_fd = None

    def __enter__(self) -> Spool:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state ----------------------------------------------------------------------------------

    @property
    def pending_records(self) -> int:
        """Records appended and not yet committed."""
        return self._pending_records

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk after the commit point (frames, including any damaged regions)."""
        with self._lock:
            return self._pending_bytes_locked()

    @property
    def disk_bytes(self) -> int:
        """Bytes of segment files on disk (what ``max_bytes`` caps)."""
        with self._lock:
            return self._disk_bytes

    @property
    def has_room(self) -> bool:
        """Whether an append could fit now (enabled, open and under ``max_bytes``)."""
        with self._lock:
            return self._config.enabled and self._disk_bytes < self._config.max_bytes

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    # -- appending ------------------------------------------------------------------------------

    def append(self, records: Sequence[OutboundRecord]) -> None:
        """Write ``records`` as one contiguous run; durable per ``fsync`` when this returns.

        ``max_bytes`` caps the segment files on disk, including the delivered head of the
        oldest segment (a file goes only once all of it is committed). All or nothing: on any
        error no record of this call is visible to ``peek`` (but see ``fsync`` failures: the
        call fails, its records may still be replayed). Raises
        ``SpoolFull`` (disabled, at ``max_bytes``, or the disk is full), ``SinkUnavailable``
        (not open, or an I/O error; the call may be retried), ``EncodingError`` (a field too
        long for the format). Thread-safe.
        """
        if not records:
            return
        buf = b"".join([encode_frame(r) for r in records])  # CPU work outside the lock
        with self._lock:
            if not self._open:
                raise SinkUnavailable("spool is not open", retry_after=RETRY_AFTER_S)
            if not self._config.enabled:
                self.stats.rejected_full += 1
                raise SpoolFull("spool is disabled", retry_after=RETRY_AFTER_S)
            if self._disk_bytes + len(buf) > self._config.max_bytes:
                self.stats.rejected_full += 1
                raise SpoolFull(
                    f"spool is full ({self._disk_bytes} of {self._config.max_bytes} bytes)",
                    retry_after=RETRY_AFTER_S,
                )
            try:
                seg = self._writable_segment(len(buf))
                _pwrite_all(seg, buf)
            except OSError as exc:
                raise _write_error(exc) from exc
            seg.size += len(buf)
            self._disk_bytes += len(buf)
            self._pending_records += len(records)
            self.stats.appended += len(records)
            self._write_seq += 1
            seq = self._write_seq
        if self._config.fsync == "always":
            self._await_durable(seq)

    def sync(self) -> None:
        """fsync everything appended so far (the ``interval`` flusher calls this)."""
        with self._sync_lock:
            self._fsync_active()

    def _writable_segment(self, size: int) -> _Segment:
        # Holds _lock. A call never spans segments: one write, one fsync, one file.
        seg = self._active
        if seg is not None and (
            self._roll_next or (seg.size and seg.size + size > self._config.segment_bytes)
        ):
            self._seal_active(fsync=self._config.fsync != "never")
            seg = None
        if seg is None:
            path = self._dir / f"{self._next_id:020d}.seg"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            seg = _Segment(self._next_id, path, 0, fd)
            self._next_id += 1
            self._segments[seg.id] = seg
            self._active = seg
            if self._config.fsync != "never":
                _fsync_dir(self._dir)  # the new file's name must survive a power cut too
        return seg

    def _seal_active(self, *, fsync: bool) -> None:
        # Holds _lock. Makes the active segment read-only; its fsync covers every write so far.
        seg = self._active
        if seg is None or seg.fd is None:
            return
        self._active = None
        self._roll_next = False
        try:
            if fsync:
                os.fdatasync(seg.fd)
                self.stats.fsyncs += 1
                self._synced_seq = self._write_seq
        except OSError:
            log.exception("spool: fsync of %s failed; its latest records may be lost", seg.path)
            self._mark_unsafe(self._synced_seq + 1, self._write_seq)
        finally:
            os.close(seg.fd)
            seg.fd = None

    def _await_durable(self, seq: int) -> None:
        with self._sync_lock:
            if self._synced_seq < seq and not self._is_unsafe(seq):
                self._fsync_active()
        if self._is_unsafe(seq):
            raise SinkUnavailable(
                "spool fsync failed; the records may not be on disk", retry_after=RETRY_AFTER_S
            )

    def _fsync_active(self) -> None:
        # Holds _sync_lock. fsyncs a dup of the fd outside _lock, so appends keep writing and a
        # concurrent roll may close the original without pulling the descriptor from under us.
        with self._lock:
            target, base, seg = self._write_seq, self._synced_seq, self._active
            if base >= target or seg is None or seg.fd is None:
                return  # nothing new, or sealed since: sealing synced (or flagged) it
            try:
                fd = os.dup(seg.fd)  # under _lock: a roll cannot close seg.fd meanwhile
            except OSError:
                fd = -1
        try:
            if fd < 0:
                raise OSError(errno.EMFILE, "cannot duplicate the segment descriptor")
            os.fdatasync(fd)
        except OSError:
            log.exception("spool: fsync of %s failed; appends since the last one fail", seg.path)
            with self._lock:
                self._mark_unsafe(base + 1, target)
                self._roll_next = True  # a failed fsync may have dropped pages: start afresh
            return
        finally:
            if fd >= 0:
                os.close(fd)
        with self._lock:
            self._synced_seq = max(self._synced_seq, target)
            self.stats.fsyncs += 1

    def _mark_unsafe(self, lo: int, hi: int) -> None:
        # Merged conservatively into one range: at worst a durable append is reported failed
        # and retried, which only duplicates it.
        if lo > hi:
            return
        old_lo, old_hi = self._unsafe
        self._unsafe = (lo, hi) if old_lo > old_hi else (min(lo, old_lo), max(hi, old_hi))

    def _is_unsafe(self, seq: int) -> bool:
        lo, hi = self._unsafe
        return lo <= seq <= hi

    def _flush_loop(self) -> None:
        interval = self._config.fsync_interval_ms / 1000
        while not self._stop.wait(interval):
            self.sync()

    # -- reading --------------------------------------------------------------------------------

    def peek(self, max_records: int, max_bytes: int = 16 << 20) -> SpoolBatch | None:
        """The oldest uncommitted records, in append order, or None when there are none.

        Returns at least one record (even one larger than ``max_bytes``) if any is pending.
        Until ``commit``, every call returns the same records. Damaged regions met on the way
        are skipped and counted. Single reader. Raises ``SinkUnavailable`` on an I/O error.
        """
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        with self._lock:
            start = self._read_pos
            segs = [
                (s.id, s.path, s.size, dict(s.bad))
                for s in self._segments.values()
                if s.id >= start.segment
            ]
        records: list[OutboundRecord] = []
        nbytes = 0
        end = start
        try:
            with closing(self._regions(start, segs)) as regions:
                for sid, a, b, payload in regions:
                    if payload is not None:
                        if records and nbytes + b - a > max_bytes:
                            break
                        try:
                            records.append(decode_payload(payload))
                            nbytes += b - a
                        except ValueError as exc:
                            self._note_damage(sid, a, b, str(exc))
                    end = SpoolPosition(sid, b)
                    if len(records) >= max_records:
                        break
        except OSError as exc:
            raise SinkUnavailable(f"cannot read the spool: {exc}") from exc
        if records:
            return SpoolBatch(records, start, end, nbytes)
        if end != start:  # only damage ahead: step over it so it cannot block the spool
            self.commit(SpoolBatch([], start, end, 0))
        with self._lock:
            if self._pending_bytes_locked() == 0:
                self._pending_records = 0  # drop any drift left by damage found while reading
        return None

    def _regions(
        self, start: SpoolPosition, segs: list[tuple[int, Path, int, dict[int, int]]]
    ) -> Generator[tuple[int, int, int, bytes | None], None, None]:
        """``(segment, a, b, payload)`` for each region from ``start``; payload None = damage."""
        for sid, path, size, bad in segs:
            offset = start.offset if sid == start.segment else 0
            if offset >= size:
                continue
            with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as mm:
                for kind, a, b in _scan(mm, offset, size):
                    if kind == "good" and a not in bad:
                        yield sid, a, b, mm[a + _FRAME.size : b]
                        continue
                    if a not in bad:  # damage that open() did not see: count it once
                        self._note_damage(sid, a, b, f"{kind} region")
                    yield sid, a, bad.get(a, b), None

    def _note_damage(self, sid: int, a: int, b: int, why: str) -> None:
        with self._lock:
            seg = self._segments.get(sid)
            if seg is not None and a not in seg.bad:
                seg.bad[a] = b
                self.stats.corrupt_records += 1
        log.warning("spool: skipping %d damaged bytes at %s:%d (%s)", b - a, sid, a, why)

    def commit(self, batch: SpoolBatch) -> None:
        """Mark ``batch`` delivered; persist the commit point; delete segments left with nothing
        pending. Committing a batch twice is a no-op; committing out of order raises
        ``ValueError``. Raises ``SinkUnavailable`` if the position file cannot be written (the
        batch still counts as committed here; after a restart it may be replayed)."""
        with self._commit_lock:
            with self._lock:
                if batch.end <= self._read_pos:
                    return
                if batch.start != self._read_pos:
                    raise ValueError(f"batch starts at {batch.start}, not at {self._read_pos}")
                self._read_pos = batch.end
                self._pending_records = max(0, self._pending_records - len(batch.records))
                self.stats.committed += len(batch.records)
                self._doomed += self._release_committed()
                if self._pending_bytes_locked() == 0:
                    self._pending_records = 0
            try:
                self._write_position(batch.end)
            except OSError as exc:
                raise SinkUnavailable(f"cannot persist the spool position: {exc}") from exc
            # Only now: a crash before the position is on disk must still find these files.
            for path in self._doomed:
                path.unlink(missing_ok=True)
                self.stats.segments_deleted += 1
            self._doomed.clear()

    def _release_committed(self) -> list[Path]:
        # Holds _lock. Drops segments whose every byte is before the commit point.
        pos = self._read_pos
        done: list[Path] = []
        for seg in list(self._segments.values()):
            if not (seg.id < pos.segment or (seg.id == pos.segment and pos.offset >= seg.size)):
                break
            if seg is self._active:
                # Fully delivered: retire it (no fsync needed) so its file can go; the next
                # append opens a new segment. Waiters on its fsync are done: Kafka has it.
                self._seal_active(fsync=False)
                self._synced_seq = self._write_seq
            del self._segments[seg.id]
            self._disk_bytes -= seg.size
            done.append(seg.path)
        return done

    def _pending_bytes_locked(self) -> int:
        pos = self._read_pos
        total = 0
        for seg in self._segments.values():
            if seg.id > pos.segment:
                total += seg.size
            elif seg.id == pos.segment:
                total += max(0, seg.size - pos.offset)
        return total

    # -- position file and recovery -------------------------------------------------------------

    def _write_position(self, pos: SpoolPosition) -> None:
        data = _POSITION.pack(_POSITION_MAGIC, pos.segment, pos.offset)
        data += _LENGTH.pack(zlib.crc32(data))
        durable = self._config.fsync == "always"
        tmp = self._dir / "position.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._position_path)
        if durable:
            _fsync_dir(self._dir)

    def _read_position(self) -> SpoolPosition | None:
        try:
            data = self._position_path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) == _POSITION.size + 4:
            magic, segment, offset = _POSITION.unpack_from(data)
            (crc,) = _LENGTH.unpack_from(data, _POSITION.size)
            if magic == _POSITION_MAGIC and crc == zlib.crc32(data[: _POSITION.size]):
                return SpoolPosition(segment, offset)
        log.warning("spool: %s is damaged; replaying every segment", self._position_path)
        return None

    def _recover(self) -> None:
        # Holds _lock. Loads the commit point and scans every segment after it.
        (self._dir / "position.tmp").unlink(missing_ok=True)
        pos = self._read_position()
        ids = sorted(int(p.name[:20]) for p in self._dir.iterdir() if _SEGMENT_NAME.match(p.name))
        self._next_id = max([*ids, pos.segment if pos else 0]) + 1  # ids are never reused
        self._read_pos = pos or SpoolPosition(0, 0)
        for sid in ids:
            path = self._dir / f"{sid:020d}.seg"
            start = self._read_pos.offset if sid == self._read_pos.segment else 0
            if sid < self._read_pos.segment:
                path.unlink()
                self.stats.segments_deleted += 1
                continue
            seg = self._recover_segment(sid, path, start)
            if seg.size == 0 or seg.size <= start:  # empty, or delivered in full
                path.unlink()
                self.stats.segments_deleted += 1
                continue
            self._segments[sid] = seg
            self._disk_bytes += seg.size

    def _recover_segment(self, sid: int, path: Path, start: int) -> _Segment:
        seg = _Segment(sid, path, path.stat().st_size)
        if seg.size <= start:
            return seg
        torn_at: int | None = None
        with open(path, "r+b") as f:
            with mmap.mmap(f.fileno(), seg.size, access=mmap.ACCESS_READ) as mm:
                for kind, a, b in _scan(mm, start, seg.size):
                    if kind == "good":
                        self._pending_records += 1
                    elif kind == "bad":
                        seg.bad[a] = b
                        self.stats.corrupt_records += 1
                        log.warning("spool: skipping %d damaged bytes at %s:%d", b - a, path, a)
                    else:
                        torn_at = a
            if torn_at is not None:
                log.warning(
                    "spool: truncating a torn tail of %d bytes from %s at %d",
                    seg.size - torn_at,
                    path,
                    torn_at,
                )
                f.truncate(torn_at)
                os.fsync(f.fileno())
                self.stats.truncated_bytes += seg.size - torn_at
                seg.size = torn_at
        return seg


def _pwrite_all(seg: _Segment, buf: bytes) -> None:
    """Write ``buf`` at the segment's end, or leave the file as it was and raise."""
    assert seg.fd is not None
    view = memoryview(buf)
    done = 0
    try:
        while done < len(buf):
            done += os.pwrite(seg.fd, view[done:], seg.size + done)
    except OSError:
        if done:
            os.ftruncate(seg.fd, seg.size)  # all or nothing: drop the partial write
        raise


def _write_error(exc: OSError) -> SpoolFull | SinkUnavailable:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SpoolFull(f"spool disk is full: {exc}", retry_after=RETRY_AFTER_S)
    return SinkUnavailable(f"cannot write the spool: {exc}", retry_after=RETRY_AFTER_S)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
