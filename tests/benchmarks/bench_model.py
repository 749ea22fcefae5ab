"""Seconds per clip for the BASE TimeSformer (``TimesformerConfig()``: 8 frames, 224 px, 12 layers,
width 768; random weights, nothing downloaded) on this CPU: the stock attention vs Scarlet's SDPA one
(``su.use_sdpa_attention``), fp32 and bf16 autocast, forward at batch 1 (eval) and a training step at
batch 2 (fp32, AdamW); then the FLOP arithmetic for the full Kaggle run on a T4. Not a test (no
assertions on time): run it and read the table.

    /work/venv/bin/python tests/benchmarks/bench_model.py [--repeats 3] [--train-repeats 2] [--no-train]

Both models hold the same weights (one is a deep copy of the other). Each forward timing is the
median of ``--repeats`` runs after one warm-up run; stock and SDPA runs alternate, so a load spike on
a shared machine hits both alike (the min is shown too: on a busy machine it is the steadier one).
Training steps take ~50 s each here, so they get no warm-up step: the first step's one-off costs
(AdamW state and gradient buffers, ~1 GB of allocation) are well under 1% of that. A ratio above 1
means SDPA is faster. Under CPU bf16 autocast the SDPA module goes through the fused kernel as well
(there is no CPU bf16 special case any more), so that ratio measures the kernel there too.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import scarlet_utils as su  # noqa: E402

GFLOP_PER_CLIP = 392.0  # one 8 x 224 clip forward, base model (given; cross-checked below with FlopCounterMode)


def kaggle_t4_estimate(
    gflop_per_clip: float = GFLOP_PER_CLIP,
    epochs: int = 24,
    train_videos: int = 600,
    val_videos: int = 800,
    peak_tflops: float = 65.0,
    utilisations: tuple[float, ...] = (0.25, 0.30, 0.40),
) -> str:
    """The full Kaggle run's compute on a T4, as text that shows the arithmetic.

    Training costs ~3 forward passes per clip (forward, plus a backward pass of about twice the
    forward: gradients for the activations and for the weights); validation one forward per video
    per epoch. Time = FLOPs / (peak x utilisation).
    """
    train = epochs * train_videos * 3 * gflop_per_clip  # GFLOP
    val = epochs * val_videos * gflop_per_clip
    total = train + val
    lines = [
        "Kaggle run on a T4 (fp16 autocast, FLOP arithmetic):",
        f"  training   {epochs} epochs x {train_videos} videos x 3 x {gflop_per_clip:.0f} GFLOP = {train / 1e6:.2f} PFLOP",
        f"  validation {epochs} epochs x {val_videos} videos x 1 x {gflop_per_clip:.0f} GFLOP = {val / 1e6:.2f} PFLOP",
        f"  total {total / 1e6:.2f} PFLOP = {total:.4g} GFLOP",
    ]
    for u in utilisations:
        seconds = total / (peak_tflops * 1e3 * u)
        lines.append(f"  at {u:.0%} of {peak_tflops:.0f} TFLOPS = {peak_tflops * u:.1f} TFLOPS: "
                     f"{total:.4g} / {peak_tflops * u * 1e3:.4g} = {seconds:,.0f} s = {seconds / 60:.1f} min")
    lines.append(
        "  why 25-40%: 65 TFLOPS is the fp16 tensor-core peak at boost clock; a T4 is capped at 70 W and\n"
        "  clocks down under sustained tensor load; at batch 2 the matmuls are small (<= 1576 x 768 x 3072\n"
        "  per clip) and TimeSformer's divided attention adds many reshapes/permutes, LayerNorms, GELUs and\n"
        "  softmaxes that are bound by the T4's 320 GB/s memory, not its tensor cores. ViT-B-class fp16\n"
        "  training on a T4 typically sustains ~15-25 TFLOPS. Not counted: frame decoding (the frames are\n"
        "  cached once by extract_frames), data loading, checkpoint writes and evaluation beyond validation;\n"
        "  gradient checkpointing would add one more forward per training clip (3 -> 4, +33% training time)."
    )
    return "\n".join(lines)


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """GFLOP of one forward pass as torch's FlopCounterMode counts them (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(pixel_values=x)
    return counter.get_total_flops() / 1e9


