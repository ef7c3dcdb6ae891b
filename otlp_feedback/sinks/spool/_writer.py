"""The spool's write side: segments, ``append``, the fsync policy and its background thread.

Who calls it: request threads call ``Spool.append`` (via ``sinks/failover.py``); the
``spool-fsync`` thread started by ``Spool.open`` calls ``sync`` every ``fsync_interval_ms`` in
``interval`` mode; ``Spool.close`` and the reader's commit seal the active segment.

One ``append`` call is one contiguous ``pwrite`` into one segment, so a crash can tear at most
the tail of the last call (recovery truncates it). Appends after ``open`` always go to a fresh
segment, so recovered files are never written again. Durability follows ``spool.fsync``:
``always`` returns only after an fsync covers the call (group commit: concurrent calls share
one), ``interval`` leaves it to the background thread, ``never`` to the kernel.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import SinkUnavailable, SpoolFull
from otlp_feedback.sinks.spool._frame import encode_frame
from otlp_feedback.sinks.spool._state import Segment, _SpoolState, segment_path

log = logging.getLogger(__package__)  # one logger for the whole spool, as before the split

RETRY_AFTER_S = 2.0  # the replayer frees room within seconds once Kafka is back


class _Writer(_SpoolState):
    """``append``/``sync`` and the segment being written; mixed into ``Spool``."""

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

    def _writable_segment(self, size: int) -> Segment:
        # Holds _lock. A call never spans segments: one write, one fsync, one file.
        seg = self._active
        if seg is not None and (
            self._roll_next or (seg.size and seg.size + size > self._config.segment_bytes)
        ):
            self._seal_active(fsync=self._config.fsync != "never")
            seg = None
        if seg is None:
            path = segment_path(self._dir, self._next_id)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            seg = Segment(self._next_id, path, 0, fd)
            self._next_id += 1
            self._segments[seg.id] = seg
            self._active = seg
            if self._config.fsync != "never":
                fsync_dir(self._dir)  # the new file's name must survive a power cut too
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

    def _retire_active(self) -> None:
        # Holds _lock. The active segment was delivered in full: retire it (no fsync needed) so
        # its file can go; the next append opens a new segment. Waiters on its fsync are done:
        # Kafka has it.
        self._seal_active(fsync=False)
        self._synced_seq = self._write_seq

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


def _pwrite_all(seg: Segment, buf: bytes) -> None:
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


def fsync_dir(directory: Path) -> None:
    """fsync a directory, so the names created or renamed in it survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
