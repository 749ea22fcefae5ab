"""Training, prediction, metrics, the report files, and one-video prediction."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import scarlet_utils as su


@pytest.fixture
def tiny_model(make_config):
    torch.manual_seed(0)
    return su.build_model(make_config())


def _brightness_data(n=32, seed=0):
    """Clips whose label is the sign of their brightness: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    sign = (labels.float() * 2 - 1).view(-1, 1, 1, 1, 1)
    x = torch.randn(n, 4, 3, 32, 32, generator=g) * 0.5 + sign
    return x, labels


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


def test_train_one_epoch_empty_loader(tiny_model):
    optimizer = torch.optim.SGD(tiny_model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="the training loader yielded no batches"):
        su.train_one_epoch(tiny_model, [], optimizer, "cpu")


# -- predict_probs ---------------------------------------------------------------------------------
# (several clips per video: tests/test_clips.py::test_predict_probs_averages_p_fake_over_clips)


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


# -- compute_metrics -------------------------------------------------------------------------------

Y_TRUE = [0, 0, 1, 1, 1]
Y_PROB = [0.1, 0.6, 0.4, 0.8, 0.9]  # at 0.5: predicted [0, 1, 0, 1, 1]


def test_compute_metrics_known_answers():
    m = su.compute_metrics(Y_TRUE, Y_PROB)
    assert m["n"] == 5 and m["threshold"] == 0.5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]  # rows true Real/Fake, columns predicted
    assert m["per_class"]["Real"]["precision"] == pytest.approx(1 / 2)
    assert m["per_class"]["Real"]["recall"] == pytest.approx(1 / 2)
    assert m["per_class"]["Real"]["f1-score"] == pytest.approx(1 / 2)
    assert m["per_class"]["Fake"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["Fake"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["Fake"]["f1-score"] == pytest.approx(2 / 3)
    assert m["support"] == {"Real": 2, "Fake": 3}
    assert m["macro_avg"]["f1-score"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["weighted_avg"]["f1-score"] == pytest.approx((2 * 1 / 2 + 3 * 2 / 3) / 5)
    # 5 of the 6 (real, fake) pairs are ranked right: 0.4 < 0.6 is the one miss
    assert m["roc_auc"] == pytest.approx(5 / 6)
    # mean negative log-likelihood of the true class: P = 0.9, 0.4, 0.4, 0.8, 0.9
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.4, 0.8, 0.9])))
    json.dumps(m)  # plain types only


def test_compute_metrics_threshold():
    low = su.compute_metrics(Y_TRUE, Y_PROB, threshold=0.35)  # predicted [0, 1, 1, 1, 1]
    assert low["confusion_matrix"] == [[1, 1], [0, 3]] and low["accuracy"] == pytest.approx(4 / 5)
    high = su.compute_metrics(Y_TRUE, Y_PROB, threshold=0.85)  # predicted [0, 0, 0, 0, 1]
    assert high["confusion_matrix"] == [[2, 0], [2, 1]] and high["accuracy"] == pytest.approx(3 / 5)
    assert low["roc_auc"] == high["roc_auc"] == pytest.approx(5 / 6)  # AUC ignores the threshold
    at = su.compute_metrics([0, 1], [0.5, 0.5], threshold=0.5)  # P(fake) == threshold is fake
    assert at["confusion_matrix"] == [[0, 1], [0, 1]]


def test_compute_metrics_single_class():
    m = su.compute_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert m["roc_auc"] is None
    assert m["confusion_matrix"] == [[0, 0], [1, 2]]
    assert m["support"] == {"Real": 0, "Fake": 3}
    assert m["per_class"]["Real"]["f1-score"] == 0.0


@pytest.mark.parametrize(
    ("y_true", "y_prob", "shapes"),
    [([0, 1, 1], [0.2, 0.8], "(3,) and (2,)"), ([[0, 1]], [[0.1, 0.9]], "(1, 2) and (1, 2)"), ([0, 1], 0.5, "(2,) and ()")],
    ids=["lengths", "2-d", "scalar-prob"],
)
def test_compute_metrics_bad_shapes(y_true, y_prob, shapes):
    with pytest.raises(ValueError, match=re.escape(f"y_true and y_prob must be equal-length 1-D, got {shapes}")):
        su.compute_metrics(y_true, y_prob)


def test_compute_metrics_with_nothing_scored():
    with pytest.raises(ValueError, match=re.escape("no videos were scored (did every video fail to extract?")):
        su.compute_metrics([], [])


# -- save_reports ----------------------------------------------------------------------------------


REPORT_FILES = ["classification_report.txt", "confusion_matrix.png", "metrics.json", "roc_curve.png", "score_histogram.png"]


