"""Publish a finished study into the repository (``synthclone report RUN_DIR --publish DEST``).

A published result is a folder a reader opens without running anything: the Markdown report with its
PNG figures, ``findings.json``, ``summary.json``, the run's resolved config (with the version and git
SHA that ran it), the wall time and peak memory of every stage, and the probe rows the findings are
computed from, trimmed to what :func:`~synthclone.report.findings.evaluate_claims` reads, so that
:func:`rebuild_findings` recomputes ``findings.json`` from the folder alone. No stores, no checkpoints:
the config rebuilds them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from ..errors import UserError

# What the findings read, per probe: the conditions kept (None: all of them).
FINDINGS_ROWS = {"clean": ["clean"], "corruptions": None, "adversarial": ["pgd_paper"],
                 "calibration": ["uncalibrated"], "shape-bias": None, "background": ["mixed_same", "mixed_rand"]}
FINDINGS_COLUMNS = ["model", "probe", "condition", "severity", "sample_id", "prediction", "confidence", "correct", "extra"]
SIZE_LIMIT_MB = 20.0
HAND_WRITTEN = ("README.md", "paper.yaml")  # kept by a new publish: the prose, and the papers' side of the table
TABLE_START, TABLE_END = "<!-- claims table: written by synthclone report --publish -->", "<!-- end of claims table -->"
TRIMMED_SCHEMA = "synthclone.rows/1 (trimmed to the findings' probes and columns)"


def trim_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows the findings read: :data:`FINDINGS_ROWS`' probes and conditions, :data:`FINDINGS_COLUMNS`;
    ``confidence`` is kept for calibration rows only and ``extra`` for shape-bias rows only (elsewhere null)."""
    keep = pd.Series(False, index=rows.index)
    for probe, conditions in FINDINGS_ROWS.items():
        hit = rows["probe"] == probe
        if conditions is not None:
            hit &= rows["condition"].isin(conditions)
        keep |= hit
    out = rows.loc[keep, FINDINGS_COLUMNS].reset_index(drop=True)
    out["confidence"] = out["confidence"].where(out["probe"] == "calibration")
    out["extra"] = out["extra"].where(out["probe"] == "shape-bias")
    for col in ("model", "probe", "condition"):
        out[col] = out[col].astype("category")
    return out


def parse_time_log(text: str) -> Dict[str, Any]:
    """Wall time (s) and peak resident memory (MiB) from the output of GNU ``/usr/bin/time -v``."""
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    status = re.search(r"Exit status: (\d+)", text)
    if not wall or not rss:
        return {}
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return {"wall_s": round(seconds, 1), "peak_rss_mib": round(int(rss.group(1)) / 1024, 1),
            "exit_status": int(status.group(1)) if status else None}


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2 ** 20


def publish(cfg, run_dir: Path, dest: Path, time_logs: Sequence[Path] = (), readmes: Sequence[Path] = ()) -> List[Path]:
    """Write the published result of the finished run ``run_dir`` (config ``cfg``) into ``dest``; the claims
    table between the markers of ``dest/README.md`` and of each of ``readmes`` is rewritten from it."""
    from ..config import config_hash, file_provenance
    from ..data.store import write_table
    from ..paths import atomic_write_text
    from ..study import finished_outputs, plan_models
    from .build import build_report

    run_dir, dest = Path(run_dir), Path(dest)
    models = plan_models(cfg)
    outputs = finished_outputs(cfg, run_dir)
    unfinished = [m.name for m in models if f"bench-{m.name}" not in outputs]
    if unfinished:
        raise UserError(f"{run_dir}: {len(unfinished)} of {len(models)} models are not benchmarked yet (first: "
                        f"{unfinished[0]}); finish the run ('synthclone run' on its config resumes it) before publishing")
    stage_file = run_dir / "stages.json"
    if not stage_file.is_file():
        raise UserError(f"{run_dir} has no stages.json; publish a run that 'synthclone run' finished")
    for readme in readmes:
        if not Path(readme).is_file() or not _has_markers(Path(readme).read_text()):
            raise UserError(f"--readme {readme}: no such file, or it lacks the lines {TABLE_START!r} and "
                            f"{TABLE_END!r} where the claims table goes")
    own = dest / "README.md"
    if (dest / "paper.yaml").is_file() and own.is_file() and not _has_markers(own.read_text()):
        raise UserError(f"{own}: it lacks the lines {TABLE_START!r} and {TABLE_END!r} where the claims table goes; "
                        "add them (the folder is left as it is)")
    runs = []
    for log in time_logs:
        if not Path(log).is_file():
            raise UserError(f"--time-log {log}: no such file; pass the log of '/usr/bin/time -v synthclone run ...'")
        parsed = parse_time_log(Path(log).read_text(errors="replace"))
        if not parsed:
            raise UserError(f"--time-log {log}: no '/usr/bin/time -v' summary in it; pass the log of "
                            "'/usr/bin/time -v synthclone run ...'")
        runs.append({"log": Path(log).name, **parsed})

    # a published folder is replaced whole but for its hand-written files (HAND_WRITTEN): nothing stale survives
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.name not in HAND_WRITTEN:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    written = build_report(cfg, run_dir, outputs, models, dest)

    rows = pd.read_parquet(dest / "rows.parquet")
    trimmed = trim_rows(rows)
    write_table(trimmed, dest / "rows.parquet", config_hash=config_hash(cfg), schema=TRIMMED_SCHEMA)
    tags = [m.tags() for m in models]
    atomic_write_text(dest / "tags.json", json.dumps(tags, indent=1))
    if "compare" in outputs:
        shutil.copyfile(outputs["compare"]["compare"], dest / "compare.json")
    shutil.copyfile(run_dir / "config.yaml", dest / "config.yaml")
    stages = json.loads(stage_file.read_text())
    atomic_write_text(dest / "stages.json", json.dumps(stages, indent=1))
    fresh = [s for s in stages if not s.get("cached")]
    atomic_write_text(dest / "run.json", json.dumps({
        **file_provenance("synthclone.published-run/1", config_hash(cfg)),
        "stages": len(stages), "stages_run": len(fresh),
        "stage_seconds_total": round(sum(s["seconds"] for s in fresh), 1),
        "stage_peak_mib_max": max((s.get("peak_mib") or 0 for s in stages), default=None),
        "processes": runs,
        "wall_s_total": round(sum(r["wall_s"] for r in runs), 1) if runs else None,
        "peak_rss_mib": max((r["peak_rss_mib"] for r in runs), default=None),
        "rows_published": len(trimmed), "rows_in_run": len(rows),
    }, indent=2))
    prov = json.loads((dest / "provenance.json").read_text())
    prov["files"]["rows.parquet"] = TRIMMED_SCHEMA
    atomic_write_text(dest / "provenance.json", json.dumps(prov, indent=2))

    if (dest / "paper.yaml").is_file():
        table = claims_table(dest)
        for readme in ([own] if own.is_file() else []) + [Path(r) for r in readmes]:
            atomic_write_text(readme, with_claims_table(readme.read_text(), table))

    size = folder_mb(dest)
    if size > SIZE_LIMIT_MB:
        raise UserError(f"{dest}: the published folder is {size:.1f} MB, over the {SIZE_LIMIT_MB:g} MB limit; "
                        "lower report settings that add figures, or the run's bench limits")
    return [dest / "README.md" if (dest / "README.md").exists() else dest / "report.md", *written,
            dest / "rows.parquet", dest / "run.json"]


