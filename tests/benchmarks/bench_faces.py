"""Face crops judged on real footage, and what they cost. Not a test: run it and read the tables.

    pip install dlib-bin face-recognition-models      # the reference detector: this script only
    python tests/benchmarks/bench_faces.py [--grid-dir faces_grid] [--rounds 3]

Every real-footage video in ../shared/data (the 7 FF++ c23 sample videos and the real_faces/ videos)
is read as the notebook reads it with FACE_CROP on: 8 frames, 224 px crops (``read_clip``). Each
crop is judged by a second detector that shares nothing with the product's OpenCV cascades: dlib's
CNN face detector (MMOD). A crop is **good** when that detector finds a face in it whose centre lies
within 20% of the crop's side from the crop's centre and whose side is 30% to 110% of the crop's
(a face crop with a 1.3x margin puts a face box of about 77% there). One grid PNG per source folder
shows every clip, a row per video, each crop framed green (good) or red (not), for a person to look at.

Speed: the whole-frame path (``read_clip(face_crop=False)``) against the face path on the 7 FF++
videos, the rounds interleaved, medians, as one ratio from this run.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import scarlet_utils as su  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
CENTRE_TOLERANCE = 0.20  # of the crop's side
SIDE_RANGE = (0.30, 1.10)  # the reference face's side over the crop's
TILE = 112  # px per crop in the grids


def videos() -> list[tuple[str, Path]]:
    """``(source folder, path)`` for every real-footage video in the shared data."""
    found = [("FF++ c23", p) for p in sorted((SHARED / "ffpp_c23_sample").rglob("*.mp4"))]
    found += [(p.name.split("__")[0], p) for p in sorted((SHARED / "real_faces").iterdir())
              if p.suffix.lower() in su.VIDEO_EXTENSIONS]
    return found


def reference_detector():
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or importlib.util.find_spec("dlib") is None:
        sys.exit("needs the reference detector: pip install dlib-bin face-recognition-models")
    import dlib

    # face_recognition_models' own __init__ needs pkg_resources; the model file is all we need.
    weights = Path(spec.submodule_search_locations[0]) / "models" / "mmod_human_face_detector.dat"
    return dlib.cnn_face_detection_model_v1(str(weights))


def judge(detector, crop: np.ndarray) -> tuple[bool, str]:
    """Whether a ``(S, S, 3)`` RGB crop shows one centred face of a plausible size, and why not."""
    size = crop.shape[0]
    for upsample in (0, 1):  # 1 finds faces down to about 40 px
        found = detector(np.ascontiguousarray(crop), upsample)
        if len(found):
            break
    if not len(found):
        return False, "no face"
    r = max(found, key=lambda d: d.confidence).rect
    cx, cy, side = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2, max(r.width(), r.height())
    off = max(abs(cx - size / 2), abs(cy - size / 2)) / size
    if off > CENTRE_TOLERANCE:
        return False, f"off centre ({off:.0%})"
    if not SIDE_RANGE[0] <= side / size <= SIDE_RANGE[1]:
        return False, f"face {side / size:.0%} of the crop"
    return True, "good"


def grid(rows: list[tuple[str, np.ndarray, list[bool]]], path: Path) -> None:
    """One row per clip: its name, then its crops framed green (good) or red (not)."""
    label_w = 260
    canvas = np.full((len(rows) * (TILE + 6) + 6, label_w + 8 * (TILE + 6) + 6, 3), 255, np.uint8)
    for r, (name, frames, good) in enumerate(rows):
        y = 6 + r * (TILE + 6)
        cv2.putText(canvas, name[:34], (6, y + TILE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        for c, (frame, ok) in enumerate(zip(frames, good)):
            x = label_w + c * (TILE + 6)
            colour = (40, 170, 40) if ok else (220, 30, 30)
            canvas[y - 3:y + TILE + 3, x - 3:x + TILE + 3] = colour
            canvas[y:y + TILE, x:x + TILE] = cv2.resize(frame, (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))


def speed(rounds: int) -> tuple[float, float]:
    """Median seconds over the 7 FF++ videos: whole frames, face crops (rounds interleaved)."""
    paths = [p for source, p in videos() if source == "FF++ c23"]
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for face in ((False, True) if r % 2 == 0 else (True, False)):
            start = time.perf_counter()
            for p in paths:
                su.read_clip(p, 8, 224, face_crop=face)
            times[face].append(time.perf_counter() - start)
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid-dir", type=Path, default=Path("faces_grid"))
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds (0: skip the speed part)")
    args = parser.parse_args()
    detector = reference_detector()
    args.grid_dir.mkdir(parents=True, exist_ok=True)
    per_source: dict[str, list[tuple[str, np.ndarray, list[bool]]]] = defaultdict(list)
    reasons: dict[str, int] = defaultdict(int)
    listed = []
    for source, path in videos():
        try:
            clip = su.read_clip(path, 8, 224, face_crop=True)
        except su.VideoReadError as exc:
            print(f"unreadable: {exc}")
            continue
        verdicts = [judge(detector, f) for f in clip.frames]
        for ok, why in verdicts:
            reasons[why] += 1
        per_source[source].append((path.stem, clip.frames, [ok for ok, _ in verdicts]))
        faces = getattr(clip, "faces", None)
        if faces is not None and getattr(faces, "unsure", False):
            listed.append(f"{path.name}: {faces.summary()}")
    print(f"{'source':<32} {'videos':>6} {'crops':>6} {'good':>6} {'share':>7}")
    total_good = total = 0
    for source, rows in sorted(per_source.items()):
        good = sum(sum(g) for _, _, g in rows)
        n = sum(len(g) for _, _, g in rows)
        total_good, total = total_good + good, total + n
        print(f"{source:<32} {len(rows):>6} {n:>6} {good:>6} {good / n:>7.1%}")
        grid(rows, args.grid_dir / f"{source.replace(' ', '_').replace('+', 'p')}.png")
    print(f"{'all':<32} {sum(map(len, per_source.values())):>6} {total:>6} {total_good:>6} {total_good / total:>7.1%}")
    print("why crops were judged not good:", dict(sorted((k, v) for k, v in reasons.items() if k != "good")) or "none")
    for line in listed:
        print("listed by the module as unsure:", line)
    print(f"grids: {args.grid_dir}/*.png")
    if args.rounds:
        whole, face = speed(args.rounds)
        print(f"speed, 7 FF++ videos, median of {args.rounds}: whole frames {whole:.2f} s, face crops {face:.2f} s, "
              f"ratio {face / whole:.2f}x")


if __name__ == "__main__":
    main()
