"""Frames: uniform sampling, decoding, resizing, and every way a video file can be bad."""

from __future__ import annotations

import logging
import re

import cv2
import numpy as np
import pytest

import scarlet_utils as su


# -- sample_frame_indices ------------------------------------------------------------------------


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


# -- resize_short_side_center_crop ---------------------------------------------------------------


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


# -- read_video_frames / read_clip on synthetic videos --------------------------------------------


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


# -- wrong frame counts --------------------------------------------------------------------------
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


def test_right_count_reads_the_video_once_and_says_nothing(captures, coded_video, index_code, caplog):
    path = coded_video(30)
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        clip = su.read_clip(path, num_frames=8, size=index_code.size)
    assert [index_code.decode(f) for f in clip.frames] == clip.indices == [0, 4, 8, 12, 17, 21, 25, 29]
    assert captures.grabs == 30  # no recount, no second pass: every frame grabbed once
    assert not [r for r in caplog.records if r.name == "scarlet"]


# -- bad input -----------------------------------------------------------------------------------


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
