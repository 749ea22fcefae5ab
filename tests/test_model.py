"""Model: building, the head swap, SDPA attention, gradient checkpointing, several GPUs, normalisation,
checkpoints that load or say why not, and the hub-ready export."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from transformers import TimesformerConfig, TimesformerForVideoClassification
from transformers.models.timesformer.modeling_timesformer import TimesformerSelfAttention

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


def test_build_model_drop_path_sets_stochastic_depth(make_config, tmp_path):
    def rates(model):
        return [m.drop_prob for m in model.modules() if type(m).__name__.lower() == "timesformerdroppath"]

    cfg = make_config(num_hidden_layers=3)
    torch.manual_seed(0)
    deep = su.build_model(cfg, drop_path=0.2)
    torch.manual_seed(0)
    plain = su.build_model(cfg, drop_path=0.0)
    assert rates(deep) == pytest.approx([0.0, 0.1, 0.2])  # rising from 0 over the layers, as the model's own
    assert rates(su.build_model(cfg)) == [] and rates(plain) == [0.0] * 3  # None: the config's rate (0)
    # not written into the config: transformers 5 types drop_path_rate int, so a Scarlet.pt holding 0.2
    # could not be loaded; a training-only setting, it changes nothing the checkpoint needs
    assert deep.config.drop_path_rate == cfg.drop_path_rate == 0
    for a, b in zip(deep.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)  # the same weights: only the training forward differs
    x = _clip_batch()
    assert torch.equal(_logits(deep, x), _logits(plain, x))
    outputs = []
    for model in (deep, plain, plain):
        torch.manual_seed(1)
        outputs.append(model.train()(pixel_values=x).logits.detach())
    assert not torch.allclose(outputs[0], outputs[1]) and torch.equal(outputs[1], outputs[2])
    assert torch.equal(outputs[1], _logits(plain, x))  # 0.0: no stochastic depth at all
    deep.save_pretrained(tmp_path / "folder")  # from a folder (a hub id alike)
    assert rates(su.build_model(tmp_path / "folder", drop_path=0.1)) == pytest.approx([0.0, 0.05, 0.1])
    assert rates(su.build_model(tmp_path / "folder")) == []


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


def test_model_source_and_input_size_check() -> None:
    assert su.resolve_model_knob("facebook/x", 8, 224) == "facebook/x"
    config = su.resolve_model_knob("tiny", 4, 32)
    assert (config.num_frames, config.image_size) == (4, 32)
    model = su.build_model(config)
    su.check_input_size(model, 4, 32)
    with pytest.raises(ValueError, match="built for 4 frames at 32 px, the data has 8 frames at 32 px"):
        su.check_input_size(model, 8, 32)


# -- use_sdpa_attention ----------------------------------------------------------------------------
# Equivalence only (the same logits, gradients, keys, files); the speed-ups themselves are measured
# by tests/benchmarks/bench_model.py and bench_gpu.py.


def _clips(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size, generator=g)


def _pair(cfg, **build):
    """The stock model and an SDPA one with the same weights."""
    torch.manual_seed(0)
    stock = su.build_model(cfg, sdpa=False)
    ours = su.build_model(cfg, **build)
    ours.load_state_dict(stock.state_dict())
    return stock, ours


def _attention_types(model):
    return [type(m) for m in model.modules() if isinstance(m, TimesformerSelfAttention)]


def _step(model, x, y):
    """One forward + backward in train mode: the loss and every parameter's gradient."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits, y)
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same_grads(a, b, atol=1e-5, rtol=1e-3):
    assert a.keys() == b.keys() and len(a) > 20
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}")


