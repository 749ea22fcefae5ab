"""Frame extraction: the common approach vs ours, same pixels. Not a test (the only assertions are
that every approach returns exactly the baseline's frames): run it and read the tables.

    /work/venv/bin/python tests/benchmarks/bench_extract.py [--rounds 3]

Approaches, each over the 7 FF++ c23 sample videos, 8 frames at 224 (the notebook's setting):
  baseline     the common approach: cv2.VideoCapture, cap.read() every frame up to the last
               wanted one, keep the 8 wanted (sample_frame_indices), BGR->RGB, resize + centre
               crop; one process, video after video
  grab         read_clip: grab() skips unwanted frames without converting them; serial
  ours         extract_frames: grab(), default_workers() threads (one FFmpeg decoding thread
               each; OpenCV lets go of the GIL while decoding), the clips written to a .npy cache
               (included in its time)
  isolated     extract_frames(isolate=True): the same in a pool of spawned processes, each of
               which imports torch (through scarlet_utils) before its first video

The rounds interleave the approaches (in a rotating order) and each figure is the median over
rounds; the machine may be shared, so CPU seconds (this process and its children) are shown too.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import scarlet_utils as su  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
FFPP = SHARED / "ffpp_c23_sample"
REAL_FACES = SHARED / "real_faces"
ORIGINAL_RUN_VIDEOS = 1400
KAGGLE_CPUS = 4


def baseline(path: Path, num_frames: int, size: int) -> np.ndarray:
    """The common approach (see the module docstring)."""
    cap = cv2.VideoCapture(str(path))
    indices = su.sample_frame_indices(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), num_frames)
    wanted, kept, i = set(indices), {}, 0
    while i <= indices[-1]:
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            kept[i] = frame
        i += 1
    cap.release()
    return np.stack([su.resize_short_side_center_crop(cv2.cvtColor(kept[j], cv2.COLOR_BGR2RGB), size)
                     for j in indices])


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the pool's workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def items_for(paths: list[Path]) -> list[su.VideoItem]:
    return [su.VideoItem(p, 0, f"{k:03d}", p.stem) for k, p in enumerate(paths)]  # a cache folder each


def run(approach: str, paths: list[Path], args) -> tuple[list[np.ndarray], float, float]:
    """(clips, wall seconds, CPU seconds) of one approach over ``paths``."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    if approach == "baseline":
        clips = [baseline(p, args.frames, args.size) for p in paths]
    elif approach == "grab":
        clips = [su.read_clip(p, args.frames, args.size).frames for p in paths]
    else:
        with tempfile.TemporaryDirectory() as cache:
            items = items_for(paths)
            report = su.extract_frames(items, cache, args.frames, args.size, isolate=approach == "isolated")
            assert not report.failed, report.failed
            clips = [np.load(su.cache_path(item, cache)) for item in items]
    return clips, time.perf_counter() - t0, cpu_seconds() - c0


def pool_startup(workers: int) -> float:
    """Seconds to start extract_frames(isolate=True)'s pool: spawn ``workers`` processes that import
    scarlet_utils."""
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=su._init_extract_worker) as pool:
        for fut in [pool.submit(su.default_workers) for _ in range(workers)]:
            fut.result()
    return time.perf_counter() - t0


def frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per approach (median kept)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    ffpp = sorted(FFPP.rglob("*.mp4"))
    real = sorted(p for p in REAL_FACES.glob("*") if p.suffix.lower() in su.VIDEO_EXTENSIONS)
    if len(ffpp) != 7:
        sys.exit(f"expected the 7 FF++ sample videos under {FFPP}, found {len(ffpp)}")
    workers = su.default_workers()
    print(f"machine: {workers} CPUs, load average {os.getloadavg()[0]:.1f} (shared: other jobs may run); "
          f"OpenCV {cv2.__version__}; {args.frames} frames at {args.size}; {args.rounds} rounds\n")

    # -- the 7 FF++ videos: what is in them ----------------------------------------------------------
    rows, source_frames = [], 0
    for p in ffpp:
        cap = cv2.VideoCapture(str(p))
        n, w, h = (int(cap.get(prop)) for prop in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH,
                                                    cv2.CAP_PROP_FRAME_HEIGHT))
        cap.release()
        indices = su.sample_frame_indices(n, args.frames)
        source_frames += indices[-1] + 1
        rows.append([p.name, n, f"{w}x{h}", indices[-1] + 1, max(b - a for a, b in zip(indices, indices[1:]))])
    print(su.format_table(rows, ["video", "frames", "size", "decoded by grab", "largest gap"]))
    print(f"no gap is over SEEK_MIN_GAP ({su.SEEK_MIN_GAP}): read_clip decodes these straight through "
          "(bench_long.py measures seeking)\n")

    # -- timing, interleaved --------------------------------------------------------------------------
    approaches = ["baseline", "grab", "ours", "isolated"]
    wall = {a: [] for a in approaches}
    cpu = {a: [] for a in approaches}
    startup = []
    for r in range(args.rounds):
        order = approaches[r % len(approaches):] + approaches[: r % len(approaches)]
        results = {}
        for a in order:
            clips, w, c = run(a, ffpp, args)
            results[a] = clips
            wall[a].append(w)
            cpu[a].append(c)
        reference = results["baseline"]
        for a in approaches[1:]:  # identical pixels, every round
            for p, ref, got in zip(ffpp, reference, results[a]):
                assert got.shape == ref.shape and np.array_equal(got, ref), f"{a}: {p.name} differs from baseline"
        startup.append(pool_startup(workers))
        print(f"round {r + 1}: " + ", ".join(f"{a} {wall[a][-1]:.2f}s" for a in approaches)
              + f"; process pool start-up {startup[-1]:.2f}s; load {os.getloadavg()[0]:.1f}", flush=True)

    med = {a: statistics.median(wall[a]) for a in approaches}
    low = {a: min(wall[a]) for a in approaches}
    med_cpu = {a: statistics.median(cpu[a]) for a in approaches}
    kept = len(ffpp) * args.frames
    rows = [[a, f"{med[a]:.2f}", f"{low[a]:.2f}", f"{med_cpu[a]:.2f}", f"{kept / med[a]:.1f}",
             f"{source_frames / med[a]:.0f}", f"{60 * len(ffpp) / med[a]:.1f}", f"{med['baseline'] / med[a]:.2f}x",
             f"{med_cpu['baseline'] / med_cpu[a]:.2f}x"] for a in approaches]
    print()
    print(su.format_table(rows, ["approach", "wall s (median)", "wall s (min)", "CPU s", "kept frames/s",
                                 "source frames/s", "videos/min", "speed-up (wall)", "CPU s saved"]))
    print(f"7 FF++ videos per approach; medians over {args.rounds} rounds. kept frames/s: clip frames delivered "
          f"({args.frames} per video: decoded, converted, resized) per wall second. source frames/s: the "
          f"{source_frames} video frames up to each video's last sampled one (every frame here: the last is "
          "sampled), all of which grabbing decodes, per wall second. CPU s: this process and its children.")
    print(f"identical pixels: every approach returned exactly the baseline's clips for the 7 FF++ videos "
          f"in each of the {args.rounds} rounds (np.array_equal)")

    start = statistics.median(startup)
    per_video = med["ours"] / len(ffpp)  # wall seconds per video: threads start at once
    print(f"\nours / baseline: {med['baseline'] / med['ours']:.2f}x faster in wall time (target >= 3x), "
          f"{med_cpu['baseline'] / med_cpu['ours']:.2f}x fewer CPU seconds")
    print(f"isolated / baseline: {med['baseline'] / med['isolated']:.2f}x in wall time; its process pool's "
          f"start-up, measured apart: {start:.2f}s (spawn {workers} workers importing scarlet_utils: torch); "
          f"without it {med['baseline'] / max(med['isolated'] - start, 1e-9):.2f}x (what a long run approaches)")
    print(f"ours used {med_cpu['ours']:.2f} CPU s (one decoding thread per video: little beyond decoding every "
          f"frame up to the last sampled one), so {workers} CPUs need at least {med_cpu['ours'] / workers:.2f}s; "
          f"it took {med['ours']:.2f}s: {med_cpu['ours'] / workers / med['ours']:.0%} parallel efficiency")

    # -- projection --------------------------------------------------------------------------------------
    here = ORIGINAL_RUN_VIDEOS * per_video
    kaggle = here * workers / KAGGLE_CPUS
    base_here = ORIGINAL_RUN_VIDEOS * med["baseline"] / len(ffpp)
    print(f"\nprojection for the original run's {ORIGINAL_RUN_VIDEOS} videos: a linear projection (in the "
          f"video count, and for Kaggle in the CPU count), assuming this sample's mix of lengths and resolutions:")
    print(f"  ours: {ORIGINAL_RUN_VIDEOS} x {per_video:.2f}s = {here / 60:.1f} min here "
          f"({workers} CPUs); scaled to Kaggle's {KAGGLE_CPUS} CPUs: {kaggle / 60:.1f} min. "
          f"The baseline here: {base_here / 60:.1f} min")

    # -- real_faces: identical pixels ---------------------------------------------------------------------
    if real:
        print(f"\nreal_faces ({len(real)} videos, mp4 and mpg; one pass each):")
        ref, w, _ = run("baseline", real, args)
        line = [f"baseline {w:.2f}s"]
        for a in approaches[1:]:
            got, w, _ = run(a, real, args)
            for p, x, y in zip(real, ref, got):
                assert y.shape == x.shape and np.array_equal(y, x), f"{a}: {p.name} differs from baseline"
            line.append(f"{a} {w:.2f}s")
        print("  " + ", ".join(line))
        print(f"  identical pixels: grab, ours and isolated returned exactly the baseline's clips for all "
              f"{len(real)} (np.array_equal)")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
