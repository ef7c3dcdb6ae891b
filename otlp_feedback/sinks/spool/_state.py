"""What the spool's parts share: positions, batches, counters, the segment table entry, and the
attributes of one ``Spool`` that its writer, reader and lifecycle all work on.

Who uses it: every module of this package. ``_SpoolState`` only declares; ``_spool.py`` sets the
attributes (``Spool.__init__``/``_reset``). The writer and the reader are mixins over this one
state rather than separate objects because they share a segment table, its counters and one
lock (``_lock``); splitting the state would mean splitting that lock, and the lock order
documented on ``Spool`` is what keeps appends, fsyncs and commits from racing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from otlp_feedback.config import SpoolConfig
from otlp_feedback.encoding.outbound import OutboundRecord


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
class Segment:
    id: int
    path: Path
    size: int  # bytes fully written; readers never look past it
    fd: int | None = None  # only the active segment is open for writing
    bad: dict[int, int] = field(default_factory=dict)  # damaged region start -> end


def segment_path(directory: Path, sid: int) -> Path:
    """``NNNNNNNNNNNNNNNNNNNN.seg``: 20 digits, so names sort like ids."""
    return directory / f"{sid:020d}.seg"


class _SpoolState:
    """The attributes of a ``Spool`` (see ``_spool.py`` for their meaning and lock order)."""

    _config: SpoolConfig
    _dir: Path
    stats: SpoolStats
    _lock: threading.Lock
    _sync_lock: threading.Lock
    _commit_lock: threading.Lock
    _stop: threading.Event
    _open: bool
    # the segment table and its counters (under _lock)
    _segments: dict[int, Segment]
    _active: Segment | None
    _next_id: int
    _read_pos: SpoolPosition
    _pending_records: int
    _disk_bytes: int
    _doomed: list[Path]
    # group commit (see _writer.py)
    _write_seq: int
    _synced_seq: int
    _unsafe: tuple[int, int]
    _roll_next: bool

    def _retire_active(self) -> None:
        """Close the segment being written without an fsync; implemented in ``_writer.py``,
        called by ``_reader.py`` when a commit covers all of it."""
        raise NotImplementedError
