"""The whole study end to end at toy size: tiny random generator (real code), real data, every stage."""

import json

import pandas as pd
import pytest
import yaml

TINY = {
    "name": "tiny",
    "data": {"dataset": "fashion-mnist", "train_limit": 300, "val_limit": 200},
    "generate": {"model": "tiny", "filter": [], "prompts": ["template", "classname"], "per_class": 4, "steps": 2},
    "train": {"epochs": 1, "batch_size": 64},
    "study": {"arms": ["real", "synthetic", "mixed", "few-shot-real", "few-shot-guided", "pretrain-finetune"],
              "few_shot_k": 2, "few_shot_epochs": 1},
    "bench": {"limit": 48, "severities": [1], "epsilons": [0.00784313725490196],
              "options": {"pgd_steps": 2, "attacks": ["fgsm", "pgd_linf"], "corruptions": ["gaussian_noise", "contrast"],
                          "ood_sets": ["digits", "uniform_noise"], "ood_limit": 48, "shape_limit": 48,
                          "background_limit": 48, "corruption_limit": 48, "adversarial_limit": 48, "mahalanobis": False}},
    "report": {"guidance_grid": [1.0, 3.0]},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from synthclone.cli import main

    root = tmp_path_factory.mktemp("study")
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    run_dir = root / "run"
    assert main(["-q", "run", str(cfg), "--out", str(run_dir)]) == 0
    return cfg, run_dir


def test_study_writes_report_from_rows(tiny_run):
    _, run_dir = tiny_run
    report = run_dir / "report"
    page = (report / "index.html").read_text()
    assert "Findings" in page and "<table>" in page and "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    md = (report / "report.md").read_text()
    assert "| model | arm |" in md
    rows = pd.read_parquet(report / "rows.parquet")
    models = set(rows["model"])
    assert {"real/s0", "synthetic:template/s0", "synthetic:classname/s0", "mixed:template/s0",
            "few-shot-real/s0", "few-shot-guided/s0", "pretrain-finetune:template/s0"} <= models
    assert {"clean", "calibration", "corruptions", "adversarial", "shape-bias", "background", "ood"} <= set(rows["probe"])
    summary = json.loads((report / "summary.json").read_text())
    # the report's numbers are the rows' numbers
    real = rows[(rows["model"] == "real/s0") & (rows["probe"] == "clean") & (rows["condition"] == "clean")]
    assert summary["real/s0"]["clean_acc"] == pytest.approx(real["correct"].mean())
    findings = {f["claim"]: f for f in json.loads((report / "findings.json").read_text())}
    assert findings["clean-gap"]["verdict"] in ("supported", "contradicted", "inconclusive")
    assert findings["clean-gap"]["a"] == ["real/s0"]
    assert findings["classifier-tuning"]["verdict"] == "not run"  # arm not in this study
    assert (report / "figures" / "guidance-3.png").is_file()
    assert (run_dir / "config.yaml").is_file()
    from synthclone.data.store import table_provenance

    made = json.loads((report / "provenance.json").read_text())
    assert made["schema"] == "synthclone.report/1" and table_provenance(report / "rows.parquet")["config_hash"] == \
        made["config_hash"]
    stores = list(run_dir.glob("generate-*/store"))
    assert stores
    for store in stores:  # a store's manifest carries the store's config hash
        assert table_provenance(store / "manifest.parquet")["config_hash"] == \
            json.loads((store / "store.json").read_text())["config_hash"]


def test_second_run_reuses_every_stage(tiny_run):
    from synthclone.cli import main

    cfg, run_dir = tiny_run
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*.parquet")}
    assert main(["-q", "run", str(cfg), "--out", str(run_dir)]) == 0
    stages = json.loads((run_dir / "stages.json").read_text())
    assert stages and all(s["cached"] for s in stages)
    # the first run's wall time and peak memory per stage are kept through the cached rerun, with
    # what the peak covers on this machine (CI's kernel keeps the old peak: "run so far")
    from synthclone.pipeline import reset_peak_memory

    assert all(s["seconds"] >= 0 and s["peak_mib"] > 50 and s["peak_of"] == reset_peak_memory() for s in stages)
    after = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*.parquet")}
    assert before == after  # nothing rewritten
    log = (run_dir / "run.log").read_text().splitlines()  # both runs, though -q kept stderr quiet
    assert sum("synthclone_version" in line for line in log) == 2
    assert any(line.endswith("report: cached") and line[:4].isdigit() for line in log)  # with the time
    assert any("DEBUG" in line and "stage report: folder report-" in line for line in log)


def test_changed_setting_reruns_only_what_depends_on_it(tiny_run, tmp_path):
    from synthclone.cli import main

    cfg, run_dir = tiny_run
    tree = yaml.safe_load(cfg.read_text())
    tree["bench"]["options"]["pgd_steps"] = 3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(tree))
    assert main(["-q", "run", str(changed), "--out", str(run_dir)]) == 0
    stages = {s["stage"]: s["cached"] for s in json.loads((run_dir / "stages.json").read_text())}
    assert all(v for k, v in stages.items() if k.startswith(("generate-", "train-", "data")))
    assert not any(v for k, v in stages.items() if k.startswith("bench-") or k == "report")


