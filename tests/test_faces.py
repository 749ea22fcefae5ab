"""Faces: Haar detection on the real FF++ sample, the crop geometry, and the fallbacks."""

from __future__ import annotations

import concurrent.futures
import logging
import re

import cv2
import numpy as np
import pytest

import scarlet_utils as su

FACE_SIZE = 64
NUM_FRAMES = 8


@pytest.fixture(scope="module")
def face_clips(ffpp_videos):
    """``{(method, id): face-cropped Clip}`` for the 7 sample videos, read once."""
    return {key: su.read_clip(path, NUM_FRAMES, FACE_SIZE, face_crop=True) for key, path in ffpp_videos.items()}


@pytest.mark.real_video
def test_faces_found_in_real_sample(face_clips):
    missing = {f"{m}/{v}": clip.faces_missing for (m, v), clip in face_clips.items()}
    total = NUM_FRAMES * len(face_clips)
    assert sum(missing.values()) <= 0.02 * total, missing  # faces in >= 98% of sampled frames
    assert max(missing.values()) <= 1, missing
    for clip in face_clips.values():
        assert clip.frames.shape == (NUM_FRAMES, FACE_SIZE, FACE_SIZE, 3) and clip.frames.dtype == np.uint8


@pytest.mark.real_video
def test_face_crops_from_the_thread_pool_are_the_serial_ones(face_clips, ffpp_videos, tmp_path):
    # Two extraction threads detect faces at once, each with its own cascade: same crops, same counts.
    items = [su.VideoItem(path, int(m != "original"), m, v) for (m, v), path in ffpp_videos.items()]
    report = su.extract_frames(items, tmp_path, NUM_FRAMES, FACE_SIZE, face_crop=True, workers=2)
    assert len(report.done) == len(items) and not report.failed
    for item in items:
        clip = face_clips[(item.method, item.video_id)]
        np.testing.assert_array_equal(np.load(su.cache_path(item, tmp_path)), clip.frames)
        assert report.faces_missing.get(str(item.path), 0) == clip.faces_missing


@pytest.mark.real_video
def test_face_crops_are_centred_on_a_face(face_clips):
    # Detect again inside the 64 px crops: a face 1/1.3 of the crop, near its centre. (On the
    # sample, 64 px whole-frame centre crops hold no face the detector finds at all.)
    in_face, boxes = 0, []
    for clip in face_clips.values():
        for crop in clip.frames:
            box = su.detect_face(crop)
            if box is not None:
                in_face += 1
                boxes.append(box)
    total = NUM_FRAMES * len(face_clips)
    assert in_face >= total * 2 / 3, (in_face, total)
    for cx, cy, side in boxes:
        assert abs(cx - FACE_SIZE / 2) <= 12 and abs(cy - FACE_SIZE / 2) <= 12, (cx, cy, side)
        assert FACE_SIZE / su.FACE_MARGIN * 0.8 <= side <= FACE_SIZE / su.FACE_MARGIN * 1.2, (cx, cy, side)


