"""The LCUS/CH340 USB relay board wire format: 4-byte frames ``A0 <channel> <state> <checksum>``.

``state`` is 1 (relay on) or 0 (relay off); ``checksum = (0xA0 + channel + state) & 0xFF``.
Both the :class:`~hardware.barrier.SerialRelayBarrier` driver and the
:class:`~hardware.relay_board.SimulatedRelayBoard` use these helpers, so they cannot disagree.
"""

from __future__ import annotations

from hardware.errors import HardwareConfigError

__all__ = ["FRAME_LENGTH", "HEADER", "MAX_CHANNEL", "checksum", "decode_frame", "encode_frame"]

HEADER = 0xA0
FRAME_LENGTH = 4
MAX_CHANNEL = 16  # the largest boards sold in this family have 16 channels


def checksum(channel: int, state: int) -> int:
    return (HEADER + channel + state) & 0xFF


def encode_frame(channel: int, state: bool | int) -> bytes:
    """The frame that switches relay ``channel`` (1-based) on or off."""
    if not 1 <= channel <= MAX_CHANNEL:
        raise HardwareConfigError(f"relay channel must be 1..{MAX_CHANNEL}, got {channel}")
    value = 1 if state else 0
    return bytes((HEADER, channel, value, checksum(channel, value)))


def decode_frame(frame: bytes) -> tuple[int, int] | None:
    """``(channel, state)`` for a valid 4-byte frame, ``None`` for anything else."""
    if len(frame) != FRAME_LENGTH or frame[0] != HEADER:
        return None
    channel, state, check = frame[1], frame[2], frame[3]
    if state not in (0, 1) or not 1 <= channel <= MAX_CHANNEL:
        return None
    if check != checksum(channel, state):
        return None
    return channel, state