def test_report_command_rebuilds(tiny_run, tmp_path, run_cli):
    _, run_dir = tiny_run
    code, out, err = run_cli("report", str(run_dir), "--out", str(tmp_path / "again"))
    assert code == 0, err
    assert (tmp_path / "again" / "index.html").is_file()
    code, out, err = run_cli("report", str(run_dir), "--out", str(tmp_path / "md"), "--set", "report.formats=[md]")
    assert code == 0, err
    written = {p.name for p in (tmp_path / "md").iterdir()}
    assert "report.md" in written and "index.html" not in written  # report.formats is honoured
    code, _, err = run_cli("report", str(tmp_path))
    assert code == 2 and "not a run directory" in err


def test_a_run_directory_moves_and_a_copy_reads_its_own_files(tiny_run, tmp_path, run_cli, monkeypatch):
    """Issue 17 item 2: done.json records paths relative to the run directory, so a run can be moved
    and reported from anywhere, and a copy reads its own rows, not the original's."""
    import shutil

    _, run_dir = tiny_run
    for marker in run_dir.rglob("done.json"):
        text = marker.read_text()
        assert str(run_dir) not in text and str(run_dir.resolve()) not in text, marker
    copy = tmp_path / "copied"
    shutil.copytree(run_dir, copy)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    copy.rename(moved)                                  # the copy moves once more before it is read
    for rows_file in moved.glob("bench-real_s0-*/rows.parquet"):  # every bench of it (other tests rerun some)
        rows = pd.read_parquet(rows_file)
        rows["correct"] = False                         # only the copy's rows say the real model is always wrong
        rows.to_parquet(rows_file)
    monkeypatch.chdir(tmp_path)                          # another working directory
    code, _, err = run_cli("report", "elsewhere/moved", "--out", str(tmp_path / "rep"))
    assert code == 0, err
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["real/s0"]["clean_acc"] == 0.0
    original = json.loads((run_dir / "report" / "summary.json").read_text())
    assert original["real/s0"]["clean_acc"] > 0


def test_few_shot_arms_use_the_real_images_the_guided_store_was_made_from():
    """Issue 16 item 1 (no leak): for every training seed, the few-shot arms' k real images per class
    are the ones real-guided generation drew (with generate.seed), so the guided arm sees no real
    image its baseline does not."""
    from synthclone.config import validate
    from synthclone.data import load_dataset
    from synthclone.data.mixing import load_train_data, parse_spec
    from synthclone.study import _train_data, plan_models

    tree = {**TINY, "train": {**TINY["train"], "seeds": [0, 1, 2]}, "generate": {**TINY["generate"], "seed": 5}}
    cfg = validate(tree)
    generated_from = set(load_dataset("fashion-mnist", split="train").per_class(2, seed=5).ids)  # as generation draws
    arms = {m.name: m for m in plan_models(cfg)}
    for s in (0, 1, 2):
        real = arms[f"few-shot-real/s{s}"]
        ids = set(load_train_data(real.data, dataset="fashion-mnist", seed=s).data.ids)
        assert ids == generated_from, s
        guided = _train_data(cfg, arms[f"few-shot-guided/s{s}"], {"generate-guided": {"store": "STORE"}})
        (term, opts), _ = parse_spec(guided)[0][0], None
        assert term == "real" and opts == {"k": 2, "seed": 5}
        assert arms[f"pretrain-finetune:template/s{s}"].data == real.data