@pytest.mark.real_video
def test_detect_face_reports_full_resolution_coordinates(ffpp_videos):
    # Detection runs on a downscaled copy; the box must come back in the frame's own pixels.
    cap = cv2.VideoCapture(str(ffpp_videos[("Face2Face", "750_743")]))
    ok, bgr = cap.read()
    cap.release()
    assert ok and bgr.shape[:2] == (1080, 1920)
    full = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    ref = su.detect_face(full)
    assert ref is not None
    cx, cy, side = ref
    assert 0 < cx < 1920 and 0 < cy < 1080 and 100 < side < 1080
    for factor in (2, 4):
        small = cv2.resize(full, (1920 // factor, 1080 // factor), interpolation=cv2.INTER_AREA)
        box = su.detect_face(small)
        assert box is not None
        scaled = np.array(box) * factor
        assert np.abs(scaled - np.array(ref)).max() <= 0.05 * side, (factor, scaled, ref)


# -- no face ---------------------------------------------------------------------------------------


@pytest.fixture
def faceless_video(write_video):
    yy, xx = np.mgrid[0:72, 0:96]
    frames = []
    for i in range(6):
        f = np.zeros((72, 96, 3), np.uint8)
        f[..., 0] = (xx * 2 + i * 10) % 256
        f[..., 1] = yy * 3
        f[..., 2] = 128
        frames.append(f)
    return write_video("no_face.mp4", frames)


def test_no_face_falls_back_to_centre_crop(faceless_video):
    face = su.read_clip(faceless_video, num_frames=4, size=32, face_crop=True)
    whole = su.read_clip(faceless_video, num_frames=4, size=32, face_crop=False)
    assert face.faces_missing == 4
    assert whole.faces_missing == 0
    np.testing.assert_array_equal(face.frames, whole.frames)


def test_no_face_warning_from_read_video_frames(faceless_video, caplog):
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        frames = su.read_video_frames(faceless_video, num_frames=4, size=32, face_crop=True)
    assert frames.shape == (4, 32, 32, 3)
    warnings = [r for r in caplog.records if r.name == "scarlet" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    msg = warnings[0].getMessage()
    assert str(faceless_video) in msg and "no face in 4/4 frames" in msg


def test_no_warning_without_face_crop(faceless_video, caplog):
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        su.read_video_frames(faceless_video, num_frames=4, size=32, face_crop=False)
    assert not [r for r in caplog.records if r.name == "scarlet"]


# -- crop geometry with a known box ----------------------------------------------------------------


@pytest.fixture
def textured_frame():
    """A 100 x 200 RGB frame whose every pixel differs from its neighbours."""
    return np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)


def _fixed_boxes(monkeypatch, boxes):
    it = iter(boxes)
    monkeypatch.setattr(su, "detect_face", lambda frame: next(it))


@pytest.mark.parametrize(
    ("box", "rows", "cols"),
    [
        ((50, 40, 40), (14, 66), (24, 76)),  # inside: side 40 * 1.3 = 52, centred on the face
        ((10, 90, 40), (48, 100), (0, 52)),  # bottom-left corner: shifted inside, not padded
        ((195, 5, 40), (0, 52), (148, 200)),  # top-right corner
        ((100, 50, 200), (0, 100), (50, 150)),  # 260 px box: clamped to the frame's short side
    ],
    ids=["inside", "bottom-left", "top-right", "larger-than-frame"],
)
def test_crop_faces_exact_region(monkeypatch, textured_frame, box, rows, cols):
    side = rows[1] - rows[0]
    assert side == cols[1] - cols[0]
    _fixed_boxes(monkeypatch, [box])
    crops, missing = su.crop_faces([textured_frame], size=side)  # same size: no resampling
    assert missing == 0
    np.testing.assert_array_equal(crops[0], textured_frame[rows[0] : rows[1], cols[0] : cols[1]])


def test_crop_faces_resizes_to_size(monkeypatch, textured_frame):
    _fixed_boxes(monkeypatch, [(50, 40, 40)] * 2)
    crops, _ = su.crop_faces([textured_frame] * 2, size=26)
    expected = cv2.resize(textured_frame[14:66, 24:76], (26, 26), interpolation=cv2.INTER_AREA)
    assert crops[0].shape == (26, 26, 3)
    np.testing.assert_array_equal(crops[0], expected)


def test_crop_faces_smooths_one_spurious_box(monkeypatch, textured_frame):
    good, spurious = (50, 40, 40), (160, 60, 30)
    _fixed_boxes(monkeypatch, [good, good, spurious, good, good])
    crops, missing = su.crop_faces([textured_frame] * 5, size=52)
    assert missing == 0
    for crop in crops:  # the median over neighbours ignores the one-frame outlier
        np.testing.assert_array_equal(crop, textured_frame[14:66, 24:76])


def test_crop_faces_counts_and_centre_crops_frames_without_a_face(monkeypatch, textured_frame):
    _fixed_boxes(monkeypatch, [(50, 40, 40), None, (50, 40, 40), None])
    crops, missing = su.crop_faces([textured_frame] * 4, size=52)
    assert missing == 2
    np.testing.assert_array_equal(crops[0], textured_frame[14:66, 24:76])
    np.testing.assert_array_equal(crops[1], su.resize_short_side_center_crop(textured_frame, 52))
    assert all(c.shape == (52, 52, 3) for c in crops)


# -- no cascade ------------------------------------------------------------------------------------


def test_no_detector_falls_back_to_centre_crops(monkeypatch, faceless_video, textured_frame):
    monkeypatch.setattr(su, "_face_detector", lambda: None)
    assert su.detect_face(textured_frame) is None
    crops, missing = su.crop_faces([textured_frame] * 3, size=40)
    assert missing == 3
    np.testing.assert_array_equal(crops[2], su.resize_short_side_center_crop(textured_frame, 40))
    clip = su.read_clip(faceless_video, num_frames=4, size=32, face_crop=True)
    assert clip.faces_missing == 4


def test_face_detector_none_without_haar_data(monkeypatch, reset_face_detector, caplog):
    monkeypatch.delattr(cv2, "data", raising=False)
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        assert su._face_detector() is None
    assert any("no Haar cascades" in r.getMessage() for r in caplog.records)


def test_face_detector_none_when_cascade_file_missing(monkeypatch, reset_face_detector, tmp_path, caplog):
    if getattr(cv2, "data", None) is None:
        pytest.skip("this OpenCV build has no cv2.data")
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        assert su._face_detector() is None
    assert any(re.search(r"Haar cascade file missing from .*" + re.escape(str(tmp_path)), r.getMessage())
               for r in caplog.records)


def test_face_detector_is_the_cascade_when_installed(reset_face_detector):
    if getattr(getattr(cv2, "data", None), "haarcascades", None) is None:
        pytest.skip("this OpenCV build ships no Haar cascades")
    detector = su._face_detector()
    assert detector is not None and not detector.empty()
    assert su._face_detector() is detector  # cached
    # ... per thread: a cascade holds the buffers of the image it scans, so threads get their own
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        others = list(pool.map(lambda _: su._face_detector(), range(2)))
    assert all(d is not None and not d.empty() and d is not detector for d in others)
