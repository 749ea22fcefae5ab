"""Frames: uniform and window sampling (one clip or several), decoding, resizing, every way a video file
can be bad, a 4K video in bounded memory, and exact seeking: a seeking read gives a full decode's frames."""

from __future__ import annotations

import logging
import re
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

import scarlet_utils as su

from conftest import BIG_FRAMES, BIG_H, BIG_W, SHARED_DATA, decode_all


# -- sample_frame_indices, sample_clip_indices -----------------------------------------------------


@pytest.mark.parametrize(
    ("total", "num", "expected"),
    [
        (300, 8, [0, 43, 85, 128, 171, 214, 256, 299]),
        (10, 4, [0, 3, 6, 9]),
        (8, 8, [0, 1, 2, 3, 4, 5, 6, 7]),
        (30, 8, [0, 4, 8, 12, 17, 21, 25, 29]),
        (3, 8, [0, 0, 1, 1, 1, 1, 2, 2]),  # shorter than the clip: indices repeat, in order
        (2, 4, [0, 0, 1, 1]),
        (1, 8, [0] * 8),
        (100, 1, [0]),
    ],
)
def test_sample_frame_indices_exact(total, num, expected):
    assert su.sample_frame_indices(total, num) == expected


def test_sample_frame_indices_span_first_to_last_uniformly():
    for total in range(1, 120):
        for num in (1, 2, 3, 8, 16):
            idx = su.sample_frame_indices(total, num)
            assert len(idx) == num
            assert all(isinstance(i, int) for i in idx)
            assert idx[0] == 0
            if num > 1:
                assert idx[-1] == total - 1
            assert idx == sorted(idx)
            assert all(0 <= i < total for i in idx)
            if total >= num:  # enough frames: no frame is used twice
                assert len(set(idx)) == num, (total, num, idx)
            # uniform: every gap is within one frame of the ideal step
            if num > 1:
                step = (total - 1) / (num - 1)
                assert all(abs((b - a) - step) <= 1 for a, b in zip(idx, idx[1:])), (total, num, idx)


