"""Data: listing both FF++ layouts, the balanced split, frame extraction and the clip dataset."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import scarlet_utils as su

REAL_IDS = ["004", "519", "634"]
FAKES = {"Deepfakes": "519_515", "Face2Face": "750_743", "FaceSwap": "634_660", "NeuralTextures": "004_982"}
ALL_METHODS = list(FAKES)

# -- list_videos -----------------------------------------------------------------------------------


def _check_listing(items, root: Path, methods):
    assert [str(i.path) for i in items] == sorted(str(i.path) for i in items)  # sorted by path
    assert sorted(i.video_id for i in items if i.label == 0) == REAL_IDS
    assert all(i.method == "original" for i in items if i.label == 0)
    assert sorted((i.method, i.video_id) for i in items if i.label == 1) == sorted((m, FAKES[m]) for m in methods)
    assert len(items) == len(REAL_IDS) + len(methods)
    for i in items:
        assert i.path.is_file() and i.path.stem == i.video_id
        assert root in i.path.parents


@pytest.mark.real_video
def test_list_videos_official_layout(ffpp_root):
    assert su.detect_layout(ffpp_root) == "official"
    assert su.available_methods(ffpp_root) == ALL_METHODS
    _check_listing(su.list_videos(ffpp_root, ["Deepfakes"]), ffpp_root, ["Deepfakes"])
    _check_listing(su.list_videos(ffpp_root), ffpp_root, ALL_METHODS)  # methods left out: every one found
    items = su.list_videos(ffpp_root, ALL_METHODS)
    _check_listing(items, ffpp_root, ALL_METHODS)
    real = next(i for i in items if i.video_id == "004")
    assert real.path == ffpp_root / "original_sequences/youtube/c23/videos/004.mp4"


@pytest.mark.real_video
def test_list_videos_kaggle_layout(kaggle_root):
    assert su.detect_layout(kaggle_root) == "kaggle"
    assert su.available_methods(kaggle_root) == ALL_METHODS
    items = su.list_videos(kaggle_root, ["FaceSwap", "Face2Face"])
    _check_listing(items, kaggle_root, ["FaceSwap", "Face2Face"])
    swap = next(i for i in items if i.method == "FaceSwap")
    assert swap.path == kaggle_root / "FaceSwap" / "634_660.mp4" and swap.path.is_symlink()
    assert [i.label for i in items] == [0 if i.method == "original" else 1 for i in items]


def _write_metadata(root: Path, rows):
    meta = root / "csv" / "FF++_Metadata.csv"
    meta.parent.mkdir(parents=True, exist_ok=True)
    lines = ["File Path,Label,Frame Count,Width,Height,Codec,File Size(MB)"]
    lines += [",".join(map(str, r)) for r in rows]
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return meta


@pytest.mark.real_video
def test_kaggle_tree_with_its_metadata_csv_lists_and_extracts_as_without_it(kaggle_root, tmp_path):
    """The Kaggle mirror ships csv/FF++_Metadata.csv: it is neither a method nor read (its frame
    counts are not used), and a symlinked video extracts to exactly what read_video_frames reads."""
    plain = su.list_videos(kaggle_root, ALL_METHODS)
    _write_metadata(kaggle_root, [("original/004.mp4", "REAL", 5000, 1280, 720, "h264", 0.17),  # wrong: 309
                                  ("Deepfakes/999_998.mp4", "FAKE", 100, 640, 480, "h264", 1.0)])  # not on disk
    assert su.available_methods(kaggle_root) == ALL_METHODS
    items = su.list_videos(kaggle_root, ALL_METHODS)
    assert items == plain and len(items) == 7
    assert [f.name for f in dataclasses.fields(su.VideoItem)] == ["path", "label", "method", "video_id", "dataset", "people"]
    assert {(i.dataset, i.people) for i in items} == {(su.FFPP, ())}  # FF++ ids say their people themselves
    item = next(i for i in items if i.video_id == "004")
    assert item.path.is_symlink()
    report = su.extract_frames([item], tmp_path / "cache", num_frames=4, size=32, workers=0)
    assert report.done == [item] and not report.failed
    cached = np.load(su.cache_path(item, tmp_path / "cache"))
    np.testing.assert_array_equal(cached, su.read_video_frames(item.path, 4, 32))


def test_root_with_neither_layout(tmp_path):
    (tmp_path / "videos").mkdir()
    with pytest.raises(FileNotFoundError, match="not a data root Scarlet reads") as info:
        su.list_videos(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "ROOT/original/NNN.mp4" in message and "ROOT/<Method>/TTT_SSS.mp4" in message
    assert "ROOT/original_sequences/youtube/c23/videos/NNN.mp4" in message
    for other in ("ROOT/Celeb-synthesis/idX_idY_NNNN.mp4", "List_of_testing_videos.txt", "dfdc_train_part_N/metadata.json",
                  "ROOT/real/... and ROOT/fake/..."):  # every layout it reads, not only FF++'s
        assert other in message, other


@pytest.mark.real_video
@pytest.mark.parametrize("layout", ["official", "kaggle"])
def test_unknown_method_names_the_methods_found(ffpp_root, kaggle_root, layout):
    root = ffpp_root if layout == "official" else kaggle_root
    with pytest.raises(FileNotFoundError, match=r"no folder for 'FaceShifter'.*methods found: "
                       r"\['Deepfakes', 'Face2Face', 'FaceSwap', 'NeuralTextures'\]"):
        su.list_videos(root, ["Deepfakes", "FaceShifter"])


def test_root_without_fakes_raises(tmp_path):
    (tmp_path / "original").mkdir()
    (tmp_path / "original" / "000.mp4").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"need real and fake videos, found \{'original': 1\}"):
        su.list_videos(tmp_path, [])
    with pytest.raises(FileNotFoundError, match="methods found: none"):
        su.list_videos(tmp_path, ["Deepfakes"])


# -- make_split ------------------------------------------------------------------------------------


def _items(n_real=20, n_fake=30):
    real = [su.VideoItem(Path(f"/d/original/{i:03d}.mp4"), 0, "original", f"{i:03d}") for i in range(n_real)]
    fake = [su.VideoItem(Path(f"/d/Deepfakes/{i:03d}_{i + 1:03d}.mp4"), 1, "Deepfakes", f"{i:03d}_{i + 1:03d}")
            for i in range(n_fake)]
    return real + fake


def test_make_split_sizes_and_balanced_pool():
    split = su.make_split(_items(), n_train=10, n_val=6, seed=0)
    assert len(split.train) == 10 and len(split.val) == 6 and split.test == []
    pool = split.train + split.val
    assert sum(i.label == 0 for i in pool) == 8 and sum(i.label == 1 for i in pool) == 8
    assert len(set(pool)) == 16  # no video twice
    assert not set(split.train) & set(split.val)
    assert split.seed == 0 and split.strategy == "random"


def test_make_split_deterministic_per_seed_and_independent_of_input_order():
    items = _items()
    a = su.make_split(items, 10, 6, seed=3)
    shuffled = list(items)
    random.Random(99).shuffle(shuffled)
    for other in (su.make_split(items, 10, 6, seed=3), su.make_split(shuffled, 10, 6, seed=3),
                  su.make_split(list(reversed(items)), 10, 6, seed=3)):
        assert other.train == a.train and other.val == a.val
    b = su.make_split(items, 10, 6, seed=4)
    assert (b.train, b.val) != (a.train, a.val)


def test_make_split_uses_whole_pool_when_exact():
    split = su.make_split(_items(5, 5), n_train=6, n_val=4)
    assert sorted(split.train + split.val, key=lambda i: str(i.path)) == sorted(_items(5, 5), key=lambda i: str(i.path))


def test_make_split_pool_too_small_raises_instead_of_shrinking():
    with pytest.raises(ValueError, match="needs 21 real videos, only 20 available"):
        su.make_split(_items(20, 30), n_train=30, n_val=12)
    with pytest.raises(ValueError, match="needs 12 fake videos, only 11 available"):
        su.make_split(_items(20, 11), n_train=12, n_val=12)


@pytest.mark.parametrize(("n_train", "n_val"), [(5, 6), (10, 1), (4, 0), (-2, 4)])
def test_make_split_rejects_odd_or_invalid_sizes(n_train, n_val):
    with pytest.raises(ValueError, match="must be even and n_val >= 1"):
        su.make_split(_items(), n_train, n_val)


def test_split_json_round_trip(tmp_path):
    items = _items(6, 6)
    split = su.make_split(items, 6, 4, seed=7)
    split.test = items[:2]
    path = su.save_split(split, tmp_path / "out" / "split.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.json"]  # no temp file left
    raw = json.loads(path.read_text())
    assert raw["seed"] == 7 and raw["strategy"] == "random"
    # no data root given: the paths are kept as they are
    assert raw["train"][0] == {"path": str(split.train[0].path), "label": split.train[0].label,
                               "method": split.train[0].method, "video_id": split.train[0].video_id,
                               "dataset": su.FFPP, "people": []}
    loaded = su.load_split(path)
    assert loaded == split
    assert all(isinstance(i.path, Path) for i in loaded.train + loaded.val + loaded.test)
    # a data root the items are not under: still absolute, and they load back unchanged
    assert su.load_split(su.save_split(split, tmp_path / "other.json", tmp_path / "elsewhere"), "/mnt") == split


@pytest.mark.real_video
def test_split_json_paths_are_relative_to_the_data_root_and_follow_a_move(kaggle_root, tmp_path):
    items = su.list_videos(kaggle_root, ALL_METHODS)
    split = su.make_split(items, seed=0, strategy="official")  # train, val and test all hold videos
    path = su.save_split(split, tmp_path / "out" / "split.json", kaggle_root)
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    rows = raw["train"] + raw["val"] + raw["test"]
    assert sorted(r["path"] for r in rows) == sorted([  # relative, POSIX, as the Kaggle mirror lays them out
        "original/519.mp4", "Deepfakes/519_515.mp4", "original/004.mp4", "NeuralTextures/004_982.mp4",
        "original/634.mp4", "FaceSwap/634_660.mp4"])
    assert len(rows) == 6 and not any(Path(r["path"]).is_absolute() for r in rows)
    assert str(tmp_path) not in text and str(kaggle_root) not in text and "\\" not in text

    # The dataset mounted somewhere else (Kaggle has changed its mount paths): move the whole tree.
    new_root = tmp_path / "remounted" / "input" / kaggle_root.name
    new_root.parent.mkdir(parents=True)
    kaggle_root.rename(new_root)
    assert not kaggle_root.exists()
    loaded = su.load_split(path, new_root)
    assert loaded.same_videos(split) and (loaded.strategy, loaded.seed) == ("official", 0)
    relisted = {(i.method, i.video_id): i for i in su.list_videos(new_root, ALL_METHODS)}
    for part in su.SPLIT_PARTS:
        got = getattr(loaded, part)
        assert len(got) == len(getattr(split, part)) == 2
        for item in got:
            assert item.path.is_file() and new_root in item.path.parents
            assert item == relisted[(item.method, item.video_id)]  # exactly what a listing of the new root gives
    assert {(i.method, i.video_id) for i in loaded.val} == {("original", "004"), ("NeuralTextures", "004_982")}
    # Resolved against the root it is given: the old one no longer holds the videos.
    assert not any(i.path.exists() for i in su.load_split(path, kaggle_root).train)


def test_same_videos_compares_method_and_id_on_each_side():
    items = _items(6, 6)
    split = su.make_split(items, 6, 4, seed=1)
    moved = su.Split([su.VideoItem(Path("/elsewhere") / i.path.name, i.label, i.method, i.video_id) for i in split.train],
                     list(reversed(split.val)), strategy="identity", seed=5)
    assert moved.same_videos(split) and split.same_videos(moved)  # paths, order, strategy and seed aside
    assert not su.Split(split.val, split.train).same_videos(split)  # sides swapped
    assert not su.Split(split.train[1:], split.val).same_videos(split)  # one video fewer
    assert not su.Split(split.train, split.val, test=items[:1]).same_videos(split)  # a test side added
    assert any(i.label for i in split.train)
    renamed = su.Split([su.VideoItem(i.path, i.label, "FaceSwap" if i.label else i.method, i.video_id)
                        for i in split.train], split.val)
    assert not renamed.same_videos(split)  # the same ids of another method are other videos


def test_load_split_of_a_missing_file_names_it(tmp_path):
    missing = tmp_path / "models" / "split.json"
    with pytest.raises(FileNotFoundError) as info:
        su.load_split(missing, tmp_path)
    assert str(missing) in str(info.value)


# -- extract_frames (real sample) ------------------------------------------------------------------

NUM_FRAMES, SIZE = 4, 32


@pytest.fixture(scope="module")
def sample_items(ffpp_root):
    return su.list_videos(ffpp_root, ALL_METHODS)


@pytest.fixture(scope="module")
def reference_clips(sample_items):
    """``read_video_frames`` of each sample video, the ground truth for the cache."""
    return {i.path: su.read_video_frames(i.path, NUM_FRAMES, SIZE) for i in sample_items}


def _all_files(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.real_video
@pytest.mark.parametrize("workers, isolate", [(0, False), (2, False), (2, True)],
                         ids=["in-process", "2-threads", "2-processes"])
def test_extract_frames_real_sample(sample_items, reference_clips, tmp_path, caplog, workers, isolate):
    bad_path = tmp_path / "bad" / "999_000.mp4"
    bad_path.parent.mkdir()
    bad_path.write_text("not a video\n")
    bad = su.VideoItem(bad_path, 1, "Deepfakes", "999_000")
    items = sample_items + [bad]
    cache = su.cache_dir_for(tmp_path / "cache", NUM_FRAMES, SIZE)

    opencv_threads = cv2.getNumThreads()
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        report = su.extract_frames(items, cache, NUM_FRAMES, SIZE, workers=workers, isolate=isolate)
    assert cv2.getNumThreads() == opencv_threads  # the thread pool puts OpenCV's setting back
    assert report.done == sample_items  # in the order given, whichever worker finished first
    assert report.skipped == [] and report.faces == {} and report.unsure == []
    assert len(report.failed) == 1
    failed_item, cause = report.failed[0]
    assert failed_item == bad
    assert str(bad_path) in cause and "OpenCV cannot open it as a video" in cause
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m for m in said if str(bad_path) in m] == [f"skipped {cause}"]  # said once, from any worker
    summary = report.summary().splitlines()  # what the notebook shows: the counts, then each failure's cause
    assert summary == [f"decoded {len(sample_items)}, already cached 0, failed 1", cause]
    assert report.ok == sample_items

    # exactly one .npy per good video and nothing else: no temp files, no clip for the bad one
    assert _all_files(cache) == sorted(f"{i.method}/{i.video_id}.npy" for i in sample_items)
    for item in sample_items:
        cached = np.load(su.cache_path(item, cache))
        assert cached.shape == (NUM_FRAMES, SIZE, SIZE, 3) and cached.dtype == np.uint8
        np.testing.assert_array_equal(cached, reference_clips[item.path])

    # a rerun decodes nothing that is cached; the bad file is tried (and fails) again
    again = su.extract_frames(items, cache, NUM_FRAMES, SIZE, workers=workers, isolate=isolate)
    assert again.skipped == sample_items and again.done == []
    assert [(i, c) for i, c in again.failed] == [(bad, cause)]
    assert _all_files(cache) == sorted(f"{i.method}/{i.video_id}.npy" for i in sample_items)


def test_cache_locations():
    item = su.VideoItem(Path("/x/Deepfakes/000_003.mp4"), 1, "Deepfakes", "000_003")
    assert su.cache_dir_for("/c", 8, 224, False) == Path("/c/f8_s224_full")
    assert su.cache_dir_for("/c", 16, 112, True) == Path(f"/c/f16_s112_{su.FACE_METHOD}")
    assert su.cache_path(item, "/c/f8_s224_full") == Path("/c/f8_s224_full/Deepfakes/000_003.npy")


# -- FrameClipDataset ------------------------------------------------------------------------------


@pytest.fixture
def cached_items(tmp_path):
    """Two items with hand-made clips in a cache: (items, cache_dir, clips)."""
    rng = np.random.default_rng(1)
    items = [su.VideoItem(Path("/d/original/000.mp4"), 0, "original", "000"),
             su.VideoItem(Path("/d/Deepfakes/000_001.mp4"), 1, "Deepfakes", "000_001")]
    clips = [rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8) for _ in items]
    clips[0][1, 2, 3] = (255, 0, 128)
    for item, clip in zip(items, clips):
        dest = su.cache_path(item, tmp_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        np.save(dest, clip)
    return items, tmp_path, clips


def test_dataset_shapes_labels_and_normalisation(cached_items):
    items, cache, clips = cached_items
    ds = su.FrameClipDataset(items, cache)
    assert len(ds) == 2
    x, label = ds[0]
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32 and label == 0
    assert ds[1][1] == 1
    expected = [(255 / 255 - 0.45) / 0.225, (0 / 255 - 0.45) / 0.225, (128 / 255 - 0.45) / 0.225]
    assert x[1, :, 2, 3].tolist() == pytest.approx(expected, abs=1e-6)
    # every pixel, channel-first
    manual = (torch.from_numpy(clips[0]).float() / 255 - 0.45) / 0.225
    torch.testing.assert_close(x, manual.permute(0, 3, 1, 2), rtol=0, atol=1e-6)


def test_dataset_custom_mean_std(cached_items):
    items, cache, clips = cached_items
    ds = su.FrameClipDataset(items, cache, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    x, _ = ds[0]
    expected = [(1.0 - 0.5) / 0.2, (0.0 - 0.4) / 0.25, (128 / 255 - 0.3) / 0.5]
    assert x[1, :, 2, 3].tolist() == pytest.approx(expected, abs=1e-6)


def test_dataset_augment_flips_the_whole_clip(cached_items):
    items, cache, _ = cached_items
    plain = su.FrameClipDataset(items, cache)[0][0]
    flipped = plain.flip(-1)
    assert not torch.equal(plain, flipped)
    ds = su.FrameClipDataset(items, cache, augment=True)
    torch.manual_seed(1234)
    outcomes = []
    for _ in range(40):
        x, _ = ds[0]
        if torch.equal(x, plain):
            outcomes.append(False)
        elif torch.equal(x, flipped):  # every frame flipped together: never a mix
            outcomes.append(True)
        else:
            pytest.fail("augmented clip is neither the clip nor the whole clip flipped")
    assert 5 <= sum(outcomes) <= 35, outcomes
    torch.manual_seed(1234)
    random.seed(999)  # Python's `random` plays no part: the flip is drawn from torch's RNG
    assert [torch.equal(ds[0][0], flipped) for _ in range(40)] == outcomes
    torch.manual_seed(4321)
    assert [torch.equal(ds[0][0], flipped) for _ in range(40)] != outcomes  # another torch seed, other flips
    assert all(torch.equal(su.FrameClipDataset(items, cache)[0][0], plain) for _ in range(5))  # off by default


def test_dataset_missing_cache_raises(cached_items):
    items, cache, _ = cached_items
    extra = su.VideoItem(Path("/d/Deepfakes/007_008.mp4"), 1, "Deepfakes", "007_008")
    with pytest.raises(FileNotFoundError, match=r"1 clips missing from the cache \(run extract_frames first\).*007_008\.npy"):
        su.FrameClipDataset(items + [extra], cache)
