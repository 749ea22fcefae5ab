"""Datasets beyond FF++ c23: Celeb-DF v2, DFDC, your own real/ and fake/ folders, FF++ at c40.

Each layout is built from symlinks to the real videos in ../shared/data (no video is copied), with
the text and JSON lists those datasets ship, and read through the public functions.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import scarlet_utils as su

from conftest import official_path

REAL_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_faces"


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
