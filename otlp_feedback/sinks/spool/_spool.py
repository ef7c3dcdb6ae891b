"""``Spool``: the lifecycle and the state of the disk spool; the work is in its mixins.

Who calls it: ``sinks/failover.py`` and ``app.py`` (through the package, ``sinks/spool``).
``Spool`` owns the directory lock, the shared state (``_state.py``) and the ``spool-fsync``
thread; ``append``/``sync`` come from ``_writer.py``, ``peek``/``commit`` from ``_reader.py``,
and ``open`` rebuilds the state with ``_recovery.py``.

``lock`` -- held with ``flock`` while the spool is open, so two processes cannot share a
directory (each receiver process needs its own); the kernel drops it when the process dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path

from otlp_feedback.config import SpoolConfig
from otlp_feedback.errors import ConfigError
from otlp_feedback.sinks.spool._reader import _Reader
from otlp_feedback.sinks.spool._recovery import recover
from otlp_feedback.sinks.spool._state import SpoolPosition, SpoolStats
from otlp_feedback.sinks.spool._writer import _Writer

log = logging.getLogger(__package__)  # one logger for the whole spool, as before the split


class Spool(_Reader, _Writer):
    """Append-only segment files plus a commit point (see the package docstring).

    Thread-safety: ``append`` from any number of threads; ``peek``/``commit`` from one reader.
    Lifecycle: ``open`` then ``close``; ``close`` is idempotent and safe before ``open``.
    Locks, always taken in this order: ``_sync_lock`` (one fsync at a time), ``_commit_lock``
    (the position file), ``_lock`` (segments and counters; never held across reads).
    """

    def __init__(self, config: SpoolConfig) -> None:
        self._config = config
        self._dir = Path(config.directory)
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
        self._segments = {}  # ascending ids (insertion order)
        self._active = None
        self._next_id = 1
        self._read_pos = SpoolPosition(0, 0)
        self._pending_records = 0
        self._disk_bytes = 0
        self._doomed = []  # committed segments awaiting deletion
        # Group commit: each write gets a sequence number; one fsync covers every write before
        # it, so concurrent appends share fsyncs instead of queueing behind each other.
        self._write_seq = 0
        self._synced_seq = 0
        self._unsafe = (1, 0)  # seqs whose fsync failed (lo, hi); empty while lo > hi
        self._roll_next = False

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory and resume what is on disk (see ``_recovery.py``). Raises
        ``ConfigError`` if the directory cannot be used. A disabled spool still resumes an
        existing directory, so its records get replayed; it takes no appends."""
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

    def _recover(self) -> None:
        # Holds _lock, just after _reset: the state becomes what the directory holds.
        found = recover(self._dir, self.stats)
        self._segments = found.segments
        self._read_pos = found.read_pos
        self._next_id = found.next_id
        self._pending_records = found.pending_records
        self._disk_bytes = found.disk_bytes

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
