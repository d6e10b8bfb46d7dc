"""SerialRelayBarrier against a SimulatedRelayBoard on a real pty, and the LCUS frame format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import serial

from devservices import wait_for
from hardware import (
    Barrier,
    BarrierError,
    HardwareConfigError,
    SerialRelayBarrier,
    SimulatedRelayBoard,
)
from hardware.lcus import decode_frame, encode_frame

TOLERANCE = 0.08


@pytest.fixture
def board() -> Iterator[SimulatedRelayBoard]:
    with SimulatedRelayBoard(channels=4) as sim:
        yield sim


def test_frame_format() -> None:
    assert encode_frame(1, True) == bytes.fromhex("A0 01 01 A2")
    assert encode_frame(1, False) == bytes.fromhex("A0 01 00 A1")
    assert encode_frame(2, 1) == bytes.fromhex("A0 02 01 A3")
    assert encode_frame(16, 1) == bytes([0xA0, 16, 1, (0xA0 + 17) & 0xFF])
    assert decode_frame(bytes.fromhex("A0 03 01 A4")) == (3, 1)
    assert decode_frame(bytes.fromhex("A0 01 01 FF")) is None  # checksum
    assert decode_frame(bytes.fromhex("A0 01 02 A3")) is None  # state
    assert decode_frame(bytes.fromhex("A0 01 01")) is None  # length
    with pytest.raises(HardwareConfigError):
        encode_frame(0, True)


def test_construction_switches_the_relay_off(board: SimulatedRelayBoard) -> None:
    with SerialRelayBarrier(board.port) as barrier:
        assert isinstance(barrier, Barrier)
        wait_for(lambda: board.frames, timeout=3, what="the initial off frame")
        assert [(ch, st) for _, ch, st in board.frames] == [(1, 0)]
        assert board.history == []  # already off: no change
        assert not barrier.is_open


def test_pulse_switches_relay_on_then_off_after_pulse_length(board: SimulatedRelayBoard) -> None:
    with SerialRelayBarrier(board.port, pulse_seconds=0.25) as barrier:
        pulse = barrier.pulse_open()
        assert board.wait_for_state(1, 1, timeout=3)
        assert barrier.is_open
        assert board.wait_for_state(1, 0, timeout=3)
        wait_for(lambda: not barrier.is_open, timeout=3, what="barrier reverted")
    (t_on, ch_on, on), (t_off, ch_off, off) = board.history
    assert (ch_on, on, ch_off, off) == (1, 1, 1, 0)
    assert t_off - t_on == pytest.approx(pulse.seconds, abs=TOLERANCE)
    assert t_on - pulse.commanded_at < 0.05  # frame reached the board right away


def test_channel_is_configurable(board: SimulatedRelayBoard) -> None:
    with SerialRelayBarrier(board.port, channel=3, pulse_seconds=0.1) as barrier:
        barrier.pulse_open()
        assert board.wait_for_state(3, 1, timeout=3)
        assert board.wait_for_state(3, 0, timeout=3)
    assert {ch for _, ch, _ in board.history} == {3}
    assert [board.state(ch) for ch in (1, 2, 3, 4)] == [0, 0, 0, 0]


def test_rearm_keeps_relay_on_continuously(board: SimulatedRelayBoard) -> None:
    with SerialRelayBarrier(board.port, pulse_seconds=0.2) as barrier:
        first = barrier.pulse_open()
        wait_for(lambda: board.state(1) == 1, timeout=3, what="relay on")
        extended = barrier.pulse_open(0.4)
        assert extended.seconds > first.seconds
        wait_for(lambda: not barrier.is_open, timeout=3, what="revert")
        assert board.wait_for_state(1, 0, timeout=3)
    assert [st for _, _, st in board.history] == [1, 0]
    assert len([f for f in board.frames if f[2] == 1]) == 2  # on was re-sent, no gap


def test_close_while_open_switches_off(board: SimulatedRelayBoard) -> None:
    barrier = SerialRelayBarrier(board.port, pulse_seconds=30)
    barrier.pulse_open()
    barrier.close()
    barrier.close()
    wait_for(lambda: len(board.history) == 2, timeout=3, what="relay on and off")
    assert [st for _, _, st in board.history] == [1, 0]
    assert board.state(1) == 0


def test_board_ignores_bad_checksums_and_resyncs(board: SimulatedRelayBoard) -> None:
    with serial.Serial(board.port, 9600, timeout=0) as port:
        port.write(bytes.fromhex("A0 01 01 FF"))  # bad checksum
        port.write(bytes.fromhex("55 A0 02 01 A4"))  # junk, then bad checksum again
        port.write(bytes.fromhex("A0 09 01 AA"))  # channel beyond this 4-relay board
        port.write(encode_frame(2, True))  # a good frame after the garbage
        port.flush()
        assert board.wait_for_state(2, 1, timeout=3)
    assert board.bad_frames == 3
    assert board.state(1) == 0
    assert [(ch, st) for _, ch, st in board.history] == [(2, 1)]


def test_port_gone_raises_barrier_error(board: SimulatedRelayBoard) -> None:
    barrier = SerialRelayBarrier(board.port)
    board.close()
    with pytest.raises(BarrierError) as excinfo:
        barrier.pulse_open()
    assert isinstance(excinfo.value, OSError)
    assert not barrier.is_open
    with pytest.raises(BarrierError, match="cannot open"):  # reopen attempted, port is gone
        barrier.pulse_open()
    barrier.close()


def test_missing_port_at_construction() -> None:
    with pytest.raises(BarrierError):
        SerialRelayBarrier("/dev/does-not-exist-parkgate")


def test_failed_write_reopens_port_on_next_pulse(board: SimulatedRelayBoard) -> None:
    opened: list[serial.Serial] = []

    def factory(port: str, **kwargs: Any) -> serial.Serial:
        opened.append(serial.Serial(port, **kwargs))
        return opened[-1]

    with SerialRelayBarrier(board.port, pulse_seconds=0.1, serial_factory=factory) as barrier:
        opened[0].close()  # the USB adapter "disappears" under the driver
        with pytest.raises(BarrierError, match="write"):
            barrier.pulse_open()
        barrier.pulse_open()
        assert len(opened) == 2
        assert board.wait_for_state(1, 1, timeout=3)
        assert board.wait_for_state(1, 0, timeout=3)


def test_bad_channel() -> None:
    with pytest.raises(HardwareConfigError):
        SerialRelayBarrier("/dev/null", channel=0)
