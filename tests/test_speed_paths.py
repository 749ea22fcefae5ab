"""The fast paths give exactly what the plain ones do: seeking vs grabbing every frame, one decoding
thread vs OpenCV's default, and clip_to_tensor's in-place arithmetic vs the textbook formula.
(How fast they are: tests/benchmarks/bench_extract.py, bench_long.py and bench_loader.py.)

Everything goes through the public functions (``read_clip(..., seek_gap=...)``, ``extract_frames``);
the ``captures`` fixture (conftest.py) watches the ``cv2.VideoCapture`` objects they open, to see
whether a read sought and to make a seek fail or land on other pixels."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import scarlet_utils as su

from conftest import decode_all

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BAND_BITS = 8
BAND_SIZE = 16 * BAND_BITS  # 128 x 128 frames: read at this size, a clip is the decoded frames as they are
BAND_FRAMES = 200


def _band_frame(i: int) -> np.ndarray:
    """RGB frame ``i``: its index in binary as 16 px black/white bands (top half) over a gradient
    that moves with ``i`` (bottom half), so every frame differs from its neighbours."""
    frame = np.zeros((BAND_SIZE, BAND_SIZE, 3), np.uint8)
    frame[BAND_SIZE // 2 :] = ((np.arange(BAND_SIZE)[None, :, None] * 2 + i * 3) % 256).astype(np.uint8)
    for bit in range(BAND_BITS):
        if (i >> bit) & 1:
            frame[: BAND_SIZE // 2, bit * 16 : (bit + 1) * 16] = 255
    return frame


def _band_index(frame: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BAND_BITS) if frame[BAND_SIZE // 4, bit * 16 + 8].mean() > 128)


# ffmpeg encodings of the same 200 band frames at 25 fps, each with keyframes every 10 to 15 frames
# (one every frame for MJPEG), so a frame seek has keyframes to start from. "gap" has a hole in its
# timestamps (frames 100.. shifted by 40 frame times): a frame number there is no timestamp, so
# seeking must be refused and the file read by grabbing.
FFMPEG_VIDEOS = {name: args.split() for name, args in {
    "mpeg4.mp4": "-c:v mpeg4 -g 12 -q:v 2",
    "h264-bframes.mp4": "-c:v libx264 -preset veryfast -g 10 -bf 2 -crf 12 -pix_fmt yuv420p",
    "mjpeg.avi": "-c:v mjpeg -q:v 3",
    "vp9.webm": "-c:v libvpx-vp9 -g 15 -deadline realtime -cpu-used 8 -crf 10 -b:v 0",
    "mpeg4.mkv": "-c:v mpeg4 -g 12 -q:v 2",
    "gap.mp4": "-vf setpts='if(lt(N,100),N,N+40)/(25*TB)' -fps_mode vfr -c:v mpeg4 -g 12 -q:v 2",
}.items()}
SEEKABLE = [name for name in FFMPEG_VIDEOS if name != "gap.mp4"]


@pytest.fixture(scope="module")
def ffmpeg_videos(tmp_path_factory, ffmpeg_encode) -> dict[str, Path]:
    """``{name: path}`` of ``FFMPEG_VIDEOS``, encoded by the ffmpeg command line (skips without it)."""
    folder = tmp_path_factory.mktemp("ffmpeg")
    frames = np.stack([_band_frame(i) for i in range(BAND_FRAMES)])
    return {name: ffmpeg_encode(folder / name, frames, args) for name, args in FFMPEG_VIDEOS.items()}


def _assert_same_clip(a: su.Clip, b: su.Clip, what: str) -> None:
    assert (b.indices, b.total_frames) == (a.indices, a.total_frames), what
    assert b.frames.shape == a.frames.shape, what
    for k, (x, y) in enumerate(zip(a.frames, b.frames)):
        assert np.array_equal(x, y), f"{what}: frame #{k} (index {a.indices[k]}) differs"


def _plain_and_seeking(path: Path, captures, num_frames: int = 8, size: int = BAND_SIZE,
                       seek_gap: int | None = 0, **kwargs) -> tuple[su.Clip, su.Clip]:
    """``(plain clip, seeking clip)``: ``seek_gap=None`` (a full decode, never a seek), then the given
    one; ``captures`` then holds the seeking read's counts."""
    captures.reset()
    plain = su.read_clip(path, num_frames, size, seek_gap=None, **kwargs)
    assert captures.seeks == 0, "read_clip(seek_gap=None) seeks"
    captures.reset()
    return plain, su.read_clip(path, num_frames, size, seek_gap=seek_gap, **kwargs)


