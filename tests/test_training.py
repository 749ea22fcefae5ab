"""Training: precision, the training loop, prediction over a loader, and the training state that
resumes a run exactly or refuses, loading nothing."""

from __future__ import annotations

import copy
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import scarlet_utils as su


def _clips(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size, generator=g)


def _brightness_data(n=32, seed=0):
    """Clips whose label is the sign of their brightness: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    sign = (labels.float() * 2 - 1).view(-1, 1, 1, 1, 1)
    x = torch.randn(n, 4, 3, 32, 32, generator=g) * 0.5 + sign
    return x, labels


# -- precision -------------------------------------------------------------------------------------


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


# -- train_one_epoch -------------------------------------------------------------------------------


def test_train_one_epoch_learns_a_toy_task(tiny_model):
    x, y = _brightness_data()
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(tiny_model.parameters(), lr=1e-3)
    history = [su.train_one_epoch(tiny_model, loader, optimizer, "cpu") for _ in range(5)]
    assert all(set(h) == {"loss", "accuracy"} for h in history)
    assert all(0.0 <= h["accuracy"] <= 1.0 and h["loss"] > 0 for h in history)
    losses = [h["loss"] for h in history]
    assert losses[-1] < 0.6 * losses[0], losses
    assert losses == sorted(losses, reverse=True), losses  # down every epoch
    assert history[-1]["accuracy"] == 1.0
    assert tiny_model.training


def test_train_one_epoch_averages_loss_and_accuracy_over_clips(tiny_model):
    # lr 0: the weights never move, so the epoch's numbers must equal a hand computation;
    # 10 clips in batches of 4, 4, 2 checks the mean is per clip, not per batch.
    x, y = _brightness_data(10, seed=1)
    optimizer = torch.optim.SGD(tiny_model.parameters(), lr=0.0)
    result = su.train_one_epoch(tiny_model, DataLoader(TensorDataset(x, y), batch_size=4), optimizer, "cpu")
    with torch.no_grad():
        logits = tiny_model(pixel_values=x).logits
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(-1) == y).float().mean().item())
    smoothed = su.train_one_epoch(tiny_model, DataLoader(TensorDataset(x, y), batch_size=4), optimizer, "cpu",
                                  label_smoothing=0.1)
    expected = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1).item()
    assert smoothed["loss"] == pytest.approx(expected, rel=1e-5) and abs(expected - result["loss"]) > 1e-3


def test_train_one_epoch_accumulates_gradients_over_grad_accum_batches(tiny_model):
    # SGD: 3 batches of 2 accumulated (each loss / 3) make one step on their mean, as one batch of 6 does
    x, y = _brightness_data(6, seed=3)
    models = {name: copy.deepcopy(tiny_model) for name in ("accumulated", "one batch", "every batch", "partial")}
    for name, batch, grad_accum in (("accumulated", 2, 3), ("one batch", 6, 1), ("every batch", 2, 1),
                                    ("partial", 2, 4)):  # the epoch ends 3 batches into a group of 4
        optimizer = torch.optim.SGD(models[name].parameters(), lr=1.0)
        loader = DataLoader(TensorDataset(x, y), batch_size=batch)
        su.train_one_epoch(models[name], loader, optimizer, "cpu", grad_accum=grad_accum)
    weights = {name: torch.cat([p.detach().flatten() for p in m.parameters()]) for name, m in models.items()}
    torch.testing.assert_close(weights["accumulated"], weights["one batch"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(weights["partial"], weights["one batch"], atol=1e-5, rtol=1e-4)  # the mean of 3
    assert (weights["accumulated"] - weights["every batch"]).abs().max() > 1e-2  # the premise: 3 steps differ
    # 5 batches, grad_accum 2: steps after batches 2, 4 and the last (5), each followed by the scheduler's
    model = copy.deepcopy(tiny_model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    x, y = _brightness_data(10, seed=4)
    su.train_one_epoch(model, DataLoader(TensorDataset(x, y), batch_size=2), optimizer, "cpu",
                       scheduler=scheduler, grad_accum=2)
    assert optimizer.state_dict()["state"][0]["step"].item() == 3 and scheduler.last_epoch == 3
    assert scheduler.get_last_lr() == [1e-3 / 4]
    assert all(p.grad is None for p in model.parameters())  # nothing left to leak into the next epoch


def test_train_one_epoch_empty_loader(tiny_model):
    optimizer = torch.optim.SGD(tiny_model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="the training loader yielded no batches"):
        su.train_one_epoch(tiny_model, [], optimizer, "cpu")


def test_train_one_epoch_with_gradient_checkpointing():
    cfg = su.tiny_config(num_frames=4, image_size=32)
    torch.manual_seed(0)
    model = su.build_model(cfg, gradient_checkpointing=True)
    x, y = _clips(cfg, batch=4), torch.tensor([0, 1, 0, 1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    stats = su.train_one_epoch(model, DataLoader(TensorDataset(x, y), batch_size=2), optimizer, "cpu")
    assert np.isfinite(stats["loss"])


def _linear_dtypes(model):
    dtypes = set()
    model.classifier.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    return dtypes


def test_training_on_cpu_stays_fp32(bf16_cpu):
    cfg = su.tiny_config(num_frames=4, image_size=32)
    model = su.build_model(cfg)
    dtypes = _linear_dtypes(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    su.train_one_epoch(model, [(_clips(cfg), torch.tensor([0, 1]))], optimizer, "cpu")
    assert dtypes == {torch.float32}


# -- predict_probs, evaluate_items -----------------------------------------------------------------


def test_predict_probs_matches_softmax_by_hand(tiny_model):
    x, y = _brightness_data(7, seed=2)
    y_true, y_prob = su.predict_probs(tiny_model, DataLoader(TensorDataset(x, y), batch_size=3), "cpu", amp=False)
    assert y_true.dtype == np.int64 and y_prob.dtype == np.float32
    assert y_true.tolist() == y.tolist()
    with torch.no_grad():
        tiny_model.eval()
        expected = torch.softmax(tiny_model(pixel_values=x).logits, dim=-1)[:, 1].numpy()
    np.testing.assert_allclose(y_prob, expected, rtol=0, atol=1e-6)
    assert ((y_prob >= 0) & (y_prob <= 1)).all()
    assert not tiny_model.training


def test_predict_probs_empty_loader(tiny_model):
    y_true, y_prob = su.predict_probs(tiny_model, [], "cpu")
    assert y_true.shape == (0,) and y_prob.shape == (0,)


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


# -- the training state: resuming ------------------------------------------------------------------


def _run(make_config, seed):
    torch.manual_seed(seed)
    model = su.build_model(make_config())
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3), torch.Generator().manual_seed(seed)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_training(make_config, tmp_path):
    run_key = {"MODEL": "tiny", "LR": 1e-3, "SEED": 0, "train_videos": ["a.mp4", "b.mp4"]}
    model, optimizer, generator = _run(make_config, 0)
    su.training_step(model, _clips(make_config()), torch.tensor([0, 1]), optimizer)  # an optimizer with state
    torch.randint(0, 10, (3,), generator=generator)  # a generator that has drawn
    history = [{"epoch": 1, "train_loss": 0.69, "val_accuracy": 0.5}, {"epoch": 2, "train_loss": 0.41, "val_accuracy": 0.875}]
    path = su.save_training_state(tmp_path / "training_state.pt", model, optimizer, None, 2, [0.875], history,
                                  generator=generator, run_key=run_key)
    saved_weights, saved_generator = _weights(model), generator.get_state()
    saved_step = optimizer.state_dict()["state"][0]["step"].item()

    fresh, fresh_optimizer, fresh_generator = _run(make_config, 1)
    untouched, untouched_generator = _weights(fresh), fresh_generator.get_state()
    assert not _same_weights(untouched, saved_weights)

    def nothing_loaded():
        return (_same_weights(_weights(fresh), untouched) and fresh_optimizer.state_dict()["state"] == {}
                and torch.equal(fresh_generator.get_state(), untouched_generator))

    start = ([], [], 1)  # [] < any selection_score: the first epoch is saved
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
    # load_training_state, which resume_training calls: any knob that differs, or one never saved, is
    # refused, and nothing changes, Python's and torch's global random states included
    rng = (random.getstate(), torch.get_rng_state())
    with pytest.raises(su.CheckpointError,
                       match=r"other run_key \(train_videos: saved \['a.mp4', 'b.mp4'\], now \['a.mp4'\]\)"):
        su.load_training_state(path, fresh, fresh_optimizer, generator=fresh_generator,
                               match={"run_key": {**run_key, "train_videos": ["a.mp4"]}})
    with pytest.raises(su.CheckpointError, match="saved by a run with other seed"):
        su.load_training_state(path, fresh, fresh_optimizer, match={"seed": 0})  # not saved at all
    assert nothing_loaded() and random.getstate() == rng[0] and torch.equal(torch.get_rng_state(), rng[1])

    got_history, best, first_epoch, message = su.resume_training(path, fresh, fresh_optimizer, None, fresh_generator,
                                                                 dict(run_key))
    assert (got_history, best, first_epoch) == (history, [0.875], 3)
    assert message == "resuming after epoch 2 (best validation score so far [0.875])"
    assert _same_weights(_weights(fresh), saved_weights)
    assert fresh_optimizer.state_dict()["state"][0]["step"].item() == saved_step == 1
    assert torch.equal(fresh_generator.get_state(), saved_generator)


def _cached_clips(tmp_path, n=12):
    rng = np.random.default_rng(0)
    items = [su.VideoItem(Path(f"/d/{'original' if k % 2 == 0 else 'Deepfakes'}/{k:03d}.mp4"), k % 2,
                          "original" if k % 2 == 0 else "Deepfakes", f"{k:03d}") for k in range(n)]
    for item in items:
        clip = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        clip[..., 0] = np.clip(clip[..., 0].astype(int) + (60 if item.label else -60), 0, 255)  # learnable
        dest = su.cache_path(item, tmp_path / "cache")
        dest.parent.mkdir(parents=True, exist_ok=True)
        np.save(dest, clip)
    return items, tmp_path / "cache"


def _new_run(make_config, items, cache, model_seed, loader_seed):
    """What the notebook builds before its epoch loop: model, optimizer, scaler, loader."""
    torch.manual_seed(model_seed)
    # Dropout draws from torch's global generator: the resume must restore it.
    model = su.build_model(make_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)  # state that changes
    generator = torch.Generator().manual_seed(loader_seed)
    # augment: the flips draw from torch's global generator; shuffle from the loader's generator
    loader = DataLoader(su.FrameClipDataset(items, cache, augment=True), batch_size=4, shuffle=True,
                        generator=generator, num_workers=0)
    return model, optimizer, scaler, generator, loader


def _epoch(model, optimizer, scaler, loader, epoch, history):
    stats = su.train_one_epoch(model, loader, optimizer, "cpu", scaler)
    history.append({"epoch": epoch, "train_loss": stats["loss"], "train_accuracy": stats["accuracy"]})


def _seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_resumed_training_ends_with_the_same_weights(make_config, tmp_path):
    items, cache = _cached_clips(tmp_path)

    _seed_everything(0)
    model, optimizer, scaler, _, loader = _new_run(make_config, items, cache, 0, 0)
    straight: list[dict] = []
    for epoch in (1, 2, 3):
        _epoch(model, optimizer, scaler, loader, epoch, straight)

    _seed_everything(0)
    first, opt1, scaler1, gen1, loader1 = _new_run(make_config, items, cache, 0, 0)
    history: list[dict] = []
    _epoch(first, opt1, scaler1, loader1, 1, history)
    path = su.save_training_state(tmp_path / "out" / "training_state.pt", first, opt1, scaler1, 1, 0.5, history,
                                  generator=gen1, note=np.float32(2.5))
    assert sorted(p.name for p in path.parent.iterdir()) == ["training_state.pt"]  # no temp file left
    del first, opt1, scaler1, gen1, loader1

    # a new session: everything built afresh from other seeds (Python's and NumPy's too: the state
    # holds torch's random states only, and nothing the training draws comes from the others)
    _seed_everything(1234)
    resumed, opt2, scaler2, gen2, loader2 = _new_run(make_config, items, cache, 99, 99)
    state = su.load_training_state(path, resumed, opt2, scaler2, generator=gen2)
    assert state == {"epoch": 1, "best_score": 0.5, "history": history, "extra": {"note": 2.5}}
    history = state["history"]
    for epoch in range(state["epoch"] + 1, 4):
        _epoch(resumed, opt2, scaler2, loader2, epoch, history)

    assert history == straight
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert scaler2.state_dict() == scaler.state_dict()
    assert scaler.get_scale() != 2.0**10  # the premise: the scaler's state moved and came back
    a, b = optimizer.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for key in a["state"][k]:
            assert torch.equal(a["state"][k][key], b["state"][k][key])


def test_training_state_holds_only_tensors_and_plain_values(make_config, tmp_path):
    torch.manual_seed(0)
    model = su.build_model(make_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    path = su.save_training_state(tmp_path / "s.pt", model, optimizer, None, 4, np.float64(0.75),
                                  [{"epoch": 4, "val_accuracy": np.float64(0.75)}], split="identity")
    raw = torch.load(path, map_location="cpu", weights_only=True)  # loads with the safe unpickler
    assert raw["format"] == su.TRAINING_STATE_FORMAT and raw["scaler"] is None and raw["rng"]["generator"] is None
    assert raw["scheduler"] is None
    state = su.load_training_state(path, model, optimizer)
    assert state == {"epoch": 4, "best_score": 0.75, "history": [{"epoch": 4, "val_accuracy": 0.75}],
                     "extra": {"split": "identity"}}
    assert type(state["best_score"]) is float


# -- the training state: refused -------------------------------------------------------------------


def test_training_state_and_checkpoint_are_not_interchangeable(tiny_model, tmp_path):
    model = tiny_model
    optimizer = torch.optim.AdamW(model.parameters())
    checkpoint = su.save_checkpoint(model, tmp_path / "Scarlet.pt", su.Preprocessing(4, 32))
    with pytest.raises(su.CheckpointError, match="not a Scarlet training state .a Scarlet.pt model checkpoint: load it with load_checkpoint"):
        su.load_training_state(checkpoint, model, optimizer)
    state = su.save_training_state(tmp_path / "state.pt", model, optimizer, None, 1, None, [])
    with pytest.raises(su.CheckpointError, match="not a Scarlet checkpoint or a state dict"):
        su.load_checkpoint(state)
    # v2 (no scheduler; best_score a float accuracy, which a selection_score list cannot be compared with)
    torch.save({**torch.load(state, weights_only=True), "format": "scarlet-training-state-v2"}, state)
    with pytest.raises(su.CheckpointError, match="not a Scarlet training state .found scarlet-training-state-v2.$"):
        su.load_training_state(state, model, optimizer)
    torch.save([1, 2], state)
    with pytest.raises(su.CheckpointError, match=r"not a Scarlet training state \(found list\)$"):
        su.load_training_state(state, model, optimizer)


def test_training_state_for_another_model_or_optimizer(tiny_model, make_config, tmp_path):
    model = tiny_model
    optimizer = torch.optim.AdamW(model.parameters())
    path = su.save_training_state(tmp_path / "state.pt", model, optimizer, None, 1, None, [])
    other = su.build_model(make_config(num_frames=2))  # torch's own errors, which name the parameter
    with pytest.raises(RuntimeError, match=r"size mismatch for timesformer\.embeddings\.time_embeddings: .*"
                                           r"torch\.Size\(\[1, 4, 32\]\) from checkpoint.*torch\.Size\(\[1, 2, 32\]\)"):
        su.load_training_state(path, other, torch.optim.AdamW(other.parameters()))
    deeper = su.build_model(make_config(num_hidden_layers=3))
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: \"timesformer\.encoder\.layer\.2\."):
        su.load_training_state(path, deeper, torch.optim.AdamW(deeper.parameters()))
    head_only = torch.optim.AdamW(model.classifier.parameters())
    with pytest.raises(ValueError, match="parameter group that doesn't match the size of optimizer's group"):
        su.load_training_state(path, model, head_only)


def _preset_run(make_config, items, cache, seed):
    """The "generalise" recipe's training objects: drop path, warmup + cosine schedule, a shuffling loader."""
    from transformers import get_cosine_schedule_with_warmup

    torch.manual_seed(seed)
    model = su.build_model(make_config(), drop_path=0.1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=1, num_training_steps=6)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(su.FrameClipDataset(items, cache, augment=True), batch_size=4, shuffle=True,
                        generator=generator, num_workers=0)
    return model, optimizer, scheduler, generator, loader


