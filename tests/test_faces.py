"""Faces: Haar detection on the real FF++ sample, the crop geometry, and the fallbacks."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import scarlet_utils as su

REPO = Path(__file__).resolve().parents[1]
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


# -- the detector: one cascade per thread, and none where OpenCV ships none ------------------------


@pytest.fixture(scope="module")
def face_frame() -> np.ndarray:
    """matplotlib's Grace Hopper portrait (RGB, 300 x 256), a frontal face the Haar cascade finds."""
    from matplotlib import cbook

    src = cbook.get_sample_data("grace_hopper.jpg")  # a path on old matplotlib, an open file on new
    data = Path(src).read_bytes() if isinstance(src, (str, os.PathLike)) else src.read()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(cv2.resize(bgr, (256, 300), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def test_each_thread_detects_with_a_cascade_of_its_own(monkeypatch, face_frame):
    # A CascadeClassifier keeps the buffers of the image it scans: two threads sharing one race.
    if getattr(getattr(cv2, "data", None), "haarcascades", None) is None:
        pytest.skip("this OpenCV build ships no Haar cascades")
    expected = su.detect_face(face_frame)
    assert expected is not None  # the premise: the cascade finds this face
    made, used = [], []
    real = cv2.CascadeClassifier

    class Spy:  # the real cascade, reporting which thread made it and which uses it
        def __init__(self, path: str) -> None:
            self._cascade = real(path)
            made.append(threading.get_ident())

        def empty(self) -> bool:
            return self._cascade.empty()

        def detectMultiScale(self, *args, **kwargs):
            used.append((threading.get_ident(), id(self)))
            return self._cascade.detectMultiScale(*args, **kwargs)

    monkeypatch.setattr(cv2, "CascadeClassifier", Spy)
    barrier = threading.Barrier(2)

    def detect_twice(_):
        barrier.wait(timeout=60)  # both threads at once: two threads, never one doing both
        return [su.detect_face(face_frame) for _ in range(2)]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(detect_twice, range(2))) + list(pool.map(detect_twice, range(2)))
    assert results == [[expected] * 2] * 4  # the same box from every thread
    threads = {thread for thread, _ in used}
    assert len(threads) == 2 and sorted(made) == sorted(threads)  # one cascade made per thread, kept for its calls
    assert all(len({d for t, d in used if t == thread}) == 1 for thread in threads)  # each uses only its own
    assert len({d for _, d in used}) == 2


# In a fresh process (the cascade is looked up once per process), OpenCV is made to ship no cascade
# before scarlet_utils first asks for it; then the portrait, a video of it, and what was logged.
_WITHOUT_CASCADE = textwrap.dedent("""
    import json, logging, sys
    from pathlib import Path
    import cv2
    import numpy as np

    how, folder = sys.argv[1], Path(sys.argv[2])
    if how == "no cv2.data":  # an OpenCV build without the data package
        del cv2.data
    elif how == "no cascade file":  # the data package without its files
        cv2.data.haarcascades = str(folder / "empty") + "/"
    elif how == "no CascadeClassifier":  # opencv-python >= 5 dropped the Haar cascades
        del cv2.CascadeClassifier
    import scarlet_utils as su

    said = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("scarlet").addHandler(handler)
    face = np.load(folder / "face.npy")
    box = su.detect_face(face)
    crops, missing = su.crop_faces([face] * 3, 40)
    clip = su.read_clip(folder / "face.mp4", 4, 32, face_crop=True)
    whole = su.read_clip(folder / "face.mp4", 4, 32, face_crop=False)
    print(json.dumps({
        "box": box, "missing": missing,
        "centre_crops": all(np.array_equal(c, su.resize_short_side_center_crop(face, 40)) for c in crops),
        "clip_missing": clip.faces_missing, "clip_is_whole": bool(np.array_equal(clip.frames, whole.frames)),
        "said": said,
    }))
""")
NO_CASCADE = ("no cv2.data", "no cascade file", "no CascadeClassifier")


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, face_frame):
    """A folder with ``face.npy`` (the portrait) and ``face.mp4`` (6 frames of it, drifting)."""
    folder = tmp_path_factory.mktemp("face")
    (folder / "empty").mkdir()
    np.save(folder / "face.npy", face_frame)
    writer = cv2.VideoWriter(str(folder / "face.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (256, 300))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v videos")
    for i in range(6):
        writer.write(cv2.cvtColor(np.roll(face_frame, 2 * i, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    return folder


@pytest.fixture(scope="module")
def without_cascade(face_video):
    """``{how: what the script reported}`` for each way of having no cascade, run side by side."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = {how: subprocess.Popen([sys.executable, "-c", _WITHOUT_CASCADE, how, str(face_video)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for how in NO_CASCADE}
    results = {}
    for how, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{how}: {err[-3000:]}"
        results[how] = json.loads(out.strip().splitlines()[-1])
    return results


def test_with_the_cascade_the_portrait_is_face_cropped(face_video, face_frame):
    # The premise of the test below: with a cascade, the same calls find the face.
    assert su.detect_face(face_frame) is not None
    crops, missing = su.crop_faces([face_frame] * 3, 40)
    assert missing == 0 and not np.array_equal(crops[0], su.resize_short_side_center_crop(face_frame, 40))
    clip = su.read_clip(face_video / "face.mp4", 4, 32, face_crop=True)
    assert clip.faces_missing == 0
    assert not np.array_equal(clip.frames, su.read_clip(face_video / "face.mp4", 4, 32).frames)


@pytest.mark.parametrize("how", NO_CASCADE)
def test_no_cascade_falls_back_to_centre_crops_and_says_so_once(without_cascade, how):
    result = without_cascade[how]
    assert result["box"] is None  # no detector: no face, never an exception
    assert result["missing"] == 3 and result["centre_crops"]
    assert result["clip_missing"] == 4 and result["clip_is_whole"]  # read_clip: whole-frame centre crops
    said = result["said"]
    assert len(said) == 1, said  # said once, however many frames asked
    assert "Haar" in said[0] and "centre crop" in said[0], said
