"""Data: every dataset layout listed (FF++ official and Kaggle, Celeb-DF v2, DFDC, your own folders),
identities and splits, frame extraction (with bad videos, interruptions, crashes and full disks),
the clip dataset, and the demo's synthetic data."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import scarlet_utils as su

from conftest import SHARED_DATA, bar_frames, decode_all, link_to_dev_full, official_path, write_bgr

REPO = Path(__file__).resolve().parents[1]
REAL_FACES = SHARED_DATA / "real_faces"
SPLITS_DIR = SHARED_DATA / "ffpp_splits"
REAL_IDS = ["004", "519", "634"]
FAKES = {"Deepfakes": "519_515", "Face2Face": "750_743", "FaceSwap": "634_660", "NeuralTextures": "004_982"}
ALL_METHODS = list(FAKES)
SAMPLE_METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
METHOD_SETS = (("Deepfakes",), ("Deepfakes", "FaceSwap"), tuple(SAMPLE_METHODS))


def real(vid: str, method: str = "original") -> su.VideoItem:
    return su.VideoItem(Path(f"/d/{method}/{vid}.mp4"), 0, method, vid)


def fake(vid: str, method: str = "Deepfakes") -> su.VideoItem:
    return su.VideoItem(Path(f"/d/{method}/{vid}.mp4"), 1, method, vid)


def ids(items) -> list[str]:
    return [i.video_id for i in items]


# -- list_videos: FF++ -----------------------------------------------------------------------------


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


def test_empty_class_folder_names_the_folder(tmp_path):
    write_bgr(tmp_path / "Deepfakes" / "000_001.mp4", bar_frames(3))
    (tmp_path / "original").mkdir()
    (tmp_path / "original" / "notes.txt").write_text("no videos here")
    with pytest.raises(FileNotFoundError, match=r"need real and fake videos, found \{'Deepfakes': 1\}; no video "
                       r"files \(\.mp4, .*\) in " + re.escape(str(tmp_path / "original"))):
        su.list_videos(tmp_path)


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


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")


def _official_tree(root: Path, actors: bool = True) -> Path:
    for rel in ["original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/001.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4",
                "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4"]:
        _touch(root / rel)
    if actors:
        for name in ["01__exit_phone_room.mp4", "02__walking_outside.mp4"]:
            _touch(root / "original_sequences/actors/c23/videos" / name)
    return root


def test_list_videos_includes_the_dfd_actors(tmp_path, caplog):
    root = _official_tree(tmp_path / "ffpp")
    items = su.list_videos(root, ["Deepfakes", "DeepFakeDetection"])
    assert [(i.method, i.label, i.video_id) for i in items] == [
        ("DeepFakeDetection", 1, "01_02__exit_phone_room__YVGY8LOK"),
        ("Deepfakes", 1, "000_001"),
        ("actors", 0, "01__exit_phone_room"),
        ("actors", 0, "02__walking_outside"),
        ("original", 0, "000"),
        ("original", 0, "001"),
    ]
    assert items[2].path == root / "original_sequences/actors/c23/videos/01__exit_phone_room.mp4"
    assert su.available_methods(root) == ["Deepfakes", "DeepFakeDetection"]
    assert "actors" not in {i.method for i in su.list_videos(root, ["Deepfakes"])}  # only with DFD
    assert su.count_identity_leaks(items[2:3], items) == 2  # actor 01: its original and the DFD fake
    # without the actors folder: DFD fakes listed, and a warning that they have no reals
    bare = _official_tree(tmp_path / "bare", actors=False)
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        items = su.list_videos(bare, ["DeepFakeDetection"])
    assert {i.method for i in items} == {"original", "DeepFakeDetection"}
    assert "no DeepFakeDetection originals (actors)" in caplog.text


def test_list_videos_kaggle_actors(tmp_path, caplog):
    root = tmp_path / "kaggle"
    for rel in ["original/000.mp4", "DeepFakeDetection/01_02__exit_phone_room__YVGY8LOK.mp4"]:
        _touch(root / rel)
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        items = su.list_videos(root, "DeepFakeDetection")
    assert [i.method for i in items] == ["DeepFakeDetection", "original"]
    assert "no matching real videos" in caplog.text and str(root / "actors") in caplog.text
    _touch(root / "actors" / "01__exit_phone_room.mp4")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        items = su.list_videos(root, "DeepFakeDetection")
    assert [(i.method, i.label) for i in items] == [("DeepFakeDetection", 1), ("actors", 0), ("original", 0)]
    assert not caplog.text


# -- other datasets: Celeb-DF v2, DFDC, your own folders, FF++ at c40 ------------------------------
# Each layout is built from symlinks to the real videos in ../shared/data (no video is copied), with
# the text and JSON lists those datasets ship, and read through the public functions.


@pytest.fixture
def real_clips(ffpp_root) -> list[Path]:
    clips = sorted(REAL_FACES.glob("LipNet__*.mpg"))[:4]
    if len(clips) < 4:
        pytest.skip("the shared real_faces videos are absent")
    return clips


def _link(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


@pytest.fixture
def celeb_root(tmp_path, real_clips, ffpp_videos) -> Path:
    """Celeb-DF v2's layout: two celebrities, one YouTube video, two fakes, and the test list."""
    root = tmp_path / "Celeb-DF-v2"
    _link(root / "Celeb-real" / "id0_0000.mp4", real_clips[0])
    _link(root / "Celeb-real" / "id1_0001.mp4", real_clips[1])
    _link(root / "YouTube-real" / "00003.mp4", real_clips[2])
    _link(root / "Celeb-synthesis" / "id0_id1_0000.mp4", ffpp_videos[("Deepfakes", "519_515")])
    _link(root / "Celeb-synthesis" / "id1_id0_0001.mp4", ffpp_videos[("FaceSwap", "634_660")])
    # 1 means real in this list, 0 fake; a listed video may be missing, and is still listed
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00003.mp4\n0 Celeb-synthesis/id1_id0_0001.mp4\n1 Celeb-real/id1_0001.mp4\n"
        "0 Celeb-synthesis/id5_id6_0009.mp4\n", encoding="utf-8")
    return root


def test_celeb_df_layout_labels_methods_and_people(celeb_root):
    assert su.detect_layout(celeb_root) == "celeb-df"
    items = su.list_videos(celeb_root)
    got = {(i.method, i.video_id): (i.label, i.dataset, i.people) for i in items}
    assert got == {
        ("Celeb-real", "id0_0000"): (0, "Celeb-DF-v2", ("celeb:id0",)),
        ("Celeb-real", "id1_0001"): (0, "Celeb-DF-v2", ("celeb:id1",)),
        ("YouTube-real", "00003"): (0, "Celeb-DF-v2", ("celeb-youtube:00003",)),
        ("Celeb-synthesis", "id0_id1_0000"): (1, "Celeb-DF-v2", ("celeb:id0", "celeb:id1")),
        ("Celeb-synthesis", "id1_id0_0001"): (1, "Celeb-DF-v2", ("celeb:id1", "celeb:id0")),
    }
    assert su.available_methods(celeb_root) == ["Celeb-synthesis"]
    by_id = {i.video_id: i for i in items}
    # the fake of celebrity 0 with 1's face shares a face with both, never with the YouTube video
    assert su.count_identity_leaks([by_id["id0_id1_0000"]], [by_id["id1_0001"], by_id["00003"]]) == 1
    assert su.video_identities(by_id["id0_id1_0000"]) == {"celeb:id0", "celeb:id1"}


def test_celeb_df_test_list_gives_the_standard_test_set_with_its_labels(celeb_root, caplog):
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        test, name = su.dataset_test_items(celeb_root)
    assert [(i.method, i.video_id, i.label) for i in test] == [
        ("YouTube-real", "00003", 0), ("Celeb-synthesis", "id1_id0_0001", 1), ("Celeb-real", "id1_0001", 0)]
    assert name == "Celeb-DF-v2 test list, 3 videos"  # in the list's order; "1" is real
    said = [r.getMessage() for r in caplog.records if r.name == "scarlet"]  # the missing one: counted, left out
    assert len(said) == 1 and "1 of its 4 videos are not under" in said[0] and "id5_id6_0009.mp4" in said[0]
    assert su.cache_path(test[0], "/c") == Path("/c/Celeb-DF-v2/YouTube-real/00003.npy")  # beside FF++'s, never mixed
    (celeb_root / "List_of_testing_videos.txt").write_text("real Celeb-real/id0_0000.mp4\n", encoding="utf-8")
    with pytest.raises(ValueError, match="LABEL 1 \\(real\\) or 0 \\(fake\\)"):
        su.dataset_test_items(celeb_root)
    (celeb_root / "List_of_testing_videos.txt").unlink()
    with pytest.raises(FileNotFoundError, match="List_of_testing_videos.txt"):
        su.dataset_test_items(celeb_root)


