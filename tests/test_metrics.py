"""Metrics: known answers, EER, average precision, bootstrap intervals, the report files and plots,
per-method (cross-manipulation) metrics and the predictions CSV."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

import scarlet_utils as su


# 2 real, 3 fake; at 0.5 predicted [0, 1, 0, 1, 1] (the compute_metrics known-answer case)
Y_TRUE = [0, 0, 1, 1, 1]
Y_PROB = [0.1, 0.6, 0.4, 0.8, 0.9]
REPORT_FILES = ["classification_report.txt", "confusion_matrix.png", "metrics.json", "roc_curve.png", "score_histogram.png"]


def _overlapping(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scores, about half fake, with overlapping classes (AUC about 0.85)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(np.int64)
    y[:2] = [0, 1]
    return y, 1 / (1 + np.exp(-rng.normal(-1.0 + 2.0 * y, 1.0)))


# -- compute_metrics -------------------------------------------------------------------------------


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


def test_perfect_separation():
    m = su.compute_metrics([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert m["roc_auc"] == 1.0 and m["average_precision"] == 1.0
    assert m["eer"] == 0.0
    assert m["eer_threshold"] == 0.7  # the lowest fake: every fake caught, no real called fake
    assert m["ci95"] == {"accuracy": [1.0, 1.0], "roc_auc": [1.0, 1.0]}


def test_fully_inverted():
    m = su.compute_metrics([0, 0, 0, 1, 1, 1], [0.7, 0.8, 0.9, 0.1, 0.2, 0.3])
    assert m["roc_auc"] == 0.0 and m["eer"] == 1.0
    assert m["ci95"]["roc_auc"] == [0.0, 0.0] and m["ci95"]["accuracy"] == [0.0, 0.0]


def test_one_class_has_no_ranking_metrics():
    m = su.compute_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert m["roc_auc"] is None and m["average_precision"] is None
    assert m["eer"] is None and m["eer_threshold"] is None
    assert m["ci95"]["roc_auc"] is None
    assert m["confusion_matrix"] == [[0, 0], [1, 2]] and m["support"] == {"Real": 0, "Fake": 3}
    assert m["per_class"]["Real"]["f1-score"] == 0.0
    lo, hi = m["ci95"]["accuracy"]
    assert 0 <= lo <= m["accuracy"] <= hi <= 1
    json.dumps(m)


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


# -- EER and average precision ---------------------------------------------------------------------


def test_eer_interpolates_between_roc_points():
    # ROC points (FPR, TPR) from the highest threshold down: inf (0, 0), 0.9 (0, 1/3), 0.8 (0, 2/3),
    # 0.6 (1/2, 2/3), 0.4 (1/2, 1), 0.1 (1, 1). FPR - FNR is -1/3 at 0.8 and +1/6 at 0.6: the
    # segment between them crosses FPR == FNR 2/3 of the way along, at FPR = 2/3 * 1/2 = 1/3
    # (FNR stays 1/3), and the threshold interpolated the same way is 0.8 - 2/3 * 0.2.
    m = su.compute_metrics(Y_TRUE, Y_PROB)
    assert m["eer"] == pytest.approx(1 / 3)
    assert m["eer_threshold"] == pytest.approx(0.8 - 2 / 3 * 0.2)


def test_eer_of_tied_scores_is_a_half():
    # one ROC segment from (0, 0) straight to (1, 1): it crosses FPR == FNR at 1/2
    m = su.compute_metrics([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    assert m["eer"] == 0.5 and m["roc_auc"] == 0.5 and m["eer_threshold"] == 0.5


def test_average_precision_by_hand():
    # ranked 0.9 F, 0.8 F, 0.6 R, 0.4 F, 0.1 R: recall rises by 1/3 at each fake, where precision
    # is 1/1, 2/2 and 3/4; AP = sum of (recall step x precision) = 1/3 + 1/3 + 1/4
    m = su.compute_metrics(Y_TRUE, Y_PROB)
    assert m["average_precision"] == pytest.approx(1 / 3 + 1 / 3 + 1 / 4)


# -- bootstrap intervals ---------------------------------------------------------------------------


def test_ci_contains_the_estimate_and_is_plain_json():
    y, p = _overlapping(200)
    m = su.compute_metrics(y, p)
    for key in ("accuracy", "roc_auc"):
        lo, hi = m["ci95"][key]
        assert isinstance(lo, float) and isinstance(hi, float)
        assert lo < m[key] < hi
    assert m["bootstrap"] == {"n_resamples": 1000, "seed": 0, "resampled": "videos", "groups": m["n"]}
    json.dumps(m)


def test_ci_narrows_with_more_data():
    y, p = _overlapping(50)
    small = su.compute_metrics(y, p)["ci95"]
    big = su.compute_metrics(np.tile(y, 16), np.tile(p, 16))["ci95"]  # same estimates, 16x the videos
    for key in ("accuracy", "roc_auc"):
        width_small, width_big = np.diff(small[key])[0], np.diff(big[key])[0]
        assert 0 < width_big < width_small / 2  # about 1/4: the width goes as 1 / sqrt(n)


def test_ci_is_reproducible_by_seed():
    y, p = _overlapping(120)
    a = su.compute_metrics(y, p, seed=7)["ci95"]
    assert su.compute_metrics(y, p, seed=7)["ci95"] == a
    assert su.compute_metrics(y, p, seed=8)["ci95"] != a


def test_ci_ignores_the_order_of_the_videos():
    """The notebook's evaluation order can change between runs (a parallel frame extraction
    lists videos as they finish): the interval, like the point estimates, must not."""
    y, p = _overlapping(120)
    shuffled = np.random.default_rng(9).permutation(len(y))
    assert su.compute_metrics(y[shuffled], p[shuffled])["ci95"] == su.compute_metrics(y, p)["ci95"]


def test_ci_ignores_last_bit_noise():
    """Scores that tie within a class and differ only in the last bits on a rerun (CPU
    summation order) give the same interval."""
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(40, np.int64), np.ones(40, np.int64)]
    # no real ties a fake, no score sits on the 0.5 threshold
    p = np.r_[rng.integers(0, 6, 40) * 0.1 + 0.05, rng.integers(3, 10, 40) * 0.1 + 0.02]
    noisy = p + rng.normal(0, 1e-12, len(p))  # reorders the tied scores of each class
    assert not np.array_equal(np.argsort(p[:40], kind="stable"), np.argsort(noisy[:40], kind="stable"))
    a, b = su.compute_metrics(y, p)["ci95"], su.compute_metrics(y, noisy)["ci95"]
    for key in ("accuracy", "roc_auc"):
        assert a[key] == pytest.approx(b[key], abs=1e-9)


def test_no_bootstrap():
    m = su.compute_metrics(Y_TRUE, Y_PROB, n_bootstrap=0)
    assert m["ci95"] is None and m["bootstrap"] is None
    assert m["roc_auc"] == pytest.approx(5 / 6)  # everything else unchanged
    with pytest.raises(ValueError, match="n_bootstrap"):
        su.compute_metrics(Y_TRUE, Y_PROB, n_bootstrap=-1)
    with pytest.raises(ValueError, match="n_bootstrap must be >= 1"):
        su.bootstrap_ci(Y_TRUE, Y_PROB, n_bootstrap=0)


@pytest.mark.parametrize(("real_scores", "fake_score", "accuracy", "roc_auc"), [
    # reals r1 = 0.2 (right at 0.5), r2 = 0.6 (called fake), one fake f = 0.7: a resample draws 3 of the 3
    # videos; all three r2 (1/27, over 2.5%): accuracy 0; no r2 (8/27): 1. A resample without f (8/27) or
    # without reals (1/27) has no AUC; every other one ranks f above each real: AUC 1
    ((0.2, 0.6), 0.7, [0.0, 1.0], [1.0, 1.0]),
    # f = 0.4 (called real) ranks above r1 only: AUC 0 where no r1 is drawn (1/3 of the resamples with an
    # AUC), 1 where no r2 is (1/3); accuracy 0 without r1 (8/27), 1 with r1 only (1/27)
    ((0.2, 0.6), 0.4, [0.0, 1.0], [0.0, 1.0]),
    # f ties r2, and a tie counts 1/2: AUC 1/2 without r1, 1 without r2
    ((0.2, 0.6), 0.6, [0.0, 1.0], [0.5, 1.0]),
])
def test_bootstrap_of_a_tiny_set_by_hand(real_scores, fake_score, accuracy, roc_auc):
    ci = su.bootstrap_ci([0, 0, 1], [*real_scores, fake_score], 0.5, 1000, seed=0)
    assert ci["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert ci["roc_auc"] == pytest.approx(roc_auc, abs=1e-12)


# the identities: reals' 4, 4, 7, 1, 2, 2, 9, fakes' 4, 1, 8, 8, 8 (groups 7 and 9 only real, 8 only fake)
@pytest.mark.parametrize("groups", [None, [4, 4, 7, 1, 2, 2, 9, 4, 1, 8, 8, 8]], ids=["videos", "identities"])
def test_bootstrap_is_scikit_learns_metrics_of_each_resample(groups):
    """Each resample weighs a video by how often its group was drawn: its AUC and accuracy are scikit-learn's
    with those weights (ties included); a resample of one class has no AUC."""
    from sklearn.metrics import accuracy_score

    y_true = np.array([0] * 7 + [1] * 5)
    y_prob = np.array([0.1, 0.2, 0.2, 0.5, 0.5, 0.7, 0.9, 0.2, 0.5, 0.5, 0.8, 0.95])
    # the draws of seed 3: how often each group is drawn, groups in order (None: videos by class, then score)
    group = np.lexsort((y_prob, y_true)).argsort() if groups is None else np.unique(groups, return_inverse=True)[1]
    n = group.max() + 1
    weights = np.random.default_rng(3).multinomial(n, np.full(n, 1 / n), size=200)[:, group]
    both = [w[y_true == 0].any() and w[y_true == 1].any() for w in weights]
    aucs = [roc_auc_score(y_true, y_prob, sample_weight=w) for w, b in zip(weights, both) if b]
    accuracies = [accuracy_score(y_true, y_prob >= 0.5, sample_weight=w) for w in weights]
    assert groups is None or sum(both) < 200  # some resamples of identities hold one class
    ci = su.bootstrap_ci(y_true, y_prob, n_bootstrap=200, seed=3, groups=groups)
    assert ci["roc_auc"] == pytest.approx(np.percentile(aucs, [2.5, 97.5]).tolist(), abs=1e-12)
    assert ci["accuracy"] == pytest.approx(np.percentile(accuracies, [2.5, 97.5]).tolist(), abs=1e-12)


def test_bootstrap_of_one_group_is_the_estimate():
    """One group holding every video: each resample is the whole set (weights all 1)."""
    y, p = _overlapping(60)
    ci = su.bootstrap_ci(y, p, n_bootstrap=50, groups=[3] * 60)
    assert ci["roc_auc"] == pytest.approx([roc_auc_score(y, p)] * 2, abs=1e-12)
    assert ci["accuracy"] == pytest.approx([np.mean((p >= 0.5) == y)] * 2, abs=1e-12)


def test_each_video_its_own_group_is_close_to_the_stratified_bootstrap():
    """On a large set, resampling videos without keeping each class's count gives about the interval the
    earlier class-stratified bootstrap gave (its values for this set, 1000 resamples, seed 0)."""
    y, p = _overlapping(2000, seed=5)
    ci = su.compute_metrics(y, p)["ci95"]
    assert ci["accuracy"] == pytest.approx([0.8175, 0.8500125], abs=0.002)  # width 0.033
    assert ci["roc_auc"] == pytest.approx([0.9046055, 0.9272327], abs=0.002)  # width 0.023


def _faces(n_faces: int = 20, per_face: int = 5, seed: int = 0) -> tuple[list[su.VideoItem], np.ndarray]:
    """Videos of ``n_faces`` people, ``per_face`` each (reals and fakes), with scores that separate the
    classes well for some people and badly for others: the errors go together by identity."""
    rng = np.random.default_rng(seed)
    items = [su.VideoItem(Path(f"{f}_{k}.mp4"), k % 2, "original" if k % 2 == 0 else "Deepfakes", f"{f}_{k}",
                          people=(f"person{f}",)) for f in range(n_faces) for k in range(per_face)]
    y = np.array([i.label for i in items])
    separation = np.repeat(rng.normal(1.0, 1.5, n_faces), per_face)
    return items, 1 / (1 + np.exp(-((2 * y - 1) * separation + rng.normal(0, 0.3, len(y)))))


def test_identity_bootstrap_is_wider_where_identities_repeat():
    items, p = _faces()
    y, groups = np.array([i.label for i in items]), su.identity_groups(items)
    assert len(set(groups)) == 20
    videos, identities = su.compute_metrics(y, p), su.compute_metrics(y, p, groups=groups)
    assert videos["bootstrap"]["resampled"] == "videos" and identities["bootstrap"]["resampled"] == "identities"
    for key in ("accuracy", "roc_auc"):
        (lo, hi), (id_lo, id_hi) = videos["ci95"][key], identities["ci95"][key]
        assert id_lo < lo < videos[key] < hi < id_hi
        assert id_hi - id_lo > 1.5 * (hi - lo)  # 20 people, not 100 independent videos (here about 2x)


def test_identity_bootstrap_of_copies_is_the_video_bootstrap_of_one_each():
    """Each identity's videos all alike (4 copies): resampling identities is resampling one video each."""
    y, p = _overlapping(30)
    one_each = su.bootstrap_ci(y, p, n_bootstrap=300, seed=2)
    rank = np.lexsort((p, y)).argsort()  # the group order of one_each's draws
    copies = su.bootstrap_ci(np.repeat(y, 4), np.repeat(p, 4), n_bootstrap=300, seed=2, groups=np.repeat(rank, 4))
    assert copies == one_each  # the same draws; weights 4x, metrics unchanged
    narrow = su.bootstrap_ci(np.repeat(y, 4), np.repeat(p, 4), n_bootstrap=300, seed=2)  # as 120 videos
    assert np.diff(narrow["roc_auc"])[0] < 0.7 * np.diff(one_each["roc_auc"])[0]


