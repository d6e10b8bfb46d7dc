"""Barrier drivers: software only ever commands *open*; the driver reverts the output by itself.

``pulse_open()`` switches the output on now and schedules the revert on the driver's own timer
thread, so a lost or forgotten "off" can never leave the relay energised. A call while the
barrier is already open re-arms (extends) the revert deadline; it never shortens it. There is no
close/lower command anywhere; ``close()`` releases the device and reverts the output if needed.

Drivers:

- :class:`GpioBarrier` — a gpiozero ``DigitalOutputDevice`` (relay HAT, opto-isolated input).
- :class:`SerialRelayBarrier` — an LCUS/CH340 USB relay board on a serial port.
- :class:`DryRunBarrier` — logs and records pulses; behaves like a real barrier in time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, Self, runtime_checkable

import serial
from gpiozero import DigitalOutputDevice, GPIOZeroError

from hardware import lcus
from hardware.errors import BarrierError, DeviceClosed, HardwareConfigError

__all__ = [
    "Barrier",
    "DryRunBarrier",
    "GpioBarrier",
    "Pulse",
    "PulsedBarrier",
    "SerialRelayBarrier",
]

logger = logging.getLogger(__name__)

REVERT_RETRY_SECONDS = 0.5  # how soon a failed revert ("off") is retried


@dataclass(frozen=True)
class Pulse:
    """One open pulse: the output went on at ``commanded_at`` and reverts ``seconds`` later.

    A re-arm while open returns the same pulse with a longer ``seconds``.
    """

    started_at: float  # wall clock (time.time) when the output went on
    seconds: float  # total length from commanded_at to the scheduled revert
    commanded_at: float  # time.monotonic when the output went on

    @property
    def revert_at(self) -> float:
        """``time.monotonic`` deadline of the revert."""
        return self.commanded_at + self.seconds


@runtime_checkable
class Barrier(Protocol):
    """What the lane needs from a barrier."""

    def pulse_open(self, seconds: float | None = None) -> Pulse: ...

    @property
    def is_open(self) -> bool: ...

    @property
    def last_pulse(self) -> Pulse | None: ...

    def close(self) -> None: ...


def _check_seconds(seconds: float, what: str = "pulse_seconds") -> float:
    value = float(seconds)
    if not value > 0:
        raise HardwareConfigError(f"{what} must be > 0, got {seconds!r}")
    return value


class PulsedBarrier:
    """Base of the drivers: pulse bookkeeping and the revert timer thread.

    Subclasses implement ``_drive(on)`` (raise :class:`BarrierError` on failure) and
    ``_release()``. Both are called with the internal lock held, so writes never interleave.
    """

    def __init__(self, *, pulse_seconds: float = 1.0, name: str = "barrier") -> None:
        self.pulse_seconds = _check_seconds(pulse_seconds)
        self.name = name
        self._cond = threading.Condition()
        self._pulse: Pulse | None = None  # the pulse in progress
        self._last_pulse: Pulse | None = None
        self._revert_at: float | None = None  # may move later than the pulse on a failed revert
        self._closed = False
        self._thread: threading.Thread | None = None

    def _start_timer(self) -> None:
        self._thread = threading.Thread(
            target=self._revert_loop, name=f"{self.name}-revert", daemon=True
        )
        self._thread.start()

    # -- the driver seam -------------------------------------------------------------------
    def _drive(self, on: bool) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Free the underlying device (called once, after the final revert)."""

    # -- public API ------------------------------------------------------------------------
    def pulse_open(self, seconds: float | None = None) -> Pulse:
        """Switch the output on now; it reverts by itself after ``seconds`` (default pulse_seconds).

        While already open, the revert deadline is extended to at least ``now + seconds`` and the
        extended pulse is returned. Raises :class:`BarrierError` if the output cannot be driven.
        """
        length = self.pulse_seconds if seconds is None else _check_seconds(seconds, "seconds")
        with self._cond:
            if self._closed:
                raise DeviceClosed(f"{self.name} is closed")
            self._drive(True)
            now = time.monotonic()
            current = self._pulse
            if current is None:
                pulse = Pulse(started_at=time.time(), seconds=length, commanded_at=now)
                logger.info("%s: open pulse %.2fs", self.name, length)
            else:
                end = max(current.revert_at, now + length)
                pulse = replace(current, seconds=end - current.commanded_at)
                logger.debug("%s: pulse re-armed, revert in %.2fs", self.name, end - now)
            self._pulse = self._last_pulse = pulse
            self._revert_at = pulse.revert_at
            self._cond.notify_all()
            return pulse

    @property
    def is_open(self) -> bool:
        """True while the output is on (from the pulse until the revert succeeded)."""
        with self._cond:
            return self._pulse is not None

    @property
    def last_pulse(self) -> Pulse | None:
        with self._cond:
            return self._last_pulse

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Revert immediately if open, stop the timer and release the device. Safe to repeat."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._pulse is not None:
                try:
                    self._drive(False)
                except BarrierError:
                    logger.exception("%s: could not revert the output on close", self.name)
                self._pulse = None
                self._revert_at = None
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._cond:
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the revert timer ------------------------------------------------------------------
    def _revert_loop(self) -> None:
        with self._cond:
            while not self._closed:
                if self._revert_at is None:
                    self._cond.wait()
                    continue
                remaining = self._revert_at - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._revert_locked()

    def _revert_locked(self) -> None:
        try:
            self._drive(False)
        except BarrierError as exc:
            logger.error("%s: revert failed (%s); retrying", self.name, exc)
            self._revert_at = time.monotonic() + REVERT_RETRY_SECONDS
            return
        pulse = self._pulse
        if pulse is not None:
            late = time.monotonic() - pulse.revert_at
            logger.info(
                "%s: pulse ended after %.2fs (%+.1f ms late)", self.name, pulse.seconds, late * 1e3
            )
        self._pulse = None
        self._revert_at = None


