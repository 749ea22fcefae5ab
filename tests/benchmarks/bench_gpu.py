"""Training-step time and peak GPU memory for the BASE TimeSformer (``TimesformerConfig()``, random
weights, nothing downloaded) on one GPU: fp16 autocast + GradScaler (the T4 recipe) and bf16
autocast, stock attention vs SDPA (``su.use_sdpa_attention``), batch 2 and 8, and batch 8 with
gradient checkpointing. Not a test: run it and read the table.

    python tests/benchmarks/bench_gpu.py                # a GPU, ~1-2 minutes on an H100
    python tests/benchmarks/bench_gpu.py --smoke        # tiny config, any machine (CPU too), seconds

A step is forward + cross-entropy + backward + AdamW step. Each configuration gets a fresh copy of
the same weights and a fresh optimizer; the median of ``--steps`` steps after ``--warmup`` steps is
kept (``torch.cuda.synchronize`` around each), with ``torch.cuda.max_memory_allocated`` reset per
configuration (weights, gradients and AdamW state included). An out-of-memory configuration is
recorded, not fatal. Results go to ``$OUT/bench_gpu.json`` when ``OUT`` is set (rewritten after every
configuration, so a run cut short still leaves what it measured); configurations left when
``--budget-s`` seconds have passed are skipped.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import scarlet_utils as su  # noqa: E402

GFLOP_PER_CLIP = 392.0  # base model, one 8 x 224 clip forward (FlopCounterMode: 391.7)


def configurations(batches: list[int]) -> list[dict]:
    """Most informative first (fp16 = the T4 recipe), so a budget cut drops the least useful."""
    runs = []
    for precision in ("fp16", "bf16"):
        for batch in sorted(batches, reverse=True):
            for sdpa in (False, True):
                runs.append({"precision": precision, "batch": batch, "sdpa": sdpa, "checkpointing": False})
        big = max(batches)
        runs.append({"precision": precision, "batch": big, "sdpa": True, "checkpointing": True})
    return runs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(base: torch.nn.Module, cfg: dict, device: torch.device, steps: int, warmup: int) -> dict:
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[cfg["precision"]]
    model = copy.deepcopy(base)
    if cfg["sdpa"]:
        su.use_sdpa_attention(model)
    if cfg["checkpointing"]:
        # as su.build_model(..., gradient_checkpointing=True) does
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    c = base.config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(cfg["batch"], c.num_frames, 3, c.image_size, c.image_size, generator=g).to(device)
    y = torch.randint(0, 2, (cfg["batch"],), generator=g).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        loss, logits = su.training_step(model, x, y, optimizer, scaler, dtype)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            losses.append(loss.item())
    result = dict(cfg, median_s=statistics.median(times), min_s=min(times), steps=len(times),
                  loss=statistics.mean(losses))
    result["clips_per_s"] = cfg["batch"] / result["median_s"]
    if device.type == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del model, optimizer, scaler, x, y, logits, loss
    return result


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def label(r: dict) -> str:
    return f"{r['precision']} b{r['batch']} {'sdpa' if r['sdpa'] else 'stock'}{' +ckpt' if r['checkpointing'] else ''}"


def summary(results: list[dict], gflop_per_clip: float) -> list[str]:
    ok = {(r["precision"], r["batch"], r["sdpa"], r["checkpointing"]): r for r in results if "median_s" in r}
    lines = ["speed-ups (stock seconds / SDPA seconds; memory stock / SDPA):"]
    for (precision, batch, sdpa, ckpt), r in ok.items():
        stock = ok.get((precision, batch, False, False))
        if sdpa and not ckpt and stock:
            mem = f", peak memory {stock['peak_gib']:.2f} -> {r['peak_gib']:.2f} GiB" if "peak_gib" in r else ""
            lines.append(f"  {precision} batch {batch}: SDPA {stock['median_s'] / r['median_s']:.2f}x{mem}")
    for (precision, batch, sdpa, ckpt), r in ok.items():
        plain = ok.get((precision, batch, True, False))
        if ckpt and plain:
            mem = f", peak memory {plain['peak_gib']:.2f} -> {r['peak_gib']:.2f} GiB" if "peak_gib" in r else ""
            lines.append(f"  {precision} batch {batch} SDPA: checkpointing costs {r['median_s'] / plain['median_s']:.2f}x time{mem}")
    for (precision, batch, sdpa, ckpt), r in ok.items():
        fp16 = ok.get(("fp16", batch, sdpa, ckpt))
        if precision == "bf16" and fp16:
            lines.append(f"  batch {batch} {'sdpa' if sdpa else 'stock'}{' +ckpt' if ckpt else ''}: "
                         f"bf16 vs fp16 {fp16['median_s'] / r['median_s']:.2f}x")
    lines.append(f"achieved training TFLOP/s (3 x {gflop_per_clip:.3g} GFLOP per clip / step time; checkpointing "
                 "recomputes one more forward, not counted):")
    for r in ok.values():
        lines.append(f"  {label(r):24s} {3 * gflop_per_clip * r['batch'] / r['median_s'] / 1e3:.3g}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny config, 2 steps after 1 warm-up; runs on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per configuration (default 10; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 3; smoke 1)")
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--budget-s", type=float, default=150.0, help="skip configurations left after this many seconds")
    args = parser.parse_args()
    steps = args.steps or (2 if args.smoke else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    start = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        sys.exit("no GPU: run with --smoke to check the script on a CPU")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a tiny model: more threads only spin (and on a busy CPU, badly)
    from transformers import TimesformerConfig

    config = su.tiny_config(num_frames=4, image_size=32, hidden_size=64, num_layers=2) if args.smoke else TimesformerConfig()
    torch.manual_seed(0)
    base = su.build_model(config, sdpa=False)  # the same weights for every configuration
    gflop = GFLOP_PER_CLIP
    if args.smoke:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            base(pixel_values=torch.zeros(1, config.num_frames, 3, config.image_size, config.image_size))
        gflop = counter.get_total_flops() / 1e9
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "model": "tiny (smoke)" if args.smoke else "base TimesformerConfig()",
        "num_frames": config.num_frames, "image_size": config.image_size, "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size, "gflop_per_clip_forward": gflop, "steps": steps, "warmup": warmup,
    }
    if device.type == "cuda":
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        info["gpu_memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    print(json.dumps(info))
    out = Path(os.environ["OUT"]) / "bench_gpu.json" if os.environ.get("OUT") else None
    results: list[dict] = []
    for cfg in configurations(args.batches):
        if time.perf_counter() - start > args.budget_s:
            results.append(dict(cfg, skipped=f"budget of {args.budget_s:.0f} s spent"))
            continue
        if cfg["precision"] == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            results.append(dict(cfg, skipped="no bf16 on this GPU"))
            continue
        try:
            r = run_config(base, cfg, device, steps, warmup)
        except getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError) as exc:
            r = dict(cfg, error=f"out of memory: {str(exc).splitlines()[0]}")
        except Exception as exc:  # keep going: one broken configuration must not lose the others
            r = dict(cfg, error=f"{type(exc).__name__}: {exc}")
        free(device)
        results.append(r)
        print(f"  {label(r):24s} " + (f"{r['median_s']:.4f} s/step" + (f", peak {r['peak_gib']:.2f} GiB" if "peak_gib" in r else "")
                                       if "median_s" in r else r.get("error", "")), flush=True)
        if out:
            su.write_json(out, {"info": info, "results": results})
    rows = [[r["precision"], r["batch"], "sdpa" if r["sdpa"] else "stock", "yes" if r["checkpointing"] else "no",
             f"{r['median_s']:.4f}" if "median_s" in r else "-", f"{r['min_s']:.4f}" if "min_s" in r else "-",
             f"{r['clips_per_s']:.1f}" if "clips_per_s" in r else "-", f"{r['peak_gib']:.2f}" if "peak_gib" in r else "-",
             r.get("error") or r.get("skipped") or ""] for r in results]
    print()
    print(su.format_table(rows, ["precision", "batch", "attention", "ckpt", "median s/step", "min s", "clips/s",
                                 "peak GiB", "note"]))
    lines = summary(results, gflop)
    print("\n" + "\n".join(lines))
    info["wall_s"] = time.perf_counter() - start
    print(f"\nwall time {info['wall_s']:.0f} s" + (f"; results in {out}" if out else ""))
    if out:
        su.write_json(out, {"info": info, "results": results, "summary": lines})


if __name__ == "__main__":
    main()
