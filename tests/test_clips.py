"""Several clips per video: sampling, decoding and caching (the mean of P(fake) over them is tested with
``predict_probs`` and ``predict_video`` in test_training_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scarlet_utils as su


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
