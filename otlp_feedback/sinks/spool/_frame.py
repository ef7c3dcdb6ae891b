"""The spool's record frame codec: one ``OutboundRecord`` <-> one CRC-checked frame of bytes.

Who calls it: ``_writer.py`` encodes each appended record; ``_reader.py`` (``peek``) and
``_recovery.py`` (``open``) walk segment bytes with ``scan`` and decode the good frames. Pure
functions over bytes: no files, locks or clock here.

Frame layout (integers little-endian)
-------------------------------------
A segment file is a plain run of frames::

    frame   = magic b"\\xf5\\xd1OF" | crc32 u32 | length u32 | payload (length bytes)
              (the crc covers the length field and the payload)
    payload = version u8 (=1) | flags u8 (bit 0: key present) | topic_len u16
              | event_id_len u16 | event_type_len u8 | key_len u32 | value_len u32
              | header_count u16 | topic | event_id | event_type | key | value
              | header_count x (name_len u16 | value_len u32 | name | value)

The magic lets a scan re-synchronise after damage: ``scan`` searches for it and accepts the
first offset where a whole frame with a matching CRC starts.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from typing import Literal, cast

from otlp_feedback.encoding.outbound import OutboundRecord
from otlp_feedback.errors import EncodingError
from otlp_feedback.events import EventType

MAGIC = b"\xf5\xd1OF"
FRAME = struct.Struct("<4sII")  # magic, crc32, length
LENGTH = struct.Struct("<I")
_RECORD = struct.Struct("<BBHHBIIH")
_HEADER = struct.Struct("<HI")
_unpack_record = _RECORD.unpack_from
_unpack_header = _HEADER.unpack_from
_VERSION = 1
_KEY_PRESENT = 1

Kind = Literal["good", "bad", "torn"]


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
    length = LENGTH.pack(len(payload))
    return FRAME.pack(MAGIC, zlib.crc32(payload, zlib.crc32(length)), len(payload)) + payload


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
    if end - pos < FRAME.size:
        return 0
    magic, crc, length = FRAME.unpack_from(buf, pos)
    if magic != MAGIC or length > end - pos - FRAME.size:
        return 0
    if zlib.crc32(buf[pos + 8 : pos + FRAME.size + length]) != crc:
        return 0
    return FRAME.size + length


def scan(buf: mmap.mmap, start: int, end: int) -> Iterator[tuple[Kind, int, int]]:
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
