"""Scarlet.ipynb run headless (nbclient): demo mode, sample mode on real FF++ videos, and the
evaluation section on its own against the Scarlet.pt the demo run wrote."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import scarlet_utils as su

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "Scarlet.ipynb"
ARTEFACTS = ("Scarlet.pt", "split.json", "history.json", "training_curves.png", "sample_frames.png",
             "metrics.json", "classification_report.txt", "confusion_matrix.png", "roc_curve.png",
             "score_histogram.png", "predictions.csv", "cross_method.json", "clips_4/metrics.json",
             "scarlet-hf/config.json", "scarlet-hf/model.safetensors", "scarlet-hf/preprocessor_config.json")


def run_notebook(workdir: Path, env: dict[str, str], tags: set[str] | None = None) -> nbformat.NotebookNode:
    """Execute the notebook (only the cells carrying one of ``tags``, if given) in ``workdir``
    with ``env`` added to the kernel's environment; return the executed notebook."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if tags is not None:
        nb.cells = [c for c in nb.cells if tags & set(c.metadata.get("tags", []))]
    kernel_env = {k: v for k, v in os.environ.items() if not k.startswith("SCARLET_")}
    kernel_env.update(env, PYTHONPATH=os.pathsep.join([str(REPO), kernel_env.get("PYTHONPATH", "")]),
                      HF_HUB_OFFLINE="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute(env=kernel_env)
    return nb


def stream_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nbformat.NotebookNode]:
    workdir = tmp_path_factory.mktemp("demo")
    nb = run_notebook(workdir, {"SCARLET_MODE": "demo"})
    return workdir, nb


def test_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells {dirty} carry outputs: clear them before committing (jupyter nbconvert --clear-output)"


def test_notebook_tells_a_story() -> None:
    """A markdown cell opens every section, and the evaluation section is tagged to run alone."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert [h.split(". ", 1)[0] for h in headings] == [f"## {i}" for i in range(1, 9)]
    tagged = [c for c in nb.cells if c.cell_type == "code" and "evaluation" in c.metadata.get("tags", [])]
    assert len(tagged) == 3 and "load_checkpoint" in tagged[0].source


def test_demo_mode_writes_every_artefact_outside_models_video(demo_run) -> None:
    workdir, nb = demo_run
    out = workdir / "demo_output"
    for name in ARTEFACTS:
        assert (out / name).is_file(), f"demo run did not write {name}"
    assert not (workdir / "models").exists(), "demo mode must never write to models/video"

    split = json.loads((out / "split.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert metrics["n"] == len(split["val"]) > 0
    assert sum(metrics["support"].values()) == metrics["n"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["roc_auc"] is not None
    assert metrics["split_strategy"] == split["strategy"] == "identity"
    assert metrics["config"]["MODE"] == "demo" and metrics["protocol"] == "1 clip"
    lo, hi = metrics["ci95"]["accuracy"]
    assert lo <= metrics["accuracy"] <= hi and metrics["eer"] is not None and metrics["average_precision"] is not None
    several = json.loads((out / "clips_4" / "metrics.json").read_text())
    assert several["num_clips"] == 4 and several["n"] == metrics["n"]
    train_ids = set().union(*(su.video_identities(i["video_id"]) for i in split["train"]))
    assert not any(su.video_identities(i["video_id"]) & train_ids for i in split["val"])  # leak-free
    cross = json.loads((out / "cross_method.json").read_text())
    assert [r["method"] for r in cross] == ["Deepfakes", "all"]
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1)) and len(history) >= 2
    # The saved checkpoint is the best validation epoch, and the evaluation reproduces its accuracy.
    best = max(h["val_accuracy"] for h in history)
    assert metrics["accuracy"] == pytest.approx(best)
    text = stream_text(nb)
    assert "MODE: demo" in text and "P(fake) =" in text


def test_evaluation_section_alone_reproduces_metrics(demo_run) -> None:
    """After a 'kernel restart': only the set-up and evaluation cells, training off, and the frame
    cache deleted (the validation videos are extracted again). Same metrics.json."""
    workdir, _ = demo_run
    out = workdir / "demo_output"
    after_training = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out / "frame_cache")
    (out / "metrics.json").unlink()

    nb = run_notebook(workdir, {"SCARLET_MODE": "demo", "SCARLET_TRAIN": "0"}, tags={"setup", "evaluation"})
    rerun = json.loads((out / "metrics.json").read_text())
    # The recorded configuration says, truthfully, that this run did not train; all else is equal.
    assert (rerun["config"].pop("TRAIN"), after_training["config"].pop("TRAIN")) == (False, True)
    assert rerun == after_training
    text = stream_text(nb)
    assert "extracting" not in text or "failed" not in text
    assert "checkpoint: {'epoch':" in text


def test_sample_mode_on_real_ffpp_videos(kaggle_root: Path, tmp_path: Path) -> None:
    """The real sample (3 originals, 4 methods) through real extraction and every cell."""
    out = tmp_path / "sample_out"
    nb = run_notebook(tmp_path, {"SCARLET_MODE": "sample", "SCARLET_DATA_ROOT": str(kaggle_root),
                                 "SCARLET_OUTPUT_DIR": str(out)})
    for name in ARTEFACTS:
        assert (out / name).is_file(), f"sample run did not write {name}"
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) + len(split["val"]) == 6  # the balanced pool: 3 real + 3 of the 4 fakes
    assert {i["label"] for i in split["train"] + split["val"]} == {0, 1}
    assert sum(i["label"] for i in split["train"] + split["val"]) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == len(split["val"])
    text = stream_text(nb)
    assert "'Deepfakes', 'Face2Face', 'FaceSwap', 'NeuralTextures'" in text  # every method found
    cross = json.loads((out / "cross_method.json").read_text())
    assert {r["method"] for r in cross} <= {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "all"}
    assert "failed 0" in text


def test_interrupted_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """Two epochs, 'the session dies', a rerun asking for three: it resumes after epoch 2 and ends
    with the history and weights of an uninterrupted three-epoch run."""
    import torch

    small = {"SCARLET_MODE": "demo", "SCARLET_N_TRAIN": "16", "SCARLET_N_VAL": "8", "SCARLET_NUM_CLIPS": "1",
             "SCARLET_CROSS_METHODS": "0"}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_notebook(tmp_path, {**small, "SCARLET_EPOCHS": "3", "SCARLET_OUTPUT_DIR": str(straight)})
    run_notebook(tmp_path, {**small, "SCARLET_EPOCHS": "2", "SCARLET_OUTPUT_DIR": str(resumed)})
    nb = run_notebook(tmp_path, {**small, "SCARLET_EPOCHS": "3", "SCARLET_OUTPUT_DIR": str(resumed)})
    assert "resuming after epoch 2 of 3" in stream_text(nb)
    history = [json.loads((d / "history.json").read_text()) for d in (straight, resumed)]
    assert len(history[0]) == 3 and history[0] == history[1]
    weights = [torch.load(d / "training_state.pt", weights_only=True)["model"] for d in (straight, resumed)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