# -- seeking ---------------------------------------------------------------------------------------
# Each test compares a seeking read with a full decode. Where seeking is the point, the premise that
# the read did seek is checked (else the comparison would compare a full decode with itself); where a
# rule forbids seeking, that no seek was made.


@pytest.mark.parametrize("name", SEEKABLE)
def test_seeking_reads_the_same_clip_as_grabbing(ffmpeg_videos, captures, name):
    plain, seeking = _plain_and_seeking(ffmpeg_videos[name], captures)
    assert plain.total_frames == BAND_FRAMES
    assert [_band_index(f) for f in plain.frames] == plain.indices == su.sample_frame_indices(BAND_FRAMES, 8)
    _assert_same_clip(plain, seeking, f"{name}, seek_gap=0")
    assert captures.seeks > 1, captures.seeks  # the premise: the check, then real seeks


def test_seeking_is_refused_where_frame_numbers_are_not_timestamps(ffmpeg_videos, captures):
    plain, seeking = _plain_and_seeking(ffmpeg_videos["gap.mp4"], captures)
    assert [_band_index(f) for f in plain.frames] == plain.indices  # the right frames, counted by decoding
    _assert_same_clip(plain, seeking, "gap.mp4, seek_gap=0")
    assert captures.seeks == 0  # the same keyframes as mpeg4.mp4, never sought


def test_a_seek_that_lands_on_other_pixels_turns_seeking_off_for_the_file(ffmpeg_videos, captures):
    captures.corrupt_seeks = True  # every frame read after a seek is black: the check must catch it
    plain, seeking = _plain_and_seeking(ffmpeg_videos["mpeg4.mp4"], captures)
    assert captures.seeks >= 1  # the premise: a seek was tried
    _assert_same_clip(plain, seeking, "after a failed check")


def test_a_seek_that_fails_rereads_the_file_without_seeking(ffmpeg_videos, captures):
    captures.fail_seeks_after = 1  # the check's seek works, the next one fails
    plain, seeking = _plain_and_seeking(ffmpeg_videos["mpeg4.mp4"], captures)
    assert captures.seeks >= 2  # the premise: a seek failed
    _assert_same_clip(plain, seeking, "after a failed seek")


def test_seek_gap_limits_seeks_to_long_jumps(ffmpeg_videos, captures):
    plain, seeking = _plain_and_seeking(ffmpeg_videos["mpeg4.mp4"], captures, seek_gap=500)
    _assert_same_clip(plain, seeking, "seek_gap=500")
    assert captures.seeks == 0  # no jump is over 500 frames


def test_by_default_a_short_video_is_decoded_straight_through(ffmpeg_videos, captures):
    # 200 frames, 8 kept ~28 apart: under SEEK_MIN_GAP, as on FF++ (see the shared-video test)
    captures.reset()
    clip = su.read_clip(ffmpeg_videos["mpeg4.mp4"], 8, BAND_SIZE)
    assert captures.seeks == 0
    assert [_band_index(f) for f in clip.frames] == clip.indices


