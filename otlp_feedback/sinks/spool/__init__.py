"""The durable disk spool: accepted records wait here while Kafka cannot take them.

Who calls it: ``sinks/failover.py``. Request threads ``append`` (durable per ``spool.fsync``
before it returns, so the receiver may answer OK); the one replayer thread ``peek``s the oldest
records, produces them and ``commit``s them once Kafka confirmed them. ``open`` resumes whatever
a crash left behind. Delivery is at-least-once: after a crash a batch may be replayed twice, but
a record whose ``append`` returned is never lost (process crash: any ``fsync`` mode; machine
crash: ``always``, or within ``fsync_interval_ms`` for ``interval``).

On disk, in ``spool.directory``:

- ``NNNNNNNNNNNNNNNNNNNN.seg`` -- segments with 20-digit, ever-increasing ids; each is a plain
  run of CRC-checked frames, one per record (layout: ``_frame.py``). One ``append`` call is one
  contiguous ``pwrite`` into one segment (``_writer.py``).
- ``position`` -- the commit point: everything before it was delivered (``_position.py``).
- ``lock`` -- ``flock``ed while the spool is open: one process per directory (``_spool.py``).

The modules, in the order data passes through them:

- ``_frame.py``     the record frame codec: encode/decode, CRC, the resynchronising scan
- ``_writer.py``    segments, ``append``, the fsync policy (group commit) and its thread
- ``_reader.py``    ``peek``/``commit`` for the replayer
- ``_position.py``  the commit point file
- ``_recovery.py``  what ``open`` does with what a crash left: skip damage, cut torn tails
- ``_state.py``     the shared state and value types; ``_spool.py`` the ``Spool`` itself
"""

from otlp_feedback.sinks.spool._frame import MAGIC, decode_payload, encode_frame
from otlp_feedback.sinks.spool._spool import Spool
from otlp_feedback.sinks.spool._state import SpoolBatch, SpoolPosition, SpoolStats
from otlp_feedback.sinks.spool._writer import RETRY_AFTER_S

__all__ = [
    "MAGIC",
    "RETRY_AFTER_S",
    "Spool",
    "SpoolBatch",
    "SpoolPosition",
    "SpoolStats",
    "decode_payload",
    "encode_frame",
]
