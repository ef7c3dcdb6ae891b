"""The operator's HTTP endpoint (default ``0.0.0.0:9464``): ``/metrics``, ``/healthz``, ``/readyz``.

- ``/metrics``: Prometheus exposition of ``Telemetry``.
- ``/healthz``: 200 while the process serves (liveness); 503 once shutdown began.
- ``/readyz``: 200 when the receiver serves, schema ids are resolved, and events have somewhere
  to go: the Kafka circuit is closed, or the spool can take them. Else 503 with the reasons
  (e.g. "schema registry unavailable: ..." while the schema bootstrap retries), so Kubernetes
  stops routing to a pod that would only refuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from otlp_feedback.app import FeedbackApp


def readiness_problems(app: FeedbackApp) -> list[str]:
    """Why the app is not ready; empty when it is."""
    problems = []
    if not app.receiver.serving:
        problems.append("receiver is not serving")
    if app.otlp_http is not None and not app.otlp_http.serving:
        problems.append("OTLP/HTTP receiver is not serving")
    not_ready = app.pipeline.not_ready
    if not_ready is not None:
        problems.append(not_ready)
    failover = app.failover
    if failover is not None and failover.breaker.state != "closed" and not failover.can_spool:
        problems.append("Kafka is unavailable and the spool cannot take events")
    return problems


def create_app(app: FeedbackApp) -> Starlette:
    telemetry = app.telemetry

    async def metrics(_: Request) -> Response:
        return Response(telemetry.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        alive = app.receiver.serving
        return JSONResponse({"status": "ok" if alive else "stopping"}, 200 if alive else 503)

    async def readyz(_: Request) -> Response:
        problems = readiness_problems(app)
        body = {"status": "ready" if not problems else "not ready", "problems": problems}
        return JSONResponse(body, 200 if not problems else 503)

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )
