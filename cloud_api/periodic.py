"""The API process's periodic jobs (hold expiry, retention), each in a daemon thread that
survives any exception: a failed round is logged with its traceback, counted, and reported by
``GET /health``; the next round runs on schedule.

A job is a plain callable; :class:`PeriodicJob` owns the thread and the bookkeeping
(:class:`JobHealth`), so the jobs themselves stay free of thread and error plumbing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cloud_api.models import utcnow

__all__ = ["JobHealth", "PeriodicJob"]

log = logging.getLogger(__name__)


@dataclass
class JobHealth:
    """What a job has done so far (``GET /health``)."""

    runs: int = 0
    failures: int = 0
    last_ok_at: datetime | None = None
    last_failed_at: datetime | None = None
    last_error: str | None = None  # the exception's type only: /health is not logged in
    failing: bool = False  # the last round failed

    def as_dict(self) -> dict[str, object]:
        return {
            "runs": self.runs,
            "failures": self.failures,
            "failing": self.failing,
            "last_ok_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
            "last_failed_at": self.last_failed_at.isoformat() if self.last_failed_at else None,
            "last_error": self.last_error,
        }


class PeriodicJob:
    """Runs ``work()`` every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        interval: float,
        work: Callable[[], object],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.name, self.interval, self._work, self._clock = name, interval, work, clock
        self.health = JobHealth()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> PeriodicJob:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def run_once(self) -> bool:
        """One round; False when it failed (logged and counted, never raised)."""
        self.health.runs += 1
        try:
            self._work()
        except Exception as exc:  # any failure: the job must keep its schedule
            log.exception("periodic job %s failed", self.name)
            self.health.failures += 1
            self.health.failing = True
            self.health.last_failed_at = self._clock()
            self.health.last_error = type(exc).__name__
            return False
        self.health.failing = False
        self.health.last_ok_at = self._clock()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