def rebuild_findings(folder: Path, n_boot: Optional[int] = None) -> List[Dict[str, Any]]:
    """``findings.json`` recomputed from a published folder alone: its rows, tags, compare.json and config."""
    import yaml

    from ..config import merge
    from .build import findings_records
    from .findings import evaluate_claims, generators_of

    folder = Path(folder)
    cfg = merge(yaml.safe_load((folder / "config.yaml").read_text()) or {})
    rows = pd.read_parquet(folder / "rows.parquet")
    for col in ("model", "probe", "condition"):
        rows[col] = rows[col].astype(str)
    tags = pd.DataFrame(json.loads((folder / "tags.json").read_text()),
                        columns=["model", "arm", "seed", "strategy", "regime"])
    compare_file = folder / "compare.json"
    compare = json.loads(compare_file.read_text()) if compare_file.is_file() else None
    kwargs = {} if n_boot is None else {"n_boot": n_boot}
    found = evaluate_claims(rows, tags, cfg.report.confidence, ece_bins=cfg.bench.ece_bins,
                            baseline_prompts=cfg.study.baseline_prompts, generators=generators_of(compare), **kwargs)
    return json.loads(json.dumps(findings_records(found), default=str))


def _pct(x: Optional[float], signed: bool = True) -> str:
    return "–" if x is None else (f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}")


def claims_table(folder: Path, records: Optional[List[Dict[str, Any]]] = None) -> str:
    """The Markdown table of a published folder's claims: for each finding of ``findings.json`` (or
    ``records``), the paper's figure and the why from the hand-written ``paper.yaml``, this study's estimate
    (A - B, in points: percentage points of the metric) with its interval, its seeds, its raw verdict and its Holm verdict."""
    import yaml

    folder = Path(folder)
    records = records if records is not None else json.loads((folder / "findings.json").read_text())
    notes = yaml.safe_load((folder / "paper.yaml").read_text()) or {} if (folder / "paper.yaml").is_file() else {}
    missing = [r["claim"] for r in records if r["claim"] not in notes]
    if notes and missing:
        raise UserError(f"{folder / 'paper.yaml'}: no entry for the claims {', '.join(missing)}; add a 'paper' and "
                        "a 'why' for each")
    level = next((r["estimate"]["confidence"] for r in records if r.get("estimate")), 0.95)
    lines = [f"| claim | paper's figure (source) | this study: A − B, points ({level:.0%} CI) | seeds | verdict: "
             "raw / Holm | why |", "|---|---|---|---|---|---|"]
    for r in records:
        note = notes.get(r["claim"], {})
        e = r.get("estimate")
        if e and e.get("estimate") is not None and r["kind"] != "rank-correlation":
            est = f"{_pct(e['estimate'])} [{_pct(e['low'])}, {_pct(e['high'])}]"
        elif e and e.get("estimate") is not None:  # a rank correlation (or a difference of two): no points
            est = f"ρ {e['estimate']:+.2f} [{e['low']:+.2f}, {e['high']:+.2f}]"
        else:
            est = "–"
        cells = [f"**{r['claim']}**: {r['text']}", str(note.get("paper", "–")).strip(), est, str(r.get("n_seeds", "–")),
                 f"{r['verdict']} / {r.get('verdict_holm') or r['verdict']}", str(note.get("why", "–")).strip()]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def _has_markers(text: str) -> bool:
    return TABLE_START in text and TABLE_END in text


def with_claims_table(text: str, table: str) -> str:
    """``text`` with the block between :data:`TABLE_START` and :data:`TABLE_END` replaced by ``table``."""
    if not _has_markers(text):
        raise UserError(f"the README has no claims-table markers; put the lines {TABLE_START!r} and {TABLE_END!r} "
                        "where the table goes")
    head, rest = text.split(TABLE_START, 1)
    return f"{head}{TABLE_START}\n{table}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}"


def claims_block(text: str) -> str:
    """The claims table a README holds between its markers ('' without them)."""
    if not _has_markers(text):
        return ""
    return text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
