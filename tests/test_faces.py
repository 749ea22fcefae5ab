"""Faces: Haar detection, face tracks across the kept frames, the crop geometry, and the fallbacks.

Most videos here are built in the test: a face the cascade finds (matplotlib's Grace Hopper
portrait, or the frames of a real talking-face clip from the shared data) pasted on a 640 x 360
backdrop at 30 fps, with a passer-by, black frames, a second person, an exit or darkness added.
The expected boxes are where the detector finds the face in the same scene without the addition.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

import scarlet_utils as su

from conftest import decode_all

REPO = Path(__file__).resolve().parents[1]
REAL_FACES = REPO.parent / "shared" / "data" / "real_faces"
TALKING_FACE = REAL_FACES / "LipNet__grid_bbaf2n.mpg"  # GRID: 360 x 288, 75 frames, one frontal speaker
TURNED_FACE = REAL_FACES / "PC-AVS__Input_00010.mp4"  # VoxCeleb2: 224 x 224; turned away on frames ~70-100
FACE_SIZE = 64
NUM_FRAMES = 8
W, H, FPS = 640, 360, 30  # the built videos
N = 120  # frames per built video: 4 s; its kept frames are 0, 17, 34, 51, 68, 85, 102, 119
FRONTAL = dict(scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))  # what detect_faces asks the cascade


def frontal_pass(grey: np.ndarray) -> list[tuple[float, float, float]]:
    """The frontal cascade's own finds on a grey image, as sorted ``(cx, cy, side)`` boxes."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(grey, **FRONTAL)
    return sorted((x + w / 2, y + h / 2, float(max(w, h))) for x, y, w, h in faces)


def _rgb_frames(path: Path) -> list[np.ndarray]:
    frames = [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) for bgr in decode_all(path)]
    assert frames, f"cannot decode {path}"
    return frames