@pytest.mark.parametrize(
    ("total", "num", "message"),
    [(0, 8, "total_frames must be >= 1, got 0"), (-5, 8, "total_frames must be >= 1, got -5"),
     (10, 0, "num_frames must be >= 1, got 0"), (10, -1, "num_frames must be >= 1, got -1")],
)
def test_sample_frame_indices_rejects_invalid(total, num, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        su.sample_frame_indices(total, num)


def test_clips_cover_consecutive_equal_segments() -> None:
    clips = su.sample_clip_indices(40, 4, 4)
    assert clips == [[0, 3, 6, 9], [10, 13, 16, 19], [20, 23, 26, 29], [30, 33, 36, 39]]
    flat = [i for c in clips for i in c]
    assert flat == sorted(flat)


def test_short_video_repeats_frames_but_keeps_the_shape() -> None:
    clips = su.sample_clip_indices(3, 4, 2)
    assert [len(c) for c in clips] == [4, 4]
    assert all(0 <= i < 3 for c in clips for i in c)


@pytest.mark.parametrize(
    ("total", "num", "clips", "stride", "expected"),
    [
        (100, 8, 3, 2, [list(range(14, 29, 2)), list(range(42, 57, 2)), list(range(71, 86, 2))]),
        (20, 4, 3, 1, [[3, 4, 5, 6], [8, 9, 10, 11], [13, 14, 15, 16]]),
        (100, 4, 1, 3, [[45, 48, 51, 54]]),  # one window: the middle of the video
        (15, 8, 2, 2, [list(range(0, 15, 2))] * 2),  # exactly one window long: both clips are it
        (10, 8, 2, 2, [[0, 2, 4, 6, 8, 9, 9, 9]] * 2),  # shorter than a window: the last frame repeats
        (1, 3, 2, 4, [[0, 0, 0]] * 2),
    ],
)
def test_window_clips_are_frames_stride_apart_in_the_middle_of_equal_segments(total, num, clips, stride, expected) -> None:
    assert su.sample_clip_indices(total, num, clips, stride) == expected


@pytest.mark.parametrize("args", [(10, 4, 0), (0, 4, 2), (10, 4, 1, 0), (10, 4, 2, -1)])
def test_invalid_clip_sampling_raises(args) -> None:
    with pytest.raises(ValueError):
        su.sample_clip_indices(*args)


# -- resize_short_side_center_crop -----------------------------------------------------------------


def test_resize_short_side_center_crop_exact_columns():
    # 40 x 100 frame; columns come in equal pairs so a 2x INTER_AREA downscale is exact.
    frame = np.zeros((40, 100, 3), np.uint8)
    frame[:] = (np.arange(100) // 2 * 2).astype(np.uint8)[None, :, None]
    out = su.resize_short_side_center_crop(frame, 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    # shortest side 40 -> 20 (scale 0.5): 50 px wide, centre crop drops 15 px each side,
    # so output column j is original columns 2(j+15) and 2(j+15)+1.
    np.testing.assert_array_equal(out[0, :, 0], 2 * (np.arange(20) + 15))
    assert (out == out[:1]).all()  # rows are unchanged in content (vertical was not cropped)


def test_resize_short_side_center_crop_tall_and_upscale():
    tall = np.zeros((100, 40, 3), np.uint8)
    tall[:] = (np.arange(100) // 2 * 2).astype(np.uint8)[:, None, None]
    out = su.resize_short_side_center_crop(tall, 20)
    np.testing.assert_array_equal(out[:, 0, 0], 2 * (np.arange(20) + 15))
    small = np.full((10, 30, 3), 77, np.uint8)
    up = su.resize_short_side_center_crop(small, 64)
    assert up.shape == (64, 64, 3)
    assert (up == 77).all()


# -- read_video_frames / read_clip on synthetic videos ---------------------------------------------


def test_read_clip_gives_the_uniform_frames_in_rgb(coded_video, index_code):
    path = coded_video(30)
    clip = su.read_clip(path, num_frames=8, size=index_code.size)
    assert clip.frames.shape == (8, index_code.size, index_code.size, 3) and clip.frames.dtype == np.uint8
    # the right frames: uniform over all 30, first and last included
    assert clip.total_frames == 30 and clip.indices == [0, 4, 8, 12, 17, 21, 25, 29]
    assert [index_code.decode(f) for f in clip.frames] == clip.indices
    assert clip.faces is None and clip.boxes is None and clip.warnings == []  # no face crop asked
    # RGB, not OpenCV's BGR: the colour half reads back as the RGB colour that was written
    colour = clip.frames[:, index_code.size * 3 // 4, index_code.size // 2].astype(int)
    assert np.abs(colour - np.array(index_code.colour)).max() <= 20, colour
    assert (colour[:, 0] > colour[:, 2] + 100).all()  # red >> blue: channels not swapped
    np.testing.assert_array_equal(su.read_video_frames(path, num_frames=8, size=index_code.size), clip.frames)


def test_read_clip_returns_clips_of_the_right_frames(coded_video, index_code) -> None:
    clip = su.read_clip(coded_video(40), num_frames=4, size=index_code.size, num_clips=4)
    assert clip.frames.shape == (4, 4, index_code.size, index_code.size, 3)
    decoded = [[index_code.decode(f) for f in c] for c in clip.frames]
    assert decoded == su.sample_clip_indices(40, 4, 4)


def test_read_clip_with_a_stride_gives_a_full_decodes_frames_at_the_window_indices(coded_video, index_code):
    path = coded_video(40)
    clip = su.read_clip(path, num_frames=4, size=index_code.size, num_clips=3, stride=3)
    windows = [[5, 8, 11, 14], [15, 18, 21, 24], [25, 28, 31, 34]]
    assert clip.frames.shape == (3, 4, index_code.size, index_code.size, 3) and clip.total_frames == 40
    assert clip.indices == [i for w in windows for i in w]
    assert [[index_code.decode(f) for f in c] for c in clip.frames] == windows
    decoded = decode_all(path)
    full = [[cv2.cvtColor(decoded[i], cv2.COLOR_BGR2RGB) for i in w] for w in windows]  # 96 px: no resize
    np.testing.assert_array_equal(clip.frames, np.array(full))


def test_overlapping_windows_with_face_crop_read_every_frame(coded_video, index_code):
    # windows [1, 3, 5, 7], [2, 4, 6, 8], [4, 6, 8, 10]: shared frames, and kept frames that are neighbours
    path = coded_video(12)
    whole = su.read_clip(path, 4, index_code.size, num_clips=3, stride=2)
    faces = su.read_clip(path, 4, index_code.size, face_crop=True, num_clips=3, stride=2)
    assert faces.indices == whole.indices == [1, 3, 5, 7, 2, 4, 6, 8, 4, 6, 8, 10]
    assert faces.faces == su.FaceCounts(no_face=12) and faces.boxes == [None] * 12  # no face: centre crops
    np.testing.assert_array_equal(faces.frames, whole.frames)
    assert [[index_code.decode(f) for f in c] for c in faces.frames] == [[1, 3, 5, 7], [2, 4, 6, 8], [4, 6, 8, 10]]


def _band_video(write_video, transpose: bool = False):
    """64 x 160 (or 160 x 64): red band at the first 32 px, green stripe at 64..96, blue elsewhere."""
    frame = np.zeros((64, 160, 3), np.uint8)
    frame[:] = (0, 0, 255)
    frame[:, :32] = (255, 0, 0)
    frame[:, 64:96] = (0, 255, 0)
    if transpose:
        frame = np.ascontiguousarray(frame.transpose(1, 0, 2))
    return write_video("tall.mp4" if transpose else "wide.mp4", [frame] * 5)


def _colour_of(pixels: np.ndarray) -> str:
    return ("red", "green", "blue")[int(np.argmax(pixels.astype(int).mean(axis=0)))]


@pytest.mark.parametrize("transpose", [False, True], ids=["wide", "tall"])
def test_whole_frame_is_short_side_resize_and_centre_crop_not_a_squash(write_video, transpose):
    frames = su.read_video_frames(_band_video(write_video, transpose), num_frames=2, size=32)
    assert frames.shape == (2, 32, 32, 3)
    # scale 0.5 -> 80 px long side, centre crop keeps original 48..112: the red band at 0..32
    # is cropped away, and the 32 px green stripe becomes 16 px (a squash would keep red and
    # shrink green to ~6 px).
    line = frames[0, 16] if not transpose else frames[0, :, 16]
    colours = [_colour_of(line[j : j + 1]) for j in range(32)]
    assert "red" not in colours, colours
    assert colours[:6] == ["blue"] * 6 and colours[26:] == ["blue"] * 6, colours
    assert colours[10:22] == ["green"] * 12, colours
    assert 14 <= colours.count("green") <= 18, colours


# -- wrong frame counts ----------------------------------------------------------------------------
# ``captures.frame_count`` makes every cv2.VideoCapture's CAP_PROP_FRAME_COUNT say that number: a
# header that lies, as truncated, re-muxed or damaged files' headers do.


@pytest.mark.parametrize("header_count", [10_000, 31, 0, -7, 12],
                         ids=["too-high", "one-too-many", "zero", "negative", "too-low"])
def test_wrong_frame_count_still_samples_the_real_range(captures, coded_video, index_code, header_count):
    path = coded_video(30)
    captures.frame_count = header_count
    clip = su.read_clip(path, num_frames=8, size=index_code.size)
    assert clip.total_frames == 30
    assert clip.indices == [0, 4, 8, 12, 17, 21, 25, 29]
    assert [index_code.decode(f) for f in clip.frames] == clip.indices


@pytest.mark.parametrize(("header_count", "said"), [(10_000, "only 30 decode"), (12, "but 30 decode")],
                         ids=["too-high", "too-low"])
def test_wrong_count_is_logged(captures, coded_video, index_code, caplog, header_count, said):
    path = coded_video(30)
    captures.frame_count = header_count
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        su.read_clip(path, num_frames=8, size=index_code.size)
    messages = [r.getMessage() for r in caplog.records]
    expected = f"header says {header_count} frames, {said}"
    assert any(str(path) in m and expected in m for m in messages), messages


def test_right_count_reads_the_video_once_and_says_nothing(coded_video, index_code, caplog):
    path = coded_video(30)
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        clip = su.read_clip(path, num_frames=8, size=index_code.size)
    assert [index_code.decode(f) for f in clip.frames] == clip.indices == [0, 4, 8, 12, 17, 21, 25, 29]
    assert not [r for r in caplog.records if r.name == "scarlet"]


# -- bad input -------------------------------------------------------------------------------------


def _raises_naming(path, cause):
    return pytest.raises(su.VideoReadError, match=re.escape(str(path)) + ".*" + cause)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with _raises_naming(path, "No such file or directory"):
        su.read_video_frames(path)


def test_broken_symlink_is_a_missing_file(tmp_path):
    link = tmp_path / "dangling.mp4"
    link.symlink_to(tmp_path / "gone.mp4")
    with _raises_naming(link, "No such file or directory"):
        su.read_clip(link)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    with _raises_naming(path, re.escape("empty file (0 bytes)")):
        su.read_video_frames(path)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with _raises_naming(path, "OpenCV cannot open it as a video"):
        su.read_video_frames(path)


def test_directory_path(tmp_path):
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    with _raises_naming(folder, "is a directory, not a video file"):
        su.read_video_frames(folder)


def test_truncated_mp4_is_a_clear_error(coded_video, tmp_path):
    # OpenCV's mp4 writer puts the index ("moov") at the end: the first half of the bytes has
    # frames but no index, so the file cannot be opened at all.
    data = coded_video(30).read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with _raises_naming(cut, "OpenCV cannot open it as a video"):
        su.read_video_frames(cut, num_frames=8, size=32)


def test_truncated_avi_gives_a_clip_from_the_decodable_prefix(write_video, index_code, tmp_path, caplog):
    # An AVI's header comes first: the header still says 40 frames, but only a prefix decodes.
    src = write_video("coded.avi", [index_code.frame(i) for i in range(40)], fourcc="MJPG")
    data = src.read_bytes()
    cut = tmp_path / "truncated.avi"
    cut.write_bytes(data[: len(data) // 2])
    cap = cv2.VideoCapture(str(cut))
    header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    decodable = 0
    while cap.grab():
        decodable += 1
    cap.release()
    assert header == 40 and 1 <= decodable < 40  # the premise: a header that over-promises

    with caplog.at_level(logging.WARNING, logger="scarlet"):
        clip = su.read_clip(cut, num_frames=8, size=index_code.size)
    assert clip.total_frames == decodable
    assert clip.indices == su.sample_frame_indices(decodable, 8)
    assert [index_code.decode(f) for f in clip.frames] == clip.indices
    assert any(f"header says 40 frames, only {decodable} decode" in r.getMessage() for r in caplog.records)


def test_a_video_with_no_decodable_frame_is_a_clear_error(write_video, index_code, tmp_path, caplog):
    # Every JPEG of an MJPEG AVI zeroed: the header still says 40 frames, and OpenCV opens it.
    data = write_video("coded.avi", [index_code.frame(i) for i in range(40)], fourcc="MJPG").read_bytes()
    blank = tmp_path / "blank.avi"
    blank.write_bytes(re.sub(rb"\xff\xd8.*?\xff\xd9", lambda m: bytes(len(m[0])), data, flags=re.S))
    assert int(cv2.VideoCapture(str(blank)).get(cv2.CAP_PROP_FRAME_COUNT)) == 40  # the premise
    with caplog.at_level(logging.WARNING, logger="scarlet"), _raises_naming(blank, "no decodable frames"):
        su.read_clip(blank, num_frames=8, size=32)
    assert not [r for r in caplog.records if r.name == "scarlet"]  # the error says it, once


def test_one_frame_video_repeats_it(write_video):
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = (200, 30, 30)
    path = write_video("one.mp4", [frame])
    clip = su.read_clip(path, num_frames=8, size=32)
    assert clip.total_frames == 1
    assert clip.indices == [0] * 8
    assert clip.frames.shape == (8, 32, 32, 3)
    assert all(np.array_equal(f, clip.frames[0]) for f in clip.frames)
    assert clip.frames[0].std() > 10  # a real decoded picture, not a blank array


# -- a 4K video (the bad-video corpus's, conftest.py) ----------------------------------------------

NUM_FRAMES, SIZE = 8, 32


def _vm(key: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in bytes."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) * 1024


def test_4k_video_reads_in_bounded_memory(corpus):
    root, _ = corpus
    path = root / "Deepfakes" / "106_107.mp4"
    frame_bytes = BIG_W * BIG_H * 3
    decoded_video = BIG_FRAMES * frame_bytes  # ~400 MB: what holding every sampled frame would cost
    # Peak RSS (the kernel's high-water mark, reset first where Linux allows it): decoder buffers
    # included, it stays well below the decoded video, the clip is the only thing kept.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        hwm_reset = _vm("VmHWM") <= _vm("VmRSS") + 4 * 2**20
    except OSError:
        hwm_reset = False
    before = _vm("VmRSS") if hwm_reset else 0
    clip = su.read_clip(path, NUM_FRAMES, SIZE)
    if hwm_reset:
        growth = _vm("VmHWM") - before
        assert growth < decoded_video / 2, f"peak RSS grew {growth / 2**20:.0f} MiB reading a 4K video"
    assert clip.frames.shape == (NUM_FRAMES, SIZE, SIZE, 3) and clip.total_frames == BIG_FRAMES
    # The arrays Python holds at any moment: about two full frames (the decoded one and its
    # resize), not the 8 sampled frames at full size.
    tracemalloc.start()
    try:
        su.read_clip(path, NUM_FRAMES, SIZE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * frame_bytes, f"{peak / 2**20:.0f} MiB of arrays at once (a 4K frame is {frame_bytes / 2**20:.0f} MiB)"


# -- seeking ---------------------------------------------------------------------------------------
# Each test compares a seeking read with a full decode (``seek_gap=None``), frame for frame. Where
# seeking is the point, the premise that the read did seek is checked (else the comparison would
# compare a full decode with itself). How much faster it is: tests/benchmarks/bench_long.py.


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


@pytest.mark.parametrize("name", SEEKABLE)
def test_seeking_reads_the_same_clip_as_grabbing(ffmpeg_videos, captures, name):
    plain, seeking = _plain_and_seeking(ffmpeg_videos[name], captures)
    assert plain.total_frames == BAND_FRAMES
    assert [_band_index(f) for f in plain.frames] == plain.indices == su.sample_frame_indices(BAND_FRAMES, 8)
    _assert_same_clip(plain, seeking, f"{name}, seek_gap=0")
    assert captures.seeks > 1, captures.seeks  # the premise: the check, then real seeks


def test_seeking_is_refused_where_frame_numbers_are_not_timestamps(ffmpeg_videos, captures):
    # Seeking here would land on other frames: the frames a full decode has, counted by decoding.
    plain, seeking = _plain_and_seeking(ffmpeg_videos["gap.mp4"], captures)
    assert [_band_index(f) for f in plain.frames] == plain.indices  # the right frames, counted by decoding
    _assert_same_clip(plain, seeking, "gap.mp4, seek_gap=0")


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


# -- long videos -----------------------------------------------------------------------------------


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


# The shared videos compared: two of the FF++ c23 sample (its 720p original 004 and its 480p fake 519_515,
# the longest: 751 frames; the sample's videos share one encoder, and its 1080p one takes as long as all
# the others here together) and, from real_faces, per source (their codecs and
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


FFPP_TO_COMPARE = ("original_sequences/youtube/c23/videos/004.mp4",
                   "manipulated_sequences/Deepfakes/c23/videos/519_515.mp4")


@pytest.mark.real_video
def test_seeking_reads_the_same_clips_as_grabbing_on_the_shared_videos(captures):
    videos = [p for p in (SHARED_DATA / "ffpp_c23_sample" / r for r in FFPP_TO_COMPARE) if p.is_file()]
    videos += [p for p in (SHARED_DATA / "real_faces" / n for n in REAL_FACES_TO_COMPARE) if p.is_file()]
    if not videos:
        pytest.skip(f"no shared videos under {SHARED_DATA}")
    seeks = 0
    for path in videos:  # the notebook's 8 frames, at a small size (the pixels compared are the same ones)
        plain, seeking = _plain_and_seeking(path, captures, size=32)
        _assert_same_clip(plain, seeking, path.name)
        seeks += captures.seeks
    assert seeks > len(videos), seeks  # the premise: more than one check per file, real seeks were made