# -- long videos -------------------------------------------------------------------------------------
# 3000 frames (2 minutes at 25 fps) with their index in 12 bits: keyframes every 10 frames and every
# 250 (x264's default, FF++'s), B-frames in both. A full decode is the truth.
LONG_FRAMES, LONG_SIZE, LONG_BITS = 3000, 64, 12
LONG_VIDEOS = {
    "long-g10.mp4": "-c:v libx264 -preset veryfast -g 10 -bf 2 -crf 10".split(),
    "long-g250.mp4": "-c:v libx264 -preset veryfast -g 250 -keyint_min 250 -sc_threshold 0 -bf 3 -crf 10"
                     .split(),
}
# And one whose seeks land on other pixels: with x264's intra refresh, the "keyframes" after the
# first are recovery points (FFmpeg flags them as keyframes), and a frame decoded from one can
# differ from a full decode's. ffmpeg's moving test pattern, 2 minutes of it.
INTRA_REFRESH = (["-f", "lavfi", "-i", f"testsrc2=size=128x96:rate=25:duration={LONG_FRAMES / 25:g}"],
                 "-c:v libx264 -preset veryfast -x264-params intra-refresh=1:keyint=30 -pix_fmt yuv420p"
                 .split())


def _long_frame(i: int) -> np.ndarray:
    """RGB frame ``i``: its index as 12 black/white 16-px cells (4 x 3, top) over a moving gradient."""
    frame = np.zeros((LONG_SIZE, LONG_SIZE, 3), np.uint8)
    frame[48:] = ((np.arange(LONG_SIZE)[None, :, None] * 4 + i * 7) % 256).astype(np.uint8)
    for bit in range(LONG_BITS):
        if (i >> bit) & 1:
            row, col = divmod(bit, 4)
            frame[row * 16 : row * 16 + 16, col * 16 : col * 16 + 16] = 255
    return frame


