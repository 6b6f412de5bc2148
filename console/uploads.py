"""Clip analysis of uploaded videos and images, through the same detectors pipeline as a camera worker.

The upload is streamed into a private temporary folder with a hard size bound,
checked to be a video or image OpenCV can decode and a video no longer than the
configured limit, analysed through :func:`streamer.offline.analyse_file` (a
camera worker over the file: the same decoding, privacy masks, sampling, clip
cutting, detector, tracker, concept classifiers and GMCP window as a live
camera), and deleted with its folder whatever happens.  The answer holds the GMCP label and
concept scores per clip and a few key frames with their labelled boxes, drawn
here and returned to the uploader only: nothing is stored or published.
"""
from __future__ import annotations

import base64
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import cv2
import numpy as np

from console.config import WebConfig
from detectors.types import ClipAnalysis
from streamer.config import CameraConfig, Position

log = logging.getLogger(__name__)

TMP_PREFIX = "imminence-upload-"
CHUNK = 1 << 20
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"RIFF", b"GIF8", b"II*\x00", b"MM\x00*")
KEY_FRAME_WIDTH = 640
#: smallest frame the people detector can scan (OpenCV's HOG window is 64 x 128; smaller frames
#: crash it in native code, which would take the whole console down)
MIN_WIDTH, MIN_HEIGHT = 64, 128


class UploadError(Exception):
    """An upload refused with an HTTP status and a message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _suffix(filename: Optional[str]) -> str:
    ext = Path(filename or "").suffix.lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ".bin"


def save_bounded(stream: Any, dest: Path, max_bytes: int) -> int:
    """Copy a file-like object to ``dest``, refusing (413) as soon as it exceeds ``max_bytes``."""
    total = 0
    with open(dest, "wb") as out:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise UploadError(413, f"the file is larger than the {max_bytes / 1e6:g} MB upload limit")
            out.write(chunk)
    if total == 0:
        raise UploadError(400, "the uploaded file is empty")
    return total


def _check_size(kind: str, width: int, height: int) -> None:
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise UploadError(422, f"the {kind} is {width}x{height} pixels; at least {MIN_WIDTH}x{MIN_HEIGHT} "
                               "is needed to look for people")


def probe_media(path: Path, max_seconds: float) -> dict:
    """Kind (image/video), size and duration of a file; 415 if OpenCV cannot decode it, 413 if too long,
    422 if its frames are too small to analyse."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(IMAGE_MAGIC) or head[4:12] in (b"ftypavif", b"ftypheic"):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None:
            _check_size("image", img.shape[1], img.shape[0])
            return {"kind": "image", "width": img.shape[1], "height": img.shape[0], "frames": 1, "seconds": 0.0}
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            raise UploadError(415, "the file is not a video or an image that can be decoded "
                                   "(expected e.g. MP4, AVI, MKV, JPEG or PNG)")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if not (fps > 0 and n > 0):
            # Containers without a frame count: count, but never past the limit.
            fps = fps if fps > 0 else 25.0
            n = 1
            while n <= max_seconds * fps + 1 and cap.grab():
                n += 1
        seconds = n / fps
    finally:
        cap.release()
    _check_size("video", frame.shape[1], frame.shape[0])
    if seconds > max_seconds + 1e-6:
        raise UploadError(413, f"the video lasts {seconds:.1f} s; the limit is {max_seconds:g} s")
    return {"kind": "video", "width": frame.shape[1], "height": frame.shape[0], "frames": n,
            "fps": round(fps, 3), "seconds": round(seconds, 3)}


