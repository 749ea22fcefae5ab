"""Configuration: modes, environment overrides, the data-root and model search on Kaggle's mounts,
the sized split of small trees, and the device report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import scarlet_utils as su


DEFAULTS = {
    "MODE": None, "DATA_ROOT": None, "OUTPUT_DIR": None, "CACHE_DIR": None, "METHODS": ["Deepfakes"],
    "NUM_FRAMES": 8, "SIZE": 224, "FACE_CROP": False, "BATCH_SIZE": 2, "LR": 3e-5, "EPOCHS": 24,
    "N_TRAIN": 600, "N_VAL": 800, "MODEL": su.DEFAULT_MODEL, "TRAIN": True, "WORKERS": None, "AMP": True,
}


@pytest.fixture(autouse=True)
def not_on_kaggle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the Kaggle paths at empty temp folders, whatever machine runs the tests."""
    monkeypatch.setattr(su, "KAGGLE_INPUT", tmp_path / "no_kaggle_input")
    monkeypatch.setattr(su, "KAGGLE_WORKING", tmp_path / "no_kaggle_working")


def test_no_dataset_means_demo_with_its_own_output_folder() -> None:
    cfg = su.resolve_config(DEFAULTS, environ={})
    assert cfg["MODE"] == "demo"
    assert cfg["MODEL"] == "tiny" and cfg["OUTPUT_DIR"] == "demo_output"
    assert not cfg["OUTPUT_DIR"].startswith("models")
    assert cfg["N_TRAIN"] < 600 and cfg["EPOCHS"] < 24
    assert cfg["LR"] != DEFAULTS["LR"]


def test_environment_overrides_parse_to_the_knobs_types_and_beat_mode_presets() -> None:
    env = {"SCARLET_MODE": "demo", "SCARLET_EPOCHS": "3", "SCARLET_LR": "1e-4", "SCARLET_TRAIN": "0",
           "SCARLET_METHODS": "Deepfakes, FaceSwap", "SCARLET_FACE_CROP": "yes", "SCARLET_WORKERS": "none",
           "SCARLET_OUTPUT_DIR": "/tmp/x"}
    cfg = su.resolve_config(DEFAULTS, environ=env)
    assert cfg["EPOCHS"] == 3 and cfg["LR"] == 1e-4 and cfg["TRAIN"] is False
    assert cfg["METHODS"] == ["Deepfakes", "FaceSwap"] and cfg["FACE_CROP"] is True
    assert cfg["WORKERS"] is None and cfg["OUTPUT_DIR"] == "/tmp/x"
    assert su.resolve_config(DEFAULTS, environ={"SCARLET_WORKERS": "2"})["WORKERS"] == 2  # None default: a count
    demo = su.resolve_config(DEFAULTS, environ={"SCARLET_MODE": "demo"})
    assert cfg["N_TRAIN"] == demo["N_TRAIN"] != DEFAULTS["N_TRAIN"]  # not overridden: the demo preset stays


