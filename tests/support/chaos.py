"""Whole-chain chaos: every process of the chain run as a :class:`Service` (its own OS process,
its output appended to a log file), and a :class:`ChaosMonkey` that SIGKILLs them on a seeded
schedule, starts each again at once and times how long it takes to be ready.

Ready is observed from the outside: a probe (the API answers, the broker accepts) or new lines
in a log (the broker logs every client that connects, with its login, so a restarted relay,
ingest or agent is ready when its login shows up there once more).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devservices import REPO_ROOT, wait_for

__all__ = ["ChaosMonkey", "Kill", "LogMark", "Service", "kill_plan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogMark:
    """``text`` appearing once more in the log file ``path``."""

    path: Path
    text: str

    def count(self) -> int:
        try:
            return self.path.read_bytes().count(self.text.encode())
        except FileNotFoundError:
            return 0


@dataclass
class Service:
    """One process of the chain: started, SIGKILLed and started again by the monkey."""

    kind: str
    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    probe: Callable[[], object] | None = None
    marks: Sequence[LogMark] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv),
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def readiness(self) -> Callable[[], bool]:
        """A predicate that turns true once this service is ready after now (call it before
        :meth:`start`: it counts the log marks seen so far)."""
        seen = [mark.count() for mark in self.marks]

        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log}")
            marked = all(m.count() > n for m, n in zip(self.marks, seen, strict=True))
            return marked and (self.probe is None or bool(self.probe()))

        return ready

    def start_ready(self, timeout: float = 30) -> float:
        """Start and wait until ready; returns the seconds it took."""
        ready = self.readiness()
        started = time.monotonic()
        self.start()
        wait_for(ready, timeout=timeout, interval=0.02, what=f"{self.name} ready")
        return time.monotonic() - started


def kill_plan(rng: random.Random, kinds: Sequence[str], *, each: int, total: int) -> list[str]:
    """The kinds to kill in order: every kind ``each`` times, the rest up to ``total`` drawn at
    random, shuffled."""
    plan = [kind for kind in kinds for _ in range(each)]
    plan += [rng.choice(list(kinds)) for _ in range(max(0, total - len(plan)))]
    rng.shuffle(plan)
    return plan


@dataclass(frozen=True)
class Kill:
    kind: str
    name: str
    at_s: float  # after the monkey started
    recovery_s: float  # SIGKILL → the new process ready


class ChaosMonkey:
    """Walks ``plan`` in a thread: waits a random gap, SIGKILLs a random service of the kind,
    starts it again and waits until it is ready (so kills never overlap), records a
    :class:`Kill`."""

    def __init__(
        self,
        services: Mapping[str, Sequence[Service]],
        plan: Sequence[str],
        rng: random.Random,
        *,
        gap_s: tuple[float, float],
    ) -> None:
        self._services = services
        self._plan = list(plan)
        self._rng = rng
        self._gap = gap_s
        self.kills: list[Kill] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-monkey", daemon=True)

    def start(self) -> ChaosMonkey:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        began = time.monotonic()
        try:
            for kind in self._plan:
                if self._stop.wait(self._rng.uniform(*self._gap)):
                    return
                service = self._rng.choice(list(self._services[kind]))
                at = time.monotonic() - began
                ready = service.readiness()
                service.kill()
                killed = time.monotonic()
                service.start()
                wait_for(ready, timeout=60, interval=0.02, what=f"{service.name} ready")
                recovery = time.monotonic() - killed
                self.kills.append(Kill(kind, service.name, at, recovery))
                log.info("chaos: killed %s at %.1f s, ready in %.2f s", service.name, at, recovery)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.done.set()
