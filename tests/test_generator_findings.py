"""Issue 18 item 3: the finding "higher-fidelity generators make better clones" tested against "more
diverse / higher-coverage generators make better clones". Each is a Spearman rank correlation across the
generators between a generator metric and the clones' clean accuracy, per seed, read with a t over the
seeds and a permutation test. Under generators that make equally good clones "supported" stays at the
nominal one-sided rate; with accuracy ordered by coverage the coverage claims are supported."""

import math

import numpy as np
import pandas as pd
import pytest

from synthclone.report import stats
from synthclone.report.findings import GENERATOR_CLAIMS, Evaluator, evaluate_claims, generators_of

CLAIM = {c.key: c for c in GENERATOR_CLAIMS}
TAGS = ["model", "arm", "seed", "strategy", "regime"]
NOMINAL = 0.025


def _study(rng, accuracy, seeds=(0, 1, 2), n=200, seed_sd=0.02):
    """Rows and tags of clones of ``len(accuracy)`` generators: generator g's clone at a seed is right on
    each of n test samples with probability accuracy[g] + seed noise (the main generator's clones are arm
    'synthetic', the others arm 'generator')."""
    frames, tags = [], []
    for s in seeds:
        for g, p in enumerate(accuracy):
            strategy = "template" if g == 0 else f"template@g{g}"
            name = f"{'synthetic:template' if g == 0 else f'generator:g{g}'}/s{s}"
            correct = rng.random(n) < min(1.0, max(0.0, p + seed_sd * rng.normal()))
            frames.append(pd.DataFrame({"model": name, "probe": "clean", "condition": "clean", "severity": 0,
                                        "sample_id": [f"x{i}" for i in range(n)], "label": 0,
                                        "prediction": np.where(correct, 0, 1), "confidence": 0.9, "correct": correct,
                                        "score": np.nan, "extra": "{}"}))
            tags.append([name, "synthetic" if g == 0 else "generator", s, strategy, "supervised"])
    return pd.concat(frames, ignore_index=True), pd.DataFrame(tags, columns=TAGS)


def _generators(precision, coverage):
    return {("main" if g == 0 else f"g{g}"): {"strategy": "template" if g == 0 else f"template@g{g}",
                                              "metrics": {"precision": p, "coverage": c}}
            for g, (p, c) in enumerate(zip(precision, coverage))}


@pytest.mark.parametrize("n_generators", [3, pytest.param(5, marks=pytest.mark.slow)])
def test_equal_generators_are_supported_at_most_at_the_nominal_rate(n_generators):
    sims, supported = 150, {k: 0 for k in CLAIM}
    for sim in range(sims):
        rng = np.random.default_rng(sim)
        rows, tags = _study(rng, [0.7] * n_generators, n=100)
        gens = _generators(rng.random(n_generators), rng.random(n_generators))  # metrics unrelated to accuracy
        ev = Evaluator(rows, tags, seed=sim)
        for key, claim in CLAIM.items():
            f = ev.evaluate(claim, gens)
            assert f.verdict != "not run", f.note
            supported[key] += f.verdict == "supported"
    bound = NOMINAL + 2.5 * math.sqrt(NOMINAL * (1 - NOMINAL) / sims)
    assert all(v / sims <= bound for v in supported.values()), supported


def test_accuracy_ordered_by_coverage_supports_the_coverage_claims():
    rng = np.random.default_rng(0)
    accuracy = [0.55, 0.65, 0.75, 0.85, 0.9]
    rows, tags = _study(rng, accuracy, n=400, seed_sd=0.01)
    gens = _generators(precision=[0.9, 0.8, 0.7, 0.6, 0.5], coverage=[0.2, 0.4, 0.5, 0.7, 0.8])
    found = {f.claim.key: f for f in evaluate_claims(rows, tags, generators=gens, n_boot=50)}
    cov, fid, diff = found["generator-coverage"], found["generator-fidelity"], found["generator-coverage-vs-fidelity"]
    assert cov.verdict == "supported" and cov.estimate.estimate == pytest.approx(1.0)
    assert fid.verdict == "contradicted" and fid.estimate.estimate == pytest.approx(-1.0)
    assert diff.verdict == "supported" and diff.estimate.estimate == pytest.approx(2.0)
    assert cov.scope == "these 5 generators (3 seeds)" and cov.n_seeds == 3
    assert set(cov.a_models) == set(gens) and fid.metric_label == "ρ(clean accuracy, precision)"
    for f in (cov, fid, diff):  # p is the larger of the t's and the permutation test's
        assert f.p_value >= stats.p_value(f.estimate, 0.0)[0] and f.p_value < 0.05