def test_publish_writes_a_folder_whose_rows_rebuild_its_findings(tiny_run, tmp_path, run_cli):
    import subprocess
    from pathlib import Path

    from synthclone.report.publish import SIZE_LIMIT_MB, folder_mb, rebuild_findings

    _, run_dir = tiny_run
    log = tmp_path / "time.log"
    if Path("/usr/bin/time").exists():
        log.write_text(subprocess.run(["/usr/bin/time", "-v", "true"], capture_output=True, text=True).stderr)
    else:  # GNU time's summary format, as its manual gives it
        log.write_text("\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5\n\tMaximum resident set size (kbytes): 2048\n")
    from synthclone.report.findings import GENERATOR_CLAIMS, claims
    from synthclone.report.publish import TABLE_END, TABLE_START, claims_block, claims_table

    dest = tmp_path / "published"
    (dest / "stale").mkdir(parents=True)
    readme = f"# hand-written\n\n{TABLE_START}\nold table\n{TABLE_END}\n\nmore prose\n"
    (dest / "README.md").write_text(readme)
    (tmp_path / "ROOT.md").write_text(readme)
    (dest / "paper.yaml").write_text(yaml.safe_dump({c.key: {"paper": f"{c.key} figure (Table 1)", "why": "because"}
                                                     for c in claims() + GENERATOR_CLAIMS}))
    code, out, err = run_cli("report", str(run_dir), "--publish", str(dest), "--time-log", str(log),
                             "--readme", str(tmp_path / "ROOT.md"))
    assert code == 0, err
    table = claims_table(dest)
    for text in ((dest / "README.md").read_text(), (tmp_path / "ROOT.md").read_text()):
        assert claims_block(text) == table and "old table" not in text and text.endswith("more prose\n")
    assert "clean-gap figure (Table 1)" in table and "because" in table
    names = {p.name for p in dest.iterdir()}
    assert {"report.md", "findings.json", "summary.json", "config.yaml", "stages.json", "run.json", "rows.parquet",
            "tags.json", "figures"} <= names and "stale" not in names and "index.html" not in names
    assert folder_mb(dest) <= SIZE_LIMIT_MB
    run = json.loads((dest / "run.json").read_text())
    assert run["wall_s_total"] is not None and run["peak_rss_mib"] > 0 and run["git_sha"] is not None
    assert 0 < run["rows_published"] <= run["rows_in_run"]
    assert "git_sha" in yaml.safe_load((dest / "config.yaml").read_text())["_provenance"]
    rows = pd.read_parquet(dest / "rows.parquet")
    assert "ood" not in set(rows["probe"].astype(str))  # trimmed to what the findings read

    published = json.loads((dest / "findings.json").read_text())
    assert published and rebuild_findings(dest) == published
    # the check can fail: one model's clean answers turned wrong changes the findings rebuilt from the rows
    model = rows["model"].astype(str).iloc[0]
    rows.loc[(rows["model"].astype(str) == model) & (rows["probe"].astype(str) == "clean"), "correct"] = False
    rows.to_parquet(dest / "rows.parquet")
    assert rebuild_findings(dest) != published

    code, _, err = run_cli("report", str(run_dir), "--time-log", str(log))
    assert code == 2 and "--publish" in err
    # a folder README without the table's markers is refused before anything in the folder is replaced
    (dest / "README.md").write_text("# prose, no markers\n")
    before = sorted(p.name for p in dest.iterdir())
    code, _, err = run_cli("report", str(run_dir), "--publish", str(dest))
    assert code == 2 and "README.md" in err and sorted(p.name for p in dest.iterdir()) == before
    code, _, err = run_cli("report", str(run_dir), "--publish", str(tmp_path / "p3"), "--readme", str(tmp_path / "none.md"))
    assert code == 2 and "--readme" in err and not (tmp_path / "p3").exists()
    for bad in (tmp_path / "missing.log", dest / "report.md"):  # absent; not a time summary
        code, _, err = run_cli("report", str(run_dir), "--publish", str(tmp_path / "p2"), "--time-log", str(bad))
        assert code == 2 and "--time-log" in err and not (tmp_path / "p2").exists()
