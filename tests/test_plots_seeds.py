"""Issue 17 item 10: the report's line plots show every seed: one line per recipe at the mean over its
seeds, with error bars of one standard deviation over seeds."""

import numpy as np
import pandas as pd
import pytest

from synthclone.report import plots


def _rows(models_acc):
    rows = []
    for model, (clean, by_sev) in models_acc.items():
        for i in range(100):
            rows.append(dict(model=model, probe="clean", condition="clean", severity=0, correct=i < clean * 100))
        for sev, acc in by_sev.items():
            for cond in ("gaussian_noise", "fog"):
                for i in range(100):
                    rows.append(dict(model=model, probe="corruptions", condition=cond, severity=sev,
                                     correct=i < acc * 100))
    return pd.DataFrame(rows)


def test_recipe_groups_strip_the_seed():
    assert plots.recipe_groups(["real/s0", "real/s1", "synthetic:template/s0", "zero-shot"]) == {
        "real": ["real/s0", "real/s1"], "synthetic:template": ["synthetic:template/s0"], "zero-shot": ["zero-shot"]}


def test_corruption_plot_draws_the_seed_mean_with_standard_deviation(tmp_path, monkeypatch):
    rows = _rows({"real/s0": (0.9, {1: 0.8, 2: 0.6}), "real/s1": (0.8, {1: 0.6, 2: 0.4}),
                  "real/s2": (0.7, {1: 0.7, 2: 0.5}), "synthetic/s0": (0.5, {1: 0.4, 2: 0.3})})
    drawn = []
    real = plots._plot_band
    monkeypatch.setattr(plots, "_plot_band", lambda ax, curves, *a, **k: (drawn.append((a[1], curves)),
                                                                          real(ax, curves, *a, **k)))
    path = plots.corruption_severity(rows, sorted(set(rows["model"])), tmp_path / "c.png")
    assert path.is_file()
    labels = {label: curves for label, curves in drawn}
    assert set(labels) == {"real", "synthetic"}
    table = pd.concat(labels["real"], axis=1)
    assert table.shape == (3, 3)  # clean + 2 severities, 3 seeds
    assert table.mean(axis=1).tolist() == pytest.approx([1 - 0.8, 1 - 0.7, 1 - 0.5])
    assert table.std(axis=1, ddof=1).tolist() == pytest.approx([0.1, 0.1, 0.1])


def test_the_band_has_error_bars_only_with_several_seeds():
    plt = plots._plt()
    fig, ax = plt.subplots()
    plots._plot_band(ax, [pd.Series([0.5, 0.4], index=[0, 1]), pd.Series([0.7, 0.6], index=[0, 1])], "C0", "a")
    plots._plot_band(ax, [pd.Series([0.5, 0.4], index=[0, 1])], "C1", "b")
    (bars,) = ax.containers  # one errorbar container: the two-seed recipe's
    segments = bars.lines[2][0].get_segments()
    assert [np.ptp(seg[:, 1]) for seg in segments] == pytest.approx([2 * np.std([0.5, 0.7], ddof=1)] * 2)
    assert sorted(t.get_text() for t in ax.legend().get_texts()) == ["a (2 seeds)", "b"]
    plt.close(fig)
