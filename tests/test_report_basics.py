import math
import re

import numpy as np
import pytest
import torch

from synthclone.report import stats
from synthclone.report.document import Document, Figure, Heading, Paragraph, Table, to_html, write
from synthclone.report.grids import class_grid, save_png


def test_t_interval_matches_scipy():
    from scipy import stats as st

    d = [0.1, 0.12, 0.08]
    ci = stats.t_interval(d)
    lo, hi = st.t.interval(0.95, 2, loc=np.mean(d), scale=st.sem(d))
    assert ci.low == pytest.approx(lo) and ci.high == pytest.approx(hi) and ci.n == 3
    one = stats.t_interval([0.5])
    assert math.isinf(one.high) and stats.verdict_greater(one) == stats.INCONCLUSIVE


def test_bootstrap_paired_difference():
    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.9  # model A right 90% of the time
    b = rng.random(2000) < 0.6
    ci = stats.bootstrap_interval(lambda idx: a[idx].mean() - b[idx].mean(), len(a), n_boot=300)
    assert 0.25 < ci.estimate < 0.35 and ci.low > 0.2 and ci.high < 0.4
    assert stats.verdict_greater(ci) == stats.SUPPORTED
    flipped = stats.bootstrap_interval(lambda idx: b[idx].mean() - a[idx].mean(), len(a), n_boot=300)
    assert stats.verdict_greater(flipped) == stats.CONTRADICTED
    same = stats.bootstrap_interval(lambda idx: a[idx].mean() - a[idx].mean(), len(a), n_boot=50)
    assert stats.verdict_noninferior(same, 0.01) == stats.SUPPORTED


def test_verdicts():
    I = stats.Interval
    assert stats.verdict_greater(I(0.1, 0.05, 0.15, 3, "t")) == stats.SUPPORTED
    assert stats.verdict_greater(I(0.0, -0.05, 0.05, 3, "t")) == stats.INCONCLUSIVE
    assert stats.verdict_greater(I(-0.1, -0.15, -0.05, 3, "t")) == stats.CONTRADICTED
    # "A - B > margin" is contradicted once the whole interval is below the margin (not only below 0)
    assert stats.verdict_greater(I(0.05, 0.02, 0.08, 3, "t"), margin=0.1) == stats.CONTRADICTED
    # "A matches or beats B" (non-inferiority, margin 0.02): a clearly better A is supported, not contradicted
    assert stats.verdict_noninferior(I(0.0, -0.01, 0.01, 3, "t"), 0.02) == stats.SUPPORTED
    assert stats.verdict_noninferior(I(0.1, 0.05, 0.15, 3, "t"), 0.02) == stats.SUPPORTED
    assert stats.verdict_noninferior(I(-0.01, -0.05, 0.01, 3, "t"), 0.02) == stats.INCONCLUSIVE
    assert stats.verdict_noninferior(I(-0.1, -0.15, -0.05, 3, "t"), 0.02) == stats.CONTRADICTED
    assert stats.verdict_noninferior(I(-0.1, -0.15, -0.05, 3, "t"), 0.02, higher_is_better=False) == stats.SUPPORTED


def test_html_is_self_contained_and_escaped(tmp_path):
    imgs = torch.randint(0, 255, (20, 1, 8, 8), dtype=torch.uint8)
    labels = torch.arange(20) % 2
    png = save_png(class_grid(imgs, labels, ["a", "b"], per_class=4), tmp_path / "grid.png")
    doc = Document("Report <script>alert(1)</script>")
    doc.add(Heading("Models & data")).add(Paragraph("model \"x\" <b>bold</b>"))
    doc.add(Table(["model", "acc"], [["<img src=x onerror=alert(1)>", 0.91234]], caption="main"))
    doc.add(Figure(png, "a grid"))
    page = to_html(doc)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x" in page
    assert "data:image/png;base64," in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing external
    html_path, md_path = write(doc, tmp_path / "report")
    md = md_path.read_text()
    assert "| model | acc |" in md and "../grid.png" in md
    assert html_path.read_text() == page


def test_set_grid_reads_only_the_images_it_shows(tmp_path):
    from PIL import Image

    from synthclone.data.folder import load_folder
    from synthclone.report.grids import set_grid

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    on_disk = load_folder(tmp_path, cache_bytes=0)  # .images raises on this set
    held = load_folder(tmp_path)
    grid = set_grid(on_disk, per_class=4)
    assert np.array_equal(np.asarray(grid), np.asarray(class_grid(held.images, held.labels, held.classes, per_class=4)))