def _shared(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared real-face video not found: {path} (../shared/data beside the repo)")
    return path


def _decode(path: Path, indices) -> dict[int, np.ndarray]:
    """The decoded RGB frames of ``path`` at ``indices``, read in order."""
    wanted, out = set(indices), {}
    cap = cv2.VideoCapture(str(path))
    for i in range(max(wanted) + 1):
        ok, bgr = cap.read()
        assert ok, f"{path}: frame {i} does not decode"
        if i in wanted:
            out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    cap.release()
    return out


@lru_cache(maxsize=1)
def _gradient() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.stack([60 + 0.1 * xx, 70 + 0.15 * yy, np.full_like(xx, 90)], -1)


def backdrop(i: int) -> np.ndarray:
    """A soft colour gradient (no face-like structure) that brightens slowly frame by frame."""
    return (_gradient() + i // 10).astype(np.uint8)


def paste(canvas: np.ndarray, sprite: np.ndarray, cx: float, cy: float, height: int) -> np.ndarray:
    """``sprite`` scaled to ``height`` rows, centred at ``(cx, cy)`` on ``canvas`` (cut at its edges)."""
    h, w = sprite.shape[:2]
    width = round(w * height / h)
    scaled = cv2.resize(sprite, (width, height), interpolation=cv2.INTER_AREA)
    x0, y0 = round(cx - width / 2), round(cy - height / 2)
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + width, canvas.shape[1]), min(y0 + height, canvas.shape[0])
    if xa < xb and ya < yb:
        canvas[ya:yb, xa:xb] = scaled[ya - y0 : yb - y0, xa - x0 : xb - x0]
    return canvas


def the_face(frame: np.ndarray) -> su.Box:
    """Where the detector finds the one face of a single-face scene (the expected box)."""
    faces = su.detect_faces(frame)
    assert len(faces) == 1, faces
    return faces[0]


def on_face(box, ref, tol: float = 0.25) -> bool:
    """``box`` is centred on face ``ref`` (within ``tol`` of its side) and about its size."""
    return (box is not None and np.hypot(box[0] - ref[0], box[1] - ref[1]) <= tol * ref[2]
            and abs(box[2] / ref[2] - 1) <= tol)


# -- the faces the built videos show ---------------------------------------------------------------


@pytest.fixture(scope="module")
def face_frame() -> np.ndarray:
    """matplotlib's Grace Hopper portrait (RGB, 300 x 256), a frontal face the Haar cascade finds."""
    from matplotlib import cbook

    src = cbook.get_sample_data("grace_hopper.jpg")  # a path on old matplotlib, an open file on new
    data = Path(src).read_bytes() if isinstance(src, (str, os.PathLike)) else src.read()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(cv2.resize(bgr, (256, 300), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module", params=["portrait", "talking"])
def face_source(request, face_frame):
    """``face(i)``: the face to paste on frame ``i``: the still portrait, or a real talking face
    (the GRID clip played forth and back, so it never jumps; skipped without the shared data)."""
    if request.param == "portrait":
        return lambda i: face_frame
    frames = _rgb_frames(_shared(TALKING_FACE))
    n = len(frames)
    return lambda i: frames[i % (2 * n) if i % (2 * n) < n else 2 * n - 1 - i % (2 * n)]


def _kept() -> list[int]:
    kept = su.sample_frame_indices(N, NUM_FRAMES)
    assert kept == [0, 17, 34, 51, 68, 85, 102, 119]  # what the comments below count with
    return kept


# -- 1. a larger face passing by ------------------------------------------------------------------


def test_a_larger_face_passing_by_does_not_take_the_crop(write_video, face_source, face_frame):
    # The face stays at the left; a face ~1.5-2x its size (the portrait) shows up at a new place on
    # three kept frames only, never on the frames FACE_NEIGHBOUR later that confirm a find. Two of
    # its places are within a face side of each other: only the confirmation keeps it off a track.
    kept = _kept()
    passer = {kept[1]: (330, 180), kept[3]: (520, 190), kept[5]: (400, 170)}
    assert not {i + su.FACE_NEIGHBOUR for i in kept} & set(passer)

    def scene(i: int, passing: bool = True) -> np.ndarray:
        frame = paste(backdrop(i), face_source(i), 110 + 0.2 * i, 150, 150)
        return paste(frame, face_frame, *passer[i], 300) if passing and i in passer else frame

    frames = [scene(i) for i in range(N)]
    truth = [the_face(scene(i, passing=False)) for i in kept]
    for k, i in enumerate(kept):
        if i in passer:  # the premise: the passer-by is found and is the largest face
            big = max(su.detect_faces(frames[i]), key=lambda b: b[2])
            assert not on_face(big, truth[k], 1.0) and big[2] > 1.4 * truth[k][2], (i, big, truth[k])
    clip = su.read_clip(write_video("passer_by.mp4", frames, fps=FPS), NUM_FRAMES, FACE_SIZE, face_crop=True)
    assert clip.indices == kept
    assert clip.faces == su.FaceCounts(on_track=8, borrowed=0, no_face=0, tracks=1)
    for k, box in enumerate(clip.boxes):
        assert on_face(box, truth[k]), (kept[k], box, truth[k])


# -- 2. a clip that opens on black ----------------------------------------------------------------


@pytest.mark.parametrize(("fps", "borrowed", "no_face"), [(30, 3, 0), (10, 1, 2)])
def test_a_clip_that_opens_on_black_borrows_the_face_track(write_video, face_source, fps, borrowed, no_face):
    # Frames 0-47 (40%) are black: kept frames 0, 17, 34 (and the frames confirming them) show
    # nothing; 51 onwards show the face. Each black frame takes the box of kept frame 51, and is
    # "borrowed" when at most FACE_BORROW_SECONDS away: at 30 fps all three (51, 34, 17 frames away
    # <= 60), at 10 fps only frame 34 (17 <= 20). The same frames, so only the rate differs.
    first = 48
    kept = _kept()
    black = [k for k, i in enumerate(kept) if i < first]
    on = [k for k, i in enumerate(kept) if i >= first]
    assert black == [0, 1, 2] and all(kept[k] + su.FACE_NEIGHBOUR < first for k in black)
    gaps = [kept[on[0]] - kept[k] for k in black]
    assert sum(g <= su.FACE_BORROW_SECONDS * fps for g in gaps) == borrowed  # the rule gives these numbers

    def scene(i: int) -> np.ndarray:
        return paste(backdrop(i), face_source(i), 300 + 0.2 * i, 170, 160)

    frames = [np.zeros((H, W, 3), np.uint8) if i < first else scene(i) for i in range(N)]
    path = write_video(f"black_start_{fps}.mp4", frames, fps=fps)
    clip = su.read_clip(path, NUM_FRAMES, FACE_SIZE, face_crop=True)
    assert clip.faces == su.FaceCounts(on_track=len(on), borrowed=borrowed, no_face=no_face, tracks=1)
    assert not clip.faces.unsure
    for k in on:
        assert on_face(clip.boxes[k], the_face(scene(kept[k]))), (kept[k], clip.boxes[k])
    for k in black:  # the face track's box, never a whole-frame centre crop
        assert clip.boxes[k] == clip.boxes[on[0]]


# -- 3. two people --------------------------------------------------------------------------------


@pytest.mark.parametrize("larger_from", [0, 60], ids=["both-throughout", "larger-joins-late"])
def test_two_people_make_two_tracks_and_the_crops_follow_one(write_video, face_source, face_frame,
                                                             larger_from):
    # A smaller face at the left on every frame; a face twice its size at the right from frame
    # ``larger_from``. Both on all 8 kept frames: the larger one is followed (a tie in frames goes
    # to the larger). The larger one on the last 4 only: the smaller one is (more frames).
    kept = _kept()

    def scene(i: int, small: bool = True, large: bool = True) -> np.ndarray:
        frame = backdrop(i)
        if small:
            paste(frame, face_source(i), 150, 200, 140)
        if large and i >= larger_from:
            paste(frame, face_frame, 450, 180, 280)
        return frame

    frames = [scene(i) for i in range(N)]
    followed = "large" if larger_from == 0 else "small"
    truth = [the_face(scene(i, small=followed == "small", large=followed == "large")) for i in kept]
    clip = su.read_clip(write_video("two_people.mp4", frames, fps=FPS), NUM_FRAMES, FACE_SIZE, face_crop=True)
    assert clip.faces == su.FaceCounts(on_track=8, borrowed=0, no_face=0, tracks=2)
    for k, box in enumerate(clip.boxes):
        assert on_face(box, truth[k]), (followed, kept[k], box, truth[k])


# -- 4. a face that leaves ------------------------------------------------------------------------


def test_a_face_that_leaves_the_frame_lends_its_last_box(write_video, face_source, caplog):
    # The face drifts right slowly, then from frame 55 slides out at 40 px a frame (gone by ~62):
    # kept frames 0-51 show it, 68-119 do not. They take kept frame 51's box: borrowed at 17, 34
    # and 51 frames from it, no face at 68 (> FACE_BORROW_SECONDS * 30 fps = 60).
    kept = _kept()
    leaves = 55

    def x(i: int) -> float:
        return 300 + 0.5 * i if i < leaves else 300 + 0.5 * leaves + 40 * (i - leaves)

    def scene(i: int) -> np.ndarray:
        return paste(backdrop(i), face_source(i), x(i), 180, 170)

    frames = [scene(i) for i in range(N)]
    assert x(kept[4]) - 200 > W  # gone on the first kept frame after it leaves
    visible = [k for k, i in enumerate(kept) if i + su.FACE_NEIGHBOUR < leaves]
    gone = [k for k in range(NUM_FRAMES) if k not in visible]
    assert visible == [0, 1, 2, 3]
    gaps = [kept[k] - kept[visible[-1]] for k in gone]
    borrowed = sum(g <= su.FACE_BORROW_SECONDS * FPS for g in gaps)
    assert (borrowed, len(gone) - borrowed) == (3, 1)
    path = write_video("leaves.mp4", frames, fps=FPS)
    clip = su.read_clip(path, NUM_FRAMES, FACE_SIZE, face_crop=True)
    assert clip.faces == su.FaceCounts(on_track=4, borrowed=3, no_face=1, tracks=1)
    for k in visible:
        assert on_face(clip.boxes[k], the_face(scene(kept[k]))), (kept[k], clip.boxes[k])
    for k in gone:
        assert clip.boxes[k] == clip.boxes[visible[-1]]
    # The face on only half the kept frames: unsure, and read_video_frames says so once.
    assert clip.faces.unsure
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        frames_read = su.read_video_frames(path, NUM_FRAMES, FACE_SIZE, face_crop=True)
    np.testing.assert_array_equal(frames_read, clip.frames)
    said = [r.getMessage() for r in caplog.records if r.name == "scarlet" and r.levelno == logging.WARNING]
    assert len(said) == 1 and "the face was not found on most frames" in said[0], said
    assert clip.faces.summary() in said[0] and str(path) in said[0], said


# -- 5. a dark clip -------------------------------------------------------------------------------

DARK = 0.1  # pixel values x 0.1: the portrait's face, grey levels with a standard deviation of 61, gets ~6


def test_a_dark_clip_is_found_by_the_equalised_pass(write_video, face_source):
    # OpenCV's cascade skips windows whose grey levels have a standard deviation under 10 (too
    # flat to hold a face), so on a dark clip the plain frontal pass finds nothing; the equalised
    # frame restores the contrast. Checked on the decoded kept frames: plain misses, equalised
    # finds, and the clip follows the face where the bright clip has it.
    kept = _kept()

    def scene(i: int) -> np.ndarray:
        return paste(backdrop(i), face_source(i), 320 + 0.2 * i, 180, 220)

    dark = [(scene(i) * DARK).round().astype(np.uint8) for i in range(N)]
    path = write_video("dark.mp4", dark, fps=FPS)
    decoded = _decode(path, kept)
    plain = equalised = 0
    for i in kept:
        grey, scale = su.detection_view(decoded[i])
        assert scale == 1.0
        plain += len(frontal_pass(grey)) > 0
        found = frontal_pass(cv2.equalizeHist(grey))
        if len(found) == 1:  # what detect_faces gives is the equalised frontal pass's find (no later pass's)
            equalised += 1
            assert sorted(su.detect_faces(decoded[i])) == found, i
    assert plain == 0, f"the plain frontal pass finds the face on {plain} dark frames: not dark enough"
    assert equalised >= NUM_FRAMES - 1, equalised
    clip = su.read_clip(path, NUM_FRAMES, FACE_SIZE, face_crop=True)
    faces = clip.faces
    assert faces.on_track >= NUM_FRAMES - 1 and faces.tracks == 1 and not faces.unsure, faces
    for k, box in enumerate(clip.boxes):
        assert on_face(box, the_face(scene(kept[k]))), (kept[k], box)


def test_detect_faces_runs_the_later_passes_only_where_the_first_finds_nothing(face_frame):
    # A bright face: exactly the plain frontal pass's finds. A dark one: the plain pass finds
    # nothing, so the result is the equalised pass's.
    grey, scale = su.detection_view(face_frame)
    assert scale == 1.0
    plain = frontal_pass(grey)
    assert len(plain) == 1 and sorted(su.detect_faces(face_frame)) == plain
    dark = (face_frame * DARK).round().astype(np.uint8)
    grey, _ = su.detection_view(dark)
    assert frontal_pass(grey) == []
    equalised = frontal_pass(cv2.equalizeHist(grey))
    assert len(equalised) == 1 and sorted(su.detect_faces(dark)) == equalised
    assert on_face(equalised[0], plain[0], 0.15)


def test_a_turned_face_is_found_by_the_profile_pass_both_ways():
    # A real head turned away (VoxCeleb2): no frontal pass finds it; detect_faces does, and on the
    # mirrored frame (the head turned the other way) it finds the mirrored box.
    frames = _rgb_frames(_shared(TURNED_FACE))
    for i in (84, 90, 96):
        frame = frames[i]
        grey, _ = su.detection_view(frame)
        assert frontal_pass(grey) == frontal_pass(cv2.equalizeHist(grey)) == []
        found = su.detect_faces(frame)
        assert len(found) == 1, (i, found)
        cx, cy, side = found[0]
        assert 80 <= cx <= 140 and 50 <= cy <= 110 and 120 <= side <= 190, (i, found)  # the head, not the ear
        mirrored = su.detect_faces(np.ascontiguousarray(frame[:, ::-1]))
        back = (frame.shape[1] - mirrored[0][0], *mirrored[0][1:]) if len(mirrored) == 1 else None
        assert back and on_face(back, found[0], 0.1), (i, found, mirrored)


# -- detect_faces and detection_view --------------------------------------------------------------


def test_detection_view_is_the_downscaled_grey_frame():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    grey, scale = su.detection_view(wide)
    assert grey.shape == (360, 640) and grey.dtype == np.uint8 and scale == pytest.approx(1 / 3)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    assert su.detection_view(tall)[0].shape == (640, 360)
    bgr_view, bgr_scale = su.detection_view(np.ascontiguousarray(wide[..., ::-1]), bgr=True)
    np.testing.assert_array_equal(bgr_view, grey)
    assert bgr_scale == scale
    small = rng.integers(0, 256, (288, 352, 3), dtype=np.uint8)  # never upscaled
    grey, scale = su.detection_view(small)
    assert scale == 1.0
    np.testing.assert_array_equal(grey, cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))


@pytest.fixture(scope="module")
def two_faces(face_frame):
    """A 640 x 360 frame with the portrait at two sizes, and each face as found alone."""
    frame = paste(paste(backdrop(0), face_frame, 150, 200, 140), face_frame, 450, 180, 280)
    small = the_face(paste(backdrop(0), face_frame, 150, 200, 140))
    large = the_face(paste(backdrop(0), face_frame, 450, 180, 280))
    return frame, small, large


def test_detect_faces_finds_every_face_once(two_faces):
    frame, small, large = two_faces
    found = su.detect_faces(frame)
    assert len(found) == 2, found
    assert sum(on_face(b, small, 0.1) for b in found) == 1 and sum(on_face(b, large, 0.1) for b in found) == 1
    assert su.detect_faces(su.detection_view(frame)) == found  # the view gives the same faces
    assert su.detect_faces(backdrop(0)) == []


def test_detect_faces_reports_the_large_frames_own_pixels(two_faces):
    # 1280 x 720 is detected at 640 x 360: the boxes still come back in the frame's pixels.
    frame, small, large = two_faces
    big = cv2.resize(frame, (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR)
    assert su.detection_view(big)[1] == 0.5
    found = su.detect_faces(big)
    assert len(found) == 2, found
    for face in (small, large):
        assert sum(on_face(b, tuple(2 * v for v in face), 0.1) for b in found) == 1, (face, found)
        near = su.detect_faces(big, near=tuple(2 * v for v in face))
        assert len(near) == 1 and on_face(near[0], tuple(2 * v for v in face), 0.1), (face, near)


def test_detect_faces_near_a_box_finds_only_that_face(two_faces):
    frame, small, large = two_faces
    view = su.detection_view(frame)
    for face in (small, large):
        near = su.detect_faces(frame, near=face)
        assert len(near) == 1 and on_face(near[0], face, 0.1), (face, near)
        assert su.detect_faces(view, near=face) == near
    cx, cy, side = small
    assert su.detect_faces(frame, near=(cx + 150, cy, side)) == []  # nothing there
    assert su.detect_faces(frame, near=(cx, cy, side * 2.5)) == []  # the face is 0.4x the box
    assert su.detect_faces(frame, near=(cx, cy, side * 0.4)) == []  # the face is 2.5x the box


def test_detect_faces_near_a_box_off_the_frame_finds_nothing(two_faces):
    # A box beyond the left or top edge: its window holds no pixel of the frame, so no face (the
    # large face, 600 px away, is of the box's size and must not be found).
    frame, small, large = two_faces
    side = large[2]
    away = 1.5 * side
    for box in ((-away, large[1], side), (large[0], -away, side), (W + away, large[1], side)):
        assert su.detect_faces(frame, near=box) == [], box


@pytest.mark.real_video
def test_detect_faces_reports_full_resolution_coordinates(ffpp_videos):
    # Detection runs on a downscaled copy; the box must come back in the frame's own pixels.
    cap = cv2.VideoCapture(str(ffpp_videos[("Face2Face", "750_743")]))
    ok, bgr = cap.read()
    cap.release()
    assert ok and bgr.shape[:2] == (1080, 1920)
    full = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    found = su.detect_faces(full)
    assert found
    ref = found[0]
    cx, cy, side = ref
    assert 0 < cx < 1920 and 0 < cy < 1080 and 100 < side < 1080
    assert su.detect_faces(su.detection_view(bgr, bgr=True)) == found
    for factor in (2, 4):
        small = cv2.resize(full, (1920 // factor, 1080 // factor), interpolation=cv2.INTER_AREA)
        box = su.detect_faces(small)[0]
        scaled = np.array(box) * factor
        assert np.abs(scaled - np.array(ref)).max() <= 0.05 * side, (factor, scaled, ref)


# -- face_boxes: confirmation on the neighbour frame ----------------------------------------------


def test_face_boxes_keeps_the_confirmed_finds(two_faces, face_frame):
    frame, small, large = two_faces
    only_small = paste(backdrop(0), face_frame, 150, 200, 140)
    blank = backdrop(0)
    # Both found, the small one confirmed on the neighbour: only it is kept (alone, the large one wins).
    boxes, counts = su.face_boxes([frame], [10], [only_small], fps=FPS)
    assert on_face(boxes[0], small, 0.1) and counts == su.FaceCounts(on_track=1, tracks=0)
    assert su.face_boxes([frame], [10], [su.detection_view(only_small)], fps=FPS) == (boxes, counts)
    # None confirmed: all finds are kept, and the larger face wins the tie.
    boxes, counts = su.face_boxes([frame], [10], [blank], fps=FPS)
    assert on_face(boxes[0], large, 0.1) and counts == su.FaceCounts(on_track=1, tracks=0)
    # Nothing found on the frame itself: the neighbour's finds.
    boxes, counts = su.face_boxes([blank], [10], [only_small], fps=FPS)
    assert on_face(boxes[0], small, 0.1) and counts == su.FaceCounts(on_track=1, tracks=0)
    # Nothing anywhere.
    assert su.face_boxes([blank, blank], [10, 20], [blank, blank], fps=FPS) == (
        [None, None], su.FaceCounts(no_face=2))


# -- 6. track_faces on hand-made detections ---------------------------------------------------------

A = (100.0, 100.0, 50.0)  # a face, with small per-frame jitter below
B = (400.0, 120.0, 50.0)  # a face far from it (never the same track)


def jitter(box, k):
    return (box[0] + k % 3, box[1] - k % 2, box[2] + k % 2)


IDS = [0, 10, 20, 30, 40, 50, 60, 70]  # kept frames 10 apart: no box is averaged with another


def test_track_faces_follows_one_face():
    dets = [[jitter(A, k)] for k in range(8)]
    boxes, counts = su.track_faces(dets, IDS, fps=25)
    assert boxes == [jitter(A, k) for k in range(8)]
    assert counts == su.FaceCounts(on_track=8, borrowed=0, no_face=0, tracks=1) and not counts.unsure


def test_track_faces_drops_a_one_frame_outlier():
    # Frame 30 shows only a find elsewhere (and more confident than A on frame 50): neither makes a track.
    dets = [[jitter(A, k)] for k in range(8)]
    dets[3] = [B]
    dets[5] = [(250.0, 300.0, 90.0), jitter(A, 5)]
    boxes, counts = su.track_faces(dets, IDS, fps=25)
    assert counts == su.FaceCounts(on_track=7, borrowed=1, no_face=0, tracks=1)
    assert boxes[5] == jitter(A, 5)
    assert boxes[3] in (boxes[2], boxes[4])  # the nearest frame on the track lends its box
    assert all(on_face(b, A, 0.1) for b in boxes)


def test_track_faces_averages_only_boxes_a_few_frames_apart():
    # Within 2 * FACE_NEIGHBOUR frames: averaged; farther: each its own.
    assert su.FACE_NEIGHBOUR == 2
    dets = [[(100.0, 100.0, 50.0)], [(104.0, 102.0, 54.0)], [(110.0, 100.0, 50.0)]]
    boxes, counts = su.track_faces(dets, [0, 4, 20], fps=25)
    assert boxes == [(102.0, 101.0, 52.0), (102.0, 101.0, 52.0), (110.0, 100.0, 50.0)]
    assert counts == su.FaceCounts(on_track=3, tracks=1)
    # A short video's repeated frames (sample_frame_indices(3, 6) = [0, 0, 1, 1, 2, 2]) are one track.
    ids = su.sample_frame_indices(3, 6)
    boxes, counts = su.track_faces([[jitter(A, i)] for i in ids], ids, fps=25)
    assert counts == su.FaceCounts(on_track=6, tracks=1)
    assert boxes[0] == boxes[-1] == tuple(np.mean([jitter(A, i) for i in ids], axis=0).tolist())


@pytest.mark.parametrize(("fps", "borrowed", "no_face"), [(30, 3, 0), (25, 2, 1), (10, 1, 2), (4, 0, 3)])
def test_track_faces_borrows_within_the_window_and_counts_no_face_beyond(fps, borrowed, no_face):
    # The face on kept frames 60-130 only; frames 0, 30, 50 are 60, 30, 10 frames from frame 60.
    # Borrowed within FACE_BORROW_SECONDS * fps frames (60, 50, 20, 8), no face beyond.
    ids = [0, 30, 50, 60, 80, 100, 130]
    dets = [[], [], [], *[[jitter(A, k)] for k in range(4)]]
    boxes, counts = su.track_faces(dets, ids, fps=fps)
    assert su.FACE_BORROW_SECONDS == 2.0
    assert counts == su.FaceCounts(on_track=4, borrowed=borrowed, no_face=no_face, tracks=1)
    assert boxes[:3] == [boxes[3]] * 3 == [jitter(A, 0)] * 3  # always the nearest frame's box
    assert counts.unsure is False and su.FaceCounts(on_track=4, borrowed=4).unsure  # half: unsure


def test_track_faces_breaks_a_tie_in_frames_by_size():
    small, large = (100.0, 100.0, 40.0), (400.0, 100.0, 60.0)
    dets = [[small, large] for _ in range(4)]  # the small one listed (more confident) first
    boxes, counts = su.track_faces(dets, IDS[:4], fps=25)
    assert boxes == [large] * 4 and counts == su.FaceCounts(on_track=4, tracks=2)
    # More frames beat size: the large face on 3 of 4 frames, the small on all 4.
    dets[0] = [small]
    boxes, counts = su.track_faces(dets, IDS[:4], fps=25)
    assert boxes == [small] * 4 and counts == su.FaceCounts(on_track=4, tracks=2)


def test_track_faces_links_by_position_and_size():
    # A face that moves less than its side between kept frames is one track; a jump of more
    # than a side, or a size change beyond 1.6x, starts another.
    moving = [[(100.0 + 40 * k, 100.0, 50.0)] for k in range(4)]
    assert su.track_faces(moving, IDS[:4], fps=25)[1] == su.FaceCounts(on_track=4, tracks=1)
    jump = [[(100.0, 100.0, 50.0)], [(100.0, 100.0, 50.0)], [(220.0, 100.0, 50.0)], [(220.0, 100.0, 50.0)]]
    boxes, counts = su.track_faces(jump, IDS[:4], fps=25)
    assert counts == su.FaceCounts(on_track=2, borrowed=2, tracks=2)
    grows = [[(100.0, 100.0, 50.0)], [(100.0, 100.0, 50.0)], [(100.0, 100.0, 85.0)], [(100.0, 100.0, 85.0)]]
    boxes, counts = su.track_faces(grows, IDS[:4], fps=25)
    assert counts == su.FaceCounts(on_track=2, borrowed=2, tracks=2)
    assert boxes == [(100.0, 100.0, 85.0)] * 4  # two frames each: the larger


def test_track_faces_with_no_detections():
    boxes, counts = su.track_faces([[], [], [], []], IDS[:4], fps=25)
    assert boxes == [None] * 4
    assert counts == su.FaceCounts(on_track=0, borrowed=0, no_face=4, tracks=0) and counts.unsure


def test_face_counts_unsure_and_summary():
    assert not su.FaceCounts(on_track=5, borrowed=3).unsure
    assert su.FaceCounts(on_track=4, borrowed=2, no_face=2).unsure  # half the frames: unsure
    assert su.FaceCounts(on_track=3, borrowed=1, no_face=2, tracks=2).summary() == (
        "face on 3 frames, borrowed on 1, none on 2; 2 face tracks")
    assert su.FaceCounts(on_track=8, tracks=1).summary().endswith("; 1 face track")


# -- 7. the real FF++ sample -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_clips(ffpp_videos):
    """``{(method, id): face-cropped Clip}`` for the 7 sample videos, read once."""
    return {key: su.read_clip(p, NUM_FRAMES, FACE_SIZE, face_crop=True) for key, p in ffpp_videos.items()}


@pytest.mark.real_video
def test_faces_found_in_real_sample(face_clips):
    for key, clip in face_clips.items():
        assert clip.frames.shape == (NUM_FRAMES, FACE_SIZE, FACE_SIZE, 3) and clip.frames.dtype == np.uint8
        assert clip.faces.on_track >= NUM_FRAMES - 1 and clip.faces.tracks >= 1, (key, clip.faces)
        assert not clip.faces.unsure and len(clip.boxes) == NUM_FRAMES and None not in clip.boxes, key


@pytest.mark.real_video
def test_face_crops_are_centred_on_a_face(face_clips):
    # Detect again inside the 64 px crops: a face 1/1.3 of the crop, near its centre. (On the
    # sample, 64 px whole-frame centre crops hold no face the detector finds at all.)
    for key, clip in face_clips.items():
        for k, crop in enumerate(clip.frames):
            found = su.detect_faces(crop)
            assert found, (key, k)
            cx, cy, side = found[0]
            assert abs(cx - FACE_SIZE / 2) <= 8 and abs(cy - FACE_SIZE / 2) <= 8, (key, k, found[0])
            face = FACE_SIZE / su.FACE_MARGIN
            assert face * 0.8 <= side <= face * 1.2, (key, k, found[0])


@pytest.mark.real_video
def test_face_crops_from_the_thread_pool_are_the_serial_ones(face_clips, ffpp_videos, tmp_path):
    # Two extraction threads detect faces at once, each with its own cascades: same crops, same counts.
    # (The 1080p video is left out here: it takes as long as three others, and face_clips reads it.)
    items = [su.VideoItem(path, int(m != "original"), m, v) for (m, v), path in ffpp_videos.items()
             if v != "750_743"]
    report = su.extract_frames(items, tmp_path, NUM_FRAMES, FACE_SIZE, face_crop=True, workers=2)
    assert len(report.done) == len(items) and not report.failed
    assert set(report.faces) == set(items) and report.unsure == []
    for item in items:
        clip = face_clips[(item.method, item.video_id)]
        np.testing.assert_array_equal(np.load(su.cache_path(item, tmp_path)), clip.frames)
        assert report.faces[item] == clip.faces


# -- crop geometry with a known box ----------------------------------------------------------------


@pytest.fixture
def textured_frame():
    """A 100 x 200 RGB frame whose every pixel differs from its neighbours."""
    return np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)


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
def test_crop_faces_exact_region(textured_frame, box, rows, cols):
    side = rows[1] - rows[0]
    assert side == cols[1] - cols[0]
    crops = su.crop_faces([textured_frame], [box], size=side)  # same size: no resampling
    assert len(crops) == 1
    np.testing.assert_array_equal(crops[0], textured_frame[rows[0] : rows[1], cols[0] : cols[1]])


def test_crop_faces_resizes_to_size(textured_frame):
    region = textured_frame[14:66, 24:76]  # the 52 px crop of box (50, 40, 40)
    shrunk = su.crop_faces([textured_frame] * 2, [(50, 40, 40)] * 2, size=40)
    grown = su.crop_faces([textured_frame], [(50, 40, 40)], size=80)
    assert shrunk[0].shape == (40, 40, 3) and grown[0].shape == (80, 80, 3)
    np.testing.assert_array_equal(shrunk[0], cv2.resize(region, (40, 40), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(shrunk[1], shrunk[0])
    np.testing.assert_array_equal(grown[0], cv2.resize(region, (80, 80), interpolation=cv2.INTER_LINEAR))
    # The premise: the other interpolation would give other pixels (not so at exactly half size).
    assert not np.array_equal(shrunk[0], cv2.resize(region, (40, 40), interpolation=cv2.INTER_LINEAR))
    assert not np.array_equal(grown[0], cv2.resize(region, (80, 80), interpolation=cv2.INTER_AREA))


def test_crop_faces_centre_crops_where_there_is_no_box(textured_frame):
    crops = su.crop_faces([textured_frame] * 3, [(50, 40, 40), None, (160.0, 60.0, 30.0)], size=52)
    assert [c.shape for c in crops] == [(52, 52, 3)] * 3
    np.testing.assert_array_equal(crops[0], textured_frame[14:66, 24:76])
    np.testing.assert_array_equal(crops[1], su.resize_short_side_center_crop(textured_frame, 52))
    assert not np.array_equal(crops[2], crops[0])  # each frame its own box
    with pytest.raises(ValueError):
        su.crop_faces([textured_frame] * 2, [(50, 40, 40)], size=52)  # a box for each frame


def test_read_clip_crops_the_frames_at_their_boxes(write_video, face_frame):
    # clip.boxes are in the full-resolution frame's pixels: cropping the decoded kept frames at
    # them gives exactly the clip's crops.
    frames = [paste(backdrop(i), face_frame, 250 + i, 180, 200) for i in range(30)]
    path = write_video("boxes.mp4", frames, fps=FPS)
    clip = su.read_clip(path, 4, FACE_SIZE, face_crop=True)
    assert clip.faces == su.FaceCounts(on_track=4, tracks=1) and len(clip.boxes) == 4
    decoded = _decode(path, clip.indices)
    crops = su.crop_faces([decoded[i] for i in clip.indices], clip.boxes, FACE_SIZE)
    np.testing.assert_array_equal(np.stack(crops), clip.frames)
    whole = su.read_clip(path, 4, FACE_SIZE, face_crop=False)
    assert whole.faces is None and whole.boxes is None


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
    assert face.faces == su.FaceCounts(on_track=0, borrowed=0, no_face=4, tracks=0) and face.faces.unsure
    assert face.boxes == [None] * 4
    assert whole.faces is None and whole.boxes is None
    np.testing.assert_array_equal(face.frames, whole.frames)


def test_no_face_warning_from_read_video_frames(faceless_video, caplog):
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        frames = su.read_video_frames(faceless_video, num_frames=4, size=32, face_crop=True)
    assert frames.shape == (4, 32, 32, 3)
    warnings = [r for r in caplog.records if r.name == "scarlet" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    msg = warnings[0].getMessage()
    assert str(faceless_video) in msg and "the face was not found on most frames" in msg, msg
    assert su.FaceCounts(no_face=4).summary() in msg, msg


def test_no_warning_without_face_crop_or_with_the_face_found(faceless_video, face_video, caplog):
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        su.read_video_frames(faceless_video, num_frames=4, size=32, face_crop=False)
        su.read_video_frames(face_video / "face.mp4", num_frames=4, size=32, face_crop=True)
    assert not [r for r in caplog.records if r.name == "scarlet"]


def test_extract_frames_reports_the_faces_and_lists_the_unsure(tmp_path, face_video, faceless_video,
                                                               face_frame, write_video):
    # A face on every frame; a clip opening on black (kept frame 0 borrows from frame 10, 1 s at
    # 10 fps); no face at all. Only the last is unsure. A rerun decodes nothing and reports the same.
    black = np.zeros((300, 256, 3), np.uint8)
    late = write_video("late.mp4", [black if i < 8 else face_frame for i in range(30)])
    items = [su.VideoItem(face_video / "face.mp4", 0, "original", "face"),
             su.VideoItem(late, 0, "original", "late"),
             su.VideoItem(faceless_video, 1, "Deepfakes", "no_face")]
    cache = tmp_path / "cache"
    report = su.extract_frames(items, cache, 4, 32, face_crop=True, workers=2)
    assert sorted(report.done, key=items.index) == items and not report.failed
    assert report.faces == {items[0]: su.FaceCounts(on_track=4, tracks=1),
                            items[1]: su.FaceCounts(on_track=3, borrowed=1, tracks=1),
                            items[2]: su.FaceCounts(no_face=4)}
    assert report.unsure == [(items[2], su.FaceCounts(no_face=4))]
    for item in items:
        clip = su.read_clip(item.path, 4, 32, face_crop=True)
        assert report.faces[item] == clip.faces
        np.testing.assert_array_equal(np.load(su.cache_path(item, cache)), clip.frames)
    again = su.extract_frames(items, cache, 4, 32, face_crop=True, workers=2)  # all cached: nothing decoded
    assert again.skipped == items and not again.done  # ... and the counts come back with the cached clips
    assert again.faces == report.faces and again.unsure == report.unsure
    # What the notebook prints: the counts, then every video whose crops were not all on one face.
    assert again.summary().splitlines() == [
        "decoded 0, already cached 3, failed 0", "1 of 3 videos unsure: the face not found on most frames",
        f"{late}: {su.FaceCounts(on_track=3, borrowed=1, tracks=1).summary()}",
        f"{faceless_video}: {su.FaceCounts(no_face=4).summary()} (unsure)"]
    whole = su.extract_frames(items, tmp_path / "whole", 4, 32, face_crop=False, workers=1)
    assert len(whole.done) == 3 and whole.faces == {} and whole.unsure == []


# -- the detector: one cascade pair per thread, and none where OpenCV ships none -------------------


def test_each_thread_detects_with_cascades_of_its_own(monkeypatch, face_frame):
    # A CascadeClassifier keeps the buffers of the image it scans: two threads sharing one race.
    if getattr(getattr(cv2, "data", None), "haarcascades", None) is None:
        pytest.skip("this OpenCV build ships no Haar cascades")
    expected = su.detect_faces(face_frame)
    assert expected  # the premise: the cascade finds this face (and the cascade files are known)
    made, used = [], []
    real = cv2.CascadeClassifier

    class Spy:  # the real cascade, reporting which thread made it and which uses it
        def __init__(self, path: str) -> None:
            self._cascade = real(path)
            made.append((threading.get_ident(), id(self)))

        def empty(self) -> bool:
            return self._cascade.empty()

        def detectMultiScale3(self, *args, **kwargs):
            used.append((threading.get_ident(), id(self)))
            return self._cascade.detectMultiScale3(*args, **kwargs)

    monkeypatch.setattr(cv2, "CascadeClassifier", Spy)
    barrier = threading.Barrier(2)

    def detect_twice(_):
        barrier.wait(timeout=60)  # both threads at once: two threads, never one doing both
        return [su.detect_faces(face_frame) for _ in range(2)]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(detect_twice, range(2))) + list(pool.map(detect_twice, range(2)))
    assert results == [[expected] * 2] * 4  # the same faces from every thread
    threads = {thread for thread, _ in used}
    assert len(threads) == 2
    assert Counter(t for t, _ in made) == {t: 2 for t in threads}  # one pair (frontal, profile) per thread
    for thread in threads:  # each uses only its own, kept for all its calls
        assert {c for t, c in used if t == thread} <= {c for t, c in made if t == thread}


# In a fresh process (the cascades are looked up once per process), OpenCV is made to ship no
# cascade before scarlet_utils first asks for it; then the portrait, a video of it, and what was logged.
_WITHOUT_CASCADE = textwrap.dedent("""
    import dataclasses, json, logging, sys
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
    clip = su.read_clip(folder / "face.mp4", 4, 32, face_crop=True)
    whole = su.read_clip(folder / "face.mp4", 4, 32, face_crop=False)
    print(json.dumps({
        "faces": su.detect_faces(face), "view": su.detect_faces(su.detection_view(face)),
        "near": su.detect_faces(face, near=(133.0, 108.0, 115.0)),
        "counts": dataclasses.asdict(clip.faces), "boxes": clip.boxes,
        "clip_is_whole": bool(np.array_equal(clip.frames, whole.frames)),
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
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for how in NO_CASCADE}
    results = {}
    for how, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{how}: {err[-3000:]}"
        results[how] = json.loads(out.strip().splitlines()[-1])
    return results


def test_with_the_cascade_the_portrait_is_face_cropped(face_video, face_frame):
    # The premise of the test below: with a cascade, the same calls find the face.
    face = np.load(face_video / "face.npy")
    assert su.detect_faces(face) and su.detect_faces(su.detection_view(face))
    assert su.detect_faces(face, near=(133.0, 108.0, 115.0))
    clip = su.read_clip(face_video / "face.mp4", 4, 32, face_crop=True)
    assert clip.faces == su.FaceCounts(on_track=4, tracks=1) and None not in clip.boxes
    assert not np.array_equal(clip.frames, su.read_clip(face_video / "face.mp4", 4, 32).frames)


@pytest.mark.parametrize("how", NO_CASCADE)
def test_no_cascade_falls_back_to_centre_crops_and_says_so_once(without_cascade, how):
    result = without_cascade[how]
    assert result["faces"] == result["view"] == result["near"] == []  # no detector: no face, no exception
    assert result["counts"] == {"on_track": 0, "borrowed": 0, "no_face": 4, "tracks": 0}
    assert result["boxes"] == [None] * 4 and result["clip_is_whole"]  # read_clip: whole-frame centre crops
    said = result["said"]
    assert len(said) == 1, said  # said once, however many frames asked
    assert "Haar" in said[0] and "centre crop" in said[0], said


def test_a_box_inside_a_larger_face_is_part_of_that_face():
    # On this clip's last three kept frames the frontal cascade also finds the eyes and brows as a
    # face of half the size, inside the face's box. Found as a second face, it made a second track.
    path = _shared(REAL_FACES / "Thin-Plate-Spline-Motion-Model__driving.mp4")
    kept = su.sample_frame_indices(int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)), NUM_FRAMES)
    frames = _decode(path, kept[-3:])
    for i, frame in frames.items():
        raw = frontal_pass(su.detection_view(frame)[0])
        assert len(raw) == 2, (i, raw)  # the premise: the cascade's own finds, one inside the other
        faces = su.detect_faces(frame)
        assert len(faces) == 1 and faces[0][2] >= 200, (i, faces)  # the whole face (216-224 px), not the eyes
    clip = su.read_clip(path, NUM_FRAMES, FACE_SIZE, face_crop=True)
    assert clip.faces == su.FaceCounts(on_track=NUM_FRAMES, tracks=1)
