"""Robustness: a corpus of bad videos (generated here, never stored), interrupted extraction and
training, full disks, and wrong use that must fail with a message saying what is wrong.

Every bad file must end in ``report.failed`` with a one-line cause naming it, or, where FFmpeg
genuinely decodes something, in ``report.done`` with a right-shaped clip (and a warning in
``report.warnings`` when it decoded short of its header): never a crash, a hang or a silent
wrong result.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tracemalloc
import wave
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import scarlet_utils as su

REPO = Path(__file__).resolve().parents[1]
NUM_FRAMES, SIZE = 8, 32
BIG_W, BIG_H, BIG_FRAMES = 3840, 2160, 16  # 4K: 16 decoded frames are ~400 MB

# -- the corpus ------------------------------------------------------------------------------------


def _frames(n: int, h: int = 48, w: int = 48, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct BGR frames: a bar that moves, on blurred noise (so a frame is never flat)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 0)
    frames = []
    for i in range(n):
        f = base.copy()
        x = (i * max(1, w // 12)) % w
        f[:, x : x + max(2, w // 16)] = (40, 200, 240)
        frames.append(f)
    return frames


def _write(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v", fps: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc!r} videos")
    for f in frames:
        writer.write(f)
    writer.release()
    assert path.stat().st_size > 0
    return path


def _flat_4k(n: int) -> list[np.ndarray]:
    """4K frames that encode fast (flat colour, a moving block), each still distinct."""
    frames = []
    for i in range(n):
        f = np.full((BIG_H, BIG_W, 3), 30 + 10 * i, np.uint8)
        f[:256, 256 * i : 256 * (i + 1)] = 255
        frames.append(f)
    return frames


# name -> what must happen: a regex of the cause in report.failed, or "ok" (decodes to a clip),
# or "ok-short" (decodes a prefix: a clip, and a warning that the header promised more), or
# "either" (FFmpeg-version dependent: a clear failure or a clip, never a crash or hang).
FAILS_TO_OPEN = "OpenCV cannot open it as a video"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A Kaggle-layout data root with 6 good real and 6 good fake videos and every kind of bad
    file: ``(root, expected)``, ``expected`` mapping each listed path to what must happen."""
    root = tmp_path_factory.mktemp("bad") / "FaceForensics++_C23"
    real, fake = root / "original", root / "Deepfakes"
    expected: dict[Path, str] = {}
    for k in range(6):
        expected[_write(real / f"{k:03d}.mp4", _frames(12, seed=k))] = "ok"
        expected[_write(fake / f"{k:03d}_{k + 1:03d}.mp4", _frames(12, seed=10 + k))] = "ok"

    # Noise: the stream (mdat) is ~99.5% of the file, as in real videos, and the index (moov) small.
    noise = np.random.default_rng(9).integers(0, 256, (12, 96, 96, 3), dtype=np.uint8)
    good = _write(root.parent / "src" / "noise.mp4", list(noise)).read_bytes()
    (real / "100.mp4").touch()  # zero bytes
    expected[real / "100.mp4"] = r"empty file \(0 bytes\)"
    (real / "101.mp4").write_bytes(np.random.default_rng(7).integers(0, 256, 16_000, dtype=np.uint8).tobytes())
    expected[real / "101.mp4"] = FAILS_TO_OPEN
    for name, share in (("102.mp4", 0.10), ("103.mp4", 0.50), ("104.mp4", 0.99)):
        # OpenCV's mp4 writer puts the index (moov) last: any cut loses it, nothing opens.
        (real / name).write_bytes(good[: int(len(good) * share)])
        expected[real / name] = FAILS_TO_OPEN
    avi = _write(root.parent / "src" / "whole.avi", _frames(30, seed=3), fourcc="MJPG").read_bytes()
    (real / "105.avi").write_bytes(avi[: len(avi) // 2])  # AVI: header first, a prefix decodes
    expected[real / "105.avi"] = "ok-short"
    damaged = bytearray(_write(root.parent / "src" / "long.mp4", _frames(30, seed=4)).read_bytes())
    mid, span = len(damaged) // 2, len(damaged) // 8
    damaged[mid - span : mid + span] = np.random.default_rng(8).integers(0, 256, 2 * span, dtype=np.uint8).tobytes()
    (real / "106.mp4").write_bytes(bytes(damaged))  # index intact, garbage in the middle of the stream
    expected[real / "106.mp4"] = "either"
    with wave.open(str(real / "107.mp4"), "wb") as wav:  # audio only: a WAV file named .mp4
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(np.zeros(8000, np.int16).tobytes())
    expected[real / "107.mp4"] = FAILS_TO_OPEN

    expected[_write(fake / "100_101.mp4", _frames(1, seed=5))] = "ok"  # one frame
    expected[_write(fake / "102_103.mp4", _frames(5, seed=6))] = "ok"  # shorter than the clip
    expected[_write(fake / "104_105.mp4", _frames(12, h=160, w=90, seed=7))] = "ok"  # portrait
    expected[_write(fake / "106_107.mp4", _flat_4k(BIG_FRAMES))] = "ok"  # 4K
    expected[_write(fake / "vidéo 001 ünï.mp4", _frames(12, seed=8))] = "ok"  # spaces, non-ASCII
    (fake / "notes.txt").write_text("not a video: never listed\n")
    (fake / ".hidden.mp4").write_bytes((fake / "100_101.mp4").read_bytes())  # a hidden file: never listed
    (fake / "a.mp4").symlink_to("b.mp4")  # a symlink loop
    (fake / "b.mp4").symlink_to("a.mp4")
    expected[fake / "a.mp4"] = expected[fake / "b.mp4"] = "Too many levels of symbolic links"
    (fake / "dangling.mp4").symlink_to(root / "gone.mp4")
    expected[fake / "dangling.mp4"] = "No such file or directory"
    os.mkfifo(fake / "fifo.mp4")  # opening a FIFO blocks until a writer comes: must not hang
    expected[fake / "fifo.mp4"] = "not a regular file"
    (fake / "folder.mp4").mkdir()
    expected[fake / "folder.mp4"] = "is a directory"
    locked = fake / "locked.mp4"
    locked.write_bytes((fake / "000_001.mp4").read_bytes())
    locked.chmod(0)
    # root reads a mode-000 file anyway: then it is a good video
    expected[locked] = "ok" if os.geteuid() == 0 else "Permission denied"
    yield root, expected
    locked.chmod(0o644)


def _ok(expected):
    return [p for p, e in expected.items() if e in ("ok", "ok-short")]


@pytest.fixture
def no_hang():
    """Fail (not freeze) a test that blocks: a hang guard, not a timing check."""
    def on_alarm(signum, frame):
        raise TimeoutError("blocked for 240 s: something hangs")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(240)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# -- listing ---------------------------------------------------------------------------------------


def test_list_videos_lists_by_name_and_never_follows_links(corpus):
    root, expected = corpus
    items = su.list_videos(root)
    listed = {i.path for i in items}
    # Everything named like a video is listed, loops and dangling links too (they fail, with
    # their cause, in extraction: a video that vanished from the listing would go unnoticed).
    assert listed == set(expected)
    assert not any(p.name in ("notes.txt", ".hidden.mp4") for p in listed)  # not a video name, hidden: never listed
    weird = next(i for i in items if i.video_id == "vidéo 001 ünï")
    assert weird.label == 1 and weird.method == "Deepfakes"


# -- extraction ------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers, isolate", [(0, False), (2, False), (2, True)],
                         ids=["in-process", "2-threads", "2-processes"])
def test_extract_frames_survives_the_bad_corpus(corpus, tmp_path, caplog, workers, isolate, no_hang):
    root, expected = corpus
    items = su.list_videos(root)
    by_path = {i.path: i for i in items}
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        report = su.extract_frames(items, cache, NUM_FRAMES, SIZE, workers=workers, isolate=isolate)

    failed = {i.path: cause for i, cause in report.failed}
    done = {i.path for i in report.done}
    assert not report.skipped and len(failed) + len(done) == len(items)
    for path, outcome in expected.items():
        if outcome in ("ok", "ok-short"):
            assert path in done, (path, failed.get(path))
        elif outcome == "either":
            assert path in done or path in failed
        else:
            assert path in failed, path
            cause = failed[path]
            assert "\n" not in cause and cause.startswith(str(path)), cause  # one line, naming the file
            assert re.search(outcome, cause), (outcome, cause)
    for path in failed:  # every failure says which file, one line
        assert str(path) in failed[path] and "\n" not in failed[path]

    # the clips are right-shaped, whatever the source's size, shape or length
    for item in report.done:
        clip = np.load(su.cache_path(item, cache))
        assert clip.shape == (NUM_FRAMES, SIZE, SIZE, 3) and clip.dtype == np.uint8, item.path
        assert clip.std() > 1, item.path  # a decoded picture, not a blank array
    # a prefix that decodes short of its header is said so, from a worker thread or process too,
    # against that video (a thread's collector keeps its own records only), and said once
    warned = {i.path: w for i, w in report.warnings}
    assert re.search(r"header says 30 frames, only \d+ decode", warned[root / "original" / "105.avi"])
    assert set(warned) <= done
    assert all(str(path) in w for path, w in warned.items())
    said = [r.getMessage() for r in caplog.records]
    assert all(said.count(w) == 1 for w in warned.values())
    # no temp file, and nothing for the failures
    files = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
    assert files == sorted(su.cache_path(by_path[p], cache).relative_to(cache) for p in done)

    # a balanced split of what extracted, none of the failures in it
    n_real = sum(i.label == 0 for i in report.ok)
    n_fake = sum(i.label == 1 for i in report.ok)
    n_train, n_val = su.sized_split(n_real, n_fake)
    split = su.make_split(report.ok, n_train, n_val, seed=0)
    pool = split.train + split.val
    assert sum(i.label == 0 for i in pool) == sum(i.label == 1 for i in pool) == min(n_real, n_fake)
    assert not {i.path for i in pool} & set(failed)


def _vm(key: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in bytes."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) * 1024


def test_4k_video_reads_in_bounded_memory(corpus):
    root, _ = corpus
    path = root / "Deepfakes" / "106_107.mp4"
    frame_bytes = BIG_W * BIG_H * 3
    decoded_video = BIG_FRAMES * frame_bytes  # ~400 MB: what holding every sampled frame would cost
    # Peak RSS (the kernel's high-water mark, reset first where Linux allows it): decoder buffers
    # included, it stays well below the decoded video, the clip is the only thing kept.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        hwm_reset = _vm("VmHWM") <= _vm("VmRSS") + 4 * 2**20
    except OSError:
        hwm_reset = False
    before = _vm("VmRSS") if hwm_reset else 0
    clip = su.read_clip(path, NUM_FRAMES, SIZE)
    if hwm_reset:
        growth = _vm("VmHWM") - before
        assert growth < decoded_video / 2, f"peak RSS grew {growth / 2**20:.0f} MiB reading a 4K video"
    assert clip.frames.shape == (NUM_FRAMES, SIZE, SIZE, 3) and clip.total_frames == BIG_FRAMES
    # The arrays Python holds at any moment: about two full frames (the decoded one and its
    # resize), not the 8 sampled frames at full size.
    tracemalloc.start()
    try:
        su.read_clip(path, NUM_FRAMES, SIZE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * frame_bytes, f"{peak / 2**20:.0f} MiB of arrays at once (a 4K frame is {frame_bytes / 2**20:.0f} MiB)"


def test_predict_video_on_each_file_scores_or_raises_a_clear_error(corpus, make_config, no_hang):
    root, expected = corpus
    torch.manual_seed(0)
    model = su.build_model(make_config())  # 4 frames at 32 px
    scored, refused = 0, 0
    for path, outcome in expected.items():
        if outcome in ("ok", "ok-short", "either"):
            try:
                p = su.predict_video(model, path)
            except su.VideoReadError as exc:
                assert outcome == "either" and str(path) in str(exc)
                refused += 1
                continue
            assert isinstance(p, float) and 0.0 <= p <= 1.0 and np.isfinite(p), path
            scored += 1
        else:
            with pytest.raises(su.VideoReadError, match=re.escape(str(path)) + ".*(" + outcome + ")"):
                su.predict_video(model, path)
            refused += 1
    assert scored >= len(_ok(expected)) and scored + refused == len(expected)
    with pytest.raises(su.VideoReadError, match="not a regular file"):
        su.predict_video(model, "/dev/zero")  # a device: never read (it would never end)


# -- interrupted extraction ------------------------------------------------------------------------

_SLOW_EXTRACTION = textwrap.dedent("""
    import io, json, sys, time
    from pathlib import Path
    import numpy as np
    import scarlet_utils as su

    paths, cache = json.loads(sys.argv[1]), sys.argv[2]
    real_save = np.save

    def slow_save(fh, arr):
        # half the clip, a pause, the rest: a kill in the pause leaves a partial temp file
        buf = io.BytesIO()
        real_save(buf, arr)
        data = buf.getvalue()
        fh.write(data[: len(data) // 2])
        fh.flush()
        time.sleep(0.4)
        fh.write(data[len(data) // 2 :])

    np.save = slow_save
    items = [su.VideoItem(Path(p), 0, "original", Path(p).stem) for p in paths]
    su.extract_frames(items, cache, {num_frames}, {size}, workers=0)
""")


def test_killed_extraction_resumes_without_partial_or_repeated_clips(tmp_path, monkeypatch, no_hang):
    paths = [_write(tmp_path / "videos" / f"{k:03d}.mp4", _frames(12, seed=k)) for k in range(6)]
    items = [su.VideoItem(p, 0, "original", p.stem) for p in paths]
    cache = tmp_path / "cache"
    folder = cache / "original"
    script = _SLOW_EXTRACTION.format(num_frames=NUM_FRAMES, size=SIZE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps([str(p) for p in paths]), str(cache)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
            if any(n.endswith(".npy") and not n.startswith(".") for n in names) and any(n.endswith(".tmp") for n in names):
                break  # at least one clip done, one being written: kill it now
            time.sleep(0.005)
        assert proc.poll() is None, f"the extraction ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
        proc.stderr.close()

    clips_before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npy")}
    temps = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    assert 1 <= len(clips_before) < len(items)
    # the kill came mid-write: the clip being written is a partial hidden temp beside where it goes
    assert len(temps) == 1 and re.fullmatch(r"\.\d{3}\.npy\.tmp", temps[0]), temps
    interrupted = next(i for i in items if temps[0] == f".{i.video_id}.npy.tmp")
    assert f"{interrupted.video_id}.npy" not in clips_before
    last = items[-1]  # and one more, as a run killed on the last video would leave it
    (folder / f".{last.video_id}.npy.tmp").write_bytes(b"\x93NUMPY partial")
    existed = [i for i in items if f"{i.video_id}.npy" in clips_before]
    with pytest.raises(FileNotFoundError, match="clips missing from the cache"):  # a temp is not a clip
        su.FrameClipDataset([interrupted], cache)

    decoded = []
    real_read_clip = su.read_clip

    def counting_read_clip(path, *args, **kwargs):
        decoded.append(Path(path))
        return real_read_clip(path, *args, **kwargs)

    monkeypatch.setattr(su, "read_clip", counting_read_clip)
    report = su.extract_frames(items, cache, NUM_FRAMES, SIZE, workers=0)
    assert report.skipped == existed
    assert report.done == [i for i in items if i not in existed] and not report.failed
    assert decoded == [i.path for i in report.done]  # nothing decoded twice
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npy") if p.name in clips_before} == clips_before
    # every clip whole and right, no temp file left
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{i.video_id}.npy" for i in items)
    monkeypatch.undo()
    for item in items:
        clip = np.load(su.cache_path(item, cache))
        np.testing.assert_array_equal(clip, su.read_video_frames(item.path, NUM_FRAMES, SIZE))


# -- training state: resume ------------------------------------------------------------------------


def _cached_clips(tmp_path, n=12):
    rng = np.random.default_rng(0)
    items = [su.VideoItem(Path(f"/d/{'original' if k % 2 == 0 else 'Deepfakes'}/{k:03d}.mp4"), k % 2,
                          "original" if k % 2 == 0 else "Deepfakes", f"{k:03d}") for k in range(n)]
    for item in items:
        clip = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        clip[..., 0] = np.clip(clip[..., 0].astype(int) + (60 if item.label else -60), 0, 255)  # learnable
        dest = su.cache_path(item, tmp_path / "cache")
        dest.parent.mkdir(parents=True, exist_ok=True)
        np.save(dest, clip)
    return items, tmp_path / "cache"


def _new_run(make_config, items, cache, model_seed, loader_seed):
    """What the notebook builds before its epoch loop: model, optimizer, scaler, loader."""
    torch.manual_seed(model_seed)
    # Dropout draws from torch's global generator: the resume must restore it.
    model = su.build_model(make_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)  # state that changes
    generator = torch.Generator().manual_seed(loader_seed)
    # augment: the flips draw from torch's global generator; shuffle from the loader's generator
    loader = DataLoader(su.FrameClipDataset(items, cache, augment=True), batch_size=4, shuffle=True,
                        generator=generator, num_workers=0)
    return model, optimizer, scaler, generator, loader


def _epoch(model, optimizer, scaler, loader, epoch, history):
    stats = su.train_one_epoch(model, loader, optimizer, "cpu", scaler)
    history.append({"epoch": epoch, "train_loss": stats["loss"], "train_accuracy": stats["accuracy"]})


def _seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_resumed_training_ends_with_the_same_weights(make_config, tmp_path):
    items, cache = _cached_clips(tmp_path)

    _seed_everything(0)
    model, optimizer, scaler, _, loader = _new_run(make_config, items, cache, 0, 0)
    straight: list[dict] = []
    for epoch in (1, 2, 3):
        _epoch(model, optimizer, scaler, loader, epoch, straight)

    _seed_everything(0)
    first, opt1, scaler1, gen1, loader1 = _new_run(make_config, items, cache, 0, 0)
    history: list[dict] = []
    _epoch(first, opt1, scaler1, loader1, 1, history)
    path = su.save_training_state(tmp_path / "out" / "training_state.pt", first, opt1, scaler1, 1, 0.5, history,
                                  generator=gen1, note=np.float32(2.5))
    assert sorted(p.name for p in path.parent.iterdir()) == ["training_state.pt"]  # no temp file left
    del first, opt1, scaler1, gen1, loader1

    # a new session: everything built afresh from other seeds (Python's and NumPy's too: the state
    # holds torch's random states only, and nothing the training draws comes from the others)
    _seed_everything(1234)
    resumed, opt2, scaler2, gen2, loader2 = _new_run(make_config, items, cache, 99, 99)
    state = su.load_training_state(path, resumed, opt2, scaler2, generator=gen2)
    assert state == {"epoch": 1, "best_score": 0.5, "history": history, "extra": {"note": 2.5}}
    history = state["history"]
    for epoch in range(state["epoch"] + 1, 4):
        _epoch(resumed, opt2, scaler2, loader2, epoch, history)

    assert history == straight
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert scaler2.state_dict() == scaler.state_dict()
    assert scaler.get_scale() != 2.0**10  # the premise: the scaler's state moved and came back
    a, b = optimizer.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for key in a["state"][k]:
            assert torch.equal(a["state"][k][key], b["state"][k][key])


def test_resume_without_the_loader_generator_differs(make_config, tmp_path):
    # The premise of saving the generator: without it the resumed epochs shuffle otherwise.
    items, cache = _cached_clips(tmp_path)
    _seed_everything(0)
    model, optimizer, scaler, generator, loader = _new_run(make_config, items, cache, 0, 0)
    history: list[dict] = []
    _epoch(model, optimizer, scaler, loader, 1, history)
    path = su.save_training_state(tmp_path / "state.pt", model, optimizer, scaler, 1, None, history, generator=generator)
    finals = []
    for generator_too in (True, False):
        again, opt, sc, gen, ld = _new_run(make_config, items, cache, 5, 5)
        su.load_training_state(path, again, opt, sc, generator=gen if generator_too else None)
        _epoch(again, opt, sc, ld, 2, [])
        finals.append(again.classifier.weight.detach().clone())
    assert not torch.equal(finals[0], finals[1])


def test_training_state_holds_only_tensors_and_plain_values(make_config, tmp_path):
    torch.manual_seed(0)
    model = su.build_model(make_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    path = su.save_training_state(tmp_path / "s.pt", model, optimizer, None, 4, np.float64(0.75),
                                  [{"epoch": 4, "val_accuracy": np.float64(0.75)}], split="identity")
    raw = torch.load(path, map_location="cpu", weights_only=True)  # loads with the safe unpickler
    assert raw["format"] == su.TRAINING_STATE_FORMAT and raw["scaler"] is None and raw["rng"]["generator"] is None
    state = su.load_training_state(path, model, optimizer)
    assert state == {"epoch": 4, "best_score": 0.75, "history": [{"epoch": 4, "val_accuracy": 0.75}],
                     "extra": {"split": "identity"}}
    assert type(state["best_score"]) is float


# -- checkpoints that are never half-written ------------------------------------------------------

_SAVE_LOOP = textwrap.dedent("""
    import itertools, sys
    from types import SimpleNamespace
    import torch
    import scarlet_utils as su

    model = torch.nn.Linear(4096, 2048)  # 32 MiB: each save takes a while
    model.config = SimpleNamespace(to_json_string=lambda: "{}")
    for k in itertools.count(1):
        with torch.no_grad():
            model.weight.fill_(k)
            model.bias.fill_(k)
        su.save_checkpoint(model, sys.argv[1], su.Preprocessing(), epoch=k)
""")


def test_checkpoint_killed_mid_save_keeps_the_previous_one(tmp_path, no_hang):
    path = tmp_path / "Scarlet.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    caught = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            names = os.listdir(tmp_path)
            if "Scarlet.pt" in names and any(n.startswith(".Scarlet.pt.") for n in names):
                caught = True  # a save in progress, with a complete one before it
                break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
        proc.stderr.close()
    assert caught, "never saw a save in progress"
    assert set(os.listdir(tmp_path)) <= {"Scarlet.pt", ".Scarlet.pt.tmp"}  # one temp name, whatever the save
    epoch = su.checkpoint_info(path).extra["epoch"]  # loads: whole, not half-written
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert epoch >= 1 and bool((state["weight"] == epoch).all()) and bool((state["bias"] == epoch).all())
    # the next save overwrites what the killed one left (a hidden temp as big as the checkpoint)
    tiny = torch.nn.Linear(2, 2)
    tiny.config = SimpleNamespace(to_json_string=lambda: "{}")
    su.save_checkpoint(tiny, path, su.Preprocessing(), epoch=0)
    assert os.listdir(tmp_path) == ["Scarlet.pt"]
    assert su.checkpoint_info(path).extra == {"epoch": 0}


# -- full disk -------------------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _link_to_dev_full(path):
    """Make the temp file a write of ``path`` goes through (``.<name>.tmp`` beside it) a link to
    /dev/full: real writes, and the kernel answers ENOSPC whatever layer writes (torch's zip writer,
    numpy). Unlinking the link never touches /dev/full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.symlink_to("/dev/full")
    return tmp


def _no_space(path):
    return pytest.raises(OSError, match=re.escape(str(path)) + r": cannot write .*No space left on device")


def _tiny_model(make_config):
    torch.manual_seed(0)
    return su.build_model(make_config())


@pytest.mark.parametrize("how", ["torch.save raises", "/dev/full"])
def test_full_disk_keeps_the_previous_checkpoint(make_config, tmp_path, monkeypatch, how):
    model = _tiny_model(make_config)
    prep = su.Preprocessing(4, 32)
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", prep, epoch=1)
    before = path.read_bytes()
    if how == "/dev/full":
        _link_to_dev_full(path)
    else:
        monkeypatch.setattr(torch, "save", _disk_full)
    with _no_space(path) as info:
        su.save_checkpoint(model, path, prep, epoch=2)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["Scarlet.pt"]
    monkeypatch.undo()
    assert su.checkpoint_info(path).extra == {"epoch": 1}


@pytest.mark.parametrize("how", ["torch.save raises", "/dev/full"])
def test_full_disk_keeps_the_previous_training_state(make_config, tmp_path, monkeypatch, how):
    model = _tiny_model(make_config)
    optimizer = torch.optim.AdamW(model.parameters())
    path = su.save_training_state(tmp_path / "state.pt", model, optimizer, None, 1, 0.5, [])
    before = path.read_bytes()
    if how == "/dev/full":
        _link_to_dev_full(path)
    else:
        monkeypatch.setattr(torch, "save", _disk_full)
    with _no_space(path):
        su.save_training_state(path, model, optimizer, None, 2, 0.6, [])
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["state.pt"]
    monkeypatch.undo()
    assert su.load_training_state(path, model, optimizer)["epoch"] == 1


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the previous one comes back after it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)], ids=["umask 022", "umask 077"])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    # Outputs are for others to read (a Kaggle dataset, a shared cache): the mode is what open()
    # gives under the umask, 0o666 & ~umask, never a private temp file's 0o600 whatever the umask.
    from matplotlib.figure import Figure

    umask(mask)
    video = _write(tmp_path / "videos" / "000.mp4", _frames(6))
    item = su.VideoItem(video, 0, "original", "000")
    report = su.extract_frames([item], tmp_path / "cache", NUM_FRAMES, SIZE, workers=0)
    assert report.done == [item]
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    written = [su.cache_path(item, tmp_path / "cache"), su.write_json(tmp_path / "out" / "metrics.json", {"n": 1}),
               su.save_figure(fig, tmp_path / "out" / "roc_curve.png")]
    for path in written:
        assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == mode == 0o666 & ~mask, \
            (path.name, oct(path.stat().st_mode))
    assert json.loads(written[1].read_text()) == {"n": 1}
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_temp_file_left_by_a_killed_write_is_overwritten(tmp_path):
    path = tmp_path / "metrics.json"
    su.write_json(path, {"n": 1})
    (tmp_path / ".metrics.json.tmp").write_bytes(b'{"n": 2, "trunc')  # a write killed half-way
    assert json.loads(path.read_text()) == {"n": 1}  # the reader still finds the whole old file
    su.write_json(path, {"n": 3})
    assert json.loads(path.read_text()) == {"n": 3} and os.listdir(tmp_path) == ["metrics.json"]


# A script, not ``python -c``: spawned workers import the main script (as ``__mp_main__``), so its
# top level, which makes two videos kill the process decoding them, runs in every worker.
_CRASHING_EXTRACTION = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    import scarlet_utils as su

    real_read_clip = su.read_clip

    def read_clip(path, *args, **kwargs):
        if "segfault" in Path(path).name:  # what a crash in the native decoder does
            os.kill(os.getpid(), signal.SIGSEGV)
        if "oom" in Path(path).name:  # what the out-of-memory killer does
            os.kill(os.getpid(), signal.SIGKILL)
        return real_read_clip(path, *args, **kwargs)

    su.read_clip = read_clip

    if __name__ == "__main__":
        paths, cache = json.loads(sys.argv[1]), sys.argv[2]
        items = [su.VideoItem(Path(p), 0, "original", Path(p).stem) for p in paths]
        report = su.extract_frames(items, cache, {num_frames}, {size}, workers=2, isolate=True)
        print(json.dumps({{"done": [i.video_id for i in report.done],
                          "failed": [[i.video_id, cause] for i, cause in report.failed]}}))
""")


def test_isolated_extraction_survives_workers_that_die(tmp_path, no_hang):
    names = ["000", "001", "002_segfault", "003", "004", "005_oom", "006", "007"]
    paths = [_write(tmp_path / "videos" / f"{n}.mp4", _frames(6, seed=k)) for k, n in enumerate(names)]
    script = tmp_path / "crashing_extraction.py"
    script.write_text(_CRASHING_EXTRACTION.format(num_frames=NUM_FRAMES, size=SIZE))
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, str(script), json.dumps([str(p) for p in paths]), str(cache)],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # the run went on: every other video has its clip, and only the two that killed their process failed
    assert report["done"] == ["000", "001", "003", "004", "006", "007"]
    assert [vid for vid, _ in report["failed"]] == ["002_segfault", "005_oom"]
    for vid, cause in report["failed"]:
        assert cause == f"{tmp_path / 'videos' / vid}.mp4: the decoding process died (a crash in the native decoder, or killed for memory)"
    assert sorted(p.name for p in (cache / "original").iterdir()) == [f"{v}.npy" for v in report["done"]]


@pytest.mark.parametrize("how", ["np.save raises", "/dev/full"])
def test_full_disk_stops_extraction_instead_of_failing_every_video(tmp_path, monkeypatch, how):
    paths = [_write(tmp_path / "videos" / f"{k:03d}.mp4", _frames(6, seed=k)) for k in range(4)]
    items = [su.VideoItem(p, 0, "original", p.stem) for p in paths]
    cache = tmp_path / "cache"
    su.extract_frames(items[:1], cache, NUM_FRAMES, SIZE, workers=0)  # one clip already there
    decoded = []
    real_read_clip = su.read_clip
    monkeypatch.setattr(su, "read_clip", lambda p, *a, **k: decoded.append(p) or real_read_clip(p, *a, **k))
    dest = su.cache_path(items[1], cache)
    if how == "/dev/full":
        _link_to_dev_full(dest)
    else:
        monkeypatch.setattr(np, "save", _disk_full)
    with pytest.raises(OSError, match=re.escape(str(dest)) + r": cannot write the clip to the frame cache: "
                       r"No space left on device.*stopped after 0 of 3 videos.*a rerun resumes") as info:
        su.extract_frames(items, cache, NUM_FRAMES, SIZE, workers=0)
    assert info.value.errno == errno.ENOSPC
    assert decoded == [items[1].path]  # stopped at the first write, not tried on every video
    assert sorted(p.name for p in (cache / "original").iterdir()) == ["000.npy"]  # no partial clip
    monkeypatch.undo()
    report = su.extract_frames(items, cache, NUM_FRAMES, SIZE, workers=0)  # space again: resumes
    assert report.skipped == items[:1] and report.done == items[1:]


def test_unwritable_cache_stops_the_worker_pool_too(tmp_path):
    paths = [_write(tmp_path / "videos" / f"{k:03d}.mp4", _frames(6, seed=k)) for k in range(4)]
    items = [su.VideoItem(p, 0, "original", p.stem) for p in paths]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "original").write_text("a file where the clips' folder should be")
    with pytest.raises(OSError, match=re.escape(str(cache / "original")) + r".*cannot write the clip.*Extraction stopped"):
        su.extract_frames(items, cache, NUM_FRAMES, SIZE, workers=2)


# -- wrong use -------------------------------------------------------------------------------------
# Already covered elsewhere: a root with neither layout and one class only (test_data.py); a
# checkpoint for other frame counts / sizes, another architecture, a pickle carrying code
# (test_model.py); predict_video with other frames / size (test_training_metrics.py).


def test_empty_class_folder_names_the_folder(tmp_path):
    _write(tmp_path / "Deepfakes" / "000_001.mp4", _frames(3))
    (tmp_path / "original").mkdir()
    (tmp_path / "original" / "notes.txt").write_text("no videos here")
    with pytest.raises(FileNotFoundError, match=r"need real and fake videos, found \{'Deepfakes': 1\}; no video "
                       r"files \(\.mp4, .*\) in " + re.escape(str(tmp_path / "original"))):
        su.list_videos(tmp_path)


def test_every_video_failing_leaves_no_split(tmp_path):
    # all real videos unreadable: the split says how many it needs rather than training on one class
    bad = tmp_path / "original" / "000.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"\0" * 100)
    _write(tmp_path / "Deepfakes" / "000_001.mp4", _frames(3))
    report = su.extract_frames(su.list_videos(tmp_path), tmp_path / "cache", NUM_FRAMES, SIZE, workers=0)
    assert [i.path for i, _ in report.failed] == [bad]
    with pytest.raises(ValueError, match="needs 1 real videos, only 0 available"):
        su.make_split(report.ok, 0, 2)


def test_training_state_and_checkpoint_are_not_interchangeable(make_config, tmp_path):
    model = _tiny_model(make_config)
    optimizer = torch.optim.AdamW(model.parameters())
    checkpoint = su.save_checkpoint(model, tmp_path / "Scarlet.pt", su.Preprocessing(4, 32))
    with pytest.raises(su.CheckpointError, match="not a Scarlet training state .a Scarlet.pt model checkpoint: load it with load_checkpoint"):
        su.load_training_state(checkpoint, model, optimizer)
    state = su.save_training_state(tmp_path / "state.pt", model, optimizer, None, 1, None, [])
    with pytest.raises(su.CheckpointError, match="not a Scarlet checkpoint or a state dict"):
        su.load_checkpoint(state)


def test_training_state_for_another_model_or_optimizer(make_config, tmp_path):
    model = _tiny_model(make_config)
    optimizer = torch.optim.AdamW(model.parameters())
    path = su.save_training_state(tmp_path / "state.pt", model, optimizer, None, 1, None, [])
    other = su.build_model(make_config(num_frames=2))  # torch's own errors, which name the parameter
    with pytest.raises(RuntimeError, match=r"size mismatch for timesformer\.embeddings\.time_embeddings: .*"
                                           r"torch\.Size\(\[1, 4, 32\]\) from checkpoint.*torch\.Size\(\[1, 2, 32\]\)"):
        su.load_training_state(path, other, torch.optim.AdamW(other.parameters()))
    deeper = su.build_model(make_config(num_hidden_layers=3))
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: \"timesformer\.encoder\.layer\.2\."):
        su.load_training_state(path, deeper, torch.optim.AdamW(deeper.parameters()))
    head_only = torch.optim.AdamW(model.classifier.parameters())
    with pytest.raises(ValueError, match="parameter group that doesn't match the size of optimizer's group"):
        su.load_training_state(path, model, head_only)


def test_training_state_of_another_run_changes_nothing(make_config, tmp_path):
    model = _tiny_model(make_config)
    optimizer = torch.optim.AdamW(model.parameters())
    run = {"LR": 3e-5, "METHODS": ["Deepfakes"], "train_videos": ["a.mp4", "b.mp4"]}
    path = su.save_training_state(tmp_path / "state.pt", model, optimizer, None, 3, 0.9, [], run_key=run)
    assert su.load_training_state(path, model, optimizer, match={"run_key": dict(run)})["epoch"] == 3

    torch.manual_seed(1)
    other = su.build_model(make_config())
    other_opt = torch.optim.AdamW(other.parameters())
    generator = torch.Generator().manual_seed(5)
    weights = {k: v.clone() for k, v in other.state_dict().items()}
    rng = (random.getstate(), torch.get_rng_state(), generator.get_state())
    with pytest.raises(su.CheckpointError, match=r"saved by a run with other run_key \(LR: saved 3e-05, now 0.0001\)$"):
        su.load_training_state(path, other, other_opt, generator=generator, match={"run_key": {**run, "LR": 1e-4}})
    with pytest.raises(su.CheckpointError, match=r"other run_key \(train_videos: saved \['a.mp4', 'b.mp4'\], now \['a.mp4'\]\)"):
        su.load_training_state(path, other, other_opt, match={"run_key": {**run, "train_videos": ["a.mp4"]}})
    with pytest.raises(su.CheckpointError, match="saved by a run with other seed"):
        su.load_training_state(path, other, other_opt, match={"seed": 0})  # not saved at all
    assert all(torch.equal(v, weights[k]) for k, v in other.state_dict().items())  # nothing loaded
    assert other_opt.state_dict()["state"] == {}
    assert random.getstate() == rng[0] and torch.equal(torch.get_rng_state(), rng[1])
    assert torch.equal(generator.get_state(), rng[2])


def test_training_state_carrying_code_is_refused(make_config, tmp_path):
    marker = tmp_path / "code_ran"

    class PlantsAFile:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    model = _tiny_model(make_config)
    path = tmp_path / "state.pt"
    torch.save({"format": su.TRAINING_STATE_FORMAT, "model": model.state_dict(), "hook": PlantsAFile()}, path)
    with pytest.raises(su.CheckpointError, match="refused: the file holds Python objects"):
        su.load_training_state(path, model, torch.optim.AdamW(model.parameters()))
    assert not marker.exists()


# The same extraction in a script whose top level is not guarded: every spawned worker runs it again
# and fails while starting (Python refuses to start a process during bootstrapping), on any video.
_UNGUARDED_EXTRACTION = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import scarlet_utils as su

    paths, cache = json.loads(sys.argv[1]), sys.argv[2]
    items = [su.VideoItem(Path(p), 0, "original", Path(p).stem) for p in paths]
    report = su.extract_frames(items, cache, {num_frames}, {size}, workers=2, isolate=True)
    print("REPORT " + json.dumps({{"done": sorted(i.video_id for i in report.done),
                                  "failed": [[i.video_id, cause] for i, cause in report.failed]}}))
""")


def test_isolated_extraction_in_a_script_without_a_main_guard_says_why_and_uses_threads(tmp_path, no_hang):
    paths = [_write(tmp_path / "videos" / f"{k:03d}.mp4", _frames(6, seed=k)) for k in range(3)]
    script = tmp_path / "unguarded_extraction.py"
    script.write_text(_UNGUARDED_EXTRACTION.format(num_frames=NUM_FRAMES, size=SIZE))
    proc = subprocess.run([sys.executable, str(script), json.dumps([str(p) for p in paths]), str(tmp_path / "cache")],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("REPORT "))[len("REPORT "):])
    assert report == {"done": ["000", "001", "002"], "failed": []}  # not "the decoding process died" for each
    assert su.NO_PROCESSES in proc.stderr and "bootstrapping phase" in proc.stderr  # our cause, and Python's
    assert sorted(p.name for p in (tmp_path / "cache" / "original").iterdir()) == ["000.npy", "001.npy", "002.npy"]
