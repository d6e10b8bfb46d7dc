"""What a driver touches and sees at the barrier besides the screen: a help button and a lane light.

:class:`HelpButton` is a push button on a GPIO input (gpiozero ``Button``); a press calls its
listeners on gpiozero's event thread, at most once per ``min_interval`` seconds so a driver
leaning on it raises one call, not fifty. :class:`LaneLight` is a red/amber/green light (gpiozero
``TrafficLights``, or an ``LEDBoard`` of two lamps without amber) that shows one colour at a time:
green while the barrier is open, red on a denial, dark when idle. Tests use gpiozero's
``MockFactory``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Self

from gpiozero import Button, GPIOZeroError, LEDBoard, TrafficLights

from hardware.errors import HardwareConfigError, SensorError

__all__ = ["HelpButton", "LaneLight", "LightColour"]

logger = logging.getLogger(__name__)

LightColour = Literal["red", "amber", "green", "off"]


class HelpButton:
    """A driver's help button on one GPIO input (a contact to ground by default: pull-up)."""

    def __init__(
        self,
        pin: int | str,
        *,
        pull_up: bool = True,
        bounce_time: float | None = 0.05,
        min_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        pin_factory: Any = None,
        name: str = "help",
    ) -> None:
        self.name = name
        self.min_interval = min_interval
        self._clock = clock
        self._listeners: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        self._last_press: float | None = None
        self._closed = False
        try:
            self._device = Button(
                pin, pull_up=pull_up, bounce_time=bounce_time, pin_factory=pin_factory
            )
        except GPIOZeroError as exc:
            raise SensorError(f"cannot set up help button {pin!r}: {exc}") from exc
        self.pin = self._device.pin
        self._device.when_pressed = self._pressed

    def subscribe(self, listener: Callable[[], object]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _pressed(self) -> None:
        now = self._clock()
        with self._lock:
            if self._last_press is not None and now - self._last_press < self.min_interval:
                return
            self._last_press = now
            listeners = list(self._listeners)
        logger.info("%s: pressed", self.name)
        for listener in listeners:
            try:
                listener()
            except Exception:  # one failing listener must not silence the others
                logger.exception("%s: listener %r failed", self.name, listener)

    def close(self) -> None:
        """Release the input. Safe to repeat."""
        if self._closed:
            return
        self._closed = True
        self._device.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LaneLight:
    """Red/amber/green lamps of one lane; :meth:`show` lights exactly one (or none)."""

    def __init__(
        self,
        *,
        red: int | str,
        green: int | str,
        amber: int | str | None = None,
        pin_factory: Any = None,
    ) -> None:
        self._has_amber = amber is not None
        try:
            self._lights: TrafficLights | LEDBoard = (
                TrafficLights(red=red, amber=amber, green=green, pin_factory=pin_factory)
                if amber is not None
                else LEDBoard(red=red, green=green, pin_factory=pin_factory)
            )
        except GPIOZeroError as exc:
            raise HardwareConfigError(f"cannot set up lane light {red!r}/{green!r}: {exc}") from exc
        self._closed = False
        self.colour: LightColour = "off"

    def show(self, colour: LightColour) -> None:
        if self._closed:
            return  # the agent is stopping; nothing left to show
        if colour == "amber" and not self._has_amber:
            colour = "off"
        lights = self._lights
        lights.red.value = colour == "red"
        lights.green.value = colour == "green"
        if self._has_amber:
            lights.amber.value = colour == "amber"
        self.colour = colour

    def close(self) -> None:
        """Lamps off and released. Safe to repeat."""
        if self._closed:
            return
        self._closed = True
        self._lights.off()
        self._lights.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
