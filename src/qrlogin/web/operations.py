"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from qrlogin.core.machine import Status
from qrlogin.web import deps
from qrlogin.web.lean import hot
from qrlogin.web.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
@hot
async def healthz() -> Health:
    """The process is alive (says nothing about its database or bus), and which it is."""
    return Health(worker=os.getpid())  # the worker's, after the fork


async def _check(probe: object) -> bool:
    try:
        return bool(await asyncio.wait_for(probe, 3))  # type: ignore[arg-type]
    except Exception:
        return False


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database answers and the event bus is connected. 503 otherwise, so
    a load balancer sends traffic elsewhere while this instance keeps running."""
    svc = deps.services(request)
    database = await _check(svc.store.ping())
    bus = await _check(svc.bus.healthy())
    if not database:
        svc.metrics.database_errors.inc()
    body = Readiness(
        status="ready" if database and bus else "unavailable",
        database="ok" if database else "unavailable",
        bus="ok" if bus else "unavailable",
    )
    return JSONResponse(body.model_dump(), status_code=200 if database and bus else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus metrics, in its text format."""
    svc = deps.services(request)
    try:
        counts = await svc.store.count_by_status()
    except Exception:
        svc.metrics.database_errors.inc()
        counts = None
    if counts is not None:
        for status in Status:
            svc.metrics.requests_by_state.labels(status.value).set(counts.get(status.value, 0))
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