@pytest.fixture
def dfdc_root(tmp_path, real_clips, ffpp_videos) -> Path:
    """Two DFDC parts (the second one level deeper), 2 reals and 5 fakes, one fake listed but absent."""
    root = tmp_path / "dfdc"
    fakes = [ffpp_videos[k] for k in (("Deepfakes", "519_515"), ("Face2Face", "750_743"), ("FaceSwap", "634_660"),
                                      ("NeuralTextures", "004_982"))]
    part0, part1 = root / "dfdc_train_part_0", root / "dfdc_train_part_1" / "dfdc_train_part_1"
    _link(part0 / "aaaaaaaaaa.mp4", real_clips[0])
    for name, target in zip(("bbbbbbbbbb.mp4", "cccccccccc.mp4", "dddddddddd.mp4"), fakes):
        _link(part0 / name, target)
    (part0 / "metadata.json").write_text(json.dumps({
        "aaaaaaaaaa.mp4": {"label": "REAL", "split": "train", "original": None},
        **{n: {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"}
           for n in ("bbbbbbbbbb.mp4", "cccccccccc.mp4", "dddddddddd.mp4")}}), encoding="utf-8")
    _link(part1 / "eeeeeeeeee.mp4", real_clips[1])
    _link(part1 / "ffffffffff.mp4", fakes[3])
    (part1 / "metadata.json").write_text(json.dumps({
        "eeeeeeeeee.mp4": {"label": "REAL", "split": "train", "original": None},
        "ffffffffff.mp4": {"label": "FAKE", "split": "train", "original": "eeeeeeeeee.mp4"},
        "gggggggggg.mp4": {"label": "FAKE", "split": "train", "original": "eeeeeeeeee.mp4"}}), encoding="utf-8")
    return root


def test_dfdc_parts_list_every_video_with_its_group(dfdc_root, caplog):
    assert su.detect_layout(dfdc_root) == "dfdc"
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        items = su.list_videos(dfdc_root)
    said = [r.getMessage() for r in caplog.records if r.name == "scarlet"]
    assert len(said) == 1 and "1 of its 3 videos" in said[0] and "gggggggggg.mp4" in said[0]
    got = {i.video_id: (i.label, i.method, i.dataset, i.people) for i in items}
    assert got == {
        "aaaaaaaaaa": (0, "DFDC-real", "DFDC", ("dfdc:aaaaaaaaaa",)),
        "bbbbbbbbbb": (1, "DFDC", "DFDC", ("dfdc:aaaaaaaaaa",)),
        "cccccccccc": (1, "DFDC", "DFDC", ("dfdc:aaaaaaaaaa",)),
        "dddddddddd": (1, "DFDC", "DFDC", ("dfdc:aaaaaaaaaa",)),
        "eeeeeeeeee": (0, "DFDC-real", "DFDC", ("dfdc:eeeeeeeeee",)),
        "ffffffffff": (1, "DFDC", "DFDC", ("dfdc:eeeeeeeeee",)),
    }
    # a fake and its original are one group: an identity split keeps them on one side
    split = su.make_split(items, n_train=2, n_val=2, seed=0, strategy="identity")
    assert su.count_identity_leaks(split.train, split.val) == 0


def test_dfdc_test_set_is_a_balanced_seeded_sample(dfdc_root):
    test, name = su.dataset_test_items(dfdc_root, n_eval=5, seed=3)
    assert sorted(i.label for i in test) == [0, 0, 1, 1]  # 2 reals: 2 of the 4 fakes
    assert name == "DFDC labelled videos (not its test set), 4 of 6 drawn balanced"
    assert (test, name) == su.dataset_test_items(dfdc_root, n_eval=5, seed=3)  # the seed decides
    draws = {tuple(i.video_id for i in su.dataset_test_items(dfdc_root, 5, seed=s)[0] if i.label) for s in range(8)}
    assert len(draws) > 1  # and another seed draws other fakes
    assert sorted(i.label for i in su.dataset_test_items(dfdc_root, n_eval=2)[0]) == [0, 1]  # at most n_eval
    every, name = su.dataset_test_items(dfdc_root, n_eval=None)
    assert len(every) == 6 and name == "DFDC labelled videos (not its test set), all 6 videos"


def test_a_broken_dfdc_metadata_file_is_named(dfdc_root):
    (dfdc_root / "dfdc_train_part_0" / "metadata.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="dfdc_train_part_0/metadata.json: not a DFDC metadata.json"):
        su.list_videos(dfdc_root)


def test_own_folders_each_video_its_own_person(tmp_path, real_clips, ffpp_videos):
    root = tmp_path / "my_videos"
    _link(root / "real" / "holiday.mp4", real_clips[0])
    _link(root / "real" / "2024" / "holiday.mp4", real_clips[1])  # the same name in a subfolder
    _link(root / "fake" / "suspect one.mp4", ffpp_videos[("Deepfakes", "519_515")])
    (root / "fake" / "notes.txt").write_text("not a video", encoding="utf-8")
    assert su.detect_layout(root) == "folders"
    items = su.list_videos(root)
    assert [(i.method, i.video_id, i.label, i.dataset) for i in items] == [
        ("fake", "suspect one", 1, "own-my_videos"), ("real", "2024__holiday", 0, "own-my_videos"),
        ("real", "holiday", 0, "own-my_videos")]
    assert len({su.cache_path(i, "/c") for i in items}) == 3  # two holiday.mp4, two clips
    assert len(su.identities_of(items)) == 3  # each video its own person
    assert su.dataset_test_items(root) == (items, "own-my_videos, all 3 videos")
    with pytest.raises(FileNotFoundError, match="no fakes of 'Deepfakes'.*methods found: \\['fake'\\]"):
        su.list_videos(root, ["Deepfakes"])


def test_ffpp_at_another_compression(tmp_path, ffpp_root, ffpp_videos):
    root = tmp_path / "ffpp"
    for (method, video_id), path in ffpp_videos.items():
        rel = official_path(method, video_id).relative_to(ffpp_root)
        _link(root / str(rel).replace("/c23/", "/c40/"), path)
    with pytest.raises(FileNotFoundError, match="no folder for 'original'"):
        su.list_videos(root)  # c23 by default: not there
    items = su.list_videos(root, compression="c40")
    assert len(items) == 7 and {i.dataset for i in items} == {"FaceForensics++ c40"}
    assert su.available_methods(root, "c40") == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
    c23 = {(i.method, i.video_id): i for i in su.list_videos(ffpp_root)}
    for item in items:  # the same ids as c23, other clips: never the c23 cache's
        assert su.cache_path(item, "/c") != su.cache_path(c23[(item.method, item.video_id)], "/c")
        assert su.video_identities(item) == su.video_identities(c23[(item.method, item.video_id)])
    test, name = su.dataset_test_items(root, compression="c40")  # the official test pairs: 634 and 634_660
    assert sorted(i.video_id for i in test) == ["634", "634_660"]
    assert name == "FaceForensics++ c40 official test pairs, 2 videos"
    with pytest.raises(ValueError, match="compression 'c99'"):
        su.list_videos(root, compression="c99")


def test_kaggle_mirror_is_c23_only(kaggle_root):
    with pytest.raises(ValueError, match="Kaggle mirror holds c23 only"):
        su.list_videos(kaggle_root, compression="c40")


def test_a_split_of_another_dataset_keeps_its_dataset_and_people(celeb_root, tmp_path):
    items = su.list_videos(celeb_root)
    split = su.make_split(items, n_train=2, n_val=2, seed=0, strategy="random")
    path = su.save_split(split, tmp_path / "split.json", celeb_root)
    loaded = su.load_split(path, celeb_root)
    assert loaded.train == split.train and loaded.val == split.val  # dataset and people come back
    moved = su.load_split(path, tmp_path / "elsewhere")
    assert moved.same_videos(split) and not moved.train[0].path.is_file()
    ffpp_like = su.Split([su.VideoItem(Path("x"), i.label, i.method, i.video_id) for i in split.train],
                         [su.VideoItem(Path("x"), i.label, i.method, i.video_id) for i in split.val])
    assert not ffpp_like.same_videos(split)  # the same names in another dataset are other videos
    raw = json.loads(path.read_text(encoding="utf-8"))["train"][0]
    assert raw["dataset"] == "Celeb-DF-v2" and isinstance(raw["people"], list) and raw["people"]


def test_celeb_clip_extracts_like_read_clip(celeb_root, tmp_path):
    item = next(i for i in su.list_videos(celeb_root) if i.video_id == "id0_0000")
    report = su.extract_frames([item], tmp_path / "cache", 4, 32, workers=0)
    assert report.done == [item]
    np.testing.assert_array_equal(np.load(su.cache_path(item, tmp_path / "cache")), su.read_video_frames(item.path, 4, 32))


def test_find_datasets_lists_every_root_under_the_input_folder(tmp_path, celeb_root, dfdc_root, kaggle_root):
    # Kaggle's /kaggle/input: one folder per attached dataset, a dataset's root at any depth in it.
    inputs = tmp_path / "input"
    for name, root in (("celeb-df-v2", celeb_root), ("deepfake-detection-challenge", dfdc_root),
                       ("ff-c23", kaggle_root)):
        (inputs / name).mkdir(parents=True)
        (inputs / name / root.name).symlink_to(root, target_is_directory=True)
    (inputs / "some-weights" / "timesformer").mkdir(parents=True)  # not a dataset
    found = su.find_datasets([inputs])
    assert found == [inputs / "celeb-df-v2" / celeb_root.name, inputs / "deepfake-detection-challenge" / "dfdc",
                     inputs / "ff-c23" / kaggle_root.name]  # the DFDC parts inside its root are not roots of their own
    assert [su.detect_layout(r) for r in found] == ["celeb-df", "dfdc", "kaggle"]
    assert su.find_datasets([tmp_path / "nowhere"]) == []


def _dfdc_part(folder: Path, videos: dict[str, tuple[Path, str | None]]) -> None:
    """A DFDC part: ``videos`` (name: (target, original name or None for a real)) and its metadata.json."""
    for name, (target, _) in videos.items():
        _link(folder / name, target)
    (folder / "metadata.json").write_text(json.dumps({
        name: {"label": "FAKE" if original else "REAL", "split": "train", "original": original}
        for name, (_, original) in videos.items()}), encoding="utf-8")


def test_a_folder_of_dfdc_parts_is_one_dataset_under_one_n_eval(tmp_path, real_clips, ffpp_videos):
    # The archives of parts 0-9 unpack as dfdc_train_part_0N/dfdc_train_part_N/; from 10 on the names match.
    fakes = [ffpp_videos[k] for k in (("Deepfakes", "519_515"), ("Face2Face", "750_743"), ("FaceSwap", "634_660"))]
    mount = tmp_path / "input" / "datasets" / "someone" / "dfdc-parts"
    for k, (outer, inner) in enumerate((("dfdc_train_part_00", "dfdc_train_part_0"),
                                        ("dfdc_train_part_01", "dfdc_train_part_1"),
                                        ("dfdc_train_part_10", "dfdc_train_part_10"))):
        _dfdc_part(mount / outer / inner, {f"r{k}.mp4": (real_clips[k], None), f"f{k}.mp4": (fakes[k], f"r{k}.mp4")})
    assert su.find_datasets([tmp_path / "input"]) == [mount]  # one dataset, not three
    assert su.detect_layout(mount) == "dfdc" and len(su.list_videos(mount)) == 6
    test, name = su.dataset_test_items(mount, n_eval=4, seed=0)  # N_EVAL bounds the parts together
    assert sorted(i.label for i in test) == [0, 0, 1, 1] and name.endswith(", 4 of 6 drawn balanced")
    (mount / "dfdc_train_part_02" / "dfdc_train_part_3").mkdir(parents=True)  # numbers that differ: not a part
    (mount / "dfdc_train_part_02" / "dfdc_train_part_3" / "metadata.json").write_text("{not json")
    assert len(su.list_videos(mount)) == 6


def test_dfdc_public_test_set_is_read_from_its_labels_csv(tmp_path, real_clips, ffpp_videos):
    root = tmp_path / "dfdc-test"
    _link(root / "test" / "aalscayrfi.mp4", real_clips[0])
    _link(root / "test" / "bbbbbbbbbb.mp4", ffpp_videos[("Deepfakes", "519_515")])
    _link(root / "test" / "cccccccccc.mp4", ffpp_videos[("FaceSwap", "634_660")])
    (root / "test" / "labels.csv").write_text("\ufefffilename,label\naalscayrfi.mp4,0\nbbbbbbbbbb.mp4,1\n"
                                              "cccccccccc.mp4,1\n", encoding="utf-8")
    (tmp_path / "other" / "x").mkdir(parents=True)
    (tmp_path / "other" / "x" / "labels.csv").write_text("id,name\n1,a\n")  # another labels.csv: no dataset
    (tmp_path / "other" / "y").mkdir()
    (tmp_path / "other" / "y" / "labels.csv").write_bytes(b"caf\xe9\n")  # not UTF-8: no dataset, no error
    (tmp_path / "other" / "z" / "labels.csv").mkdir(parents=True)  # a folder of that name
    assert su.find_datasets([tmp_path]) == [root]
    test, name = su.dataset_test_items(root, n_eval=None)
    assert [(i.video_id, i.label, i.dataset) for i in test] == [("aalscayrfi", 0, "DFDC"), ("bbbbbbbbbb", 1, "DFDC"),
                                                                 ("cccccccccc", 1, "DFDC")]
    assert name == "DFDC public test set, all 3 videos"
    _dfdc_part(root / "dfdc_train_part_5", {"r.mp4": (real_clips[1], None), "f.mp4": (real_clips[2], "r.mp4")})
    test, name = su.dataset_test_items(root, n_eval=2)  # training parts beside it are not its test set
    assert [i.video_id for i in test] == ["aalscayrfi", test[1].video_id] and test[1].video_id in ("bbbbbbbbbb", "cccccccccc")
    assert name == "DFDC public test set, 2 of 3 drawn balanced"


@pytest.mark.parametrize("listing", [
    "\ufeff1 YouTube-real/00003.mp4\n0 Celeb-synthesis/id1_id0_0001.mp4\n",  # a BOM
    "1 Celeb-DF-v2/YouTube-real/00003.mp4\n0 Celeb-DF-v2/Celeb-synthesis/id1_id0_0001.mp4\n",  # the root's name first
    "1 YouTube-real\\00003.mp4\r\n0 Celeb-DF-v2\\Celeb-synthesis\\id1_id0_0001.mp4\r\n",  # backslashes
], ids=["bom", "prefix", "backslashes"])
def test_celeb_df_test_list_as_mirrors_write_it(celeb_root, listing):
    (celeb_root / "List_of_testing_videos.txt").write_bytes(listing.encode("utf-8"))
    test, name = su.dataset_test_items(celeb_root)
    assert [(i.path, i.label) for i in test] == [(celeb_root / "YouTube-real" / "00003.mp4", 0),
                                                  (celeb_root / "Celeb-synthesis" / "id1_id0_0001.mp4", 1)]
    assert all(i.path.is_file() for i in test) and name == "Celeb-DF-v2 test list, 2 videos"


def test_standard_test_sets_name_each_root_and_report_the_unreadable(tmp_path, dfdc_root, celeb_root, real_clips,
                                                                     ffpp_videos):
    other = tmp_path / "train_sample_videos"  # another DFDC root with as many videos: named by its folder
    _dfdc_part(other, {f"r{k}.mp4": (real_clips[k], None) for k in range(3)}
               | {f"f{k}.mp4": (ffpp_videos[("Deepfakes", "519_515")], "r0.mp4") for k in range(3)})
    (tmp_path / "nothing").mkdir()
    sets, notes = su.standard_test_sets([dfdc_root, celeb_root, other, tmp_path / "nothing"], n_eval=None)
    assert list(sets) == ["DFDC labelled videos (not its test set), all 6 videos (dfdc)",
                          "Celeb-DF-v2 test list, 3 videos",
                          "DFDC labelled videos (not its test set), all 6 videos (train_sample_videos)"]
    assert [root for root, _ in sets.values()] == [dfdc_root, celeb_root, other]
    assert len(notes) == 1 and notes[0].startswith(f"{tmp_path / 'nothing'}: skipped: ") and "not a data root" in notes[0]


# -- identities and the official FF++ lists (checked against ../shared/data/ffpp_splits) -----------


def _shared_official_lists() -> dict[str, list[list[str]]]:
    """The official FF++ lists as shipped in ../shared/data/ffpp_splits (skips when absent)."""
    if not SPLITS_DIR.is_dir():
        pytest.skip(f"{SPLITS_DIR} not found: clone the repo with ../shared/data beside it")
    return {part: json.loads((SPLITS_DIR / f"{part}.json").read_text(encoding="utf-8")) for part in su.SPLIT_PARTS}


def _module_official_pairs() -> dict[str, set[frozenset[str]]]:
    """The pairs the module's ``official_part`` knows, found through that public function alone:
    every two ids of the same part that it places as a fake ``T_S``."""
    by_part: dict[str, list[str]] = {}
    for n in range(1000):
        by_part.setdefault(su.official_part(f"{n:03d}"), []).append(f"{n:03d}")
    pairs: dict[str, set[frozenset[str]]] = {}
    for part, members in by_part.items():
        for k, a in enumerate(members):
            for b in members[k + 1:]:
                if su.official_part(f"{a}_{b}") is not None:
                    pairs.setdefault(part, set()).add(frozenset((a, b)))
    return pairs


def test_official_lists_in_the_module_agree_with_the_official_files():
    raw = _shared_official_lists()
    # the files as SOURCES.md describes them: 360 / 70 / 70 [target, source] pairs, every id once
    assert {part: len(pairs) for part, pairs in raw.items()} == {"train": 360, "val": 70, "test": 70}
    every = Counter(x for pairs in raw.values() for pair in pairs for x in pair)
    assert sorted(every) == [f"{n:03d}" for n in range(1000)] and set(every.values()) == {1}
    for part, pairs in raw.items():
        for t, s in pairs:
            assert su.official_part(f"{t}_{s}") == part, (t, s)
            assert su.official_part(f"{s}_{t}") == part, (s, t)  # the reverse swap is the same pair
            assert su.official_part(t) == part and su.official_part(s) == part, (t, s)
            assert su.official_part(fake(f"{t}_{s}", "NeuralTextures")) == part
    # and nothing more: no other two ids make an official pair, and no id lies outside the lists
    assert _module_official_pairs() == {part: {frozenset(p) for p in pairs} for part, pairs in raw.items()}


def test_official_part_outside_the_lists():
    assert su.official_part("1000") is None and su.official_part("abc") is None
    train = su.official_part("071") == su.official_part("087") == "train"
    assert train and su.official_part("071_087") is None  # both in train, but not swapped with each other


def test_video_identities():
    assert su.video_identities("004") == {"004"}
    assert su.video_identities("519_515") == {"519", "515"}
    assert su.video_identities(fake("750_743", "Face2Face")) == {"750", "743"}
    assert su.video_identities(real("634")) == {"634"}
    # DeepFakeDetection: actors, in their own namespace
    assert su.video_identities("01_02__exit_phone_room__YVGY8LOK") == {"actor:01", "actor:02"}
    assert su.video_identities("01__exit_phone_room") == {"actor:01"}
    assert su.video_identities(real("01__exit_phone_room", "actors")) == {"actor:01"}
    assert su.video_identities(fake("01_02__exit_phone_room__YVGY8LOK", "DeepFakeDetection")) == {"actor:01", "actor:02"}
    assert not su.video_identities("01__hugging_happy") & su.video_identities("001_002")
    assert isinstance(su.video_identities("000_003"), frozenset)


def test_official_part():
    assert su.official_part("519") == su.official_part("519_515") == su.official_part("515_519") == "train"
    assert su.official_part("004_982") == "val" and su.official_part(fake("634_660", "FaceSwap")) == "test"
    assert su.official_part("519_004") is None  # both ids listed, but not as a pair
    assert su.official_part("01__exit_phone_room") is None
    assert su.official_part("01_02__exit_phone_room__YVGY8LOK") is None


def test_count_identity_leaks_hand_count():
    train = [real("000"), fake("002_003")]  # identities 000, 002, 003
    other = [real("001"), real("002"), real("003"), fake("000_001"), fake("001_004")]
    # 001 no; 002 yes; 003 yes; 000_001 yes (000); 001_004 no
    assert su.count_identity_leaks(train, other) == 3
    # the other way: 000 meets 000_001; 002_003 meets 002 and 003
    assert su.count_identity_leaks(other, train) == 2
    assert su.count_identity_leaks([], other) == 0 and su.count_identity_leaks(train, []) == 0


def test_identity_groups_join_videos_sharing_a_face():
    items = [real("005"), fake("003_000"), real("001"), real("000"), fake("002_001"), real("003"),
             fake("01_02__walk__X", "DeepFakeDetection"), real("02__walk", "actors")]
    # faces by name: 000 (with 003: 003_000, 000, 003), 001 (002_001, 001), 005, actor:01 (with actor:02)
    assert su.identity_groups(items).tolist() == [2, 0, 1, 0, 1, 0, 3, 3]
    order = random.Random(1).sample(range(len(items)), len(items))
    assert su.identity_groups([items[k] for k in order]).tolist() == [[2, 0, 1, 0, 1, 0, 3, 3][k] for k in order]
    assert su.identity_groups([]).tolist() == []


def official_pair_list() -> list[tuple[str, str]]:
    """The 500 official [target, source] pairs: from the shared lists where present, else what the
    module's ``official_part`` knows (the test above checks that both are the same)."""
    if SPLITS_DIR.is_dir():
        return [tuple(p) for part in _shared_official_lists().values() for p in part]
    return [tuple(sorted(p)) for pairs in _module_official_pairs().values() for p in pairs]


def build_ffpp_id_space(methods=("Deepfakes",)) -> list[su.VideoItem]:
    """Items (no files) for FF++'s whole id space, as the leakage table counts it: the 1000 reals
    ``ffpp/original/000.mp4`` .. ``999.mp4`` and, per method, the 1000 fakes ``T_S`` and ``S_T`` of
    the 500 official pairs."""
    root = Path("ffpp")
    items = [su.VideoItem(root / "original" / f"{n:03d}.mp4", 0, "original", f"{n:03d}") for n in range(1000)]
    items += [su.VideoItem(root / m / f"{v}.mp4", 1, m, v) for m in methods for t, s in official_pair_list()
              for v in (f"{t}_{s}", f"{s}_{t}")]
    return sorted(items, key=lambda i: str(i.path))


def _brute_force_leaks(train, other) -> int:
    """Pairwise, parsing the ids by hand (youtube ids only)."""
    return sum(any(set(o.video_id.split("_")) & set(t.video_id.split("_")) for t in train) for o in other)


def test_the_id_space_is_every_id_once_as_a_real_and_twice_in_a_fake():
    space = build_ffpp_id_space()
    assert len(space) == 2000 and len(set(space)) == 2000
    assert sorted(ids(i for i in space if i.label == 0)) == [f"{n:03d}" for n in range(1000)]
    fakes = [i for i in space if i.label == 1]
    assert {"519_515", "515_519", "004_982", "982_004"} <= set(ids(fakes))  # the shared sample's pairs
    assert Counter(x for i in fakes for x in su.video_identities(i)) == {f"{n:03d}": 2 for n in range(1000)}
    assert Counter(su.official_part(i) for i in space) == {"train": 1440, "val": 280, "test": 280}


def test_leakage_table_of_the_readme():
    """README, "Splits": on the full FF++ id space (1000 originals + 1000 Deepfakes, seed 0), 452 of the
    random split's 800 validation videos share a face with training; identity 0; official 0 of 280."""
    space = build_ffpp_id_space()
    rand = su.make_split(space, 600, 800, seed=0)
    assert (len(rand.train), len(rand.val)) == (600, 800)
    leaks = su.count_identity_leaks(rand.train, rand.val)
    assert leaks == _brute_force_leaks(rand.train, rand.val) == 452
    ident = su.make_split(space, 600, 800, seed=0, strategy="identity")
    assert len(ident.train) == 600 and len(ident.val) == 800
    assert su.count_identity_leaks(ident.train, ident.val) == 0 == su.count_identity_leaks(ident.val, ident.train)
    assert _brute_force_leaks(ident.train, ident.val) == 0
    official = su.make_split(space, 600, 800, seed=0, strategy="official")
    assert (len(official.train), len(official.val), len(official.test)) == (1440, 280, 280)
    assert su.count_identity_leaks(official.train, official.val) == 0 == _brute_force_leaks(official.train, official.val)
    assert su.count_identity_leaks(official.train + official.val, official.test) == 0


def test_random_split_leak_count_small_pool():
    pool = [real(f"{n:03d}") for n in range(8)] + [fake(f"{t:03d}_{s:03d}") for t, s in
                                                   [(0, 1), (1, 0), (2, 3), (3, 2), (4, 5), (5, 4), (6, 7), (7, 6)]]
    for seed in range(5):
        split = su.make_split(pool, 6, 6, seed=seed)
        assert su.count_identity_leaks(split.train, split.val) == _brute_force_leaks(split.train, split.val)


# -- make_split: random, identity, official --------------------------------------------------------


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


def test_every_video_failing_leaves_no_split(tmp_path):
    # all real videos unreadable: the split says how many it needs rather than training on one class
    bad = tmp_path / "original" / "000.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"\0" * 100)
    write_bgr(tmp_path / "Deepfakes" / "000_001.mp4", bar_frames(3))
    report = su.extract_frames(su.list_videos(tmp_path), tmp_path / "cache", NUM_FRAMES, SIZE, workers=0)
    assert [i.path for i, _ in report.failed] == [bad]
    with pytest.raises(ValueError, match="needs 1 real videos, only 0 available"):
        su.make_split(report.ok, 0, 2)


def test_a_video_that_failed_leaves_the_split_and_its_part_is_balanced_again(tmp_path):
    items = _items(6, 6)
    plan = su.make_split(items, 6, 6, seed=1)
    for i in items:  # every clip cached but one fake of training and one real of validation
        if i not in (next(f for f in plan.train if f.label), next(r for r in plan.val if not r.label)):
            (folder := su.cache_path(i, tmp_path / ("train" if i in plan.train else "val"))).parent.mkdir(
                parents=True, exist_ok=True)
            folder.write_bytes(b"")
    split = su.extracted_only(plan, tmp_path / "train", tmp_path / "val")
    # train had 4 real + 2 fake, val 2 + 4: each lost one video and one of the other class
    assert [(sum(i.label == 0 for i in p), sum(i.label for i in p)) for p in (split.train, split.val)] == [(3, 1), (1, 3)]
    assert set(split.train) < set(plan.train) and set(split.val) < set(plan.val)
    for i in plan.train:  # all cached: the split as drawn, in its order
        su.cache_path(i, tmp_path / "all").parent.mkdir(parents=True, exist_ok=True)
        su.cache_path(i, tmp_path / "all").write_bytes(b"")
    for i in plan.val:
        su.cache_path(i, tmp_path / "val").write_bytes(b"")
    assert su.extracted_only(plan, tmp_path / "all", tmp_path / "val") == plan
    with pytest.raises(ValueError, match="no real and fake videos left for val"):
        su.extracted_only(plan, tmp_path / "train", tmp_path / "nothing_here")


def _fixed_pool():
    reals = [real(f"{i:03d}") for i in range(10)]
    fakes = [fake(f"{i:03d}_{(i * 7 + 3) % 10:03d}") for i in range(12)]
    return reals + fakes


def test_random_split_unchanged_for_one_method():
    # Captured from the code before the identity/official strategies were added.
    split = su.make_split(_fixed_pool(), 6, 4, seed=0)
    assert ids(split.train) == ["007_002", "004", "011_000", "006_005", "006", "009"]
    assert ids(split.val) == ["004_001", "000", "002", "005_008"]
    split = su.make_split(list(reversed(_fixed_pool())), 6, 4, seed=5, strategy="random")
    assert ids(split.train) == ["011_000", "010_003", "007", "004", "007_002", "008_009"]
    assert ids(split.val) == ["000_003", "005", "009", "006"]
    assert split.strategy == "random" and split.test == []


def test_random_split_balances_methods():
    pool = [real(f"{n:03d}") for n in range(40)]
    pool += [fake(f"{n:03d}_{n + 1:03d}", m) for m, count in [("Deepfakes", 30), ("FaceSwap", 30), ("Face2Face", 4)]
             for n in range(count)]
    split = su.make_split(pool, 20, 20, seed=1)  # 20 fakes: 7 / 7 / 6 wanted, Face2Face has only 4
    fakes = Counter(i.method for i in split.train + split.val if i.label == 1)
    assert fakes == {"Deepfakes": 8, "FaceSwap": 8, "Face2Face": 4}
    split = su.make_split(pool, 10, 12, seed=1)  # 11 fakes: the remainder to the first methods by name
    assert Counter(i.method for i in split.train + split.val if i.label == 1) == {"Deepfakes": 4, "Face2Face": 4,
                                                                                   "FaceSwap": 3}


def _random_pool(r: random.Random):
    """FF++-like: reals and fakes T_S. Mostly disjoint pairs (as in FF++), sometimes random
    sources (components can then be large); sometimes several methods; a few videos missing."""
    vids = [f"{n:03d}" for n in sorted(r.sample(range(1000), r.randint(8, 80)))]
    methods = r.choice(METHOD_SETS)
    disjoint = r.random() < 0.7
    if disjoint:
        shuffled = r.sample(vids, len(vids))
        pairs = [(shuffled[k], shuffled[k + 1]) for k in range(0, len(shuffled) - 1, 2)]
        directed = [d for a, b in pairs for d in ((a, b), (b, a))]
    else:
        directed = [(t, r.choice([v for v in vids if v != t])) for t in vids if r.random() < 0.5]
    items = [real(v) for v in vids if r.random() < 0.9]
    items += [fake(f"{t}_{s}", m) for m in methods for t, s in directed if r.random() < 0.9]
    return items, disjoint


def test_identity_split_never_shares_an_identity():
    made = failed = 0
    for case in range(300):
        r = random.Random(case)
        items, disjoint = _random_pool(r)
        n_real, n_fake = sum(i.label == 0 for i in items), sum(i.label == 1 for i in items)
        if min(n_real, n_fake) < 3:
            continue
        per_class = r.randint(1, min(n_real, n_fake) // 3)
        n_train = r.randint(0, 2 * per_class - 1)
        n_val = 2 * per_class - n_train
        seed = r.randrange(1000)
        try:
            split = su.make_split(items, n_train, n_val, seed=seed, strategy="identity")
        except ValueError as exc:  # only large components (random sources) may make quotas impossible
            assert not disjoint, f"case {case}: {exc}"
            assert "cannot be met without sharing an identity" in str(exc)
            failed += 1
            continue
        made += 1
        assert len(split.train) == n_train and len(split.val) == n_val and split.test == []
        assert split.strategy == "identity" and split.seed == seed
        assert sum(i.label == 0 for i in split.train) == n_train // 2
        assert sum(i.label == 0 for i in split.train + split.val) == per_class  # the balanced pool
        assert len(set(split.train + split.val)) == 2 * per_class and set(split.train + split.val) <= set(items)
        assert su.count_identity_leaks(split.train, split.val) == 0
        assert su.count_identity_leaks(split.val, split.train) == 0
        methods = Counter(i.method for i in split.train + split.val if i.label == 1)
        available = Counter(i.method for i in items if i.label == 1)
        # fakes even across methods unless a method runs short
        full = [m for m in methods if methods[m] < available[m]]
        assert not full or max(methods[m] for m in full) - min(methods.values()) <= 1, (case, methods, available)
        again = su.make_split(r.sample(items, len(items)), n_train, n_val, seed=seed, strategy="identity")
        assert (again.train, again.val) == (split.train, split.val)  # deterministic, input order irrelevant
    assert made > 250 and failed < 10


def test_identity_split_keeps_method_balance_per_side():
    space = build_ffpp_id_space(SAMPLE_METHODS)
    split = su.make_split(space, 600, 800, seed=3, strategy="identity")
    assert Counter(i.method for i in split.train) == {"original": 300, **dict.fromkeys(SAMPLE_METHODS, 75)}
    assert Counter(i.method for i in split.val) == {"original": 400, **dict.fromkeys(SAMPLE_METHODS, 100)}
    assert su.count_identity_leaks(split.train, split.val) == 0
    other = su.make_split(space, 600, 800, seed=4, strategy="identity")
    assert set(other.train) != set(split.train)


def test_identity_split_impossible_quotas_raise():
    chain = [real(f"{n:03d}") for n in range(6)] + [fake(f"{n:03d}_{n + 1:03d}") for n in range(5)] + [fake("005_000")]
    with pytest.raises(ValueError, match=r"identity split of 4 train \+ 2 val cannot be met without sharing an "
                                         r"identity across sides: after all 1 identity groups, train still needs "
                                         r"nothing and val still needs 1 real, 1 Deepfakes"):
        su.make_split(chain, 4, 2, strategy="identity")
    with pytest.raises(ValueError, match="needs 7 real videos, only 6 available"):
        su.make_split(chain, 8, 6, strategy="identity")
    with pytest.raises(ValueError, match="must be even"):
        su.make_split(chain, 3, 2, strategy="identity")


def test_unknown_strategy_message():
    with pytest.raises(ValueError, match=r"unknown split strategy 'by_person'; expected one of \('random', "
                                         r"'identity', 'official'\)"):
        su.make_split(_fixed_pool(), 4, 4, strategy="by_person")


@pytest.mark.real_video
def test_official_split_of_the_sample(ffpp_root):
    items = su.list_videos(ffpp_root, SAMPLE_METHODS)
    parts = {i.video_id: su.official_part(i) for i in items}
    assert parts == {"519": "train", "519_515": "train", "750_743": "train", "004": "val", "004_982": "val",
                     "634": "test", "634_660": "test"}
    if SPLITS_DIR.is_dir():  # the same memberships, read from the JSON lists
        raw = {p: json.loads((SPLITS_DIR / f"{p}.json").read_text()) for p in su.SPLIT_PARTS}
        for vid, part in parts.items():
            people = set(vid.split("_"))
            assert any(people <= set(pair) for pair in raw[part]), (vid, part)
    for seed in range(3):
        split = su.make_split(items, seed=seed, strategy="official")  # n_train / n_val ignored
        assert split.strategy == "official" and split.seed == seed
        for part in su.SPLIT_PARTS:
            assert all(parts[i.video_id] == part for i in getattr(split, part))
        # balanced per part: train has 1 real (519) and 2 fakes of 2 methods; the one fake kept is
        # the remainder, which goes to the first method by name (Deepfakes)
        assert ids(sorted(split.train, key=lambda i: i.label)) == ["519", "519_515"]
        assert ids(sorted(split.val, key=lambda i: i.label)) == ["004", "004_982"]
        assert ids(sorted(split.test, key=lambda i: i.label)) == ["634", "634_660"]


def test_official_split_of_the_id_space(tmp_path, caplog):
    space = build_ffpp_id_space(SAMPLE_METHODS)
    extra = [real("01__exit_phone_room", "actors"), fake("01_02__exit_phone_room__YVGY8LOK", "DeepFakeDetection"),
             fake("519_004")]
    with caplog.at_level(logging.INFO, logger="scarlet"):
        split = su.make_split(space + extra, 10, 10, seed=0, strategy="official")
    assert "3 of 5003 videos are not in the official FF++ lists" in caplog.text
    expected = {"train": 720, "val": 140, "test": 140}  # reals: 2 per pair; fakes sub-sampled to match
    for part, n_real in expected.items():
        members = getattr(split, part)
        assert Counter(i.method for i in members) == {"original": n_real, **dict.fromkeys(SAMPLE_METHODS, n_real // 4)}
        assert all(su.official_part(i) == part for i in members)
    assert not set(extra) & set(split.train + split.val + split.test)
    assert su.count_identity_leaks(split.train, split.val + split.test) == 0
    assert su.count_identity_leaks(split.val, split.test) == 0
    assert su.load_split(su.save_split(split, tmp_path / "split.json")) == split  # test side round-trips
    again = su.make_split(list(reversed(space + extra)), seed=0, strategy="official")
    assert (again.train, again.val, again.test) == (split.train, split.val, split.test)


def test_official_split_with_nothing_listed_raises():
    with pytest.raises(ValueError, match="official split: no balanced real/fake videos for train and val"):
        su.make_split([real("01__a", "actors"), fake("01_02__a__X", "DeepFakeDetection")], strategy="official")


def test_held_out_items_are_the_validation_side_of_every_method(ffpp_root) -> None:
    items = su.list_videos(ffpp_root, ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"])
    official = su.make_split(items, strategy="official")
    assert sorted(i.video_id for i in su.held_out_items(items, official)) == ["004", "004_982"]
    # A hand-made identity split: val holds identity 634 (real) and 519 (real); fakes whose both
    # identities are val identities are held out, 519_515 is not (515 is not a val identity).
    by_id = {i.video_id: i for i in items}
    split = su.Split([by_id["004"], by_id["004_982"]], [by_id["634"], by_id["519"]], strategy="identity")
    assert sorted(i.video_id for i in su.held_out_items(items, split)) == ["519", "634"]
    assert su.count_identity_leaks(split.train, su.held_out_items(items, split)) == 0


# -- split.json ------------------------------------------------------------------------------------


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


# -- extract_frames --------------------------------------------------------------------------------


NUM_FRAMES, SIZE = 4, 32


@pytest.fixture(scope="module")
def sample_items(ffpp_root):
    """The sample but its 1080p video (it takes as long to decode as three others; the notebook's sample
    run extracts it, and every face test reads it)."""
    return [i for i in su.list_videos(ffpp_root, ALL_METHODS) if i.video_id != "750_743"]


@pytest.fixture(scope="module")
def reference_clips(sample_items):
    """``read_video_frames`` of each sample video, the ground truth for the cache."""
    return {i.path: su.read_video_frames(i.path, NUM_FRAMES, SIZE) for i in sample_items}


def _all_files(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.real_video
@pytest.mark.parametrize("workers, isolate", [(0, False), (2, False)], ids=["in-process", "2-threads"])
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


def test_extract_frames_caches_every_window_of_a_video_from_one_decode(coded_video, index_code, tmp_path,
                                                                       monkeypatch) -> None:
    items = [su.VideoItem(coded_video(40, "000.mp4"), 0, "original", "000"),
             su.VideoItem(coded_video(30, "000_001.mp4"), 1, "Deepfakes", "000_001")]
    decodes, real_grab = [], su._grab_frames

    def counting_grab(path, *args, **kwargs):
        decodes.append(Path(path).name)
        return real_grab(path, *args, **kwargs)

    monkeypatch.setattr(su, "_grab_frames", counting_grab)
    cache = su.cache_dir_for(tmp_path, 4, index_code.size, num_clips=3, stride=2)
    assert cache.name == "f4_s96_full_c3_w2" and su.cache_dir_for(tmp_path, 4, 96, stride=2).name == "f4_s96_full_w2"
    report = su.extract_frames(items, cache, 4, index_code.size, workers=0, num_clips=3, stride=2)
    assert report.done == items and decodes == ["000.mp4", "000_001.mp4"]  # one decode per video
    stored = [np.load(su.cache_path(i, cache)) for i in items]
    assert [c.shape for c in stored] == [(3, 4, 96, 96, 3)] * 2
    assert [[[index_code.decode(f) for f in window] for window in c] for c in stored] == [
        [[6, 8, 10, 12], [16, 18, 20, 22], [28, 30, 32, 34]], [[4, 6, 8, 10], [12, 14, 16, 18], [19, 21, 23, 25]]]


def test_extract_and_dataset_with_several_clips(coded_video, tmp_path) -> None:
    path = coded_video(40)
    item = su.VideoItem(path, 1, "Deepfakes", "000_001")
    cache = su.cache_dir_for(tmp_path, 4, 32, num_clips=3)
    assert cache.name == "f4_s32_full_c3" and su.cache_dir_for(tmp_path, 4, 32).name == "f4_s32_full"
    report = su.extract_frames([item], cache, num_frames=4, size=32, workers=0, num_clips=3)
    assert report.done == [item]
    stored = np.load(su.cache_path(item, cache))
    assert stored.shape == (3, 4, 32, 32, 3)
    x, label = su.FrameClipDataset([item], cache)[0]
    assert x.shape == (3, 4, 3, 32, 32) and label == 1
    expected = (torch.from_numpy(stored).permute(0, 1, 4, 2, 3).float() / 255 - 0.45) / 0.225
    torch.testing.assert_close(x, expected)


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


# -- extraction interrupted, crashing, on a full disk ----------------------------------------------


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
    paths = [write_bgr(tmp_path / "videos" / f"{k:03d}.mp4", bar_frames(12, seed=k)) for k in range(6)]
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
    paths = [write_bgr(tmp_path / "videos" / f"{n}.mp4", bar_frames(6, seed=k)) for k, n in enumerate(names)]
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
    paths = [write_bgr(tmp_path / "videos" / f"{k:03d}.mp4", bar_frames(6, seed=k)) for k in range(3)]
    script = tmp_path / "unguarded_extraction.py"
    script.write_text(_UNGUARDED_EXTRACTION.format(num_frames=NUM_FRAMES, size=SIZE))
    proc = subprocess.run([sys.executable, str(script), json.dumps([str(p) for p in paths]), str(tmp_path / "cache")],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("REPORT "))[len("REPORT "):])
    assert report == {"done": ["000", "001", "002"], "failed": []}  # not "the decoding process died" for each
    assert su.NO_PROCESSES in proc.stderr and "bootstrapping phase" in proc.stderr  # our cause, and Python's
    assert sorted(p.name for p in (tmp_path / "cache" / "original").iterdir()) == ["000.npy", "001.npy", "002.npy"]


def test_full_disk_stops_extraction_instead_of_failing_every_video(tmp_path, monkeypatch):
    paths = [write_bgr(tmp_path / "videos" / f"{k:03d}.mp4", bar_frames(6, seed=k)) for k in range(4)]
    items = [su.VideoItem(p, 0, "original", p.stem) for p in paths]
    cache = tmp_path / "cache"
    su.extract_frames(items[:1], cache, NUM_FRAMES, SIZE, workers=0)  # one clip already there
    decoded = []
    real_read_clip = su.read_clip
    monkeypatch.setattr(su, "read_clip", lambda p, *a, **k: decoded.append(p) or real_read_clip(p, *a, **k))
    dest = su.cache_path(items[1], cache)
    link_to_dev_full(dest)  # the kernel answers ENOSPC to the clip's write
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
    paths = [write_bgr(tmp_path / "videos" / f"{k:03d}.mp4", bar_frames(6, seed=k)) for k in range(4)]
    items = [su.VideoItem(p, 0, "original", p.stem) for p in paths]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "original").write_text("a file where the clips' folder should be")
    with pytest.raises(OSError, match=re.escape(str(cache / "original")) + r".*cannot write the clip.*Extraction stopped"):
        su.extract_frames(items, cache, NUM_FRAMES, SIZE, workers=2)


# -- FrameClipDataset, clip_to_tensor --------------------------------------------------------------


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


def _textbook(frames, mean, std, flip):
    x = torch.from_numpy(frames).float().permute(*range(frames.ndim - 3), -1, -3, -2) / 255.0
    if flip:
        x = x.flip(-1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("shape", [(8, 24, 20, 3), (3, 4, 16, 16, 3)], ids=["clip", "clips"])
@pytest.mark.parametrize("stats", [(su.KINETICS_MEAN, su.KINETICS_STD), ((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))])
def test_clip_to_tensor_is_bit_identical_to_the_formula(flip, shape, stats):
    frames = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    mean, std = stats
    out = su.clip_to_tensor(frames, mean, std, flip=flip)
    expected = _textbook(frames, mean, std, flip)
    assert out.shape == expected.shape and out.dtype == torch.float32
    assert torch.equal(out, expected)  # bit for bit, not approximately
    assert out.is_contiguous()
    assert np.array_equal(frames, np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8))  # kept


# -- training clips: one cached window, augmentation, real/fake pairs --------------------------------


@pytest.fixture
def windowed_cache(tmp_path):
    """One item whose cache holds K=4 distinct windows (4, 3, 8, 8, 3): (items, cache_dir, windows)."""
    item = su.VideoItem(Path("/d/original/000.mp4"), 0, "original", "000")
    windows = np.random.default_rng(2).integers(0, 256, (4, 3, 8, 8, 3), dtype=np.uint8)
    dest = su.cache_path(item, tmp_path / "windows")
    dest.parent.mkdir(parents=True)
    np.save(dest, windows)
    return [item], tmp_path / "windows", windows


def _tensor(frames: np.ndarray) -> torch.Tensor:
    return su.clip_to_tensor(frames, su.KINETICS_MEAN, su.KINETICS_STD)


def _which_window(x: torch.Tensor, windows: np.ndarray) -> int:
    hits = [k for k, w in enumerate(windows) if torch.equal(x, _tensor(w))]
    assert len(hits) == 1, "the training clip is not one of the cached windows"
    return hits[0]


def test_training_clip_is_one_cached_window_drawn_from_torchs_rng(windowed_cache):
    items, cache, windows = windowed_cache
    ds = su.FrameClipDataset(items, cache, augment="none")
    torch.manual_seed(7)
    drawn = [_which_window(ds[0][0], windows) for _ in range(40)]
    assert set(drawn) == {0, 1, 2, 3}  # the choice varies from draw to draw
    torch.manual_seed(7)
    np.random.seed(999)  # numpy's global RNG plays no part
    assert [_which_window(ds[0][0], windows) for _ in range(40)] == drawn
    torch.manual_seed(7)
    assert _which_window(su.FrameClipDataset(items, cache, augment=False)[0][0], windows) == drawn[0]
    flips = su.FrameClipDataset(items, cache, augment="flip")  # a window, flipped or not
    allowed = [_tensor(w) for w in windows] + [_tensor(w).flip(-1) for w in windows]
    assert all(any(torch.equal(flips[0][0], a) for a in allowed) for _ in range(10))


def test_evaluation_returns_every_window_untouched_and_draws_nothing(windowed_cache, cached_items):
    items, cache, windows = windowed_cache
    state = torch.get_rng_state()
    x, _ = su.FrameClipDataset(items, cache)[0]  # augment None: validation and test clips
    assert x.shape == (4, 3, 3, 8, 8) and torch.equal(x, _tensor(windows))
    items, cache, clips = cached_items
    ds = su.FrameClipDataset(items, cache, augment=None)
    assert all(torch.equal(ds[k][0], _tensor(clips[k])) for k in (0, 1))
    assert torch.equal(torch.get_rng_state(), state)  # the training draws are left as they were


def test_strong_augmentation_is_repeatable_under_torchs_seed(windowed_cache):
    items, cache, windows = windowed_cache
    ds = su.FrameClipDataset(items, cache, augment="strong")
    torch.manual_seed(3)
    first = [ds[0][0] for _ in range(6)]
    assert all(x.shape == (3, 3, 8, 8) and x.dtype == torch.float32 for x in first)
    torch.manual_seed(3)
    assert all(torch.equal(a, ds[0][0]) for a in first)
    assert not all(torch.equal(a, b) for a, b in zip(first, first[1:]))  # a new draw each time


def test_unknown_augment_names_the_choices(cached_items):
    items, cache, _ = cached_items
    with pytest.raises(ValueError, match=r"augment 'heavy': expected None, False or 'none', True or 'flip', "
                                         r"'strong'"):
        su.FrameClipDataset(items, cache, augment="heavy")


def test_augment_clip_applies_one_transform_to_every_frame():
    frame = np.random.default_rng(5).integers(0, 256, (1, 48, 40, 3), dtype=np.uint8)
    frame[0, 10:30, 8:20] = (250, 30, 30)  # a red patch among noise
    clip = np.repeat(frame, 5, axis=0)
    changed = 0
    for seed in range(12):
        out = su.augment_clip(clip, np.random.default_rng(seed))
        assert out.shape == clip.shape and out.dtype == np.uint8
        assert all(np.array_equal(out[t], out[0]) for t in range(5)), seed  # identical frames stay so
        assert np.array_equal(out, su.augment_clip(clip, np.random.default_rng(seed)))  # rng decides all
        changed += not np.array_equal(out, clip)
    assert changed >= 10  # every step is drawn with its own probability: a clip may come through untouched
    assert np.array_equal(clip, np.repeat(frame, 5, axis=0))  # the input is kept
    red = su.augment_clip(np.full((2, 16, 16, 3), (200, 40, 40), np.uint8), np.random.default_rng(0))
    assert (red[..., 0] > red[..., 2] + 60).mean() > 0.7  # RGB stays RGB (cv2 works in BGR)


def _pair_items():
    ffpp = [real(v) for v in ("000", "001", "003", "004", "005")]
    fakes = [fake("000_001"), fake("000_002", "FaceSwap"), fake("001_000"), fake("003_004"), fake("009_008")]
    c40 = [su.VideoItem(Path("/c40/original/002.mp4"), 0, "original", "002", "FaceForensics++ c40"),
           fake("002_005")]  # another dataset: not 002's own fake
    dfdc = [su.VideoItem(Path(f"/dfdc/{n}.mp4"), y, "DFDC" if y else "DFDC-real", n, "DFDC", (f"dfdc:{o}",))
            for n, y, o in (("aaa", 0, "aaa"), ("bbb", 1, "aaa"), ("ccc", 1, "zzz"))]  # bbb: aaa's fake
    return ffpp + fakes + c40 + dfdc


def test_paired_sampler_puts_each_real_before_its_own_fake():
    items = _pair_items()
    own = {"000": {"000_001", "000_002"}, "001": {"001_000"}, "003": {"003_004"}, "aaa": {"bbb"}}
    orders, firsts = set(), set()
    for seed in range(15):
        sampler = su.PairedSampler(items, torch.Generator().manual_seed(seed))
        order = list(sampler)
        assert len(sampler) == len(items) and sorted(order) == list(range(len(items)))  # every index once
        ids = [items[i].video_id for i in order]
        pairs = dict(zip(ids[::2], ids[1::2]))  # at even positions: a batch of 2, 4, ... keeps each pair
        assert all(pairs.get(r) in own[r] for r in own), ids
        orders.add(tuple(order))
        firsts.add(pairs["000"])
    assert len(orders) == 15 and firsts == own["000"]  # random order, and a random one of several fakes
    assert len({order.index(0) for order in orders}) > 3  # pairs anywhere in the epoch, not all first
    sampler = su.PairedSampler(items, torch.Generator().manual_seed(4))
    epochs = [list(sampler) for _ in range(3)]
    assert epochs[0] != epochs[1]  # a new order each epoch, from the generator
    again = su.PairedSampler(items, torch.Generator().manual_seed(4))
    assert [list(again) for _ in range(3)] == epochs  # the same generator state, the same epochs


# -- the demo's synthetic data set -----------------------------------------------------------------
# FF++ layout, decodable, deterministic, resumable, and a fake cue that lives in the face region over time.


DEMO_N, DEMO_FRAMES, DEMO_SIZE = 8, 16, 96


def read_video(path: Path) -> np.ndarray:
    """Decode all frames of a video as a float32 (T, H, W, 3) array."""
    frames = decode_all(path)
    assert frames, path
    return np.stack(frames).astype(np.float32)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return su.make_synthetic_dataset(tmp_path_factory.mktemp("ds"), n_per_class=DEMO_N, num_frames=DEMO_FRAMES,
                                     size=DEMO_SIZE, seed=3)


def test_layout(demo_root: Path) -> None:
    reals = sorted(p.name for p in (demo_root / "original").iterdir())
    fakes = sorted(p.name for p in (demo_root / "Deepfakes").iterdir())  # iterdir also sees hidden temp files
    assert reals == [f"{i:03d}.mp4" for i in range(DEMO_N)]
    assert len(fakes) == DEMO_N and all(re.fullmatch(r"\d{3}_\d{3}\.mp4", f) for f in fakes)
    pairs = [f[:-4].split("_") for f in fakes]
    real_ids = {r[:-4] for r in reals}
    assert all(t in real_ids and s in real_ids and t != s for t, s in pairs)
    assert sorted(t for t, _ in pairs) == sorted(real_ids)  # each real is the target of exactly one fake
    assert {(s, t) for t, s in pairs} == {(t, s) for t, s in pairs}  # swapped in pairs, as in FF++


def test_odd_count_still_pairs_every_real(tmp_path: Path) -> None:
    root = su.make_synthetic_dataset(tmp_path, n_per_class=5, num_frames=4, size=32, seed=0)
    pairs = [p.stem.split("_") for p in (root / "Deepfakes").glob("[0-9]*.mp4")]
    assert sorted(t for t, _ in pairs) == [f"{i:03d}" for i in range(5)] and all(t != s for t, s in pairs)


def test_videos_decode(demo_root: Path) -> None:
    for p in [*(demo_root / "original").glob("*.mp4"), *(demo_root / "Deepfakes").glob("*.mp4")]:
        cap = cv2.VideoCapture(str(p))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == DEMO_FRAMES, p
        cap.release()
        v = read_video(p)
        assert v.shape == (DEMO_FRAMES, DEMO_SIZE, DEMO_SIZE, 3), p
        assert 40 < v.mean() < 220 and v.std() > 20  # a real image, not a blank frame


def test_second_call_is_noop(demo_root: Path) -> None:
    files = sorted(demo_root.rglob("*.mp4"))
    before = {p: p.stat().st_mtime_ns for p in files}
    again = su.make_synthetic_dataset(demo_root, n_per_class=DEMO_N, num_frames=DEMO_FRAMES, size=DEMO_SIZE, seed=3)
    assert again == demo_root
    assert {p: p.stat().st_mtime_ns for p in sorted(demo_root.rglob("*.mp4"))} == before


def test_deterministic_and_resumable(demo_root: Path, tmp_path: Path) -> None:
    other = su.make_synthetic_dataset(tmp_path, n_per_class=DEMO_N, num_frames=DEMO_FRAMES, size=DEMO_SIZE, seed=3)
    victim = sorted((other / "Deepfakes").glob("*.mp4"))[3]
    victim.unlink()  # a partially written dataset must be completed with the identical clip
    su.make_synthetic_dataset(other, n_per_class=DEMO_N, num_frames=DEMO_FRAMES, size=DEMO_SIZE, seed=3)
    for rel in ("original/005.mp4", f"Deepfakes/{victim.name}"):
        np.testing.assert_array_equal(read_video(demo_root / rel), read_video(other / rel))


def test_fakes_flicker_in_face_region(demo_root: Path) -> None:
    """Mean |frame_t+1 - frame_t| in the central (face) box is larger for fakes; the border is similar."""
    a, b = int(DEMO_SIZE * 0.35), int(DEMO_SIZE * 0.65)  # face centre wanders at most ~12% of the frame from centre

    def flicker(cls: str) -> tuple[float, float]:
        face, border = [], []
        for p in sorted((demo_root / cls).glob("*.mp4")):
            d = np.abs(np.diff(read_video(p), axis=0))
            face.append(d[:, a:b, a:b].mean())
            border.append(np.concatenate([d[:, :8].ravel(), d[:, -8:].ravel()]).mean())
        return float(np.mean(face)), float(np.mean(border))

    (real_face, real_border), (fake_face, fake_border) = flicker("original"), flicker("Deepfakes")
    assert fake_face > 1.15 * real_face
    assert abs(fake_border - real_border) < 0.15 * real_border  # no global (whole-frame) giveaway


SMALL = dict(n_per_class=DEMO_N, num_frames=4, size=32)  # the pairing is what matters here, not the pictures


def _fake_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "Deepfakes").glob("*.mp4"))


@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_any_seed_makes_a_dataset_the_identity_split_can_use(tmp_path: Path, seed: int) -> None:
    root = su.make_synthetic_dataset(tmp_path, seed=seed, **SMALL)
    items = su.list_videos(root)
    assert sum(i.label == 0 for i in items) == sum(i.label == 1 for i in items) == DEMO_N
    split = su.make_split(items, n_train=DEMO_N, n_val=DEMO_N, seed=seed, strategy="identity")  # the whole pool
    assert len(split.train) == len(split.val) == DEMO_N
    assert su.count_identity_leaks(split.train, split.val) == 0


def test_another_seed_into_the_same_root_is_refused_not_mixed(tmp_path: Path) -> None:
    """Seed 7's fakes beside seed 0's would make every real the target of two fakes, and the identity
    split of the whole pool impossible: the root is refused, and keeps one seed's dataset."""
    fresh = su.make_synthetic_dataset(tmp_path / "seed7", seed=7, **SMALL)
    root = su.make_synthetic_dataset(tmp_path / "demo", seed=0, **SMALL)
    before = _fake_names(root)
    assert _fake_names(fresh) != before  # seed 7 pairs the faces differently: the case this test is about

    try:
        su.make_synthetic_dataset(root, seed=7, **SMALL)
        refusal = None
    except ValueError as exc:
        refusal = str(exc)
    # The root still holds one seed's dataset that the demo's identity split (whole pool) can use.
    split = su.make_split(su.list_videos(root), n_train=DEMO_N, n_val=DEMO_N, strategy="identity")
    assert su.count_identity_leaks(split.train, split.val) == 0
    assert _fake_names(root) == before  # nothing of seed 7 written
    assert refusal is not None and "seed" in refusal and str(root) in refusal  # said, not silently ignored
    assert su.make_synthetic_dataset(root, seed=0, **SMALL) == root  # its own seed still reuses it
