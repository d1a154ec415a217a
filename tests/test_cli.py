import json
import subprocess
import sys

import pytest

SUBCOMMANDS = ["run", "generate", "train", "bench", "report", "data", "list", "pretrain"]


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help(run_cli, sub):
    code, out, _ = run_cli(sub, "--help")
    assert code == 0 and "usage: synthclone " + sub in out


def test_unknown_subcommand_is_one_line_exit_2(run_cli):
    code, out, err = run_cli("frobnicate")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "frobnicate" in err


def test_list_shows_registries(run_cli):
    code, out, _ = run_cli("list")
    assert code == 0
    for kind in ["datasets:", "generators:", "prompts:", "filters:", "models:", "regimes:", "probes:"]:
        assert kind in out
    assert "resnet8" in out and "fashion-mnist" in out
    code, _, err = run_cli("list", "widgets")
    assert code == 2 and "valid kinds" in err


def test_data_info_fashion_mnist(run_cli):
    code, out, _ = run_cli("data", "info", "fashion-mnist", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["images"] == 70_000 and info["shape"] == [1, 28, 28]
    assert info["splits"] == {"generator": 30_000, "train": 25_000, "val": 5_000, "test": 10_000}
    assert info["classes"][-1] == "Ankle boot"


def test_data_info_errors(run_cli, tmp_path):
    code, _, err = run_cli("data", "info", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("data", "info", "not-a-dataset")
    assert code == 2 and "unknown dataset" in err


def test_run_rejects_unknown_config_key_and_writes_nothing(run_cli, tmp_path):
    out_dir = tmp_path / "run"
    code, _, err = run_cli("run", "--set", "train.epoch=3", "--out", str(out_dir))
    assert code == 2 and "train.epoch" in err and "epochs" in err
    assert not out_dir.exists()


def test_run_dry_run_prints_plan(run_cli):
    code, out, _ = run_cli("run", "--dry-run")
    assert code == 0 and "data" in out


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "synthclone", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("synthclone ")