def test_fewer_than_three_seeds_or_generators_are_not_run():
    rng = np.random.default_rng(1)
    rows, tags = _study(rng, [0.6, 0.7, 0.8], seeds=(0, 1))
    f = Evaluator(rows, tags).evaluate(CLAIM["generator-coverage"], _generators([1, 2, 3], [1, 2, 3]))
    assert f.verdict == "not run" and "3 seeds" in f.note and f.a_value == pytest.approx(1.0) and f.p_value is None
    rows, tags = _study(rng, [0.6, 0.7])
    f = Evaluator(rows, tags).evaluate(CLAIM["generator-coverage"], _generators([1, 2], [1, 2]))
    assert f.verdict == "not run" and "at least 3 generators" in f.note
    f = Evaluator(rows, tags).evaluate(CLAIM["generator-coverage"], None)
    assert f.verdict == "not run"


def test_generators_of_reads_the_compare_stage():
    doc = {"strategy_tags": {"embedded (main)": "template", "g5": "template@g5"},
           "stores": {"embedded (main)": {"overall": {"precision": 0.9, "coverage": 0.3}},
                      "g5": {"overall": {"precision": 0.95, "coverage": 0.1}}}}
    assert generators_of(doc) == {"embedded (main)": {"strategy": "template", "metrics": {"precision": 0.9, "coverage": 0.3}},
                                  "g5": {"strategy": "template@g5", "metrics": {"precision": 0.95, "coverage": 0.1}}}
    assert generators_of(None) == {}


def test_permutation_p_has_its_level_and_sees_a_consistent_order():
    rng = np.random.default_rng(3)
    x = np.arange(4)
    ps = [stats.rank_permutation_p(rng.normal(size=(3, 4)), [x], n_perm=499, seed=i) for i in range(400)]
    assert np.mean(np.array(ps) < 0.05) <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / 400)
    ordered = np.tile(np.arange(4.0), (3, 1))  # every seed ranks the generators as x does
    assert stats.rank_permutation_p(ordered, [x]) < 0.05
    assert stats.rank_correlation(ordered, x) == pytest.approx([1.0, 1.0, 1.0])
    assert np.isnan(stats.rank_correlation(np.ones((1, 4)), x)).all()  # a constant row has no rank correlation


def test_the_reports_correlation_table_reads_every_metric():
    from synthclone.report.build import GENERATOR_METRICS, correlation_table

    rng = np.random.default_rng(4)
    rows, tags = _study(rng, [0.55, 0.65, 0.75, 0.85], n=300, seed_sd=0.01)
    names = ["main"] + [f"g{g}" for g in range(1, 4)]
    ranks = {"precision": [4, 3, 2, 1], "recall": [1, 2, 3, 4], "density": [1, 3, 2, 4], "coverage": [1, 2, 3, 4],
             "fd": [4, 3, 2, 1], "diversity": [1, 2, 4, 3]}
    compare = {"strategy_tags": {n: ("template" if g == 0 else f"template@g{g}") for g, n in enumerate(names)},
               "stores": {n: {"overall": {k: float(v[g]) for k, v in ranks.items()}} for g, n in enumerate(names)}}
    table = correlation_table(rows, tags, compare, 0.95)
    rho = {r[0]: r[1] for r in table.rows}
    assert [r[0] for r in table.rows] == [label for _, label in GENERATOR_METRICS]
    assert rho["precision"] == pytest.approx(-1.0) and rho["coverage"] == pytest.approx(1.0)
    assert rho["Fréchet distance"] == pytest.approx(-1.0) and all(r[3] == 3 for r in table.rows)
