"""Clip loading vs training: does FrameClipDataset + DataLoader keep up with a training step?
Not a test (no assertions on time): run it and read the figures.

    /work/venv/bin/python tests/benchmarks/bench_loader.py [--repeat 12] [--steps 3]

1. Extracts the 7 FF++ c23 sample videos (8 frames at 224) into a temp cache, then times
   FrameClipDataset(augment=True) + DataLoader(batch_size=2, shuffle=True) over the 7 clips
   repeated --repeat times, with num_workers 0 and 2: clips/s from the first batch asked for to
   the last delivered (the workers' start included), and without the first batch.
2. Times a training step of the BASE TimeSformer (TimesformerConfig() defaults: 12 layers, 768
   wide, 8 frames at 224; random init, nothing downloaded) built by build_model, batch 2, CPU fp32,
   AdamW: one warm-up step, then --steps timed steps (median kept).
3. Prints loader clips/s, training clips/s, their ratio, and the loader's share of the time per
   batch, load + step, with the batch loaded in the training process (num_workers=0: nothing
   overlaps, the worst case).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import scarlet_utils as su  # noqa: E402

FFPP = REPO.parent / "shared" / "data" / "ffpp_c23_sample"
BATCH = 2


def loader_rate(ds: su.FrameClipDataset, workers: int) -> tuple[float, float, float]:
    """(clips/s over all batches, clips/s after the first batch, seconds to the first batch)."""
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers)
    t0 = time.perf_counter()
    clips, first_clips, t_first = 0, 0, None
    for x, _ in loader:
        assert x.shape[1:] == (8, 3, 224, 224) and x.dtype == torch.float32
        clips += x.shape[0]
        if t_first is None:
            t_first, first_clips = time.perf_counter(), clips
    t_end = time.perf_counter()
    return clips / (t_end - t0), (clips - first_clips) / (t_end - t_first), t_first - t0


def clip_to_tensor_before(frames: np.ndarray, mean, std, flip: bool = False) -> torch.Tensor:
    """clip_to_tensor as it was before this benchmark (three float allocations), for comparison."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float().div_(255.0)
    if flip:
        x = x.flip(-1)
    mean = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


def per_item_ms(ds: su.FrameClipDataset, n: int = 200) -> float:
    t0 = time.perf_counter()
    for k in range(n):
        ds[k % len(ds)]
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=12, help="times the 7 clips are repeated in the dataset")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up)")
    args = parser.parse_args()
    from transformers import TimesformerConfig

    print(f"machine: {su.default_workers()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads, load average {os.getloadavg()[0]:.1f} (shared: other jobs may run)")
    items = su.list_videos(FFPP, su.KNOWN_METHODS[:4])
    with tempfile.TemporaryDirectory() as tmp:
        cache = su.cache_dir_for(tmp, 8, 224)
        report = su.extract_frames(items, cache, 8, 224)
        assert len(report.done) == len(items) == 7, report
        ds = su.FrameClipDataset(items * args.repeat, cache, augment=True)
        print(f"dataset: {len(ds)} clips of 8x224x224 (the 7 sample clips x {args.repeat}), augment=True, "
              f"batch {BATCH}, shuffle\n")
        rates = {}
        for workers in (0, 2):
            rates[workers] = loader_rate(ds, workers)
            total, steady, first = rates[workers]
            print(f"loader num_workers={workers}: {total:.1f} clips/s over all batches "
                  f"(first batch after {first:.2f}s), {steady:.1f} clips/s after the first batch")
        # before/after, interleaved; 1 torch thread is what each DataLoader worker runs with
        threads = torch.get_num_threads()
        convert = su.clip_to_tensor
        for n_threads in (1, threads):
            torch.set_num_threads(n_threads)
            now, before = [], []
            try:
                for _ in range(3):
                    su.clip_to_tensor = convert
                    now.append(per_item_ms(ds, 100))
                    su.clip_to_tensor = clip_to_tensor_before
                    before.append(per_item_ms(ds, 100))
            finally:
                su.clip_to_tensor = convert
                torch.set_num_threads(threads)
            now_ms, before_ms = statistics.median(now), statistics.median(before)
            print(f"FrameClipDataset.__getitem__ (np.load + clip_to_tensor, half flipped), {n_threads} torch "
                  f"thread(s): {now_ms:.2f} ms per clip; with clip_to_tensor as before: {before_ms:.2f} ms "
                  f"({before_ms / now_ms:.2f}x)")

        # -- training step ------------------------------------------------------------------------------
        model = su.build_model(TimesformerConfig())
        n_params = sum(p.numel() for p in model.parameters())
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
        batch, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True)))

        def step() -> float:
            t = time.perf_counter()
            su.training_step(model, batch, labels, optimizer)
            return time.perf_counter() - t

        warm = step()
        times = [step() for _ in range(args.steps)]
        step_s = statistics.median(times)
        print(f"\ntraining step, base TimeSformer ({n_params / 1e6:.1f}M parameters, random init), batch {BATCH}, "
              f"CPU fp32: warm-up {warm:.1f}s, then {', '.join(f'{t:.1f}s' for t in times)} "
              f"(median {step_s:.1f}s)")

    train_rate = BATCH / step_s
    print(f"\n{'':26}{'loader clips/s':>16}{'training clips/s':>18}{'ratio':>10}{'loader share':>14}")
    for workers in (0, 2):
        rate = rates[workers][0]  # all batches, start-up included
        load_s = BATCH / rate  # seconds to deliver one batch
        print(f"{f'num_workers={workers}':26}{rate:16.1f}{train_rate:18.3f}{rate / train_rate:9.0f}x"
              f"{100 * load_s / (load_s + step_s):13.3f}%")
    print("ratio: loader clips/s / training clips/s (target >= 10x). loader share: one batch's load time / "
          "(load + training step), as if loaded in the training process with nothing overlapping (target < 5%).")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