def _long_index(frame: np.ndarray) -> int:
    return sum(1 << b for b in range(LONG_BITS) if frame[b // 4 * 16 + 8, b % 4 * 16 + 8].mean() > 128)


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory, ffmpeg_encode) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("long")
    frames = np.stack([_long_frame(i) for i in range(LONG_FRAMES)])
    videos = {name: ffmpeg_encode(folder / name, frames, [*args, "-pix_fmt", "yuv420p"])
              for name, args in LONG_VIDEOS.items()}
    videos["intra-refresh.mp4"] = ffmpeg_encode(folder / "intra-refresh.mp4", *INTRA_REFRESH)
    return videos


@pytest.mark.parametrize(("name", "clips", "gap"), [("long-g10.mp4", 1, su.SEEK_MIN_GAP),
                                                    ("long-g250.mp4", 1, su.SEEK_MIN_GAP),
                                                    ("long-g10.mp4", 4, 50)])  # 4 x 8 frames lie ~94 apart
def test_a_long_video_is_read_by_seeking_with_a_full_decodes_frames(long_videos, captures, name, clips, gap):
    plain, seeking = _plain_and_seeking(long_videos[name], captures, 8, LONG_SIZE, gap, num_clips=clips)
    assert plain.total_frames == LONG_FRAMES
    assert [_long_index(f) for f in plain.frames.reshape(-1, *plain.frames.shape[-3:])] == plain.indices
    _assert_same_clip(plain, seeking, f"{name}, {clips} clips")
    assert captures.seeks > 1, captures.seeks  # the premise (how much faster: tests/benchmarks/bench_long.py)


def test_a_long_video_with_faces_seeks_to_each_frame_and_its_neighbour(long_videos, captures):
    plain, seeking = _plain_and_seeking(long_videos["long-g10.mp4"], captures, 8, LONG_SIZE, 50, num_clips=4,
                                        face_crop=True)
    _assert_same_clip(plain, seeking, "face crop, 4 clips")
    assert seeking.boxes == plain.boxes and seeking.faces == plain.faces
    assert captures.seeks > 1, captures.seeks


def test_a_long_video_whose_seeks_land_on_other_pixels_is_decoded_through(long_videos, captures):
    path = long_videos["intra-refresh.mp4"]
    # the premise: OpenCV's own frame seeks in it land on other pixels than a full decode has
    full = decode_all(path)
    cap, differ = cv2.VideoCapture(str(path)), 0
    for idx in range(40, 1000, 23):
        cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
        differ += not np.array_equal(cap.read()[1], full[idx])
    cap.release()
    assert differ >= 3, differ
    plain, seeking = _plain_and_seeking(path, captures, 8, 64, su.SEEK_MIN_GAP)
    _assert_same_clip(plain, seeking, "intra refresh")
    assert plain.total_frames == len(full) == LONG_FRAMES
    assert captures.seeks == 0  # its keyframes after the first are no random access points: never sought


# The shared videos compared: the 7 FF++ c23 ones and, from real_faces, per source (their codecs and
# encoders differ: LipNet's MPEG-1, LivePortrait, PC-AVS, SadTalker, ...) the file with the most
# keyframes to seek to, and video-retalking__face_1, whose timestamps make seeking refused. All of
# real_faces is compared by tests/benchmarks/bench_extract.py.
REAL_FACES_TO_COMPARE = (
    "LipNet__grid_bbaf2n.mpg",
    "LivePortrait__driving_d6.mp4",
    "PC-AVS__Pose_Source_741400163.mp4",
    "SadTalker__WDA_KatieHill_000.mp4",
    "Thin-Plate-Spline-Motion-Model__driving.mp4",
    "video-retalking__face_1.mp4",
    "video-retalking__face_2.mp4",
)


@pytest.mark.real_video
def test_seeking_reads_the_same_clips_as_grabbing_on_the_shared_videos(captures):
    videos = sorted((SHARED_DATA / "ffpp_c23_sample").rglob("*.mp4"))
    videos += [p for p in (SHARED_DATA / "real_faces" / n for n in REAL_FACES_TO_COMPARE) if p.is_file()]
    if not videos:
        pytest.skip(f"no shared videos under {SHARED_DATA}")
    seeks = 0
    for path in videos:  # the notebook's 8 frames, at a small size (the pixels compared are the same ones)
        plain, seeking = _plain_and_seeking(path, captures, size=32)
        _assert_same_clip(plain, seeking, path.name)
        seeks += captures.seeks
    assert seeks > len(videos), seeks  # the premise: more than one check per file, real seeks were made


# -- decoding threads --------------------------------------------------------------------------------


def test_extraction_workers_decode_on_one_thread_with_the_same_pixels(ffmpeg_videos, coded_video, tmp_path,
                                                                      captures):
    paths = [ffmpeg_videos["h264-bframes.mp4"], ffmpeg_videos["mpeg4.mp4"], coded_video(40)]
    items = [su.VideoItem(p, 0, f"m{k}", p.stem) for k, p in enumerate(paths)]
    here = threading.get_ident()
    serial = su.extract_frames(items, tmp_path / "serial", 8, 64, workers=0)  # one thread, OpenCV's default
    assert serial.done == items and len({c.thread for c in captures.opened}) == 1
    default_threads = {c.decoder_threads for c in captures.opened}
    assert default_threads != {1} or su.default_workers() == 1  # OpenCV's default: a thread per CPU

    captures.reset()
    opencv_threads = cv2.getNumThreads()
    pooled = su.extract_frames(items, tmp_path / "pooled", 8, 64, workers=2)
    assert pooled.done == items and not pooled.failed
    assert captures.opened and all(c.thread != here and c.decoder_threads == 1 for c in captures.opened)
    assert cv2.getNumThreads() == opencv_threads  # OpenCV's own thread count is put back
    for item in items:
        assert np.array_equal(np.load(su.cache_path(item, tmp_path / "pooled")),
                              np.load(su.cache_path(item, tmp_path / "serial"))), item.path

    captures.reset()  # the one-thread setting is the workers' own: this thread keeps the default
    su.read_clip(paths[0], 8, 64)
    assert {c.decoder_threads for c in captures.opened} == default_threads


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
    assert np.array_equal(frames, np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8))  # kept