def test_build_model_uses_sdpa_by_default():
    cfg = su.tiny_config()
    layers = cfg.num_hidden_layers
    assert _attention_types(su.build_model(cfg)) == [su.SdpaTimesformerSelfAttention] * (2 * layers)  # time + space
    assert _attention_types(su.build_model(cfg, sdpa=False)) == [TimesformerSelfAttention] * (2 * layers)
    assert issubclass(su.SdpaTimesformerSelfAttention, TimesformerSelfAttention)
    # only that model changed: the transformers class and other models keep the stock forward
    assert TimesformerSelfAttention.forward is not su.SdpaTimesformerSelfAttention.forward


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time", "space_only"])
def test_sdpa_logits_equal_stock(attention_type):
    cfg = su.tiny_config()
    cfg.attention_type = attention_type
    stock, ours = _pair(cfg)
    x = _clips(cfg)
    with torch.no_grad():
        expected, got = stock.eval()(pixel_values=x).logits, ours.eval()(pixel_values=x).logits
    assert got.shape == expected.shape  # (2, 2); HF's space_only gives one row per frame
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_sdpa_training_step_gives_the_stock_gradients():
    cfg = su.tiny_config()  # dropout 0 (the TimesformerConfig defaults)
    assert cfg.attention_probs_dropout_prob == 0.0
    stock, ours = _pair(cfg)
    x, y = _clips(cfg), torch.tensor([0, 1])
    loss_stock, grads_stock = _step(stock, x, y)
    loss_ours, grads_ours = _step(ours, x, y)
    torch.testing.assert_close(loss_ours, loss_stock, atol=1e-5, rtol=0)
    _assert_same_grads(grads_ours, grads_stock)


def test_sdpa_applies_attention_dropout_only_in_training(monkeypatch):
    cfg = su.tiny_config()
    cfg.attention_probs_dropout_prob = 0.3
    model = su.build_model(cfg)
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append(kwargs["dropout_p"])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    x = _clips(cfg)
    model.train()(pixel_values=x)
    assert seen and set(seen) == {0.3}
    seen.clear()
    with torch.no_grad():
        model.eval()(pixel_values=x)
    assert seen and set(seen) == {0.0}


def test_sdpa_under_cpu_bf16_autocast_uses_the_fused_kernel(monkeypatch):
    # No CPU special case: under bf16 autocast (CPU scoring) the SDPA module goes through the fused
    # kernel too, and its logits stay within bf16 rounding of the stock model's and of fp32.
    cfg = su.tiny_config()
    stock, ours = _pair(cfg)
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = _clips(cfg)
    with torch.no_grad():
        fp32 = stock.eval()(pixel_values=x).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected, got = stock(pixel_values=x).logits, ours.eval()(pixel_values=x).logits
    assert got.dtype == expected.dtype == torch.bfloat16
    assert len(calls) == 2 * cfg.num_hidden_layers  # time + space attention of every layer: the fused kernel
    torch.testing.assert_close(got.float(), expected.float(), atol=0.05, rtol=0)
    torch.testing.assert_close(got.float(), fp32, atol=0.05, rtol=0)
    assert not torch.equal(got.float(), fp32)  # really bf16


def test_sdpa_keeps_state_dict_keys_and_is_idempotent():
    cfg = su.tiny_config()
    stock, ours = _pair(cfg)
    assert list(ours.state_dict()) == list(stock.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in stock.named_parameters()]
    x = _clips(cfg)
    with torch.no_grad():
        before = ours.eval()(pixel_values=x).logits
    assert su.use_sdpa_attention(ours) is ours
    assert su.use_sdpa_attention(su.use_sdpa_attention(stock)) is stock  # twice on a stock model
    assert _attention_types(ours) == _attention_types(stock) == [su.SdpaTimesformerSelfAttention] * 4
    with torch.no_grad():
        assert torch.equal(ours(pixel_values=x).logits, before)
    assert list(ours.state_dict()) == list(su.build_model(cfg, sdpa=False).state_dict())


def test_sdpa_output_attentions_still_returns_the_weights():
    cfg = su.tiny_config()
    stock, ours = _pair(cfg)
    x = _clips(cfg)
    with torch.no_grad():
        a = stock.eval()(pixel_values=x, output_attentions=True)
        b = ours.eval()(pixel_values=x, output_attentions=True)
    assert b.attentions is not None and len(b.attentions) == cfg.num_hidden_layers
    for sa, sb in zip(a.attentions, b.attentions):
        assert sb.shape == sa.shape == (2 * cfg.num_frames, cfg.num_attention_heads, 17, 17)  # (B*T, heads, 1+16, 1+16)
        torch.testing.assert_close(sb, sa, atol=1e-5, rtol=0)
    torch.testing.assert_close(b.logits, a.logits, atol=1e-4, rtol=0)


