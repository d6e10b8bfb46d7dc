"""``GET /health``: the process serves, and how its periodic jobs are doing (open: no data)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from cloud_api.periodic import PeriodicJob

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="ok, or degraded when a periodic job's last round failed (runs, failures per job)",
)
def health(request: Request) -> dict[str, Any]:
    jobs: list[PeriodicJob] = request.app.state.jobs
    failing = [job.name for job in jobs if job.health.failing]
    return {
        "status": "degraded" if failing else "ok",
        "failing": failing,
        "jobs": {job.name: job.health.as_dict() for job in jobs},
    }
