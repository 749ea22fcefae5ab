"""Scarlet.ipynb run headless (nbclient): demo mode, sample mode on real FF++ videos, and the
evaluation-only flows a user runs in a new session against an existing Scarlet.pt."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

import scarlet_utils as su

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "Scarlet.ipynb"
ARTEFACTS = ("Scarlet.pt", "split.json", "history.json", "training_curves.png", "sample_frames.png",
             "metrics.json", "classification_report.txt", "confusion_matrix.png", "roc_curve.png",
             "score_histogram.png", "predictions.csv", "predictions_own.csv", "cross_method.json", "clips_4/metrics.json",
             "scarlet-hf/config.json", "scarlet-hf/model.safetensors", "scarlet-hf/preprocessor_config.json")
SMALL = {"SCARLET_MODE": "demo", "SCARLET_N_TRAIN": "16", "SCARLET_N_VAL": "8", "SCARLET_NUM_CLIPS": "1",
         "SCARLET_CROSS_METHODS": "0"}


def notebook_cells(tags: set[str] | None = None) -> list[nbformat.NotebookNode]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [c for c in nb.cells if tags is None or tags & set(c.metadata.get("tags", []))]


def run_notebook(workdir: Path, env: dict[str, str], tags: set[str] | None = None,
                 cells: list[nbformat.NotebookNode] | None = None) -> nbformat.NotebookNode:
    """Execute the notebook (only the cells carrying one of ``tags``, or the given ``cells`` in that
    order, in one kernel) in ``workdir`` with ``env`` added to the kernel's environment."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells = [nbformat.from_dict(json.loads(json.dumps(c))) for c in (cells or notebook_cells(tags))]
    kernel_env = {k: v for k, v in os.environ.items() if not k.startswith("SCARLET_")}
    kernel_env.update(env, PYTHONPATH=os.pathsep.join([str(REPO), kernel_env.get("PYTHONPATH", "")]),
                      HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute(env=kernel_env)
    return nb


def stream_text(nb: nbformat.NotebookNode, name: str = "stdout") -> str:
    """What the cells printed to ``name``; for stdout, with the text of the tables they displayed."""
    return "\n".join(o.get("text", "") if o.output_type == "stream" else o["data"]["text/plain"]
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if o.output_type == "stream" and o.get("name") == name
                     or name == "stdout" and "text/html" in o.get("data", {}))


def without(metrics: dict, *config_keys: str) -> dict:
    """``metrics`` with the named configuration values (which say how a run was made) taken out."""
    out = json.loads(json.dumps(metrics))
    for key in config_keys:
        out["config"].pop(key)
    return out


def own_videos(folder: Path, videos: dict[str, Path]) -> Path:
    """A folder of your own videos for the last section: ``videos`` (name: target) as symlinks, an
    empty file in a subfolder (``z_more``, whose path sorts last) and a text file."""
    (folder / "z_more").mkdir(parents=True)
    for name, target in videos.items():
        (folder / name).symlink_to(target)
    (folder / "z_more" / "broken.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("not a video")
    return folder


def check_own_videos(out: Path, nb: nbformat.NotebookNode, scored: list[str], face_crop: bool) -> None:
    """The last section's CSV: a row per video in path order, ``scored`` with their scores and
    ``z_more/broken.mp4`` last, with its cause; a timeline PNG per scored video, the first 3 shown."""
    with open(out / "predictions_own.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["path"]).name for r in rows] == [*scored, "broken.mp4"]
    assert rows[-1]["error"].endswith("empty file (0 bytes)") and rows[-1]["p_fake"] == "" == rows[-1]["timeline"]
    for row in rows[:-1]:
        assert row["error"] == "" and 0.0 <= float(row["p_fake"]) <= 1.0 and row["call"] in ("REAL", "FAKE")
        assert int(row["frames"]) > 0 and (row["face_on_track"] != "") == face_crop
    assert sorted(p.name for p in (out / "timelines").iterdir()) == sorted(Path(r["timeline"]).name for r in rows[:-1])
    last = nb.cells[-1]
    assert sum("image/png" in o.get("data", {}) for o in last.outputs) == min(3, len(scored))
    text = stream_text(nb)
    assert f"{len(rows)} videos from " in text and "broken.mp4: empty file (0 bytes)" in text
    assert f"P(fake) = {float(rows[0]['p_fake']):.3f} -> {rows[0]['call']}" in text


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nbformat.NotebookNode]:
    workdir = tmp_path_factory.mktemp("demo")
    data = su.make_synthetic_dataset(workdir / "mine_src", n_per_class=2, num_frames=24, size=64)
    mine = own_videos(workdir / "mine", {"a_real.mp4": next((data / "original").glob("*.mp4")),
                                         "b_fake.mp4": next((data / "Deepfakes").glob("*.mp4"))})
    nb = run_notebook(workdir, {"SCARLET_MODE": "demo", "SCARLET_VIDEO": str(mine)})
    return workdir, nb


def test_committed_notebook_has_no_outputs() -> None:
    dirty = [i for i, c in enumerate(notebook_cells()) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells {dirty} carry outputs: clear them before committing (jupyter nbconvert --clear-output)"


def test_notebook_tells_a_story() -> None:
    """A markdown cell opens every section; the set-up and evaluation cells are tagged to run alone."""
    cells = notebook_cells()
    headings = [c.source.splitlines()[0] for c in cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert [h.split(". ", 1)[0] for h in headings] == [f"## {i}" for i in range(1, 10)]
    for i, cell in enumerate(cells):
        if cell.cell_type == "code":
            assert cells[i - 1].cell_type == "markdown" or "setup" in cell.metadata.get("tags", []), i
    evaluation = notebook_cells({"evaluation"})
    assert len(evaluation) == 5 and "load_checkpoint" in evaluation[0].source
    assert "export_pretrained" in evaluation[1].source
    assert len(notebook_cells({"setup"})) == 2


def run_setup_cell(kaggle: Path, workdir: Path, then: str = "") -> subprocess.CompletedProcess:
    """The first set-up cell in a fresh Python in ``workdir``, ``kaggle`` standing in for ``/kaggle``,
    with no ``scarlet_utils`` importable but what the cell finds; then the code ``then``."""
    source = notebook_cells({"setup"})[0].source
    assert source.count('Path("/kaggle")') == 1
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", source.replace('Path("/kaggle")', f"Path({str(kaggle)!r})") + "\n" + then],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("place", [
    "usr/lib/scarlet-utils/scarlet_utils.py",  # a utility script, older mount
    "usr/lib/notebooks/alice/scarlet-helpers/scarlet_helpers.py",  # newer mount, another slug: another file name
    "input/scarlet-code/scarlet_utils.py",  # a dataset, older mount
    "input/datasets/alice/scarlet-code/src/scarlet_utils.py",  # newer mount, in a folder of the dataset
])
def test_the_setup_cell_finds_the_module_on_every_kaggle_mount(tmp_path: Path, place: str) -> None:
    kaggle, workdir = tmp_path / "kaggle", tmp_path / "working"
    workdir.mkdir()
    (kaggle / "usr" / "lib" / "other-script").mkdir(parents=True)
    (kaggle / "usr" / "lib" / "other-script" / "other_script.py").write_text("x = 1\n")  # another utility script
    (kaggle / place).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "scarlet_utils.py", kaggle / place)
    # Spawned workers (ISOLATE_DECODING) import the module by name too, whatever the file is called.
    done = run_setup_cell(kaggle, workdir, "print(su.__file__, su._processes_start())")
    assert done.returncode == 0, done.stderr
    path, started = done.stdout.split()
    assert Path(path).resolve() == (kaggle / place).resolve() and started == "True"


def test_the_setup_cell_says_where_it_looked_when_the_module_is_missing(tmp_path: Path) -> None:
    (tmp_path / "kaggle" / "input" / "ff-c23").mkdir(parents=True)
    done = run_setup_cell(tmp_path / "kaggle", tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: scarlet_utils.py is not beside this notebook, nor up to 5 folders "
                           f"into {tmp_path / 'kaggle'}/usr/lib or {tmp_path / 'kaggle'}/input: add it with Add Input")


def knobs() -> set[str]:
    """The knobs of the notebook's configuration cell (the dict literal it passes to resolve_config)."""
    cell = next(c for c in notebook_cells({"setup"}) if "resolve_config" in c.source)
    call = next(n for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "resolve_config")
    return {k.value for k in call.args[0].keys}


def test_every_documented_variable_is_a_knob() -> None:
    """Each SCARLET_<NAME> the README, the model card or the notebook mentions is accepted by the configuration."""
    texts = [REPO / "README.md", REPO / "models" / "video" / "README.md"]
    mentioned = set()
    for text in [p.read_text(encoding="utf-8") for p in texts] + [c.source for c in notebook_cells()]:
        mentioned |= set(re.findall(r"SCARLET_([A-Z][A-Z0-9_]*[A-Z0-9])", text))
    assert mentioned, "the docs mention no SCARLET_ variable at all?"
    assert mentioned - knobs() == set()
    defaults = {k: None for k in knobs()} | {k: v[0] for k, v in su.CHOICES.items()} | {
        k: low for k, (low, _) in su.RANGES.items()} | {"MODE": "demo", "THRESHOLD": 0.5}
    for name in mentioned:  # and resolve_config takes each of them
        value = "demo" if name == "MODE" else str(su.CHOICES.get(name, su.RANGES.get(name, ["1"]))[0])
        su.resolve_config(defaults, {"SCARLET_MODE": "demo", f"SCARLET_{name}": value})


def test_demo_mode_writes_every_artefact_outside_models_video(demo_run) -> None:
    workdir, nb = demo_run
    out = workdir / "demo_output"
    for name in ARTEFACTS:
        assert (out / name).is_file(), f"demo run did not write {name}"
    assert not (workdir / "models").exists(), "demo mode must never write to models/video"
    assert not (out / "training_state.pt").exists(), "the training state must go once training has finished"
    umask = os.umask(0)
    os.umask(umask)
    for name in ("Scarlet.pt", "metrics.json", "split.json", "confusion_matrix.png", "scarlet-hf/config.json",
                 "scarlet-hf/model.safetensors"):  # safetensors alone would write 0600, whatever the umask
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name

    split = json.loads((out / "split.json").read_text())
    assert not any(Path(i["path"]).is_absolute() for i in split["train"] + split["val"])
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert metrics["n"] == len(split["val"]) > 0
    assert sum(metrics["support"].values()) == metrics["n"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["roc_auc"] is not None
    assert metrics["split_strategy"] == split["strategy"] == "identity"
    assert metrics["config"]["MODE"] == "demo" and metrics["protocol"] == "1 clip"
    assert metrics["train_faces"] == "left out" and metrics["videos_sharing_a_training_face"] == 0
    assert metrics["preprocessing"]["size"] == 64 and metrics["preprocessing"]["face_crop"] is False
    lo, hi = metrics["ci95"]["accuracy"]
    assert lo <= metrics["accuracy"] <= hi and metrics["eer"] is not None and metrics["average_precision"] is not None
    several = json.loads((out / "clips_4" / "metrics.json").read_text())
    assert several["num_clips"] == 4 and several["n"] == metrics["n"]
    train_ids = set().union(*(su.video_identities(i["video_id"]) for i in split["train"]))
    assert not any(su.video_identities(i["video_id"]) & train_ids for i in split["val"])  # leak-free
    cross = json.loads((out / "cross_method.json").read_text())
    assert [r["method"] for r in cross] == ["Deepfakes"]  # no pooled row: it trained on its only method
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1)) and len(history) >= 2
    # The saved checkpoint is the best validation epoch, and the evaluation reproduces its accuracy.
    assert metrics["accuracy"] == pytest.approx(max(h["val_accuracy"] for h in history))
    text = stream_text(nb)
    check_own_videos(out, nb, ["a_real.mp4", "b_fake.mp4"], face_crop=False)
    assert re.search(r"BATCH_SIZE +2 +4 +MODE demo", text) and re.search(r"LR +0.00003 +0.0005 +MODE demo", text)
    bars = stream_text(nb, "stderr")
    assert "extracting frames: 100%" in bars