def test_sdpa_model_pickles_and_deep_copies():
    cfg = su.tiny_config()
    _, ours = _pair(cfg)
    x = _clips(cfg)
    with torch.no_grad():
        expected = ours.eval()(pixel_values=x).logits
    for clone in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
        assert _attention_types(clone) == [su.SdpaTimesformerSelfAttention] * 4
        with torch.no_grad():
            assert torch.equal(clone.eval()(pixel_values=x).logits, expected)


def test_sdpa_checkpoint_and_export_round_trips(tmp_path):
    cfg = su.tiny_config()
    stock, ours = _pair(cfg)
    x = _clips(cfg)
    with torch.no_grad():
        expected = stock.eval()(pixel_values=x).logits
    prep = su.Preprocessing(cfg.num_frames, cfg.image_size)
    path = su.save_checkpoint(ours, tmp_path / "Scarlet.pt", prep)
    assert set(torch.load(path, weights_only=True)["state_dict"]) == set(stock.state_dict())
    loaded = su.load_checkpoint(path)  # rebuilt from the stored config: SDPA
    assert _attention_types(loaded) == [su.SdpaTimesformerSelfAttention] * 4
    plain = su.load_checkpoint(path, sdpa=False)
    assert _attention_types(plain) == [TimesformerSelfAttention] * 4
    into_stock = su.load_checkpoint(path, su.build_model(cfg, sdpa=False))
    for model in (loaded, plain, into_stock):
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(pixel_values=x).logits, expected, atol=1e-4, rtol=0)
    out = su.export_pretrained(ours, tmp_path / "hf", prep)
    hub = TimesformerForVideoClassification.from_pretrained(out)  # a plain transformers model
    assert _attention_types(hub) == [TimesformerSelfAttention] * 4
    rebuilt = su.build_model(out)
    assert _attention_types(rebuilt) == [su.SdpaTimesformerSelfAttention] * 4
    for model in (hub, rebuilt):
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(pixel_values=x).logits, expected, atol=1e-4, rtol=0)


# -- gradient checkpointing ------------------------------------------------------------------------


def _attention_calls(model):
    calls = []
    model.timesformer.encoder.layer[0].attention.attention.register_forward_hook(lambda *a: calls.append(1))
    return calls