# -- reports and plots -----------------------------------------------------------------------------


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

    # Again into the same folder, more videos and extra values: every file replaced, the extra merged in
    y, p = _overlapping(300)
    config = {"LR": 3e-5, "WEIGHT_DECAY": 1e-8, "DATA_ROOT": tmp_path}
    metrics = su.save_reports(y, p, out, extra={"split_strategy": "by_source", "config": config})
    assert sorted(f.name for f in out.iterdir()) == REPORT_FILES
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics and on_disk["n"] == 300 and on_disk["split_strategy"] == "by_source"
    # extra is not rounded (1e-8 would become 0.0) and a path is written as its string
    assert on_disk["config"] == {"LR": 3e-5, "WEIGHT_DECAY": 1e-8, "DATA_ROOT": str(tmp_path)}
    assert on_disk["eer"] is not None and len(on_disk["ci95"]["roc_auc"]) == 2
    assert on_disk["bootstrap"]["resampled"] == "videos"
    pairs = su.save_reports(y, p, tmp_path / "pairs", groups=np.arange(300) // 2)  # two videos per identity
    assert pairs["bootstrap"]["resampled"] == "identities" and pairs["ci95"] != on_disk["ci95"]
    assert pairs["bootstrap"]["groups"] == 150  # how many units were resampled: few groups, wide intervals
    for name, shape in (("roc_curve.png", (600, 600, 3)), ("score_histogram.png", (480, 720, 3))):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape == shape, name
        assert image.std() > 20, name


def test_save_reports_refuses_extra_that_shadows_a_metric(tmp_path):
    with pytest.raises(ValueError, match="accuracy"):
        su.save_reports(Y_TRUE, Y_PROB, tmp_path, extra={"accuracy": 1.0})


def test_save_reports_titles_start_with_the_name(tmp_path, monkeypatch):
    titles = {}
    save = su.save_figure
    monkeypatch.setattr(su, "save_figure", lambda fig, path: titles.setdefault(
        Path(path).name, fig.axes[0].get_title()) and save(fig, path))
    su.save_reports(Y_TRUE, Y_PROB, tmp_path, name="validation, identity split")
    assert titles == {
        "confusion_matrix.png": "validation, identity split: confusion matrix (n=5, accuracy 60.0%)",
        "roc_curve.png": "validation, identity split: ROC curve (n=5)",
        "score_histogram.png": "validation, identity split: scores by true class (n=5)",
    }
    assert all((tmp_path / name).stat().st_size > 10_000 for name in titles)
    titles.clear()
    su.save_reports(Y_TRUE, Y_PROB, tmp_path)
    assert titles["roc_curve.png"] == "ROC curve (n=5)"


def test_plots_are_bare_figures():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    roc = su.plot_roc_curves({"ROC": (Y_TRUE, Y_PROB)})
    hist = su.plot_score_histogram(Y_TRUE, Y_PROB, 0.5)
    assert isinstance(roc, Figure) and isinstance(hist, Figure)
    assert plt.get_fignums() == before  # not registered with pyplot
    ax = roc.axes[0]
    assert "False positive rate" in ax.get_xlabel() and "True positive rate" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "ROC (AUC = 0.83)" in legend and any(t.startswith("EER 33.3% (P(fake) >= 0.667") for t in legend)
    ax = hist.axes[0]
    assert ax.get_xlabel() == "P(fake)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["Real (n=2)", "Fake (n=3)", "threshold 0.5"]
    # one class: still a figure, saying why there is no curve
    single = su.plot_roc_curves({"ROC": ([1, 1], [0.2, 0.3])})
    assert any("only one class" in t.get_text() for t in single.axes[0].texts)


def test_roc_curves_of_several_sets():
    """The notebook's cross-dataset chart: each set's name with its size, AUC and EER; a set of one
    class is named on the chart, not dropped silently."""
    y, p = _overlapping(60)
    fig = su.plot_roc_curves({"FF++": (Y_TRUE, Y_PROB), "DFDC": (y, p), "Celeb-DF": ([1, 1], [0.2, 0.3])},
                             "Cross-dataset ROC")
    ax = fig.axes[0]
    assert ax.get_title() == "Cross-dataset ROC"
    assert "False positive rate" in ax.get_xlabel() and "True positive rate" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "FF++ (n=5) (AUC = 0.83)" in legend
    assert f"DFDC (n=60) (AUC = {roc_auc_score(y, p):.2f})" in legend
    m = su.compute_metrics(y, p, n_bootstrap=0)
    assert [t for t in legend if t.startswith("EER")] == [
        "EER 33.3% (P(fake) >= 0.667)", f"EER {m['eer']:.1%} (P(fake) >= {m['eer_threshold']:.3f})"]
    assert [t.get_text() for t in ax.texts] == ["Celeb-DF (n=2): undefined, only one class present"]


def test_history_and_frame_grid_plots_render(tmp_path: Path) -> None:
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_accuracy": 0.5 + e / 20,
                "val_f1": 0.4 + e / 20, "val_roc_auc": None if e == 1 else 0.6} for e in range(1, 5)]
    png = su.save_figure(su.plot_history(history), tmp_path / "curves.png")
    image = cv2.imread(str(png))
    assert image is not None and image.shape[1] > image.shape[0] > 300
    clips = [np.full((3, 16, 16, 3), v, np.uint8) for v in (0, 255)]
    grid = su.save_figure(su.plot_frame_grid(clips, ["dark", "bright"]), tmp_path / "grid.png")
    assert cv2.imread(str(grid)).shape[0] > 100
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_a_one_epoch_history_has_whole_number_ticks() -> None:
    """One epoch used to give ticks 0.96-1.04: the epoch axis shows whole epochs only."""
    fig = su.plot_history([{"epoch": 1, "train_loss": 0.7, "val_loss": 0.69, "val_accuracy": 0.5,
                            "val_f1": 0.33, "val_roc_auc": 0.5}])
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1.0], ticks


