"""Type stub of the C extension ``_native.c`` (see ``otlp_feedback.native``)."""

from typing import Any

from otlp_feedback.encoding.outbound import OutboundRecord

MAX_DIGIT_RUNS: int

class Plan:
    def __init__(
        self,
        record_class: type[OutboundRecord],
        namespace: bytes,
        limits: tuple[Any, ...],
        redaction: Any,  # native.RedactionGate (read by attribute)
        set_aside: tuple[str, ...],
        evaluation_event: str,
        types: tuple[tuple[Any, ...], ...],
    ) -> None: ...
    def export_logs(
        self, payload: bytes, received_ns: int, client_id: str | None, /
    ) -> tuple[list[OutboundRecord | None], list[tuple[int, int, int]], int] | None: ...

def sha1_hex(data: bytes, /) -> str: ...
def micros(ns: int, /) -> int | None: ...
def gate_fires(gate: Any, text: str, /) -> bool: ...
def has_control(text: str, /) -> bool: ...
def set_gil_release_bytes(size: int, /) -> int: ...
