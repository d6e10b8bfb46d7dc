"""GpioBarrier on gpiozero MockFactory pins: the pin's timestamped state history is the truth."""

from __future__ import annotations

import time

import pytest
from gpiozero.pins.mock import MockFactory

from devservices import wait_for
from hardware import Barrier, BarrierError, DeviceClosed, GpioBarrier, HardwareConfigError

TOLERANCE = 0.08  # seconds; timer threads on a shared 2-core machine


def states(pin: object) -> list[bool]:
    return [s.state for s in pin.states]  # type: ignore[attr-defined]


def high_duration(pin: object) -> float:
    """Length of the (single) active period: the timestamp of the change back is a delta."""
    history = pin.states  # type: ignore[attr-defined]
    assert len(history) == 3, history
    return float(history[2].timestamp)


def test_pin_is_inactive_output_at_construction(pins: MockFactory) -> None:
    with GpioBarrier(17, pin_factory=pins) as barrier:
        pin = pins.pin(17)
        assert pin.function == "output"
        assert pin.state is False
        assert states(pin) == [False]
        assert barrier.is_open is False
        assert barrier.last_pulse is None
        assert isinstance(barrier, Barrier)


def test_pulse_goes_high_then_reverts_after_pulse_length(pins: MockFactory) -> None:
    with GpioBarrier(17, pulse_seconds=0.25, pin_factory=pins) as barrier:
        pin = pins.pin(17)
        before = time.monotonic()
        pulse = barrier.pulse_open()
        assert time.monotonic() - before < 0.05  # non-blocking
        assert pin.state is True
        assert barrier.is_open
        assert pulse.seconds == pytest.approx(0.25)
        assert barrier.last_pulse == pulse
        assert abs(pulse.started_at - time.time()) < 1.0
        wait_for(lambda: not barrier.is_open, timeout=3, what="revert")
        assert pin.state is False
        assert states(pin) == [False, True, False]
        assert high_duration(pin) == pytest.approx(0.25, abs=TOLERANCE)


def test_explicit_seconds_override_default(pins: MockFactory) -> None:
    with GpioBarrier(17, pulse_seconds=5.0, pin_factory=pins) as barrier:
        barrier.pulse_open(0.1)
        wait_for(lambda: not barrier.is_open, timeout=3, what="revert")
        assert high_duration(pins.pin(17)) == pytest.approx(0.1, abs=TOLERANCE)


def test_active_low_is_inverted(pins: MockFactory) -> None:
    with GpioBarrier(17, active_high=False, pulse_seconds=0.15, pin_factory=pins) as b:
        pin = pins.pin(17)
        assert pin.state is True  # inactive = high for an active-low relay module
        pin.clear_states()  # the mock input floated low before it became an output
        b.pulse_open()
        assert pin.state is False
        wait_for(lambda: not b.is_open, timeout=3, what="revert")
        assert states(pin) == [True, False, True]
        assert high_duration(pin) == pytest.approx(0.15, abs=TOLERANCE)


def test_rearm_extends_the_same_pulse(pins: MockFactory) -> None:
    with GpioBarrier(17, pulse_seconds=0.3, pin_factory=pins) as barrier:
        pin = pins.pin(17)
        first = barrier.pulse_open()
        wait_for(lambda: time.monotonic() >= first.commanded_at + 0.15, what="mid-pulse")
        second = barrier.pulse_open()
        assert second.started_at == first.started_at
        assert second.commanded_at == first.commanded_at
        assert second.seconds == pytest.approx(0.45, abs=0.05)
        shorter = barrier.pulse_open(0.01)  # never shortens a running pulse
        assert shorter.revert_at >= second.revert_at
        wait_for(lambda: not barrier.is_open, timeout=3, what="revert")
        assert states(pin) == [False, True, False]  # one continuous high period
        assert high_duration(pin) == pytest.approx(second.seconds, abs=TOLERANCE)
        assert barrier.last_pulse == second


def test_close_while_open_reverts_immediately_and_twice_is_safe(pins: MockFactory) -> None:
    barrier = GpioBarrier(17, pulse_seconds=30, pin_factory=pins)
    pin = pins.pin(17)
    barrier.pulse_open()
    start = time.monotonic()
    barrier.close()
    assert time.monotonic() - start < 1.0
    assert states(pin) == [False, True, False]
    assert barrier.is_open is False
    barrier.close()
    with pytest.raises(DeviceClosed):
        barrier.pulse_open()
    assert pin.function == "input"  # released by gpiozero


def test_pin_is_free_again_after_close(pins: MockFactory) -> None:
    GpioBarrier(17, pin_factory=pins).close()
    GpioBarrier(17, pin_factory=pins).close()


def test_bad_arguments(pins: MockFactory) -> None:
    with pytest.raises(HardwareConfigError):
        GpioBarrier(17, pulse_seconds=0, pin_factory=pins)
    with pytest.raises(BarrierError) as excinfo:
        GpioBarrier("GPIO99", pin_factory=pins)
    assert isinstance(excinfo.value, OSError)
    with GpioBarrier(17, pin_factory=pins) as barrier, pytest.raises(ValueError):
        barrier.pulse_open(-1)
