"""Shared fixtures for the scarlet_utils tests: tiny models, synthetic videos, the shared FF++ sample."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import wave

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

import scarlet_utils as su  # noqa: E402

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

    def retrieve(self, *args: object):
        ok, frame = self._cap.retrieve(*args)
        if ok and self.seeked and self._state.corrupt_seeks:
            frame = np.zeros_like(frame)  # a seek that lands on other pixels
        return ok, frame

    def __getattr__(self, name: str):
        return getattr(self._cap, name)


@pytest.fixture
def captures(monkeypatch) -> SimpleNamespace:
    """Replaces ``cv2.VideoCapture`` for the test with a spy around the real one, and returns:

    - ``seeks``: the frame seeks asked for (``set(CAP_PROP_POS_FRAMES, ...)``) on the decoding captures
      (not the raw-packet ones that only read timestamps): the premise of a test that a read sought;
    - knobs: ``frame_count`` (what ``CAP_PROP_FRAME_COUNT`` says instead of the header),
      ``fail_seeks_after`` (seeks after the first n fail), ``corrupt_seeks`` (a frame retrieved
      after a seek comes back black: the seek landed on other pixels);
    - ``reset()`` zeroes the count."""
    real = cv2.VideoCapture
    state = SimpleNamespace(seeks=0, frame_count=None, fail_seeks_after=None, corrupt_seeks=False)

    def reset() -> None:
        state.seeks = 0

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


# -- the bad-video corpus: test_data.py, test_frames.py, test_own_videos.py ------------------------

BIG_W, BIG_H, BIG_FRAMES = 3840, 2160, 16  # 4K: 16 decoded frames are ~400 MB


def bar_frames(n: int, h: int = 48, w: int = 48, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct BGR frames: a bar that moves, on blurred noise (so a frame is never flat)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 0)
    frames = []
    for i in range(n):
        f = base.copy()
        x = (i * max(1, w // 12)) % w
        f[:, x : x + max(2, w // 16)] = (40, 200, 240)
        frames.append(f)
    return frames


def write_bgr(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v", fps: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc!r} videos")
    for f in frames:
        writer.write(f)
    writer.release()
    assert path.stat().st_size > 0
    return path


def flat_4k(n: int) -> list[np.ndarray]:
    """4K frames that encode fast (flat colour, a moving block), each still distinct."""
    frames = []
    for i in range(n):
        f = np.full((BIG_H, BIG_W, 3), 30 + 10 * i, np.uint8)
        f[:256, 256 * i : 256 * (i + 1)] = 255
        frames.append(f)
    return frames


# name -> what must happen: a regex of the cause in report.failed, or "ok" (decodes to a clip),
# or "ok-short" (decodes a prefix: a clip, and a warning that the header promised more), or
# "either" (FFmpeg-version dependent: a clear failure or a clip, never a crash or hang).
FAILS_TO_OPEN = "OpenCV cannot open it as a video"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A Kaggle-layout data root with 6 good real and 6 good fake videos and every kind of bad
    file: ``(root, expected)``, ``expected`` mapping each listed path to what must happen."""
    root = tmp_path_factory.mktemp("bad") / "FaceForensics++_C23"
    real, fake = root / "original", root / "Deepfakes"
    expected: dict[Path, str] = {}
    for k in range(6):
        expected[write_bgr(real / f"{k:03d}.mp4", bar_frames(12, seed=k))] = "ok"
        expected[write_bgr(fake / f"{k:03d}_{k + 1:03d}.mp4", bar_frames(12, seed=10 + k))] = "ok"

    # Noise: the stream (mdat) is ~99.5% of the file, as in real videos, and the index (moov) small.
    noise = np.random.default_rng(9).integers(0, 256, (12, 96, 96, 3), dtype=np.uint8)
    good = write_bgr(root.parent / "src" / "noise.mp4", list(noise)).read_bytes()
    (real / "100.mp4").touch()  # zero bytes
    expected[real / "100.mp4"] = r"empty file \(0 bytes\)"
    (real / "101.mp4").write_bytes(np.random.default_rng(7).integers(0, 256, 16_000, dtype=np.uint8).tobytes())
    expected[real / "101.mp4"] = FAILS_TO_OPEN
    for name, share in (("102.mp4", 0.10), ("103.mp4", 0.50), ("104.mp4", 0.99)):
        # OpenCV's mp4 writer puts the index (moov) last: any cut loses it, nothing opens.
        (real / name).write_bytes(good[: int(len(good) * share)])
        expected[real / name] = FAILS_TO_OPEN
    avi = write_bgr(root.parent / "src" / "whole.avi", bar_frames(30, seed=3), fourcc="MJPG").read_bytes()
    (real / "105.avi").write_bytes(avi[: len(avi) // 2])  # AVI: header first, a prefix decodes
    expected[real / "105.avi"] = "ok-short"
    damaged = bytearray(write_bgr(root.parent / "src" / "long.mp4", bar_frames(30, seed=4)).read_bytes())
    mid, span = len(damaged) // 2, len(damaged) // 8
    damaged[mid - span : mid + span] = np.random.default_rng(8).integers(0, 256, 2 * span, dtype=np.uint8).tobytes()
    (real / "106.mp4").write_bytes(bytes(damaged))  # index intact, garbage in the middle of the stream
    expected[real / "106.mp4"] = "either"
    with wave.open(str(real / "107.mp4"), "wb") as wav:  # audio only: a WAV file named .mp4
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(np.zeros(8000, np.int16).tobytes())
    expected[real / "107.mp4"] = FAILS_TO_OPEN

    expected[write_bgr(fake / "100_101.mp4", bar_frames(1, seed=5))] = "ok"  # one frame
    expected[write_bgr(fake / "102_103.mp4", bar_frames(5, seed=6))] = "ok"  # shorter than the clip
    expected[write_bgr(fake / "104_105.mp4", bar_frames(12, h=160, w=90, seed=7))] = "ok"  # portrait
    expected[write_bgr(fake / "106_107.mp4", flat_4k(BIG_FRAMES))] = "ok"  # 4K
    expected[write_bgr(fake / "vidéo 001 ünï.mp4", bar_frames(12, seed=8))] = "ok"  # spaces, non-ASCII
    (fake / "notes.txt").write_text("not a video: never listed\n")
    (fake / ".hidden.mp4").write_bytes((fake / "100_101.mp4").read_bytes())  # a hidden file: never listed
    (fake / "a.mp4").symlink_to("b.mp4")  # a symlink loop
    (fake / "b.mp4").symlink_to("a.mp4")
    expected[fake / "a.mp4"] = expected[fake / "b.mp4"] = "Too many levels of symbolic links"
    (fake / "dangling.mp4").symlink_to(root / "gone.mp4")
    expected[fake / "dangling.mp4"] = "No such file or directory"
    os.mkfifo(fake / "fifo.mp4")  # opening a FIFO blocks until a writer comes: must not hang
    expected[fake / "fifo.mp4"] = "not a regular file"
    (fake / "folder.mp4").mkdir()
    expected[fake / "folder.mp4"] = "is a directory"
    locked = fake / "locked.mp4"
    locked.write_bytes((fake / "000_001.mp4").read_bytes())
    locked.chmod(0)
    # root reads a mode-000 file anyway: then it is a good video
    expected[locked] = "ok" if os.geteuid() == 0 else "Permission denied"
    yield root, expected
    locked.chmod(0o644)


@pytest.fixture
def no_hang():
    """Fail (not freeze) a test that blocks: a hang guard, not a timing check."""
    def on_alarm(signum, frame):
        raise TimeoutError("blocked for 240 s: something hangs")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(240)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def link_to_dev_full(path):
    """Make the temp file a write of ``path`` goes through (``.<name>.tmp`` beside it) a link to
    /dev/full: real writes, and the kernel answers ENOSPC whatever layer writes (torch's zip writer,
    numpy). Unlinking the link never touches /dev/full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.symlink_to("/dev/full")
    return tmp


# -- tiny models and precision ---------------------------------------------------------------------


@pytest.fixture
def tiny_model(make_config):
    torch.manual_seed(0)
    return su.build_model(make_config())


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU that reports native bf16 (bf16 autocast runs on any CPU, emulated where the hardware
    lacks it, so the numbers can be checked everywhere)."""
    monkeypatch.setattr(su, "cpu_supports_bf16", lambda: True)
