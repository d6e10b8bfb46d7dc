"""OpenCVCamera: a real video file, and scripted captures for reconnects, health and newest-only."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from devservices import wait_for
from hardware import FrameSource, HardwareConfigError, OpenCVCamera


def write_video(path: Path, frames: int = 12, fps: float = 40.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path


class ScriptedCapture:
    """A capture that serves numbered frames; ``fail_after`` reads it reports a lost stream.

    ``gate`` (if given) is a semaphore: each read takes one token, so tests release frames.
    """

    def __init__(
        self,
        opened: bool = True,
        fail_after: int | None = None,
        gate: threading.Semaphore | None = None,
        unplugged: threading.Event | None = None,
    ) -> None:
        self.opened = opened
        self.fail_after = fail_after
        self.gate = gate
        self.unplugged = unplugged or threading.Event()
        self.reads = 0
        self.released = False

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.gate is not None:
            while not self.gate.acquire(timeout=0.02):
                if self.unplugged.is_set():
                    return False, None
        elif self.fail_after is None:
            time.sleep(0.002)  # pace an endless fake "camera" so it does not spin a core
        if self.fail_after is not None and self.reads >= self.fail_after:
            return False, None
        self.reads += 1
        return True, np.full((8, 8, 3), self.reads % 256, np.uint8)

    def release(self) -> None:
        self.released = True


class ScriptedFactory:
    """Fails ``failures`` opens, then hands out captures made by ``make``; records call times.

    Setting ``unplugged`` makes blocked reads fail, like pulling the cable.
    """

    def __init__(self, failures: int, make: Callable[[], ScriptedCapture]) -> None:
        self.unplugged = threading.Event()
        self.failures = failures
        self.make = make
        self.calls: list[float] = []
        self.captures: list[ScriptedCapture] = []

    def __call__(self, source: object) -> ScriptedCapture:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            return ScriptedCapture(opened=False)
        capture = self.make()
        capture.unplugged = self.unplugged
        self.captures.append(capture)
        return self.captures[-1]


def grabber_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"{name}-grabber"]


def test_reads_a_real_video_file_and_loops(tmp_path: Path) -> None:
    video = write_video(tmp_path / "lane.avi")
    with OpenCVCamera(str(video), name="filecam", reconnect_min=0.05) as cam:
        assert isinstance(cam, FrameSource)
        frame = cam.latest(timeout=5)
        assert frame is not None
        assert frame.image.shape == (48, 64, 3)
        assert frame.seq >= 1
        later = cam.latest(newer_than=frame.seq, timeout=5)
        assert later is not None and later.seq > frame.seq
        assert later.captured_at >= frame.captured_at
        # 12 frames at 40 fps: the end of the file comes quickly and the camera reopens it
        wait_for(lambda: cam.health().reconnects >= 1, timeout=5, what="reopen at end of file")
        wait_for(lambda: cam.health().frames_total > 12, timeout=5, what="second pass")
        health = cam.health()
        assert health.last_error == "end of stream"
        assert 10 < health.fps < 80  # paced at the file's 40 fps, not decoded flat out


def test_reconnects_with_exponential_backoff() -> None:
    factory = ScriptedFactory(failures=4, make=ScriptedCapture)
    with OpenCVCamera(
        0, name="flaky", reconnect_min=0.02, reconnect_max=0.06, capture_factory=factory
    ) as cam:
        assert cam.latest(timeout=5) is not None
        health = cam.health()
        assert health.connected
        assert health.reconnects == 4
        assert health.last_error is not None and "cannot open" in health.last_error
    gaps = [b - a for a, b in zip(factory.calls, factory.calls[1:], strict=False)]
    expected = [0.02, 0.04, 0.06, 0.06]  # doubling, capped at reconnect_max
    assert len(gaps) == 4
    for gap, want in zip(gaps, expected, strict=True):
        assert want * 0.9 <= gap < want + 0.1


def test_lost_stream_reconnects_and_backoff_resets_after_frames() -> None:
    factory = ScriptedFactory(failures=0, make=lambda: ScriptedCapture(fail_after=3))
    with OpenCVCamera(
        "rtsp://user:secret@cam.local/stream",
        name="lossy",
        reconnect_min=0.02,
        reconnect_max=5.0,
        capture_factory=factory,
    ) as cam:
        wait_for(lambda: len(factory.calls) >= 5, timeout=5, what="several reconnects")
        health = cam.health()
        assert health.reconnects >= 4
        assert health.last_error == "read failed: no frame"
        assert "secret" not in repr(cam)
    gaps = [b - a for a, b in zip(factory.calls, factory.calls[1:], strict=False)]
    assert max(gaps[:4]) < 0.5  # every session delivered frames, so no doubling
    assert all(c.released for c in factory.captures)


def test_keeps_only_the_newest_frame() -> None:
    gate = threading.Semaphore(0)
    factory = ScriptedFactory(failures=0, make=lambda: ScriptedCapture(gate=gate))
    with OpenCVCamera(0, name="newest", capture_factory=factory) as cam:
        gate.release(50)  # the camera delivers 50 frames nobody reads
        wait_for(lambda: cam.health().frames_total == 50, timeout=5, what="50 frames")
        frame = cam.latest()
        assert frame is not None
        assert frame.seq == 50
        assert int(frame.image[0, 0, 0]) == 50
        assert cam.latest(newer_than=0) is frame  # no backlog: older frames are gone
        assert cam.latest(newer_than=50) is None
        assert cam.latest(newer_than=50, timeout=0.05) is None
        gate.release()
        newer = cam.latest(newer_than=50, timeout=5)
        assert newer is not None and newer.seq == 51
        factory.unplugged.set()


def test_old_frames_are_released() -> None:
    gate = threading.Semaphore(0)
    factory = ScriptedFactory(failures=0, make=lambda: ScriptedCapture(gate=gate))
    with OpenCVCamera(0, name="gc", capture_factory=factory) as cam:
        gate.release()
        first = cam.latest(timeout=5)
        assert first is not None
        ref = weakref.ref(first.image)
        del first
        gate.release(5)
        wait_for(lambda: cam.health().frames_total == 6, timeout=5, what="more frames")
        gc.collect()
        assert ref() is None
        factory.unplugged.set()


def test_health_fps_and_age_with_injected_clock() -> None:
    now = [100.0]
    gate = threading.Semaphore(0)
    factory = ScriptedFactory(failures=0, make=lambda: ScriptedCapture(gate=gate))
    with OpenCVCamera(0, name="clocked", capture_factory=factory, clock=lambda: now[0]) as cam:
        wait_for(lambda: cam.health().connected, timeout=5, what="connected")
        health = cam.health()
        assert (health.fps, health.last_frame_age_s, health.frames_total) == (0.0, None, 0)
        assert (health.reconnects, health.last_error) == (0, None)
        for i in range(10):  # ten frames exactly 0.1 s apart on the camera's clock
            now[0] = 100.0 + i * 0.1
            gate.release()
            wait_for(lambda i=i: cam.health().frames_total == i + 1, timeout=5, what="a frame")
        now[0] = 101.4
        health = cam.health()
        assert health.fps == pytest.approx(10.0, rel=0.01)
        assert health.last_frame_age_s == pytest.approx(0.5)
        now[0] = 110.0  # nothing for a while: the window empties, the age grows
        health = cam.health()
        assert health.fps == 0.0
        assert health.last_frame_age_s == pytest.approx(9.1)
        assert health.connected
        factory.unplugged.set()


def test_close_stops_the_thread_promptly_even_during_backoff() -> None:
    factory = ScriptedFactory(failures=100, make=ScriptedCapture)
    cam = OpenCVCamera(
        0, name="stopper", capture_factory=factory, reconnect_min=30, reconnect_max=60
    )
    wait_for(lambda: factory.calls, timeout=5, what="first open attempt")
    assert grabber_threads("stopper")
    start = time.monotonic()
    cam.close()
    assert time.monotonic() - start < 1.0
    assert not grabber_threads("stopper")
    assert not cam.health().connected
    assert cam.latest(timeout=1.0) is None  # closed: does not wait
    cam.close()


def test_close_does_not_hang_on_a_blocked_read(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Semaphore(0)  # never released: the read blocks like a dead RTSP stream
    factory = ScriptedFactory(failures=0, make=lambda: ScriptedCapture(gate=gate))
    cam = OpenCVCamera(0, name="blocked", capture_factory=factory, join_timeout=0.2)
    wait_for(lambda: factory.captures, timeout=5, what="capture opened")
    result: list[object] = []
    consumer = threading.Thread(target=lambda: result.append(cam.latest(timeout=10)))
    consumer.start()
    start = time.monotonic()
    cam.close()
    assert time.monotonic() - start < 1.0
    consumer.join(timeout=2)
    assert result == [None]  # the waiting consumer was woken by close()
    assert "still blocked" in caplog.text
    factory.unplugged.set()  # the read finally returns and the thread ends
    wait_for(lambda: not grabber_threads("blocked"), timeout=5, what="grabber exit")


def test_bad_backoff_arguments() -> None:
    with pytest.raises(HardwareConfigError):
        OpenCVCamera(
            0, reconnect_min=5, reconnect_max=1, capture_factory=ScriptedFactory(0, ScriptedCapture)
        )