def draw_key_frame(frame: np.ndarray, detections: list, label: Optional[str]) -> str:
    """A JPEG data URL of ``frame`` with its boxes and the clip's label drawn on it."""
    img = frame.copy()
    for d in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in d.xyxy)
        text = f"{d.cls}{'#' + str(d.track_id) if d.track_id is not None else ''} {d.score:.2f}"
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 200, 255), 2)
        cv2.putText(img, text, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 200, 255), 1, cv2.LINE_AA)
    if label:
        cv2.putText(img, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2, cv2.LINE_AA)
    if img.shape[1] > KEY_FRAME_WIDTH:
        scale = KEY_FRAME_WIDTH / img.shape[1]
        img = cv2.resize(img, (KEY_FRAME_WIDTH, int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _clip_dict(i: int, clip: Any) -> dict:
    c = clip.concept
    return {"index": i, "frames": clip.frames, "label": c.label if c else None,
            "score": round(float(c.score), 4) if c else None, "method": c.method if c else None,
            "scores": {k: round(float(v), 4) for k, v in (c.scores if c else {}).items()},
            "fallback_reason": c.fallback_reason if c else None,
            "counts": {k: round(float(v), 3) for k, v in clip.counts.items()},
            "max_counts": dict(clip.max_counts), "tracks": len(clip.tracks), "motion": round(float(clip.motion), 4)}


def summarise(clips: list, media: dict, n_key_frames: int, seconds: float) -> dict:
    """The JSON answer of an upload from the analyser's per-clip results."""
    key_frames = []
    candidates = [(i, kf) for i, clip in enumerate(clips) for kf in (clip.key_frames or [])]
    # Spread the returned key frames over the whole upload.
    if candidates:
        picks = np.unique(np.linspace(0, len(candidates) - 1, min(n_key_frames, len(candidates))).round().astype(int))
        for p in picks:
            i, (frame_index, frame, dets) = candidates[int(p)]
            label = clips[i].concept.label if clips[i].concept else None
            key_frames.append({"clip": i, "frame_index": int(frame_index), "image": draw_key_frame(frame, dets, label),
                               "boxes": [{"xyxy": [round(float(v), 1) for v in d.xyxy], "cls": d.cls,
                                          "score": round(float(d.score), 3), "track_id": d.track_id} for d in dets]})
    out_clips = [_clip_dict(i, c) for i, c in enumerate(clips)]
    labels = [c["label"] for c in out_clips if c["label"]]
    models = clips[0].models if clips else {}
    return {**media, "clips": out_clips, "labels": labels, "key_frames": key_frames,
            "frames_analysed": int(sum(c.frames for c in clips)), "analysis_s": round(seconds, 3), "models": models}


class UploadAnalyzer:
    """Uploads analysed by the camera workers' own path, :func:`streamer.offline.analyse_file`.

    The upload becomes a camera ``upload`` sampled at ``fps`` by stream time, cut into
    ``clip_seconds`` clips and masked with ``masks`` (``web.upload_masks``) right after
    decode, exactly as a configured camera; an image is one clip of one frame.
    """

    def __init__(self, detectors_cfg: Any, clip_seconds: float = 2.0) -> None:
        self.cfg = detectors_cfg
        self.clip_seconds = clip_seconds

    def analyse(self, path: str, *, still: bool, fps: float, key_frames: int,
                masks: Sequence[Sequence[Sequence[float]]] = ()) -> list[ClipAnalysis]:
        """One :class:`ClipAnalysis` per clip of the file, each with up to ``key_frames`` masked key frames."""
        from streamer.offline import analyse_file

        camera = CameraConfig(id="upload", source=path, position=Position(x=0.0, y=0.0), fps=fps,
                              clip_seconds=self.clip_seconds, masks=[list(m) for m in masks])
        return [c.analysis for c in analyse_file(path, camera, self.cfg, key_frames=key_frames, still=still)]


def analyse_upload(upload: Any, cfg: WebConfig, analyzer_factory: Callable[[], Any],
                   tmp_root: Optional[str] = None) -> dict:
    """Save, check, analyse and delete one upload (a FastAPI ``UploadFile`` or anything with ``.file``)."""
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=tmp_root))
    try:
        path = tmp / ("upload" + _suffix(getattr(upload, "filename", None)))
        save_bounded(upload.file, path, int(cfg.upload_max_mb * 1e6))
        media = probe_media(path, cfg.upload_max_seconds)
        analyzer = analyzer_factory()
        t0 = time.perf_counter()
        try:
            clips = analyzer.analyse(str(path), still=media["kind"] == "image", fps=cfg.upload_fps,
                                     key_frames=cfg.upload_key_frames, masks=cfg.upload_masks)
        except UploadError:
            raise
        except Exception as exc:  # a file that decodes at first but breaks the pipeline later
            log.warning("analysis of an uploaded %s failed: %s", media["kind"], exc)
            raise UploadError(422, f"the {media['kind']} could not be analysed: {type(exc).__name__}: "
                                   f"{str(exc)[:200]}") from None
        return summarise(list(clips), media, cfg.upload_key_frames, time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
