"""The spool's read side: ``peek`` the oldest records, ``commit`` them once Kafka has them.

Who calls it: the one replayer thread of ``sinks/failover.py`` (single reader). ``peek`` reads
sealed bytes through ``mmap`` without holding ``_lock``, since appends only ever add bytes past
a segment's recorded size. ``commit`` moves the commit point, persists it (``_position.py``)
and only then deletes the segments it fully covers, so a crash in between replays them rather
than losing them.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Generator
from contextlib import closing
from pathlib import Path

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import SinkUnavailable
from otlp_feedback.sinks.spool._frame import FRAME, decode_payload, scan
from otlp_feedback.sinks.spool._position import write_position
from otlp_feedback.sinks.spool._state import SpoolBatch, SpoolPosition, _SpoolState

log = logging.getLogger(__package__)  # one logger for the whole spool, as before the split


class _Reader(_SpoolState):
    """``peek``/``commit`` and the pending-bytes count; mixed into ``Spool``."""

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
                for kind, a, b in scan(mm, offset, size):
                    if kind == "good" and a not in bad:
                        yield sid, a, b, mm[a + FRAME.size : b]
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
                write_position(self._dir, batch.end, durable=self._config.fsync == "always")
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
                self._retire_active()  # fully delivered while still being written
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
