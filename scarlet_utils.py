"""Scarlet: the tested helpers behind ``Scarlet.ipynb``, in the order the notebook uses them.

Clips are ``(T, H, W, 3)`` uint8 RGB; model inputs ``(B, T, C, H, W)`` floats normalised with the
checkpoint's mean/std. The module never prints: it logs to the ``scarlet`` logger and returns reports.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
import stat
import threading
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache, partial
from pathlib import Path, PureWindowsPath
from typing import Any, Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from tqdm import tqdm  # text bars read right in a saved, headless-run notebook (widgets show 0%)

logger = logging.getLogger("scarlet")
_progress = partial(tqdm, mininterval=1.0)  # redrawn at most once a second: saved output stays small

DEFAULT_MODEL = "facebook/timesformer-base-finetuned-k400"
KINETICS_MEAN = (0.45, 0.45, 0.45)  # the k400 checkpoint's preprocessor_config.json
KINETICS_STD = (0.225, 0.225, 0.225)
CLASS_NAMES = ("Real", "Fake")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v")


class VideoReadError(RuntimeError):
    """A video that cannot be decoded; the message names the file and the cause."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded or used as asked; the message says why."""


def atomic_write(path: str | Path, write: Callable[[Any], Any], what: str = "the file") -> Path:
    """``write(binary_file)`` into a temp file beside ``path``, renamed onto it when whole: a reader never
    finds part of a file. An ``OSError`` names ``path``, ``what`` and the OS's cause."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # the temp's folder may be a file in the way
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # strerror says why: "No space left on device", "Disk quota exceeded"
            raise OSError(exc.errno, f"{path}: cannot write {what}: {exc.strerror or exc}") from exc
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), "the text file")


def save_figure(fig: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png"), "the figure")


def _to_python(obj: Any) -> Any:
    """NumPy values and paths as Python numbers, lists and text (``weights_only=True`` refuses NumPy)."""
    if isinstance(obj, dict):
        return {k: _to_python(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_python(v) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    return str(obj) if isinstance(obj, Path) else obj


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table, for reports that print."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

ENV_PREFIX = "SCARLET_"
MODES = ("kaggle", "demo", "sample")
KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
KAGGLE_MOUNTS = {"datasets": 2, "competitions": 1, "models": 2, "notebooks": 2}  # the newer mounts' depths
_BOOLEANS = {**dict.fromkeys(("1", "true", "yes", "on"), True),
             **dict.fromkeys(("0", "false", "no", "off"), False)}
CHOICES = {"RECIPE": ("original", "generalise"), "SAMPLING": ("spread", "window"),
           "AUGMENT": ("flip", "strong", "none", True, False), "SELECT_BY": ("accuracy", "auc"),
           "SCHEDULE": ("constant", "cosine")}
RANGES = {"FRAME_STRIDE": (1, np.inf), "TRAIN_CLIPS": (1, np.inf), "GRAD_ACCUM": (1, np.inf),
          "WARMUP_EPOCHS": (0, np.inf), "LABEL_SMOOTHING": (0, 1), "DROP_PATH": (0, 1)}  # [low, high)
KAGGLE_OUTPUT_LIMIT = 20e9  # bytes /kaggle/working keeps
FFPP_METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]  # the four of the FF++ paper
# "original": the original run. "generalise": what the video detectors that carry to unseen data share
# (README, Recipes, gives each value's source).
RECIPES: dict[str, dict[str, Any]] = {"original": {}, "generalise": {
    "METHODS": FFPP_METHODS, "SPLIT": "official", "FACE_CROP": True, "SAMPLING": "window", "FRAME_STRIDE": 4,
    "TRAIN_CLIPS": 4, "AUGMENT": "strong", "PAIR_FAKES": True, "SELECT_BY": "auc", "SCHEDULE": "cosine",
    "WARMUP_EPOCHS": 1, "LABEL_SMOOTHING": 0.1, "DROP_PATH": 0.1, "GRAD_ACCUM": 4, "EPOCHS": 10,
    "THRESHOLD": "val-eer"}}


class Config(dict):
    """The run's knobs; ``changes``: ``(knob, cell value, value now, set by)`` for each knob the mode or
    a ``SCARLET_<NAME>`` variable changed; ``notes``: lines for the notebook to show."""

    def __init__(self, knobs: dict[str, Any], changes: list[tuple[str, Any, Any, str]],
                 notes: list[str]) -> None:
        super().__init__(knobs)
        self.changes, self.notes = changes, notes


def _parse_env_value(name: str, text: str, default: Any) -> Any:
    """An environment string as the type of the knob's default (a list: comma-separated)."""
    text = text.strip()
    if name in CHOICES:  # its own words ("none" too); AUGMENT also as the cell writes it, True / False
        return _BOOLEANS.get(text.lower(), text) if True in CHOICES[name] else text
    if name == "THRESHOLD" and text == "val-eer":
        return text
    if text.lower() in ("", "none", "null"):
        return None
    if isinstance(default, (list, tuple)):
        return [part.strip() for part in text.split(",") if part.strip()]
    default = 0.5 if name == "THRESHOLD" else default  # a number, whatever the cell holds
    try:
        if isinstance(default, bool):
            return _BOOLEANS[text.lower()]
        if isinstance(default, (int, float)):
            return type(default)(text)
    except (KeyError, ValueError):
        raise ValueError(f"{ENV_PREFIX}{name}={text!r}: expected a {type(default).__name__}") from None
    return int(text) if default is None and text.lstrip("-").isdigit() else text  # None: WORKERS, a count


def kaggle_inputs(top: str | Path | None = None) -> list[Path]:
    """Each attached input's folder below ``top`` (default ``/kaggle/input``), on the older mounts
    (``<slug>``) and the newer (``datasets/<owner>/<slug>``, ``competitions/<slug>``, ...)."""
    top = Path(top or KAGGLE_INPUT)
    patterns = ["*", *(mount + "/*" * depth for mount, depth in KAGGLE_MOUNTS.items())]
    return sorted(p for pattern in patterns for p in top.glob(pattern)
                  if p.is_dir() and not (p.parent == top and p.name in KAGGLE_MOUNTS))


def _in_inputs(search_dirs: Sequence[str | Path] | None, is_match: Callable[[Path], bool],
               max_depth: int) -> list[Path]:
    """The outermost folders ``is_match`` accepts, sorted: each Kaggle input below ``search_dirs`` (default
    ``/kaggle/input``), or a folder up to ``max_depth`` levels into it."""
    def walk(folder: Path, depth: int) -> list[Path]:
        with contextlib.suppress(OSError, ValueError):  # no layout; no config.json, or not JSON
            if is_match(folder):
                return [folder]
        if depth == 0:
            return []
        with os.scandir(folder) as entries:  # no stat per file in a folder of thousands of videos
            subfolders = sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
        return [found for sub in subfolders for found in walk(sub, depth - 1)]
    return [found for top in search_dirs or (KAGGLE_INPUT,) for folder in kaggle_inputs(top)
            for found in walk(folder, max_depth)]


def _is_k400_timesformer(folder: Path) -> bool:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    labels = len(cfg.get("id2label", {})) if isinstance(cfg, dict) else 0  # JSON, but not an object: not one
    return labels == 400 and cfg.get("model_type") == "timesformer" and any(
        (folder / w).is_file() for w in ("model.safetensors", "pytorch_model.bin"))


def find_datasets(search_dirs: Sequence[str | Path] | None = None, max_depth: int = 4) -> list[Path]:
    """The root of every dataset layout ``list_videos`` reads, up to ``max_depth`` folders into each
    Kaggle input below ``search_dirs`` (default ``/kaggle/input``)."""
    return _in_inputs(search_dirs, detect_layout, max_depth)


def find_data_root(search_dirs: Sequence[str | Path] | None = None, compression: str = "c23") -> Path | None:
    """The first FaceForensics++ root (the Kaggle mirror, or the official layout at ``compression``) of
    ``find_datasets``, found by its layout whatever its folder is called."""
    layouts = ("official", "kaggle") if compression == "c23" else ("official",)  # the mirror is c23 only
    return next((root for root in find_datasets(search_dirs) if (layout := detect_layout(root)) in layouts
                 and _layout_folders(root, layout, REAL_FOLDER, compression).is_dir()), None)


def find_local_model(search_dirs: Sequence[str | Path] | None = None, max_depth: int = 5) -> Path | None:
    """A copy of the k400 TimeSformer (a timesformer ``config.json`` with 400 labels, and weights) in a
    Kaggle Model or dataset below ``search_dirs`` (default ``/kaggle/input``), or None."""
    return next(iter(_in_inputs(search_dirs, _is_k400_timesformer, max_depth)), None)


def describe_inputs(top: str | Path | None = None) -> str:
    """What each Kaggle input below ``top`` (default ``/kaggle/input``) holds, in one line."""
    top = Path(top or KAGGLE_INPUT)
    roots, said = find_datasets([top]), []
    for folder in kaggle_inputs(top):
        found = [f"{detect_layout(r)} layout" + (f" in {r.relative_to(folder)}" if r != folder else "")
                 for r in roots if r.is_relative_to(folder)]
        said.append(f"{folder.relative_to(top)} ({', '.join(found) or 'no dataset layout'})")
    return "; ".join(said) or "nothing"


def sized_split(n_real: int, n_fake: int) -> tuple[int, int]:
    """``(n_train, n_val)`` using the whole balanced pool of a small tree, half each side."""
    pool = 2 * min(n_real, n_fake)
    if pool < 2:
        raise ValueError(f"need at least one real and one fake video, found {n_real} real, {n_fake} fake")
    return pool - pool // 2, pool // 2


def resolve_config(defaults: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    """``defaults``, then the mode's presets, then ``SCARLET_<NAME>`` variables, which always win (CI runs
    the notebook headless). ``MODE`` None: ``kaggle`` where FF++ is found, else ``demo``. ``demo`` and
    ``sample`` use a tiny model and their own output folders; on Kaggle an attached k400 copy is used."""
    given = {k[len(ENV_PREFIX):]: text for k, text in (os.environ if environ is None else environ).items()
             if k.startswith(ENV_PREFIX)}
    if unknown := sorted(ENV_PREFIX + k for k in given if k not in defaults):
        raise KeyError(f"unknown configuration variables {unknown}; known: {sorted(defaults)}")
    env = {k: _parse_env_value(k, text, defaults[k]) for k, text in given.items()}
    cfg = {**defaults, **env}
    if cfg.get("DATA_ROOT") is None and cfg.get("MODE") in (None, "kaggle"):
        found = find_data_root(compression=cfg.get("COMPRESSION") or "c23")
        cfg["DATA_ROOT"] = str(found) if found else None
    mode = cfg.get("MODE") or ("kaggle" if cfg.get("DATA_ROOT") else "demo")
    if mode not in MODES:
        raise ValueError(f"MODE must be one of {MODES}, got {mode!r}")
    on_kaggle = KAGGLE_WORKING.is_dir()
    notes = [] if cfg.get("MODE") or mode != "demo" or not on_kaggle else [  # Run All on Kaggle, no FF++
        f"MODE demo: no FaceForensics++ root (ROOT/original/ beside ROOT/<Method>/, or "
        f"ROOT/original_sequences/) under {KAGGLE_INPUT}, which holds: {describe_inputs()}"]
    recipe = cfg.get("RECIPE") or "original"  # its presets first: the mode's win (a tiny model, whole frames)
    mine: dict[str, Any] = {"MODE": mode}
    if mode == "kaggle":
        if cfg.get("DATA_ROOT") is None:
            raise FileNotFoundError(f"no FaceForensics++ root under {KAGGLE_INPUT} ({describe_inputs()}): "
                                    "attach the dataset, set SCARLET_DATA_ROOT or run SCARLET_MODE=demo")
        mine["OUTPUT_DIR"] = str(KAGGLE_WORKING / "models" / "video") if on_kaggle else "models/video"
        mine["CACHE_DIR"] = str(KAGGLE_WORKING / "frame_cache") if on_kaggle else ".scarlet_cache"
        if cfg.get("MODEL") == DEFAULT_MODEL and (local := find_local_model()):
            mine["MODEL"] = str(local)
    else:  # a tiny model: minutes on a laptop CPU, never a real result
        mine.update(MODEL="tiny", NUM_FRAMES=8, SIZE=64, BATCH_SIZE=4, LR=5e-4, FACE_CROP=False,
                    OUTPUT_DIR=f"{mode}_output", CACHE_DIR=f"{mode}_output/frame_cache")
        if mode == "demo":  # a folder per size: the synthetic data follows N_TRAIN and N_VAL, never SEED
            n_per_class = ((env.get("N_TRAIN") or 192) + (env.get("N_VAL") or 96)) // 2
            mine.update(DATA_ROOT=f"demo_output/synthetic_{n_per_class}", METHODS=["Deepfakes"],
                        N_TRAIN=192, N_VAL=96, EPOCHS=20)
            mine |= {"SPLIT": "identity"} if RECIPES.get(recipe, {}).get("SPLIT") == "official" else {}
        elif cfg.get("DATA_ROOT") is None:
            raise ValueError(f"MODE=sample needs {ENV_PREFIX}DATA_ROOT, a small FF++ tree")
        else:  # a handful of videos cannot be split by identity at fixed sizes: random, like the original
            methods = available_methods(cfg["DATA_ROOT"])
            labels = [i.label for i in list_videos(cfg["DATA_ROOT"], methods)]
            n_train, n_val = sized_split(labels.count(0), labels.count(1))
            mine.update(METHODS=methods, N_TRAIN=n_train, N_VAL=n_val, EPOCHS=2, SPLIT="random")
    recipes = RECIPES.get(recipe, {})  # unknown: said below
    presets = {k: list(v) if isinstance(v, list) else v for k, v in recipes.items()} | mine
    by = {**dict.fromkeys(defaults, f"MODE {mode}"), **dict.fromkeys(recipes, f"RECIPE {recipe}"),
          **dict.fromkeys(mine, f"MODE {mode}")}
    cfg |= {k: v for k, v in presets.items() if k not in env and k in defaults}
    wrong = [f"{k} must be one of {v}, got {cfg[k]!r}" for k, v in CHOICES.items()
             if cfg.get(k, v[0]) not in v]
    wrong += [f"{k} must be a number in [{low}, {high}), got {cfg[k]!r}" for k, (low, high) in RANGES.items()
              if k in cfg and not (isinstance(cfg[k], (int, float)) and low <= cfg[k] < high)]
    if not isinstance(cfg.get("THRESHOLD", 0.5), (int, float)) and cfg["THRESHOLD"] != "val-eer":
        wrong.append(f"THRESHOLD must be a number or 'val-eer', got {cfg['THRESHOLD']!r}")
    if (cfg.get("TRAIN_CLIPS") or 1) > 1 and cfg.get("SAMPLING") != "window":  # spread clips: a segment each
        wrong.append("TRAIN_CLIPS > 1 needs SAMPLING 'window' (spread clips each cover a part of the video)")
    if cfg.get("PAIR_FAKES") and cfg["BATCH_SIZE"] % 2:
        wrong.append(f"PAIR_FAKES needs an even BATCH_SIZE (a real and its own fake in one batch), got "
                     f"{cfg['BATCH_SIZE']}")
    if wrong:
        raise ValueError("; ".join(wrong))
    return Config(cfg, [(k, defaults[k], cfg[k], f"{ENV_PREFIX}{k}" if k in env else by[k])
                        for k in defaults if cfg[k] != defaults[k]], notes)


def frame_cache_bytes(config: dict[str, Any], cached: Sequence[str | Path] = ()) -> int:
    """Bytes this run's split adds to the frame cache (``TRAIN_CLIPS`` windows per training video, 1 +
    ``NUM_CLIPS`` clips per video scored), less the clips already in the ``cached`` folders."""
    ids = Counter(part for pair, part in _OFFICIAL.items() if len(pair) == 1)  # official: a real per id
    n_train, n_eval = ((2 * ids["train"], 2 * (ids["val"] + ids["test"])) if config["SPLIT"] == "official"
                       else (config["N_TRAIN"], config["N_VAL"]))
    scored = 1 + (config.get("NUM_CLIPS", 1) if config.get("NUM_CLIPS", 1) > 1 else 0)  # 1 clip, NUM_CLIPS
    clips = n_train * config.get("TRAIN_CLIPS", 1) + n_eval * scored
    have = sum(f.stat().st_size for folder in map(Path, cached) for f in folder.rglob("*.npy"))
    return max(0, clips * config["NUM_FRAMES"] * config["SIZE"] ** 2 * 3 - have)


def check_disk(folder: str | Path, need: int) -> str:
    """A line on the space ``need`` bytes take below ``folder``; ``OSError`` where it cannot hold them (on
    Kaggle, /kaggle/working keeps 20 GB whatever the disk has free)."""
    folder = Path(folder).absolute()
    free = shutil.disk_usage(next(p for p in [folder, *folder.parents] if p.exists())).free
    if folder.is_relative_to(KAGGLE_WORKING):  # less what the outputs hold already
        held = sum(f.stat().st_size for f in KAGGLE_WORKING.rglob("*") if f.is_file())
        free = min(free, KAGGLE_OUTPUT_LIMIT - held)
    said = (f"frame cache: about {need / 1e9:.1f} GB more in {folder}, {free / 1e9:.1f} GB free there (the "
            "checkpoints and the cross-method and cross-dataset sets come on top)")
    if need > free:
        raise OSError(28, f"{said}: not enough to extract; set SCARLET_TRAIN_CLIPS, NUM_CLIPS or SIZE lower, "
                          "or N_TRAIN (not with SPLIT official)")
    return said


def device_report(amp: bool = True) -> dict[str, Any]:
    """The compute device, its precisions, and the library versions, for the notebook to print."""
    import sklearn
    import transformers
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + GradScaler", None: "fp32"}
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"device": str(device), "gpus": gpus,
            "training precision": name[precision(device, training=True, amp=amp)],
            "scoring precision": name[precision(device, amp=amp)].replace(" + GradScaler", ""),
            "cpus": default_workers(), "torch": torch.__version__, "transformers": transformers.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__}


