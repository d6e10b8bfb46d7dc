"""ReplaySource on real photos from the shared dataset, on a video file, and fed by inject()."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from devservices import wait_for
from hardware import (
    CameraError,
    DeviceClosed,
    Frame,
    FrameSource,
    InvalidFrameError,
    ReplaySource,
    SourceNotFound,
)

PHOTOS = 3


@pytest.fixture
def photo_dir(dataset_dir: Path, tmp_path: Path) -> Path:
    """Three real US plate photos (by name order), a corrupt jpg and a non-image file."""
    folder = tmp_path / "lane"
    folder.mkdir()
    photos = sorted((dataset_dir / "us").glob("*.jpg"))[:PHOTOS]
    assert len(photos) == PHOTOS
    for i, photo in enumerate(photos):
        (folder / f"{i:02d}-{photo.name}").symlink_to(photo)
    (folder / "05-broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored")
    return folder


@pytest.fixture
def expected(photo_dir: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(photo_dir.glob("0[0-2]-*.jpg"))]


def which(frame: Frame, images: list[np.ndarray]) -> int:
    matches = [i for i, img in enumerate(images) if np.array_equal(frame.image, img)]
    assert len(matches) == 1
    return matches[0]


def take(source: ReplaySource, count: int, after: int = 0) -> Iterator[Frame]:
    seq = after
    for _ in range(count):
        frame = source.latest(newer_than=seq, timeout=5)
        assert frame is not None
        seq = frame.seq
        yield frame


def test_fps0_serves_each_photo_in_order_and_loops(
    photo_dir: Path, expected: list[np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    with ReplaySource(photo_dir, fps=0) as source:
        assert isinstance(source, FrameSource)
        assert len(source.image_paths) == PHOTOS + 1  # the broken jpg is listed, then skipped
        frames = list(take(source, 2 * PHOTOS + 1))
        assert [f.seq for f in frames] == list(range(1, 2 * PHOTOS + 2))  # nothing skipped
        assert [which(f, expected) for f in frames] == [0, 1, 2, 0, 1, 2, 0]
        # the producer never runs ahead of the consumer by more than one frame
        total = source.health().frames_total
        assert total in (frames[-1].seq, frames[-1].seq + 1)
        assert frames[0].image.shape == (720, 1280, 3)
    assert "skipping unreadable image" in caplog.text and "05-broken.jpg" in caplog.text


def test_fixed_fps_paces_frames_and_keeps_the_newest(photo_dir: Path) -> None:
    with ReplaySource(photo_dir, fps=25) as source:
        wait_for(lambda: source.health().frames_total >= 12, timeout=5, what="a dozen frames")
        health = source.health()
        assert health.connected
        assert 12 <= health.fps <= 35
        newest = source.latest()
        assert newest is not None
        assert newest.seq >= 12  # a late reader gets the newest, not the first
        assert health.last_frame_age_s is not None and health.last_frame_age_s < 1.0


def test_no_loop_stops_after_the_last_photo(photo_dir: Path, expected: list[np.ndarray]) -> None:
    with ReplaySource(photo_dir, fps=0, loop=False) as source:
        frames = list(take(source, PHOTOS))
        assert [which(f, expected) for f in frames] == [0, 1, 2]
        wait_for(lambda: source.exhausted, timeout=5, what="end of replay")
        assert source.latest(newer_than=frames[-1].seq, timeout=0.05) is None
        assert source.latest() is frames[-1]  # the last frame stays available
        health = source.health()
        assert not health.connected
        assert health.last_error == "end of replay"


def test_inject_makes_an_image_the_newest_frame(photo_dir: Path) -> None:
    with ReplaySource(photo_dir, fps=0) as source:
        first = source.latest(timeout=5)
        assert first is not None
        image = np.zeros((40, 60, 3), np.uint8)
        injected = source.inject(image)
        assert injected.seq > first.seq
        got = source.latest(newer_than=first.seq)
        assert got is injected and got.image is image
        after = source.latest(newer_than=injected.seq, timeout=5)  # replay carries on
        assert after is not None and after.image.shape == (720, 1280, 3)


def test_inject_only_source() -> None:
    with ReplaySource(None, name="uploads") as source:
        assert source.latest() is None
        assert source.health().connected
        frame = source.inject(np.full((10, 10), 7, np.uint8))  # grey is accepted
        assert source.latest() is frame
        assert frame.seq == 1
        assert source.health().frames_total == 1
        with pytest.raises(InvalidFrameError):
            source.inject(np.zeros((10, 10, 4), np.uint8))
        with pytest.raises(ValueError):
            source.inject("not an image")  # type: ignore[arg-type]
    with pytest.raises(DeviceClosed):
        source.inject(np.zeros((4, 4, 3), np.uint8))
    source.close()


def test_video_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(4):
        writer.write(np.full((24, 32, 3), 60 * i, np.uint8))
    writer.release()
    with ReplaySource(path, fps=0) as source:
        frames = list(take(source, 6))
    levels = [round(float(f.image.mean()) / 60) for f in frames]
    assert levels == [0, 1, 2, 3, 0, 1]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound) as excinfo:
        ReplaySource(tmp_path)  # empty folder
    assert "no .jpg" in str(excinfo.value)
    assert isinstance(excinfo.value, FileNotFoundError)
    with pytest.raises(SourceNotFound):
        ReplaySource(tmp_path / "missing")
    bogus = tmp_path / "clip.mp4"
    bogus.write_text("not a video")
    with pytest.raises(CameraError):
        ReplaySource(bogus)
    with pytest.raises(ValueError):
        ReplaySource(None, fps=-1)


def test_folder_of_only_unreadable_images_reports_it(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"junk")
    with ReplaySource(tmp_path, fps=0) as source:
        wait_for(lambda: source.exhausted, timeout=5, what="giving up")
        health = source.health()
        assert not health.connected
        assert health.last_error is not None and "no readable frame" in health.last_error
        assert source.latest() is None
