"""``POST /v1/feedback-tokens``: feedback tokens minted over HTTP, for backends in any language.

Served by the OTLP/HTTP port (``receiver/http.py``: same server, TLS, size cap, status table).
The caller must be allowed to mint: an API key whose ``scopes`` hold ``feedback:mint``, or a
JWT carrying that scope (``RequestGuard.check(..., scope=MINT)``); a feedback token never
mints. The token acts for the caller's own client id. The body is JSON::

    {"session_id": "s-42", "trace_id": "5b8e...", "event_types": ["user_feedback"],
     "ttl_s": 900, "max_events": 20}

(``session_id`` and/or ``trace_id``; the rest optional, with ``tokens.*`` defaults and bounds),
and the answer ``{"token": "...", "expires_at": <unix seconds>, "max_events": N}``. A body
outside the bounds is 400 with the reason; with no ``tokens.signing_key_id`` the path is 404.
Every mint is audited (``token_minted``, the token named by its fingerprint). Pure functions.
"""

from __future__ import annotations

import json
from typing import Any

from otlp_feedback.errors import InvalidRequest
from otlp_feedback.receiver.otlp_json import load_json

MINT_PATH = "/v1/feedback-tokens"
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "session_id": str,
    "trace_id": str,
    "event_types": list,
    "ttl_s": (int, float),
    "max_events": int,
}


def parse(body: bytes) -> dict[str, Any]:
    """The mint request's arguments for ``tokens.mint``. Raises ``InvalidRequest``."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise InvalidRequest(f"unknown fields {unknown}; known: {sorted(_FIELDS)}")
    for name, value in data.items():
        kind = _FIELDS[name]
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise InvalidRequest(f"{name} has the wrong type")
    types = data.get("event_types")
    if types is not None and not all(isinstance(t, str) for t in types):
        raise InvalidRequest("event_types must be a list of strings")
    args = {k: v for k, v in data.items() if v is not None}
    if "event_types" in args:
        args["event_types"] = tuple(args["event_types"])
    return args


def answer(token: str, expires_at: int, max_events: int) -> bytes:
    return json.dumps({"token": token, "expires_at": expires_at, "max_events": max_events}).encode()
