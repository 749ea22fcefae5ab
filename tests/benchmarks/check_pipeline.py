"""The Hugging Face export in transformers' standard pipeline against Scarlet, on the FF++ sample. Not
a test: run it and read the P(fake) differences. Needs PyAV (``pip install av``), which the
video-classification pipeline decodes with and Scarlet does not.

    .venv/bin/python tests/benchmarks/check_pipeline.py

The base TimeSformer with random weights (nothing downloaded), its head set as bench_long's so that
P(fake) spreads over the videos, is exported with ``export_pretrained`` and loaded by
``pipeline("video-classification", model=<export>)``. Per video: Scarlet's ``predict_video`` (one
clip, fp32), the pipeline as called by default (``frame_sampling_rate=1``: the first frames), and
the pipeline called as the model card shows (``frame_sampling_rate=frames // num_frames``).
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import scarlet_utils as su  # noqa: E402
from bench_long import FFPP, calibrated_base_model  # noqa: E402


def main() -> None:
    from transformers import pipeline

    videos = sorted(FFPP.rglob("*.mp4"))
    prep = su.Preprocessing(num_frames=8, size=224, face_crop=False)
    model = calibrated_base_model(videos, prep)
    export = su.export_pretrained(model, Path(tempfile.mkdtemp()) / "scarlet-hf", prep)
    classify = pipeline("video-classification", model=str(export), device="cpu")
    rows, gaps = [], {"default": [], "spread": []}
    for path in videos:
        frames = int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))
        scarlet = su.predict_video(model, path, prep, "cpu", num_clips=1, amp=False)
        p_fake = {}
        for call, rate in (("default", 1), ("spread", max(1, frames // prep.num_frames))):
            with contextlib.redirect_stderr(io.StringIO()):
                scores = classify(str(path), num_frames=prep.num_frames, frame_sampling_rate=rate, top_k=2)
            p_fake[call] = next(s["score"] for s in scores if s["label"] == "Fake")
            gaps[call].append(abs(p_fake[call] - scarlet))
        rows.append((path.name, frames, f"{scarlet:.3f}", f"{p_fake['default']:.3f}", f"{p_fake['spread']:.3f}",
                     f"{abs(p_fake['spread'] - scarlet):.4f}"))
    print(su.format_table(rows, ["video", "frames", "Scarlet", "pipeline default", "pipeline spread",
                                 "|spread - Scarlet|"]))
    for call, gap in gaps.items():
        print(f"{call}: largest |P(fake) - Scarlet's| {max(gap):.4f}, mean {np.mean(gap):.4f} over {len(gap)} videos")


if __name__ == "__main__":
    main()
