"""The spool's commit point: the ``position`` file, read at ``open`` and written by ``commit``.

Who calls it: ``_reader.py`` (``commit`` writes it before deleting any segment) and
``_recovery.py`` (``open`` reads it to know where replay resumes).

Format (integers little-endian): ``position`` = b"OFSP" | segment u64 | offset u64 | crc32 u32
(the crc covers the first 20 bytes). Everything before (segment, offset) was delivered. It is
written to ``position.tmp`` and ``os.replace``d (with file and directory fsyncs when ``fsync``
is ``always``) before any segment is deleted, so a crash can only leave it older, or unreadable
without fsync (then every segment left is replayed): more replays, never loss. One 24-byte file
per commit is simpler than per-segment markers and costs one rename per replayed batch.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

from otlp_feedback.sinks.spool._frame import LENGTH
from otlp_feedback.sinks.spool._state import SpoolPosition
from otlp_feedback.sinks.spool._writer import fsync_dir

log = logging.getLogger(__package__)  # one logger for the whole spool, as before the split

_POSITION = struct.Struct("<4sQQ")
_POSITION_MAGIC = b"OFSP"
POSITION_FILE = "position"
POSITION_TMP = "position.tmp"


def write_position(directory: Path, pos: SpoolPosition, *, durable: bool) -> None:
    """Atomically replace ``directory/position`` with ``pos``; fsynced when ``durable``.
    Raises ``OSError``."""
    data = _POSITION.pack(_POSITION_MAGIC, pos.segment, pos.offset)
    data += LENGTH.pack(zlib.crc32(data))
    tmp = directory / POSITION_TMP
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / POSITION_FILE)
    if durable:
        fsync_dir(directory)


def read_position(directory: Path) -> SpoolPosition | None:
    """The commit point, or None if there is none or it is damaged (logged: replay all)."""
    path = directory / POSITION_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) == _POSITION.size + 4:
        magic, segment, offset = _POSITION.unpack_from(data)
        (crc,) = LENGTH.unpack_from(data, _POSITION.size)
        if magic == _POSITION_MAGIC and crc == zlib.crc32(data[: _POSITION.size]):
            return SpoolPosition(segment, offset)
    log.warning("spool: %s is damaged; replaying every segment", path)
    return None
