"""Evaluation, bound to the checkpoint it evaluates: a checkpoint carries its preprocessing and its
split, and evaluation follows it, never a knob that disagrees; faces seen in training are not scored
unless asked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import scarlet_utils as su


def item(method: str, vid: str, root: Path = Path("/data")) -> su.VideoItem:
    return su.VideoItem(root / method / f"{vid}.mp4", int(method != "original"), method, vid)


@pytest.fixture
def split() -> su.Split:
    train = [item("original", "000"), item("Deepfakes", "000_003"), item("original", "001"), item("Deepfakes", "001_002")]
    val = [item("original", "005"), item("Deepfakes", "005_006"), item("original", "003"), item("Deepfakes", "007_001")]
    return su.Split(train, val, strategy="identity", seed=0)


@pytest.fixture
def data_root(tmp_path: Path, split: su.Split) -> Path:
    """Today's mount of the data the split was made on (``/data`` then): the same relative paths."""
    root = tmp_path / "mounted"
    for i in split.train + split.val:
        path = root / i.path.relative_to("/data")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"a video")
    return root


@pytest.fixture
def checkpoint(tmp_path: Path, make_config, split: su.Split):
    """A Scarlet.pt trained (so it says) on ``split`` with face crops, paths relative to /data."""
    def factory(**prep) -> Path:
        model = su.build_model(make_config())
        preprocessing = su.Preprocessing(num_frames=4, size=32, face_crop=True, **prep)
        return su.save_checkpoint(model, tmp_path / "Scarlet.pt", preprocessing, split, "/data", epoch=3)
    return factory


def test_evaluation_takes_the_checkpoints_split_and_never_rewrites_split_json(checkpoint, split, data_root,
                                                                             tmp_path: Path) -> None:
    info = su.checkpoint_info(checkpoint())
    other = su.make_split([item("original", f"{n:03d}") for n in range(10, 14)] +
                          [item("Deepfakes", f"{n:03d}_{n + 10:03d}") for n in range(10, 14)], 4, 4, seed=7)
    split_file = su.save_split(other, tmp_path / "split.json", "/data")
    before = split_file.read_bytes()
    got, notes = su.evaluation_split(info, split_file, data_root, {"TRAIN": False, "SEED": 7, "SPLIT": "random"})
    assert got.same_videos(split) and split_file.read_bytes() == before
    assert any("is not the split Scarlet.pt was trained on" in n for n in notes)
    assert any("SEED 7, SPLIT 'random' does not apply" in n for n in notes)
    split_file.unlink()  # a missing split.json is written from the checkpoint
    got, notes = su.evaluation_split(info, split_file, data_root)
    assert su.load_split(split_file, data_root).same_videos(split) and "written from the split" in notes[0]


def test_faces_seen_in_training_are_left_out_and_counted(checkpoint, split) -> None:
    info = su.checkpoint_info(checkpoint())
    # A random split would put these in validation: 003 and 001 trained, 005 and 006 did not.
    candidates = split.val
    kept, record, notes = su.unseen_items(candidates, info)
    assert [i.video_id for i in kept] == ["005", "005_006"]
    assert record == {"train_faces": "left out", "videos_sharing_a_training_face": 2}
    assert notes[0].startswith("left out 2 of 4 videos that share a face")
    kept, record, notes = su.unseen_items(candidates, info, allow_train_faces=True)
    assert len(kept) == 4 and record["train_faces"] == "scored" and "scored anyway" in notes[0]
    with pytest.raises(su.CheckpointError, match="all 2 videos share a face"):
        su.unseen_items(split.train[:2], info)


