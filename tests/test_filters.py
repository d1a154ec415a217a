"""Filters: CLIP-confidence decisions (threshold 1/C, quotas, top-confidence fill) and de-duplication."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from synthclone.errors import UserError
from synthclone.filters import FILTERS, FilterResult, create_filter
from synthclone.filters.dedup import dhash, hamming


def test_registry():
    assert FILTERS.names() == ["clip", "dedup"]
    with pytest.raises(UserError, match="valid filters: clip, dedup"):
        create_filter("sharpness")


def _scores(values, labels):
    return pd.DataFrame({"index": np.arange(len(values)), "clip_score": values}), np.asarray(labels)


def test_clip_select_threshold_is_one_over_c():
    # 4 classes -> threshold 0.25; class 0 has two passing, class 1 none (min_keep=1 keeps its best)
    df, labels = _scores([0.9, 0.26, 0.25, 0.1, 0.2, 0.24, 0.5, 0.6], [0, 0, 0, 0, 1, 1, 2, 3])
    r = create_filter("clip").select(df, labels, 4)
    assert isinstance(r, FilterResult) and r.name == "clip"
    assert r.keep.tolist() == [True, True, False, False, False, True, True, True]
    assert np.allclose(r.scores, df["clip_score"])
    r0 = create_filter("clip", min_keep=0).select(df, labels, 4)
    assert r0.keep.tolist() == [True, True, False, False, False, False, True, True]


def test_clip_quota_top_confidence_fill_and_candidates():
    df, labels = _scores([0.9, 0.6, 0.7, 0.1, 0.3, 0.2, 0.1, 0.15], [0, 0, 0, 0, 1, 1, 1, 1])
    r = create_filter("clip", quota=2, pick="top").select(df, labels, 2)
    # class 0: three pass (> 0.5) -> the two most confident; class 1: none pass -> filled by confidence
    assert r.keep.tolist() == [True, False, True, False, True, True, False, False]
    cand = np.array([False, True, True, True, True, True, True, True])
    r = create_filter("clip", quota=2, pick="top").select(df, labels, 2, candidates=cand)
    assert r.keep.tolist() == [False, True, True, False, True, True, False, False]
    with pytest.raises(UserError, match="quota"):
        create_filter("clip", quota=0)
    with pytest.raises(UserError, match="pick"):
        create_filter("clip", quota=2, pick="best")


def test_clip_quota_draws_at_random_among_the_passing_images_as_he_et_al():
    """He et al. (CVMI-Lab/SyntheticData, select_by_clip_thres_RS): with more passing images than the
    quota, a uniform random sample of them; with fewer, the most confident fill it."""
    n = 40
    scores = np.r_[np.linspace(0.51, 0.99, 30), np.full(10, 0.1)]  # class 0: 30 pass, 10 do not
    df, labels = _scores(scores, [0] * n)
    passing = set(range(30))
    counts = np.zeros(n)
    for seed in range(300):
        r = create_filter("clip", quota=5, seed=seed).select(df, labels, 2)
        kept = set(np.nonzero(r.keep)[0])
        assert len(kept) == 5 and kept <= passing  # never a failing image while enough pass
        counts[list(kept)] += 1
    # uniform over the 30 passing images: each kept 300 * 5/30 = 50 times; the top-confidence pick would
    # keep only the 5 most confident (29, 28, ..., 25) every time
    assert counts[:30].min() > 25 and counts[:30].max() < 80 and counts[30:].sum() == 0
    # deterministic per seed, and independent of the manifest's row order
    a = create_filter("clip", quota=5, seed=3).select(df, labels, 2).keep
    flipped = df.iloc[::-1].reset_index(drop=True)
    b = create_filter("clip", quota=5, seed=3).select(flipped, labels[::-1], 2).keep[::-1]
    assert (a == b).all()


def test_dedup_hash_drops_exact_and_near_copies_within_a_class():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8, generator=g)
    x[2] = x[0]                        # exact copy, same class
    x[3] = (x[1].int() + 1).clamp(0, 255).to(torch.uint8)  # near copy (a brightness shift keeps the hash)
    x[5] = x[0]                        # copy but of another class: kept
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    r = create_filter("dedup")(x, labels, ["a", "b"])
    assert r.keep.tolist() == [True, True, False, False, True, True]
    assert r.scores[2] == 0 and r.scores[0] == 256 and r.columns["dedup_distance"][3] <= 4
    h = dhash(x)
    assert len(h[0]) == 64 and h[0] == h[2] and hamming(h[0], h[1]) > 40  # 256 bits as hex
    assert np.array_equal(dhash(x.repeat(1, 3, 1, 1)), h)  # color images hash on their grayscale
    with pytest.raises(UserError, match="max_distance"):
        create_filter("dedup", max_distance=256)


def test_dedup_keeps_real_fashion_mnist_images():
    """Real, distinct product photos are not duplicates (the 64-bit hash would drop 40% of trousers)."""
    from synthclone.data import load_dataset

    val = load_dataset("fashion-mnist", split="val")
    idx = torch.cat([torch.nonzero(val.labels == c).flatten()[:60] for c in range(10)])
    data = val.subset(idx)
    r = create_filter("dedup")(data.images, data.labels, data.classes)
    assert r.kept >= 595
    coarse = create_filter("dedup", hash_size=8, max_distance=0)(data.images, data.labels, data.classes)
    assert coarse.kept < r.kept

def test_clip_scores_with_tiny_small_clip():
    f = create_filter("clip", tiny=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1])
    classes = ["Coat", "Sandal", "Bag"]
    scores = f.score(x, labels, classes)["clip_score"]
    assert scores.shape == (5,) and ((scores > 0) & (scores < 1)).all()
    # the score is the softmax confidence of the intended class: the three classes' scores sum to 1
    total = sum(f.score(x[:1], torch.tensor([c]), classes)["clip_score"][0] for c in range(3))
    assert abs(total - 1) < 1e-5
    r = f(x, labels, classes)
    assert r.keep.shape == (5,) and r.keep.dtype == bool and np.allclose(r.scores, scores)
    assert f.identity()["tiny"] is True
