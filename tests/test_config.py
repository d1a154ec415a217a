import yaml
import pytest

from synthclone.config import RunConfig, load_config, parse_override, write_resolved
from synthclone.errors import UserError


def test_defaults_yaml_and_overrides(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("name: demo\ntrain:\n  epochs: 4\n  seeds: [0, 1]\n")
    cfg = load_config(cfg_file, ["train.lr=0.1", "generate.prompts=[template, wordnet]", "bench.ece_bins=10"])
    assert cfg.name == "demo" and cfg.train.epochs == 4 and cfg.train.seeds == [0, 1]
    assert cfg.train.lr == pytest.approx(0.1)
    assert cfg.generate.prompts == ["template", "wordnet"]
    assert cfg.bench.ece_bins == 10
    assert cfg.data.dataset == "fashion-mnist"  # default kept


def test_unknown_key_names_key_and_valid_keys():
    with pytest.raises(UserError) as info:
        load_config(None, ["train.epoch=3"])
    msg = str(info.value)
    assert "train.epoch" in msg and "epochs" in msg and "batch_size" in msg
    with pytest.raises(UserError) as info:
        load_config(None, ["trian.epochs=3"])
    assert "trian" in str(info.value) and "train" in str(info.value)


def test_bad_value_names_key_and_allowed_values():
    with pytest.raises(UserError) as info:
        load_config(None, ["train.precision=fp8"])
    msg = str(info.value)
    assert "train.precision" in msg and "bf16" in msg and "fp32" in msg
    with pytest.raises(UserError) as info:
        load_config(None, ["train.epochs=0"])
    assert "train.epochs" in str(info.value)
    with pytest.raises(UserError):
        load_config(None, ["generate.guidance=-1"])


def test_bad_override_syntax_and_files(tmp_path):
    with pytest.raises(UserError):
        parse_override("train.epochs")
    with pytest.raises(UserError) as info:
        load_config(tmp_path / "missing.yaml")
    assert "missing.yaml" in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(UserError) as info:
        load_config(bad)
    assert "bad.yaml" in str(info.value) and "YAML" in str(info.value)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(UserError):
        load_config(scalar)


def test_write_resolved_has_provenance(tmp_path):
    cfg = RunConfig()
    path = write_resolved(cfg, tmp_path / "run")
    doc = yaml.safe_load(path.read_text())
    assert doc["_provenance"]["synthclone_version"]
    assert "git_sha" in doc["_provenance"]
    assert doc["train"]["model"] == cfg.train.model
    # the resolved file validates back into the same config
    doc.pop("_provenance")
    assert RunConfig.model_validate(doc) == cfg


def test_quickstart_config_validates():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for f in sorted((root / "configs").glob("*.yaml")):
        tree = yaml.safe_load(f.read_text())
        if tree.get("_schema", "run") == "run":
            load_config(f)


def test_quickstart_runs_enough_seeds_for_verdicts_about_the_data():
    """Issue 15 item 3: the quickstart (make demo) prints paper-level verdicts only with 3+ seeds."""
    from pathlib import Path

    from synthclone.report.stats import MIN_SEEDS

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml")
    assert len(set(cfg.train.seeds)) >= MIN_SEEDS == 3
