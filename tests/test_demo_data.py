"""The demo's synthetic data set: FF++ layout, decodable, deterministic, resumable, and a fake cue
that lives in the face region over time."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import scarlet_utils as su
from scarlet_utils import make_synthetic_dataset

from conftest import decode_all

N, FRAMES, SIZE = 8, 16, 96


def read_video(path: Path) -> np.ndarray:
    """Decode all frames of a video as a float32 (T, H, W, 3) array."""
    frames = decode_all(path)
    assert frames, path
    return np.stack(frames).astype(np.float32)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("ds"), n_per_class=N, num_frames=FRAMES, size=SIZE, seed=3)


def test_layout(root: Path) -> None:
    reals = sorted(p.name for p in (root / "original").iterdir())
    fakes = sorted(p.name for p in (root / "Deepfakes").iterdir())  # iterdir also sees hidden temp files
    assert reals == [f"{i:03d}.mp4" for i in range(N)]
    assert len(fakes) == N and all(re.fullmatch(r"\d{3}_\d{3}\.mp4", f) for f in fakes)
    pairs = [f[:-4].split("_") for f in fakes]
    real_ids = {r[:-4] for r in reals}
    assert all(t in real_ids and s in real_ids and t != s for t, s in pairs)
    assert sorted(t for t, _ in pairs) == sorted(real_ids)  # each real is the target of exactly one fake
    assert {(s, t) for t, s in pairs} == {(t, s) for t, s in pairs}  # swapped in pairs, as in FF++


def test_odd_count_still_pairs_every_real(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path, n_per_class=5, num_frames=4, size=32, seed=0)
    pairs = [p.stem.split("_") for p in (root / "Deepfakes").glob("[0-9]*.mp4")]
    assert sorted(t for t, _ in pairs) == [f"{i:03d}" for i in range(5)] and all(t != s for t, s in pairs)


def test_videos_decode(root: Path) -> None:
    for p in [*(root / "original").glob("*.mp4"), *(root / "Deepfakes").glob("*.mp4")]:
        cap = cv2.VideoCapture(str(p))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES, p
        cap.release()
        v = read_video(p)
        assert v.shape == (FRAMES, SIZE, SIZE, 3), p
        assert 40 < v.mean() < 220 and v.std() > 20  # a real image, not a blank frame


def test_second_call_is_noop(root: Path) -> None:
    files = sorted(root.rglob("*.mp4"))
    before = {p: p.stat().st_mtime_ns for p in files}
    assert make_synthetic_dataset(root, n_per_class=N, num_frames=FRAMES, size=SIZE, seed=3) == root
    assert {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*.mp4"))} == before


def test_deterministic_and_resumable(root: Path, tmp_path: Path) -> None:
    other = make_synthetic_dataset(tmp_path, n_per_class=N, num_frames=FRAMES, size=SIZE, seed=3)
    victim = sorted((other / "Deepfakes").glob("*.mp4"))[3]
    victim.unlink()  # a partially written dataset must be completed with the identical clip
    make_synthetic_dataset(other, n_per_class=N, num_frames=FRAMES, size=SIZE, seed=3)
    for rel in ("original/005.mp4", f"Deepfakes/{victim.name}"):
        np.testing.assert_array_equal(read_video(root / rel), read_video(other / rel))


def test_fakes_flicker_in_face_region(root: Path) -> None:
    """Mean |frame_t+1 - frame_t| in the central (face) box is larger for fakes; the border is similar."""
    a, b = int(SIZE * 0.35), int(SIZE * 0.65)  # face centre wanders at most ~12% of the frame from centre

    def flicker(cls: str) -> tuple[float, float]:
        face, border = [], []
        for p in sorted((root / cls).glob("*.mp4")):
            d = np.abs(np.diff(read_video(p), axis=0))
            face.append(d[:, a:b, a:b].mean())
            border.append(np.concatenate([d[:, :8].ravel(), d[:, -8:].ravel()]).mean())
        return float(np.mean(face)), float(np.mean(border))

    (real_face, real_border), (fake_face, fake_border) = flicker("original"), flicker("Deepfakes")
    assert fake_face > 1.15 * real_face
    assert abs(fake_border - real_border) < 0.15 * real_border  # no global (whole-frame) giveaway


# -- any seed ---------------------------------------------------------------------------------------

SMALL = dict(n_per_class=N, num_frames=4, size=32)  # the pairing is what matters here, not the pictures


def _fake_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "Deepfakes").glob("*.mp4"))


@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_any_seed_makes_a_dataset_the_identity_split_can_use(tmp_path: Path, seed: int) -> None:
    root = make_synthetic_dataset(tmp_path, seed=seed, **SMALL)
    items = su.list_videos(root)
    assert sum(i.label == 0 for i in items) == sum(i.label == 1 for i in items) == N
    split = su.make_split(items, n_train=N, n_val=N, seed=seed, strategy="identity")  # the whole pool, as the demo
    assert len(split.train) == len(split.val) == N
    assert su.count_identity_leaks(split.train, split.val) == 0


def test_another_seed_into_the_same_root_is_refused_not_mixed(tmp_path: Path) -> None:
    """Seed 7's fakes beside seed 0's would make every real the target of two fakes, and the identity
    split of the whole pool impossible: the root is refused, and keeps one seed's dataset."""
    fresh = make_synthetic_dataset(tmp_path / "seed7", seed=7, **SMALL)
    root = make_synthetic_dataset(tmp_path / "demo", seed=0, **SMALL)
    before = _fake_names(root)
    assert _fake_names(fresh) != before  # seed 7 pairs the faces differently: the case this test is about

    try:
        make_synthetic_dataset(root, seed=7, **SMALL)
        refusal = None
    except ValueError as exc:
        refusal = str(exc)
    # The root still holds one seed's dataset that the demo's identity split (whole pool) can use.
    split = su.make_split(su.list_videos(root), n_train=N, n_val=N, strategy="identity")
    assert su.count_identity_leaks(split.train, split.val) == 0
    assert _fake_names(root) == before  # nothing of seed 7 written
    assert refusal is not None and "seed" in refusal and str(root) in refusal  # said, not silently ignored
    assert make_synthetic_dataset(root, seed=0, **SMALL) == root  # its own seed still reuses it
