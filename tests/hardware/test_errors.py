"""The exception tree: one root, each leaf also the built-in it resembles."""

from __future__ import annotations

import pytest

import hardware
from hardware import errors


@pytest.mark.parametrize(
    ("exc", "builtin"),
    [
        (errors.HardwareConfigError, ValueError),
        (errors.InvalidFrameError, ValueError),
        (errors.DeviceClosed, RuntimeError),
        (errors.CameraError, OSError),
        (errors.SourceNotFound, FileNotFoundError),
        (errors.BarrierError, OSError),
        (errors.SensorError, OSError),
    ],
)
def test_every_error_is_a_hardware_error_and_a_builtin(exc: type, builtin: type) -> None:
    assert issubclass(exc, errors.HardwareError)
    assert issubclass(exc, builtin)


def test_public_names_are_exported() -> None:
    for name in hardware.__all__:
        assert hasattr(hardware, name), name
    assert set(errors.__all__) <= set(hardware.__all__)
