"""DryRunBarrier behaves like a real barrier in time and records what it was told."""

from __future__ import annotations

import time

import pytest

from devservices import wait_for
from hardware import Barrier, DeviceClosed, DryRunBarrier


def test_records_pulses_and_output_changes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="hardware.barrier")
    with DryRunBarrier(pulse_seconds=0.15) as barrier:
        assert isinstance(barrier, Barrier)
        pulse = barrier.pulse_open()
        assert barrier.is_open
        assert barrier.pulses == [pulse]
        wait_for(lambda: not barrier.is_open, timeout=3, what="revert")
        (t_on, on), (t_off, off) = barrier.events
        assert (on, off) == ("on", "off")
        assert t_off - t_on == pytest.approx(0.15, abs=0.08)
        assert barrier.last_pulse == pulse
    assert "output on (dry run)" in caplog.text


def test_rearm_is_recorded_separately() -> None:
    with DryRunBarrier(pulse_seconds=0.2) as barrier:
        first = barrier.pulse_open()
        second = barrier.pulse_open(0.5)
        assert barrier.pulses == [first]
        assert barrier.rearms == [second]
        assert second.revert_at == pytest.approx(first.commanded_at + 0.5, abs=0.02)
        barrier.pulse_open()  # shorter than what is left: changes nothing
        assert barrier.last_pulse is not None
        assert barrier.last_pulse.revert_at == second.revert_at
        assert [e for _, e in barrier.events] == ["on"]


def test_close_reverts_and_refuses_new_pulses() -> None:
    barrier = DryRunBarrier(pulse_seconds=60)
    barrier.pulse_open()
    started = time.monotonic()
    barrier.close()
    assert time.monotonic() - started < 1
    assert [e for _, e in barrier.events] == ["on", "off"]
    barrier.close()
    with pytest.raises(DeviceClosed):
        barrier.pulse_open()
    assert isinstance(DeviceClosed("x"), RuntimeError)