# ----------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------


def sample_frame_indices(total_frames: int, num_frames: int = 8) -> list[int]:
    """``num_frames`` indices spread uniformly from the first frame to the last (repeated where too few)."""
    return sample_clip_indices(total_frames, num_frames)[0]


def sample_clip_indices(total_frames: int, num_frames: int = 8, num_clips: int = 1,
                        stride: int | None = None) -> list[list[int]]:
    """``num_clips`` clips of the video cut into equal segments: each sampled first to last, or (``stride``) a
    window of frames ``stride`` apart in its segment's middle (the last frame repeats where too short)."""
    for name, value in (("total_frames", total_frames), ("num_frames", num_frames), ("num_clips", num_clips),
                        ("stride", 1 if stride is None else stride)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if stride is not None:  # the starts cut into equal segments, each window at its segment's middle
        free = max(total_frames - (num_frames - 1) * stride - 1, 0)
        starts = ((np.arange(num_clips) + 0.5) * free / num_clips).round()
        windows = starts[:, None] + stride * np.arange(num_frames)
        return np.minimum(windows, total_frames - 1).astype(int).tolist()
    edges = np.ceil(np.linspace(0, total_frames, num_clips + 1)).astype(int)
    firsts, lasts = np.minimum([edges[:-1], np.maximum(edges[1:] - 1, edges[:-1])], total_frames - 1)
    return np.linspace(firsts, lasts, num_frames, axis=1).round().astype(int).tolist()


def resize_short_side_center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, 3)`` -> ``(size, size, 3)``: short side to ``size``, then a centre crop (k400's processor)."""
    scale = size / min(frame.shape[:2])
    w, h = (max(size, round(n * scale)) for n in frame.shape[1::-1])
    resized = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (h - size) // 2, (w - size) // 2
    return resized[top : top + size, left : left + size]


_THREAD = threading.local()  # each extraction thread's FFmpeg thread count and face cascades
_SEEK_BACKOFF = 16  # OpenCV's frame seek decodes from the keyframe at or before 16 frames earlier
SEEK_MIN_GAP = 250  # seek only past x264's default keyframe interval (FF++'s): closer, seeks skip little
# NAL units of pictures decodable alone (H.264 IDR, HEVC IRAP): FFmpeg flags recovery points as keyframes too
_RANDOM_ACCESS = {"h264": rb"\x00\x00\x01[\x05\x25\x45\x65]", "hevc": rb"\x00\x00\x01[\x20-\x2b]"}


def _init_extract_worker() -> None:
    """One FFmpeg and OpenCV thread per extraction worker, as the pool is the parallelism (same pixels)."""
    _THREAD.decoder_threads = 1
    cv2.setNumThreads(1)  # process-wide: in a thread pool, extract_frames has set it already


def _open_capture(path: Path) -> cv2.VideoCapture:
    """``path`` opened to decode, or ``VideoReadError``; only a regular file is opened (a FIFO blocks)."""
    try:
        if (regular := stat.S_ISREG((st := path.stat()).st_mode)) and st.st_size:
            open(path, "rb").close()
    except OSError as exc:  # the OS's cause: "No such file or directory", "Permission denied", a symlink loop
        raise VideoReadError(f"{path}: {exc.strerror or exc}") from None
    if not (regular and st.st_size):
        kind = "is a directory, not a video file" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise VideoReadError(f"{path}: {'empty file (0 bytes)' if regular else kind}")
    threads = getattr(_THREAD, "decoder_threads", 0)  # 0: OpenCV's default, one per CPU
    cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, threads] if threads else [])
    if not cap.isOpened():
        raise VideoReadError(f"{path}: OpenCV cannot open it as a video (truncated, or an unknown codec)")
    return cap


def _seek_keyframes(path: Path) -> list[int]:
    """Keyframes to seek from (H.264, HEVC: random access points); none unless PTS are frame numbers."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])  # raw packets, Annex B
    codec = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1").lower()
    pts, keys = [], []
    while cap.grab():
        pts.append(cap.get(cv2.CAP_PROP_PTS))
        if cap.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME) and (codec not in _RANDOM_ACCESS or (
                (packet := cap.retrieve()[1]) is not None and re.search(_RANDOM_ACCESS[codec], packet))):
            keys.append(int(pts[-1]))
    cap.release()
    return keys if pts and sorted(pts) == list(range(len(pts))) else []


def _grab_frames(path: Path, wanted: list[int], transform: Callable[[int, np.ndarray], Any] | None = None,
                 seek_gap: int | None = SEEK_MIN_GAP) -> tuple[list[Any], int]:
    """The BGR frames at sorted ``wanted``, each through ``transform(index, frame)`` as decoded, and the frame
    count, found by decoding. Seeks where frames lie over ``seek_gap`` apart and seeking is exact."""
    keys = _seek_keyframes(path) if seek_gap is not None and np.diff([0, *wanted]).max() > seek_gap else []
    cap, frames, pos, exact = _open_capture(path), [], 0, None  # pos: the frame the next grab() gives

    def go(to: float, seek: bool = False) -> bool:  # to frame ``to``: decoding, or a seek that lands on it
        nonlocal pos
        if seek:
            pos = to + 1
            return cap.set(cv2.CAP_PROP_POS_FRAMES, to) and cap.grab() and cap.get(cv2.CAP_PROP_PTS) == to
        while pos <= to and cap.grab():
            pos += 1
        return pos > to
    try:
        for idx in wanted:
            if any(pos < k <= idx - _SEEK_BACKOFF for k in keys):  # a seek would skip decoding
                if exact is None:  # once per file: a seek's pixels against a full decode's
                    check = min(k for k in keys if k >= pos) + _SEEK_BACKOFF  # a seek decodes it from k
                    truth = cap.retrieve()[1] if go(check) else None
                    exact = truth is not None and go(check, True) and np.array_equal(cap.retrieve()[1], truth)
                if not exact or any(pos < k <= idx - _SEEK_BACKOFF for k in keys) and not go(idx, True):
                    return _grab_frames(path, wanted, transform, None)
            if not go(idx):  # after a seek, only a full decode tells where the stream ends
                return (frames, pos) if exact is None else _grab_frames(path, wanted, transform, None)
            ok, frame = cap.retrieve()
            if not ok:
                raise VideoReadError(f"{path}: frame {idx} could be grabbed but not decoded")
            frames.append(frame if transform is None else transform(idx, frame))
        go(float("inf"))  # a header that under-counts: the rest is counted
    finally:
        cap.release()
    return frames, pos


@dataclass
class Clip:
    """What reading a video produced: ``frames`` ``(T, size, size, 3)`` uint8 RGB, and how."""
    frames: np.ndarray
    indices: list[int]
    total_frames: int
    faces: FaceCounts | None = None
    boxes: list[Box | None] | None = None  # each frame's face box (None: a centre crop)
    warnings: list[str] = field(default_factory=list)
    fps: float = 25.0  # the header's (25 where it gives none)


def read_clip(path: str | Path, num_frames: int = 8, size: int = 224, face_crop: bool = False,
              num_clips: int = 1, seek_gap: int | None = SEEK_MIN_GAP, stride: int | None = None) -> Clip:
    """``num_frames`` frames as ``sample_clip_indices`` picks them (``num_clips`` > 1: ``(num_clips, T,
    ...)``), a full decode's even where it seeks (``seek_gap`` None: never). Raises ``VideoReadError``."""
    cap = _open_capture(path := Path(path))
    header, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    fps = fps if 1 <= fps <= 1000 else 25.0  # a header without a rate
    total = header if header >= 1 else max(1, _grab_frames(path, [], None, None)[1])  # no count in the header
    step, warnings = FACE_NEIGHBOUR if face_crop else 0, []

    def prepare(idx: int, frame: np.ndarray) -> np.ndarray | tuple[np.ndarray, float]:
        if face_crop:  # a kept frame whole; a neighbour (see Faces) as the detector sees it
            return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if idx in indices else detection_view(frame, True)
        return cv2.cvtColor(resize_short_side_center_crop(frame, size), cv2.COLOR_BGR2RGB)

    while True:  # a header's wrong frame count is found while decoding, and the clip resampled once
        indices = [i for clip in sample_clip_indices(total, num_frames, num_clips, stride) for i in clip]
        neighbour = {i: i + step if i + step < total else max(i - step, 0) for i in indices}
        wanted = sorted(set(indices) | set(neighbour.values()))
        frames, reached = _grab_frames(path, wanted, prepare, seek_gap)
        if reached == total:
            break
        if warnings or not reached:
            raise VideoReadError(f"{path}: " + (f"decoding is not repeatable ({total} frames, then {reached})"
                                                if warnings else "the video has no decodable frames"))
        said = "only" if reached < total else "but"
        warnings.append(f"{path}: header says {header} frames, {said} {reached} decode; resampling")
        logger.warning(warnings[0])
        total = reached
    by_index = dict(zip(wanted, frames))
    crops, faces, boxes = [by_index[i] for i in indices], None, None  # repeated frames are shared
    if face_crop:
        boxes, faces = face_boxes(crops, indices, [by_index[neighbour[i]] for i in indices], fps)
        crops = crop_faces(crops, boxes, size)
    shape = (num_clips, num_frames) if num_clips > 1 else (num_frames,)
    return Clip(np.stack(crops).reshape(*shape, size, size, 3), indices, total, faces, boxes, warnings, fps)


def read_video_frames(path: str | Path, num_frames: int = 8, size: int = 224,
                      face_crop: bool = False) -> np.ndarray:
    """``(num_frames, size, size, 3)`` uint8 RGB frames spread over the video: whole frames or face crops."""
    clip = read_clip(path, num_frames, size, face_crop)
    if clip.faces is not None and clip.faces.unsure:
        logger.warning("%s: %s", path, clip.faces.warning())
    return clip.frames


# ----------------------------------------------------------------------------------------------
# Faces
# ----------------------------------------------------------------------------------------------
# One face track per video: finds confirmed FACE_NEIGHBOUR frames away are linked by position and size; the
# clip follows the track in the most frames (then the largest), a frame off it taking the nearest one's box.
FACE_DETECT_SHORT_SIDE = 360  # detect on a downscaled grey frame: much faster, the same faces on FF++
FACE_MARGIN = 1.3  # square box 1.3x the detected face: keeps hairline, jaw and blending seams
FACE_NEIGHBOUR = 2  # frames between a kept frame and the one its finds are confirmed on
FACE_BORROW_SECONDS = 2.0  # a frame off the track this close to one on it is "borrowed", not "no face"
Box = tuple[float, float, float]  # a face's centre x, centre y and side, in the frame's pixels
_say_no_cascades = lru_cache(1)(lambda: logger.warning("OpenCV has no Haar cascades: centre crops, no faces"))


@dataclass
class FaceCounts:
    """How kept frames were cropped: at the face's box, at the nearest on-track frame's, or with no face."""
    on_track: int = 0
    borrowed: int = 0  # at most FACE_BORROW_SECONDS from a frame on the track
    no_face: int = 0
    tracks: int = 0  # faces found in two or more kept frames
    unsure = property(lambda self: self.on_track <= self.borrowed + self.no_face)  # no face on most frames

    def summary(self) -> str:
        return (f"face on {self.on_track} frames, borrowed on {self.borrowed}, none on {self.no_face}; "
                f"{self.tracks} face track{'s' if self.tracks != 1 else ''}")

    def warning(self) -> str:
        return f"the face was not found on most frames ({self.summary()})"


def _cascades() -> tuple[Any, Any] | None:
    """This thread's frontal and profile Haar cascades (threads sharing one race on its buffers), or None."""
    if not hasattr(_THREAD, "cascades"):
        folder = getattr(getattr(cv2, "data", None), "haarcascades", "")  # opencv-python>=5 ships none
        names = ("frontalface_default", "profileface") if folder and hasattr(cv2, "CascadeClassifier") else ()
        pair = tuple(cv2.CascadeClassifier(os.path.join(folder, f"haarcascade_{n}.xml")) for n in names)
        _THREAD.cascades = pair if pair and not any(c.empty() for c in pair) else _say_no_cascades()
    return _THREAD.cascades


def detection_view(frame: np.ndarray, bgr: bool = False) -> tuple[np.ndarray, float]:
    """An ``(H, W, 3)`` RGB (or BGR) frame as the detector sees it: grey, short side <= 360, its scale."""
    scale = min(1.0, FACE_DETECT_SHORT_SIDE / min(frame.shape[:2]))
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    small = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
    return (grey if scale == 1 else cv2.resize(grey, small, interpolation=cv2.INTER_AREA)), scale


def _same_face(a: Box, b: Box, reach: float = 1.0) -> bool:
    """Whether two boxes are one face: centres within ``reach`` sides, sizes within 1.6x."""
    big, small = max(a[2], b[2]), min(a[2], b[2])
    return np.hypot(a[0] - b[0], a[1] - b[1]) <= reach * big and big <= 1.6 * small


def detect_faces(frame: np.ndarray | tuple[np.ndarray, float], near: Box | None = None) -> list[Box]:
    """Faces (frame pixels, best first) in an RGB frame or its ``detection_view``; ``near``: near it only."""
    grey, scale = frame if isinstance(frame, tuple) else detection_view(frame)
    x0, y0, opts = 0, 0, dict(scaleFactor=1.1, minNeighbors=5, outputRejectLevels=True, minSize=(30, 30))
    if near is not None:  # a window 2.5 sides wide around the box, for faces 0.6-1.6x its size
        cx, cy, side = (v * scale for v in near)
        x0, y0, x1, y1 = (max(0, int(c + d * side)) for d in (-1.25, 1.25) for c in (cx, cy))
        grey = np.ascontiguousarray(grey[y0:y1, x0:x1])
        opts.update(minSize=(int(0.6 * side),) * 2, maxSize=(int(1.6 * side) + 1,) * 2)
    if (cascades := _cascades()) is None or min(grey.shape) < opts["minSize"][0]:
        return []

    def scan(cascade: Any, image: np.ndarray, mirrored: bool = False) -> list[tuple[float, Box]]:
        rects, _, weights = cascade.detectMultiScale3(cv2.flip(image, 1) if mirrored else image, **opts)
        return [(float(wt), ((x0 + (image.shape[1] - x - w / 2 if mirrored else x + w / 2)) / scale,
                             (y0 + y + h / 2) / scale, max(w, h) / scale))
                for (x, y, w, h), wt in zip(rects, np.ravel(weights))]
    # Each pass only where the ones before find nothing: equalised (dark scenes), then profiles both ways.
    (frontal, profile), eq = cascades, cv2.equalizeHist(grey)
    found = scan(frontal, grey) or scan(frontal, eq) or scan(profile, eq) + scan(profile, eq, mirrored=True)
    faces: list[Box] = []  # one box per face (the most confident), none centred in a larger one (eyes, brows)
    for _, box in sorted(found, key=lambda f: -f[0]):
        if not any(_same_face(box, kept, 0.5) for kept in faces):
            faces.append(box)
    return [b for b in faces if not any(o[2] > b[2] and max(abs(o[0] - b[0]), abs(o[1] - b[1])) < o[2] / 2
                                        for o in faces)]