def test_evaluation_only_in_a_new_session(demo_run, tmp_path: Path) -> None:
    """A new session with TRAIN off, Run All: the dataset mounted elsewhere, a cold cache, another
    SEED, and MODEL naming the hub model with the hub offline. The evaluation follows Scarlet.pt:
    split.json is not rewritten, nothing is downloaded, and metrics.json is the training run's."""
    workdir, _ = demo_run
    out = workdir / "demo_output"
    after_training = json.loads((out / "metrics.json").read_text())
    split_before = (out / "split.json").read_bytes()
    moved = tmp_path / "mounted" / "elsewhere"
    shutil.copytree(out / "synthetic_144", moved)  # a copy: the other tests keep the original
    shutil.rmtree(out / "frame_cache")
    (out / "metrics.json").unlink()

    nb = run_notebook(workdir, {"SCARLET_MODE": "demo", "SCARLET_TRAIN": "0", "SCARLET_SEED": "7",
                                "SCARLET_DATA_ROOT": str(moved), "SCARLET_MODEL": su.DEFAULT_MODEL,
                                "SCARLET_CACHE_DIR": str(tmp_path / "cold_cache")})
    rerun = json.loads((out / "metrics.json").read_text())
    assert (out / "split.json").read_bytes() == split_before
    assert (rerun["config"]["TRAIN"], after_training["config"]["TRAIN"]) == (False, True)
    # VIDEO: the demo run named a folder of its own videos, this session names none
    assert without(rerun, "TRAIN", "SEED", "DATA_ROOT", "MODEL", "CACHE_DIR", "VIDEO") == \
        without(after_training, "TRAIN", "SEED", "DATA_ROOT", "MODEL", "CACHE_DIR", "VIDEO")
    text = stream_text(nb)
    assert "with TRAIN off the configuration's SEED 7 does not apply" in text
    assert "TRAIN is off: nothing is trained or downloaded" in text
    assert "checkpoint: {'recipe': 'original', 'epoch':" in text and "could not be read" not in text
    # With TRAIN off only the videos it scores are decoded: the 96 validation videos, not all 288.
    assert "TRAIN is off: nothing to extract for training" in text
    assert len(list((tmp_path / "cold_cache").glob("f8_s64_full/*/*.npy"))) == len(json.loads(split_before)["val"]) == 96
    assert str(moved) in text  # the last section scored a video of today's data root


