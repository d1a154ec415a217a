"""Issue 18 item 5: ``synthclone compare`` scores stores against the real test split without training. A
store of real images must look better on every metric than a store of noise, in the same feature space."""

import json

import torch

from synthclone.data import load_dataset
from test_training_mixing import write_store


def test_compare_ranks_a_real_like_store_above_a_noise_store(tmp_path, run_cli):
    real = load_dataset("fashion-mnist", "train").per_class(30, seed=3)
    good = write_store(tmp_path / "good", real, [f"a photo of a {real.classes[int(y)]}" for y in real.labels])
    noise = real.like(torch.randint(0, 256, (len(real), *real.shape), dtype=torch.uint8,
                                    generator=torch.Generator().manual_seed(0)), real.labels, list(real.ids))
    bad = write_store(tmp_path / "bad", noise, ["noise"] * len(real))
    code, out, err = run_cli("compare", str(good), str(bad), "--per-class", "30", "--k", "3", "--out",
                             str(tmp_path / "cmp"))
    assert code == 0, err
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    g, b = doc["stores"][str(good)]["overall"], doc["stores"][str(bad)]["overall"]
    assert g["precision"] > 0.5 > b["precision"] and g["coverage"] > b["coverage"] and g["fd"] < b["fd"]
    assert set(doc["stores"][str(good)]["per_class"]) == set(real.classes)
    assert {"prdc", "fd", "diversity"} <= set(doc["stores"][str(good)]["seconds"])
    assert doc["provenance"]["schema"] == "synthclone.compare/1" and "precision" in out
    code, _, err = run_cli("compare", str(tmp_path / "missing"), "--out", str(tmp_path / "cmp"))
    assert code == 2 and "does not exist" in err
