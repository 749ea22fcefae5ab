"""Several clips per video: sampling, decoding, caching and the mean-of-P(fake) protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import scarlet_utils as su


def test_one_clip_is_the_single_clip_protocol() -> None:
    assert su.sample_clip_indices(300, 8, 1) == [su.sample_frame_indices(300, 8)]


def test_clips_cover_consecutive_equal_segments() -> None:
    clips = su.sample_clip_indices(40, 4, 4)
    assert clips == [[0, 3, 6, 9], [10, 13, 16, 19], [20, 23, 26, 29], [30, 33, 36, 39]]
    flat = [i for c in clips for i in c]
    assert flat == sorted(flat)


def test_short_video_repeats_frames_but_keeps_the_shape() -> None:
    clips = su.sample_clip_indices(3, 4, 2)
    assert [len(c) for c in clips] == [4, 4]
    assert all(0 <= i < 3 for c in clips for i in c)


@pytest.mark.parametrize("args", [(10, 4, 0), (0, 4, 2)])
def test_invalid_clip_sampling_raises(args) -> None:
    with pytest.raises(ValueError):
        su.sample_clip_indices(*args)


def test_read_clip_returns_clips_of_the_right_frames(coded_video, index_code) -> None:
    clip = su.read_clip(coded_video(40), num_frames=4, size=index_code.size, num_clips=4)
    assert clip.frames.shape == (4, 4, index_code.size, index_code.size, 3)
    decoded = [[index_code.decode(f) for f in c] for c in clip.frames]
    assert decoded == su.sample_clip_indices(40, 4, 4)


def test_extract_and_dataset_with_several_clips(coded_video, tmp_path) -> None:
    path = coded_video(40)
    item = su.VideoItem(path, 1, "Deepfakes", "000_001")
    cache = su.cache_dir_for(tmp_path, 4, 32, num_clips=3)
    assert cache.name == "f4_s32_full_c3" and su.cache_dir_for(tmp_path, 4, 32).name == "f4_s32_full"
    report = su.extract_frames([item], cache, num_frames=4, size=32, workers=0, num_clips=3)
    assert report.done == [item]
    stored = np.load(su.cache_path(item, cache))
    assert stored.shape == (3, 4, 32, 32, 3)
    x, label = su.FrameClipDataset([item], cache)[0]
    assert x.shape == (3, 4, 3, 32, 32) and label == 1
    expected = (torch.from_numpy(stored).permute(0, 1, 4, 2, 3).float() / 255 - 0.45) / 0.225
    torch.testing.assert_close(x, expected)


def test_predict_probs_averages_p_fake_over_clips(make_config) -> None:
    torch.manual_seed(0)
    model = su.build_model(make_config(num_frames=4, image_size=32)).eval()
    videos = torch.randn(3, 2, 4, 3, 32, 32)  # 3 videos x 2 clips
    labels = torch.tensor([0, 1, 1])
    loader = DataLoader(list(zip(videos, labels)), batch_size=2)
    y_true, y_prob = su.predict_probs(model, loader, "cpu", amp=False)  # fp32, as the reference
    with torch.no_grad():
        per_clip = model(pixel_values=videos.flatten(0, 1)).logits.softmax(-1)[:, 1].view(3, 2)
    np.testing.assert_array_equal(y_true, [0, 1, 1])
    np.testing.assert_allclose(y_prob, per_clip.mean(1).numpy(), rtol=1e-6)
    assert not np.allclose(y_prob, per_clip[:, 0].numpy())  # really the mean, not the first clip


def test_predict_video_with_several_clips(make_config, coded_video) -> None:
    torch.manual_seed(0)
    model = su.build_model(make_config(num_frames=4, image_size=32)).eval()
    path = coded_video(40)
    p = su.predict_video(model, path, num_clips=3, amp=False)  # fp32, as the reference
    frames = su.read_clip(path, 4, 32, num_clips=3).frames
    with torch.no_grad():
        logits = model(pixel_values=su.clip_to_tensor(frames, su.KINETICS_MEAN, su.KINETICS_STD)).logits
    assert p == pytest.approx(float(logits.softmax(-1)[:, 1].mean()), rel=1e-6)
    assert p != pytest.approx(su.predict_video(model, path, amp=False), rel=1e-9)
