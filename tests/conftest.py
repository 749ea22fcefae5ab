"""Shared fixtures for the scarlet_utils tests: tiny models, synthetic videos, the shared FF++ sample."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

# Never reach the model hub from a test (the tests build tiny models locally).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Scoring defaults to mixed precision (amp=True): bf16 on a CPU with native bf16. A test that
# compares predict_probs / evaluate_items / predict_video with the model's fp32 output passes amp=False.

from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Callable, Sequence  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# The tests' models are tiny: intra-op threads gain nothing, and on a busy 2-core machine
# OpenMP's spinning threads make each step ~100x slower (1 s instead of 10 ms).
torch.set_num_threads(1)

# CI clones the repository with ../shared beside it; the videos are never copied into the repo.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FFPP_SAMPLE = SHARED_DATA / "ffpp_c23_sample"

# The shared FF++ sample: (method, video_id). "original" is the real folder.
FFPP_VIDEOS = (
    ("original", "004"),
    ("original", "519"),
    ("original", "634"),
    ("Deepfakes", "519_515"),
    ("Face2Face", "750_743"),
    ("FaceSwap", "634_660"),
    ("NeuralTextures", "004_982"),
)
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def official_path(method: str, video_id: str) -> Path:
    """Where a sample video lives in the official FF++ layout under ``FFPP_SAMPLE``."""
    if method == "original":
        return FFPP_SAMPLE / "original_sequences" / "youtube" / "c23" / "videos" / f"{video_id}.mp4"
    return FFPP_SAMPLE / "manipulated_sequences" / method / "c23" / "videos" / f"{video_id}.mp4"


@pytest.fixture(scope="session")
def ffpp_root() -> Path:
    """The shared FF++ c23 sample (official layout); skips when the shared data is absent."""
    missing = [official_path(m, v) for m, v in FFPP_VIDEOS if not official_path(m, v).is_file()]
    if missing:
        pytest.skip(f"shared FF++ sample not found (expected {len(FFPP_VIDEOS)} videos under {FFPP_SAMPLE}; "
                    f"missing e.g. {missing[0]}): clone the repo with ../shared/data beside it")
    return FFPP_SAMPLE


@pytest.fixture(scope="session")
def ffpp_videos(ffpp_root: Path) -> dict[tuple[str, str], Path]:
    """``{(method, video_id): path}`` for the 7 sample videos in the official layout."""
    return {(m, v): official_path(m, v) for m, v in FFPP_VIDEOS}


@pytest.fixture
def kaggle_root(ffpp_root: Path, tmp_path: Path) -> Path:
    """The Kaggle mirror's layout built from symlinks to the shared sample:
    ``ROOT/original/004.mp4``, ``ROOT/Deepfakes/519_515.mp4``, ... (no video is copied)."""
    root = tmp_path / "FaceForensics++_C23"
    for method, video_id in FFPP_VIDEOS:
        link = root / method / f"{video_id}.mp4"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(official_path(method, video_id))
    return root


@pytest.fixture
def make_config() -> Callable[..., object]:
    """Factory for a tiny random TimeSformer config (seconds on a CPU, no download)."""
    from transformers import TimesformerConfig

    def factory(num_frames: int = 4, image_size: int = 32, **overrides: object) -> TimesformerConfig:
        kwargs = dict(image_size=image_size, patch_size=16, num_frames=num_frames, hidden_size=32,
                      num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        kwargs.update(overrides)
        return TimesformerConfig(**kwargs)

    return factory


def _write_video(path: Path, frames_rgb: Sequence[np.ndarray], fps: int = 10, fourcc: str = "mp4v") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc!r} videos")
    try:
        for frame in frames_rgb:
            assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    assert path.stat().st_size > 0, f"VideoWriter wrote nothing to {path}"
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` (BGR), decoded in order by ``cap.read()``: the plain reference."""
    cap, frames = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames


@pytest.fixture
def write_video(tmp_path: Path) -> Callable[..., Path]:
    """``write_video(name, frames_rgb, fps=10, fourcc="mp4v")``: a small video in ``tmp_path``
    from ``(H, W, 3)`` uint8 RGB frames; returns its path."""

    def factory(name: str, frames_rgb: Sequence[np.ndarray], fps: int = 10, fourcc: str = "mp4v") -> Path:
        return _write_video(tmp_path / name, frames_rgb, fps, fourcc)

    return factory


# Index-coded videos: frame i shows i in binary as black/white vertical bands (16 px wide, so
# they survive mp4v's lossy 8x8 blocks exactly) in the top half, and one solid colour in the
# bottom half (to check the RGB channel order).
CODE_BITS = 6
CODE_SIZE = 16 * CODE_BITS  # 96 x 96 frames
CODE_COLOUR = (220, 40, 90)  # RGB


