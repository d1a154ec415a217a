"""The published reference result (docs/results/reference) follows from its own rows, with this code.

``synthclone report runs/reference --publish docs/results/reference`` wrote the folder from a finished run
of configs/reference.yaml; here the findings are recomputed from the published rows, tags, compare.json and
config alone and must equal the published findings.json, and the claims tables in the folder's README and
the project README must be the ones those findings give. A change to the findings code that moves a
published number fails here until the result is republished.
"""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "docs" / "results" / "reference"


@pytest.fixture(scope="module")
def rebuilt():
    from synthclone.report.publish import rebuild_findings

    return rebuild_findings(FOLDER)


def test_the_folder_is_complete_and_small():
    from synthclone.report.publish import SIZE_LIMIT_MB, folder_mb

    for name in ("README.md", "paper.yaml", "report.md", "findings.json", "summary.json", "config.yaml", "stages.json",
                 "run.json", "rows.parquet", "tags.json", "compare.json", "provenance.json"):
        assert (FOLDER / name).is_file(), name
    assert list((FOLDER / "figures").glob("*.png"))
    assert folder_mb(FOLDER) <= SIZE_LIMIT_MB
    run = json.loads((FOLDER / "run.json").read_text())
    assert run["wall_s_total"] and run["peak_rss_mib"] and run["stages"] == len(json.loads((FOLDER / "stages.json").read_text()))
    prov = yaml.safe_load((FOLDER / "config.yaml").read_text())["_provenance"]
    assert prov["git_sha"] and prov["synthclone_version"]


def test_published_findings_follow_from_the_published_rows(rebuilt):
    published = json.loads((FOLDER / "findings.json").read_text())
    assert [r["claim"] for r in rebuilt] == [r["claim"] for r in published]
    for new, old in zip(rebuilt, published):
        assert new == old, new["claim"]


def test_every_tested_finding_has_an_interval_over_three_seeds():
    published = json.loads((FOLDER / "findings.json").read_text())
    tested = [r for r in published if r["estimate"] and r["estimate"].get("estimate") is not None]
    assert len(tested) >= 10
    for r in tested:
        assert r["n_seeds"] == 3, r["claim"]
        assert r["estimate"]["low"] <= r["estimate"]["estimate"] <= r["estimate"]["high"], r["claim"]


def test_the_readmes_show_the_published_claims_table():
    from synthclone.report.publish import claims_block, claims_table

    table = claims_table(FOLDER)
    assert claims_block((FOLDER / "README.md").read_text()) == table
    root = (ROOT / "README.md").read_text()
    assert claims_block(root) == table and "docs/results/reference" in root
