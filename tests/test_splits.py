"""Splits: identities, the official FF++ lists (checked against ../shared/data/ffpp_splits), identity-disjoint
and official splits, the README's leakage counts, and the DeepFakeDetection originals ("actors") in the listing."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path

import pytest

import scarlet_utils as su

SPLITS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ffpp_splits"
SAMPLE_METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
METHOD_SETS = (("Deepfakes",), ("Deepfakes", "FaceSwap"), tuple(SAMPLE_METHODS))


def real(vid: str, method: str = "original") -> su.VideoItem:
    return su.VideoItem(Path(f"/d/{method}/{vid}.mp4"), 0, method, vid)


def fake(vid: str, method: str = "Deepfakes") -> su.VideoItem:
    return su.VideoItem(Path(f"/d/{method}/{vid}.mp4"), 1, method, vid)


def ids(items) -> list[str]:
    return [i.video_id for i in items]


# -- the official lists ----------------------------------------------------------------------------


def _shared_official_lists() -> dict[str, list[list[str]]]:
    """The official FF++ lists as shipped in ../shared/data/ffpp_splits (skips when absent)."""
    if not SPLITS_DIR.is_dir():
        pytest.skip(f"{SPLITS_DIR} not found: clone the repo with ../shared/data beside it")
    return {part: json.loads((SPLITS_DIR / f"{part}.json").read_text(encoding="utf-8")) for part in su.SPLIT_PARTS}


def _module_official_pairs() -> dict[str, set[frozenset[str]]]:
    """The pairs the module's ``official_part`` knows, found through that public function alone:
    every two ids of the same part that it places as a fake ``T_S``."""
    by_part: dict[str, list[str]] = {}
    for n in range(1000):
        by_part.setdefault(su.official_part(f"{n:03d}"), []).append(f"{n:03d}")
    pairs: dict[str, set[frozenset[str]]] = {}
    for part, members in by_part.items():
        for k, a in enumerate(members):
            for b in members[k + 1:]:
                if su.official_part(f"{a}_{b}") is not None:
                    pairs.setdefault(part, set()).add(frozenset((a, b)))
    return pairs


def test_official_lists_in_the_module_agree_with_the_official_files():
    raw = _shared_official_lists()
    # the files as SOURCES.md describes them: 360 / 70 / 70 [target, source] pairs, every id once
    assert {part: len(pairs) for part, pairs in raw.items()} == {"train": 360, "val": 70, "test": 70}
    every = Counter(x for pairs in raw.values() for pair in pairs for x in pair)
    assert sorted(every) == [f"{n:03d}" for n in range(1000)] and set(every.values()) == {1}
    for part, pairs in raw.items():
        for t, s in pairs:
            assert su.official_part(f"{t}_{s}") == part, (t, s)
            assert su.official_part(f"{s}_{t}") == part, (s, t)  # the reverse swap is the same pair
            assert su.official_part(t) == part and su.official_part(s) == part, (t, s)
            assert su.official_part(fake(f"{t}_{s}", "NeuralTextures")) == part
    # and nothing more: no other two ids make an official pair, and no id lies outside the lists
    assert _module_official_pairs() == {part: {frozenset(p) for p in pairs} for part, pairs in raw.items()}


def test_official_part_outside_the_lists():
    assert su.official_part("1000") is None and su.official_part("abc") is None
    train = su.official_part("071") == su.official_part("087") == "train"
    assert train and su.official_part("071_087") is None  # both in train, but not swapped with each other


# -- identities ------------------------------------------------------------------------------------


def test_video_identities():
    assert su.video_identities("004") == {"004"}
    assert su.video_identities("519_515") == {"519", "515"}
    assert su.video_identities(fake("750_743", "Face2Face")) == {"750", "743"}
    assert su.video_identities(real("634")) == {"634"}
    # DeepFakeDetection: actors, in their own namespace
    assert su.video_identities("01_02__exit_phone_room__YVGY8LOK") == {"actor:01", "actor:02"}
    assert su.video_identities("01__exit_phone_room") == {"actor:01"}
    assert su.video_identities(real("01__exit_phone_room", "actors")) == {"actor:01"}
    assert su.video_identities(fake("01_02__exit_phone_room__YVGY8LOK", "DeepFakeDetection")) == {"actor:01", "actor:02"}
    assert not su.video_identities("01__hugging_happy") & su.video_identities("001_002")
    assert isinstance(su.video_identities("000_003"), frozenset)


def test_official_part():
    assert su.official_part("519") == su.official_part("519_515") == su.official_part("515_519") == "train"
    assert su.official_part("004_982") == "val" and su.official_part(fake("634_660", "FaceSwap")) == "test"
    assert su.official_part("519_004") is None  # both ids listed, but not as a pair
    assert su.official_part("01__exit_phone_room") is None
    assert su.official_part("01_02__exit_phone_room__YVGY8LOK") is None


# -- leakage counts --------------------------------------------------------------------------------


def test_count_identity_leaks_hand_count():
    train = [real("000"), fake("002_003")]  # identities 000, 002, 003
    other = [real("001"), real("002"), real("003"), fake("000_001"), fake("001_004")]
    # 001 no; 002 yes; 003 yes; 000_001 yes (000); 001_004 no
    assert su.count_identity_leaks(train, other) == 3
    # the other way: 000 meets 000_001; 002_003 meets 002 and 003
    assert su.count_identity_leaks(other, train) == 2
    assert su.count_identity_leaks([], other) == 0 and su.count_identity_leaks(train, []) == 0


def official_pair_list() -> list[tuple[str, str]]:
    """The 500 official [target, source] pairs: from the shared lists where present, else what the
    module's ``official_part`` knows (the test above checks that both are the same)."""
    if SPLITS_DIR.is_dir():
        return [tuple(p) for part in _shared_official_lists().values() for p in part]
    return [tuple(sorted(p)) for pairs in _module_official_pairs().values() for p in pairs]


