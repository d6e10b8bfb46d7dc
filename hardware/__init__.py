"""IO devices behind small protocols: frame sources, barriers and presence sensors.

Each kind has real drivers and a fake that behaves (records what happened, with times)::

    FrameSource  OpenCVCamera, ReplaySource
    Barrier      GpioBarrier, SerialRelayBarrier, DryRunBarrier (+ SimulatedRelayBoard on a pty)
    presence     PresenceSensor, HoldOpen

Barriers are only ever commanded open; the pulse reverts inside the driver.
"""

from hardware.barrier import (
    Barrier,
    DryRunBarrier,
    GpioBarrier,
    Pulse,
    PulsedBarrier,
    SerialRelayBarrier,
)
from hardware.camera import Capture, OpenCVCamera
from hardware.errors import (
    BarrierError,
    CameraError,
    DeviceClosed,
    HardwareConfigError,
    HardwareError,
    InvalidFrameError,
    SensorError,
    SourceNotFound,
)
from hardware.frames import CameraHealth, Frame, FrameSource
from hardware.images import ImageTooLarge, NotAnImage, decode_image, image_size
from hardware.presence import HoldOpen, PresenceSensor
from hardware.relay_board import SimulatedRelayBoard
from hardware.replay import ReplaySource

__all__ = [
    "Barrier",
    "BarrierError",
    "CameraError",
    "CameraHealth",
    "Capture",
    "DeviceClosed",
    "DryRunBarrier",
    "Frame",
    "FrameSource",
    "GpioBarrier",
    "HardwareConfigError",
    "HardwareError",
    "HoldOpen",
    "ImageTooLarge",
    "InvalidFrameError",
    "NotAnImage",
    "OpenCVCamera",
    "PresenceSensor",
    "Pulse",
    "PulsedBarrier",
    "ReplaySource",
    "SensorError",
    "SerialRelayBarrier",
    "SimulatedRelayBoard",
    "SourceNotFound",
    "decode_image",
    "image_size",
]
