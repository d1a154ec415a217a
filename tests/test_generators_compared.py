"""Issue 18 items 1 and 3: several generators in one study. Each ``generate.generators`` entry makes its
own store and clone, adding one reruns none of the others, and the report compares them with the
metrics of ``synthclone compare`` beside their clones' accuracy."""

import json

import pytest
import yaml

from synthclone.cli import main

CFG = {
    "name": "gens",
    "data": {"train_limit": 100, "val_limit": 20},
    "generate": {"prompts": ["template"], "per_class": 10, "steps": 3, "filter": [], "batch_size": 128},
    "train": {"epochs": 1, "batch_size": 32},
    "study": {"arms": ["real", "synthetic", "generator"]},
    "bench": {"probes": ["clean"], "limit": 20},
    "report": {"guidance_grid": [], "formats": ["md"]},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gens")
    cfg = json.loads(json.dumps(CFG))
    cfg["generate"]["generators"] = [{"name": "g1", "guidance": 1.0}, {"name": "g6", "guidance": 6.0}]
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["-q", "run", str(path), "--out", str(root / "run")]) == 0
    return root, cfg


def test_each_generator_has_a_store_a_clone_and_a_row(run):
    root, _ = run
    stages = {s["stage"] for s in json.loads((root / "run" / "stages.json").read_text())}
    assert {"generate-generator-g1", "generate-generator-g6", "compare", "train-generator:g1/s0",
            "train-generator:g6/s0", "train-synthetic:template/s0"} <= stages
    compare = json.loads(next((root / "run").glob("compare-*/compare.json")).read_text())
    assert set(compare["stores"]) == {"embedded (main)", "g1", "g6"}
    assert compare["strategy_tags"] == {"embedded (main)": "template", "g1": "template@g1", "g6": "template@g6"}
    g1, g6 = compare["stores"]["g1"]["overall"], compare["stores"]["g6"]["overall"]
    # guidance trades diversity for fidelity: the low-guidance generator spreads wider and reaches more
    assert g1["diversity"] > g6["diversity"] and g1["recall"] > g6["recall"]
    md = (root / "run" / "report" / "report.md").read_text()
    assert "## Generators compared" in md and "| g1 |" in md and "figures/generators.png" in md
    assert "figures/generators-samples.png" in md  # the stores side by side
    # the classification accuracy score: the real arm's model on every store
    assert compare["cas_model"] == "real/s0" and all(0 <= r["overall"]["cas"] <= 1 for r in compare["stores"].values())
    assert "| CAS |" in md and "real/s0 (trained on real data)" in md
    found = {f["claim"]: f for f in json.loads((root / "run" / "report" / "findings.json").read_text())}
    for key in ("generator-fidelity", "generator-coverage", "generator-coverage-vs-fidelity"):
        # three generators but one seed: the rank correlation is shown, the verdict needs three seeds
        assert found[key]["verdict"] == "not run" and "3 seeds" in found[key]["note"]
        assert found[key]["a"] == ["embedded (main)", "g1", "g6"] and found[key]["a_value"] is not None


def test_adding_a_generator_reruns_nothing_else(run):
    root, cfg = run
    cfg["generate"]["generators"].append({"name": "s2", "steps": 2})
    path = root / "more.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["-q", "run", str(path), "--out", str(root / "run")]) == 0
    cached = {s["stage"]: s["cached"] for s in json.loads((root / "run" / "stages.json").read_text())}
    assert not cached["generate-generator-s2"] and not cached["train-generator:s2/s0"] and not cached["compare"]
    assert all(cached[s] for s in ("generate-template", "generate-generator-g1", "train-generator:g1/s0",
                                   "train-synthetic:template/s0", "bench-generator:g6/s0"))


def test_generator_names_are_checked(tmp_path, capsys):
    cfg = json.loads(json.dumps(CFG))
    cfg["generate"]["generators"] = [{"name": "a"}, {"name": "a"}]
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--dry-run"]) == 2 and "distinct" in capsys.readouterr().err
    cfg["generate"]["generators"] = [{"name": "x/y"}]
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--dry-run"]) == 2 and "plain name" in capsys.readouterr().err
    cfg["generate"]["generators"] = [{"name": "ok", "generator": "nope"}]
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--dry-run"]) == 2 and "unknown generator 'nope'" in capsys.readouterr().err