@pytest.mark.parametrize("sdpa", [True, False])
def test_gradient_checkpointing_gives_the_same_gradients(sdpa):
    cfg = su.tiny_config()
    torch.manual_seed(0)
    plain = su.build_model(cfg, sdpa=sdpa)
    checkpointed = su.build_model(cfg, sdpa=sdpa, gradient_checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.is_gradient_checkpointing and not plain.is_gradient_checkpointing
    assert checkpointed.timesformer.encoder.gradient_checkpointing and not plain.timesformer.encoder.gradient_checkpointing
    calls_plain, calls_ckpt = _attention_calls(plain), _attention_calls(checkpointed)
    x, y = _clips(cfg), torch.tensor([1, 0])
    loss_plain, grads_plain = _step(plain, x, y)
    loss_ckpt, grads_ckpt = _step(checkpointed, x, y)
    assert len(calls_plain) == 1 and len(calls_ckpt) == 2  # really recomputed in the backward pass
    torch.testing.assert_close(loss_ckpt, loss_plain, atol=1e-6, rtol=0)
    _assert_same_grads(grads_ckpt, grads_plain, atol=1e-6, rtol=1e-5)
    # the keys are unchanged and eval never recomputes
    assert list(checkpointed.state_dict()) == list(plain.state_dict())
    calls_ckpt.clear()
    with torch.no_grad():
        checkpointed.eval()(pixel_values=x)
    assert len(calls_ckpt) == 1


# -- several GPUs ----------------------------------------------------------------------------------


def test_wrap_multi_gpu_only_with_several_gpus(monkeypatch):
    model = su.build_model(su.tiny_config(num_frames=4, image_size=32))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert su.wrap_multi_gpu(model) is model
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert su.wrap_multi_gpu(model) is model
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    moved = []  # DataParallel keeps the master copy on cuda:0; this machine has no GPU to move it to
    monkeypatch.setattr(model, "to", lambda *args, **kwargs: moved.append(args) or model)
    wrapped = su.wrap_multi_gpu(model)
    assert moved == [(torch.device("cuda", 0),)]
    assert isinstance(wrapped, torch.nn.DataParallel) and wrapped.module is model
    assert su.wrap_multi_gpu(wrapped) is wrapped and len(moved) == 1  # never wrapped (or moved) twice
    assert su.unwrap(wrapped) is model and su.unwrap(model) is model
    assert su.unwrap(torch.nn.DataParallel(wrapped)) is model


def test_module_functions_take_a_data_parallel_model(monkeypatch, tmp_path, write_video):
    cfg = su.tiny_config(num_frames=4, image_size=32)
    torch.manual_seed(0)
    model = su.build_model(cfg)
    wrapped = torch.nn.DataParallel(model)  # as wrap_multi_gpu makes; on a CPU-only machine it just calls the module
    x = _clips(cfg)
    with torch.no_grad():
        assert torch.equal(wrapped.eval()(pixel_values=x).logits, model(pixel_values=x).logits)
    su.check_input_size(wrapped, 4, 32)
    with pytest.raises(ValueError, match="built for 4 frames at 32 px"):
        su.check_input_size(wrapped, 8, 32)
    assert all(k.startswith("module.") for k in wrapped.state_dict())
    prep = su.Preprocessing(4, 32)
    path = su.save_checkpoint(wrapped, tmp_path / "Scarlet.pt", prep, epoch=1)
    keys = set(torch.load(path, weights_only=True)["state_dict"])
    assert keys == set(model.state_dict()) and not any(k.startswith("module.") for k in keys)
    loaded = su.load_checkpoint(path)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(pixel_values=x).logits, model(pixel_values=x).logits)
    torch.manual_seed(1)
    other = torch.nn.DataParallel(su.build_model(cfg))
    assert su.load_checkpoint(path, other) is other  # into a wrapped model
    with torch.no_grad():
        assert torch.equal(other.eval()(pixel_values=x).logits, model(pixel_values=x).logits)
    out = su.export_pretrained(wrapped, tmp_path / "hf", prep)
    assert set(TimesformerForVideoClassification.from_pretrained(out).state_dict()) == set(model.state_dict())
    rng = np.random.default_rng(1)
    video = write_video("v.mp4", [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(10)])
    assert su.predict_video(wrapped, video, prep) == su.predict_video(model, video, prep)
    assert su.predict_video(wrapped, video, amp=False) == su.predict_video(model, video, amp=False)
    loader = DataLoader(TensorDataset(x, torch.tensor([0, 1])), batch_size=2)
    assert np.array_equal(su.predict_probs(wrapped, loader, "cpu")[1], su.predict_probs(model, loader, "cpu")[1])
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.0)
    assert np.isfinite(su.train_one_epoch(wrapped, loader, optimizer, "cpu")["loss"])


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
    torch.manual_seed(0)  # built for real: transformers 4.46 cannot initialise on the meta device
    state = su.build_model(TimesformerConfig(), sdpa=False).state_dict()
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


# -- checkpoint_info: what Scarlet.pt records beside its weights -----------------------------------


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


def test_window_preprocessing_is_recorded_and_read_back(model, tmp_path):
    prep = _prep(sampling="window", frame_stride=2)
    assert (prep.stride, _prep().stride, _prep(frame_stride=2).stride) == (2, None, None)  # spread: no stride
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", prep)
    assert su.checkpoint_info(path).preprocessing == prep and su.checkpoint_info(path).preprocessing.stride == 2
    record = torch.load(path, weights_only=True)["preprocessing"]
    assert (record["sampling"], record["frame_stride"]) == ("window", 2)
    assert prep.differences({"NUM_FRAMES": 4, "SAMPLING": "window", "FRAME_STRIDE": 3}) == [
        "FRAME_STRIDE: 2 (the configuration says 3)"]
    assert prep.differences({"SAMPLING": "spread", "FRAME_STRIDE": 1}) == [
        "SAMPLING: 'window' (the configuration says 'spread')"]
    assert _prep().differences({"SAMPLING": "spread", "FRAME_STRIDE": 4}) == []  # a stride matters for windows only
    assert _prep().differences({"SAMPLING": "window", "FRAME_STRIDE": 4}) == [
        "SAMPLING: 'spread' (the configuration says 'window')"]


