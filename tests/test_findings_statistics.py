"""Issue 15 items 1, 5, 6: non-inferiority for "matches or beats", Holm across the claims, mCE per
Hendrycks & Dietterich with guarded denominators, configured ECE bins, epsilon columns by value.

Simulations are small and seeded; each case has a known answer."""

import json
import zlib

import numpy as np
import pandas as pd
import pytest

from synthclone.report import stats
from synthclone.report.findings import evaluate_claims
from synthclone.robustness import summarize
from synthclone.robustness.metrics import ece

N = 400
TAG_COLUMNS = ["model", "arm", "seed", "strategy", "regime"]


def _row(model, probe, condition, i, correct, severity=0, confidence=0.9, prediction=None, label=0, extra="{}"):
    return dict(model=model, probe=probe, condition=condition, severity=severity, sample_id=f"{probe[:2]}{i}", label=label,
                prediction=(label if correct else label + 1) if prediction is None else prediction,
                confidence=float(confidence), correct=bool(correct), score=np.nan, extra=extra)


def _model(model, shape_p=None, conf=None, acc=0.8, n=N):
    """Clean and calibration rows at accuracy ``acc`` (confidence ``conf``, default = acc), and
    cue-conflict rows with a shape decision with probability ``shape_p`` (rng seeded per model)."""
    rng = np.random.default_rng(zlib.crc32(model.encode()))
    out = [_row(model, "clean", "clean", i, c) for i, c in enumerate(rng.random(n) < acc)]
    c = acc if conf is None else conf
    out += [_row(model, "calibration", "uncalibrated", i, k, confidence=c) for i, k in enumerate(rng.random(n) < acc)]
    if shape_p is not None:
        hit = rng.random(n) < shape_p
        out += [_row(model, "shape-bias", "cue_conflict", i, h, prediction=2 if h else 3, label=2,
                     extra=json.dumps({"shape": 2, "texture": 3})) for i, h in enumerate(hit)]
    return out


def _real_and_clone(real, clone):
    rows = pd.DataFrame(real + clone)
    tags = pd.DataFrame([["real/s0", "real", 0, None, "supervised"],
                         ["synthetic:template/s0", "synthetic", 0, "template", "supervised"]], columns=TAG_COLUMNS)
    return {f.claim.key: f for f in evaluate_claims(rows, tags, n_boot=300)}


# ------------------------------------------------------------------------ item 1: non-inferiority


def test_a_clearly_better_clone_matches_or_beats():
    """Shape bias 0.73 vs 0.49 (the issue's simulation): the two-sided equivalence test said contradicted."""
    found = _real_and_clone(_model("real/s0", shape_p=0.49), _model("synthetic:template/s0", shape_p=0.73))
    f = found["shape-match"]
    assert f.estimate.estimate > 0.15
    assert f.verdict == "supported"
    assert "matches or beats" in f.claim.text


def test_a_better_calibrated_clone_matches_or_beats_and_a_worse_one_is_contradicted():
    """ECE is lower-is-better: the bound that must clear the margin is the upper one."""
    real = _model("real/s0", conf=0.99, acc=0.7)             # ECE ~0.29
    good = _model("synthetic:template/s0", conf=0.7, acc=0.7)  # ECE ~0.02
    assert _real_and_clone(real, good)["calibration-match"].verdict == "supported"
    real = _model("real/s0", conf=0.7, acc=0.7)
    bad = _model("synthetic:template/s0", conf=0.99, acc=0.7)
    f = _real_and_clone(real, bad)["calibration-match"]
    assert f.estimate.low > f.claim.margin and f.verdict == "contradicted"  # the whole interval beyond the margin


def test_an_equal_clone_with_a_tight_interval_is_supported():
    same = _model("real/s0", shape_p=0.5)
    clone = [dict(r, model="synthetic:template/s0") for r in same]  # identical predictions: A - B = 0 in every draw
    assert _real_and_clone(same, clone)["shape-match"].verdict == "supported"
    I = stats.Interval
    assert stats.verdict_noninferior(I(0.0, -0.01, 0.01, 3, "t"), 0.05, higher_is_better=True) == stats.SUPPORTED
    assert stats.verdict_noninferior(I(0.0, -0.01, 0.01, 3, "t"), 0.05, higher_is_better=False) == stats.SUPPORTED
    # just inside vs beyond the margin on the bad side
    assert stats.verdict_noninferior(I(-0.06, -0.09, -0.03, 3, "t"), 0.05, True) == stats.INCONCLUSIVE
    assert stats.verdict_noninferior(I(-0.1, -0.12, -0.07, 3, "t"), 0.05, True) == stats.CONTRADICTED
    assert stats.verdict_noninferior(I(0.1, 0.07, 0.12, 3, "t"), 0.05, False) == stats.CONTRADICTED


# ----------------------------------------------------------------------------- item 5: p and Holm


