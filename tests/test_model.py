"""Model: building, the head swap, normalisation, and checkpoints that load or say why not."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import pickle
import re
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TimesformerConfig, TimesformerForVideoClassification

import scarlet_utils as su

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _prep(**changes):
    """The preprocessing of the tests' tiny model: 4 frames at 32 px unless changed."""
    return su.Preprocessing(**{"num_frames": 4, "size": 32, **changes})


def _clip_batch(num_frames=4, size=32, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, num_frames, 3, size, size, generator=g)


def _logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(pixel_values=x).logits


@pytest.fixture
def model(make_config):
    torch.manual_seed(0)
    return su.build_model(make_config())


# -- build_model / normalization_for ---------------------------------------------------------------


def test_build_model_from_config_has_two_named_labels(make_config):
    config = make_config(num_labels=400)
    model = su.build_model(config)
    assert isinstance(model, TimesformerForVideoClassification)
    assert model.config.num_labels == 2
    assert model.config.id2label == {0: "Real", 1: "Fake"}
    assert model.config.label2id == {"Real": 0, "Fake": 1}
    assert (model.config.num_frames, model.config.image_size, model.config.hidden_size) == (4, 32, 32)
    assert tuple(model.classifier.weight.shape) == (2, 32)
    assert config.num_labels == 400  # the caller's config is not modified
    assert _logits(model, _clip_batch()).shape == (2, 2)


def test_build_model_other_label_count(make_config):
    model = su.build_model(make_config(), num_labels=3)
    assert model.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert tuple(model.classifier.weight.shape) == (3, 32)


def test_head_swap_keeps_every_backbone_weight(make_config, tmp_path):
    torch.manual_seed(1)
    k400 = TimesformerForVideoClassification(make_config(num_labels=400))
    assert tuple(k400.classifier.weight.shape) == (400, 32)
    k400.save_pretrained(tmp_path / "k400")
    model = su.build_model(str(tmp_path / "k400"))
    assert model.config.id2label == {0: "Real", 1: "Fake"}
    assert tuple(model.classifier.weight.shape) == (2, 32) and tuple(model.classifier.bias.shape) == (2,)
    before, after = k400.state_dict(), model.state_dict()
    assert set(before) == set(after)
    backbone = [k for k in before if not k.startswith("classifier.")]
    assert len(backbone) > 20
    for key in backbone:
        assert torch.equal(before[key], after[key]), key
    # a Path works as well as a str
    again = su.build_model(tmp_path / "k400")
    assert torch.equal(again.state_dict()[backbone[0]], before[backbone[0]])


K400_PREPROCESSOR = {  # the k400 checkpoint's preprocessor_config.json, with other mean/std
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True, "do_rescale": True,
    "do_resize": True, "image_mean": list(MEAN), "image_processor_type": "VideoMAEImageProcessor",
    "image_std": list(STD), "resample": 2, "rescale_factor": 1 / 255, "size": {"shortest_edge": 224},
}


def test_normalization_for_reads_preprocessor_config(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(K400_PREPROCESSOR))
    assert su.normalization_for(tmp_path) == (MEAN, STD)
    assert su.normalization_for(str(tmp_path)) == (MEAN, STD)


def test_normalization_for_falls_back_to_kinetics(make_config, tmp_path):
    k400 = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
    assert su.normalization_for(make_config()) == k400  # a random model
    assert su.normalization_for(tmp_path) == k400  # a local folder without the file (a Kaggle Model copy, say)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "timesformer"}))
    assert su.normalization_for(tmp_path) == k400


def test_build_model_offline_says_what_to_do_on_kaggle():
    import huggingface_hub

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # conftest: the tests never reach the hub
    for call in (su.build_model, su.normalization_for):
        with pytest.raises(OSError) as caught:
            call("some/nonexistent-id")
        message = str(caught.value)
        assert message.startswith("some/nonexistent-id: cannot download it ("), message
        assert "turn Internet on (Settings > Internet)" in message
        assert "attach the model as a Kaggle Model or dataset: a copy under /kaggle/input is found by itself" in message
        assert "or set MODEL to its folder" in message