def test_evaluation_follows_the_checkpoints_preprocessing(checkpoint) -> None:
    path = checkpoint()
    config = {"TRAIN": False, "NUM_FRAMES": 8, "SIZE": 224, "FACE_CROP": False, "MODEL": su.DEFAULT_MODEL}
    prep, notes = su.preprocessing_for_run(config, path)
    assert prep == su.Preprocessing(4, 32, True)
    assert notes == ["Scarlet.pt was trained with NUM_FRAMES: 4 (the configuration says 8), SIZE: 32 (the "
                     "configuration says 224), FACE_CROP: True (the configuration says False); this run follows "
                     "the checkpoint"]
    # Fine-tuning it further (INIT_FROM) makes its inputs as it does too, whatever the knobs say.
    assert su.preprocessing_for_run({**config, "TRAIN": True, "INIT_FROM": str(path)}, "no/such/Scarlet.pt") == (prep, notes)
    with pytest.raises(ValueError, match="TRAIN_CLIPS > 1 needs windows: Scarlet.pt .INIT_FROM. samples spread frames"):
        su.preprocessing_for_run({**config, "TRAIN": True, "INIT_FROM": str(path), "TRAIN_CLIPS": 4}, "-")
    trained, _ = su.preprocessing_for_run({**config, "TRAIN": True, "MODEL": "tiny", "SAMPLING": "window",
                                           "FRAME_STRIDE": 3}, path)
    assert (trained.sampling, trained.stride) == ("window", 3)  # the knobs, when training from scratch
    with pytest.raises(su.CheckpointError, match="no checkpoint here"):
        su.preprocessing_for_run(config, path.with_name("missing.pt"))
    trained, notes = su.preprocessing_for_run({**config, "TRAIN": True, "MODEL": "tiny"}, path)
    assert trained == su.Preprocessing(8, 224, False) and notes == []


def test_the_original_runs_state_dict_evaluates_with_a_plain_warning(tmp_path: Path, make_config, split,
                                                                     data_root) -> None:
    """A plain state dict: no preprocessing, no split. It is taken to use the original run's
    preprocessing, a missing split.json says what to do, and every note says its training videos
    are unknown, so FF++ numbers may include faces it trained on."""
    model = su.build_model(make_config())
    path = tmp_path / "Scarlet.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    info = su.checkpoint_info(path)
    assert info.plain_state_dict and info.split is None and info.train_faces() is None
    assert info.preprocessing == su.Preprocessing(8, 224, False, su.KINETICS_MEAN, su.KINETICS_STD)
    assert "plain state dict" in su.preprocessing_notes(info, {"FACE_CROP": False})[0]
    with pytest.raises(FileNotFoundError, match="does not record the split it was trained on"):
        su.evaluation_split(info, tmp_path / "split.json", data_root)
    su.save_split(split, tmp_path / "split.json", "/data")
    got, notes = su.evaluation_split(info, tmp_path / "split.json", data_root)
    assert got.same_videos(split) and "training videos are unknown" in notes[0] and "1,400 of the 2,000" in notes[0]
    kept, record, notes = su.unseen_items(got.val, info)
    assert kept == got.val and record == {"train_faces": "unknown"} and "may include faces it trained on" in notes[0]


def test_a_data_root_without_the_splits_videos_fails_in_one_line(checkpoint, tmp_path: Path) -> None:
    """A wrong DATA_ROOT (or a dataset not mounted) says so once, instead of failing every video."""
    info = su.checkpoint_info(checkpoint())
    with pytest.raises(FileNotFoundError, match=r"none of the 4 videos to score is under .*elsewhere.*set DATA_ROOT"):
        su.evaluation_split(info, tmp_path / "split.json", tmp_path / "elsewhere")
    root = tmp_path / "data"
    (root / "original").mkdir(parents=True)
    (root / "original" / "005.mp4").write_bytes(b"one video of the split is here")
    split, _ = su.evaluation_split(info, tmp_path / "split.json", root)
    assert split.val[0].path == root / "original" / "005.mp4"


# -- fine-tuning further (INIT_FROM): the new checkpoint knows both training sets ------------------