# -- cross-manipulation table ----------------------------------------------------------------------


def _items(spec: list[tuple[str, float]]) -> tuple[list[su.VideoItem], list[float]]:
    items = [su.VideoItem(Path(f"{m}/{i:03d}.mp4"), 0 if m == "original" else 1, m, f"{i:03d}")
             for i, (m, _) in enumerate(spec)]
    return items, [s for _, s in spec]


CROSS = [
    ("FaceSwap", 0.25), ("original", 0.1), ("Deepfakes", 0.9), ("original", 0.2), ("Face2Face", 0.35),
    ("original", 0.3), ("FaceSwap", 0.45), ("Deepfakes", 0.8), ("Face2Face", 0.05), ("original", 0.4),
    ("FaceSwap", 0.3), ("MyMethod", 0.6),
]


def test_cross_method_metrics_by_hand():
    items, scores = _items(CROSS)
    rows = su.cross_method_metrics(items, scores, n_bootstrap=0)
    # KNOWN_METHODS order, then other methods alphabetically, then "all"
    assert [r["method"] for r in rows] == ["Deepfakes", "Face2Face", "FaceSwap", "MyMethod", "all"]
    by = {r["method"]: r for r in rows}
    assert all(r["n_real"] == 4 for r in rows)  # every row uses ALL the reals: 0.1, 0.2, 0.3, 0.4
    assert [r["n_fake"] for r in rows] == [2, 2, 3, 1, 8]
    # (real, fake) pairs ranked right, ties 1/2, out of 4 x n_fake:
    assert by["Deepfakes"]["roc_auc"] == 1.0  # 0.9 and 0.8 beat every real
    assert by["Face2Face"]["roc_auc"] == pytest.approx(3 / 8)  # 0.35 beats 3 reals, 0.05 none
    assert by["FaceSwap"]["roc_auc"] == pytest.approx((2 + 4 + 2.5) / 12)  # 0.25: 2, 0.45: 4, 0.3: 2 + tie
    assert by["MyMethod"]["roc_auc"] == 1.0
    assert by["all"]["roc_auc"] == pytest.approx((4 + 4 + 3 + 0 + 2 + 4 + 2.5 + 4) / 32)
    # at 0.5 every real is right; fakes right: Deepfakes 2, Face2Face 0, FaceSwap 0, MyMethod 1
    assert by["Deepfakes"]["accuracy"] == 1.0 and by["Face2Face"]["accuracy"] == pytest.approx(4 / 6)
    assert by["FaceSwap"]["accuracy"] == pytest.approx(4 / 7)
    assert by["all"]["accuracy"] == pytest.approx(7 / 12)
    assert by["Deepfakes"]["recall_fake"] == 1.0 and by["FaceSwap"]["recall_fake"] == 0.0
    assert by["all"]["recall_fake"] == pytest.approx(3 / 8)
    assert all(r["ci95"] is None for r in rows)
    json.dumps(rows)