class GpioBarrier(PulsedBarrier):
    """A barrier driven by one GPIO output (relay module or opto input of the barrier controller).

    The pin is driven to its inactive level at construction. ``active_high=False`` is for relay
    modules that switch on when the input is pulled low.
    """

    def __init__(
        self,
        pin: int | str,
        *,
        active_high: bool = True,
        pulse_seconds: float = 1.0,
        pin_factory: Any = None,
        name: str = "gpio-barrier",
    ) -> None:
        super().__init__(pulse_seconds=pulse_seconds, name=name)
        try:
            self._device = DigitalOutputDevice(
                pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
            )
        except GPIOZeroError as exc:
            raise BarrierError(f"cannot set up GPIO {pin!r} for the barrier: {exc}") from exc
        self.pin = self._device.pin
        self._start_timer()

    def _drive(self, on: bool) -> None:
        try:
            if on:
                self._device.on()
            else:
                self._device.off()
        except GPIOZeroError as exc:
            raise BarrierError(f"{self.name}: cannot drive {self.pin}: {exc}") from exc

    def _release(self) -> None:
        self._device.close()

    def __repr__(self) -> str:
        return f"<GpioBarrier {self.pin} open={self.is_open}>"


class SerialRelayBarrier(PulsedBarrier):
    """A barrier on one channel of an LCUS/CH340-style USB relay board.

    The port is opened (and the relay switched off) at construction. A failed write raises
    :class:`BarrierError` and drops the port; the next pulse (or revert retry) reopens it.
    """

    def __init__(
        self,
        port: str,
        *,
        channel: int = 1,
        baudrate: int = 9600,
        pulse_seconds: float = 1.0,
        serial_factory: Callable[..., serial.Serial] = serial.Serial,
        write_timeout: float = 1.0,
        name: str = "serial-barrier",
    ) -> None:
        super().__init__(pulse_seconds=pulse_seconds, name=name)
        self.port = port
        self.channel = channel
        self.baudrate = baudrate
        self._on_frame = lcus.encode_frame(channel, True)  # validates the channel
        self._off_frame = lcus.encode_frame(channel, False)
        self._serial_factory = serial_factory
        self._write_timeout = write_timeout
        self._serial: serial.Serial | None = None
        with self._cond:
            self._drive(False)  # known state: relay off
        self._start_timer()

    def _open_port(self) -> serial.Serial:
        try:
            return self._serial_factory(
                self.port, baudrate=self.baudrate, timeout=0, write_timeout=self._write_timeout
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BarrierError(f"{self.name}: cannot open {self.port}: {exc}") from exc

    def _drive(self, on: bool) -> None:
        if self._serial is None:
            self._serial = self._open_port()
            logger.info("%s: opened %s (channel %d)", self.name, self.port, self.channel)
        frame = self._on_frame if on else self._off_frame
        try:
            self._serial.write(frame)
            self._serial.flush()
        except (serial.SerialException, OSError) as exc:
            self._drop_port()
            raise BarrierError(f"{self.name}: write to {self.port} failed: {exc}") from exc

    def _drop_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                logger.debug("%s: closing %s failed: %s", self.name, self.port, exc)

    def _release(self) -> None:
        self._drop_port()

    def __repr__(self) -> str:
        return f"<SerialRelayBarrier {self.port} ch{self.channel} open={self.is_open}>"


class DryRunBarrier(PulsedBarrier):
    """No hardware: logs every command and records pulses, with real revert timing.

    ``pulses`` holds every pulse as first commanded (re-arms are in ``rearms``); ``events`` holds
    ``(time.monotonic, "on"|"off")`` output changes, like a mock pin's state history.
    """

    def __init__(self, *, pulse_seconds: float = 1.0, name: str = "dry-run-barrier") -> None:
        super().__init__(pulse_seconds=pulse_seconds, name=name)
        self.pulses: list[Pulse] = []
        self.rearms: list[Pulse] = []
        self.events: list[tuple[float, str]] = []
        self._output = False
        self._start_timer()

    def _drive(self, on: bool) -> None:
        if on != self._output:
            self._output = on
            self.events.append((time.monotonic(), "on" if on else "off"))
            logger.info("%s: output %s (dry run)", self.name, "on" if on else "off")

    def pulse_open(self, seconds: float | None = None) -> Pulse:
        with self._cond:
            was_open = self._pulse is not None
            pulse = super().pulse_open(seconds)
            (self.rearms if was_open else self.pulses).append(pulse)
            return pulse

    def __repr__(self) -> str:
        return f"<DryRunBarrier open={self.is_open} pulses={len(self.pulses)}>"