def build_ffpp_id_space(methods=("Deepfakes",)) -> list[su.VideoItem]:
    """Items (no files) for FF++'s whole id space, as the leakage table counts it: the 1000 reals
    ``ffpp/original/000.mp4`` .. ``999.mp4`` and, per method, the 1000 fakes ``T_S`` and ``S_T`` of
    the 500 official pairs."""
    root = Path("ffpp")
    items = [su.VideoItem(root / "original" / f"{n:03d}.mp4", 0, "original", f"{n:03d}") for n in range(1000)]
    items += [su.VideoItem(root / m / f"{v}.mp4", 1, m, v) for m in methods for t, s in official_pair_list()
              for v in (f"{t}_{s}", f"{s}_{t}")]
    return sorted(items, key=lambda i: str(i.path))


def _brute_force_leaks(train, other) -> int:
    """Pairwise, parsing the ids by hand (youtube ids only)."""
    return sum(any(set(o.video_id.split("_")) & set(t.video_id.split("_")) for t in train) for o in other)


def test_the_id_space_is_every_id_once_as_a_real_and_twice_in_a_fake():
    space = build_ffpp_id_space()
    assert len(space) == 2000 and len(set(space)) == 2000
    assert sorted(ids(i for i in space if i.label == 0)) == [f"{n:03d}" for n in range(1000)]
    fakes = [i for i in space if i.label == 1]
    assert {"519_515", "515_519", "004_982", "982_004"} <= set(ids(fakes))  # the shared sample's pairs
    assert Counter(x for i in fakes for x in su.video_identities(i)) == {f"{n:03d}": 2 for n in range(1000)}
    assert Counter(su.official_part(i) for i in space) == {"train": 1440, "val": 280, "test": 280}


def test_leakage_table_of_the_readme():
    """README, "Splits": on the full FF++ id space (1000 originals + 1000 Deepfakes, seed 0), 452 of the
    random split's 800 validation videos share a face with training; identity 0; official 0 of 280."""
    space = build_ffpp_id_space()
    rand = su.make_split(space, 600, 800, seed=0)
    assert (len(rand.train), len(rand.val)) == (600, 800)
    leaks = su.count_identity_leaks(rand.train, rand.val)
    assert leaks == _brute_force_leaks(rand.train, rand.val) == 452
    ident = su.make_split(space, 600, 800, seed=0, strategy="identity")
    assert len(ident.train) == 600 and len(ident.val) == 800
    assert su.count_identity_leaks(ident.train, ident.val) == 0 == su.count_identity_leaks(ident.val, ident.train)
    assert _brute_force_leaks(ident.train, ident.val) == 0
    official = su.make_split(space, 600, 800, seed=0, strategy="official")
    assert (len(official.train), len(official.val), len(official.test)) == (1440, 280, 280)
    assert su.count_identity_leaks(official.train, official.val) == 0 == _brute_force_leaks(official.train, official.val)
    assert su.count_identity_leaks(official.train + official.val, official.test) == 0


