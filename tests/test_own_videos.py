"""Your own videos: one video scored (``predict_video``), or a folder in (subfolders, broken files,
a non-video) and one row per file out, the CSV the notebook writes and the timelines."""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import scarlet_utils as su


PREP = su.Preprocessing(num_frames=4, size=32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    from transformers import TimesformerConfig

    config = TimesformerConfig(image_size=32, patch_size=16, num_frames=4, hidden_size=32,
                               num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    return su.build_model(config).eval()


def _frames(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def folder(tmp_path, write_video) -> Path:
    """Two good videos (one in a subfolder, one with a quote and a comma in its name), an empty
    file, random bytes named .mp4, and a text file that is not listed at all."""
    root = tmp_path / "mine"
    (root / "2024").mkdir(parents=True)
    write_video("a.mp4", _frames(20, 0), fps=10).rename(root / "a.mp4")
    write_video("b.mp4", _frames(12, 1), fps=4).rename(root / "2024" / 'say "hi", b.mp4')
    (root / "empty.mp4").write_bytes(b"")
    (root / "2024" / "noise.avi").write_bytes(os.urandom(3000))
    (root / "notes.txt").write_text("not a video")
    return root


# -- score_videos ----------------------------------------------------------------------------------


def test_a_folder_scores_every_video_and_lists_the_bad_ones(model, folder, tmp_path):
    paths = su.video_files(folder)
    assert [p.relative_to(folder).as_posix() for p in paths] == [
        "2024/noise.avi", '2024/say "hi", b.mp4', "a.mp4", "empty.mp4"]
    assert su.video_files(folder / "a.mp4") == [folder / "a.mp4"]  # a file is itself
    rows = su.score_videos(model, paths, PREP, "cpu", num_clips=2, amp=False, threshold=0.5)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert [Path(r["path"]).name for r in rows] == [p.name for p in paths]  # one row per file, in order
    assert "OpenCV cannot open it" in by_name["noise.avi"]["error"] and by_name["noise.avi"]["p_fake"] is None
    assert by_name["empty.mp4"]["error"].endswith("empty file (0 bytes)")
    for name, frames, seconds in (("a.mp4", 20, 2.0), ('say "hi", b.mp4', 12, 3.0)):
        row = by_name[name]
        assert row["error"] is None and (row["frames"], row["duration_s"]) == (frames, seconds)
        assert len(row["clip_scores"].split()) == 2
        assert row["call"] == ("FAKE" if row["p_fake"] >= 0.5 else "REAL")
        # the same number as scoring that one video alone
        alone = su.predict_video(model, row["path"], PREP, "cpu", 2, amp=False)
        assert row["p_fake"] == pytest.approx(alone, abs=1e-6)
        assert row["face_on_track"] is None  # whole frames: no face counts
    # the threshold decides the call
    flipped = su.score_videos(model, [folder / "a.mp4"], PREP, "cpu", 2, amp=False,
                              threshold=by_name["a.mp4"]["p_fake"] + 1e-3)
    assert flipped[0]["call"] == "REAL"
    # the CSV reads back with the quote and the comma in the name intact
    out = su.write_csv(tmp_path / "predictions_own.csv", rows)
    with open(out, newline="", encoding="utf-8") as fh:
        back = list(csv.DictReader(fh))
    assert [r["path"] for r in back] == [r["path"] for r in rows] and back[1]["call"] == rows[1]["call"]
    assert list(back[0]) == list(rows[0])


def test_face_counts_come_with_a_face_crop_checkpoint(model, tmp_path, write_video, caplog):
    from matplotlib import cbook
    import cv2

    src = cbook.get_sample_data("grace_hopper.jpg")
    data = Path(src).read_bytes() if isinstance(src, (str, os.PathLike)) else src.read()
    face = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    video = write_video("face.mp4", [np.roll(face, i, axis=1) for i in range(10)])
    faceless = write_video("noise.mp4", _frames(10, 2))
    faces = su.Preprocessing(4, 32, face_crop=True)
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        row, other = su.score_videos(model, [video, faceless], faces, "cpu", amp=False)
    assert row["error"] is None and row["note"] is None
    assert (row["face_on_track"], row["face_borrowed"], row["no_face"], row["face_tracks"]) == (4, 0, 0, 1)
    # no face anywhere: scored on centre crops, and the row says so
    assert other["error"] is None
    assert (other["face_on_track"], other["no_face"], other["face_tracks"]) == (0, 4, 0)
    assert other["note"] == ("the face was not found on most frames "
                             "(face on 0 frames, borrowed on 0, none on 4; 0 face tracks)")
    assert [r.getMessage() for r in caplog.records if r.name == "scarlet"] == [f"{faceless}: {other['note']}"]


def test_a_timeline_per_scored_video(model, folder, tmp_path):
    rows = su.score_videos(model, su.video_files(folder), PREP, "cpu", num_clips=3, amp=False,
                           timeline_dir=tmp_path / "timelines")
    written = sorted(p.name for p in (tmp_path / "timelines").iterdir())
    assert written == ['001_say "hi", b.png', "002_a.png"]  # the two readable videos, numbered in row order
    timelines = [Path(r["timeline"]).name if r["timeline"] else None for r in rows]
    assert timelines == [None, written[0], written[1], None]
    import matplotlib.image

    assert matplotlib.image.imread(rows[2]["timeline"]).shape[:2] == (460, 1000)  # 10 x 4.6 in at 100 dpi
    clip = su.read_clip(folder / "a.mp4", PREP.num_frames, PREP.size, num_clips=3)
    scores = [float(s) for s in rows[2]["clip_scores"].split()]
    fig = su.plot_timeline("a.mp4", clip, scores, threshold=0.4)
    plot = fig.axes[-1]  # above it, the frames of the most suspicious clip, titled with their times
    assert (plot.get_xlabel(), plot.get_ylabel()) == ("time in the video (s, middle of each clip)", "P(fake)")
    worst = int(np.argmax(scores))
    shown = clip.indices[4 * worst:4 * worst + 4]
    assert [a.get_title() for a in fig.axes[:-1]] == [f"{i / clip.fps:.1f} s" for i in shown]
    line = plot.get_lines()[0]
    assert list(line.get_ydata()) == scores
    middles = np.asarray(clip.indices).reshape(3, 4).mean(1) / clip.fps
    assert list(np.round(line.get_xdata(), 6)) == list(np.round(middles, 6))
    assert "threshold 0.4" in [t.get_text() for t in plot.get_legend().get_texts()]


def test_timeline_frame_times_are_told_apart_on_a_short_video():
    # the demo's videos: 32 frames at 16 fps, 4 clips of 8, so a clip's frames are 1/16 s apart
    clip = su.Clip(np.zeros((4, 8, 16, 16, 3), np.uint8), list(range(32)), total_frames=32, fps=16.0)
    fig = su.plot_timeline("short.mp4", clip, [0.2, 0.9, 0.4, 0.1])
    titles = [a.get_title() for a in fig.axes[:-1]]
    assert titles[:2] == ["0.50 s", "0.56 s"] and len(set(titles)) == 8  # the second clip's, all different


def test_a_decoder_error_on_one_file_is_listed_in_its_row(model, folder, monkeypatch):
    """Not only ``VideoReadError``: whatever a decoder raises on one file becomes that row's error, on
    one line, and the next file is scored."""
    import cv2

    read = su.read_clip

    def read_or_fail(path, *args, **kwargs):
        if Path(path).name == "a.mp4":
            raise cv2.error("OpenCV(4.10.0) resize.cpp:4152: error: (-215:Assertion failed)\n"
                            "!ssize.empty()\n")
        return read(path, *args, **kwargs)

    monkeypatch.setattr(su, "read_clip", read_or_fail)
    other = folder / "2024" / 'say "hi", b.mp4'
    bad, good = su.score_videos(model, [folder / "a.mp4", other], PREP, "cpu", amp=False)
    assert bad["error"] == (f"{folder / 'a.mp4'}: error: OpenCV(4.10.0) resize.cpp:4152: error: "
                            "(-215:Assertion failed) !ssize.empty()")
    assert all(bad[k] is None for k in ("p_fake", "call", "clip_scores", "frames", "note"))
    assert good["error"] is None and 0 <= good["p_fake"] <= 1
    with pytest.raises(su.VideoReadError, match=r"a\.mp4: error: .*resize\.cpp"):  # one video alone: raised
        su.predict_video(model, folder / "a.mp4", PREP, "cpu", amp=False)


def test_an_empty_list_gives_no_rows(model):
    assert su.score_videos(model, [], PREP, "cpu") == []


def _testsrc(seconds: int) -> list[str]:
    """ffmpeg input arguments: its moving test pattern, 64 x 48 at 25 fps."""
    return ["-f", "lavfi", "-i", f"testsrc2=size=64x48:rate=25:duration={seconds}"]


def test_a_folder_with_long_videos_and_broken_files(model, tmp_path, write_video, ffmpeg_encode):
    """Good short videos, two long ones (160 s, a keyframe every 10 frames and every 250), a copy of
    one cut in half (its header promises all 4000 frames), a file of random bytes, an empty one, and
    a text file that is not a video: every row is checked."""
    root = tmp_path / "mixed"
    (root / "long").mkdir(parents=True)
    write_video("a.mp4", _frames(20, 0), fps=10).rename(root / "a.mp4")
    h264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
    ffmpeg_encode(root / "long" / "g10.mp4", _testsrc(160), [*h264, "-g", "10"])
    ffmpeg_encode(root / "long" / "g250.mp4", _testsrc(160), [*h264, "-g", "250", "-keyint_min", "250",
                                                              "-sc_threshold", "0"])
    data = (root / "long" / "g10.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov first: it opens, and breaks half way
    (root / "noise.mkv").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "empty.mov").write_bytes(b"")
    (root / "README.txt").write_text("my videos")
    paths = su.video_files(root)
    assert [p.relative_to(root).as_posix() for p in paths] == [
        "a.mp4", "cut.mp4", "empty.mov", "long/g10.mp4", "long/g250.mp4", "noise.mkv"]
    rows = su.score_videos(model, paths, PREP, "cpu", 2, amp=False)
    rows = {Path(r["path"]).relative_to(root).as_posix(): r for r in rows}
    assert list(rows) == [p.relative_to(root).as_posix() for p in paths]

    def full_decode_score(path: Path) -> float:
        clip = su.read_clip(path, PREP.num_frames, PREP.size, num_clips=2, seek_gap=None)
        return float(np.mean(su.score_clip(model, clip, PREP, "cpu", amp=False)))

    for name, frames in (("a.mp4", 20), ("long/g10.mp4", 4000), ("long/g250.mp4", 4000)):
        row = rows[name]
        assert row["error"] is None and row["note"] is None, row
        assert (row["frames"], row["duration_s"]) == (frames, frames / (10 if name == "a.mp4" else 25))
        assert len(row["clip_scores"].split()) == 2
        assert row["p_fake"] == pytest.approx(full_decode_score(root / name), abs=1e-6)  # a full decode's
    cut = rows["cut.mp4"]  # scored over the frames that decode, and the row says the header was wrong
    assert cut["error"] is None and 1000 < cut["frames"] < 3000, cut
    assert cut["note"] == f"header says 4000 frames, only {cut['frames']} decode; resampling"
    assert cut["p_fake"] == pytest.approx(full_decode_score(root / "cut.mp4"), abs=1e-6)
    assert rows["empty.mov"]["error"].endswith("empty file (0 bytes)")
    assert "OpenCV cannot open it" in rows["noise.mkv"]["error"]
    for name in ("empty.mov", "noise.mkv"):
        assert all(rows[name][k] is None for k in ("p_fake", "call", "clip_scores", "frames", "note"))


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


def test_predict_video_bf16_on_cpu_is_close_to_fp32(bf16_cpu, write_video):
    rng = np.random.default_rng(0)
    path = write_video("v.mp4", [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(12)])
    torch.manual_seed(0)
    model = su.build_model(su.tiny_config(num_frames=4, image_size=32))
    p32 = su.predict_video(model, path, amp=False)
    p16 = su.predict_video(model, path)
    assert abs(p16 - p32) < 0.02 and p16 != p32


def _ok(expected):
    return [p for p, e in expected.items() if e in ("ok", "ok-short")]


def test_predict_video_on_each_file_scores_or_raises_a_clear_error(corpus, make_config, no_hang):
    root, expected = corpus
    torch.manual_seed(0)
    model = su.build_model(make_config())  # 4 frames at 32 px
    scored, refused = 0, 0
    for path, outcome in expected.items():
        if outcome in ("ok", "ok-short", "either"):
            try:
                p = su.predict_video(model, path)
            except su.VideoReadError as exc:
                assert outcome == "either" and str(path) in str(exc)
                refused += 1
                continue
            assert isinstance(p, float) and 0.0 <= p <= 1.0 and np.isfinite(p), path
            scored += 1
        else:
            with pytest.raises(su.VideoReadError, match=re.escape(str(path)) + ".*(" + outcome + ")"):
                su.predict_video(model, path)
            refused += 1
    assert scored >= len(_ok(expected)) and scored + refused == len(expected)
    with pytest.raises(su.VideoReadError, match="not a regular file"):
        su.predict_video(model, "/dev/zero")  # a device: never read (it would never end)
