"""The hardware exception tree.

Every error raised on purpose by this package derives from :class:`HardwareError`, and each
subclass also inherits the built-in exception it resembles, so callers can catch either::

    HardwareError
    ├── HardwareConfigError (ValueError)    bad constructor argument: pin, channel, pulse length
    ├── InvalidFrameError (ValueError)      an image that is not a BGR/grey numpy array
    ├── DeviceClosed (RuntimeError)         a device used after close()
    ├── CameraError (OSError)               a frame source could not be opened or read
    │   └── SourceNotFound (FileNotFoundError)   a replay path is missing or holds no images
    ├── BarrierError (OSError)              the barrier output could not be driven
    └── SensorError (OSError)               the presence input could not be set up

"The device failed" errors are ``OSError``s; "you asked for something wrong" errors are
``ValueError``/``RuntimeError``s.
"""

from __future__ import annotations

__all__ = [
    "BarrierError",
    "CameraError",
    "DeviceClosed",
    "HardwareConfigError",
    "HardwareError",
    "InvalidFrameError",
    "SensorError",
    "SourceNotFound",
]


class HardwareError(Exception):
    """Base of every error raised by :mod:`hardware`."""


class HardwareConfigError(HardwareError, ValueError):
    """A device was constructed or called with an invalid argument."""


class InvalidFrameError(HardwareError, ValueError):
    """An image handed to a frame source is not a usable numpy image."""


class DeviceClosed(HardwareError, RuntimeError):
    """The device has been closed and cannot be used any more."""


class CameraError(HardwareError, OSError):
    """A frame source could not be opened or read."""


class SourceNotFound(CameraError, FileNotFoundError):
    """A replay path does not exist or contains no readable images."""


class BarrierError(HardwareError, OSError):
    """The barrier output (GPIO pin, serial relay) could not be driven."""


class SensorError(HardwareError, OSError):
    """A presence sensor input could not be set up."""