def test_holm_matches_the_textbook_step_down():
    def textbook(p, alpha):
        order = np.argsort(p)
        reject = np.zeros(len(p), bool)
        for k, i in enumerate(order):
            if p[i] > alpha / (len(p) - k):
                break
            reject[i] = True
        return reject

    for p, expected in [([0.01, 0.04, 0.03, 0.20], [True, False, False, False]),
                        ([0.01, 0.012, 0.03, 0.04], [True, True, False, False]),
                        ([0.001, 0.01, 0.02, 0.04], [True, True, True, True]),
                        ([0.2, 0.3], [False, False])]:
        adjusted, reject = stats.holm(p, 0.05)
        assert list(reject) == expected == list(textbook(np.array(p), 0.05))
    adjusted, _ = stats.holm([0.01, 0.04, 0.03, 0.20], 0.05)
    assert np.allclose(adjusted, [0.04, 0.09, 0.09, 0.20])


@pytest.mark.parametrize("kind", ["bootstrap", "t", "hand-built"])
def test_p_value_agrees_with_the_interval(kind):
    """p < 1 - confidence exactly when the interval excludes the null, on the side the p names."""
    rng = np.random.default_rng(3)
    a, b = rng.random(300) < 0.7, rng.random(300) < 0.65
    if kind == "bootstrap":
        ci = stats.bootstrap_interval(lambda idx: a[idx].mean() - b[idx].mean(), len(a), n_boot=200)
    elif kind == "t":
        ci = stats.t_interval([0.05, 0.02, 0.08, 0.03])
    else:
        ci = stats.Interval(0.05, 0.01, 0.09, 3, "t")
    assert_p_agrees_with_interval(ci)


def assert_p_agrees_with_interval(ci) -> None:
    """Over a grid of nulls around ``ci``: p < 0.05 exactly where the 95% interval excludes the null,
    and the side p names is the side the interval lies on."""
    for null in np.linspace(ci.low - 0.05, ci.high + 0.05, 97):
        p, side = stats.p_value(ci, null)
        assert 0 <= p <= 1
        assert (p < 0.05) == (ci.low > null or ci.high < null), null
        if p < 0.05:
            assert side == (1 if ci.low > null else -1)


def test_findings_carry_p_raw_and_holm_verdicts():
    real = _model("real/s0", shape_p=0.49, acc=0.9)
    clone = _model("synthetic:template/s0", shape_p=0.73, acc=0.6)
    found = list(_real_and_clone(real, clone).values())
    tested = [f for f in found if f.verdict != "not run"]
    assert len(tested) >= 3 and all(f.p_value is not None for f in tested)
    assert all(f.p_value is None and f.verdict_holm == "not run" for f in found if f.verdict == "not run")
    adjusted, _ = stats.holm([f.p_value for f in tested], 0.05)
    for f, q in zip(tested, adjusted):
        assert f.p_holm == pytest.approx(q)
        assert f.verdict_holm == (f.verdict if q < 0.05 else "inconclusive")
    by_key = {f.claim.key: f for f in found}
    assert by_key["clean-gap"].verdict_holm == "supported"  # 0.9 vs 0.6 on 400 samples survives any adjustment


def test_holm_can_demote_a_raw_verdict():
    from synthclone.report.findings import CLAIMS, Finding, adjust_holm

    findings = [Finding(c, "supported", p_value=p) for c, p in zip(CLAIMS, [0.01, 0.04, 0.03, 0.20])]
    findings[3].verdict = "inconclusive"
    adjust_holm(findings, alpha=0.05)
    assert [f.verdict_holm for f in findings] == ["supported", "inconclusive", "inconclusive", "inconclusive"]


def test_the_findings_table_shows_both_verdicts_and_says_holm():
    from synthclone.report.build import findings_records, findings_section

    real = _model("real/s0", shape_p=0.49)
    found = list(_real_and_clone(real, _model("synthetic:template/s0", shape_p=0.73)).values())
    blocks = findings_section(found, 0.95)
    table = [b for b in blocks if hasattr(b, "columns")][0]
    assert "verdict" in table.columns and "verdict (Holm)" in table.columns and "p" in table.columns
    text = " ".join(getattr(b, "text", "") for b in blocks)
    n = sum(f.p_value is not None for f in found)
    assert "Holm" in text and f"{n} claims" in text and "family-wise" in text
    records = json.loads(json.dumps(findings_records(found)))
    assert {"p_value", "verdict", "verdict_holm"} <= set(records[0])
    assert all("draws" not in (r["estimate"] or {}) for r in records)


# --------------------------------------------------------------------------- item 6: protocols


