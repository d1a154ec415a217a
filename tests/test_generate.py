"""``synthclone generate`` end to end with the tiny random-weight generator (a real generator, not a mock)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from synthclone.data.store import COLUMNS, load_store

TINY = ["--generator-weights", "tiny", "--steps", "2", "--shard-size", "4"]


def tree_digest(root: Path) -> dict:
    """Relative path -> SHA-256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_store_end_to_end_and_rerun_is_identical(tmp_path, run_cli):
    out = tmp_path / "store"
    args = ["generate", "--out", out, "--classes", "Coat,Sandal,T-shirt/top", "--prompts", "templates",
            "--per-class", "6", "--filter", "dedup", *TINY]
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert "made 18 images this run" in stdout and "kept 18 of 18 by filters: dedup" in stdout
    assert "T-shirt/top" in stdout and "images/s" in stdout
    df = pd.read_parquet(out / "manifest.parquet")
    assert list(df.columns) == COLUMNS and len(df) == 18 and df["id"].is_unique
    assert sorted(p.name for p in (out / "images").iterdir()) == ["Coat", "Sandal", "T-shirt_top"]
    assert df["prompt"].iloc[1] == "a product photo of a coat"
    for row in df.itertuples():
        data = (out / row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
    data = load_store(out)
    assert len(data) == 18 and data.classes == ["Coat", "Sandal", "T-shirt/top"]
    assert data.images.dtype.is_floating_point is False and tuple(data.shape) == (1, 28, 28)
    assert data.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert data.meta["prompts"][0] == "a photo of a coat" and len(data.meta["manifest"]) == 18
    assert data.images.float().std() > 5  # real pictures, not a constant

    before = tree_digest(out)
    code, stdout, _ = run_cli(*args)  # a finished store: nothing to do, same bytes
    assert code == 0 and "made 0 images this run" in stdout
    assert tree_digest(out) == before

    again = tmp_path / "again"  # determinism: a second store from scratch is byte-identical
    assert run_cli(*[str(a).replace(str(out), str(again)) for a in args])[0] == 0
    assert tree_digest(again) == before


def test_bad_input_one_line_exit_2(tmp_path, run_cli):
    base = ["generate", "--classes", "Coat,Bag", "--filter", "none", *TINY]
    cases = [
        (["--out", tmp_path / "a", "--per-class", "0"], "per-class"),
        (["--out", tmp_path / "b", "--per-class", "2", "--prompts", "haiku"], "unknown prompt strategy 'haiku'"),
        (["--out", tmp_path / "c", "--per-class", "2", "--filter", "blur"], "unknown filter 'blur'"),
        (["--out", tmp_path / "f.txt" / "s", "--per-class", "2"], "not a writable folder"),
        (["--out", tmp_path / "d", "--per-class", "2", "--prompts", "template", "--prompt-option", "template=no slot"], "must contain {c}"),
        (["--out", tmp_path / "e", "--per-class", "2", "--strength", "0.5"], "only for real-guided"),
    ]
    (tmp_path / "f.txt").write_text("x")
    for extra, message in cases:
        code, _, err = run_cli(*base, *extra)
        assert code == 2, (extra, err)
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_resume_with_other_config_is_refused_and_touches_nothing(tmp_path, run_cli):
    out = tmp_path / "store"
    args = ["generate", "--out", out, "--classes", "Coat,Bag", "--per-class", "4", "--filter", "none", *TINY]
    assert run_cli(*args)[0] == 0
    before = tree_digest(out)
    code, _, err = run_cli(*args[:-1], "3")  # shard size 3 instead of 4
    assert code == 2 and "different config (changed: shard_size)" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(*args, "--guidance", "3")
    assert code == 2 and "changed: guidance" in err
    assert tree_digest(out) == before


def test_real_guided_generation_records_sources(tmp_path, run_cli):
    out = tmp_path / "fewshot"
    code, stdout, err = run_cli("generate", "--out", out, "--dataset", "fashion-mnist", "--shots", "2", "--per-class", "3",
                                "--filter", "none", *TINY)
    assert code == 0, err
    df = pd.read_parquet(out / "manifest.parquet")
    assert len(df) == 30 and (df["strength"] == 0.4).all()  # He et al.'s schedule: 2 shots -> 0.4
    per_class = df.groupby("class_index")["source_id"].apply(list)
    for sources in per_class:
        assert sources[0] == sources[2] != sources[1]  # image j starts from real image j mod k
        assert all(s.startswith("fmnist-train-") for s in sources)


def test_strength_rule():
    from synthclone.distributed.generation import strength_for_shots

    # He et al.'s refer_img_iters 50/40/35/20/15 of 100 steps for 1/2/4/8/16 shots; 3 and 5 shots
    # take the next smaller listed count, more than 16 the last value
    assert [strength_for_shots(k) for k in (1, 2, 3, 4, 5, 8, 16, 64)] == [0.5, 0.4, 0.4, 0.35, 0.35, 0.2, 0.15, 0.15]


def test_clip_filter_quota_moves_rejected_images(tmp_path, run_cli):
    out = tmp_path / "clip"
    code, stdout, err = run_cli("generate", "--out", out, "--classes", "Coat,Sandal,Bag", "--per-class", "5",
                                "--filter", "clip", "--clip-weights", "tiny", "--keep-per-class", "3", *TINY)
    assert code == 0, err
    assert "kept 9 of 15 by filters: clip" in stdout
    df = pd.read_parquet(out / "manifest.parquet")
    assert df["clip_score"].between(0, 1).all()
    assert df.groupby("class_index")["kept"].sum().tolist() == [3, 3, 3]
    for c, rows in df.groupby("class_index"):  # a random quota among the passing (threshold 1/3), else top fill
        kept, dropped = rows[rows["kept"]]["clip_score"], rows[~rows["kept"]]["clip_score"]
        passing = int((rows["clip_score"] > 1 / 3).sum())
        if passing >= 3:
            assert (kept > 1 / 3).all()
        else:
            assert kept.min() >= dropped.max()
    assert all(p.startswith("images/") for p in df[df["kept"]]["path"])
    assert all(p.startswith("rejected/") and (out / p).is_file() for p in df[~df["kept"]]["path"])
    assert sum(1 for _ in (out / "images").rglob("*.png")) == 9
    assert len(load_store(out)) == 9 and len(load_store(out, kept_only=False)) == 15


def test_yaml_config_then_flags(tmp_path, run_cli):
    caps = tmp_path / "caps.tsv"
    caps.write_text("Coat\ta coat on a hanger\nCoat\ta folded coat\nBag\ta leather bag\n")
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(
        "generate:\n  model: tiny\n  prompts: [captions]\n  per_class: 3\n  steps: 2\n  shard_size: 2\n"
        f"  filter: [dedup]\n  filter_options: {{dedup: {{max_distance: 0}}}}\n  prompt_options: {{captions: {caps}}}\n"
    )
    out = tmp_path / "store"
    code, stdout, err = run_cli("generate", "--config", cfg, "--out", out, "--classes", "Coat,Bag", "--per-class", "4")
    assert code == 0, err
    df = pd.read_parquet(out / "manifest.parquet")
    assert len(df) == 8 and df["steps"].eq(2).all() and df["strategy"].eq("captions").all()
    assert df["prompt"].tolist()[:4] == ["a coat on a hanger", "a folded coat"] * 2
    assert "unique prompts" in stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate:\n  per_clas: 3\n")
    code, _, err = run_cli("generate", "--config", bad, "--out", tmp_path / "x")
    assert code == 2 and "unknown config key 'generate.per_clas'" in err


def test_generator_options_reach_the_generator(tmp_path, run_cli):
    """``generate.generator_options`` are passed to the generator: a speed option gives the same
    bytes as the default; an option the generator does not have is a one-line error, exit 2."""
    args = ["generate", "--classes", "Coat,Bag", "--per-class", "2", "--filter", "none", *TINY]
    assert run_cli(*args, "--out", tmp_path / "plain")[0] == 0
    opts = tmp_path / "opts.yaml"
    opts.write_text("generate:\n  generator_options: {micro_batch: 1, cfg: separate}\n")
    code, _, err = run_cli(*args, "--config", opts, "--out", tmp_path / "opts")
    assert code == 0, err
    plain = pd.read_parquet(tmp_path / "plain" / "manifest.parquet")["sha256"].tolist()
    assert pd.read_parquet(tmp_path / "opts" / "manifest.parquet")["sha256"].tolist() == plain
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate:\n  generator_options: {turbo: true}\n")
    code, _, err = run_cli(*args, "--config", bad, "--out", tmp_path / "bad")
    assert code == 2 and "no option(s) ['turbo']" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_generator_cache_treats_no_options_as_empty_options():
    """The generate stages (no options key) and the report (``options: {}``) share one loaded generator."""
    from synthclone.distributed.worker import build_generator

    spec = {"name": "embedded", "weights": "tiny"}
    assert build_generator(spec) is build_generator({**spec, "options": {}})
    assert build_generator(spec) is not build_generator({**spec, "options": {"micro_batch": 1}})
