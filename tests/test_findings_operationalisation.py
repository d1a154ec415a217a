"""Issue 15 items 4 and 10: one operationalisation per robustness axis, "much more" with a margin, the
paper's attack setting as the findings' setting, and no background verdict from images without
backgrounds; the report says what each probe measures."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from synthclone.data import load_dataset
from synthclone.models import create_model
from synthclone.report.build import findings_section, probe_notes
from synthclone.report.document import Heading, Paragraph, Table
from synthclone.report.findings import CLAIMS, MUCH, Evaluator, evaluate_claims
from synthclone.robustness import BenchSettings, run_probes
from synthclone.robustness.adversarial import PAPER_PGD

CLAIM = {c.key: c for c in CLAIMS}
TAGS = ["model", "arm", "seed", "strategy", "regime"]


def _frame(model, probe, condition, p, n, rng, extra="{}", prefix="s"):
    correct = rng.random(n) < p
    return pd.DataFrame({"model": model, "probe": probe, "condition": condition, "severity": 1,
                         "sample_id": [f"{prefix}{i}" for i in range(n)], "label": 0, "prediction": np.where(correct, 0, 1),
                         "confidence": 0.9, "correct": correct, "score": np.nan, "extra": extra})


def _model(name, rng, n, clean, pgd=None, sweep=None, corr=None):
    frames = [_frame(name, "clean", "clean", clean, n, rng)]
    if pgd is not None:
        frames.append(_frame(name, "adversarial", "pgd_paper", pgd, n, rng, json.dumps({"eps": 1 / 255, "norm": "linf"})))
    if sweep is not None:
        frames.append(_frame(name, "adversarial", "pgd_linf", sweep, n, rng, json.dumps({"eps": 8 / 255, "norm": "linf"})))
    if corr is not None:
        frames.append(_frame(name, "corruptions", "gaussian_noise", corr, n, rng))
    return frames


def _tags(*rows):
    return pd.DataFrame(list(rows), columns=TAGS)


REAL = ["real/s0", "real", 0, None, "supervised"]
SYN = ["synthetic:template/s0", "synthetic", 0, "template", "supervised"]
MIX = ["mixed:template/s0", "mixed", 0, "template", "supervised"]


def test_adversarial_findings_read_the_papers_attack_not_the_sweep():
    rng = np.random.default_rng(0)
    # the sweep's 8/255 wipes both out; at the paper's 1/255 real keeps far more
    rows = pd.concat(_model("real/s0", rng, 600, 0.9, pgd=0.6, sweep=0.01)
                     + _model("synthetic:template/s0", rng, 600, 0.6, pgd=0.05, sweep=0.01), ignore_index=True)
    f = Evaluator(rows, _tags(REAL, SYN), n_boot=200).evaluate(CLAIM["adversarial"])
    assert f.verdict == "supported"
    assert f.a_value == pytest.approx(rows.query("model == 'real/s0' and condition == 'pgd_paper'")["correct"].mean() / 
                                      rows.query("model == 'real/s0' and condition == 'clean'")["correct"].mean())
    only_sweep = rows[rows["condition"] != "pgd_paper"]
    g = Evaluator(only_sweep, _tags(REAL, SYN), n_boot=100).evaluate(CLAIM["adversarial"])
    assert g.verdict == "not run" and "Singh et al.'s setting" in g.note


def test_much_more_needs_the_stated_margin():
    """Real keeps about 0.03 more of its clean accuracy under PGD: a real but small difference, so
    'much more vulnerable' (at least 0.05 more) is not supported (with margin 0 it was)."""
    rng = np.random.default_rng(1)
    n = 20000
    rows = pd.concat(_model("real/s0", rng, n, 0.9, pgd=0.45) + _model("synthetic:template/s0", rng, n, 0.9, pgd=0.42),
                     ignore_index=True)
    f = Evaluator(rows, _tags(REAL, SYN), n_boot=200).evaluate(CLAIM["adversarial"])
    assert CLAIM["adversarial"].margin == MUCH == 0.05
    assert 0.0 < f.estimate.low and f.estimate.estimate < MUCH     # a difference, smaller than the margin
    assert f.verdict != "supported"


def test_mixing_reads_the_share_kept_and_shows_absolute_accuracy_beside_it():
    """Mixed: 0.95 clean, 0.60 corrupted (keeps 63%); synthetic alone: 0.50 clean, 0.45 corrupted
    (keeps 90%). Absolute accuracy favours mixing, the share kept does not: the verdict reads the
    share (as every robustness verdict does), the absolute difference stands beside it."""
    rng = np.random.default_rng(2)
    rows = pd.concat(_model("mixed:template/s0", rng, 800, 0.95, corr=0.60)
                     + _model("synthetic:template/s0", rng, 800, 0.50, corr=0.45), ignore_index=True)
    f = Evaluator(rows, _tags(MIX, SYN), n_boot=200).evaluate(CLAIM["mixing-corruptions"])
    assert CLAIM["mixing-corruptions"].metric == "corruption_retained"
    assert f.verdict == "contradicted"
    assert f.secondary is not None and f.secondary.low > 0.05          # absolute: mixed is ahead (0.15)
    record = f.record()
    assert record["secondary_metric"] == "corruption_acc" and record["secondary"]["estimate"] > 0


def test_every_robustness_claim_uses_the_share_kept():
    robust = [c for c in CLAIMS if c.metric.startswith(("corruption", "pgd"))]
    assert {c.key for c in robust} == {"adversarial", "corruptions", "mixing-corruptions", "mixing-adversarial",
                                       "prompt-robustness"}
    assert all(c.metric.endswith("_retained") and c.secondary.endswith("_acc") for c in robust)


def test_no_background_verdict_from_built_clutter():
    rng = np.random.default_rng(3)
    rows = []
    for name in ("real/s0", "synthetic:template/s0"):
        rows += _model(name, rng, 300, 0.9)
        rows += [_frame(name, "background", "clutter_same", 0.7, 300, rng, prefix="b"),
                 _frame(name, "background", "clutter_rand", 0.5, 300, rng, prefix="b")]
    rows = pd.concat(rows, ignore_index=True)
    found = {f.claim.key: f for f in evaluate_claims(rows, _tags(REAL, SYN), n_boot=100)}
    f = found["background-match"]
    assert f.verdict == "not run" and "real backgrounds" in f.note and "clutter" in f.note
    notes = " ".join(probe_notes(rows))
    assert "clutter gap measures distraction" in notes and "not background reliance" in notes


def test_built_background_variants_are_named_clutter():
    data = load_dataset("fashion-mnist", split="test").subset(range(40))
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=data.classes).eval()
    rows = run_probes(model, "r8", ["background"], BenchSettings(data=data, background_limit=20))
    assert set(rows["condition"]) == {"original", "clutter_same", "clutter_rand", "texture_bg", "clutter_only"}


def test_adversarial_probe_runs_the_papers_attack():
    data = load_dataset("fashion-mnist", split="test").subset(range(24))
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=data.classes).eval()
    rows = run_probes(model, "r8", ["adversarial"],
                      BenchSettings(data=data, attacks=["fgsm"], epsilons=[4 / 255], adversarial_limit=24))
    paper = rows[rows["condition"] == "pgd_paper"]
    assert len(paper) == 24
    extra = json.loads(paper["extra"].iloc[0])
    assert extra["eps"] == pytest.approx(1 / 255) and extra["steps"] == 20 and extra["norm"] == "linf"
    assert extra == {k: v for k, v in PAPER_PGD.items() if k != "random_start"}
    off = run_probes(model, "r8", ["adversarial"], BenchSettings(data=data, attacks=["fgsm"], epsilons=[4 / 255],
                                                                 adversarial_limit=24, paper_attack=False))
    assert "pgd_paper" not in set(off["condition"])


def test_report_states_the_operationalisation_and_the_configured_confidence():
    rng = np.random.default_rng(4)
    rows = pd.concat(_model("real/s0", rng, 300, 0.9, pgd=0.5, corr=0.7)
                     + _model("synthetic:template/s0", rng, 300, 0.7, pgd=0.1, corr=0.4), ignore_index=True)
    findings = evaluate_claims(rows, _tags(REAL, SYN), confidence=0.9, n_boot=100)
    blocks = findings_section(findings, 0.9, rows)
    table = next(b for b in blocks if isinstance(b, Table))
    assert "A − B (90% CI)" in table.columns and "absolute accuracy A − B (90% CI)" in table.columns
    assert any(isinstance(b, Heading) and b.text == "What the probes measure" for b in blocks)
    text = " ".join(b.text for b in blocks if isinstance(b, Paragraph))
    assert "share of clean accuracy" in text and "eps 1/255" in text and f"at least {MUCH}" in text