def time_forward(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> float:
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(pixel_values=x)
    return time.perf_counter() - t0


def time_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    t0 = time.perf_counter()
    su.training_step(model, x, y, optimizer)
    return time.perf_counter() - t0


def alternate(fns: dict[str, callable], repeats: int, warmup: bool = True) -> dict[str, list[float]]:
    """One warm-up call of each (unless ``warmup=False``), then ``repeats`` rounds calling each once,
    in turn, the order reversed every other round (A B, B A, ...) so a drifting load favours neither."""
    for fn in fns.values() if warmup else ():
        fn()
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name, fn in (list(fns.items()) if r % 2 == 0 else list(fns.items())[::-1]):
            times[name].append(fn())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per model and precision (median kept)")
    parser.add_argument("--train-repeats", type=int, default=2, help="timed training steps per model (median kept)")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import TimesformerConfig

    start = time.perf_counter()
    config = TimesformerConfig()
    torch.manual_seed(0)
    stock = su.build_model(config, sdpa=False).eval()
    ours = su.use_sdpa_attention(copy.deepcopy(stock)).eval()
    n = config.num_frames
    x1 = torch.randn(1, n, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
    print(f"base TimeSformer: {n} frames x {config.image_size} px, {config.num_hidden_layers} layers, width "
          f"{config.hidden_size}, {stock.num_parameters() / 1e6:.1f} M parameters; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {su.cpu_supports_bf16()} (scoring precision('cpu') = {su.precision('cpu')})")

    flops = {"stock": forward_flops(stock, x1), "sdpa": forward_flops(ours, x1)}  # also warms both up
    with torch.no_grad():
        diff = (stock(pixel_values=x1).logits - ours(pixel_values=x1).logits).abs().max().item()
    print(f"FlopCounterMode, one clip forward: stock {flops['stock']:.1f} GFLOP (given: {GFLOP_PER_CLIP:.0f}); "
          f"SDPA {flops['sdpa']:.1f} GFLOP (the counter has no formula for the CPU flash kernel: the attention's "
          f"{flops['stock'] - flops['sdpa']:.1f} GFLOP go uncounted, not unspent)")
    print(f"max |logit difference| stock vs SDPA, fp32: {diff:.2e}\n")

    rows, medians, mins, runs = [], {}, {}, {}
    for bf16 in (False, True):
        precision = "bf16 autocast" if bf16 else "fp32"
        times = alternate({"stock": lambda: time_forward(stock, x1, bf16), "sdpa": lambda: time_forward(ours, x1, bf16)},
                          args.repeats)
        for name in ("stock", "sdpa"):
            med = statistics.median(times[name])
            medians[("forward", precision, name)] = med
            mins[("forward", precision, name)] = min(times[name])
            runs[("forward", precision, name)] = times[name]
            rows.append(["forward, batch 1, eval", precision, name, f"{med:.3f}", f"{min(times[name]):.3f}",
                         " ".join(f"{t:.2f}" for t in times[name]), f"{GFLOP_PER_CLIP / med:.0f}"])

    if not args.no_train:
        stock.train()
        ours.train()
        x2 = torch.randn(2, n, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(1))
        y2 = torch.tensor([0, 1])
        opt = {"stock": torch.optim.AdamW(stock.parameters(), lr=1e-5), "sdpa": torch.optim.AdamW(ours.parameters(), lr=1e-5)}
        times = alternate({"stock": lambda: time_train_step(stock, opt["stock"], x2, y2),
                           "sdpa": lambda: time_train_step(ours, opt["sdpa"], x2, y2)}, args.train_repeats, warmup=False)
        for name in ("stock", "sdpa"):
            med = statistics.median(times[name])
            medians[("train", "fp32", name)] = med
            mins[("train", "fp32", name)] = min(times[name])
            runs[("train", "fp32", name)] = times[name]
            rows.append(["train step, batch 2, AdamW", "fp32", name, f"{med:.3f}", f"{min(times[name]):.3f}",
                         " ".join(f"{t:.2f}" for t in times[name]), f"{2 * 3 * GFLOP_PER_CLIP / med:.0f}"])

    print(su.format_table(rows, ["what", "precision", "attention", "median s", "min s", "runs (s)", "GFLOP/s (median)"]))
    def ratio(a: tuple, b: tuple) -> str:
        paired = statistics.median(ta / tb for ta, tb in zip(runs[a], runs[b]))
        return f"{medians[a] / medians[b]:.2f}x (of the mins: {mins[a] / mins[b]:.2f}x; median of run-by-run ratios: {paired:.2f}x)"

    print("\nratios (seconds of the first / seconds of the second; > 1 means the second is faster):")
    for what, precision, name in medians:
        if name == "sdpa":
            print(f"  {what:8s} {precision:14s} stock / SDPA: {ratio((what, precision, 'stock'), (what, precision, name))}")
    for name in ("stock", "sdpa"):
        print(f"  forward  fp32 / bf16 autocast ({name}): {ratio(('forward', 'fp32', name), ('forward', 'bf16 autocast', name))}")
    print("  forward  stock fp32 (predict_probs before) / SDPA + bf16 (predict_probs now on this CPU): "
          f"{ratio(('forward', 'fp32', 'stock'), ('forward', 'bf16 autocast', 'sdpa'))}")
    print(f"\nbenchmark wall time {time.perf_counter() - start:.0f} s\n")
    print(kaggle_t4_estimate())


if __name__ == "__main__":
    main()