def test_save_reports_writes_the_report_files(tmp_path):
    out = tmp_path / "models" / "video"
    metrics = su.save_reports(Y_TRUE, Y_PROB, out)
    assert sorted(p.name for p in out.iterdir()) == REPORT_FILES
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics.keys() == su.compute_metrics(Y_TRUE, Y_PROB).keys()
    assert metrics["accuracy"] == 0.6 and metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["roc_auc"] == pytest.approx(5 / 6, abs=1e-6)
    assert metrics["per_class"]["Fake"]["f1-score"] == pytest.approx(2 / 3, abs=1e-6)

    text = (out / "classification_report.txt").read_text()
    rows = {m.group(1): [float(v) for v in m.group(2, 3, 4)] + [int(m.group(5))]
            for m in re.finditer(r"^\s*(Real|Fake)\s+(\d\.\d\d)\s+(\d\.\d\d)\s+(\d\.\d\d)\s+(\d+)\s*$", text, re.M)}
    assert rows == {"Real": [0.5, 0.5, 0.5, 2], "Fake": [0.67, 0.67, 0.67, 3]}
    assert re.search(r"^\s+precision\s+recall\s+f1-score\s+support\s*$", text, re.M)
    assert re.search(r"^\s*accuracy\s+0\.60\s+5\s*$", text, re.M)

    png = out / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(png))
    assert image is not None and image.shape == (552, 768, 3)  # 6.4 x 4.6 in at 120 dpi
    assert 10_000 < png.stat().st_size < 500_000
    assert image.std() > 20  # a drawn figure, not a blank canvas


def test_save_reports_overwrites_atomically(tmp_path):
    su.save_reports(Y_TRUE, Y_PROB, tmp_path)
    metrics = su.save_reports([0, 1], [0.2, 0.9], tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics and metrics["accuracy"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == REPORT_FILES


# -- predict_video ---------------------------------------------------------------------------------


@pytest.fixture
def small_video(write_video):
    rng = np.random.default_rng(3)
    frames = [cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (9, 9), 0) for _ in range(12)]
    return write_video("clip.mp4", frames)


def test_predict_video_equals_the_model_on_read_video_frames(tiny_model, small_video):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    prep = su.Preprocessing(num_frames=4, size=32, mean=mean, std=std)
    p = su.predict_video(tiny_model, small_video, prep, amp=False)
    assert isinstance(p, float) and 0.0 <= p <= 1.0
    frames = su.read_video_frames(small_video, num_frames=4, size=32)
    x = (torch.from_numpy(frames).float() / 255).permute(0, 3, 1, 2)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    tiny_model.eval()
    with torch.no_grad():
        expected = torch.softmax(tiny_model(pixel_values=x.unsqueeze(0)).logits, -1)[0, 1].item()
    assert p == pytest.approx(expected, abs=1e-6)
    assert su.predict_video(tiny_model, small_video, preprocessing=prep, device="cpu", amp=False) == p
    # the normalisation is really applied: no preprocessing means the model's frames and size with the k400
    # mean/std, another answer
    k400 = su.predict_video(tiny_model, small_video, amp=False)
    assert k400 != pytest.approx(p, abs=1e-9)
    assert k400 == su.predict_video(tiny_model, small_video, su.Preprocessing(4, 32), amp=False)


def test_predict_video_averages_several_clips(tiny_model, small_video):
    prep = su.Preprocessing(num_frames=4, size=32)
    clips = su.read_clip(small_video, 4, 32, num_clips=3).frames  # (3, 4, 32, 32, 3)
    assert clips.shape == (3, 4, 32, 32, 3)
    with torch.no_grad():
        per_clip = torch.softmax(tiny_model.eval()(pixel_values=su.clip_to_tensor(clips, prep.mean, prep.std)).logits, -1)[:, 1]
    p = su.predict_video(tiny_model, small_video, prep, num_clips=3, amp=False)
    assert p == pytest.approx(per_clip.mean().item(), abs=1e-6)
    assert p != pytest.approx(su.predict_video(tiny_model, small_video, prep, amp=False), abs=1e-9)


@pytest.mark.parametrize(("prep", "asked"), [(su.Preprocessing(num_frames=8, size=32), "8 frames at 32 px"),
                                             (su.Preprocessing(num_frames=4, size=64), "4 frames at 64 px")])
def test_predict_video_rejects_another_input_size(tiny_model, small_video, prep, asked):
    with pytest.raises(ValueError, match=r"built for 4 frames at 32 px.*" + asked):
        su.predict_video(tiny_model, small_video, prep)


def test_predict_video_bad_file(tiny_model, tmp_path):
    with pytest.raises(su.VideoReadError, match="No such file or directory"):
        su.predict_video(tiny_model, tmp_path / "missing.mp4")
