"""Frames and seconds per video for read_video_frames on the shared FF++ sample, whole frames
vs face crop. Not a test (no assertions on time): run it and read the table.

    .venv/bin/python tests/benchmarks/bench_read.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import scarlet_utils as su  # noqa: E402

SAMPLE = REPO.parent / "shared" / "data" / "ffpp_c23_sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed reads per video and mode (median kept)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    videos = sorted(SAMPLE.rglob("*.mp4"))
    if not videos:
        sys.exit(f"no videos under {SAMPLE}")
    rows, totals = [], {False: [], True: []}
    for path in videos:
        row = [f"{path.parent.parent.parent.name}/{path.name}"]
        for face in (False, True):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                clip = su.read_clip(path, args.frames, args.size, face_crop=face)
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            totals[face].append(med)
            row += [f"{len(clip.frames)}", f"{med:.3f}"] + ([f"{clip.faces.on_track}/{args.frames}"] if face else [])
        row.insert(1, str(clip.total_frames))
        rows.append(row)
    print(su.format_table(rows, ["video", "frames in video", "frames", "s (whole)", "frames", "s (face crop)", "face on track"]))
    print(f"\nmean seconds per video: whole frames {statistics.mean(totals[False]):.3f}, "
          f"face crop {statistics.mean(totals[True]):.3f} "
          f"(face crop / whole = {statistics.mean(totals[True]) / statistics.mean(totals[False]):.2f}x)")


if __name__ == "__main__":
    main()
