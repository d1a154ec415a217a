"""Issue 17 item 9 (in part): every Parquet file synthclone writes says which schema it follows and
which synthclone made it and the hash of the config that made it; bench summaries, store.json and
the report's provenance.json do too."""

import json

import pandas as pd

from synthclone import __version__
from synthclone.data.store import table_provenance, write_table


def test_parquet_files_carry_schema_version_and_commit(tmp_path):
    path = tmp_path / "rows.parquet"
    write_table(pd.DataFrame({"a": [1, 2]}), path, schema="synthclone.rows/1")
    meta = table_provenance(path)
    assert meta["schema"] == "synthclone.rows/1" and meta["synthclone_version"] == __version__
    assert "git_sha" in meta
    again = tmp_path / "again.parquet"
    write_table(pd.DataFrame({"a": [1, 2]}), again, schema="synthclone.rows/1")
    assert path.read_bytes() == again.read_bytes()  # no clock: equal content, equal bytes
    assert pd.read_parquet(path)["a"].tolist() == [1, 2]


def test_bench_rows_and_summary_carry_provenance(tmp_path, run_cli):
    import torch

    from synthclone.models import load_any_model
    from synthclone.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = tmp_path / "ckpt"
    from synthclone.data import load_dataset

    save_checkpoint(load_any_model("resnet8", classes=load_dataset("fashion-mnist", split="test").classes), ckpt)
    out = tmp_path / "bench"
    code, _, err = run_cli("bench", "--model", str(ckpt), "--probes", "clean", "--limit", "16", "--out", str(out))
    assert code == 0, err
    rows, summary = table_provenance(out / "rows.parquet"), json.loads((out / "summary.json").read_text())["provenance"]
    assert rows["schema"] == "synthclone.rows/1" and summary["schema"] == "synthclone.bench-summary/1"
    assert rows["config_hash"] == summary["config_hash"] and len(rows["config_hash"]) == 12
    other = tmp_path / "other"
    code, _, err = run_cli("bench", "--model", str(ckpt), "--probes", "clean", "--limit", "16", "--seed", "1",
                           "--out", str(other))
    assert code == 0, err
    assert table_provenance(other / "rows.parquet")["config_hash"] != rows["config_hash"]  # another setting


def test_config_hash_follows_the_settings():
    from synthclone.config import config_hash, load_config

    a, b = load_config("quickstart"), load_config("quickstart", ["train.epochs=7"])
    assert config_hash(a) == config_hash(load_config("quickstart")) and config_hash(a) != config_hash(b)