def test_a_missing_split_file_comes_back_from_the_checkpoint(demo_run, tmp_path: Path) -> None:
    """Evaluation only, with split.json deleted: it is written again from Scarlet.pt, not from the knobs."""
    workdir, _ = demo_run
    out = workdir / "demo_output"
    before = json.loads((out / "split.json").read_text())
    (out / "split.json").unlink()
    nb = run_notebook(workdir, {"SCARLET_MODE": "demo", "SCARLET_TRAIN": "0", "SCARLET_SEED": "3"},
                      tags={"setup", "evaluation"})
    assert json.loads((out / "split.json").read_text()) == before
    assert "written from the split stored in Scarlet.pt" in stream_text(nb)


def test_face_crop_checkpoint_and_a_rerun_training_cell(tmp_path: Path) -> None:
    """Train with FACE_CROP on, evaluate, then rerun the training cell in the same kernel: it builds
    its own model, so it trains exactly what the first run trained (it used to continue from the
    evaluated weights). Then a new session evaluates with FACE_CROP off and THRESHOLD 1.01: the
    checkpoint's face crops are used (said in one line), and THRESHOLD decides the last section."""
    env = {**SMALL, "SCARLET_EPOCHS": "2", "SCARLET_FACE_CROP": "1", "SCARLET_OUTPUT_DIR": str(tmp_path / "out")}
    cells = notebook_cells()
    training = [c for c in cells if "su.build_model" in c.source or "su.train_one_epoch" in c.source]  # both cells
    nb = run_notebook(tmp_path, env, cells=cells + training)
    runs = [re.findall(r"epoch +\d+/2: .*", "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream"))
            for c in nb.cells if "su.train_one_epoch" in c.source]
    assert len(runs) == 2 and len(runs[0]) == 2 and runs[0] == runs[1]
    trained = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert trained["preprocessing"]["face_crop"] is True

    nb = run_notebook(tmp_path, {**env, "SCARLET_TRAIN": "0", "SCARLET_FACE_CROP": "0", "SCARLET_THRESHOLD": "1.01"},
                      tags={"setup", "evaluation"})
    text = stream_text(nb)
    assert "Scarlet.pt was trained with FACE_CROP: True (the configuration says False)" in text
    evaluated = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert evaluated["preprocessing"]["face_crop"] is True and evaluated["roc_auc"] == trained["roc_auc"]
    assert evaluated["threshold"] == 1.01 and evaluated["confusion_matrix"][1] == [evaluated["support"]["Fake"], 0]
    assert "-> REAL (threshold 1.01)" in text