# -- save_checkpoint / load_checkpoint -------------------------------------------------------------


def test_checkpoint_round_trip_rebuilds_model_from_stored_config(model, tmp_path):
    x = _clip_batch()
    expected = _logits(model, x)
    path = su.save_checkpoint(model, tmp_path / "out" / "Scarlet.pt", _prep(), epoch=3, score=0.875)
    assert path == tmp_path / "out" / "Scarlet.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["Scarlet.pt"]  # no temp file left
    loaded = su.load_checkpoint(path)  # no model: rebuilt from the config inside
    assert loaded is not model
    assert loaded.config.num_frames == 4 and loaded.config.id2label == {0: "Real", 1: "Fake"}
    assert torch.equal(_logits(loaded, x), expected)
    assert su.checkpoint_info(path).extra == {"epoch": 3, "score": 0.875}


def test_checkpoint_numpy_extras_stay_loadable(model, tmp_path):
    # sklearn and numpy hand back numpy scalars; torch.load(weights_only=True) refuses those.
    prep = _prep(mean=tuple(np.array(MEAN)), std=tuple(np.float32(s) for s in STD))
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", prep, score=np.float64(0.75), loss=np.float32(0.5),
                              epoch=np.int64(4), mean=np.array([0.45, 0.45, 0.45]), nested={"auc": np.float64(0.5)})
    su.load_checkpoint(path)
    info = su.checkpoint_info(path)
    assert info.extra == {"score": 0.75, "loss": 0.5, "epoch": 4, "mean": [0.45, 0.45, 0.45], "nested": {"auc": 0.5}}
    assert type(info.extra["score"]) is float and type(info.extra["epoch"]) is int
    assert info.preprocessing.mean == MEAN and info.preprocessing.std == pytest.approx(STD)
    assert all(type(v) is float for v in info.preprocessing.mean + info.preprocessing.std)


def test_plain_state_dict_loads_into_a_model_or_the_k400_architecture(model, make_config, tmp_path):
    x = _clip_batch()
    path = tmp_path / "Scarlet.pt"
    torch.save(model.state_dict(), path)  # (no model, no source: the k400 base, see the next test)
    loaded = su.load_checkpoint(path, su.build_model(make_config()))
    assert torch.equal(_logits(loaded, x), _logits(model, x))
    from_source = su.load_checkpoint(path, source=make_config())
    assert torch.equal(_logits(from_source, x), _logits(model, x))
    info = su.checkpoint_info(path)  # its preprocessing is taken to be the original run's
    assert (info.path, info.split, info.extra, info.plain_state_dict) == (path, None, {}, True)
    assert info.preprocessing == su.Preprocessing(8, 224, False, su.KINETICS_MEAN, su.KINETICS_STD)
    assert info.train_faces() is None


LOAD_OFFLINE = r"""
import hashlib, json, socket, sys

def no_network(*args, **kwargs):
    raise OSError("the test forbids the network")

socket.socket.connect = socket.socket.connect_ex = socket.getaddrinfo = socket.create_connection = no_network
import torch
torch.set_num_threads(1)
import scarlet_utils as su

out = {}
try:  # the premise: here the k400 model cannot be had, so a load that works did not need it
    su.build_model(su.DEFAULT_MODEL)
    out["premise"] = "downloaded"
except OSError as exc:
    out["premise"] = str(exc)
for name, path, source in json.loads(sys.argv[1]):
    model = su.load_checkpoint(path, **({} if source is None else {"source": source}))
    c = model.config
    out[name] = {
        "config": [c.num_frames, c.image_size, c.hidden_size, c.num_hidden_layers, c.id2label[0], c.id2label[1]],
        "sdpa": type(model.timesformer.encoder.layer[0].attention.attention).__name__,
        "sha256": {k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in model.state_dict().items()},
    }
print(json.dumps(out))
"""


