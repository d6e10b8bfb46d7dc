"""Presence: an induction loop or light beam on a GPIO input, and holding the barrier open.

:class:`PresenceSensor` reports a vehicle arriving on and leaving the loop (a lane uses the
arrival to start a pass). :class:`HoldOpen` keeps an *already open* barrier open while a vehicle
is under it by re-arming the driver's pulse every ``pulse_seconds / 2``; once the vehicle has left
the pulse simply runs out. Nothing here ever commands the barrier closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from gpiozero import DigitalInputDevice, GPIOZeroError

from hardware.barrier import Barrier
from hardware.errors import BarrierError, DeviceClosed, HardwareConfigError, SensorError

__all__ = ["HoldOpen", "PresenceSensor"]

logger = logging.getLogger(__name__)

Callback = Callable[[], object]


class PresenceSensor:
    """A vehicle detector on one GPIO input.

    ``pull_up``/``active_state`` mean what they mean in gpiozero's ``DigitalInputDevice``: the
    default (``pull_up=False``) is a detector that drives the pin high while a vehicle is
    present; a dry relay contact to ground wants ``pull_up=True`` (active low); with
    ``pull_up=None`` (external resistor) give ``active_state`` explicitly.

    ``when_arrived``/``when_left`` hold one callback each (gpiozero style); :meth:`subscribe`
    adds further listeners (the lane, :class:`HoldOpen`). Callbacks run on the GPIO event thread
    and must be quick.
    """

    def __init__(
        self,
        pin: int | str,
        *,
        pull_up: bool | None = False,
        active_state: bool | None = None,
        bounce_time: float | None = None,
        pin_factory: Any = None,
        name: str = "presence",
    ) -> None:
        self.name = name
        self.when_arrived: Callback | None = None
        self.when_left: Callback | None = None
        self._listeners: list[tuple[Callback | None, Callback | None]] = []
        self._lock = threading.Lock()
        self._arrived_at: float | None = None
        self._closed = False
        try:
            self._device = DigitalInputDevice(
                pin,
                pull_up=pull_up,
                active_state=active_state,
                bounce_time=bounce_time,
                pin_factory=pin_factory,
            )
        except GPIOZeroError as exc:
            raise SensorError(f"cannot set up presence input {pin!r}: {exc}") from exc
        self.pin = self._device.pin
        if self._device.is_active:
            self._arrived_at = time.monotonic()
        self._device.when_activated = self._arrived
        self._device.when_deactivated = self._left

    @property
    def is_present(self) -> bool:
        """True while a vehicle is detected."""
        if self._closed:
            raise DeviceClosed(f"{self.name} is closed")
        return bool(self._device.is_active)

    @property
    def arrived_at(self) -> float | None:
        """``time.monotonic`` of the current vehicle's arrival, None when nobody is there."""
        return self._arrived_at

    def wait_for_arrival(self, timeout: float | None = None) -> bool:
        """Block until a vehicle is present (immediately if one is); False on timeout."""
        if self._closed:
            raise DeviceClosed(f"{self.name} is closed")
        return bool(self._device.wait_for_active(timeout))

    def wait_for_departure(self, timeout: float | None = None) -> bool:
        """Block until no vehicle is present; False on timeout."""
        if self._closed:
            raise DeviceClosed(f"{self.name} is closed")
        return bool(self._device.wait_for_inactive(timeout))

    def subscribe(
        self, *, arrived: Callback | None = None, left: Callback | None = None
    ) -> Callable[[], None]:
        """Add listeners for arrivals and departures; returns a function that removes them."""
        entry = (arrived, left)
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return unsubscribe

    def _arrived(self) -> None:
        self._arrived_at = time.monotonic()
        logger.info("%s: vehicle arrived", self.name)
        with self._lock:
            callbacks = [self.when_arrived, *(a for a, _ in self._listeners)]
        self._dispatch(callbacks, "arrival")

    def _left(self) -> None:
        stayed = time.monotonic() - self._arrived_at if self._arrived_at is not None else None
        self._arrived_at = None
        logger.info("%s: vehicle left (present %ss)", self.name, stayed and round(stayed, 2))
        with self._lock:
            callbacks = [self.when_left, *(left for _, left in self._listeners)]
        self._dispatch(callbacks, "departure")

    def _dispatch(self, callbacks: list[Callback | None], what: str) -> None:
        for callback in callbacks:
            if callback is None:
                continue
            # One failing listener must not stop the others (e.g. the hold-open) from hearing
            # about the vehicle; the failure is logged with its traceback, not swallowed.
            try:
                callback()
            except Exception:
                logger.exception("%s: %s callback %r failed", self.name, what, callback)

    def close(self) -> None:
        """Release the input. Safe to repeat."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._listeners.clear()
        self._device.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"present={self.is_present}"
        return f"<PresenceSensor {self.name} {self.pin} {state}>"


class HoldOpen:
    """Keep ``barrier`` open while ``sensor`` sees a vehicle.

    While a vehicle is present and the barrier is open, the pulse is re-armed to
    ``pulse_seconds`` every ``pulse_seconds / 2``, so the output never drops under a car. A closed
    barrier is not opened by a vehicle on the loop (that is the lane's decision) unless
    ``open_on_arrival=True`` (e.g. a free exit). After the vehicle leaves, the last pulse runs out
    in the driver: the barrier reverts ``pulse_seconds / 2 .. pulse_seconds`` later.
    """

    def __init__(
        self,
        sensor: PresenceSensor,
        barrier: Barrier,
        *,
        pulse_seconds: float = 2.0,
        open_on_arrival: bool = False,
        name: str = "hold-open",
    ) -> None:
        if not pulse_seconds > 0:
            raise HardwareConfigError(f"pulse_seconds must be > 0, got {pulse_seconds!r}")
        self.sensor = sensor
        self.barrier = barrier
        self.pulse_seconds = float(pulse_seconds)
        self.open_on_arrival = open_on_arrival
        self.name = name
        self.rearms = 0
        self._wake = threading.Condition()
        self._stop = False
        self._unsubscribe = sensor.subscribe(arrived=self._poke, left=self._poke)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _poke(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _run(self) -> None:
        interval = self.pulse_seconds / 2
        arrival_seen: float | None = None
        with self._wake:
            while not self._stop:
                arrived_at = self.sensor.arrived_at
                if arrived_at is None:
                    self._wake.wait()
                    continue
                first = arrived_at != arrival_seen
                arrival_seen = arrived_at
                self._hold(opening=first and self.open_on_arrival)
                self._wake.wait(interval)

    def _hold(self, *, opening: bool) -> None:
        if not (opening or self.barrier.is_open):
            return
        try:
            self.barrier.pulse_open(self.pulse_seconds)
        except DeviceClosed:
            logger.warning("%s: barrier closed; stopping", self.name)
            self._stop = True
            return
        except BarrierError as exc:
            logger.error("%s: could not re-arm the barrier: %s", self.name, exc)
            return
        self.rearms += 1

    def close(self) -> None:
        """Stop holding (the current pulse still runs out normally). Safe to repeat."""
        with self._wake:
            if self._stop and not self._thread.is_alive():
                return
            self._stop = True
            self._wake.notify_all()
        self._unsubscribe()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