def track_faces(detections: Sequence[Sequence[Box]], frame_ids: Sequence[int],
                fps: float = 25.0) -> tuple[list[Box | None], FaceCounts]:
    """A box per kept frame (``detections[k]``: faces at frame ``frame_ids[k]``) from the main track, and the
    counts; on it, averaged over its boxes a few frames away only (a face moves); all None: no face."""
    tracks: list[dict[int, Box]] = []  # kept frame -> box, filled in frame order
    last = lambda t: t[max(t, key=frame_ids.__getitem__)]  # noqa: E731  (a track's latest box)
    for k in sorted(range(len(detections)), key=frame_ids.__getitem__):
        for box in detections[k]:  # most confident first: it picks its track first
            if free := [t for t in tracks if k not in t and _same_face(last(t), box)]:
                min(free, key=lambda t: np.hypot(last(t)[0] - box[0], last(t)[1] - box[1]))[k] = box
            else:
                tracks.append({k: box})
    if not tracks:
        return [None] * len(detections), FaceCounts(no_face=len(detections))
    main = max(tracks, key=lambda t: (len(t), np.mean([b[2] for b in t.values()])))
    gap = lambda j, k: abs(frame_ids[j] - frame_ids[k])  # noqa: E731
    nearest = {k: min(main, key=lambda j: gap(j, k)) for k in range(len(frame_ids)) if k not in main}
    mean = lambda k: tuple(np.mean([main[j] for j in main if gap(j, k) <= 2 * FACE_NEIGHBOUR], 0).tolist())
    boxes = [main[nearest[k]] if k in nearest else mean(k) for k in range(len(frame_ids))]
    borrowed = sum(gap(j, k) <= FACE_BORROW_SECONDS * fps for k, j in nearest.items())
    return boxes, FaceCounts(len(main), borrowed, len(nearest) - borrowed, sum(len(t) >= 2 for t in tracks))


def crop_faces(frames: Sequence[np.ndarray], boxes: Sequence[Box | None], size: int) -> list[np.ndarray]:
    """Squares FACE_MARGIN x each box (shifted in at an edge) at ``size``; None: the frame's centre crop."""
    def square(frame: np.ndarray, box: Box) -> np.ndarray:
        s = int(round(min(box[2] * FACE_MARGIN, *frame.shape[:2])))  # a box larger than the frame: its side
        x0, y0 = (int(round(min(max(c - s / 2, 0), n - s))) for c, n in zip(box, frame.shape[1::-1]))
        return frame[y0 : y0 + s, x0 : x0 + s]
    return [resize_short_side_center_crop(frame if box is None else square(frame, box), size)
            for frame, box in zip(frames, boxes, strict=True)]


def face_boxes(frames: Sequence[np.ndarray], frame_ids: Sequence[int], neighbours: Sequence[Any],
               fps: float = 25.0) -> tuple[list[Box | None], FaceCounts]:
    """``track_faces`` of kept RGB ``frames``, finds confirmed on ``neighbours`` (or detection views)."""
    def confirmed(frame: np.ndarray, view: np.ndarray | tuple[np.ndarray, float]) -> list[Box]:
        own = detect_faces(frame)
        again = [next((b for b in detect_faces(view, near=a) if _same_face(a, b, 0.3)), None) for a in own]
        return [tuple(np.mean(p, 0).tolist()) for p in zip(own, again) if p[1]] or own or detect_faces(view)
    return track_faces([confirmed(f, v) for f, v in zip(frames, neighbours, strict=True)], frame_ids, fps)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

REAL_FOLDER = "original"
ACTORS_FOLDER = "actors"  # DeepFakeDetection's real videos (its own actors, not youtube ids)
KNOWN_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
FFPP = "FaceForensics++"  # an FF++ c23 item's dataset; at other compressions "FaceForensics++ c40", ...
COMPRESSIONS = ("c23", "c40", "raw")
CELEB_FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}  # Celeb-DF v2's folders: labels
LAYOUT_HELP = """expected one of these layouts under the data root:
  FF++ Kaggle mirror: ROOT/original/NNN.mp4 and ROOT/<Method>/TTT_SSS.mp4 (e.g. ROOT/Deepfakes/000_003.mp4)
  FF++ official (c23, c40 or raw): ROOT/original_sequences/youtube/c23/videos/NNN.mp4 and
    ROOT/manipulated_sequences/<Method>/c23/videos/TTT_SSS.mp4
  Celeb-DF v2: ROOT/Celeb-real/idX_NNNN.mp4, ROOT/YouTube-real/NNNNN.mp4,
    ROOT/Celeb-synthesis/idX_idY_NNNN.mp4 and ROOT/List_of_testing_videos.txt
  DFDC: ROOT/metadata.json or ROOT/dfdc_train_part_N/metadata.json (or dfdc_train_part_0N/dfdc_train_part_N/)
    beside its videos; its public test set: labels.csv (filename,label; 1 is fake) beside its videos
  your own videos: ROOT/real/... and ROOT/fake/... (any names, any subfolders)"""


@dataclass(frozen=True)
class VideoItem:
    """One video: ``label`` 0 real, 1 fake; ``people``: its identities where ``video_id`` cannot say them."""

    path: Path
    label: int
    method: str
    video_id: str  # its name in its method's folder (FF++: ``T``, or ``T_S``: T's video with S's face)
    dataset: str = FFPP
    people: tuple[str, ...] = ()


def _video_files(folder: Path, recursive: bool = False) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."))


def _is_labels_csv(path: Path) -> bool:
    """Whether ``path`` begins ``filename,label`` (DFDC's test set); any other file is not one."""
    with contextlib.suppress(OSError, ValueError), open(path, encoding="utf-8-sig") as fh:
        return fh.readline().strip().lower() == "filename,label"
    return False


def _dfdc_metadata(root: Path) -> list[Path]:
    """DFDC's metadata.json at ``root``, in its parts (or ``part_00/part_0/``), its test set's labels.csv."""
    number = lambda name: re.sub(r"\d+", lambda m: str(int(m[0])), name)  # noqa: E731
    deeper = [p for p in root.glob("*/*/metadata.json") if number(p.parent.name) == number(p.parts[-3])]
    labels = [p for p in [*root.glob("labels.csv"), *root.glob("*/labels.csv")] if _is_labels_csv(p)]
    return sorted([*root.glob("metadata.json"), *root.glob("*/metadata.json"), *deeper, *labels])


def detect_layout(root: str | Path) -> str:
    """``"kaggle"``, ``"official"`` (FF++), ``"celeb-df"``, ``"dfdc"`` or ``"folders"``; else an error."""
    root = Path(root)
    layout = ("official" if (root / "original_sequences").is_dir()
              else "kaggle" if (root / REAL_FOLDER).is_dir()
              else "celeb-df" if any((root / folder).is_dir() for folder in CELEB_FOLDERS)
              else "dfdc" if _dfdc_metadata(root)
              else "folders" if (root / "real").is_dir() and (root / "fake").is_dir() else None)
    if layout is None:
        raise FileNotFoundError(f"{root}: not a data root Scarlet reads; {LAYOUT_HELP}")
    return layout


def _layout_folders(root: Path, layout: str, method: str, compression: str = "c23") -> Path:
    folder = {REAL_FOLDER: "original_sequences/youtube", ACTORS_FOLDER: "original_sequences/actors"}.get(
        method, f"manipulated_sequences/{method}")
    return root / method if layout == "kaggle" else root / folder / compression / "videos"


def available_methods(root: str | Path, compression: str = "c23") -> list[str]:
    """The fake methods under ``root``: FF++ manipulations with a folder, else those ``list_videos`` finds."""
    root, layout = Path(root), detect_layout(root)
    if layout in ("kaggle", "official"):
        return [m for m in KNOWN_METHODS if _layout_folders(root, layout, m, compression).is_dir()]
    return sorted({i.method for i in _other_videos(root, layout) if i.label == 1})


def _present(listing: Path, items: list[VideoItem]) -> list[VideoItem]:
    """The videos ``listing`` names that are here; the others are counted in one warning."""
    gone = [i.path for i in items if not i.path.is_file()]
    if gone:
        logger.warning("%s: %d of its %d videos are not under %s (e.g. %s); using the others", listing,
                       len(gone), len(items), listing.parent, gone[0].name)
    return [i for i in items if i.path not in gone]


def _celeb_item(path: Path) -> VideoItem:
    """``idX_NNNN`` shows celebrity X, ``idX_idY_NNNN`` X's video with Y's face; YouTube-real, its own."""
    ids = tuple(f"celeb:{x}" for x in path.stem.split("_") if re.fullmatch(r"id\d+", x))
    folder = path.parent.name
    people = ids if folder != "YouTube-real" and ids else (f"celeb-youtube:{path.stem}",)
    return VideoItem(path, CELEB_FOLDERS.get(folder, 1), folder, path.stem, "Celeb-DF-v2", people)


def _other_videos(root: Path, layout: str) -> list[VideoItem]:
    """Every video of a Celeb-DF v2, DFDC or own-folders root (see ``LAYOUT_HELP``)."""
    if layout == "celeb-df":
        return [_celeb_item(p) for f in CELEB_FOLDERS if (root / f).is_dir() for p in _video_files(root / f)]
    if layout == "folders":  # each video its own person; the id keeps its subfolders
        own = f"own-{root.name}"
        return [VideoItem(p, label, side, "__".join(p.relative_to(root / side).with_suffix("").parts), own,
                          (f"{own}:{p.relative_to(root).as_posix()}",))
                for label, side in ((0, "real"), (1, "fake")) for p in _video_files(root / side, True)]
    items = []  # DFDC: a fake and its original are one group of people; labels.csv (its test set): 1 is fake
    for meta in _dfdc_metadata(root):
        text = meta.read_text(encoding="utf-8-sig")
        try:
            rows = ([(r["filename"], int(r["label"]) != 0, None) for r in csv.DictReader(text.splitlines())]
                    if meta.suffix == ".csv" else
                    [(name, str(e["label"]).upper() == "FAKE", e.get("original"))
                     for name, e in json.loads(text).items()])
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"{meta}: not a DFDC {meta.name} ({type(exc).__name__}: {exc})") from None
        items += _present(meta, [VideoItem(meta.parent / name, int(fake), "DFDC" if fake else "DFDC-real",
                                           Path(name).stem, "DFDC", (f"dfdc:{Path(original or name).stem}",))
                                 for name, fake, original in rows])
    return items


def list_videos(root: str | Path, methods: Iterable[str] | None = None,
                compression: str = "c23") -> list[VideoItem]:
    """The reals and the fakes of ``methods`` (None: all) under ``root`` by path; FF++ at ``compression``."""
    root, layout = Path(root), detect_layout(root)
    if compression not in COMPRESSIONS or (compression != "c23" and layout == "kaggle"):
        raise ValueError(f"{root}: compression {compression!r}: expected one of {COMPRESSIONS} (the Kaggle "
                         "mirror holds c23 only)")
    ffpp = layout in ("kaggle", "official")
    items = [] if ffpp else _other_videos(root, layout)
    found = available_methods(root, compression) if ffpp else sorted({i.method for i in items if i.label})
    asked = [methods] if isinstance(methods, str) else methods  # a bare string is one method
    methods = found if asked is None else list(dict.fromkeys(asked))
    folders = {m: _layout_folders(root, layout, m, compression) for m in [REAL_FOLDER, *methods] if ffpp}
    missing = "; ".join([f"no folder for {m!r} ({f})" for m, f in folders.items() if not f.is_dir()] + [
        f"no fakes of {m!r}" for m in methods if not ffpp and m not in found])
    if missing:
        raise FileNotFoundError(f"{root} ({layout} layout): {missing}; methods found: {found or 'none'}")
    if ffpp and "DeepFakeDetection" in methods:  # its own actors' videos are its reals
        folders[ACTORS_FOLDER] = _layout_folders(root, layout, ACTORS_FOLDER, compression)
        if not folders[ACTORS_FOLDER].is_dir():
            logger.warning("%s: no DeepFakeDetection originals (actors) here, so the DeepFakeDetection fakes "
                           "have no matching real videos", folders.pop(ACTORS_FOLDER))
    dataset = FFPP if compression == "c23" else f"{FFPP} {compression}"
    items = [i for i in items if i.label == 0 or i.method in methods] + [
        VideoItem(p, int(m not in (REAL_FOLDER, ACTORS_FOLDER)), m, p.stem, dataset)
        for m, folder in folders.items() for p in _video_files(folder)]
    if {i.label for i in items} != {0, 1}:
        empty = ", ".join(str(f) for m, f in folders.items() if not any(i.method == m for i in items))
        where = f"; no video files ({', '.join(VIDEO_EXTENSIONS)}) in {empty}" if empty else ""
        raise FileNotFoundError(f"{root}: need real and fake videos, found "
                                f"{dict(Counter(i.method for i in items)) or 'none'}{where}; {LAYOUT_HELP}")
    return sorted(items, key=lambda i: str(i.path))