def test_an_older_checkpoints_uniform_sampling_reads_as_spread(model, tmp_path):
    path = su.save_checkpoint(model, tmp_path / "old.pt", _prep(face_crop=True))
    payload = torch.load(path, weights_only=True)
    del payload["preprocessing"]["frame_stride"]  # as written before windows: no stride, "uniform"
    payload["preprocessing"]["sampling"] = "uniform"
    torch.save(payload, path)
    prep = su.checkpoint_info(path).preprocessing
    assert prep == _prep(face_crop=True) and (prep.sampling, prep.stride) == ("spread", None)


@pytest.mark.parametrize(("change", "named"), [
    ({"face_method": "retinaface"}, "face crop 'retinaface' with margin 1.3"),
    ({"face_margin": 1.5}, "with margin 1.5"),
    ({"sampling": "random"}, "sampling 'random'"),
    ({"sampling": "window"}, "sampling 'window', stride None"),  # a window needs its stride
    ({"sampling": "window", "frame_stride": 0}, "sampling 'window', stride 0"),
])
def test_preprocessing_made_another_way_is_refused(model, tmp_path, change, named):
    record = {**dataclasses.asdict(_prep(face_crop=True)), **change}
    with pytest.raises(su.CheckpointError, match=r"the checkpoint's inputs were made another way \(.*" + re.escape(named)):
        su.Preprocessing.from_dict(record)
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", _prep(face_crop=True, **change))
    with pytest.raises(su.CheckpointError, match="use the scarlet_utils.py it was trained with"):
        su.checkpoint_info(path)


# -- loading what is not a checkpoint --------------------------------------------------------------