def test_random_split_leak_count_small_pool():
    pool = [real(f"{n:03d}") for n in range(8)] + [fake(f"{t:03d}_{s:03d}") for t, s in
                                                   [(0, 1), (1, 0), (2, 3), (3, 2), (4, 5), (5, 4), (6, 7), (7, 6)]]
    for seed in range(5):
        split = su.make_split(pool, 6, 6, seed=seed)
        assert su.count_identity_leaks(split.train, split.val) == _brute_force_leaks(split.train, split.val)


# -- random: unchanged ---------------------------------------------------------------------------


def _fixed_pool():
    reals = [real(f"{i:03d}") for i in range(10)]
    fakes = [fake(f"{i:03d}_{(i * 7 + 3) % 10:03d}") for i in range(12)]
    return reals + fakes


def test_random_split_unchanged_for_one_method():
    # Captured from the code before the identity/official strategies were added.
    split = su.make_split(_fixed_pool(), 6, 4, seed=0)
    assert ids(split.train) == ["007_002", "004", "011_000", "006_005", "006", "009"]
    assert ids(split.val) == ["004_001", "000", "002", "005_008"]
    split = su.make_split(list(reversed(_fixed_pool())), 6, 4, seed=5, strategy="random")
    assert ids(split.train) == ["011_000", "010_003", "007", "004", "007_002", "008_009"]
    assert ids(split.val) == ["000_003", "005", "009", "006"]
    assert split.strategy == "random" and split.test == []


def test_random_split_balances_methods():
    pool = [real(f"{n:03d}") for n in range(40)]
    pool += [fake(f"{n:03d}_{n + 1:03d}", m) for m, count in [("Deepfakes", 30), ("FaceSwap", 30), ("Face2Face", 4)]
             for n in range(count)]
    split = su.make_split(pool, 20, 20, seed=1)  # 20 fakes: 7 / 7 / 6 wanted, Face2Face has only 4
    fakes = Counter(i.method for i in split.train + split.val if i.label == 1)
    assert fakes == {"Deepfakes": 8, "FaceSwap": 8, "Face2Face": 4}
    split = su.make_split(pool, 10, 12, seed=1)  # 11 fakes: the remainder to the first methods by name
    assert Counter(i.method for i in split.train + split.val if i.label == 1) == {"Deepfakes": 4, "Face2Face": 4,
                                                                                   "FaceSwap": 3}


# -- identity: a property test over random pools -----------------------------------------------------


def _random_pool(r: random.Random):
    """FF++-like: reals and fakes T_S. Mostly disjoint pairs (as in FF++), sometimes random
    sources (components can then be large); sometimes several methods; a few videos missing."""
    vids = [f"{n:03d}" for n in sorted(r.sample(range(1000), r.randint(8, 80)))]
    methods = r.choice(METHOD_SETS)
    disjoint = r.random() < 0.7
    if disjoint:
        shuffled = r.sample(vids, len(vids))
        pairs = [(shuffled[k], shuffled[k + 1]) for k in range(0, len(shuffled) - 1, 2)]
        directed = [d for a, b in pairs for d in ((a, b), (b, a))]
    else:
        directed = [(t, r.choice([v for v in vids if v != t])) for t in vids if r.random() < 0.5]
    items = [real(v) for v in vids if r.random() < 0.9]
    items += [fake(f"{t}_{s}", m) for m in methods for t, s in directed if r.random() < 0.9]
    return items, disjoint


