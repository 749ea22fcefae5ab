"""Speed and memory: SDPA attention, bf16 CPU scoring, gradient checkpointing, several GPUs.

Equivalence only (the same logits, gradients, keys, files); the speed-ups themselves are measured
by tests/benchmarks/bench_model.py and bench_gpu.py, never asserted here.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from transformers import TimesformerForVideoClassification
from transformers.models.timesformer.modeling_timesformer import TimesformerSelfAttention

import scarlet_utils as su


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


# -- use_sdpa_attention ----------------------------------------------------------------------------


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


def test_train_one_epoch_with_gradient_checkpointing():
    cfg = su.tiny_config(num_frames=4, image_size=32)
    torch.manual_seed(0)
    model = su.build_model(cfg, gradient_checkpointing=True)
    x, y = _clips(cfg, batch=4), torch.tensor([0, 1, 0, 1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    stats = su.train_one_epoch(model, DataLoader(TensorDataset(x, y), batch_size=2), optimizer, "cpu")
    assert np.isfinite(stats["loss"])


# -- scoring precision -----------------------------------------------------------------------------
# (the precision() decision table itself: tests/test_model.py::test_precision_decisions)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU that reports native bf16 (bf16 autocast runs on any CPU, emulated where the hardware
    lacks it, so the numbers can be checked everywhere)."""
    monkeypatch.setattr(su, "cpu_supports_bf16", lambda: True)


def test_cpu_supports_bf16_reads_torch_probes(monkeypatch):
    # AVX512-BF16 or AMX (Sapphire Rapids) is native bf16
    for avx512_bf16, amx, native in [(False, False, False), (True, False, True), (False, True, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert su.cpu_supports_bf16() is native
    # a torch without the probes (older than this project pins) gets fp32: never a guess at bf16
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert su.cpu_supports_bf16() is False
    assert su.precision("cpu") is None


def _linear_dtypes(model):
    dtypes = set()
    model.classifier.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    return dtypes


def test_predict_probs_scores_in_bf16_on_a_bf16_cpu_unless_amp_is_off(bf16_cpu, monkeypatch):
    cfg = su.tiny_config()
    torch.manual_seed(0)
    model = su.build_model(cfg)
    dtypes = _linear_dtypes(model)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, cfg.num_frames, 3, cfg.image_size, cfg.image_size, generator=g), torch.tensor([0, 1] * 3)
    loader = DataLoader(TensorDataset(x, y), batch_size=3)
    _, p32 = su.predict_probs(model, loader, "cpu", amp=False)
    assert dtypes == {torch.float32}
    dtypes.clear()
    _, p16 = su.predict_probs(model, loader, "cpu")  # the default on a bf16 CPU
    assert dtypes == {torch.bfloat16}
    assert p16.dtype == np.float32
    assert np.abs(p16 - p32).max() < 0.02
    assert not np.array_equal(p16, p32)  # really another precision
    with torch.no_grad():
        expected = model.eval()(pixel_values=x).logits.softmax(-1)[:, 1].numpy()
    np.testing.assert_allclose(p32, expected, atol=1e-6, rtol=0)
    monkeypatch.setattr(su, "cpu_supports_bf16", lambda: False)  # a CPU without native bf16: fp32 by default
    dtypes.clear()
    assert np.array_equal(su.predict_probs(model, loader, "cpu")[1], p32)
    assert dtypes == {torch.float32}


def test_evaluate_items_precision_follows_amp(bf16_cpu, tmp_path, write_video):
    torch.manual_seed(0)
    model = su.build_model(su.tiny_config(num_frames=4, image_size=32))
    rng = np.random.default_rng(4)
    items = [su.VideoItem(write_video(f"{i:03d}.mp4", list(rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8))),
                          i % 2, "original" if i % 2 == 0 else "Deepfakes", f"{i:03d}") for i in range(3)]
    report, y_true, p32 = su.evaluate_items(model, items, tmp_path / "cache", su.Preprocessing(4, 32), "cpu", amp=False)
    assert report.ok == items and y_true.tolist() == [0, 1, 0]
    clips = np.stack([np.load(su.cache_path(i, su.cache_dir_for(tmp_path / "cache", 4, 32))) for i in items])
    with torch.no_grad():
        x = su.clip_to_tensor(clips, su.KINETICS_MEAN, su.KINETICS_STD)
        expected = model.eval()(pixel_values=x).logits.softmax(-1)[:, 1].numpy()
    np.testing.assert_allclose(p32, expected, atol=1e-6, rtol=0)
    _, _, p16 = su.evaluate_items(model, items, tmp_path / "cache", su.Preprocessing(4, 32), "cpu")  # bf16 here
    assert np.abs(p16 - p32).max() < 0.02 and not np.array_equal(p16, p32)


def test_training_on_cpu_stays_fp32(bf16_cpu):
    cfg = su.tiny_config(num_frames=4, image_size=32)
    model = su.build_model(cfg)
    dtypes = _linear_dtypes(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    su.train_one_epoch(model, [(_clips(cfg), torch.tensor([0, 1]))], optimizer, "cpu")
    assert dtypes == {torch.float32}


def test_predict_video_bf16_on_cpu_is_close_to_fp32(bf16_cpu, write_video):
    rng = np.random.default_rng(0)
    path = write_video("v.mp4", [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(12)])
    torch.manual_seed(0)
    model = su.build_model(su.tiny_config(num_frames=4, image_size=32))
    p32 = su.predict_video(model, path, amp=False)
    p16 = su.predict_video(model, path)
    assert abs(p16 - p32) < 0.02 and p16 != p32


def test_device_report_names_the_precisions(bf16_cpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = su.device_report()
    assert report["device"] == "cpu" and report["gpus"] == []
    assert (report["training precision"], report["scoring precision"]) == ("fp32", "bf16 autocast")
    off = su.device_report(amp=False)
    assert (off["training precision"], off["scoring precision"]) == ("fp32", "fp32")
    monkeypatch.setattr(su, "cpu_supports_bf16", lambda: False)
    assert su.device_report()["scoring precision"] == "fp32"


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