def test_cross_method_metrics_intervals():
    items, scores = _items(CROSS)
    rows = {r["method"]: r for r in su.cross_method_metrics(items, scores, n_bootstrap=500, seed=1)}
    assert rows["Deepfakes"]["ci95"] == {"accuracy": [1.0, 1.0], "roc_auc": [1.0, 1.0]}
    for row in rows.values():
        for key in ("accuracy", "roc_auc"):
            lo, hi = row["ci95"][key]
            assert lo <= row[key] <= hi
    assert su.cross_method_metrics(items, scores, n_bootstrap=500, seed=1) == list(rows.values())


def test_cross_method_pooled_row_leaves_out_the_trained_methods():
    items, scores = _items(CROSS)
    rows = {r["method"]: r for r in su.cross_method_metrics(items, scores, n_bootstrap=0, trained=("Deepfakes",))}
    assert list(rows) == ["Deepfakes", "Face2Face", "FaceSwap", "MyMethod", "all untrained"]
    assert rows["Deepfakes"]["roc_auc"] == 1.0  # a trained method keeps its own row
    pooled = rows["all untrained"]  # Face2Face 2, FaceSwap 3, MyMethod 1 fakes against the 4 reals
    assert (pooled["n_real"], pooled["n_fake"]) == (4, 6)
    assert pooled["roc_auc"] == pytest.approx((3 + 0 + 2 + 4 + 2.5 + 4) / 24)
    assert pooled["accuracy"] == pytest.approx(5 / 10) and pooled["recall_fake"] == pytest.approx(1 / 6)
    other = su.cross_method_metrics(items, scores, 0, trained=("NeuralTextures",))  # a method not here
    assert other[-1]["method"] == "all" and other[-1]["n_fake"] == 8  # nothing left out
    every = ("Deepfakes", "Face2Face", "FaceSwap", "MyMethod")
    assert [r["method"] for r in su.cross_method_metrics(items, scores, 0, trained=every)] == list(every)  # no pool


