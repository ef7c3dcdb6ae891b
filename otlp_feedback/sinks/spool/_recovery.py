"""Recovery: what ``Spool.open`` finds on disk after a clean stop or a crash.

Who calls it: ``Spool.open`` (holding ``_lock``, with the directory locked), once per open.

Segments older than the commit point (``_position.py``) are deleted; the rest are scanned from
the commit point frame by frame (``_frame.scan``). A frame whose magic, length or CRC is wrong
starts a damaged region, and the scan re-synchronises at the next offset where a whole valid
frame starts (found by searching for the magic). A damaged region followed by valid frames is
skipped, logged and counted in ``stats.corrupt_records`` (one per region), and remembered in
``Segment.bad`` so the reader steps over it without counting it again; one that runs to the end
of its segment is a torn write (a crash mid-append) and is truncated away, counted in
``stats.truncated_bytes``. Empty or fully delivered segments are deleted.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
from pathlib import Path
from typing import NamedTuple

from otlp_feedback.sinks.spool._frame import scan
from otlp_feedback.sinks.spool._position import POSITION_TMP, read_position
from otlp_feedback.sinks.spool._state import Segment, SpoolPosition, SpoolStats, segment_path

log = logging.getLogger(__package__)  # one logger for the whole spool, as before the split

_SEGMENT_NAME = re.compile(r"^\d{20}\.seg$")


class Recovered(NamedTuple):
    """The spool's state as found on disk."""

    segments: dict[int, Segment]  # ascending ids; none is open for writing
    read_pos: SpoolPosition  # the commit point, (0, 0) without one
    next_id: int  # for the next new segment: ids are never reused
    pending_records: int  # good frames after the commit point
    disk_bytes: int  # sizes of the segments kept


def recover(directory: Path, stats: SpoolStats) -> Recovered:
    """Load the commit point and scan every segment after it, deleting what is delivered and
    truncating torn tails; counts into ``stats``. Raises ``OSError``."""
    (directory / POSITION_TMP).unlink(missing_ok=True)
    pos = read_position(directory)
    ids = sorted(int(p.name[:20]) for p in directory.iterdir() if _SEGMENT_NAME.match(p.name))
    next_id = max([*ids, pos.segment if pos else 0]) + 1  # ids are never reused
    read_pos = pos or SpoolPosition(0, 0)
    segments: dict[int, Segment] = {}
    pending_records = disk_bytes = 0
    for sid in ids:
        path = segment_path(directory, sid)
        start = read_pos.offset if sid == read_pos.segment else 0
        if sid < read_pos.segment:
            path.unlink()
            stats.segments_deleted += 1
            continue
        seg, good = _recover_segment(sid, path, start, stats)
        pending_records += good
        if seg.size == 0 or seg.size <= start:  # empty, or delivered in full
            path.unlink()
            stats.segments_deleted += 1
            continue
        segments[sid] = seg
        disk_bytes += seg.size
    return Recovered(segments, read_pos, next_id, pending_records, disk_bytes)


def _recover_segment(sid: int, path: Path, start: int, stats: SpoolStats) -> tuple[Segment, int]:
    """The segment as found from ``start``, with its torn tail cut, and its good frame count."""
    seg = Segment(sid, path, path.stat().st_size)
    good = 0
    if seg.size <= start:
        return seg, good
    torn_at: int | None = None
    with open(path, "r+b") as f:
        with mmap.mmap(f.fileno(), seg.size, access=mmap.ACCESS_READ) as mm:
            for kind, a, b in scan(mm, start, seg.size):
                if kind == "good":
                    good += 1
                elif kind == "bad":
                    seg.bad[a] = b
                    stats.corrupt_records += 1
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
            stats.truncated_bytes += seg.size - torn_at
            seg.size = torn_at
    return seg, good
