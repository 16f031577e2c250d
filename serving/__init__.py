"""What the app serves to programs beside its page: the OpenAI API (/v1), Prometheus metrics (/metrics),
and the health checks a container platform probes (/healthz, /readyz).

Both go on gradio's own server, on the app's port. Gradio's login does not
cover them, so app.py turns them off where the app is open to others
(--share or --auth) without an API key.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from .openai_api import ApiError, router as openai_router


def routes(slot, api_key: str | None) -> list:
    """The routes, for FastAPI(routes=...); with api_key, each asks for `Authorization: Bearer <api_key>`."""

    async def check_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise ApiError(401, "a valid API key is required: send `Authorization: Bearer <key>` (the key given "
                           "with --api-key or PLAYGROUND_API_KEY)", code="invalid_api_key")

    machine = APIRouter(dependencies=[Depends(check_key)])
    machine.include_router(openai_router(slot))

    @machine.get("/metrics")
    def metrics():
        return Response(slot.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return machine.routes


def health_routes(slot) -> list:
    """/healthz: the server answers (liveness). /readyz: the model is loaded and its scheduler runs
    (readiness), so a load balancer sends no one to a pod still loading. They say nothing private,
    so they need no key."""
    health = APIRouter()

    @health.get("/healthz")
    def alive():
        return {"status": "ok"}

    @health.get("/readyz")
    def ready():
        info = slot.engine.info() if slot.ready() else None
        if info is None or info.get("stopped_by"):
            return JSONResponse({"status": "not ready", "detail": slot.status()}, status_code=503)
        return {"status": "ready", "model": info["model"]}

    return health.routes


async def api_error_response(request: Request, exc: ApiError):
    return exc.response()