def test_cross_method_all_untrained_of_one_method_is_that_method():
    """Deepfakes and Face2Face fakes of the same people, trained on Deepfakes: the pooled row is Face2Face's."""
    reals = [su.VideoItem(Path(f"original/{t:03d}.mp4"), 0, "original", f"{t:03d}") for t in range(12)]
    fakes = [su.VideoItem(Path(f"{m}/{t:03d}_{t ^ 1:03d}.mp4"), 1, m, f"{t:03d}_{t ^ 1:03d}")
             for m in ("Deepfakes", "Face2Face") for t in range(12)]
    scores = np.random.default_rng(4).random(36)
    rows = su.cross_method_metrics(reals + fakes, scores, n_bootstrap=200, trained=("Deepfakes",))
    assert [r["method"] for r in rows] == ["Deepfakes", "Face2Face", "all untrained"]
    assert (rows[2]["n_real"], rows[2]["n_fake"]) == (12, 12)
    assert rows[2] == {**rows[1], "method": "all untrained"}
    assert su.cross_method_metrics(reals + fakes, scores, n_bootstrap=200)[-1]["n_fake"] == 24  # "all"


def test_cross_method_intervals_resample_identities():
    items, p = _faces()
    y = np.array([i.label for i in items])
    rows = su.cross_method_metrics(items, p)
    assert [r["method"] for r in rows] == ["Deepfakes", "all"]
    assert rows[-1]["ci95"] == su.compute_metrics(y, p, groups=su.identity_groups(items))["ci95"]
    videos = su.compute_metrics(y, p)["ci95"]["roc_auc"]
    assert np.diff(rows[-1]["ci95"]["roc_auc"])[0] > 1.5 * np.diff(videos)[0]
    order = np.random.default_rng(1).permutation(len(items))
    assert su.cross_method_metrics([items[k] for k in order], p[order]) == rows  # any order of the videos


def test_summary_row_of_each_kind_of_metrics():
    m = su.compute_metrics(Y_TRUE, Y_PROB)
    (lo, hi), (auc_lo, auc_hi) = m["ci95"]["accuracy"], m["ci95"]["roc_auc"]
    assert su.summary_row("val", m) == [
        "val", f"0.600 [{lo:.3f}, {hi:.3f}]", f"0.833 [{auc_lo:.3f}, {auc_hi:.3f}]", "0.917", "0.333", "5"]
    assert su.summary_row("fakes", su.compute_metrics([1, 1], [0.2, 0.9], n_bootstrap=0)) == [
        "fakes", "0.500", "n/a", "n/a", "n/a", "2"]  # one class: no ranking metrics; no bootstrap: no CI
    rows = su.cross_method_metrics(*_items(CROSS), n_bootstrap=0)  # rows without "n": reals plus fakes
    assert [su.summary_row(r["method"], r)[-1] for r in rows] == ["6", "6", "7", "5", "12"]
    assert len(su.SUMMARY_HEADERS) == 6


def test_cross_method_metrics_needs_one_score_per_item():
    items, scores = _items(CROSS)
    with pytest.raises(ValueError, match="one score per item"):
        su.cross_method_metrics(items, scores[:-1])


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