def _preset_epoch(model, optimizer, scheduler, loader, history):
    stats = su.train_one_epoch(model, loader, optimizer, "cpu", scheduler=scheduler, grad_accum=2,
                               label_smoothing=0.1)
    history.append({"epoch": len(history) + 1, "train_loss": stats["loss"]})


def test_a_resumed_preset_run_equals_a_straight_one(make_config, tmp_path):
    items, cache = _cached_clips(tmp_path)  # 12 clips: 3 batches an epoch, steps after batches 2 and 3
    model, optimizer, scheduler, _, loader = _preset_run(make_config, items, cache, 0)
    straight: list[dict] = []
    for _ in range(2):
        _preset_epoch(model, optimizer, scheduler, loader, straight)

    first, opt1, sched1, gen1, loader1 = _preset_run(make_config, items, cache, 0)
    history: list[dict] = []
    _preset_epoch(first, opt1, sched1, loader1, history)
    run_key = {"RECIPE": "generalise"}
    path = su.save_training_state(tmp_path / "state.pt", first, opt1, None, 1, [0.93, -0.21], history,
                                  generator=gen1, scheduler=sched1, run_key=run_key)
    del first, opt1, sched1, gen1, loader1

    resumed, opt2, sched2, gen2, loader2 = _preset_run(make_config, items, cache, 99)
    history, best, start, message = su.resume_training(path, resumed, opt2, None, gen2, run_key, scheduler=sched2)
    assert (best, start) == ([0.93, -0.21], 2)
    assert message == "resuming after epoch 1 (best validation score so far [0.93, -0.21])"
    _preset_epoch(resumed, opt2, sched2, loader2, history)

    assert history == straight
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert sched2.state_dict() == scheduler.state_dict() and scheduler.last_epoch == 4  # 2 steps an epoch
    assert sched2.get_last_lr() == scheduler.get_last_lr() == [group["lr"] for group in opt2.param_groups]
    assert 0 < scheduler.get_last_lr()[0] < 1e-3  # the premise: the schedule moved the rate