def _corruption_rows(model, cells, n=100):
    """``cells``: {(corruption, severity): error}; exactly round(error * n) of the n samples wrong."""
    out = []
    for (c, s), err in cells.items():
        wrong = int(round(err * n))
        out += [_row(model, "corruptions", c, i, i >= wrong, severity=s) for i in range(n)]
    out += [_row(model, "clean", "clean", i, i >= n // 10, extra=json.dumps({"top5": True})) for i in range(n)]  # error 0.1
    return out


def test_mce_uses_the_15_corruptions_and_the_shared_cells_only():
    model = {("gaussian_noise", 1): 0.2, ("gaussian_noise", 2): 0.4, ("gaussian_noise", 3): 0.8,  # severity 3: model only
             ("contrast", 1): 0.3, ("speckle_noise", 1): 0.5, ("speckle_noise", 2): 0.6}
    base = {("gaussian_noise", 1): 0.4, ("gaussian_noise", 2): 0.6, ("contrast", 1): 0.6,
            ("fog", 1): 0.5,                                                                   # baseline only
            ("speckle_noise", 1): 0.25, ("speckle_noise", 2): 0.25}
    rows = pd.DataFrame(_corruption_rows("m", model) + _corruption_rows("base", base))
    s = summarize(rows, baseline="base")["m"]
    assert set(s["corruption_ce"]) == {"gaussian_noise", "contrast"}
    assert s["corruption_ce"]["gaussian_noise"] == pytest.approx((0.2 + 0.4) / (0.4 + 0.6))
    assert s["corruption_ce"]["contrast"] == pytest.approx(0.5)
    assert s["corruption_mce"] == pytest.approx((0.6 + 0.5) / 2)
    assert s["extra_ce"] == {"speckle_noise": pytest.approx(2.2)}
    # relative CE: (E - E_clean) over the same shared cells
    assert s["relative_mce"] == pytest.approx(((0.1 + 0.3) / (0.3 + 0.5) + 0.2 / 0.5) / 2)
    assert s["mce_unnormalized"] == pytest.approx(((0.2 + 0.4 + 0.8) / 3 + 0.3) / 2)  # the 15 only, own cells


def test_a_zero_baseline_error_gives_none_and_a_note():
    model = {("gaussian_noise", 1): 0.2, ("contrast", 1): 0.3}
    base = {("gaussian_noise", 1): 0.4, ("contrast", 1): 0.0}
    rows = pd.DataFrame(_corruption_rows("m", model) + _corruption_rows("base", base))
    s = summarize(rows, baseline="base")["m"]
    assert s["corruption_ce"]["contrast"] is None
    assert s["corruption_ce"]["gaussian_noise"] == pytest.approx(0.5)
    assert s["corruption_mce"] is None
    assert any("contrast" in note for note in s["corruption_notes"])


def test_findings_use_the_configured_ece_bins():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, N)
    correct = rng.random(N) < 0.65  # over- and under-confident bins: the bin count matters
    rows = [_row("real/s0", "calibration", "uncalibrated", i, k, confidence=c) for i, (c, k) in enumerate(zip(conf, correct))]
    rows += [_row("real/s0", "clean", "clean", i, k) for i, k in enumerate(correct)]
    clone = [dict(r, model="synthetic:template/s0") for r in rows]
    tags = pd.DataFrame([["real/s0", "real", 0, None, "supervised"],
                         ["synthetic:template/s0", "synthetic", 0, "template", "supervised"]], columns=TAG_COLUMNS)
    assert ece(conf, correct, 5) != pytest.approx(ece(conf, correct, 15), abs=1e-3)  # the bins matter here
    for bins in (5, 15):
        f = {f.claim.key: f for f in evaluate_claims(pd.DataFrame(rows + clone), tags, n_boot=50, ece_bins=bins)}
        assert f["calibration-match"].a_value == pytest.approx(ece(conf, correct, bins))
        assert f"{bins} bins" in f["calibration-match"].metric_label


def test_the_attack_column_is_chosen_by_epsilon_value():
    from synthclone.report.build import main_table

    summary = {"m": {"fgsm_acc@2/255": 0.9, "fgsm_acc@8/255": 0.5, "fgsm_acc@16/255": 0.2,
                     "pgd_linf_acc@2/255": 0.8, "pgd_linf_acc@8/255": 0.3, "pgd_linf_acc@16/255": 0.1}}
    tags = pd.DataFrame([["m", "real", 0, None, "supervised"]], columns=TAG_COLUMNS)
    table = main_table(summary, tags)
    fgsm = [i for i, c in enumerate(table.columns) if c.startswith("FGSM")][0]
    pgd = [i for i, c in enumerate(table.columns) if c.startswith("PGD")][0]
    assert table.columns[fgsm].endswith("@8/255") and table.rows[0][fgsm] == 0.5
    assert table.columns[pgd].endswith("@8/255") and table.rows[0][pgd] == 0.3
    # FGSM alone (no PGD sweep to borrow the epsilon from): still the middle value, not the middle string
    only = {"m": {k: v for k, v in summary["m"].items() if k.startswith("fgsm")}}
    table = main_table(only, tags)
    assert table.columns[fgsm].endswith("@8/255") and table.rows[0][fgsm] == 0.5


def test_a_share_of_zero_clean_accuracy_is_undefined_not_huge():
    from synthclone.report.findings import METRICS

    zero_clean = np.array([[0.0, 1.0], [0.0, 0.0]])  # columns: clean, corrupted
    assert np.isnan(METRICS["corruption_retained"].reduce(zero_clean))
    assert np.isnan(METRICS["pgd_retained"].reduce(zero_clean))