def coded_frame(i: int) -> np.ndarray:
    frame = np.zeros((CODE_SIZE, CODE_SIZE, 3), np.uint8)
    for bit in range(CODE_BITS):
        if (i >> bit) & 1:
            frame[: CODE_SIZE // 2, bit * 16 : (bit + 1) * 16] = 255
    frame[CODE_SIZE // 2 :] = CODE_COLOUR
    return frame


def decode_index(frame: np.ndarray) -> int:
    """The frame index ``coded_frame`` drew, read back from a decoded ``CODE_SIZE`` frame."""
    row = CODE_SIZE // 4
    return sum(1 << bit for bit in range(CODE_BITS) if frame[row, bit * 16 + 8].mean() > 128)


@pytest.fixture
def index_code() -> SimpleNamespace:
    """The index-coded frame helpers: ``frame(i)``, ``decode(frame)``, ``size``, ``colour``."""
    return SimpleNamespace(frame=coded_frame, decode=decode_index, size=CODE_SIZE, colour=CODE_COLOUR)


@pytest.fixture
def coded_video(write_video: Callable[..., Path]) -> Callable[[int], Path]:
    """``coded_video(n)``: an mp4v video of ``n`` index-coded frames (``n`` < 64)."""

    def factory(n: int, name: str | None = None) -> Path:
        assert n < 2**CODE_BITS
        return write_video(name or f"coded_{n}.mp4", [coded_frame(i) for i in range(n)])

    return factory


class _CaptureSpy:
    """A real ``cv2.VideoCapture`` that reports to ``state`` (see the ``captures`` fixture)."""

    def __init__(self, real: type, state: SimpleNamespace, *args: object) -> None:
        self._cap = real(*args)
        self._state = state
        params = list(args[2]) if len(args) > 2 else []  # (path, api, [prop, value, ...])
        self.raw = cv2.CAP_PROP_FORMAT in params[::2]  # raw packets: reads timestamps, decodes nothing
        self.seeked = False
        if self.raw:
            state.scans += 1
        elif self._cap.isOpened():
            state.opened.append(SimpleNamespace(thread=threading.get_ident(),
                                                decoder_threads=self._cap.get(cv2.CAP_PROP_N_THREADS)))

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_COUNT and self._state.frame_count is not None:
            return float(self._state.frame_count)
        return self._cap.get(prop)

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_POS_FRAMES and not self.raw:
            self._state.seeks += 1
            if self._state.fail_seeks_after is not None and self._state.seeks > self._state.fail_seeks_after:
                return False
            self.seeked = True
        return self._cap.set(prop, value)

    def grab(self) -> bool:
        ok = self._cap.grab()
        if ok and not self.raw:
            self._state.grabs += 1
        return ok

    def retrieve(self, *args: object):
        ok, frame = self._cap.retrieve(*args)
        if ok and self.seeked and self._state.corrupt_seeks:
            frame = np.zeros_like(frame)  # a seek that lands on other pixels
        return ok, frame

    def __getattr__(self, name: str):
        return getattr(self._cap, name)


@pytest.fixture
def captures(monkeypatch) -> SimpleNamespace:
    """Replaces ``cv2.VideoCapture`` for the test with a spy around the real one and returns what
    it saw on the decoding captures (not the raw-packet ones that only read timestamps):

    - ``seeks``: frame seeks asked for (``set(CAP_PROP_POS_FRAMES, ...)``), ``grabs``: frames
      grabbed, ``opened``: per capture opened, its ``thread`` and ``decoder_threads``; ``scans``:
      raw-packet captures opened (each reads a file's timestamps to see whether seeking is exact);
    - knobs: ``frame_count`` (what ``CAP_PROP_FRAME_COUNT`` says instead of the header),
      ``fail_seeks_after`` (seeks after the first n fail), ``corrupt_seeks`` (a frame retrieved
      after a seek comes back black: the seek landed on other pixels);
    - ``reset()`` zeroes the counts."""
    real = cv2.VideoCapture
    state = SimpleNamespace(seeks=0, grabs=0, scans=0, opened=[], frame_count=None, fail_seeks_after=None, corrupt_seeks=False)

    def reset() -> None:
        state.seeks, state.grabs, state.scans, state.opened = 0, 0, 0, []

    state.reset = reset
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: _CaptureSpy(real, state, *args))
    return state


@pytest.fixture(scope="session")
def ffmpeg_encode() -> Callable[..., Path]:
    """``ffmpeg_encode(path, frames, args, fps=25)``: ``frames`` ``(N, H, W, 3)`` uint8 RGB (or a list
    of ffmpeg input arguments, such as a lavfi source) encoded by the ffmpeg command line with output
    ``args`` (codec, keyframe interval, ...). Skips without ffmpeg; under CI, where .ci/run installs
    it, its absence fails."""
    if shutil.which("ffmpeg") is None:
        if os.environ.get("CI"):
            pytest.fail("the ffmpeg command line is not installed, and .ci/run should have installed it")
        pytest.skip("the ffmpeg command line is not installed")

    def encode(path: Path, frames: np.ndarray | list[str], args: Sequence[str], fps: int = 25) -> Path:
        if isinstance(frames, list):
            source, data = frames, None
        else:
            h, w = frames.shape[1:3]
            source = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
            data = np.ascontiguousarray(frames).tobytes()
        cmd = ["ffmpeg", "-v", "error", "-y", *source, *args, str(path)]
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            pytest.skip(f"ffmpeg cannot write {path.name}: {done.stderr.decode(errors='replace')[-300:]}")
        return path

    return encode
