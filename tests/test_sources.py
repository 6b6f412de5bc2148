"""Sources: frames stamped at decode, privacy masks before analysis, file errors, newest-frame live reading."""
from __future__ import annotations

import socket
import time
from datetime import timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.sources import FileSource, LiveSource, SourceError, is_live_url, open_source

CLIP = Path(__file__).parent / "data" / "vtest_6s.mp4"  # 60 frames of vtest.avi at 10 fps, 768x576


def write_video(path: Path, frames: int = 20, size: tuple[int, int] = (160, 120), fps: float = 10.0) -> Path:
    """A small synthetic video: a white square moving over grey."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), 90, np.uint8)
        x = 5 + 4 * i
        cv2.rectangle(img, (x, 40), (x + 30, 80), (255, 255, 255), -1)
        w.write(img)
    w.release()
    return path


def test_file_source_reads_every_frame_with_stamps() -> None:
    src = FileSource(CLIP, speed=None)
    src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert src.finished and len(frames) == 60 == src.frames_read
    assert [f.index for f in frames] == list(range(60))
    assert frames[0].t == 0.0 and frames[-1].t == pytest.approx(5.9)
    assert all(f.wall.tzinfo is timezone.utc for f in frames)
    assert all(b.wall >= a.wall and b.mono >= a.mono for a, b in zip(frames, frames[1:]))
    assert frames[0].image.shape == (576, 768, 3)


def test_file_source_paced_at_speed(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", frames=10, fps=10.0)
    t0 = time.monotonic()
    src = FileSource(video, speed=4.0)
    n = 0
    while src.read() is not None:
        n += 1
    assert n == 10
    assert time.monotonic() - t0 >= 0.9 / 4 - 0.02  # frame 9 is due at 0.9 s of stream time / 4


def test_privacy_mask_blacks_out_before_anyone_sees_the_frame(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi")
    mask = [[0, 0], [80, 0], [80, 120], [0, 120]]  # the left half
    src = FileSource(video, masks=[mask], speed=None)
    f = src.read()
    assert f is not None
    assert f.image[:, :78].max() == 0  # masked
    assert f.image[:, 90:].mean() > 50  # the rest untouched


@pytest.mark.parametrize("content", [None, b"this is not a video" * 100])
def test_missing_or_corrupt_file_names_the_file(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "cam.mp4"
    if content is not None:
        path.write_bytes(content)
    src = FileSource(path)
    with pytest.raises(SourceError) as err:
        src.open()
    assert str(path) in str(err.value)
    assert ("not found" in str(err.value)) == (content is None)


def test_source_kind_from_the_url() -> None:
    assert is_live_url("rtsp://h/x") and is_live_url("http://h/x.mjpg") and is_live_url("0")
    assert not is_live_url("videos/cam1.mp4")
    assert isinstance(open_source("rtsp://127.0.0.1:1/x"), LiveSource)
    assert isinstance(open_source("a.mp4"), FileSource)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_rtsp_retries_with_backoff_without_raising() -> None:
    url = f"rtsp://user:secret@127.0.0.1:{_closed_port()}/cam"
    src = LiveSource(url, open_timeout_s=1.0, read_timeout_s=1.0, reconnect_max_s=0.4)
    src.open()
    try:
        deadline = time.monotonic() + 8
        while src.reconnects < 2 and time.monotonic() < deadline:
            assert src.read(timeout=0.2) is None
        assert src.reconnects >= 2, "the source should keep retrying"
        assert src.state == "reconnecting"
        assert "127.0.0.1" in (src.last_error or "") and "cannot open" in src.last_error
        assert "secret" not in src.last_error and "secret" not in src.name  # credentials masked
    finally:
        src.close()


def test_live_source_keeps_only_the_newest_frame() -> None:
    """A fast source (a file decoded as fast as possible) and a slow reader: drops counted, latency bounded."""
    src = LiveSource(str(CLIP), read_timeout_s=2.0, reconnect_max_s=0.2)
    src.open()
    try:
        got = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            f = src.read(timeout=2.0)
            assert f is not None
            got.append((f.index, time.monotonic() - f.mono))
            time.sleep(0.2)  # a slow consumer
        indices = [i for i, _ in got]
        assert indices == sorted(indices) and len(set(indices)) == len(indices)
        assert src.frames_dropped > len(got), "frames nobody took must be counted as drops"
        # Each frame handed out was the newest one: at most one consumer period old.
        assert max(lat for _, lat in got) < 0.5
    finally:
        src.close()