def dataset_test_items(root: str | Path, n_eval: int | None = 800, seed: int = 0,
                       compression: str = "c23") -> tuple[list[VideoItem], str]:
    """A dataset's standard test set and its name (DFDC's labelled videos: ``n_eval`` drawn with ``seed``)."""
    root, layout = Path(root), detect_layout(root)
    if layout == "celeb-df":  # "LABEL RELPATH" lines, 1 is real; a path may start above Celeb-DF's folders
        listing = root / "List_of_testing_videos.txt"
        rows = [line.split(maxsplit=1) for line in listing.read_text(encoding="utf-8-sig").splitlines()
                if line.strip()]
        if any(len(r) != 2 or r[0] not in ("0", "1") for r in rows):
            raise ValueError(f"{listing}: expected 'LABEL RELPATH' lines with LABEL 1 (real) or 0 (fake)")
        paths = [root.joinpath(*PureWindowsPath(rel.strip()).parts[-2:]) for _, rel in rows]  # FOLDER/NAME
        items = _present(listing, [replace(_celeb_item(p), label=1 - int(r[0])) for p, r in zip(paths, rows)])
        return items, f"Celeb-DF-v2 test list, {len(items)} videos"
    items = list_videos(root, compression=compression)
    if layout in ("kaggle", "official"):
        items = [i for i in items if official_part(i) == "test"]
        return items, f"{items[0].dataset if items else FFPP} official test pairs, {len(items)} videos"
    if layout == "folders":
        return items, f"{items[0].dataset}, all {len(items)} videos"
    tests = {m.parent for m in _dfdc_metadata(root) if m.suffix == ".csv"}
    test = [i for i in items if i.path.parent in tests]
    what = "DFDC public test set" if test else "DFDC labelled videos (not its test set)"
    items = test or items
    if n_eval is None or n_eval >= len(items):
        return items, f"{what}, all {len(items)} videos"
    drawn = sorted(_balanced(random.Random(seed), items, n_eval // 2), key=lambda i: str(i.path))
    return drawn, f"{what}, {len(drawn)} of {len(items)} drawn balanced"


def standard_test_sets(roots: Sequence[str | Path], n_eval: int | None = 800, seed: int = 0,
                       compression: str = "c23") -> tuple[dict[str, tuple[Path, list[VideoItem]]], list[str]]:
    """``{name: (root, items)}`` of each root's ``dataset_test_items`` (names told apart), notes on others."""
    found, notes = [], []
    for root in map(Path, roots):
        try:
            found.append((root, *dataset_test_items(root, n_eval, seed, compression)))
        except (OSError, ValueError) as exc:  # a wrong root is reported; the others still run
            notes.append(f"{root}: skipped: {exc}")
    names, folders = Counter(name for _, _, name in found), Counter(root.name for root, _, _ in found)
    return {name if names[name] == 1 else f"{name} ({root.name if folders[root.name] == 1 else root})":
            (root, items) for root, items, name in found}, notes


SPLIT_STRATEGIES = ("random", "identity", "official")
SPLIT_PARTS = ("train", "val", "test")


@dataclass
class Split:
    """The videos on each side of a split (``test`` is empty unless the strategy makes one)."""

    train: list[VideoItem]
    val: list[VideoItem]
    test: list[VideoItem] = field(default_factory=list)
    strategy: str = "random"
    seed: int = 0

    def to_json(self, data_root: str | Path | None = None) -> dict[str, Any]:
        """Plain JSON, paths under ``data_root`` relative to it: the split holds wherever data is mounted."""
        root = Path(data_root or "").absolute()
        path = lambda p: (p.absolute().relative_to(root).as_posix()  # noqa: E731
                          if data_root is not None and p.absolute().is_relative_to(root) else str(p))
        return {"strategy": self.strategy, "seed": self.seed, **{part: [
            {**asdict(i), "path": path(Path(i.path))} for i in getattr(self, part)] for part in SPLIT_PARTS}}

    @classmethod
    def from_json(cls, obj: dict[str, Any], data_root: str | Path | None = None) -> "Split":
        """The split ``to_json`` wrote, its relative paths resolved against today's ``data_root``."""
        side = lambda rows: [VideoItem(**{**r, "path": Path(data_root or "") / r["path"],  # noqa: E731
                                          "people": tuple(r.get("people", ()))}) for r in rows]
        return cls(side(obj["train"]), side(obj["val"]), side(obj.get("test", [])),
                   obj.get("strategy", "random"), obj.get("seed", 0))

    def same_videos(self, other: "Split") -> bool:
        """Whether both hold the same videos on each side (by dataset, method and id, wherever they live)."""
        key = lambda items: sorted((i.dataset, i.method, i.video_id) for i in items)  # noqa: E731
        return all(key(getattr(self, p)) == key(getattr(other, p)) for p in SPLIT_PARTS)


def save_split(split: Split, path: str | Path, data_root: str | Path | None = None) -> Path:
    """Write ``split.json`` (paths relative to ``data_root``) so evaluation reruns on the same videos."""
    return write_json(path, split.to_json(data_root))


def load_split(path: str | Path, data_root: str | Path | None = None) -> Split:
    """Read ``split.json`` (the split cell writes it), resolving its paths against ``data_root``."""
    return Split.from_json(json.loads(Path(path).read_text(encoding="utf-8")), data_root)


# -- Split helpers: identities, the official FF++ lists, leakage -------------------------------
# A fake ``T_S`` shows T's video with S's face: 000_003 in training, 003 or 003_000 in validation leak a face.
# The official FF++ splits (github.com/ondyari/FaceForensics, dataset/splits/{train,val,test}.json) in their
# order: 360 / 70 / 70 [target, source] pairs of youtube ids, each as TTTSSS; every id 000-999 occurs once.
_OFFICIAL_LISTS = """
train: 071054087081881856187234645688754758811920710788628568312021950836059050524580751752918934604703296293
518131536540969897372413357432809799092098302323981985512495088060795907535587297270838810850764476400268269
033097226491784769195442678460320328451449409382556588027009196310241210295099043110753789716712508831005010
276185498433294292105180984967318334356324344020289228022489137165095053999960481469534490543559150153598178
475265671677204230863853561998163031655444038125735774184205499539717684878866127129286267032944681711236237
989993537563814871509525221206808829696686431447737719609596408424976954156243434438627658025067635642523541
572554215208651835975978792903931936846845899914209016398457797844360437738804694767790014657644374407728673
193030876891553545331260873872109107121093143140778798983113504502709390940941894848311387562626330162112892
765867124085665679414385555516072037086090202348341340333377082103569921750743211177770791329327613685007132
304300860905986994378368761766232248136285601653693698359317246258500592776676262301307365600505833826361448
473366885802277335667446522337018019430459886877456435239218771849065089654648151225152149229247624570290240
011805461250251375639841602397028068338336964174782787478506313283659749690689893913197224253183373394803017
305513051332238282621546401395510528410411049946663231477487252266952882315322216164061080603575828830723704
870001201203652773108052272396040997988966281474077100146256972718303309582172222168884968217117118120242182
858861101096697581763930839864542520122144687615544532721715179212591605275887996056825074530594757573611760
189200392339734699977075879963910911889045962929515519062066937888199181785736079076155576748355819786577593
464463439441574547747854403497965948726713943942160928496417700813756503213083039058781806620619351346959957
264271006002391406631551501326412274641662111094166167130139938987055147990008013883614616772708840800415484
287426680486057070590034194235291874902901343363279298393405674744244822133148636578637427041063869780733935
259345069961783916191188526436123119207908796740815730173171383353458722533450618629646643531549428466859843
692610
val: 720672939115284263402453820818762832834852922898104126106198159175416342857909599585443514566617472511
325492816649583558933925419824465482565589261254992980157245571746947951926900493538468470915895362354440364
640638827817793768837890004982192134745777299145742775586223483370779794971564273807991064664668823584656666
557560471455042084979875316369091116023923702612904046647622958956606567632548927912350349595597727729
test: 953974012026078955623630919015367371847906529633418507227169389480821812670661158379423421352319579701
488399695422288321705707306278865739995233755759467462314347741731970973634660494445706479186170176190380358
214255454527425485388308384932035036257420924917114102732691550452280249842714625650024073044945896128862047
607683517521682669138142552851376381000003048029724725608675386154220219801855161141949868880135429404
"""
_OFFICIAL = {frozenset(ids): part for part, text in re.findall(r"(\w+):([\d\s]+)", _OFFICIAL_LISTS)
             for t, s in re.findall(r"(\d{3})(\d{3})", "".join(text.split())) for ids in ((t, s), (t,), (s,))}


def video_identities(item_or_id: VideoItem | str) -> frozenset[str]:
    """The people in a video: ``"T_S"`` -> ``{"T", "S"}``; DFD's ``"01_02__walk__X"``: actors 01 and 02."""
    item = item_or_id if isinstance(item_or_id, VideoItem) else VideoItem(Path(), 0, "", str(item_or_id))
    if item.people:  # listed with its people (not FF++)
        return frozenset(item.people)
    vid = item.video_id  # DFD's ids are its actors "01".."28", never youtube ids
    actor = "__" in vid or item.method in (ACTORS_FOLDER, "DeepFakeDetection")
    people = [p for p in vid.split("__", 1)[0].split("_") if p] or [vid]
    return frozenset(f"actor:{p}" if actor else p for p in people)


def official_part(item_or_id: VideoItem | str) -> str | None:
    """``"train"``, ``"val"`` or ``"test"``: the official FF++ list of the video (None: DFD, other pairs)."""
    return _OFFICIAL.get(video_identities(item_or_id))


def identities_of(items: Iterable[VideoItem]) -> set[str]:
    return set().union(*(video_identities(i) for i in items))


def split_by_faces(items: Iterable[VideoItem], faces: set[str]) -> tuple[list[VideoItem], list[VideoItem]]:
    """``(unseen, seen)``: the videos of ``items`` sharing no identity with ``faces``, and those that do."""
    marked = [(i, bool(video_identities(i) & faces)) for i in items]
    return [i for i, seen in marked if not seen], [i for i, seen in marked if seen]


def count_identity_leaks(train: Iterable[VideoItem], other: Iterable[VideoItem]) -> int:
    """How many videos of ``other`` share an identity with a video of ``train`` (0: no face comes back)."""
    return len(split_by_faces(other, identities_of(train))[1])


def held_out_items(items: Iterable[VideoItem], split: Split) -> list[VideoItem]:
    """The videos of ``items`` (any method) with all faces on ``split``'s validation side (official: val)."""
    if split.strategy == "official":
        return [i for i in items if official_part(i) == "val"]
    val = identities_of(split.val)
    return [i for i in items if video_identities(i) <= val]


def _even_quotas(available: dict[str, int], total: int) -> dict[str, int]:
    """``total`` handed out one at a time to the key with the least so far that has more (ties: by name)."""
    quota = dict.fromkeys(sorted(available), 0)
    for _ in range(total):
        quota[min((k for k in quota if quota[k] < available[k]), key=lambda k: (quota[k], k))] += 1
    return quota


def _balanced(rng: random.Random, items: Sequence[VideoItem], n: int) -> list[VideoItem]:
    """Up to ``n`` reals and as many fakes of ``items``, the fakes even across their methods, shuffled."""
    reals, fakes = [i for i in items if i.label == 0], [i for i in items if i.label == 1]
    n = min(n, len(reals), len(fakes))
    quota = _even_quotas(Counter(i.method for i in fakes), n)
    drawn = rng.sample(reals, n) + [
        i for m, q in quota.items() for i in rng.sample([f for f in fakes if f.method == m], q)]
    rng.shuffle(drawn)
    return drawn


def identity_groups(items: Sequence[VideoItem]) -> np.ndarray:
    """A group number per video, videos sharing a face joined; numbered by first face (any order of items)."""
    from scipy.sparse import coo_matrix, csgraph
    faces = {face: n for n, face in enumerate(sorted(identities_of(items)))}  # numbered before the videos
    pairs = [(faces[f], len(faces) + k) for k, i in enumerate(items) for f in video_identities(i)]
    graph = coo_matrix(([1] * len(pairs), np.reshape(pairs, (-1, 2)).T), shape=(len(items) + len(faces),) * 2)
    return csgraph.connected_components(graph, directed=False)[1][len(faces):]


def _identity_split(items: Sequence[VideoItem], n_train: int, n_val: int,
                    rng: random.Random) -> tuple[list[VideoItem], list[VideoItem]]:
    """Groups of videos joined by shared faces, in random order, each filling train's quotas, else val's."""
    group = identity_groups(items)
    groups = [[items[k] for k in np.flatnonzero(group == g)] for g in dict.fromkeys(group)]  # by first video
    rng.shuffle(groups)
    kind = lambda i: i.method if i.label == 1 else ""  # noqa: E731  (the reals: "")
    fakes = _even_quotas(Counter(kind(i) for i in items if i.label == 1), (n_train + n_val) // 2)
    need = [Counter({"": n_train // 2, **_even_quotas(fakes, n_train - n_train // 2)})]
    need.append(Counter({"": (n_train + n_val) // 2, **fakes}) - need[0])
    sides: tuple[list[VideoItem], list[VideoItem]] = ([], [])
    for members in groups:  # each group to train while train needs any of it, else to val while val does
        by_kind = {k: [i for i in members if kind(i) == k] for k in sorted({kind(i) for i in members})}
        side, wants = next(((s, n) for s, n in zip(sides, need) if any(n[k] > 0 for k in by_kind)),
                           ([], Counter()))
        for k, videos in by_kind.items():
            side += rng.sample(videos, take := min(wants[k], len(videos)))
            wants[k] -= take
    if any(+wants for wants in need):
        left = [", ".join(f"{n} {k or 'real'}" for k, n in sorted((+s).items())) or "nothing" for s in need]
        raise ValueError(f"identity split of {n_train} train + {n_val} val cannot be met without sharing an "
                         f"identity across sides: after all {len(groups)} identity groups, train still "
                         f"needs {left[0]} and val still needs {left[1]}; lower n_train / n_val")
    for side in sides:
        rng.shuffle(side)
    return sides


def make_split(items: Sequence[VideoItem], n_train: int = 600, n_val: int = 800, seed: int = 0,
               strategy: str = "random") -> Split:
    """Balanced train / val (/ test) for ``seed``, fakes even across methods (README, Splits)."""
    if strategy not in SPLIT_STRATEGIES:
        raise ValueError(f"unknown split strategy {strategy!r}; expected one of {SPLIT_STRATEGIES}")
    rng = random.Random(seed)
    items = sorted(items, key=lambda i: str(i.path))  # the split depends on the files, not their listing
    if strategy == "official":  # each part balanced by sub-sampling; videos outside the lists left out
        unlisted = sum(official_part(i) is None for i in items)
        if unlisted:
            logger.info("official split: %d of %d videos are not in the official FF++ lists, left out",
                        unlisted, len(items))
        parts = {p: _balanced(rng, [i for i in items if official_part(i) == p], len(items))
                 for p in SPLIT_PARTS}
        if not parts["train"] or not parts["val"]:
            empty = " and ".join(p for p in ("train", "val") if not parts[p])
            raise ValueError(f"official split: no balanced real/fake videos for {empty} among {len(items)} "
                             "videos (the official lists hold youtube ids 000-999 and their pairs)")
        return Split(**parts, strategy=strategy, seed=seed)
    if n_train < 0 or n_val < 1 or (n_train + n_val) % 2:
        raise ValueError(f"n_train + n_val must be even and n_val >= 1 (balanced); got {n_train}, {n_val}")
    per_class = (n_train + n_val) // 2
    for label, name in enumerate(("real", "fake")):
        if sum(i.label == label for i in items) < per_class:
            raise ValueError(f"split of {n_train} train + {n_val} val needs {per_class} {name} videos, only "
                             f"{sum(i.label == label for i in items)} available; lower n_train / n_val")
    if strategy == "identity":
        return Split(*_identity_split(items, n_train, n_val, rng), strategy=strategy, seed=seed)
    pool = _balanced(rng, items, per_class)
    return Split(pool[:n_train], pool[n_train:], strategy=strategy, seed=seed)


def extracted_only(split: Split, train_cache: str | Path, cache: str | Path) -> Split:
    """``split`` less the videos with no clip in the cache (the training videos' in ``train_cache``), and as
    many of the other class for each one: a broken file cannot unbalance the classes."""
    rng = random.Random(split.seed)

    def kept(part: str) -> list[VideoItem]:
        items = getattr(split, part)
        ok = [i for i in items if cache_path(i, train_cache if part == "train" else cache).is_file()]
        gone = Counter(i.label for i in items) - Counter(i.label for i in ok)
        other = [i for i in ok if i.label == (gone[1] < gone[0])]  # the class that lost fewer
        drop = set(rng.sample(other, min(len(other), abs(gone[1] - gone[0]))))
        return [i for i in ok if i not in drop]
    split = replace(split, **{part: kept(part) for part in SPLIT_PARTS})
    if empty := [part for part in ("train", "val") if {i.label for i in getattr(split, part)} != {0, 1}]:
        raise ValueError(f"no real and fake videos left for {' and '.join(empty)} in {train_cache} and "
                         f"{cache}: see the extraction's failures")
    return split


def cache_dir_for(root: str | Path, num_frames: int = 8, size: int = 224, face_crop: bool = False,
                  num_clips: int = 1, stride: int | None = None) -> Path:
    """The cache folder for one extraction setting, so changing a knob never reuses stale clips."""
    clips = (f"_c{num_clips}" if num_clips > 1 else "") + (f"_w{stride}" if stride is not None else "")
    return Path(root) / f"f{num_frames}_s{size}_{FACE_METHOD if face_crop else 'full'}{clips}"


def cache_path(item: VideoItem, cache_dir: str | Path) -> Path:
    """``<method>/<video_id>.npy`` in ``cache_dir``, below its dataset's folder unless FF++ c23 (not c40)."""
    dataset = "" if item.dataset == FFPP else item.dataset
    return Path(cache_dir) / dataset / item.method / f"{item.video_id}.npy"


@dataclass
class ExtractionReport:
    """What ``extract_frames`` did, in the items' order; ``warnings``: e.g. a header's wrong frame count."""

    done: list[VideoItem] = field(default_factory=list)
    skipped: list[VideoItem] = field(default_factory=list)  # already in the cache
    failed: list[tuple[VideoItem, str]] = field(default_factory=list)  # with the cause
    faces: dict[VideoItem, FaceCounts] = field(default_factory=dict)  # with face crop: how crops were made
    warnings: list[tuple[VideoItem, str]] = field(default_factory=list)
    ok = property(lambda self: self.done + self.skipped)
    unsure = property(lambda self: [(item, counts) for item, counts in self.faces.items() if counts.unsure])

    def summary(self) -> str:
        """The counts, each failure's cause, and each video whose face crops were not all on one face."""
        faces = [f"{len(self.unsure)} of {len(self.faces)} videos unsure: the face not found on most frames",
                 *(f"{i.path}: {c.summary()}{' (unsure)' * c.unsure}" for i, c in self.faces.items()
                   if (c.borrowed, c.no_face, c.tracks) != (0, 0, 1))] if self.faces else []
        return "\n".join([f"decoded {len(self.done)}, already cached {len(self.skipped)}, failed "
                          f"{len(self.failed)}", *(cause for _, cause in self.failed), *faces])


def _extract_one(item: VideoItem, dest: Path, num_frames: int, size: int, face_crop: bool,
                 num_clips: int, stride: int | None) -> tuple[str | None, FaceCounts | None, list[str]]:
    """Decode one video into ``dest``: (cause or None, face counts, warnings); failed writes raise OSError."""
    try:
        clip = read_clip(item.path, num_frames, size, face_crop, num_clips, stride=stride)
    except Exception as exc:  # a bad video, or a decoder bug: it fails this video, not the run
        cause = str(exc) if isinstance(exc, VideoReadError) else f"{item.path}: {type(exc).__name__}: {exc}"
        return " ".join(cause.split()), None, []  # one line, whatever the library's message
    if clip.faces is not None:  # first, so that a cached clip always has its counts
        write_json(dest.with_suffix(".faces.json"), asdict(clip.faces))
    atomic_write(dest, lambda fh: np.save(fh, clip.frames), "the clip to the frame cache")
    return None, clip.faces, clip.warnings


def default_workers() -> int:
    """Extraction workers (and DataLoader workers): the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else max(1, os.cpu_count() or 1)


NO_PROCESSES = ("worker processes cannot start here, so ISOLATE_DECODING (isolate=True) decodes in threads "
                "instead: Python runs a script's top level again in each worker it starts, so a script that "
                "starts them must keep that code under 'if __name__ == \"__main__\":'")


def _process_pool(n: int) -> concurrent.futures.ProcessPoolExecutor:
    # spawn, not fork: forking a process that already runs OpenCV/torch threads can deadlock.
    return concurrent.futures.ProcessPoolExecutor(n, multiprocessing.get_context("spawn"),
                                                  _init_extract_worker)


def _processes_start() -> bool:
    with _process_pool(1) as pool:
        return pool.submit(int).exception() is None


def extract_frames(items: Sequence[VideoItem], cache_dir: str | Path, num_frames: int = 8, size: int = 224,
                   face_crop: bool = False, workers: int | None = None, num_clips: int = 1,
                   isolate: bool = False, stride: int | None = None) -> ExtractionReport:
    """Each video not cached yet to ``cache_path``, ``([num_clips,] T, size, size, 3)`` uint8, all its clips
    from one decode; ``isolate``: in processes, so that a decoder crash fails one video (default: threads)."""
    dests = {item: cache_path(item, cache_dir) for item in items}
    cached = {item for item, dest in dests.items() if dest.is_file()}
    faces = {i: FaceCounts(**json.loads(p.read_text(encoding="utf-8"))) for i in cached  # the saved counts
             if face_crop and (p := dests[i].with_suffix(".faces.json")).is_file()}
    outcomes = dict.fromkeys(item for item in dests if item not in cached)  # (cause, warnings) as they finish
    workers = max(1, min(default_workers() if workers is None else workers, len(outcomes)))
    bar = _progress(total=len(outcomes), desc="extracting frames", unit="video", disable=not outcomes)
    settings, opencv_threads = (num_frames, size, face_crop, num_clips, stride), cv2.getNumThreads()

    def record(item: VideoItem, cause: str | None, counts: FaceCounts | None, warnings: list[str]) -> None:
        bar.update()
        outcomes[item], faces[item] = (cause, warnings), counts
        if cause is not None:
            logger.warning("skipped %s", cause)
        for warning in warnings if isolate else []:  # a process logs to its own stderr: say it here
            logger.warning(warning)

    def run(jobs: list[VideoItem], n: int) -> list[VideoItem]:
        """``jobs`` on ``n`` workers, ``n`` at a time; returns those undone when a worker process died."""
        left, running = list(jobs), {}
        pool = _process_pool(n) if isolate else concurrent.futures.ThreadPoolExecutor(
            n, "scarlet-extract", _init_extract_worker if n > 1 else None)
        with pool:  # on a stop the running videos finish their writes; none other starts
            while left or running:
                while left and len(running) < n:
                    item = left.pop(0)
                    with contextlib.suppress(BrokenProcessPool):  # a broken pool: the rest come back undone
                        running[pool.submit(_extract_one, item, dests[item], *settings)] = item
                for future in concurrent.futures.wait(running, return_when="FIRST_COMPLETED").done:
                    if not isinstance(future.exception(), BrokenProcessPool):
                        record(running[future], *future.result())
                    del running[future]
        return [item for item in jobs if outcomes[item] is None]

    todo = list(outcomes)
    cv2.setNumThreads(1 if workers > 1 else opencv_threads)  # process-wide: one per decoding worker
    try:
        while todo:  # after a worker process died, the first video undone, retried alone, shows if it was why
            todo = run(todo, workers)
            if todo and run(todo[:1], 1):
                if not (isolate := _processes_start()):  # no process starts here: not the video's fault
                    logger.warning(NO_PROCESSES)
                    continue
                record(todo[0], f"{todo[0].path}: the decoding process died (a crash in the native decoder, "
                                "or killed for memory)", None, [])
            todo = todo[1:]
    except OSError as exc:  # the cache cannot be written: stop, rather than fail every video
        done = sum(outcome is not None and outcome[0] is None for outcome in outcomes.values())
        raise OSError(exc.errno, f"{exc.strerror or exc}. Extraction stopped after {done} of {len(outcomes)} "
                                 "videos; the clips written are kept, a rerun resumes") from exc
    finally:
        cv2.setNumThreads(opencv_threads)
        bar.close()
    return ExtractionReport(done=[i for i, (cause, _) in outcomes.items() if cause is None],
                            skipped=[i for i in dests if i in cached],
                            failed=[(i, cause) for i, (cause, _) in outcomes.items() if cause is not None],
                            faces={i: faces[i] for i in dests if faces.get(i) is not None},
                            warnings=[(i, w) for i, (_, warnings) in outcomes.items() for w in warnings])


class FrameClipDataset(Dataset):
    """``(([K,] T, C, H, W) float32, label)``; ``augment`` None: as cached, else one window (torch's RNG)."""

    def __init__(self, items: Sequence[VideoItem], cache_dir: str | Path,
                 mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD,
                 augment: str | bool | None = None) -> None:
        if augment is not None and augment not in CHOICES["AUGMENT"]:
            raise ValueError(f"augment {augment!r}: expected None, False or 'none', True or 'flip', 'strong'")
        self.items, self.mean, self.std, self.augment = list(items), mean, std, augment
        self.paths = [cache_path(i, cache_dir) for i in self.items]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} clips missing from the cache (run extract_frames first):"
                                    f" {missing[:3]}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        clip = np.load(self.paths[index], mmap_mode="r")  # a training clip reads only the window drawn
        clip = clip[int(torch.randint(len(clip), ()))] if clip.ndim > 4 and self.augment is not None else clip
        flip = self.augment in (True, "flip") and bool(torch.rand(()) < 0.5)
        if self.augment == "strong":
            clip = augment_clip(clip, np.random.default_rng(torch.randint(2**62, ()).item()))
        return clip_to_tensor(np.array(clip), self.mean, self.std, flip), self.items[index].label


def augment_clip(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB, one draw for every frame (README, Recipes: DeepfakeBench, GenD,
    RealForensics): crop, flip, brightness/contrast, blur, JPEG, erasing; BGR inside, for cv2."""
    _, h, w, _ = frames.shape
    ch, cw = (np.array([h, w]) * (rng.uniform(0.85, 1.0) if rng.random() < 0.5 else 1)).round().astype(int)
    y, x = rng.integers(h - ch + 1), rng.integers(w - cw + 1)
    bgr = frames[:, y:y + ch, x:x + cw, ::-1][:, :, ::rng.choice((-1, 1))]
    out = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in bgr])
    if rng.random() < 0.5:  # contrast x 0.9-1.1, brightness +-10 % of the range
        out = np.clip(out * rng.uniform(0.9, 1.1) + 255 * rng.uniform(-0.1, 0.1), 0, 255).astype(np.uint8)
    if rng.random() < 0.1:
        sigma = rng.uniform(0.1, 2.0)
        out = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in out])
    if rng.random() < 0.5:
        quality = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 101))]
        out = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, quality)[1], cv2.IMREAD_COLOR) for f in out])
    if rng.random() < 0.5:  # one box of 2-33 % of the area, noise-filled, as torchvision's RandomErasing
        area, ratio = rng.uniform(0.02, 0.33), np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
        eh, ew = (min(n, round((h * w * area * r) ** 0.5)) for n, r in ((h, ratio), (w, 1 / ratio)))
        y, x = rng.integers(h - eh + 1), rng.integers(w - ew + 1)
        out[:, y:y + eh, x:x + ew] = rng.integers(256, size=(eh, ew, 3))
    return np.ascontiguousarray(out[..., ::-1])


class PairedSampler(Sampler[int]):
    """A real video followed by one of its own fakes, the rest two by two, in ``generator``'s random order: an
    even batch size keeps each pair in one batch. FF++ ``T_S`` is ``T``'s; DFDC's share ``people``."""

    def __init__(self, items: Sequence[VideoItem], generator: torch.Generator | None = None) -> None:
        self.items, self.generator = list(items), generator
        self.shows = [(v.dataset, v.people or v.video_id.split("_")[0]) for v in self.items]  # FF++: T of T_S

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(len(self.items), generator=self.generator).tolist()
        fake_of = {self.shows[i]: i for i in reversed(order) if self.items[i].label}  # the first one in order
        pairs = [j for i in order if not self.items[i].label and self.shows[i] in fake_of
                 for j in (i, fake_of.pop(self.shows[i]))]
        seq = list(dict.fromkeys(pairs + order))  # the pairs, then the rest two by two, an odd one last
        units = torch.randperm(len(seq) // 2, generator=self.generator).tolist() + [len(seq) // 2]
        return iter([i for u in units for i in seq[2 * u:2 * u + 2]])


def clip_to_tensor(frames: np.ndarray, mean: Sequence[float] | torch.Tensor,
                   std: Sequence[float] | torch.Tensor, flip: bool = False) -> torch.Tensor:
    """``(..., T, H, W, 3)`` uint8 -> ``(..., T, 3, H, W)`` float32 ``(x / 255 - mean) / std``, in place."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3)
    x = x.flip(-1) if flip else x
    mean, std = (torch.as_tensor(v, dtype=torch.float32).view(3, 1, 1) for v in (mean, std))
    return torch.empty(x.shape, dtype=torch.float32).copy_(x).div_(255.0).sub_(mean).div_(std)


# -- Demo data: a synthetic real/fake dataset, so the notebook runs with nothing downloaded ----
# A real clip pans matplotlib's Grace Hopper portrait; a fake ``T_S`` replays real T's pan with S's mirrored
# face blended in through a soft ellipse that jitters in place, size and colour frame to frame (the flicker).


def make_synthetic_dataset(root: str | Path, n_per_class: int = 24, num_frames: int = 32, size: int = 96,
                           fps: int = 16, seed: int = 0) -> Path:
    """``root/original/NNN.mp4``, ``root/Deepfakes/T_S.mp4`` where missing, by ``seed``; others refused."""
    if not 2 <= n_per_class <= 1000:
        raise ValueError("n_per_class must be in [2, 1000] (3-digit ids, source != target)")
    root, n, rng = Path(root), n_per_class, np.random.default_rng(seed)
    order = rng.permutation(n).tolist()  # faces swapped in pairs as in FF++ (a_b, b_a); an odd one: a 3-cycle
    src_of = {order[j]: order[j ^ 1] for j in range(n - n % 2)} | (
        {order[-2]: order[-1], order[-1]: order[-3]} if n % 2 else {})
    paths = [root / REAL_FOLDER / f"{i:03d}.mp4" for i in range(n)] + [
        root / "Deepfakes" / f"{i:03d}_{src_of[i]:03d}.mp4" for i in range(n)]
    settings = {"n_per_class": n, "num_frames": num_frames, "size": size, "fps": fps, "seed": seed}
    manifest = root / ".synthetic.json"  # other settings' videos would join the identity groups: refused
    made_with = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else settings
    stray = sorted({p for d in (REAL_FOLDER, "Deepfakes") if (root / d).is_dir()
                    for p in _video_files(root / d)} - set(paths))
    if stray or made_with != settings:
        raise ValueError(f"{root}: holds another synthetic dataset ({stray[0] if stray else made_with}), not "
                         f"the one for {settings}: delete it, or write this one to another folder")
    write_json(manifest, settings)
    from matplotlib import cbook  # its public-domain portrait of Grace Hopper

    portrait = cv2.imdecode(np.fromfile(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), np.uint8),
                            cv2.IMREAD_COLOR).astype(np.float32)
    gens, t = rng.spawn(2 * n), np.arange(num_frames)[:, None] / 32  # drawn up front: a rerun completes a run
    # Each real's look: mirrored or not, its tint, its zoom, and its face's centre on each frame (px).
    looks = [(g.random() < 0.5, g.uniform(0.85, 1.15, 3), g.uniform(1.0, 1.25), size * (
        0.5 + 0.04 * np.sin(2 * np.pi * g.uniform(0.1, 0.7, 2) * t + g.uniform(0, 2 * np.pi, 2))
        + g.uniform(-0.04, 0.04, 2))) for g in gens[:n]]
    yy, xx = np.mgrid[0:size, 0:size]

    def place(flip: bool, at: np.ndarray, zoom: float) -> np.ndarray:  # the face (222 px at 266, 216) to at
        s = zoom * size / 444
        m = np.array([[-s if flip else s, 0, at[0] + (s if flip else -s) * 266], [0, s, at[1] - s * 216]])
        return cv2.warpAffine(portrait, m, (size, size), borderMode=cv2.BORDER_REFLECT)

    for k, path in [(k, p) for k, p in enumerate(paths) if not p.exists()]:  # each video not written yet
        (flip, tint, zoom, centres), g, frames = looks[k % n], gens[k], []
        face_flip = looks[src_of[k - n]][0] if k >= n else None  # a fake T_S: S's face, mirrored as in S
        for at in centres:
            frame = place(flip, at, zoom)
            if face_flip is not None:  # jittered in place and size: the flicker, exaggerated for a tiny model
                face = place(face_flip, at + g.normal(0, size / 40, 2), g.normal(1, 0.04) * zoom)
                face = cv2.GaussianBlur(face, (0, 0), size / 80) * g.normal(1, 0.05, 3) + g.normal(0, 8, 3)
                r = np.hypot((xx - at[0]) / (0.2 * size * zoom), (yy - at[1]) / (0.25 * size * zoom))
                alpha = np.clip(4 - 4 * r, 0, 1)[..., None]  # a soft ellipse, 1 inside
                frame = alpha * face + (1 - alpha) * frame
            frames.append(np.clip(frame * tint + g.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8))
        tmp = path.with_name(f".{path.stem}.tmp.mp4")  # hidden, renamed when whole; the suffix picks mp4
        tmp.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
        if not writer.isOpened():
            raise OSError(f"{tmp}: cv2.VideoWriter cannot write an mp4v video here")
        for frame in frames:  # rendered before the writer opened: a rendering error leaves none open
            writer.write(frame)
        writer.release()
        os.replace(tmp, path)
    return root


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "scarlet-checkpoint-v2"
FACE_METHOD = "haar-track"  # what the Faces section does; a checkpoint trained on other crops is refused
ORIGINAL_TRAIN_NOTE = ("its training videos are unknown, so any FaceForensics++ number for it may include "
                       "faces it trained on (the original run used 1,400 of the 2,000 Deepfakes/original "
                       "videos)")


@dataclass(frozen=True)
class Preprocessing:
    """How a model's inputs are made (the defaults: the original run's); it travels inside ``Scarlet.pt``."""

    num_frames: int = 8
    size: int = 224
    face_crop: bool = False
    mean: tuple[float, ...] = KINETICS_MEAN
    std: tuple[float, ...] = KINETICS_STD
    sampling: str = "spread"  # "spread": segments first to last; "window": frames ``frame_stride`` apart
    face_margin: float = FACE_MARGIN
    face_method: str = FACE_METHOD
    frame_stride: int | None = None
    stride = property(lambda self: self.frame_stride if self.sampling == "window" else None)  # read_clip's

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Preprocessing:
        """The record ``asdict`` made; ``CheckpointError`` where this module makes inputs otherwise."""
        obj = {**obj, "sampling": "spread"} if obj.get("sampling") == "uniform" else obj  # the older name
        p = cls(**{k: tuple(v) if k in ("mean", "std") else v for k, v in obj.items()
                   if k in cls.__dataclass_fields__})
        known = p.sampling == "spread" or isinstance(p.stride, int) and p.stride >= 1
        if not known or (p.face_margin, p.face_method) != (FACE_MARGIN, FACE_METHOD):
            raise CheckpointError(f"the checkpoint's inputs were made another way (sampling {p.sampling!r}, "
                                  f"stride {p.frame_stride}, face crop {p.face_method!r} with margin "
                                  f"{p.face_margin}): use the scarlet_utils.py it was trained with")
        return p

    def differences(self, config: dict[str, Any]) -> list[str]:
        """``"FACE_CROP: True (the configuration says False)"`` for each knob that disagrees."""
        mine = {"NUM_FRAMES": self.num_frames, "SIZE": self.size, "FACE_CROP": self.face_crop,
                "SAMPLING": self.sampling}
        mine |= {"FRAME_STRIDE": self.stride} if self.stride and config.get("SAMPLING") == "window" else {}
        return [f"{k}: {v!r} (the configuration says {config[k]!r})" for k, v in mine.items()
                if config.get(k, v) != v]


def _from_pretrained(cls: Any, source: Any, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(str(source), **kwargs)
    except OSError as exc:
        raise OSError(f"{source}: cannot download it ({type(exc).__name__}: {exc}). On Kaggle, turn "
                      "Internet on (Settings > Internet), or attach the model as a Kaggle Model or dataset: "
                      "a copy under /kaggle/input is found by itself, or set MODEL to its folder") from exc


def build_model(source: Any = DEFAULT_MODEL, num_labels: int = 2, *, sdpa: bool = True,
                gradient_checkpointing: bool = False, drop_path: float | None = None) -> torch.nn.Module:
    """TimeSformer with a new ``num_labels``-way head (``Real``/``Fake``) from a hub id, folder or config."""
    from transformers import TimesformerConfig, TimesformerForVideoClassification as Model
    names = CLASS_NAMES if num_labels == 2 else [f"LABEL_{i}" for i in range(num_labels)]
    labels = {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}
    if isinstance(source, TimesformerConfig):
        model = Model(TimesformerConfig.from_dict({**source.to_dict(), **labels}))
    else:  # the k400 400-class head is made afresh; every other weight is copied
        model = _from_pretrained(Model, source, ignore_mismatched_sizes=True, **labels)
    if gradient_checkpointing:  # non-reentrant: frozen inputs need no requires_grad trick (v5's name, v4's)
        enable = getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)
        enable({"use_reentrant": False})
    if drop_path is not None:  # stochastic depth, 0 rising to drop_path over the layers; None: the config's
        from transformers.models.timesformer import modeling_timesformer as tm
        drop = getattr(tm, "TimesformerDropPath", None) or tm.TimeSformerDropPath  # v5's name, v4's
        for i, layer in enumerate(model.timesformer.encoder.layer):  # not the config: v5 types it int
            layer.drop_path = drop(drop_path * i / max(1, model.config.num_hidden_layers - 1))
    return use_sdpa_attention(model) if sdpa else model


def _sdpa_forward(self: Any, hidden_states: torch.Tensor, output_attentions: bool = False) -> tuple:
    """Stock attention through ``scaled_dot_product_attention``, without the ``(B, heads, N, N)`` weights."""
    if output_attentions:
        return type(self).__base__.forward(self, hidden_states, True)
    b, n, width = hidden_states.shape  # q, k, v: (B, heads, N, head width)
    q, k, v = self.qkv(hidden_states).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    context = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0, scale=self.scale)
    return (context.transpose(1, 2).reshape(b, n, width),)


@lru_cache(maxsize=None)
def __getattr__(name: str) -> type:
    """PEP 562: ``SdpaTimesformerSelfAttention`` made on first use, so decoding workers skip transformers."""
    if name != "SdpaTimesformerSelfAttention":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from transformers.models.timesformer.modeling_timesformer import TimesformerSelfAttention
    return type(name, (TimesformerSelfAttention,), {"forward": _sdpa_forward, "__module__": __name__})


def use_sdpa_attention(model: torch.nn.Module) -> torch.nn.Module:
    """Each stock ``TimesformerSelfAttention`` of ``model`` made the fused one, in place (same weights)."""
    sdpa = __getattr__("SdpaTimesformerSelfAttention")
    for module in model.modules():
        if type(module) is sdpa.__base__:
            module.__class__ = sdpa
    return model


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside ``DataParallel`` wrappers."""
    return unwrap(model.module) if isinstance(model, torch.nn.DataParallel) else model


def wrap_multi_gpu(model: torch.nn.Module) -> torch.nn.Module:
    """``DataParallel`` where more than one GPU is visible (Kaggle's "GPU T4 x2"), else ``model``."""
    if isinstance(model, torch.nn.DataParallel) or torch.cuda.device_count() <= 1:
        return model
    return torch.nn.DataParallel(model.to(torch.device("cuda", 0)))


def normalization_for(source: Any = DEFAULT_MODEL) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of the source's image processor (the k400 values for a config or a bare folder)."""
    if not isinstance(source, (str, Path)) or (
            Path(source).is_dir() and not (Path(source) / "preprocessor_config.json").is_file()):
        return KINETICS_MEAN, KINETICS_STD
    from transformers import AutoImageProcessor
    processor = _from_pretrained(AutoImageProcessor, source)
    return tuple(processor.image_mean), tuple(processor.image_std)


def tiny_config(num_frames: int = 8, image_size: int = 64, hidden_size: int = 64, num_layers: int = 2) -> Any:
    """A small random TimeSformer for the CPU demo and tests; initializer_range ~1/sqrt(width), as HF's 0.02
    (made for width 768) leaves a width-64 model ignoring its input."""
    from transformers import TimesformerConfig
    return TimesformerConfig(image_size=image_size, patch_size=16, num_frames=num_frames,
                             hidden_size=hidden_size, num_hidden_layers=num_layers, initializer_range=0.1,
                             num_attention_heads=max(1, hidden_size // 32), intermediate_size=hidden_size * 4)


def resolve_model_knob(name: str, num_frames: int = 8, size: int = 224) -> Any:
    """The ``MODEL`` knob as ``build_model`` takes it: ``"tiny"`` becomes ``tiny_config``, else as is."""
    return tiny_config(num_frames, size) if name == "tiny" else name


def check_input_size(model: torch.nn.Module, num_frames: int, size: int) -> None:
    """``ValueError`` unless the model is built for ``num_frames`` x ``size`` px clips."""
    cfg = unwrap(model).config
    if (cfg.num_frames, cfg.image_size) != (num_frames, size):
        raise ValueError(f"the model is built for {cfg.num_frames} frames at {cfg.image_size} px, the data "
                         f"has {num_frames} frames at {size} px: set NUM_FRAMES / SIZE to match the model")


def save_checkpoint(model: torch.nn.Module, path: str | Path, preprocessing: Preprocessing,
                    split: Split | None = None, data_root: str | Path | None = None, **extra: Any) -> Path:
    """``Scarlet.pt``: weights, config (loads offline), preprocessing, split (relative paths), ``extra``."""
    payload = _to_python({
        "format": CHECKPOINT_FORMAT, "config": unwrap(model).config.to_json_string(), "extra": extra,
        "state_dict": {k: v.cpu() for k, v in unwrap(model).state_dict().items()},
        "preprocessing": asdict(preprocessing), "split": split and split.to_json(data_root)})
    return atomic_write(path, lambda fh: torch.save(payload, fh), "the checkpoint")


def _load(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load`` of tensors and plain values only; ``mmap`` leaves the weights on disk until read."""
    import pickle
    import zipfile
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:  # torch's message advises weights_only=False, even for a text file
        raise CheckpointError(f"{path}: refused: the file holds Python objects other than tensors and plain "
                              "values (loading those could run code), or is not a PyTorch checkpoint at all"
                              ) from exc


def _is_scarlet(obj: Any) -> bool:  # v1 kept its preprocessing among the extras, and no split
    return isinstance(obj, dict) and obj.get("format") in (CHECKPOINT_FORMAT, "scarlet-checkpoint-v1")


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None, source: Any = None, *,
                    sdpa: bool = True, gradient_checkpointing: bool = False,
                    drop_path: float | None = None) -> torch.nn.Module:
    """``Scarlet.pt`` into ``model`` or one rebuilt from its config; a plain state dict (the original run's)
    into ``model``, or one of ``source`` (a ``TimesformerConfig``), else of k400's ``TimesformerConfig()``."""
    from transformers import TimesformerConfig
    obj, config = _load(path), source if isinstance(source, TimesformerConfig) else TimesformerConfig()
    if scarlet := _is_scarlet(obj):
        obj, config = obj["state_dict"], TimesformerConfig.from_dict(json.loads(obj["config"]))
    elif not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise CheckpointError(f"{path}: not a Scarlet checkpoint or a state dict (found "
                              f"{type(obj).__name__})")
    if model is None:
        model = build_model(config, config.num_labels if scarlet else 2, sdpa=sdpa,
                            gradient_checkpointing=gradient_checkpointing, drop_path=drop_path)
    unwrap(model).load_state_dict({k.removeprefix("module."): v for k, v in obj.items()})  # DataParallel's
    return model


@dataclass
class CheckpointInfo:
    """What ``Scarlet.pt`` records beside its weights; ``split`` (JSON, relative paths) is None if unknown."""

    path: Path
    preprocessing: Preprocessing
    split: dict[str, Any] | None
    extra: dict[str, Any]
    plain_state_dict: bool

    def train_faces(self) -> set[str] | None:
        """The faces of its training videos and of those it was fine-tuned from; None where none is known."""
        own = None if self.split is None else identities_of(Split.from_json(self.split).train)
        earlier = (self.extra.get("init_from") or {}).get("train_faces")
        return None if own is None and earlier is None else (own or set()) | set(earlier or ())

    def trained_on(self) -> set[str]:
        """The datasets it and the checkpoint it was fine-tuned from trained on (unrecorded: FF++)."""
        own = {r.get("dataset", FFPP) for r in self.split["train"]} if self.split else {FFPP}
        return own | set((self.extra.get("init_from") or {}).get("trained_on", ()))

    def init_from_record(self) -> dict[str, Any]:
        """What a model fine-tuned from it records (``save_checkpoint(init_from=...)``) for leak checks."""
        faces = self.train_faces()
        return {"checkpoint": str(self.path), "train_faces": None if faces is None else sorted(faces),
                "trained_on": sorted(self.trained_on())}


def checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The record inside ``Scarlet.pt``, read without reading the weights."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no checkpoint here: train one (TRAIN on), or copy a Scarlet.pt here")
    if not _is_scarlet(obj := _load(path, mmap=True)):
        return CheckpointInfo(Path(path), Preprocessing(), None, {}, plain_state_dict=True)
    prep = Preprocessing.from_dict(obj.get("preprocessing", obj["extra"]))  # v1 kept it among the extras
    return CheckpointInfo(Path(path), prep, obj.get("split"), obj["extra"], plain_state_dict=False)


def export_pretrained(model: torch.nn.Module, out_dir: str | Path, preprocessing: Preprocessing) -> Path:
    """A ``from_pretrained`` folder, written beside ``out_dir``, renamed onto it (replacing exports only)."""
    import transformers
    out_dir, size = Path(out_dir), preprocessing.size
    others = out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "config.json").is_file()
    if out_dir.is_file() or others:  # hidden files too: a folder of anything but an export is kept
        raise FileExistsError(f"{out_dir}: exists and is not a model export; refusing to replace it")
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed export left
    unwrap(model).save_pretrained(tmp)
    pil = getattr(transformers, "VideoMAEImageProcessorPil", None)  # PIL-backed: it needs no torchvision
    (pil or transformers.VideoMAEImageProcessor)(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size},
        image_mean=list(preprocessing.mean), image_std=list(preprocessing.std)).save_pretrained(tmp)
    for f in tmp.iterdir():  # the umask's mode, as config.json has it: safetensors writes 0600
        f.chmod(stat.S_IMODE((tmp / "config.json").stat().st_mode))
    shutil.rmtree(out_dir, ignore_errors=True)
    return tmp.rename(out_dir)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------

TRAINING_STATE_FORMAT = "scarlet-training-state-v3"


def cpu_supports_bf16() -> bool:
    """Whether this CPU does bf16 natively (AVX512-BF16, AMX); emulated bf16 is slower than fp32."""
    return any(getattr(torch.cpu, p, bool)() for p in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def precision(device: torch.device | str, training: bool = False, amp: bool = True) -> torch.dtype | None:
    """The autocast dtype (None: fp32): on GPUs bf16, else fp16 (a T4); on CPUs bf16 to score where native."""
    kind = torch.device(device).type if amp else None
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if kind == "cpu" and not training and cpu_supports_bf16() else None


def make_grad_scaler(device: torch.device | str, amp: bool = True) -> torch.amp.GradScaler:
    """A GradScaler, enabled where training runs in fp16 (its small range underflows gradients)."""
    fp16 = precision(device, training=True, amp=amp) is torch.float16
    return torch.amp.GradScaler(torch.device(device).type, enabled=fp16)


def training_step(model: torch.nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor,
                  optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None,
                  dtype: torch.dtype | None = None, *, step: bool = True, grad_accum: int = 1,
                  label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on ``(B, T, C, H, W)`` under ``dtype`` autocast, the loss in fp32: ``(loss, logits)``; the
    gradients of ``loss / grad_accum`` add up until a ``step`` updates the weights and zeroes them."""
    with torch.autocast(pixel_values.device.type, dtype=dtype, enabled=dtype is not None):
        logits = model(pixel_values=pixel_values).logits
    loss = torch.nn.functional.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    scaler = scaler or torch.amp.GradScaler(enabled=False)
    scaler.scale(loss / grad_accum).backward()
    if step:
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    return loss, logits


def train_one_epoch(model: torch.nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    optimizer: torch.optim.Optimizer, device: torch.device | str,
                    scaler: torch.amp.GradScaler | None = None, amp: bool = True, *,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, grad_accum: int = 1,
                    label_smoothing: float = 0.0) -> dict[str, float]:
    """One pass over ``loader`` at ``precision(device, training=True)``: mean (smoothed) loss and accuracy per
    clip; the optimizer, then ``scheduler``, step every ``grad_accum`` batches and after the last (by len)."""
    device, total_loss, correct, seen = torch.device(device), 0.0, 0, 0
    dtype, scaler = precision(device, training=True, amp=amp), scaler or make_grad_scaler(device, amp)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with _progress(iterable=loader, desc="train", unit="batch", leave=False) as bar:
        for i, (x, y) in enumerate(loader, 1):  # an iterator the bar held would pass to next epoch's workers
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            last = len(loader) if grad_accum > 1 else i  # len only where accumulating: any iterable else
            group = min(grad_accum, last - (i - 1) // grad_accum * grad_accum)  # batches in this step
            step = i % grad_accum == 0 or i == last
            loss, logits = training_step(model, x, y, optimizer, scaler, dtype, step=step, grad_accum=group,
                                         label_smoothing=label_smoothing)
            if step and scheduler is not None:
                scheduler.step()
            total_loss, seen = total_loss + loss.item() * len(y), seen + len(y)
            correct += (logits.argmax(-1) == y).sum().item()
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
            bar.update()
    if seen == 0:
        raise ValueError("the training loader yielded no batches")
    return {"loss": total_loss / seen, "accuracy": correct / seen}


def selection_score(metrics: dict[str, Any], select_by: str = "accuracy") -> list[float]:
    """The best epoch's key for ``>``: ``[accuracy]``; "auc": ``[ROC AUC (None: -inf), -log loss]``."""
    if select_by == "accuracy":
        return [metrics["accuracy"]]
    if select_by == "auc":
        return [-np.inf if metrics["roc_auc"] is None else metrics["roc_auc"], -metrics["log_loss"]]
    raise ValueError(f"SELECT_BY {select_by!r}: expected 'accuracy' or 'auc'")


def save_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scaler: torch.amp.GradScaler | None, epoch: int,
                        best_score: list[float] | float | None, history: Sequence[dict[str, Any]], *,
                        generator: torch.Generator | None = None,
                        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, **extra: Any) -> Path:
    """All that continuing after ``epoch`` needs, random states too, as one dict; ``extra``: the run key."""
    rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all(),
           "generator": generator and generator.get_state()}
    state = {"format": TRAINING_STATE_FORMAT, "rng": rng, "optimizer": optimizer.state_dict(),
             "scaler": scaler and scaler.state_dict(), "model": unwrap(model).state_dict(),
             "scheduler": scheduler and scheduler.state_dict(),
             **_to_python({"epoch": epoch, "best_score": best_score, "history": history, "extra": extra})}
    return atomic_write(path, lambda fh: torch.save(state, fh), "the training state")


def load_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scaler: torch.amp.GradScaler | None = None, *,
                        generator: torch.Generator | None = None, match: dict[str, Any] | None = None,
                        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> dict[str, Any]:
    """Restore ``path`` into the objects given: ``{epoch, best_score, history, extra}``. ``CheckpointError``
    (nothing changed) for no training state or an ``extra`` (the run key) not ``match``'s."""
    if not isinstance(obj := _load(path), dict) or obj.get("format") != TRAINING_STATE_FORMAT:
        found = "a Scarlet.pt model checkpoint: load it with load_checkpoint" if _is_scarlet(obj) else \
            f"found {isinstance(obj, dict) and obj.get('format') or type(obj).__name__}"
        raise CheckpointError(f"{path}: not a Scarlet training state ({found})")
    for key, want in (match or {}).items():
        if (have := obj["extra"].get(key)) != (want := _to_python(want)):  # name the knobs that differ
            knobs = sorted(have | want) if isinstance(have, dict) and isinstance(want, dict) else []
            detail = "; ".join(f"{k}: saved {have.get(k)!r:.40}, now {want.get(k)!r:.40}" for k in knobs
                               if have.get(k) != want.get(k))
            raise CheckpointError(f"{path}: saved by a run with other {key}" + (detail and f" ({detail})"))
    unwrap(model).load_state_dict(obj["model"])
    optimizer.load_state_dict(obj["optimizer"])
    if scaler is not None and obj["scaler"]:
        scaler.load_state_dict(obj["scaler"])
    if scheduler is not None and obj["scheduler"]:
        scheduler.load_state_dict(obj["scheduler"])
    rng, gpus = obj["rng"], torch.cuda.device_count()
    if len(rng["cuda"]) != gpus:
        logger.warning("%s: saved with %d GPUs, resumed with %d: the GPU random states differ", path,
                       len(rng["cuda"]), gpus)
    torch.set_rng_state(rng["torch"])
    torch.cuda.set_rng_state_all(rng["cuda"][:gpus])
    if generator is not None and rng["generator"] is not None:
        generator.set_state(rng["generator"])
    return {key: obj[key] for key in ("epoch", "best_score", "history", "extra")}


def resume_training(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler | None, generator: torch.Generator | None,
                    run_key: dict[str, Any], resume: bool = True, *,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    ) -> tuple[list[dict], list[float], int, str]:
    """``(history, best_score, first_epoch, what happened)``: after the saved epoch where ``path`` holds this
    run's state (the same ``run_key``), else from epoch 1 with ``[]``, below any ``selection_score``."""
    if not resume or not Path(path).is_file():
        return [], [], 1, "training from the start" + ("" if resume else " (RESUME is off)")
    try:
        saved = load_training_state(path, model, optimizer, scaler, generator=generator,
                                    match={"run_key": run_key}, scheduler=scheduler)
    except CheckpointError as exc:  # another run's state: nothing was loaded
        return [], [], 1, f"not resuming, training from the start: {exc}"
    return (saved["history"], saved["best_score"], saved["epoch"] + 1, f"resuming after epoch "
            f"{saved['epoch']} (best validation score so far {[round(s, 4) for s in saved['best_score']]})")


@torch.no_grad()
def _p_fake(model: torch.nn.Module, x: torch.Tensor, device: torch.device | str, amp: bool) -> torch.Tensor:
    """P(fake) of each clip of ``(..., T, C, H, W)``, flat, on the CPU; the model in eval mode."""
    dtype, device = precision(device, amp=amp), torch.device(device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        logits = model.eval()(pixel_values=x.reshape(-1, *x.shape[-4:]).to(device, non_blocking=True)).logits
    return logits.float().softmax(-1)[:, 1].cpu()


def predict_probs(model: torch.nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
                  device: torch.device | str, amp: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_prob)``: labels and P(fake) per video; batches ``(B, K, T, C, H, W)`` average K clips."""
    y_true, y_prob = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    with _progress(iterable=loader, desc="predict", unit="batch", leave=False) as bar:
        for pixel_values, labels in loader:
            y_prob.append(_p_fake(model, pixel_values, device, amp).view(len(labels), -1).mean(1).numpy())
            y_true.append(np.asarray(labels))
            bar.update()
    return np.concatenate(y_true).astype(np.int64), np.concatenate(y_prob)


def evaluate_items(model: torch.nn.Module, items: Sequence[VideoItem], cache_root: str | Path,
                   prep: Preprocessing, device: torch.device | str, num_clips: int = 1, batch_size: int = 2,
                   workers: int = 0, amp: bool = True,
                   isolate: bool = False) -> tuple[ExtractionReport, np.ndarray, np.ndarray]:
    """``items`` decoded as ``prep`` says, ``num_clips`` clips each, and scored: ``(report, y_true, y_prob)``
    in the order of ``report.ok``; none readable: ``FileNotFoundError``."""
    cache = cache_dir_for(cache_root, prep.num_frames, prep.size, prep.face_crop, num_clips, prep.stride)
    report = extract_frames(items, cache, prep.num_frames, prep.size, prep.face_crop, workers, num_clips,
                            isolate, prep.stride)
    if not report.ok:
        raise FileNotFoundError(f"none of the {len(items)} videos could be read (e.g. {report.failed[0][1]})"
                                if report.failed else "no videos to score")
    clips = FrameClipDataset(report.ok, cache, prep.mean, prep.std)
    loader = torch.utils.data.DataLoader(clips, batch_size, num_workers=min(workers, 4),
                                         pin_memory=torch.device(device).type == "cuda")
    return report, *predict_probs(model.to(device), loader, device, amp)


# ----------------------------------------------------------------------------------------------
# Evaluation: bound to the checkpoint it evaluates
# ----------------------------------------------------------------------------------------------


def preprocessing_for_run(config: dict[str, Any], checkpoint: str | Path) -> tuple[Preprocessing, list[str]]:
    """How this run makes its inputs, and notes: the knobs' when training, else the checkpoint's (or
    ``INIT_FROM``'s when fine-tuning it); a knob that disagrees with a checkpoint is noted, never obeyed."""
    if config["TRAIN"] and not config.get("INIT_FROM"):
        frames, size = config["NUM_FRAMES"], config["SIZE"]
        mean, std = normalization_for(resolve_model_knob(config["MODEL"], frames, size))
        sampling = config.get("SAMPLING", "spread")
        stride = config.get("FRAME_STRIDE", 1) if sampling == "window" else None
        return Preprocessing(frames, size, config["FACE_CROP"], mean, std, sampling, frame_stride=stride), []
    info = checkpoint_info(config["INIT_FROM"] if config["TRAIN"] else checkpoint)
    if config["TRAIN"] and config.get("TRAIN_CLIPS", 1) > 1 and info.preprocessing.stride is None:
        raise ValueError(f"TRAIN_CLIPS > 1 needs windows: {info.path.name} (INIT_FROM) samples spread frames")
    return info.preprocessing, preprocessing_notes(info, config)


def preprocessing_notes(info: CheckpointInfo, config: dict[str, Any]) -> list[str]:
    """Notes on a checkpoint that records no preprocessing, and on knobs that disagree with its own."""
    notes = [f"{info.path} is a plain state dict: its preprocessing is taken to be the original run's (8 "
             "frames at 224 px, whole frames, the k400 mean/std)"] if info.plain_state_dict else []
    if differ := info.preprocessing.differences(config):
        notes.append(f"{info.path.name} was trained with {', '.join(differ)}; this run follows the "
                     "checkpoint")
    return notes


def evaluation_split(info: CheckpointInfo, split_path: str | Path, data_root: str | Path,
                     config: dict[str, Any] | None = None) -> tuple[Split, list[str]]:
    """The split ``info``'s checkpoint was trained on, at today's ``data_root``, and notes; ``split.json`` is
    written where missing, and read where the checkpoint records no split."""
    split_path, name, config = Path(split_path), info.path.name, config or {}
    if info.split is None and not split_path.is_file():
        raise FileNotFoundError(f"{split_path}: not found, and {info.path} does not record the split it was "
                                "trained on: put its run's split.json there, or train a model (TRAIN on)")
    split = Split.from_json(info.split, data_root) if info.split else load_split(split_path, data_root)
    if info.split is None:
        notes = [f"{name} does not record its training videos, so {ORIGINAL_TRAIN_NOTE}"]
    elif not split_path.is_file():
        notes = [f"{save_split(split, split_path, data_root)}: written from the split stored in {name}"]
    else:
        notes = [] if load_split(split_path, data_root).same_videos(split) else [
            f"{split_path} is not the split {name} was trained on: evaluating on the checkpoint's own split"]
    scored = split.val + split.test
    if scored and not any(i.path.is_file() for i in scored):  # one line, not a failure per video
        raise FileNotFoundError(f"none of the {len(scored)} videos to score is under {data_root} (e.g. "
                                f"{scored[0].path}): set DATA_ROOT to the dataset {name} was trained on")
    if differ := [f"{k} {config[k]!r}" for k, v in (("SEED", split.seed), ("SPLIT", split.strategy))
                  if config.get(k, v) != v and not config.get("TRAIN")]:
        notes.append(f"the split is the checkpoint's ({split.strategy}, seed {split.seed}); with TRAIN off "
                     f"the configuration's {', '.join(differ)} does not apply")
    return split, notes


def resolve_threshold(knob: float | str, info: CheckpointInfo) -> tuple[float, list[str]]:
    """THRESHOLD as a number (``"val-eer"``: the validation EER threshold ``info``'s checkpoint records), and
    a note where the checkpoint was trained with another THRESHOLD."""
    if isinstance(knob, str) and knob != "val-eer":
        raise ValueError(f"THRESHOLD must be a number or 'val-eer', got {knob!r}")
    if knob == "val-eer" and info.extra.get("val_eer_threshold") is None:
        raise CheckpointError(f"{info.path} records no validation EER threshold (THRESHOLD 'val-eer'): it "
                              "was trained before Scarlet stored one, or its validation videos held one "
                              "class; set THRESHOLD to a number")
    value = float(info.extra["val_eer_threshold"] if knob == "val-eer" else knob)
    trained = info.extra.get("threshold")  # the knob it was trained with: a note, as the knob decides here
    return value, [f"{info.path.name} was trained with THRESHOLD {trained!r}; this run calls fake at P(fake) "
                   f">= {value:.4g} (THRESHOLD {knob!r})"] if trained not in (None, knob) else []


def unseen_items(items: Sequence[VideoItem], info: CheckpointInfo,
                 allow_train_faces: bool = False) -> tuple[list[VideoItem], dict[str, Any], list[str]]:
    """``(items, record, notes)``: the videos to score with ``info``'s checkpoint; those sharing a face with
    its training videos (a score there measures memory) are left out unless ``allow_train_faces``."""
    faces, name, start = info.train_faces(), info.path.name, info.extra.get("init_from")
    if faces is None:
        return list(items), {"train_faces": "unknown"}, [f"{name}: {ORIGINAL_TRAIN_NOTE}"]
    unseen, seen = split_by_faces(items, faces)
    if not (unseen or allow_train_faces):
        raise CheckpointError(f"all {len(items)} videos share a face with {name}'s training videos: nothing "
                              "honest to score (set ALLOW_TRAIN_FACES to score them anyway)")
    shared = f"{len(seen)} of {len(items)} videos that share a face with {name}'s training videos"
    notes = [f"kept {shared}: scored anyway (ALLOW_TRAIN_FACES)" if allow_train_faces else
             f"left out {shared} (set ALLOW_TRAIN_FACES to score them)" if seen else
             f"none of the {len(items)} videos shares a face with {name}'s training videos"]
    if start and start["train_faces"] is None:
        notes.append(f"fine-tuned from {Path(start['checkpoint']).name}, whose training videos are unknown")
    record = {"train_faces": "scored" if allow_train_faces else "left out",
              "videos_sharing_a_training_face": len(seen)}
    return list(items) if allow_train_faces else unseen, record, notes


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------


def bootstrap_ci(y_true: Sequence[int], y_prob: Sequence[float], threshold: float = 0.5,
                 n_bootstrap: int = 1000, seed: int = 0,
                 groups: Sequence[int] | None = None) -> dict[str, list[float] | None]:
    """95% percentile intervals of accuracy and ROC AUC over resamples of ``groups`` (None: of the videos)."""
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    y_true, y_prob, own = np.array(y_true), np.array(y_prob, float), np.lexsort((y_prob, y_true)).argsort()
    groups = np.unique(own if groups is None else groups, return_inverse=True)[1]  # own: by class and score
    n = groups.max() + 1  # each resample draws n groups, a video weighted by the draws of its group
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=n_bootstrap)[:, groups]
    order, starts = np.argsort(y_prob), np.unique(np.sort(y_prob), return_index=True)[1]  # by score, ties
    real, fake = (np.add.reduceat((weights * (y_true == c))[:, order], starts, axis=1) for c in (0, 1))
    pairs = real.sum(1) * fake.sum(1)  # AUC: Mann-Whitney, ties halved; 0 pairs: one class, no AUC
    auc = (fake * (real.cumsum(1) - real / 2)).sum(1)[pairs > 0] / pairs[pairs > 0]
    resampled = {"accuracy": weights @ ((y_prob >= threshold) == y_true) / weights.sum(1), "roc_auc": auc}
    return {k: np.percentile(v, [2.5, 97.5]).tolist() if len(v) else None for k, v in resampled.items()}


def compute_metrics(y_true: Sequence[int], y_prob: Sequence[float], threshold: float = 0.5,
                    n_bootstrap: int = 1000, seed: int = 0,
                    groups: Sequence[int] | None = None) -> dict[str, Any]:
    """sklearn's report at ``threshold`` (fake: P(fake) >= it), ranking metrics (None with one class), CIs."""
    from sklearn import metrics as skm
    y_true, y_prob = np.asarray(y_true, dtype=np.int64), np.asarray(y_prob, dtype=np.float64)
    if y_true.shape != y_prob.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_prob must be equal-length 1-D, got {y_true.shape} and {y_prob.shape}")
    if len(y_true) == 0:
        raise ValueError("no videos were scored (did every video fail to extract? see the failures above)")
    y_pred = (y_prob >= threshold).astype(np.int64)
    confusion = skm.confusion_matrix(y_true, y_pred, labels=[0, 1])
    report = skm.classification_report(y_true, y_pred, labels=[0, 1], target_names=CLASS_NAMES,
                                       output_dict=True, zero_division=0)
    ranking = dict.fromkeys(["roc_auc", "average_precision", "eer", "eer_threshold"])
    if len(np.unique(y_true)) == 2:  # EER: where the ROC, straight between its points, crosses FPR == FNR
        fpr, tpr, thresholds = skm.roc_curve(y_true, y_prob, drop_intermediate=False)
        gap, thresholds[0] = fpr + tpr - 1, thresholds[1]  # FPR - FNR, strictly rising; +inf: the top score
        ranking = {"roc_auc": float(skm.roc_auc_score(y_true, y_prob)), "eer": float(np.interp(0, gap, fpr)),
                   "average_precision": float(skm.average_precision_score(y_true, y_prob)),
                   "eer_threshold": float(np.interp(0, gap, thresholds))}
    units = {"resampled": "videos", "groups": len(y_true)} if groups is None else {
        "resampled": "identities", "groups": len(set(groups))}  # few groups: wide intervals
    boot = {"n_resamples": int(n_bootstrap), "seed": int(seed), **units} if n_bootstrap else None
    ci = boot and bootstrap_ci(y_true, y_prob, threshold, n_bootstrap, seed, groups)
    return {"n": len(y_true), "threshold": float(threshold), "accuracy": float(report["accuracy"]), **ranking,
            "ci95": ci, "bootstrap": boot,
            "log_loss": float(skm.log_loss(y_true, np.clip(y_prob, 1e-7, 1 - 1e-7), labels=[0, 1])),
            "per_class": {c: report[c] for c in CLASS_NAMES}, "macro_avg": report["macro avg"],
            "weighted_avg": report["weighted avg"], "confusion_matrix": confusion.tolist(),
            "support": {c: int(report[c]["support"]) for c in CLASS_NAMES}}


def plot_roc_curves(curves: dict[str, tuple[Sequence[int], Sequence[float]]], title: str = "ROC curves"):
    """A ROC curve per ``name: (y_true, y_prob)``, with size, AUC and EER; plots here are bare Figures."""
    from matplotlib.figure import Figure
    from sklearn.metrics import RocCurveDisplay
    ax = Figure(figsize=(6, 6) if len(curves) > 1 else (5, 5), dpi=120, layout="tight").add_subplot()
    ax.plot([0, 1], [0, 1], "--", color="0.6", lw=1, label="chance (AUC = 0.5)")
    ax.plot([0, 1], [1, 0], ":", color="0.75", lw=1, label="FPR = FNR")
    for name, (y_true, y_prob) in curves.items():
        m = compute_metrics(y_true, y_prob, n_bootstrap=0)
        title, name = (title, f"{name} (n={m['n']})") if len(curves) > 1 else (f"{title} (n={m['n']})", name)
        if m["eer"] is None:
            ax.text(0.5, 0.55 - len(ax.texts) / 16, f"{name}: undefined, only one class present", ha="center")
            continue
        roc = RocCurveDisplay.from_predictions(y_true, y_prob, ax=ax, name=name, drop_intermediate=False)
        ax.plot(m["eer"], 1 - m["eer"], "o", color=roc.line_.get_color(), ms=8,
                label=f"EER {m['eer']:.1%} (P(fake) >= {m['eer_threshold']:.3f})")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal", title=title,
           xlabel="False positive rate (real videos called fake)", ylabel="True positive rate (fakes caught)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return ax.figure


def plot_score_histogram(y_true: Sequence[int], y_prob: Sequence[float], threshold: float = 0.5,
                         title: str = "Scores by true class"):
    """Histograms of P(fake) for the real and the fake videos on shared bins, with the threshold."""
    from matplotlib.figure import Figure
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, float)
    ax = Figure(figsize=(6, 4), dpi=120, layout="tight").add_subplot(xlabel="P(fake)", ylabel="videos")
    for c, name in enumerate(CLASS_NAMES):
        ax.hist(y_prob[y_true == c], np.linspace(0, 1, 26), color=f"C{3 * c}", alpha=0.5,
                label=f"{name} (n={sum(y_true == c)})")
    ax.axvline(threshold, color="k", ls="--", lw=1.5, label=f"threshold {threshold:g}")
    ax.set(title=f"{title} (n={len(y_true)})", ylim=(0, 1.25 * ax.get_ylim()[1]))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", ncol=3, fontsize=8)  # one row, in the headroom above the bars
    return ax.figure


def save_reports(y_true: Sequence[int], y_prob: Sequence[float], out_dir: str | Path, threshold: float = 0.5,
                 extra: dict[str, Any] | None = None, name: str = "",
                 groups: Sequence[int] | None = None) -> dict[str, Any]:
    """``metrics.json`` (the metrics, intervals resampling ``groups``, and ``extra``, returned), the text
    report and 3 plots titled ``name``."""
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay, classification_report
    out_dir, prefix = Path(out_dir), f"{name}: " if name else ""
    # 6 digits: a CPU's summation order must not make two evaluations of the same weights differ
    metrics = json.loads(json.dumps(compute_metrics(y_true, y_prob, threshold, groups=groups)),
                         parse_float=lambda s: round(float(s), 6))
    if clash := sorted(set(extra or {}) & set(metrics)):
        raise ValueError(f"extra keys {clash} would overwrite metrics of the same name")
    metrics |= json.loads(json.dumps(_to_python(extra or {}), default=str))
    write_json(out_dir / "metrics.json", metrics)
    write_text(out_dir / "classification_report.txt", classification_report(y_true, (np.asarray(
        y_prob) >= threshold).astype(int), labels=[0, 1], target_names=CLASS_NAMES, zero_division=0))
    confusion = Figure(figsize=(6.4, 4.6), dpi=120, layout="tight").add_subplot()  # rows true, columns called
    ConfusionMatrixDisplay(np.asarray(metrics["confusion_matrix"]), display_labels=CLASS_NAMES).plot(
        ax=confusion, cmap="Blues")
    confusion.set_title(f"{prefix}confusion matrix (n={metrics['n']}, accuracy {metrics['accuracy']:.1%})",
                        fontsize=10)
    save_figure(confusion.figure, out_dir / "confusion_matrix.png")
    save_figure(plot_roc_curves({"ROC": (y_true, y_prob)}, f"{prefix}ROC curve"), out_dir / "roc_curve.png")
    save_figure(plot_score_histogram(y_true, y_prob, threshold, f"{prefix}scores by true class"),
                out_dir / "score_histogram.png")
    return metrics


SUMMARY_HEADERS = ["", "accuracy [95% CI]", "ROC AUC [95% CI]", "AP", "EER", "n"]


def summary_row(name: str, metrics: dict[str, Any]) -> list[str]:
    """One ``SUMMARY_HEADERS`` row of ``compute_metrics`` or ``cross_method_metrics`` output."""
    ci, keys = metrics.get("ci95") or {}, ("accuracy", "roc_auc", "average_precision", "eer")
    cells = ["n/a" if metrics[k] is None else f"{metrics[k]:.3f}" for k in keys]
    cells = [c + (" [{:.3f}, {:.3f}]".format(*ci[k]) if ci.get(k) else "") for c, k in zip(cells, keys)]
    return [name, *cells, str(metrics.get("n") or metrics["n_real"] + metrics["n_fake"])]


def cross_method_metrics(items: Sequence[VideoItem], y_prob: Sequence[float], n_bootstrap: int = 1000,
                         seed: int = 0, threshold: float = 0.5,
                         trained: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per fake method, then those not ``trained`` pooled ("all"; "all untrained" if some are): its fakes
    against all the reals, intervals resampling identities; ``recall_fake``: its fakes caught."""
    if len(y_prob) != len(items):
        raise ValueError(f"need one score per item: {len(items)} items, {len(y_prob)} scores")
    labels, methods = np.array([i.label for i in items]), np.array([i.method for i in items], dtype=object)
    found, groups, rows = set(methods[labels == 1]), identity_groups(items), []
    pool = [] if found and found <= set(trained) else ["all untrained" if found & set(trained) else "all"]
    for name in [*(m for m in KNOWN_METHODS if m in found), *sorted(found - set(KNOWN_METHODS)), *pool]:
        keep = (labels == 0) | np.isin(methods, sorted(found - set(trained)) if name in pool else [name])
        m = compute_metrics(labels[keep], np.array(y_prob)[keep], threshold, n_bootstrap, seed, groups[keep])
        rows.append({"method": name, "n_real": m["support"]["Real"], "n_fake": m["support"]["Fake"],
                     "recall_fake": m["per_class"]["Fake"]["recall"],
                     **{k: m[k] for k in ("accuracy", "roc_auc", "average_precision", "eer", "ci95")}})
    return rows


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """``rows`` as CSV, columns in the first row's order; None as an empty cell, numbers as they are."""
    import pandas as pd  # dtype object: an int column with a None keeps its ints
    return write_text(path, pd.DataFrame(list(rows), dtype=object).to_csv(index=False, lineterminator="\n"))


def save_predictions(items: Sequence[VideoItem], y_prob: Sequence[float], path: str | Path) -> Path:
    """``predictions.csv``: one row per video with its label and P(fake), for error analysis."""
    return write_csv(path, [{"path": str(i.path), "method": i.method, "label": i.label, "p_fake": f"{p:.6f}"}
                            for i, p in zip(items, y_prob, strict=True)])


def plot_history(history: Sequence[dict[str, float]]):
    """Training loss and validation accuracy / F1 / ROC AUC per epoch, side by side."""
    import pandas as pd
    from matplotlib.figure import Figure
    table = pd.DataFrame(list(history)).set_index("epoch").astype(float).dropna(axis=1, how="all").rename(
        columns={"train_loss": "train loss", "val_loss": "validation loss", "val_accuracy": "accuracy",
                 "val_f1": "F1", "val_roc_auc": "ROC AUC"})  # None: a gap; only None: no line
    ax_loss, ax_val = Figure(figsize=(10, 3.8), dpi=110, layout="tight").subplots(1, 2, sharex=True)
    table.filter(["train loss", "validation loss"]).plot(ax=ax_loss, style=["o-", "s--"], title="Loss",
                                                         ylabel="cross-entropy", grid=True)
    table.filter(["accuracy", "F1", "ROC AUC"]).plot(ax=ax_val, style=["o-", "s--", "^:"], title="Validation",
                                                     ylabel="score", ylim=(0, 1.02), grid=True)
    ax_val.set_xlim(table.index.min() - 0.5, table.index.max() + 0.5)
    ax_val.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)  # whole epochs, even for one
    return ax_val.figure


def plot_frame_grid(clips: Sequence[np.ndarray], titles: Sequence[str], max_frames: int = 8):
    """One row per clip ``(T, H, W, 3)`` uint8 RGB, frames left to right, titled by row."""
    from matplotlib.figure import Figure
    cols = min(max_frames, max(len(c) for c in clips))
    axes = Figure(figsize=(1.6 * cols, 1.8 * len(clips)), dpi=100, layout="tight").subplots(
        len(clips), cols, squeeze=False, subplot_kw={"frame_on": False, "xticks": [], "yticks": []})
    for row, clip, title in zip(axes, clips, titles):
        row[0].set_title(title, loc="left", fontsize=9)
        for ax, frame in zip(row, clip):
            ax.imshow(frame)
    return axes[0, 0].figure


# ----------------------------------------------------------------------------------------------
# Your own videos
# ----------------------------------------------------------------------------------------------


def video_files(path: str | Path) -> list[Path]:
    """``path`` itself, or every video below a folder (``VIDEO_EXTENSIONS``, subfolders too), sorted."""
    return _video_files(Path(path), recursive=True) if Path(path).is_dir() else [Path(path)]


def score_clip(model: torch.nn.Module, clip: Clip, prep: Preprocessing, device: torch.device | str,
               amp: bool = True) -> list[float]:
    """P(fake) of each clip of ``clip.frames`` (``(T, S, S, 3)`` or ``(K, T, S, S, 3)``)."""
    return _p_fake(model, clip_to_tensor(clip.frames, prep.mean, prep.std), device, amp).tolist()


def predict_video(model: torch.nn.Module, path: str | Path, preprocessing: Preprocessing | None = None,
                  device: torch.device | str | None = None, num_clips: int = 1, amp: bool = True) -> float:
    """``score_videos``'s P(fake) of one video; one that cannot be scored raises ``VideoReadError``."""
    row = score_videos(model, [path], preprocessing, device, num_clips, amp)[0]
    if row["error"]:
        raise VideoReadError(row["error"])
    return row["p_fake"]


def plot_timeline(name: str, clip: Clip, scores: Sequence[float], threshold: float = 0.5):
    """P(fake) of each clip at the time of its middle frame, under the frames of the most suspicious clip."""
    from matplotlib.figure import Figure
    frames, worst = clip.frames.reshape(len(scores), -1, *clip.frames.shape[-3:]), int(np.argmax(scores))
    indices, p_fake = np.reshape(clip.indices, (len(scores), -1)), float(np.mean(scores))
    digits = 1 if 10 * np.diff(indices[worst]).min(initial=clip.fps) >= clip.fps else 2  # frames 0.1 s apart
    fig, times = Figure(figsize=(10, 4.6), dpi=100, layout="tight"), indices / clip.fps
    grid = fig.add_gridspec(2, frames.shape[1], height_ratios=(1, 1.5))
    for t, (frame, time) in enumerate(zip(frames[worst], times[worst])):
        fig.add_subplot(grid[0, t], frame_on=False, xticks=[], yticks=[]).imshow(frame)
        fig.axes[t].set_title(f"{time:.{digits}f} s", fontsize=8)
    ax = fig.add_subplot(grid[1, :], xlabel="time in the video (s, middle of each clip)", ylabel="P(fake)",
                         xlim=(0, clip.total_frames / clip.fps), ylim=(-0.02, 1.02))
    ax.plot(times.mean(axis=1), scores, "o-", color="C3", label="P(fake) of each clip")
    ax.plot(times[worst].mean(), scores[worst], "ks", ms=9, fillstyle="none", label="the clip shown above")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"{name}: P(fake) {p_fake:.3f} -> {'FAKE' if p_fake >= threshold else 'REAL'}; "
                 "frames of the most suspicious clip", fontsize=10)
    return fig


def score_videos(model: torch.nn.Module, paths: Sequence[str | Path],
                 preprocessing: Preprocessing | None = None, device: torch.device | str | None = None,
                 num_clips: int = 1, amp: bool = True, threshold: float = 0.5,
                 timeline_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """A row per file, in order: P(fake), the call, face counts, ``note`` (why less sure), ``error``."""
    prep = preprocessing or Preprocessing(unwrap(model).config.num_frames, unwrap(model).config.image_size)
    check_input_size(model, prep.num_frames, prep.size)
    device, rows = device or next(model.parameters()).device, []
    columns = ["p_fake", "call", "clip_scores", "frames", "duration_s", "face_on_track", "face_borrowed",
               "no_face", "face_tracks", "timeline", "note", "error"]
    bar = _progress(iterable=paths, desc="scoring videos", unit="video", disable=len(paths) < 2)
    for n, path in enumerate(bar):
        rows.append(row := {"path": str(path)} | dict.fromkeys(columns))
        try:
            clip = read_clip(path, prep.num_frames, prep.size, prep.face_crop, num_clips, stride=prep.stride)
        except Exception as exc:  # a decoder's bug on one file must not stop the others
            cause = str(exc) if isinstance(exc, VideoReadError) else f"{path}: {type(exc).__name__}: {exc}"
            row["error"] = " ".join(cause.splitlines())
            continue
        scores = score_clip(model, clip, prep, device, amp)
        notes = [w.removeprefix(f"{Path(path)}: ") for w in clip.warnings]  # read_clip's, less the path
        if (faces := clip.faces) is not None:
            row |= {"face_on_track": faces.on_track, "face_borrowed": faces.borrowed,
                    "no_face": faces.no_face, "face_tracks": faces.tracks}
            if faces.unsure:  # logged, as read_clip logs its own warnings, and noted in the row
                logger.warning("%s: %s", path, faces.warning())
                notes.append(faces.warning())
        p_fake = float(np.mean(scores))
        row |= {"p_fake": round(p_fake, 6), "call": "FAKE" if p_fake >= threshold else "REAL",
                "clip_scores": " ".join(f"{p:.4f}" for p in scores), "frames": clip.total_frames,
                "duration_s": round(clip.total_frames / clip.fps, 2), "note": "; ".join(notes) or None}
        if timeline_dir is not None:  # numbered: two videos of one name in two subfolders get two plots
            row["timeline"] = str(save_figure(plot_timeline(Path(path).name, clip, scores, threshold),
                                              Path(timeline_dir) / f"{n:03d}_{Path(path).stem}.png"))
    return rows
