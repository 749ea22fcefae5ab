"""Long videos and CPU scoring: seeking against a full decode, and fp32 against bf16. Not a test (its
only assertions are that seeking returns exactly a full decode's frames): run it and read the ratios.

    /work/venv/bin/python tests/benchmarks/bench_long.py [--rounds 2] [--video PATH] [--no-model]

1. A long video: 10 minutes of 1080p at 30 fps (18,000 frames), H.264 with a keyframe every 250
   frames and B-frames, made once by ffmpeg from the FF++ sample's 1080p video (looped) and kept in
   --work-dir. ``read_clip`` with ``seek_gap=None`` (a full decode up to the last kept frame) against
   the default (seeking), for 8 whole frames, and for 4 clips x 8 face crops, the read of
   ``predict_video(..., num_clips=4)`` on a face-crop checkpoint.
2. The 7 FF++ c23 sample videos: the same two reads, 8 whole frames and 8 face crops, summed over the
   videos. The default must never be slower there: their kept frames lie under ``SEEK_MIN_GAP``
   apart, so it decodes straight through.
3. Scoring on this CPU: ``score_videos`` (decoding included) with the BASE TimeSformer
   (``TimesformerConfig()``: random weights, nothing downloaded), fp32 (``amp=False``) against the
   module's choice (``amp=True``: bf16 autocast where the CPU has native bf16), on the 7 FF++ videos
   and the long one (4 clips). Random weights put every P(fake) near one value, so the classifier
   is first set from an fp32 pass to give logit margins of mean 0 and std 2 over these videos (the
   P(fake) are printed): a margin of that size carries the bf16 error into P(fake) as a trained
   model's would.

The two reads of a video run back to back, in alternating order; each figure is the median over
rounds (the FF++ reads, a few seconds each, get 2 x --rounds + 1).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import scarlet_utils as su  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
FFPP = SHARED / "ffpp_c23_sample"
SOURCE = FFPP / "manipulated_sequences" / "Face2Face" / "c23" / "videos" / "750_743.mp4"  # the 1080p one
LONG_ARGS = ["-t", "600", "-vf", "fps=30", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "250",
             "-keyint_min", "250", "-sc_threshold", "0", "-pix_fmt", "yuv420p"]


def long_video(work_dir: Path) -> Path:
    """The 10-minute 1080p video, made once (about 6 minutes of encoding on 2 CPUs)."""
    out = work_dir / "long_1080p30_g250.mp4"
    if not out.exists():
        if shutil.which("ffmpeg") is None:
            sys.exit("the ffmpeg command line is needed to make the long video (apt-get install ffmpeg)")
        work_dir.mkdir(parents=True, exist_ok=True)
        print(f"making {out} (10 min of 1080p30 from {SOURCE.name}, looped) ...", flush=True)
        part = out.with_suffix(".part.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(SOURCE), *LONG_ARGS, str(part)],
                       check=True)
        part.rename(out)
    return out


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def same(a: su.Clip, b: su.Clip, what: str) -> None:
    if a.indices != b.indices or a.total_frames != b.total_frames or not np.array_equal(a.frames, b.frames):
        raise AssertionError(f"{what}: seeking read other frames than a full decode")
    if a.boxes != b.boxes:
        raise AssertionError(f"{what}: seeking found other face boxes than a full decode")


def compare_reads(paths: list[Path], rounds: int, **kwargs) -> dict[str, tuple[float, float]]:
    """``{"wall"|"cpu": (full, seeking)}``: median seconds, summed over ``paths``, of read_clip with
    seek_gap=None and with the default (CPU: this process's, all its threads). The two reads of a
    video run back to back, in an order that alternates from read to read."""
    runs = {"wall": ([], []), "cpu": ([], [])}
    for r in range(rounds):
        spent = {(kind, gap): 0.0 for kind in runs for gap in (None, su.SEEK_MIN_GAP)}
        for k, path in enumerate(paths):
            clips = {}
            for gap in ((None, su.SEEK_MIN_GAP) if (r + k) % 2 == 0 else (su.SEEK_MIN_GAP, None)):
                c0, t0 = time.process_time(), time.perf_counter()
                clips[gap] = su.read_clip(path, seek_gap=gap, **kwargs)
                spent["wall", gap] += time.perf_counter() - t0
                spent["cpu", gap] += time.process_time() - c0
            same(clips[None], clips[su.SEEK_MIN_GAP], f"{path.name} {kwargs}")
        for kind, (full, seek) in runs.items():
            full.append(spent[kind, None])
            seek.append(spent[kind, su.SEEK_MIN_GAP])
    return {kind: (statistics.median(full), statistics.median(seek)) for kind, (full, seek) in runs.items()}


def calibrated_base_model(videos: list[Path], prep: su.Preprocessing) -> torch.nn.Module:
    """The base model, random weights, its head set so that the fp32 logit margin over ``videos`` has
    mean 0 and std 2, so P(fake) differs from video to video. The calibration pass is also the warm-up."""
    from transformers import TimesformerConfig

    torch.manual_seed(0)
    model = su.build_model(TimesformerConfig(), num_labels=2).eval()
    feats = []
    hook = model.classifier.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach().float()))
    with contextlib.redirect_stderr(io.StringIO()):  # score_videos' progress bar
        su.score_videos(model, videos, prep, "cpu", amp=False)
    hook.remove()
    x = torch.cat(feats)
    w = model.classifier.weight.detach()
    margin = x @ (w[1] - w[0])
    v = (w[1] - w[0]) * (2.0 / margin.std())
    c = -(x @ v).mean()
    with torch.no_grad():
        model.classifier.weight.copy_(torch.stack([-v / 2, v / 2]))
        model.classifier.bias.copy_(torch.stack([-c / 2, c / 2]))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per side (median kept)")
    parser.add_argument("--video", type=Path, help="a long video to use instead of the one made here")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/scarlet_bench"))
    parser.add_argument("--no-model", action="store_true", help="skip part 3 (the base model on this CPU)")
    args = parser.parse_args()
    ffpp = sorted(FFPP.rglob("*.mp4"))
    if len(ffpp) != 7:
        sys.exit(f"expected the 7 FF++ sample videos under {FFPP}, found {len(ffpp)}")
    video = args.video or long_video(args.work_dir)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    print(f"CPU: {cpu}, {os.cpu_count()} CPUs, native bf16: {su.cpu_supports_bf16()}, load {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__}; {args.rounds} rounds\n")

    rows = []
    clip = su.read_clip(video, 8, 224)
    print(f"long video: {video.name}, {clip.total_frames} frames, {clip.total_frames / clip.fps:.0f} s at "
          f"{clip.fps:g} fps\n")
    reads = [("long 1080p: 8 whole frames", [video], args.rounds, {}),
             ("long 1080p: 4 clips x 8, face crop", [video], args.rounds, {"face_crop": True, "num_clips": 4}),
             ("7 FF++ videos: 8 whole frames", ffpp, 2 * args.rounds + 1, {}),
             ("7 FF++ videos: 8 face crops", ffpp, 2 * args.rounds + 1, {"face_crop": True})]
    for what, paths, rounds, kwargs in reads:
        got = compare_reads(paths, rounds, num_frames=8, size=224, **kwargs)
        (full, seek), (cfull, cseek) = got["wall"], got["cpu"]
        rows.append([what, f"{full:.2f}", f"{seek:.2f}", f"{full / seek:.2f}x", f"{cfull / cseek:.2f}x"])
    print(su.format_table(rows, ["read", "full decode (s)", "seeking (s)", "full / seeking", "in CPU s"]))
    print("(every seeking read returned a full decode's frames, pixel for pixel)")
    gap = max(b - a for p in ffpp for idx in [su.sample_clip_indices(su.read_clip(p, 1, 8).total_frames, 8)[0]]
              for a, b in zip(idx, idx[1:]))
    print(f"FF++: the kept frames lie at most {gap} frames apart (under SEEK_MIN_GAP = {su.SEEK_MIN_GAP}), so both "
          "sides run the same code there (no keyframe scan, no seek): that ratio is this machine's noise\n")

    if args.no_model:
        return
    prep = su.Preprocessing(8, 224)
    torch.set_num_threads(os.cpu_count() or 1)
    model = calibrated_base_model(ffpp, prep)
    with contextlib.redirect_stderr(io.StringIO()):
        su.score_videos(model, ffpp[:1], prep, "cpu", amp=True)  # warm-up of the bf16 kernels
    per_video, long_s, probs = {False: [], True: []}, {False: [], True: []}, {}
    for r in range(args.rounds):
        for amp in ((False, True) if r % 2 == 0 else (True, False)):
            with contextlib.redirect_stderr(io.StringIO()):
                t, ffpp_rows = timed(lambda: su.score_videos(model, ffpp, prep, "cpu", amp=amp))
                tl, long_rows = timed(lambda: su.score_videos(model, [video], prep, "cpu", num_clips=4, amp=amp))
            per_video[amp].append(t / len(ffpp))
            long_s[amp].append(tl)
            probs[amp] = [row["p_fake"] for row in ffpp_rows + long_rows]
    t32, t16 = statistics.median(per_video[False]), statistics.median(per_video[True])
    l32, l16 = statistics.median(long_s[False]), statistics.median(long_s[True])
    chosen = su.precision("cpu")
    name = "bf16 autocast" if chosen is torch.bfloat16 else "fp32"
    print(f"scoring with score_videos, decoding included: base TimeSformer, {torch.get_num_threads()} threads; "
          f"the module's CPU scoring precision here: {name}")
    print(su.format_table([["fp32 (amp=False)", f"{t32:.2f}", f"{l32:.2f}"],
                           [f"amp=True ({name})", f"{t16:.2f}", f"{l16:.2f}"],
                           ["fp32 / amp=True", f"{t32 / t16:.2f}x", f"{l32 / l16:.2f}x"]],
                          ["", "s per FF++ video (8 frames)", "s for the long video (4 clips x 8)"]))
    print(f"P(fake) fp32:     {' '.join(f'{p:.3f}' for p in probs[False])}")
    print(f"P(fake) amp=True: {' '.join(f'{p:.3f}' for p in probs[True])}")
    print(f"largest |difference| over the 7 FF++ videos and the long one: "
          f"{max(abs(a - b) for a, b in zip(probs[False], probs[True])):.4f}")


if __name__ == "__main__":
    main()
