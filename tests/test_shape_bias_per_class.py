"""Per-category shape bias (issue 15 item 11): summarize, the report's table and plot, from hand-made rows."""

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from synthclone.report import plots
from synthclone.report.build import build_report
from synthclone.robustness import summarize
from synthclone.robustness.core import COLUMNS, DTYPES

# (shape, texture, prediction) per stimulus. Class 0: 3 shape + 1 texture decisions (0.75), one
# prediction that is neither, one stimulus whose shape and texture agree (excluded). Class 1: 2
# texture decisions (0.0). Class 2: no shape or texture decision (None).
# Overall: 3 shape / 6 decisions = 0.5 = (4 * 0.75 + 2 * 0.0) / 6, not the plain mean 0.375.
STIMULI_A = [(0, 1, 0), (0, 2, 0), (0, 3, 0), (0, 1, 1), (0, 2, 3), (0, 0, 0),
             (1, 0, 0), (1, 2, 2), (2, 0, 1), (2, 1, 3)]
# a second model: every decision a shape decision where one is made
STIMULI_B = [(0, 1, 0), (1, 2, 1), (1, 3, 1), (2, 0, 2)]


def shape_rows(model, stimuli):
    s, t, p = (np.array(c) for c in zip(*stimuli))
    df = pd.DataFrame({
        "model": model, "probe": "shape-bias", "condition": "cue_conflict", "severity": 0,
        "sample_id": [f"{model}-{i}" for i in range(len(s))], "label": s, "prediction": p, "confidence": 0.9,
        "correct": p == s, "score": np.nan, "extra": [json.dumps({"shape": int(a), "texture": int(b)}) for a, b in zip(s, t)],
    })
    return df[COLUMNS].astype(DTYPES)


@pytest.fixture
def rows():
    return pd.concat([shape_rows("a", STIMULI_A), shape_rows("b", STIMULI_B)], ignore_index=True)


def test_per_class_fractions_and_none(rows):
    summary = summarize(rows)
    a, b = summary["a"], summary["b"]
    assert a["shape_bias_per_class"] == {"0": 0.75, "1": 0.0, "2": None}
    assert a["shape_decisions_per_class"] == {"0": 4, "1": 2, "2": 0}
    assert b["shape_bias_per_class"] == {"0": 1.0, "1": 1.0, "2": 1.0}
    assert a["shape_bias"] == 0.5 and b["shape_bias"] == 1.0  # the one-number value is unchanged


def test_overall_is_decision_weighted_mean_of_per_class(rows):
    for m in summarize(rows).values():
        per, n = m["shape_bias_per_class"], m["shape_decisions_per_class"]
        weighted = sum(per[c] * n[c] for c in per if per[c] is not None) / sum(n.values())
        assert m["shape_bias"] == pytest.approx(weighted)
    a = summarize(rows)["a"]["shape_bias_per_class"]
    assert a["0"] != a["1"] and np.mean([a["0"], a["1"]]) != pytest.approx(0.5)  # weights matter here


def test_no_shape_rows_no_per_class_entry(rows):
    other = rows.assign(probe="clean", condition="clean", extra=json.dumps({"top5": True}))
    assert "shape_bias_per_class" not in summarize(other)["a"]


def test_plot_is_written(rows, tmp_path):
    summary = summarize(rows)
    path = plots.shape_bias_per_class(summary, ["a", "b"], tmp_path / "figs" / "shape-bias-per-class.png",
                                      class_names=["shirt", "bag", "boot"])
    assert path is not None and path.is_file()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
    assert plots.shape_bias_per_class({"a": {"clean_acc": 0.9}}, ["a"], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_table_models_by_categories(rows):
    from synthclone.report.build import shape_bias_table

    tags = pd.DataFrame([["a", "real", 0, None, "supervised"], ["b", "synthetic", 0, "template", "supervised"]],
                        columns=["model", "arm", "seed", "strategy", "regime"])
    table = shape_bias_table(summarize(rows), tags, class_names=["shirt", "bag", "boot"])
    assert list(table.columns) == ["model", "all", "shirt", "bag", "boot"]
    assert [list(r) for r in table.rows] == [["a", 0.5, 0.75, 0.0, "–"], ["b", 1.0, 1.0, 1.0, 1.0]]
    assert shape_bias_table({"a": {}}, tags.head(1)) is None


@dataclass
class _Model:
    name: str
    arm: str

    def tags(self):
        return {"model": self.name, "arm": self.arm, "seed": 0, "strategy": None, "regime": "supervised"}


def test_report_shows_per_category_table_and_plot(rows, tmp_path):
    from synthclone.config import load_config

    cfg = load_config(overrides=["report.guidance_grid=[]"])
    inputs = {}
    for name in ("a", "b"):
        path = tmp_path / f"{name}.parquet"
        rows[rows["model"] == name].to_parquet(path, index=False)
        inputs[f"bench-{name}"] = {"rows": str(path)}
    build_report(cfg, tmp_path, inputs, [_Model("a", "real"), _Model("b", "synthetic")], tmp_path / "report")
    assert (tmp_path / "report" / "figures" / "shape-bias-per-class.png").is_file()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["a"]["shape_bias_per_class"] == {"0": 0.75, "1": 0.0, "2": None}
    md = next((tmp_path / "report").glob("*.md")).read_text()
    assert "Shape bias per shape category" in md and "shape-bias-per-class.png" in md
    assert "T-shirt/top" in md  # categories named by the dataset's classes (Fashion-MNIST class 0)


def test_report_warns_when_the_clip_had_random_weights(rows, tmp_path):
    """Issue 17 item 7: random weights are marked where the numbers are read, not only asked for."""
    from synthclone.config import load_config

    path = tmp_path / "a.parquet"
    rows[rows["model"] == "a"].to_parquet(path, index=False)
    inputs = {"bench-a": {"rows": str(path)}}
    for pretrained, warned in (("none", True), (None, False)):
        cfg = load_config(overrides=["report.guidance_grid=[]", "clip.model=open_clip:tiny",
                                     f"clip.pretrained={pretrained if pretrained else 'null'}", "report.formats=[md]"])
        build_report(cfg, tmp_path, inputs, [_Model("a", "real")], tmp_path / "report")
        md = (tmp_path / "report" / "report.md").read_text()
        assert ("ran with random weights" in md) is warned
