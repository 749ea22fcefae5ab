"""Model: building, the head swap, normalisation, and checkpoints that load or say why not."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
import torch
from transformers import TimesformerForVideoClassification

import scarlet_utils as su


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


def test_normalization_for_reads_preprocessor_config(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3], "crop_size": {"height": 224, "width": 224}}))
    assert su.normalization_for(tmp_path) == ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    assert su.normalization_for(str(tmp_path)) == ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))


def test_normalization_for_falls_back_to_kinetics(make_config, tmp_path):
    k400 = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
    assert su.normalization_for(make_config()) == k400
    assert su.normalization_for(tmp_path) == k400  # a folder without the file (and no hub here)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "preprocessor_config.json").write_text(json.dumps({"do_resize": True}))
    assert su.normalization_for(bad) == k400


def test_count_parameters(model):
    counts = su.count_parameters(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters()) > 0
    assert counts["trainable"] == counts["total"]
    for p in model.timesformer.parameters():
        p.requires_grad = False
    assert su.count_parameters(model)["trainable"] == model.classifier.weight.numel() + model.classifier.bias.numel()


# -- save_checkpoint / load_checkpoint -------------------------------------------------------------


def test_checkpoint_round_trip_rebuilds_model_from_stored_config(model, tmp_path):
    x = _clip_batch()
    expected = _logits(model, x)
    path = su.save_checkpoint(model, tmp_path / "out" / "Scarlet.pt", epoch=3, score=0.875, mean=(0.45, 0.45, 0.45))
    assert path == tmp_path / "out" / "Scarlet.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["Scarlet.pt"]  # no temp file left
    loaded = su.load_checkpoint(path)  # no model: rebuilt from the config inside
    assert loaded is not model
    assert loaded.config.num_frames == 4 and loaded.config.id2label == {0: "Real", 1: "Fake"}
    assert torch.equal(_logits(loaded, x), expected)
    assert su.checkpoint_extra(path) == {"epoch": 3, "score": 0.875, "mean": (0.45, 0.45, 0.45)}


def test_checkpoint_loads_into_a_given_model(model, make_config, tmp_path):
    x = _clip_batch()
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt")
    torch.manual_seed(123)
    fresh = su.build_model(make_config())
    assert not torch.equal(_logits(fresh, x), _logits(model, x))
    assert su.load_checkpoint(path, fresh) is fresh
    assert torch.equal(_logits(fresh, x), _logits(model, x))


def test_checkpoint_numpy_extras_stay_loadable(model, tmp_path):
    # sklearn and numpy hand back numpy scalars; torch.load(weights_only=True) refuses those.
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", score=np.float64(0.75), loss=np.float32(0.5),
                              epoch=np.int64(4), mean=np.array([0.45, 0.45, 0.45]), nested={"auc": np.float64(0.5)})
    su.load_checkpoint(path)
    extra = su.checkpoint_extra(path)
    assert extra == {"score": 0.75, "loss": 0.5, "epoch": 4, "mean": [0.45, 0.45, 0.45], "nested": {"auc": 0.5}}
    assert type(extra["score"]) is float and type(extra["epoch"]) is int


def test_plain_state_dict_needs_a_model(model, make_config, tmp_path):
    x = _clip_batch()
    path = tmp_path / "Scarlet.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(su.CheckpointError, match="a plain state dict has no config; pass model="):
        su.load_checkpoint(path)
    loaded = su.load_checkpoint(path, su.build_model(make_config()))
    assert torch.equal(_logits(loaded, x), _logits(model, x))
    assert su.checkpoint_extra(path) == {}
    from_source = su.load_checkpoint(path, source=make_config())
    assert torch.equal(_logits(from_source, x), _logits(model, x))


def test_data_parallel_prefix_is_stripped(model, make_config, tmp_path):
    x = _clip_batch()
    path = tmp_path / "dp.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    loaded = su.load_checkpoint(path, su.build_model(make_config()))
    assert torch.equal(_logits(loaded, x), _logits(model, x))


def test_checkpoint_for_another_frame_count(make_config, tmp_path):
    path = su.save_checkpoint(su.build_model(make_config(num_frames=2)), tmp_path / "f2.pt")
    with pytest.raises(su.CheckpointError, match="trained on 2 frames, the model expects 4"):
        su.load_checkpoint(path, su.build_model(make_config(num_frames=4)))
    assert su.load_checkpoint(path).config.num_frames == 2  # without a model it rebuilds its own


def test_checkpoint_for_another_image_size(make_config, tmp_path):
    path = tmp_path / "s64.pt"
    torch.save(su.build_model(make_config(image_size=64)).state_dict(), path)
    with pytest.raises(su.CheckpointError, match=r"checkpoint has 16 patches per frame, the model 4 \(another image size"):
        su.load_checkpoint(path, su.build_model(make_config(image_size=32)))


def test_state_dict_of_another_architecture(make_config, tmp_path):
    path = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    with pytest.raises(su.CheckpointError, match=r"another architecture\?\): \d+ missing.*2 unexpected, e.g. \['bias', 'weight'\]"):
        su.load_checkpoint(path, su.build_model(make_config()))
    deeper = tmp_path / "deeper.pt"
    su.save_checkpoint(su.build_model(make_config(num_hidden_layers=3)), deeper)
    with pytest.raises(su.CheckpointError, match=r"another architecture\?\): 0 missing.*unexpected, e.g. \['timesformer.encoder.layer.2"):
        su.load_checkpoint(deeper, su.build_model(make_config()))


class _PlantsAFile:
    """Unpickling this calls open(marker, "w"): harmless, but proves code ran on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_arbitrary_objects_is_refused(model, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "Scarlet.pt"
    torch.save({"state_dict": model.state_dict(), "hook": _PlantsAFile(marker)}, path)
    assert not marker.exists()
    with pytest.raises(su.CheckpointError, match="refused: the file holds Python objects other than tensors"):
        su.load_checkpoint(path, model)
    with pytest.raises(su.CheckpointError, match="refused"):
        su.checkpoint_extra(path)
    assert not marker.exists()
    # the premise: an unsafe unpickle of the same file does run the payload
    with open(path, "rb") as fh:
        torch.load(fh, weights_only=False)
    assert marker.exists()


def test_pickle_of_a_custom_class_instance_is_refused(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"format": su.CHECKPOINT_FORMAT, "extra": {"when": pickle.PickleError("x")}}, path)
    with pytest.raises(su.CheckpointError, match="refused"):
        su.load_checkpoint(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")
@pytest.mark.parametrize(
    ("kind", "message"),
    [("text", "not a PyTorch checkpoint"), ("plain-pickle", "not a PyTorch checkpoint"),
     ("truncated", "not a PyTorch checkpoint"), ("missing", "checkpoint not found")],
)
def test_unreadable_checkpoints_say_what_is_wrong(model, tmp_path, kind, message):
    # Files that are simply not checkpoints must not be reported as "refused: holds objects".
    path = tmp_path / "Scarlet.pt"
    if kind == "text":
        path.write_bytes(b"not a checkpoint at all")
    elif kind == "plain-pickle":
        path.write_bytes(pickle.dumps({"epoch": 1}, protocol=4))
    elif kind == "truncated":
        data = su.save_checkpoint(model, tmp_path / "full.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(su.CheckpointError, match=re.escape(str(path)) + ": " + message):
        su.load_checkpoint(path)


def test_checkpoint_that_is_not_a_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(su.CheckpointError, match=r"not a Scarlet checkpoint or a state dict \(found list\)"):
        su.load_checkpoint(path)


def test_save_is_atomic_when_torch_save_fails(model, tmp_path, monkeypatch):
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", epoch=1)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(before[:100])  # a partial write (save_checkpoint saves through an open file), then the failure
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        su.save_checkpoint(model, path, epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Scarlet.pt"]
    monkeypatch.undo()
    assert su.checkpoint_extra(path) == {"epoch": 1}
    su.save_checkpoint(model, path, epoch=2)
    assert su.checkpoint_extra(path) == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Scarlet.pt"]