class _PlantsAFile:
    """Unpickling this calls open(marker, "w"): harmless, but proves code ran on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


UNREADABLE = ["code", "text", "truncated"]


@pytest.mark.parametrize("kind", [*UNREADABLE, "missing", "list"])
def test_what_is_not_a_checkpoint_is_refused(model, tmp_path, kind):
    path, marker = tmp_path / "Scarlet.pt", tmp_path / "code_ran"
    if kind == "code":
        torch.save({"state_dict": model.state_dict(), "hook": _PlantsAFile(marker)}, path)
    elif kind == "text":
        path.write_bytes(b"not a checkpoint at all")
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


# -- export_pretrained -----------------------------------------------------------------------------


PREP = su.Preprocessing(num_frames=4, size=32, mean=MEAN, std=STD)
EXPORT_FILES = ["config.json", "model.safetensors", "preprocessor_config.json"]


@pytest.fixture
def trained(make_config):
    """A tiny model with a non-default head (as if trained), in eval mode."""
    torch.manual_seed(0)
    model = su.build_model(make_config())
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)
        model.classifier.bias.copy_(torch.tensor([0.3, -0.2]))
    return model.eval()


def _input(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_export_round_trip(trained, tmp_path):
    out = su.export_pretrained(trained, tmp_path / "export" / "scarlet-timesformer", PREP)
    assert out == tmp_path / "export" / "scarlet-timesformer"
    assert sorted(f.name for f in out.iterdir()) == EXPORT_FILES
    assert sorted(f.name for f in out.parent.iterdir()) == [out.name]  # no temp folder left behind

    reloaded = TimesformerForVideoClassification.from_pretrained(out).eval()
    x = _input()
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in reloaded.state_dict().items())  # lossless
    with torch.no_grad():  # plain transformers' attention vs the SDPA one su.build_model uses: float rounding
        torch.testing.assert_close(reloaded(pixel_values=x).logits, trained(pixel_values=x).logits,
                                   atol=1e-5, rtol=0)
    assert reloaded.config.id2label == {0: "Real", 1: "Fake"}
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "Real", "1": "Fake"} and config["label2id"] == {"Real": 0, "Fake": 1}

    pre = json.loads((out / "preprocessor_config.json").read_text())
    assert pre == {
        "image_processor_type": "VideoMAEImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "resample": 2, "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(MEAN), "image_std": list(STD),
    }
    assert su.normalization_for(out) == (MEAN, STD)

    # build_model keeps the trained head: 2 labels, so nothing mismatches and nothing is re-initialised
    rebuilt = su.build_model(out).eval()
    assert torch.equal(rebuilt.classifier.weight, trained.classifier.weight)
    assert torch.equal(rebuilt.classifier.bias, trained.classifier.bias)
    with torch.no_grad():
        assert torch.equal(rebuilt(pixel_values=x).logits, trained(pixel_values=x).logits)


def test_export_preprocessor_matches_scarlet_normalisation(trained, tmp_path):
    """The exported processor turns frames already at the model's size into Scarlet's input."""
    from transformers import VideoMAEImageProcessor

    out = su.export_pretrained(trained, tmp_path / "export", PREP)
    processor = VideoMAEImageProcessor.from_pretrained(out)
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    theirs = processor(list(frames), return_tensors="pt")["pixel_values"]
    ours = su.clip_to_tensor(frames, MEAN, STD).unsqueeze(0)
    assert theirs.shape == ours.shape == (1, 4, 3, 32, 32)
    assert torch.allclose(theirs.float(), ours, atol=1e-5)


def test_export_replaces_a_previous_export(trained, make_config, tmp_path):
    out = tmp_path / "export"
    su.export_pretrained(su.build_model(make_config()), out, su.Preprocessing(4, 32))
    assert su.normalization_for(out) == (su.KINETICS_MEAN, su.KINETICS_STD)
    (out / "stale.txt").write_text("from the old export")
    su.export_pretrained(trained, out, PREP)
    assert sorted(f.name for f in out.iterdir()) == EXPORT_FILES
    assert sorted(f.name for f in tmp_path.iterdir()) == ["export"]  # neither .tmp-* nor .old-* left
    assert su.normalization_for(out) == (MEAN, STD)
    reloaded = TimesformerForVideoClassification.from_pretrained(out).eval()
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in reloaded.state_dict().items())
    with torch.no_grad():  # stock attention vs SDPA: equal to float rounding
        x = _input()
        torch.testing.assert_close(reloaded(pixel_values=x).logits, trained(pixel_values=x).logits,
                                   atol=1e-5, rtol=0)


def test_export_refuses_a_folder_that_is_not_an_export(trained, tmp_path):
    (tmp_path / "Scarlet.pt").write_bytes(b"weights")
    with pytest.raises(FileExistsError, match="not a model export"):
        su.export_pretrained(trained, tmp_path, PREP)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["Scarlet.pt"]


# -- a checkpoint's sampling, followed when evaluating ---------------------------------------------


def test_evaluate_items_follows_a_window_checkpoint(model, tmp_path, coded_video):
    items = [su.VideoItem(coded_video(40, "000.mp4"), 0, "original", "000"),
             su.VideoItem(coded_video(30, "000_001.mp4"), 1, "Deepfakes", "000_001")]
    path = su.save_checkpoint(model, tmp_path / "Scarlet.pt", _prep(sampling="window", frame_stride=3))
    prep = su.checkpoint_info(path).preprocessing
    report, y_true, y_prob = su.evaluate_items(model, items, tmp_path / "cache", prep, "cpu", num_clips=2, amp=False)
    assert report.done == items and y_true.tolist() == [0, 1]
    cache = tmp_path / "cache" / "f4_s32_full_c2_w3"
    assert sorted(p.name for p in cache.rglob("*.npy")) == ["000.npy", "000_001.npy"]  # only in its own folder
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.name]
    clips = np.stack([np.load(su.cache_path(i, cache)) for i in items])
    windows = [su.read_clip(i.path, 4, 32, num_clips=2, stride=3) for i in items]
    assert [w.indices for w in windows] == [[8, 11, 14, 17, 22, 25, 28, 31], [5, 8, 11, 14, 15, 18, 21, 24]]
    np.testing.assert_array_equal(clips, np.stack([w.frames for w in windows]))
    with torch.no_grad():  # each video's score: the mean over its two windows
        x = su.clip_to_tensor(clips.reshape(4, 4, 32, 32, 3), su.KINETICS_MEAN, su.KINETICS_STD)
        expected = model.eval()(pixel_values=x).logits.softmax(-1)[:, 1].view(2, 2).mean(1).numpy()
    np.testing.assert_allclose(y_prob, expected, atol=1e-6, rtol=0)
