"""The fast paths give exactly what the plain ones do: seeking vs grabbing every frame, one decoding
thread vs OpenCV's default, and clip_to_tensor's in-place arithmetic vs the textbook formula.
(How fast they are is measured by tests/benchmarks/bench_extract.py and bench_loader.py, not here.)"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

import scarlet_utils as su

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def seeks(monkeypatch):
    """Counts the seeks (``set(CAP_PROP_POS_FRAMES, ...)``) made on the captures ``_grab_frames``
    reads with, not the first-seek check's (``_frame_by_seek`` opens its own); with
    ``seeks.fail = True`` they fail."""
    state = SimpleNamespace(count=0, fail=False)
    open_capture, frame_by_seek = su._open_capture, su._frame_by_seek

    class Counting:
        def __init__(self, cap: cv2.VideoCapture) -> None:
            self._cap = cap

        def set(self, prop: int, value: float) -> bool:
            if prop == cv2.CAP_PROP_POS_FRAMES:
                state.count += 1
                if state.fail:
                    return False
            return self._cap.set(prop, value)

        def __getattr__(self, name: str):
            return getattr(self._cap, name)

    def counting_open(path):
        return Counting(open_capture(path))

    def uncounted_check(path, idx):
        su._open_capture = open_capture  # monkeypatch restores the real one after the test
        try:
            return frame_by_seek(path, idx)
        finally:
            su._open_capture = counting_open

    monkeypatch.setattr(su, "_open_capture", counting_open)
    monkeypatch.setattr(su, "_frame_by_seek", uncounted_check)
    return state


def _seek_indices(keys: list[int] | None, total: int) -> list[int]:
    """The 8 uniform indices plus one just past each keyframe's seek back-off, so every keyframe
    is a seek the seeking path can make (the first is checked, the later ones are real seeks);
    cut after the last of those, as the frames beyond it are read the same way by both paths."""
    extra = [k + su._SEEK_BACKOFF + 1 for k in keys or [] if 0 < k and k + su._SEEK_BACKOFF + 1 < total]
    indices = sorted(set(su.sample_frame_indices(total, 8)) | set(extra))
    return [i for i in indices if i <= max(extra)] if extra else indices


def _assert_same(a: tuple[list[np.ndarray], int], b: tuple[list[np.ndarray], int], what: str) -> None:
    assert b[1] == a[1], f"{what}: frames reached {b[1]} != {a[1]}"
    assert len(b[0]) == len(a[0]), what
    for k, (x, y) in enumerate(zip(a[0], b[0])):
        assert np.array_equal(x, y), f"{what}: frame #{k} differs"


# -- seeking ---------------------------------------------------------------------------------------


def _band_frame(i: int, bits: int = 8) -> np.ndarray:
    """Frame ``i`` as 16 px black/white bands (its index in binary) over a gradient that moves."""
    frame = np.zeros((64, 16 * bits, 3), np.uint8)
    frame[32:] = ((np.arange(16 * bits)[None, :, None] * 2 + i * 3) % 256).astype(np.uint8)
    for bit in range(bits):
        if (i >> bit) & 1:
            frame[:32, bit * 16 : (bit + 1) * 16] = 255
    return frame


def _band_index(frame_bgr: np.ndarray, bits: int = 8) -> int:
    return sum(1 << bit for bit in range(bits) if frame_bgr[16, bit * 16 + 8].mean() > 128)


def test_seek_path_matches_grab_path_on_a_written_video(write_video, seeks):
    path = write_video("bands.mp4", [_band_frame(i) for i in range(200)], fps=25)
    keys = su._exact_seek_keyframes(path)
    assert keys is not None and keys[0] == 0 and len(keys) > 3, keys  # mp4v: a keyframe every 12 frames
    indices = su.sample_frame_indices(200, 8)
    plain = su._grab_frames(path, indices)
    assert [_band_index(f) for f in plain[0]] == indices and plain[1] == 200

    seeking = su._grab_frames(path, indices, seek_gap=0)
    _assert_same(plain, seeking, "seek_gap=0")
    assert seeks.count >= 3  # it did seek (the first eligible gap is checked, not sought)

    # through read_clip, with the frame-count checks and the resize: the same clip
    assert np.array_equal(su.read_clip(path, 8, 32, seek_gap=0).frames, su.read_clip(path, 8, 32).frames)


def test_first_seek_that_disagrees_turns_seeking_off_for_the_file(write_video, seeks, monkeypatch):
    path = write_video("bands.mp4", [_band_frame(i) for i in range(200)], fps=25)
    indices = su.sample_frame_indices(200, 8)
    plain = su._grab_frames(path, indices)
    monkeypatch.setattr(su, "_frame_by_seek", lambda p, idx: np.zeros((64, 128, 3), np.uint8))  # "lands elsewhere"
    _assert_same(plain, su._grab_frames(path, indices, seek_gap=0), "after a failed check")
    assert seeks.count == 0


def test_a_seek_that_fails_rereads_the_file_without_seeking(write_video, seeks):
    path = write_video("bands.mp4", [_band_frame(i) for i in range(200)], fps=25)
    indices = su.sample_frame_indices(200, 8)
    plain = su._grab_frames(path, indices)
    seeks.fail = True
    _assert_same(plain, su._grab_frames(path, indices, seek_gap=0), "after a failed seek")
    assert seeks.count == 1  # one seek tried (after the check passed), then plain grabbing


def test_seek_gap_limits_seeks_to_long_jumps(write_video, seeks):
    path = write_video("bands.mp4", [_band_frame(i) for i in range(200)], fps=25)
    _assert_same(su._grab_frames(path, [0, 199]), su._grab_frames(path, [0, 199], seek_gap=500), "gap 500")
    assert seeks.count == 0  # no jump skips more than 500 frames


def _shared_videos_to_compare() -> list[Path]:
    """The 7 FF++ videos; from real_faces the file of each source (LipNet mpg, LivePortrait,
    SadTalker, ...: their codecs and encoders differ) with the most keyframes to seek to, and the
    files where seeking is refused as not exact. All of real_faces is compared, at the 8 uniform
    indices, by tests/benchmarks/bench_extract.py."""
    ffpp = sorted((SHARED_DATA / "ffpp_c23_sample").rglob("*.mp4"))
    best: dict[str, tuple[int, Path]] = {}
    refused = []
    for path in sorted((SHARED_DATA / "real_faces").glob("*")):
        if path.suffix.lower() in su.VIDEO_EXTENSIONS:
            keys = su._exact_seek_keyframes(path)
            if keys is None:
                refused.append(path)
                continue
            source = path.name.split("__")[0]
            if source not in best or len(keys) > best[source][0]:
                best[source] = (len(keys), path)
    return ffpp + [path for _, path in best.values()] + refused


@pytest.mark.real_video
def test_seek_path_matches_grab_path_on_the_shared_videos(seeks):
    videos = _shared_videos_to_compare()
    if not videos:
        pytest.skip(f"no shared videos under {SHARED_DATA}")
    exact = 0
    for path in videos:
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        keys = su._exact_seek_keyframes(path)
        exact += keys is not None
        indices = _seek_indices(keys, total)
        _assert_same(su._grab_frames(path, indices), su._grab_frames(path, indices, seek_gap=0), path.name)
    assert exact >= len(videos) - 3  # nearly every file allows exact seeks ...
    assert seeks.count >= 3  # ... and real seeks (not only first-seek checks) were made


# -- decoding threads --------------------------------------------------------------------------------


def test_extract_worker_decodes_on_one_thread_with_the_same_pixels(coded_video, monkeypatch):
    path = coded_video(40)
    indices = su.sample_frame_indices(40, 8)
    monkeypatch.delattr(su._THREAD, "decoder_threads", raising=False)  # this thread: OpenCV's default
    default = su._grab_frames(path, indices)

    def in_a_worker():  # what each extraction worker runs first, then a capture on that worker
        su._init_extract_thread()
        cap = su._open_capture(path)
        threads = cap.get(cv2.CAP_PROP_N_THREADS)
        cap.release()
        return threads, su._grab_frames(path, indices)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        threads, frames = pool.submit(in_a_worker).result()
    assert threads == 1
    _assert_same(default, frames, "one decoding thread")
    cap = su._open_capture(path)  # the setting is the worker thread's own: this one keeps the default
    assert cap.get(cv2.CAP_PROP_N_THREADS) != 1 or su.default_workers() == 1
    cap.release()


# -- clip_to_tensor --------------------------------------------------------------------------------


def _textbook(frames, mean, std, flip):
    x = torch.from_numpy(frames).float().permute(*range(frames.ndim - 3), -1, -3, -2) / 255.0
    if flip:
        x = x.flip(-1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("shape", [(8, 24, 20, 3), (3, 4, 16, 16, 3)], ids=["clip", "clips"])
@pytest.mark.parametrize("stats", [(su.KINETICS_MEAN, su.KINETICS_STD), ((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))])
def test_clip_to_tensor_is_bit_identical_to_the_formula(flip, shape, stats):
    frames = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    mean, std = stats
    out = su.clip_to_tensor(frames, mean, std, flip=flip)
    expected = _textbook(frames, mean, std, flip)
    assert out.shape == expected.shape and out.dtype == torch.float32
    assert torch.equal(out, expected)  # bit for bit, not approximately
    assert out.is_contiguous()
    assert np.array_equal(frames, np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8))  # input untouched