def test_sample_mode_on_real_ffpp_videos(kaggle_root: Path, tmp_path: Path) -> None:
    """The real sample (3 originals, 4 methods) through real extraction and every cell, with the generalise
    recipe (the mode keeps whole frames and its split; windows, strong augmentation, the EER threshold...)."""
    out = tmp_path / "sample_out"
    # Cross-dataset: a Celeb-DF v2 layout of symlinks (2 real clips, 2 fakes, 1 listed but missing),
    # and a root that is no dataset, which is reported while the other one is scored.
    celeb = tmp_path / "celeb"
    reals = sorted((REPO.parent / "shared" / "data" / "real_faces").glob("LipNet__*.mpg"))[:2]
    links = {"Celeb-real/id0_0000.mp4": reals[0], "YouTube-real/00001.mp4": reals[1],
             "Celeb-synthesis/id0_id3_0000.mp4": kaggle_root / "Deepfakes" / "519_515.mp4",
             "Celeb-synthesis/id3_id0_0002.mp4": kaggle_root / "FaceSwap" / "634_660.mp4"}
    for rel, target in links.items():
        (celeb / rel).parent.mkdir(parents=True, exist_ok=True)
        (celeb / rel).symlink_to(target)
    (celeb / "List_of_testing_videos.txt").write_text(
        "".join(f"{int(r.startswith(('Celeb-real', 'YouTube')))} {r}\n" for r in links) + "0 Celeb-synthesis/id9_id8_0001.mp4\n")
    dfdc = tmp_path / "dfdc" / "dfdc_train_part_7" / "dfdc_train_part_7"  # unpacked one level deeper
    dfdc.mkdir(parents=True)
    (dfdc / "aaaaaaaaaa.mp4").symlink_to(reals[0])
    (dfdc / "bbbbbbbbbb.mp4").symlink_to(kaggle_root / "Face2Face" / "750_743.mp4")
    (dfdc / "metadata.json").write_text(json.dumps({
        "aaaaaaaaaa.mp4": {"label": "REAL", "split": "train", "original": None},
        "bbbbbbbbbb.mp4": {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"},
        "cccccccccc.mp4": {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"}}))  # not on disk
    parts = tmp_path / "dfdc_parts" / "dfdc_train_part_00" / "dfdc_train_part_0"  # a second DFDC root, as big
    parts.mkdir(parents=True)
    (parts / "dddddddddd.mp4").symlink_to(reals[1])
    (parts / "eeeeeeeeee.mp4").symlink_to(kaggle_root / "Deepfakes" / "519_515.mp4")
    (parts / "metadata.json").write_text(json.dumps({
        "dddddddddd.mp4": {"label": "REAL", "split": "train", "original": None},
        "eeeeeeeeee.mp4": {"label": "FAKE", "split": "train", "original": "dddddddddd.mp4"}}))
    (tmp_path / "not_a_dataset").mkdir()
    broken = tmp_path / "broken"  # your own folders, where not one video reads
    for side in ("real", "fake"):
        (broken / side).mkdir(parents=True)
        (broken / side / "x.mp4").write_bytes(b"")
    shared = REPO.parent / "shared" / "data" / "real_faces"
    mine = own_videos(tmp_path / "mine", {"face_1.mp4": shared / "video-retalking__face_1.mp4",
                                          "grid.mpg": shared / "LipNet__grid_bbaf2n.mpg",
                                          "swap.mp4": kaggle_root / "FaceSwap" / "634_660.mp4",
                                          "talk.mp4": shared / "SadTalker__WDA_KatieHill_000.mp4"})
    shown = nbformat.v4.new_code_cell('print("legend:", [t.get_text() for t in roc.axes[0].get_legend().get_texts()])')
    cells = notebook_cells()
    at = next(i for i, c in enumerate(cells) if "cross_dataset_roc" in c.source) + 1
    nb = run_notebook(tmp_path, cells=cells[:at] + [shown] + cells[at:], env={"SCARLET_MODE": "sample", "SCARLET_DATA_ROOT": str(kaggle_root),
                                 "SCARLET_RECIPE": "generalise",
                                 "SCARLET_OUTPUT_DIR": str(out), "SCARLET_VIDEO": str(mine),
                                 "SCARLET_EVAL_DATASETS": f"{celeb},{tmp_path / 'dfdc'},{tmp_path / 'dfdc_parts'},{broken},"
                                                          f"{tmp_path / 'not_a_dataset'}"})
    for name in ARTEFACTS + ("Scarlet.last.pt",):
        assert (out / name).is_file(), f"sample run did not write {name}"
    text = stream_text(nb)
    assert "RECIPE generalise" in text and "SCARLET_RECIPE" in text  # the changes table says who set what
    info = su.checkpoint_info(out / "Scarlet.pt")
    assert (info.preprocessing.sampling, info.preprocessing.stride, info.extra["recipe"]) == ("window", 4, "generalise")
    windows, saved = tmp_path / "sample_output" / "frame_cache" / "f8_s64_full_c4_w4", su.Split.from_json(info.split, kaggle_root)
    assert not any(su.cache_path(i, windows).exists() for i in saved.train)  # gone with the training state
    scored = sorted(windows.rglob("*.npy"))  # what the evaluation scored there since: NUM_CLIPS windows each
    assert scored and all(np.load(f).shape == (4, 8, 64, 64, 3) for f in scored)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["threshold"] == pytest.approx(info.extra["val_eer_threshold"], abs=1e-6)
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) + len(split["val"]) == 6  # the balanced pool: 3 real + 3 of the 4 fakes
    assert {i["label"] for i in split["train"] + split["val"]} == {0, 1}
    assert sum(i["label"] for i in split["train"] + split["val"]) == 3
    # A random split of 3 people: whatever val shares a face with train is left out and counted.
    assert metrics["n"] + metrics["videos_sharing_a_training_face"] == len(split["val"])
    assert "'Deepfakes', 'Face2Face', 'FaceSwap', 'NeuralTextures'" in text  # every method found
    assert "1 of the 7 videos (3 real, 4 fake) are left out, to draw as many fakes as reals" in text
    cross = json.loads((out / "cross_method.json").read_text())
    trained = set(info.extra["methods"])
    pooled = {"all", "all untrained"}
    assert {r["method"] for r in cross} <= {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"} | pooled
    rows = [r for r in cross if r["method"] in pooled]  # the methods it did not train on, pooled
    assert rows == [] or rows[0]["n_fake"] == sum(r["n_fake"] for r in cross if r["method"] not in trained | pooled)
    assert "failed 0" in text
    cross = json.loads((out / "cross_dataset.json").read_text())
    dfdc = "DFDC labelled videos (not its test set), all 2 videos"  # two roots alike: each named by its folder
    names = ["Celeb-DF-v2 test list, 4 videos", f"{dfdc} (dfdc)", f"{dfdc} (dfdc_parts)"]
    assert [(r["dataset"], r["protocol"]) for r in cross] == [(n, p) for n in names for p in ("1 clip", "4 clips")]
    assert [r["root"] for r in cross[::2]] == [str(celeb), str(tmp_path / "dfdc"), str(tmp_path / "dfdc_parts")]
    for row in cross[:2]:  # the 4 videos there scored; the missing one counted before decoding, never fatal
        assert row["n"] == 4 and row["support"] == {"Real": 2, "Fake": 2} and row["roc_auc"] is not None
        assert row["failed"] == []
    for row in cross[2:]:  # the nested parts found; an absent entry skipped (said when listing); 1 + 1
        assert row["n"] == 2 and row["support"] == {"Real": 1, "Fake": 1} and row["failed"] == []
    said = stream_text(nb, "stderr") + text
    assert "metadata.json: 1 of its 3 videos are not under" in said
    assert "List_of_testing_videos.txt: 1 of its 5 videos are not under" in said
    assert (out / "cross_dataset_roc.png").is_file()
    legend = next(line for line in text.splitlines() if line.startswith("legend: "))
    assert [label.split(" (n=")[0] for label in ast.literal_eval(legend[len("legend: "):]) if " (n=" in label] == [
        f"{n}, {p}" for n in names for p in ("1 clip", "4 clips")]  # a curve per row
    assert f"{tmp_path / 'not_a_dataset'}: skipped: " in text and "not a data root Scarlet reads" in text
    assert f"own-broken, all 2 videos: skipped: none of the 2 videos could be read (e.g. {broken / 'fake' / 'x.mp4'}: empty file" in text
    check_own_videos(out, nb, ["face_1.mp4", "grid.mpg", "swap.mp4", "talk.mp4"], face_crop=False)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """The generalise recipe (windows drawn at random, strong augmentation, paired batches, a cosine rate,
    accumulation, drop-path): a 3-epoch run whose session dies after epoch 2 (the state kept), then a rerun,
    which resumes after epoch 2 and ends with the history and weights of an uninterrupted run."""
    import torch

    keep = {**SMALL, "SCARLET_RECIPE": "generalise", "SCARLET_EPOCHS": "3", "SCARLET_KEEP_TRAINING_STATE": "1"}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_notebook(tmp_path, {**keep, "SCARLET_OUTPUT_DIR": str(straight)})
    cells = notebook_cells()
    loop = next(i for i, c in enumerate(cells) if "train_one_epoch" in c.source)
    dies = nbformat.from_dict(json.loads(json.dumps(cells[loop])))
    dies.source = dies.source.replace('range(start, CONFIG["EPOCHS"] + 1)', "range(start, 3)")  # no epoch 3
    assert dies.source != cells[loop].source
    run_notebook(tmp_path, {**keep, "SCARLET_OUTPUT_DIR": str(resumed)}, cells=cells[:loop] + [dies])
    assert len(json.loads((resumed / "history.json").read_text())) == 2
    nb = run_notebook(tmp_path, {**keep, "SCARLET_OUTPUT_DIR": str(resumed)})
    assert "resuming after epoch 2" in stream_text(nb)
    history = [json.loads((d / "history.json").read_text()) for d in (straight, resumed)]
    assert len(history[0]) == 3 and history[0] == history[1]
    for name in ("training_state.pt", "Scarlet.last.pt"):
        key = "model" if name == "training_state.pt" else "state_dict"
        weights = [torch.load(d / name, weights_only=True)[key] for d in (straight, resumed)]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), name
    info = su.checkpoint_info(straight / "Scarlet.pt")
    assert info.extra["recipe"] == "generalise" and (info.preprocessing.sampling, info.preprocessing.stride) == ("window", 4)
    assert su.checkpoint_info(straight / "Scarlet.last.pt").extra["epoch"] == 3
    train = su.Split.from_json(info.split, tmp_path / "demo_output" / "synthetic_12").train  # kept: KEEP_TRAINING_STATE
    assert np.load(su.cache_path(train[0], tmp_path / "demo_output" / "frame_cache" / "f8_s64_full_c4_w4")).shape == (4, 8, 64, 64, 3)
    metrics = json.loads((straight / "metrics.json").read_text())  # evaluated at Scarlet.pt's validation EER threshold
    assert metrics["threshold"] == pytest.approx(info.extra["val_eer_threshold"], abs=1e-6)
    assert metrics["bootstrap"]["resampled"] == "identities"


def test_fine_tuning_further_starts_from_a_checkpoint_and_knows_both_training_sets(demo_run, tmp_path: Path) -> None:
    """INIT_FROM: a second run starts from the demo's Scarlet.pt (not from a fresh model), on other
    synthetic data, and its checkpoint records the first run's training faces beside its own."""
    import torch

    workdir, _ = demo_run
    start = workdir / "demo_output" / "Scarlet.pt"
    out = tmp_path / "tuned"
    # LR 0: AdamW moves no weight (its decay is scaled by the rate too), so the saved model must be the
    # one it started from, bit for bit: the training cell loaded INIT_FROM's exact weights.
    empty = tmp_path / "no_videos_here"  # and the last section given a folder without videos
    empty.mkdir()
    nb = run_notebook(tmp_path, {**SMALL, "SCARLET_EPOCHS": "1", "SCARLET_INIT_FROM": str(start), "SCARLET_LR": "0",
                                 "SCARLET_OUTPUT_DIR": str(out), "SCARLET_ALLOW_TRAIN_FACES": "1",
                                 "SCARLET_VIDEO": str(empty)})
    text = stream_text(nb)
    assert f"{empty}: no video files in this folder" in text and f"0 videos from {empty}" in text
    assert f"starting from {start} (trained on FaceForensics++)" in text
    first = su.checkpoint_info(start)
    tuned = su.checkpoint_info(out / "Scarlet.pt")
    assert tuned.extra["init_from"]["checkpoint"] == str(start)
    own = su.identities_of(su.Split.from_json(tuned.split).train)
    assert tuned.train_faces() == own | first.train_faces() and not first.train_faces() <= own
    started = torch.load(start, weights_only=True)["state_dict"]
    saved = torch.load(out / "Scarlet.pt", weights_only=True)["state_dict"]
    assert saved.keys() == started.keys() and all(torch.equal(saved[k], started[k]) for k in started)
    metrics = json.loads((out / "metrics.json").read_text())
    val = su.Split.from_json(tuned.split).val
    assert metrics["videos_sharing_a_training_face"] == len(su.split_by_faces(val, tuned.train_faces())[1]) > 0