def test_identity_split_never_shares_an_identity():
    made = failed = 0
    for case in range(300):
        r = random.Random(case)
        items, disjoint = _random_pool(r)
        n_real, n_fake = sum(i.label == 0 for i in items), sum(i.label == 1 for i in items)
        if min(n_real, n_fake) < 3:
            continue
        per_class = r.randint(1, min(n_real, n_fake) // 3)
        n_train = r.randint(0, 2 * per_class - 1)
        n_val = 2 * per_class - n_train
        seed = r.randrange(1000)
        try:
            split = su.make_split(items, n_train, n_val, seed=seed, strategy="identity")
        except ValueError as exc:  # only large components (random sources) may make quotas impossible
            assert not disjoint, f"case {case}: {exc}"
            assert "cannot be met without sharing an identity" in str(exc)
            failed += 1
            continue
        made += 1
        assert len(split.train) == n_train and len(split.val) == n_val and split.test == []
        assert split.strategy == "identity" and split.seed == seed
        assert sum(i.label == 0 for i in split.train) == n_train // 2
        assert sum(i.label == 0 for i in split.train + split.val) == per_class  # the balanced pool
        assert len(set(split.train + split.val)) == 2 * per_class and set(split.train + split.val) <= set(items)
        assert su.count_identity_leaks(split.train, split.val) == 0
        assert su.count_identity_leaks(split.val, split.train) == 0
        methods = Counter(i.method for i in split.train + split.val if i.label == 1)
        available = Counter(i.method for i in items if i.label == 1)
        # fakes even across methods unless a method runs short
        full = [m for m in methods if methods[m] < available[m]]
        assert not full or max(methods[m] for m in full) - min(methods.values()) <= 1, (case, methods, available)
        again = su.make_split(r.sample(items, len(items)), n_train, n_val, seed=seed, strategy="identity")
        assert (again.train, again.val) == (split.train, split.val)  # deterministic, input order irrelevant
    assert made > 250 and failed < 10


def test_identity_split_keeps_method_balance_per_side():
    space = build_ffpp_id_space(SAMPLE_METHODS)
    split = su.make_split(space, 600, 800, seed=3, strategy="identity")
    assert Counter(i.method for i in split.train) == {"original": 300, **dict.fromkeys(SAMPLE_METHODS, 75)}
    assert Counter(i.method for i in split.val) == {"original": 400, **dict.fromkeys(SAMPLE_METHODS, 100)}
    assert su.count_identity_leaks(split.train, split.val) == 0
    other = su.make_split(space, 600, 800, seed=4, strategy="identity")
    assert set(other.train) != set(split.train)


def test_identity_split_impossible_quotas_raise():
    chain = [real(f"{n:03d}") for n in range(6)] + [fake(f"{n:03d}_{n + 1:03d}") for n in range(5)] + [fake("005_000")]
    with pytest.raises(ValueError, match=r"identity split of 4 train \+ 2 val cannot be met without sharing an "
                                         r"identity across sides: after all 1 identity groups, train still needs "
                                         r"nothing and val still needs 1 real, 1 Deepfakes"):
        su.make_split(chain, 4, 2, strategy="identity")
    with pytest.raises(ValueError, match="needs 7 real videos, only 6 available"):
        su.make_split(chain, 8, 6, strategy="identity")
    with pytest.raises(ValueError, match="must be even"):
        su.make_split(chain, 3, 2, strategy="identity")


def test_unknown_strategy_message():
    with pytest.raises(ValueError, match=r"unknown split strategy 'by_person'; expected one of \('random', "
                                         r"'identity', 'official'\)"):
        su.make_split(_fixed_pool(), 4, 4, strategy="by_person")


# -- official --------------------------------------------------------------------------------------


@pytest.mark.real_video
def test_official_split_of_the_sample(ffpp_root):
    items = su.list_videos(ffpp_root, SAMPLE_METHODS)
    parts = {i.video_id: su.official_part(i) for i in items}
    assert parts == {"519": "train", "519_515": "train", "750_743": "train", "004": "val", "004_982": "val",
                     "634": "test", "634_660": "test"}
    if SPLITS_DIR.is_dir():  # the same memberships, read from the JSON lists
        raw = {p: json.loads((SPLITS_DIR / f"{p}.json").read_text()) for p in su.SPLIT_PARTS}
        for vid, part in parts.items():
            people = set(vid.split("_"))
            assert any(people <= set(pair) for pair in raw[part]), (vid, part)
    for seed in range(3):
        split = su.make_split(items, seed=seed, strategy="official")  # n_train / n_val ignored
        assert split.strategy == "official" and split.seed == seed
        for part in su.SPLIT_PARTS:
            assert all(parts[i.video_id] == part for i in getattr(split, part))
        # balanced per part: train has 1 real (519) and 2 fakes of 2 methods; the one fake kept is
        # the remainder, which goes to the first method by name (Deepfakes)
        assert ids(sorted(split.train, key=lambda i: i.label)) == ["519", "519_515"]
        assert ids(sorted(split.val, key=lambda i: i.label)) == ["004", "004_982"]
        assert ids(sorted(split.test, key=lambda i: i.label)) == ["634", "634_660"]


def test_official_split_of_the_id_space(tmp_path, caplog):
    space = build_ffpp_id_space(SAMPLE_METHODS)
    extra = [real("01__exit_phone_room", "actors"), fake("01_02__exit_phone_room__YVGY8LOK", "DeepFakeDetection"),
             fake("519_004")]
    with caplog.at_level(logging.INFO, logger="scarlet"):
        split = su.make_split(space + extra, 10, 10, seed=0, strategy="official")
    assert "3 of 5003 videos are not in the official FF++ lists" in caplog.text
    expected = {"train": 720, "val": 140, "test": 140}  # reals: 2 per pair; fakes sub-sampled to match
    for part, n_real in expected.items():
        members = getattr(split, part)
        assert Counter(i.method for i in members) == {"original": n_real, **dict.fromkeys(SAMPLE_METHODS, n_real // 4)}
        assert all(su.official_part(i) == part for i in members)
    assert not set(extra) & set(split.train + split.val + split.test)
    assert su.count_identity_leaks(split.train, split.val + split.test) == 0
    assert su.count_identity_leaks(split.val, split.test) == 0
    assert su.load_split(su.save_split(split, tmp_path / "split.json")) == split  # test side round-trips
    again = su.make_split(list(reversed(space + extra)), seed=0, strategy="official")
    assert (again.train, again.val, again.test) == (split.train, split.val, split.test)


def test_official_split_with_nothing_listed_raises():
    with pytest.raises(ValueError, match="official split: no balanced real/fake videos for train and val"):
        su.make_split([real("01__a", "actors"), fake("01_02__a__X", "DeepFakeDetection")], strategy="official")


# -- DeepFakeDetection originals ("actors") -----------------------------------------------------------


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")


def _official_tree(root: Path, actors: bool = True) -> Path:
    for rel in ["original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/001.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4",
                "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4"]:
        _touch(root / rel)
    if actors:
        for name in ["01__exit_phone_room.mp4", "02__walking_outside.mp4"]:
            _touch(root / "original_sequences/actors/c23/videos" / name)
    return root


def test_list_videos_includes_the_dfd_actors(tmp_path, caplog):
    root = _official_tree(tmp_path / "ffpp")
    items = su.list_videos(root, ["Deepfakes", "DeepFakeDetection"])
    assert [(i.method, i.label, i.video_id) for i in items] == [
        ("DeepFakeDetection", 1, "01_02__exit_phone_room__YVGY8LOK"),
        ("Deepfakes", 1, "000_001"),
        ("actors", 0, "01__exit_phone_room"),
        ("actors", 0, "02__walking_outside"),
        ("original", 0, "000"),
        ("original", 0, "001"),
    ]
    assert items[2].path == root / "original_sequences/actors/c23/videos/01__exit_phone_room.mp4"
    assert su.available_methods(root) == ["Deepfakes", "DeepFakeDetection"]
    assert "actors" not in {i.method for i in su.list_videos(root, ["Deepfakes"])}  # only with DFD
    assert su.count_identity_leaks(items[2:3], items) == 2  # actor 01: its original and the DFD fake
    # without the actors folder: DFD fakes listed, and a warning that they have no reals
    bare = _official_tree(tmp_path / "bare", actors=False)
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        items = su.list_videos(bare, ["DeepFakeDetection"])
    assert {i.method for i in items} == {"original", "DeepFakeDetection"}
    assert "no DeepFakeDetection originals (actors)" in caplog.text


def test_list_videos_kaggle_actors(tmp_path, caplog):
    root = tmp_path / "kaggle"
    for rel in ["original/000.mp4", "DeepFakeDetection/01_02__exit_phone_room__YVGY8LOK.mp4"]:
        _touch(root / rel)
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        items = su.list_videos(root, "DeepFakeDetection")
    assert [i.method for i in items] == ["DeepFakeDetection", "original"]
    assert "no matching real videos" in caplog.text and str(root / "actors") in caplog.text
    _touch(root / "actors" / "01__exit_phone_room.mp4")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scarlet"):
        items = su.list_videos(root, "DeepFakeDetection")
    assert [(i.method, i.label) for i in items] == [("DeepFakeDetection", 1), ("actors", 0), ("original", 0)]
    assert not caplog.text


def test_held_out_items_are_the_validation_side_of_every_method(ffpp_root) -> None:
    items = su.list_videos(ffpp_root, ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"])
    official = su.make_split(items, strategy="official")
    assert sorted(i.video_id for i in su.held_out_items(items, official)) == ["004", "004_982"]
    # A hand-made identity split: val holds identity 634 (real) and 519 (real); fakes whose both
    # identities are val identities are held out, 519_515 is not (515 is not a val identity).
    by_id = {i.video_id: i for i in items}
    split = su.Split([by_id["004"], by_id["004_982"]], [by_id["634"], by_id["519"]], strategy="identity")
    assert sorted(i.video_id for i in su.held_out_items(items, split)) == ["519", "634"]
    assert su.count_identity_leaks(split.train, su.held_out_items(items, split)) == 0