# -- selection_score -------------------------------------------------------------------------------


def _best_epoch(epochs, select_by):
    """The notebook's loop: an epoch is kept where its score is strictly above the best so far."""
    best, kept = [], None
    for epoch, metrics in enumerate(epochs, 1):
        if (score := su.selection_score(metrics, select_by)) > best:
            best, kept = score, epoch
    return kept


def test_select_by_auc_picks_the_best_auc_epoch_ties_by_lower_loss():
    epochs = [{"accuracy": 0.80, "roc_auc": 0.90, "log_loss": 0.40},
              {"accuracy": 0.90, "roc_auc": 0.93, "log_loss": 0.50},
              {"accuracy": 0.90, "roc_auc": 0.93, "log_loss": 0.35},  # the AUC of 2, a lower loss
              {"accuracy": 0.95, "roc_auc": 0.92, "log_loss": 0.20},
              {"accuracy": 0.85, "roc_auc": None, "log_loss": 0.10}]  # one class only: no AUC
    assert _best_epoch(epochs, "auc") == 3
    assert _best_epoch(epochs[:2] + epochs[1:2], "auc") == 2  # an equal AUC and loss is no improvement
    assert _best_epoch(epochs, "accuracy") == 4
    assert _best_epoch(epochs[:3], "accuracy") == 2  # the first of equal accuracies, as before
    assert su.selection_score(epochs[4], "auc") == [-np.inf, -0.10]
    assert _best_epoch([epochs[4], {**epochs[4], "log_loss": 0.05}], "auc") == 2
    assert su.selection_score(epochs[0]) == [0.80]
    with pytest.raises(ValueError, match="SELECT_BY 'loss': expected 'accuracy' or 'auc'"):
        su.selection_score(epochs[0], "loss")