@pytest.mark.parametrize("env, match", [
    ({"SCARLET_EPOCHS": "many"}, r"SCARLET_EPOCHS='many': expected a int"),
    ({"SCARLET_TRAIN": "maybe"}, r"SCARLET_TRAIN='maybe': expected a bool"),
    ({"SCARLET_MODE": "turbo"}, r"MODE must be one of"),
])
def test_bad_values_are_named(env: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        su.resolve_config(DEFAULTS, environ=env)


def test_a_misspelt_variable_is_an_error_not_ignored() -> None:
    with pytest.raises(KeyError, match="SCARLET_EPOCH"):
        su.resolve_config(DEFAULTS, environ={"SCARLET_EPOCH": "2"})


def test_changes_list_what_the_mode_and_each_variable_changed() -> None:
    cfg = su.resolve_config(DEFAULTS, environ={"SCARLET_EPOCHS": "3"})
    assert isinstance(cfg, su.Config) and isinstance(cfg, dict)
    assert cfg.changes == [  # in the cell's order; knobs left as the cell has them are not listed
        ("MODE", None, "demo", "MODE demo"),
        ("DATA_ROOT", None, "demo_output/synthetic_144", "MODE demo"),
        ("OUTPUT_DIR", None, "demo_output", "MODE demo"),
        ("CACHE_DIR", None, "demo_output/frame_cache", "MODE demo"),
        ("SIZE", 224, 64, "MODE demo"),
        ("BATCH_SIZE", 2, 4, "MODE demo"),
        ("LR", 3e-5, 5e-4, "MODE demo"),
        ("EPOCHS", 24, 3, "SCARLET_EPOCHS"),  # the variable beats the demo's 20
        ("N_TRAIN", 600, 192, "MODE demo"),
        ("N_VAL", 800, 96, "MODE demo"),
        ("MODEL", su.DEFAULT_MODEL, "tiny", "MODE demo"),
    ]
    assert all(cfg[knob] == now for knob, _, now, _ in cfg.changes)
    # A variable is named as the cause even where the mode would have set the same value; a variable
    # that keeps the cell's value beats the mode's preset and is no change at all.
    cfg = su.resolve_config(DEFAULTS, environ={"SCARLET_MODE": "demo", "SCARLET_SIZE": "64", "SCARLET_BATCH_SIZE": "2"})
    changed = {knob: (was, now, by) for knob, was, now, by in cfg.changes}
    assert changed["MODE"] == (None, "demo", "SCARLET_MODE")
    assert changed["SIZE"] == (224, 64, "SCARLET_SIZE")
    assert cfg["BATCH_SIZE"] == 2 and "BATCH_SIZE" not in changed
    assert changed["LR"] == (3e-5, 5e-4, "MODE demo")


def test_amp_is_a_knob_and_the_old_cpu_bf16_variable_is_unknown() -> None:
    assert su.resolve_config(DEFAULTS, environ={"SCARLET_AMP": "0"})["AMP"] is False
    cfg = su.resolve_config(DEFAULTS, environ={"SCARLET_AMP": "off", "SCARLET_MODE": "demo"})
    assert cfg["AMP"] is False and ("AMP", True, False, "SCARLET_AMP") in cfg.changes
    assert su.resolve_config(DEFAULTS, environ={"SCARLET_AMP": "1"})["AMP"] is True
    assert "AMP" not in {knob for knob, *_ in su.resolve_config(DEFAULTS, environ={"SCARLET_AMP": "1"}).changes}
    with pytest.raises(ValueError, match=r"SCARLET_AMP='half': expected a bool"):
        su.resolve_config(DEFAULTS, environ={"SCARLET_AMP": "half"})
    with pytest.raises(KeyError, match="SCARLET_CPU_BF16"):
        su.resolve_config(DEFAULTS, environ={"SCARLET_CPU_BF16": "0"})
    without_amp = {k: v for k, v in DEFAULTS.items() if k != "AMP"}
    with pytest.raises(KeyError, match="SCARLET_AMP"):  # only the cell's knobs are known
        su.resolve_config(without_amp, environ={"SCARLET_AMP": "0"})


def _model_folder(folder: Path, model_type: str = "timesformer", labels: int = 400,
                  weights: str | None = "model.safetensors", config_text: str | None = None) -> Path:
    """A model folder as ``save_pretrained`` leaves it: ``config.json`` and a weights file (dummy bytes)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": model_type, "id2label": {str(i): f"label {i}" for i in range(labels)},
              "num_frames": 8, "image_size": 224}
    (folder / "config.json").write_text(config_text if config_text is not None else json.dumps(config))
    if weights:
        (folder / weights).write_bytes(b"\0" * 16)
    return folder


def _decoys(top: Path) -> None:
    """Folders that are not the k400 TimeSformer, sorted before the real one so the search meets them first."""
    _model_folder(top / "a-videomae-k400", model_type="videomae")  # 400 labels, another architecture
    _model_folder(top / "b-timesformer-ssv2", labels=174)  # TimeSformer fine-tuned on another label set
    _model_folder(top / "c-timesformer-no-weights", weights=None)  # config only
    _model_folder(top / "d-broken", config_text="{not json")  # unreadable config


def test_find_local_model_finds_the_k400_timesformer_and_ignores_other_models(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    search = tmp_path / "search"
    _decoys(search)
    assert su.find_local_model([search]) is None  # only decoys: nothing found
    # A Kaggle Model mounts as <model>/<framework>/<variation>/<version>.
    k400 = _model_folder(search / "timesformer" / "transformers" / "base-k400" / "1")
    assert su.find_local_model([search]) == k400
    assert su.find_local_model([tmp_path / "missing", search]) == k400  # a missing folder is skipped
    (k400 / "model.safetensors").rename(k400 / "pytorch_model.bin")  # the older weights file also counts
    assert su.find_local_model([search]) == k400
    monkeypatch.setattr(su, "KAGGLE_INPUT", search)
    assert su.find_local_model() == k400  # default: below KAGGLE_INPUT


def test_kaggle_mode_uses_a_local_k400_model_for_the_default_model(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mount = tmp_path / "input"
    dataset = mount / "some-user" / "ff-c23" / "FaceForensics++_C23"
    (dataset / "original").mkdir(parents=True)  # the Kaggle layout (find_data_root checks the layout only)
    _decoys(mount / "other-models")
    k400 = _model_folder(mount / "timesformer" / "transformers" / "base-k400" / "1")
    monkeypatch.setattr(su, "KAGGLE_INPUT", mount)

    cfg = su.resolve_config(DEFAULTS, environ={})
    assert cfg["MODE"] == "kaggle" and cfg["DATA_ROOT"] == str(dataset)
    assert cfg["MODEL"] == str(k400)
    assert ("MODEL", su.DEFAULT_MODEL, str(k400), "MODE kaggle") in cfg.changes
    # Another model asked for by name is kept; demo keeps its tiny model.
    other = su.resolve_config(DEFAULTS, environ={"SCARLET_MODEL": "someone/timesformer-hr"})
    assert other["MODEL"] == "someone/timesformer-hr" and other["MODE"] == "kaggle"
    assert su.resolve_config({**DEFAULTS, "MODEL": "someone/timesformer-hr"}, environ={})["MODEL"] == \
        "someone/timesformer-hr"
    assert su.resolve_config(DEFAULTS, environ={"SCARLET_MODE": "demo"})["MODEL"] == "tiny"
    # Without a local copy, the hub id stays.
    (k400 / "model.safetensors").unlink()
    assert su.resolve_config(DEFAULTS, environ={})["MODEL"] == su.DEFAULT_MODEL


def test_kaggle_mode_without_a_dataset_says_what_to_do() -> None:
    with pytest.raises(FileNotFoundError, match="attach the dataset"):
        su.resolve_config(DEFAULTS, environ={"SCARLET_MODE": "kaggle"})


def test_dataset_found_under_kaggle_input_picks_kaggle_mode(monkeypatch: pytest.MonkeyPatch, kaggle_root: Path,
                                                            tmp_path: Path) -> None:
    # Kaggle mounts datasets at varying depths: put the tree two levels down.
    mount = tmp_path / "input"
    target = mount / "some-user" / "ff-c23" / kaggle_root.name
    target.parent.mkdir(parents=True)
    target.symlink_to(kaggle_root, target_is_directory=True)
    (mount / "other-dataset" / "FaceForensics++_C23").mkdir(parents=True)  # right name, no layout
    monkeypatch.setattr(su, "KAGGLE_INPUT", mount)
    working = tmp_path / "working"
    working.mkdir()
    monkeypatch.setattr(su, "KAGGLE_WORKING", working)

    assert su.find_data_root([mount]) == target
    cfg = su.resolve_config(DEFAULTS, environ={})
    assert cfg["MODE"] == "kaggle" and cfg["DATA_ROOT"] == str(target)
    assert cfg["OUTPUT_DIR"] == str(working / "models" / "video")
    assert cfg["CACHE_DIR"] == str(working / "frame_cache")
    assert cfg["MODEL"] == su.DEFAULT_MODEL and cfg["EPOCHS"] == 24 and cfg["N_TRAIN"] == 600


def test_find_data_root_returns_none_when_absent(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert su.find_data_root([tmp_path, tmp_path / "missing"]) is None


def test_sample_mode_uses_every_method_and_the_whole_balanced_pool(kaggle_root: Path) -> None:
    cfg = su.resolve_config(DEFAULTS, environ={"SCARLET_MODE": "sample", "SCARLET_DATA_ROOT": str(kaggle_root)})
    assert cfg["METHODS"] == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
    assert (cfg["N_TRAIN"], cfg["N_VAL"]) == (3, 3)  # 3 real + 3 of the 4 fakes
    assert cfg["OUTPUT_DIR"] == "sample_output" and cfg["MODEL"] == "tiny"


def test_sample_mode_needs_a_data_root() -> None:
    with pytest.raises(ValueError, match="SCARLET_DATA_ROOT"):
        su.resolve_config(DEFAULTS, environ={"SCARLET_MODE": "sample"})


@pytest.mark.parametrize("n_real, n_fake, expected", [(3, 4, (3, 3)), (10, 10, (10, 10)), (1, 5, (1, 1)), (5, 2, (2, 2))])
def test_sized_split(n_real: int, n_fake: int, expected: tuple[int, int]) -> None:
    assert su.sized_split(n_real, n_fake) == expected


def test_sized_split_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="at least one real and one fake"):
        su.sized_split(0, 4)


def test_device_report_names_the_precisions(bf16_cpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = su.device_report()
    assert report["device"] == "cpu" and report["gpus"] == []
    assert (report["training precision"], report["scoring precision"]) == ("fp32", "bf16 autocast")
    off = su.device_report(amp=False)
    assert (off["training precision"], off["scoring precision"]) == ("fp32", "fp32")
    monkeypatch.setattr(su, "cpu_supports_bf16", lambda: False)
    assert su.device_report()["scoring precision"] == "fp32"
    assert report["torch"] and report["transformers"]


def test_kaggle_inputs_on_the_newer_and_the_older_mounts(tmp_path: Path) -> None:
    mount = tmp_path / "input"
    for rel in ("ff-c23", "datasets/alice/celeb-df-v2", "datasets/bob/dfdc-parts", "competitions/deepfake-detection-challenge",
                "models/google/timesformer/transformers/base-k400/1", "notebooks/carol/scarlet-run"):
        (mount / rel).mkdir(parents=True)
    assert su.kaggle_inputs(mount) == [mount / rel for rel in (
        "competitions/deepfake-detection-challenge", "datasets/alice/celeb-df-v2", "datasets/bob/dfdc-parts", "ff-c23",
        "models/google/timesformer", "notebooks/carol/scarlet-run")]
    assert su.kaggle_inputs(tmp_path / "missing") == []


def test_official_ffpp_mounted_deep_under_datasets_is_the_training_root(monkeypatch: pytest.MonkeyPatch,
                                                                         ffpp_root: Path, tmp_path: Path) -> None:
    mount = tmp_path / "input"
    target = mount / "datasets" / "someone" / "ffpp-official" / "FaceForensics" / "videos" / "FaceForensics++"
    target.parent.mkdir(parents=True)
    target.symlink_to(ffpp_root, target_is_directory=True)  # the official layout: original_sequences/...
    monkeypatch.setattr(su, "KAGGLE_INPUT", mount)
    monkeypatch.setattr(su, "KAGGLE_WORKING", tmp_path)
    cfg = su.resolve_config({**DEFAULTS, "COMPRESSION": "c23"}, environ={})
    assert cfg["MODE"] == "kaggle" and cfg["DATA_ROOT"] == str(target) and cfg.notes == []
    assert su.find_data_root([mount], compression="c40") is None  # the sample holds c23 only


def test_kaggle_without_ffpp_falls_back_to_demo_and_says_what_it_found(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    mount = tmp_path / "input"
    for layout_folder in ("Celeb-real", "Celeb-synthesis"):
        (mount / "datasets" / "alice" / "celeb-df-v2" / "Celeb-DF-v2" / layout_folder).mkdir(parents=True)
    (mount / "datasets" / "bob" / "ffpp-frames" / "images").mkdir(parents=True)  # no layout Scarlet reads
    monkeypatch.setattr(su, "KAGGLE_INPUT", mount)
    assert su.resolve_config(DEFAULTS, environ={}).notes == []  # not on Kaggle: demo, nothing to say
    monkeypatch.setattr(su, "KAGGLE_WORKING", tmp_path)
    cfg = su.resolve_config(DEFAULTS, environ={})
    assert cfg["MODE"] == "demo" and len(cfg.notes) == 1
    assert cfg.notes[0].startswith("MODE demo: no FaceForensics++ root") and cfg.notes[0].endswith(
        "holds: datasets/alice/celeb-df-v2 (celeb-df layout in Celeb-DF-v2); datasets/bob/ffpp-frames (no dataset layout)")
    with pytest.raises(FileNotFoundError, match="datasets/bob/ffpp-frames \\(no dataset layout\\)\\): attach the dataset"):
        su.resolve_config(DEFAULTS, environ={"SCARLET_MODE": "kaggle"})


@pytest.mark.parametrize("version", ["models/google/timesformer/transformers/base-k400/1",  # newer mount
                                     "timesformer/transformers/base-k400/1"])  # older mount
def test_a_kaggle_model_one_folder_below_its_version_is_found(tmp_path: Path, version: str) -> None:
    _decoys(tmp_path / "input" / "datasets" / "someone" / "decoys")
    k400 = _model_folder(tmp_path / "input" / version / "timesformer-base-finetuned-k400")
    assert su.find_local_model([tmp_path / "input"]) == k400


RECIPE_KNOBS = {"RECIPE": "original", "SPLIT": "identity", "SAMPLING": "spread", "FRAME_STRIDE": 2, "TRAIN_CLIPS": 1,
                "AUGMENT": "flip", "PAIR_FAKES": False, "SELECT_BY": "accuracy", "SCHEDULE": "constant",
                "WARMUP_EPOCHS": 0, "LABEL_SMOOTHING": 0.0, "DROP_PATH": 0.0, "GRAD_ACCUM": 1, "THRESHOLD": 0.5,
                "NUM_CLIPS": 4}


def test_the_generalise_recipe_presets_its_knobs_and_the_mode_and_variables_still_win(kaggle_root: Path) -> None:
    knobs = {**DEFAULTS, **RECIPE_KNOBS}
    assert su.resolve_config(knobs, environ={"SCARLET_DATA_ROOT": str(kaggle_root)}).changes == [
        ("MODE", None, "kaggle", "MODE kaggle"), ("DATA_ROOT", None, str(kaggle_root), "SCARLET_DATA_ROOT"),
        ("OUTPUT_DIR", None, "models/video", "MODE kaggle"), ("CACHE_DIR", None, ".scarlet_cache", "MODE kaggle")]
    cfg = su.resolve_config(knobs, environ={"SCARLET_DATA_ROOT": str(kaggle_root), "SCARLET_RECIPE": "generalise",
                                            "SCARLET_GRAD_ACCUM": "2"})
    changed = {knob: (now, by) for knob, _, now, by in cfg.changes}
    assert changed["METHODS"] == (["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"], "RECIPE generalise")
    assert changed["SPLIT"] == ("official", "RECIPE generalise") and changed["FACE_CROP"] == (True, "RECIPE generalise")
    assert changed["SAMPLING"] == ("window", "RECIPE generalise") and changed["AUGMENT"] == ("strong", "RECIPE generalise")
    assert changed["THRESHOLD"] == ("val-eer", "RECIPE generalise") and changed["SELECT_BY"] == ("auc", "RECIPE generalise")
    assert changed["GRAD_ACCUM"] == (2, "SCARLET_GRAD_ACCUM") and changed["RECIPE"] == ("generalise", "SCARLET_RECIPE")
    demo = su.resolve_config(knobs, environ={"SCARLET_MODE": "demo", "SCARLET_RECIPE": "generalise"})
    assert demo["METHODS"] == ["Deepfakes"] and demo["SPLIT"] == "identity" and demo["FACE_CROP"] is False
    assert demo["SAMPLING"] == "window" and demo["TRAIN_CLIPS"] == su.RECIPES["generalise"]["TRAIN_CLIPS"] > 1
    assert ("FACE_CROP", False, False, "MODE demo") not in demo.changes  # the mode kept the cell's value: no change


@pytest.mark.parametrize("env, match", [
    ({"SCARLET_RECIPE": "fast"}, r"RECIPE must be one of \('original', 'generalise'\), got 'fast'"),
    ({"SCARLET_AUGMENT": "heavy"}, r"AUGMENT must be one of .*got 'heavy'"),
    ({"SCARLET_SAMPLING": "dense", "SCARLET_SCHEDULE": "step"}, r"SAMPLING must be one of .*; SCHEDULE must be one"),
    ({"SCARLET_THRESHOLD": "val-auc"}, r"SCARLET_THRESHOLD='val-auc': expected a float"),
    ({"SCARLET_TRAIN_CLIPS": "4"}, r"TRAIN_CLIPS > 1 needs SAMPLING 'window'"),
    ({"SCARLET_RECIPE": "generalise", "SCARLET_SAMPLING": "spread"}, r"TRAIN_CLIPS > 1 needs SAMPLING 'window'"),
    ({"SCARLET_PAIR_FAKES": "1", "SCARLET_BATCH_SIZE": "3"}, r"PAIR_FAKES needs an even BATCH_SIZE .*got 3"),
    ({"SCARLET_GRAD_ACCUM": "0", "SCARLET_FRAME_STRIDE": "0"}, r"FRAME_STRIDE must be a number in \[1, inf\), got 0; GRAD_ACCUM"),
    ({"SCARLET_TRAIN_CLIPS": "none"}, r"TRAIN_CLIPS must be a number in \[1, inf\), got None"),
    ({"SCARLET_LABEL_SMOOTHING": "1.0", "SCARLET_DROP_PATH": "-0.1"}, r"LABEL_SMOOTHING must be a number in \[0, 1\), got 1.0; DROP"),
    ({"SCARLET_WARMUP_EPOCHS": "-1"}, r"WARMUP_EPOCHS must be a number in \[0, inf\), got -1"),
])
def test_a_recipe_knob_out_of_its_choices_or_range_or_that_cannot_work_with_another_is_named(
        env: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):  # before anything runs
        su.resolve_config({**DEFAULTS, **RECIPE_KNOBS}, environ={"SCARLET_MODE": "demo", **env})


def test_threshold_is_a_number_or_the_validation_eer() -> None:
    knobs = {**DEFAULTS, **RECIPE_KNOBS}
    assert su.resolve_config(knobs, environ={"SCARLET_THRESHOLD": "val-eer"})["THRESHOLD"] == "val-eer"
    assert su.resolve_config(knobs, environ={"SCARLET_THRESHOLD": "0.7"})["THRESHOLD"] == 0.7
    with pytest.raises(ValueError, match=r"THRESHOLD must be a number or 'val-eer', got 'half'"):
        su.resolve_config({**knobs, "THRESHOLD": "half"}, environ={})


def test_the_frame_cache_estimate_and_the_kaggle_working_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    knobs = {**DEFAULTS, **RECIPE_KNOBS, "FACE_CROP": False}
    clip = 8 * 224 * 224 * 3
    assert su.frame_cache_bytes(knobs) == (600 * 1 + 800 * 5) * clip  # the original run: one clip per video
    assert su.frame_cache_bytes({**knobs, "NUM_CLIPS": 1}) == (600 + 800) * clip  # one protocol, one clip
    preset = knobs | su.RECIPES["generalise"]  # 720 + 720 official training videos, 280 + 280 scored
    assert su.frame_cache_bytes(preset) == (1440 * 4 + 560 * 5) * clip < su.KAGGLE_OUTPUT_LIMIT
    working = tmp_path / "working"
    monkeypatch.setattr(su, "KAGGLE_WORKING", working)
    line = su.check_disk(working / "frame_cache", 10**9)  # a folder not made yet: the disk it will be on
    assert line.startswith(f"frame cache: about 1.0 GB more in {working / 'frame_cache'}, ")
    cache = tmp_path / "cache" / "f8_s224_full"  # clips already cached are not needed again
    (cache / "original").mkdir(parents=True)
    (cache / "original" / "000.npy").write_bytes(b"\0" * clip)
    (cache / "original" / "000.faces.json").write_bytes(b"\0" * clip)  # not a clip
    assert su.frame_cache_bytes(knobs, [cache, tmp_path / "missing"]) == (600 + 800 * 5 - 1) * clip
    with pytest.raises(OSError, match=r"about 21\.0 GB more in .*, 20\.0 GB free there .*: not enough to extract"):
        su.check_disk(working / "frame_cache", 21e9)  # whatever the disk has free: Kaggle keeps 20 GB
    (working / "models").mkdir(parents=True)
    with open(working / "models" / "Scarlet.pt", "wb") as fh:  # 5 GB of outputs already there (sparse)
        fh.truncate(5 * 10**9)
    with pytest.raises(OSError, match=r"about 16\.0 GB more in .*, 15\.0 GB free there"):
        su.check_disk(working / "frame_cache", 16e9)


def test_choice_knobs_take_their_own_words_from_the_environment() -> None:
    knobs = {**DEFAULTS, **RECIPE_KNOBS}
    parse = lambda **env: su.resolve_config(knobs, {"SCARLET_MODE": "demo", **{f"SCARLET_{k}": v for k, v in env.items()}})  # noqa: E731
    assert parse(AUGMENT="none")["AUGMENT"] == "none" and parse(AUGMENT="true")["AUGMENT"] is True
    assert parse(AUGMENT="0")["AUGMENT"] is False and parse(SELECT_BY="auc")["SELECT_BY"] == "auc"
    cell_eer = {**knobs, "THRESHOLD": "val-eer"}  # a number from the environment, whatever the cell holds
    assert su.resolve_config(cell_eer, {"SCARLET_THRESHOLD": "0.3"})["THRESHOLD"] == 0.3
    # The demo keeps the cell's split for the original recipe; only the official one (FF++ ids) is replaced.
    assert su.resolve_config({**knobs, "SPLIT": "random"}, {"SCARLET_MODE": "demo"})["SPLIT"] == "random"
    preset = su.resolve_config(knobs, {"SCARLET_DATA_ROOT": "/ffpp", "SCARLET_RECIPE": "generalise"})
    preset["METHODS"].append("DeepFakeDetection")  # a kernel that changes its configuration leaves the preset alone
    assert su.RECIPES["generalise"]["METHODS"] == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
