"""PresenceSensor on a MockFactory input pin, and HoldOpen keeping a mock output pin high."""

from __future__ import annotations

import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from devservices import wait_for
from hardware import (
    DeviceClosed,
    DryRunBarrier,
    GpioBarrier,
    HardwareConfigError,
    HoldOpen,
    PresenceSensor,
    SensorError,
)

LOOP_PIN, BARRIER_PIN = 5, 17


def test_arrival_and_departure_callbacks(pins: MockFactory) -> None:
    events: list[str] = []
    with PresenceSensor(LOOP_PIN, pin_factory=pins) as sensor:
        pin = pins.pin(LOOP_PIN)
        sensor.when_arrived = lambda: events.append("arrived")
        sensor.when_left = lambda: events.append("left")
        assert not sensor.is_present
        assert sensor.arrived_at is None
        pin.drive_high()
        assert sensor.is_present
        assert sensor.arrived_at is not None
        pin.drive_high()  # no edge, no event
        pin.drive_low()
        assert not sensor.is_present
        assert sensor.arrived_at is None
        assert events == ["arrived", "left"]


def test_pull_up_sensor_is_active_low(pins: MockFactory) -> None:
    with PresenceSensor(LOOP_PIN, pull_up=True, pin_factory=pins) as sensor:
        pin = pins.pin(LOOP_PIN)
        assert pin.state is True and not sensor.is_present
        pin.drive_low()  # the detector's relay contact closes to ground
        assert sensor.is_present


def test_explicit_active_state_without_pull(pins: MockFactory) -> None:
    with PresenceSensor(LOOP_PIN, pull_up=None, active_state=False, pin_factory=pins) as sensor:
        pin = pins.pin(LOOP_PIN)
        pin.drive_high()
        assert not sensor.is_present
        pin.drive_low()
        assert sensor.is_present


def test_wait_for_arrival(pins: MockFactory) -> None:
    with PresenceSensor(LOOP_PIN, pin_factory=pins) as sensor:
        pin = pins.pin(LOOP_PIN)
        assert sensor.wait_for_arrival(timeout=0.01) is False
        car = threading.Timer(0.05, pin.drive_high)
        car.start()
        assert sensor.wait_for_arrival(timeout=5) is True
        car.join()
        assert sensor.wait_for_arrival(timeout=0) is True  # already there
        pin.drive_low()
        assert sensor.wait_for_departure(timeout=1) is True


def test_subscribers_all_hear_even_if_one_fails(
    pins: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[str] = []

    def broken() -> None:
        raise RuntimeError("listener bug")

    with PresenceSensor(LOOP_PIN, pin_factory=pins) as sensor:
        pin = pins.pin(LOOP_PIN)
        sensor.subscribe(arrived=broken)
        unsubscribe = sensor.subscribe(
            arrived=lambda: heard.append("a"), left=lambda: heard.append("l")
        )
        pin.drive_high()
        pin.drive_low()
        unsubscribe()
        unsubscribe()
        pin.drive_high()
        assert heard == ["a", "l"]
        assert "listener bug" in caplog.text


def test_close_is_safe_twice_and_releases_the_pin(pins: MockFactory) -> None:
    sensor = PresenceSensor(LOOP_PIN, pin_factory=pins)
    sensor.close()
    sensor.close()
    with pytest.raises(DeviceClosed):
        _ = sensor.is_present
    PresenceSensor(LOOP_PIN, pin_factory=pins).close()  # the pin is free again
    with pytest.raises(SensorError):
        PresenceSensor("GPIO99", pin_factory=pins)


def test_hold_open_keeps_the_barrier_up_while_present(pins: MockFactory) -> None:
    pulse = 0.3
    loop = pins.pin(LOOP_PIN)
    out = pins.pin(BARRIER_PIN)
    with (
        PresenceSensor(LOOP_PIN, pin_factory=pins) as sensor,
        GpioBarrier(BARRIER_PIN, pulse_seconds=pulse, pin_factory=pins) as barrier,
        HoldOpen(sensor, barrier, pulse_seconds=pulse) as hold,
    ):
        out.clear_states()
        barrier.pulse_open()  # the lane decided to open
        loop.drive_high()  # the car drives onto the loop under the barrier
        # it stays there for three pulse lengths; the output must never drop meanwhile
        stay_until = time.monotonic() + 3 * pulse
        while time.monotonic() < stay_until:
            assert out.state is True
            time.sleep(0.01)
        assert hold.rearms >= 4
        loop.drive_low()
        left_at = time.monotonic()
        wait_for(lambda: not barrier.is_open, timeout=3, what="pulse ran out")
        reverted_after = time.monotonic() - left_at
    assert [s.state for s in out.states] == [False, True, False]  # one continuous open
    assert pulse / 2 - 0.08 <= reverted_after <= pulse + 0.08


def test_hold_open_does_not_open_a_closed_barrier(pins: MockFactory) -> None:
    barrier = DryRunBarrier(pulse_seconds=0.2)
    with (
        PresenceSensor(LOOP_PIN, pin_factory=pins) as sensor,
        barrier,
        HoldOpen(sensor, barrier, pulse_seconds=0.1) as hold,
    ):
        pins.pin(LOOP_PIN).drive_high()
        # give the hold thread a few of its 0.05 s rounds: it must not open
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            assert not barrier.is_open
            time.sleep(0.01)
        assert hold.rearms == 0 and barrier.pulses == []
        barrier.pulse_open()  # the lane opens while the car is already on the loop
        wait_for(lambda: hold.rearms >= 1, timeout=2, what="hold-open to take over")
        assert len(barrier.pulses) == 1 and barrier.rearms


def test_hold_open_on_arrival_opens(pins: MockFactory) -> None:
    barrier = DryRunBarrier(pulse_seconds=1.0)
    with (
        PresenceSensor(LOOP_PIN, pin_factory=pins) as sensor,
        barrier,
        HoldOpen(sensor, barrier, pulse_seconds=0.2, open_on_arrival=True),
    ):
        pins.pin(LOOP_PIN).drive_high()
        wait_for(lambda: barrier.is_open, timeout=2, what="open on arrival")
        assert barrier.pulses[0].seconds == pytest.approx(0.2)


def test_hold_open_arguments_and_double_close(pins: MockFactory) -> None:
    with PresenceSensor(LOOP_PIN, pin_factory=pins) as sensor, DryRunBarrier() as b:
        with pytest.raises(HardwareConfigError):
            HoldOpen(sensor, b, pulse_seconds=0)
        hold = HoldOpen(sensor, b, pulse_seconds=1)
        hold.close()
        hold.close()
        assert not [t for t in threading.enumerate() if t.name == "hold-open"]