def test_a_fine_tuned_checkpoint_carries_the_faces_it_started_from(checkpoint, make_config, tmp_path: Path) -> None:
    start = su.checkpoint_info(checkpoint())  # trained on FF++ faces 000-003
    celeb = [su.VideoItem(Path(f"/celeb/Celeb-real/id{k}_0000.mp4"), 0, "Celeb-real", f"id{k}_0000", "Celeb-DF-v2",
                          (f"celeb:id{k}",)) for k in range(4)]
    celeb += [su.VideoItem(Path("/celeb/Celeb-synthesis/id0_id1_0000.mp4"), 1, "Celeb-synthesis", "id0_id1_0000",
                           "Celeb-DF-v2", ("celeb:id0", "celeb:id1"))]
    tuned_split = su.Split([celeb[0], celeb[4]], [celeb[2], celeb[3]])
    lineage = start.init_from_record()
    assert lineage == {"checkpoint": str(start.path), "train_faces": ["000", "001", "002", "003"],
                       "trained_on": ["FaceForensics++"]}
    tuned = su.checkpoint_info(su.save_checkpoint(su.build_model(make_config()), tmp_path / "tuned.pt",
                                                  start.preprocessing, tuned_split, "/celeb", init_from=lineage))
    assert tuned.train_faces() == {"000", "001", "002", "003", "celeb:id0", "celeb:id1"}
    assert tuned.trained_on() == {"FaceForensics++", "Celeb-DF-v2"}
    ffpp = [item("original", "002"), item("Deepfakes", "009_008"), item("original", "008")]
    scored, record, notes = su.unseen_items(ffpp + celeb[1:4], tuned)  # faces of both training sets are left out
    assert [i.video_id for i in scored] == ["009_008", "008", "id2_0000", "id3_0000"]
    assert record["videos_sharing_a_training_face"] == 2 and not any("unknown" in n for n in notes)


def test_fine_tuned_from_a_plain_state_dict_says_what_is_unknown(make_config, tmp_path: Path) -> None:
    model = su.build_model(make_config())
    torch.save(model.state_dict(), tmp_path / "original.pt")
    start = su.checkpoint_info(tmp_path / "original.pt")
    assert start.init_from_record()["train_faces"] is None and start.trained_on() == {"FaceForensics++"}
    own = su.Split([item("original", "000")], [item("original", "005")])
    tuned = su.checkpoint_info(su.save_checkpoint(model, tmp_path / "tuned.pt", start.preprocessing, own, "/data",
                                                  init_from=start.init_from_record()))
    assert tuned.train_faces() == {"000"}  # its own faces are still left out ...
    scored, _, notes = su.unseen_items([item("original", "000"), item("original", "007")], tuned)
    assert [i.video_id for i in scored] == ["007"]
    assert "fine-tuned from original.pt, whose training videos are unknown" in notes  # ... and it says the rest is not known


def test_threshold_val_eer_is_read_from_the_checkpoint(make_config, tmp_path: Path) -> None:
    model = su.build_model(make_config())
    info = su.checkpoint_info(su.save_checkpoint(model, tmp_path / "Scarlet.pt", su.Preprocessing(),
                                                 val_eer_threshold=0.37, threshold="val-eer"))
    assert su.resolve_threshold("val-eer", info) == (0.37, [])
    assert su.resolve_threshold(0.5, info) == (0.5, [  # a number as is, and a word that it trained otherwise
        "Scarlet.pt was trained with THRESHOLD 'val-eer'; this run calls fake at P(fake) >= 0.5 (THRESHOLD 0.5)"])
    older = su.checkpoint_info(su.save_checkpoint(model, tmp_path / "older.pt", su.Preprocessing(), epoch=3))
    assert su.resolve_threshold(0.6, older) == (0.6, [])
    with pytest.raises(su.CheckpointError, match=re.escape(f"{tmp_path / 'older.pt'} records no validation EER "
                                                           "threshold (THRESHOLD 'val-eer'): it was trained before")):
        su.resolve_threshold("val-eer", older)
    with pytest.raises(ValueError, match=re.escape("THRESHOLD must be a number or 'val-eer', got 'eer'")):
        su.resolve_threshold("eer", info)