def test_plain_base_state_dict_loads_offline_with_nothing_cached(tmp_path):
    """The original run's Scarlet.pt is a plain state dict of the k400 base architecture: with TRAIN
    off it must load with Internet off and an empty hub cache (nothing downloaded, nothing read)."""
    torch.manual_seed(0)
    state = su.build_model(TimesformerConfig(), sdpa=False).state_dict()
    assert sum(v.numel() for v in state.values()) > 120_000_000
    torch.save(state, tmp_path / "plain.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "data_parallel.pt")  # saved from DataParallel
    want = {k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in state.items()}
    del state
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(hf_home), XDG_CACHE_HOME=str(hf_home))
    loads = [("plain", str(tmp_path / "plain.pt"), "facebook/timesformer-base-finetuned-k400"),
             ("data_parallel", str(tmp_path / "data_parallel.pt"), None)]
    run = subprocess.run([sys.executable, "-c", LOAD_OFFLINE, json.dumps(loads)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert "facebook/timesformer-base-finetuned-k400: cannot download it" in out["premise"]
    for name in ("plain", "data_parallel"):
        assert out[name]["config"] == [8, 224, 768, 12, "Real", "Fake"], name
        assert out[name]["sdpa"] == "SdpaTimesformerSelfAttention", name
        assert out[name]["sha256"] == want, name  # every key, every weight bit for bit
    # Nothing was downloaded or cached (transformers 4.x's hub client writes its cache's version.txt on import).
    assert [p for p in hf_home.rglob("*") if p.is_file() and p.name != "version.txt"] == []


@pytest.mark.parametrize(("saved", "named"), [
    ({"num_frames": 2}, r"size mismatch for timesformer.embeddings.time_embeddings"),
    ({"image_size": 64}, r"size mismatch for timesformer.embeddings.position_embeddings"),
    ({"num_hidden_layers": 3}, r'Unexpected key\(s\) in state_dict: "timesformer.encoder.layer.2'),
    ("linear", r'Missing key\(s\)(.|\n)*Unexpected key\(s\) in state_dict: "weight", "bias"'),
])
def test_weights_for_another_model_raise_naming_the_keys(make_config, tmp_path, saved, named):
    """Weights for other clips or layers raise, naming the keys, into a given model (a Scarlet.pt
    without one rebuilds its own model and loads)."""
    if saved == "linear":
        path = tmp_path / "linear.pt"
        torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    else:
        path = su.save_checkpoint(su.build_model(make_config(**saved)), tmp_path / "other.pt", _prep())
        rebuilt = su.load_checkpoint(path).config
        assert {k: getattr(rebuilt, k) for k in saved} == saved
    with pytest.raises(RuntimeError, match=named):
        su.load_checkpoint(path, su.build_model(make_config()))


# -- checkpoint_info: what Scarlet.pt records beside its weights ----------------------------------


def _item(root, method, video_id):
    return su.VideoItem(root / method / f"{video_id}.mp4", int(method != "original"), method, video_id)


def test_checkpoint_records_preprocessing_split_and_extra(model, tmp_path):
    root = tmp_path / "kaggle" / "input" / "FaceForensics++_C23"
    split = su.Split(train=[_item(root, "original", "000"), _item(root, "Deepfakes", "000_003")],
                     val=[_item(root, "original", "001"), _item(root, "Deepfakes", "001_870")],
                     strategy="identity", seed=7)
    prep = _prep(face_crop=True, mean=MEAN, std=STD)
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", prep, split, root, epoch=3, score=0.875)
    info = su.checkpoint_info(path)
    assert isinstance(info, su.CheckpointInfo)
    assert (info.path, info.plain_state_dict, info.extra) == (path, False, {"epoch": 3, "score": 0.875})
    assert info.preprocessing == prep
    assert info.preprocessing.face_crop is True and info.preprocessing.mean == MEAN and info.preprocessing.std == STD
    assert (info.split["strategy"], info.split["seed"]) == ("identity", 7)
    # paths relative to the data root: the split still holds where the dataset is mounted elsewhere
    assert [r["path"] for r in info.split["train"]] == ["original/000.mp4", "Deepfakes/000_003.mp4"]
    assert [r["path"] for r in info.split["val"]] == ["original/001.mp4", "Deepfakes/001_870.mp4"]
    assert info.split["test"] == []
    moved = su.Split.from_json(info.split, tmp_path / "elsewhere")
    assert moved.same_videos(split) and (moved.strategy, moved.seed) == ("identity", 7)
    assert moved.train[1] == su.VideoItem(tmp_path / "elsewhere" / "Deepfakes" / "000_003.mp4", 1, "Deepfakes", "000_003")
    assert info.train_faces() == {"000", "003"}  # 000_003 shows both people
    json.dumps(info.split)
    # the weights load as ever
    assert torch.equal(_logits(su.load_checkpoint(path), _clip_batch()), _logits(model, _clip_batch()))
    # no split given: none recorded, so the training faces are unknown
    bare = su.checkpoint_info(su.save_checkpoint(model, tmp_path / "bare.pt", prep))
    assert bare.split is None and bare.train_faces() is None and bare.extra == {}
    assert not bare.plain_state_dict


def test_v1_checkpoint_gives_its_preprocessing_from_the_extras(model, tmp_path):
    path = tmp_path / "v1.pt"
    extra = {"epoch": 2, "num_frames": 4, "size": 32, "face_crop": True, "mean": list(MEAN), "std": list(STD)}
    torch.save({"format": "scarlet-checkpoint-v1", "config": model.config.to_json_string(),
                "state_dict": model.state_dict(), "extra": extra}, path)
    info = su.checkpoint_info(path)
    assert not info.plain_state_dict and info.split is None and info.train_faces() is None
    assert info.preprocessing == su.Preprocessing(4, 32, True, MEAN, STD)
    assert info.extra == extra
    x = _clip_batch()
    assert torch.equal(_logits(su.load_checkpoint(path), x), _logits(model, x))


def test_checkpoint_info_without_a_file(tmp_path):
    with pytest.raises(su.CheckpointError, match=re.escape(str(tmp_path / "Scarlet.pt")) + ": no checkpoint here"):
        su.checkpoint_info(tmp_path / "Scarlet.pt")


def test_preprocessing_from_dict():
    record = dataclasses.asdict(_prep(face_crop=True, mean=MEAN, std=STD))
    record.update(mean=list(MEAN), std=list(STD), written_by="a later Scarlet")  # JSON lists; unknown keys are ignored
    prep = su.Preprocessing.from_dict(record)
    assert prep == su.Preprocessing(4, 32, True, MEAN, STD) and prep.mean == MEAN
    assert su.Preprocessing.from_dict({}) == su.Preprocessing()
    assert prep.differences({"NUM_FRAMES": 4, "SIZE": 224, "FACE_CROP": False, "LR": 1.0}) == [
        "SIZE: 32 (the configuration says 224)", "FACE_CROP: True (the configuration says False)"]


@pytest.mark.parametrize(("change", "named"), [
    ({"face_method": "retinaface"}, "face crop 'retinaface' with margin 1.3"),
    ({"face_margin": 1.5}, "with margin 1.5"),
    ({"sampling": "random"}, "sampling 'random'"),
])
def test_preprocessing_made_another_way_is_refused(model, tmp_path, change, named):
    record = {**dataclasses.asdict(_prep(face_crop=True)), **change}
    with pytest.raises(su.CheckpointError, match=r"the checkpoint's inputs were made another way \(.*" + re.escape(named)):
        su.Preprocessing.from_dict(record)
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", _prep(face_crop=True, **change))
    with pytest.raises(su.CheckpointError, match="use the scarlet_utils.py it was trained with"):
        su.checkpoint_info(path)


# -- export_pretrained -----------------------------------------------------------------------------
# (its files, labels, weights and preprocessor: tests/test_evaluation.py::test_export_round_trip)


def test_export_files_are_readable_by_others_as_the_umask_says(model, tmp_path):
    umask = os.umask(0o022)  # safetensors alone writes model.safetensors 0600 whatever the umask
    try:
        out = su.export_pretrained(model, tmp_path / "scarlet-timesformer", _prep())
    finally:
        os.umask(umask)
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in out.iterdir()} == dict.fromkeys(
        ["config.json", "model.safetensors", "preprocessor_config.json"], 0o644)


# -- loading what is not a checkpoint --------------------------------------------------------------


class _PlantsAFile:
    """Unpickling this calls open(marker, "w"): harmless, but proves code ran on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


UNREADABLE = ["code", "custom class", "text", "plain pickle", "truncated"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")
@pytest.mark.parametrize("kind", [*UNREADABLE, "missing", "list"])
def test_what_is_not_a_checkpoint_is_refused(model, tmp_path, kind):
    path, marker = tmp_path / "Scarlet.pt", tmp_path / "code_ran"
    if kind == "code":
        torch.save({"state_dict": model.state_dict(), "hook": _PlantsAFile(marker)}, path)
    elif kind == "custom class":
        torch.save({"format": su.CHECKPOINT_FORMAT, "extra": {"when": pickle.PickleError("x")}}, path)
    elif kind == "text":
        path.write_bytes(b"not a checkpoint at all")
    elif kind == "plain pickle":
        path.write_bytes(pickle.dumps({"epoch": 1}, protocol=4))
    elif kind == "truncated":
        data = su.save_checkpoint(model, tmp_path / "full.pt", _prep()).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "list":
        torch.save([torch.zeros(2)], path)
    named = re.escape(str(path))
    error, message = {
        "truncated": (RuntimeError, "failed finding central directory"),  # torch's own error
        "missing": (FileNotFoundError, named),
        "list": (su.CheckpointError, named + r": not a Scarlet checkpoint or a state dict \(found list\)"),
    }.get(kind, (su.CheckpointError, named + ": refused: .* or is not a PyTorch checkpoint at all"))
    with pytest.raises(error, match=message):
        su.load_checkpoint(path)
    if kind in UNREADABLE:  # the record is read the same way
        with pytest.raises(error, match=message):
            su.checkpoint_info(path)
    assert not marker.exists()
    if kind == "code":  # the premise: an unsafe unpickle of the same file does run the payload
        torch.load(path, weights_only=False)
        assert marker.exists()


# -- training: precision, resuming -----------------------------------------------------------------


def test_precision_decisions(monkeypatch):
    # CPU: training fp32; scoring bf16 only where the CPU has native bf16; amp=False (AMP off): fp32
    monkeypatch.setattr(su, "cpu_supports_bf16", lambda: True)
    assert su.precision("cpu") is torch.bfloat16
    assert su.precision(torch.device("cpu"), training=False, amp=True) is torch.bfloat16
    assert su.precision("cpu", training=True) is None
    assert su.precision("cpu", amp=False) is None
    monkeypatch.setattr(su, "cpu_supports_bf16", lambda: False)  # e.g. an AVX2-only Xeon: emulated bf16 is slower
    assert su.precision("cpu") is None and su.precision("cpu", training=True) is None
    assert su.precision("meta") is None
    # GPUs, training and scoring alike: bf16 where supported (Ampere+), else fp16 (a T4)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert su.precision("cuda") is torch.bfloat16 and su.precision("cuda", training=True) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert su.precision("cuda:0") is torch.float16 and su.precision(torch.device("cuda", 1), training=True) is torch.float16
    assert su.precision("cuda", amp=False) is None and su.precision("cuda", training=True, amp=False) is None


def test_grad_scaler_only_for_fp16_training(monkeypatch):
    # A CPU-only torch disables a CUDA GradScaler by itself ("CUDA is not available"); pretend it has CUDA.
    monkeypatch.setattr(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False)
    monkeypatch.setattr(su, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a T4: fp16 needs the scaler
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scalers = {"cuda fp16": su.make_grad_scaler("cuda"), "cuda fp32": su.make_grad_scaler("cuda:0", amp=False),
                   "cpu": su.make_grad_scaler("cpu"), "cpu fp32": su.make_grad_scaler(torch.device("cpu"), amp=False)}
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # bf16 has fp32's range
        scalers["cuda bf16"] = su.make_grad_scaler("cuda")
    assert all(isinstance(s, torch.amp.GradScaler) for s in scalers.values())
    assert {k: s.is_enabled() for k, s in scalers.items()} == {
        "cuda fp16": True, "cuda fp32": False, "cpu": False, "cpu fp32": False, "cuda bf16": False}


def _run(make_config, seed):
    torch.manual_seed(seed)
    model = su.build_model(make_config())
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3), torch.Generator().manual_seed(seed)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_training(make_config, tmp_path):
    run_key = {"MODEL": "tiny", "LR": 1e-3, "SEED": 0}
    model, optimizer, generator = _run(make_config, 0)
    su.training_step(model, _clip_batch(), torch.tensor([0, 1]), optimizer)  # an optimizer with state
    torch.randint(0, 10, (3,), generator=generator)  # a generator that has drawn
    history = [{"epoch": 1, "train_loss": 0.69, "val_accuracy": 0.5}, {"epoch": 2, "train_loss": 0.41, "val_accuracy": 0.875}]
    path = su.save_training_state(tmp_path / "training_state.pt", model, optimizer, None, 2, 0.875, history,
                                  generator=generator, run_key=run_key)
    saved_weights, saved_generator = _weights(model), generator.get_state()
    saved_step = optimizer.state_dict()["state"][0]["step"].item()

    fresh, fresh_optimizer, fresh_generator = _run(make_config, 1)
    untouched, untouched_generator = _weights(fresh), fresh_generator.get_state()
    assert not _same_weights(untouched, saved_weights)

    def nothing_loaded():
        return (_same_weights(_weights(fresh), untouched) and fresh_optimizer.state_dict()["state"] == {}
                and torch.equal(fresh_generator.get_state(), untouched_generator))

    start = ([], -1.0, 1)
    assert su.resume_training(path, fresh, fresh_optimizer, None, fresh_generator, run_key, resume=False) == (
        *start, "training from the start (RESUME is off)")
    assert nothing_loaded()
    assert su.resume_training(tmp_path / "none.pt", fresh, fresh_optimizer, None, fresh_generator, run_key) == (
        *start, "training from the start")
    assert nothing_loaded()
    *where, message = su.resume_training(path, fresh, fresh_optimizer, None, fresh_generator, {**run_key, "LR": 2e-3})
    assert tuple(where) == start
    assert message == (f"not resuming, training from the start: {path}: saved by a run with other "
                       "run_key (LR: saved 0.001, now 0.002)")
    assert nothing_loaded()

    got_history, best, first_epoch, message = su.resume_training(path, fresh, fresh_optimizer, None, fresh_generator,
                                                                 dict(run_key))
    assert (got_history, best, first_epoch) == (history, 0.875, 3)
    assert message == "resuming after epoch 2 (best validation accuracy so far 0.8750)"
    assert _same_weights(_weights(fresh), saved_weights)
    assert fresh_optimizer.state_dict()["state"][0]["step"].item() == saved_step == 1
    assert torch.equal(fresh_generator.get_state(), saved_generator)


# -- save_predictions ------------------------------------------------------------------------------


def test_save_predictions_quotes_awkward_paths(tmp_path):
    awkward = Path('/kaggle/input/my "best", videos/original/000.mp4')
    items = [su.VideoItem(awkward, 0, "original", "000"),
             su.VideoItem(Path("/data/Deepfakes/000_003.mp4"), 1, "Deepfakes", "000_003")]
    path = su.save_predictions(items, [0.25, np.float32(0.875)], tmp_path / "out" / "predictions.csv")
    assert path == tmp_path / "out" / "predictions.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["path", "method", "label", "p_fake"],
                    [str(awkward), "original", "0", "0.250000"],
                    ["/data/Deepfakes/000_003.mp4", "Deepfakes", "1", "0.875000"]]
    assert '"/kaggle/input/my ""best"", videos/original/000.mp4"' in path.read_text(encoding="utf-8")
    with pytest.raises(ValueError):  # one score per item
        su.save_predictions(items, [0.25], tmp_path / "short.csv")
