"""The study as a chain of cached stages.

A stage's folder is ``RUN_DIR/<stage>-<hash>``, the hash taken over the stage's config and the
hashes of the stages it reads; ``done.json`` in it marks it finished, so a second run skips it and
a killed run redoes only unfinished stages.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .progress import say


def stable_hash(obj: Any) -> str:
    """12 hex digits of the SHA-256 of ``obj`` as canonical JSON."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


@dataclass
class Stage:
    """One cached step of the study."""

    name: str
    fn: Callable[[Path, Dict[str, Any]], Dict[str, Any]]
    config: Dict[str, Any]
    inputs: List[str]

    def folder(self, run_dir: Path, hashes: Dict[str, str]) -> Path:
        key = stable_hash({"config": self.config, "inputs": {i: hashes[i] for i in self.inputs}})
        return run_dir / f"{self.name}-{key}"


def run_stages(stages: List[Stage], run_dir: Path) -> Dict[str, Dict[str, Any]]:
    """Run each stage unless its folder already says done; returns every stage's outputs."""
    hashes: Dict[str, str] = {}
    outputs: Dict[str, Dict[str, Any]] = {}
    for stage in stages:
        folder = stage.folder(run_dir, hashes)
        hashes[stage.name] = folder.name
        marker = folder / "done.json"
        if marker.is_file():
            outputs[stage.name] = json.loads(marker.read_text())["outputs"]
            say(f"[{stage.name}] cached in {folder}")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        say(f"[{stage.name}] running -> {folder}")
        start = time.time()
        result = stage.fn(folder, {i: outputs[i] for i in stage.inputs})
        write_json(marker, {"stage": stage.name, "seconds": round(time.time() - start, 2), "outputs": result})
        outputs[stage.name] = result
    return outputs


def _data_stage(cfg) -> Callable:
    def fn(folder: Path, _inputs: Dict[str, Any]) -> Dict[str, Any]:
        from .data import load_dataset

        summary = {}
        splits = ["generator", "train", "val", "test"] if cfg.data.dataset == "fashion-mnist" else ["test"]
        for split in splits:
            data = load_dataset(cfg.data.dataset, split=split)
            counts = [int((data.labels == c).sum()) for c in range(data.num_classes)]
            summary[split] = {"images": len(data), "shape": list(data.shape), "per_class": counts}
        summary["classes"] = data.classes
        for name in cfg.data.ood:
            ood = load_dataset(name, split="test")
            summary[f"ood:{name}"] = {"images": len(ood), "shape": list(ood.shape)}
        write_json(folder / "summary.json", summary)
        return {"summary": str(folder / "summary.json")}

    return fn


# stages that later issues add, in order, with the issue that brings them
PENDING = [("generate", 4), ("train", 5), ("bench", 6), ("report", 7)]


def build_stages(cfg) -> List[Stage]:
    return [Stage("data", _data_stage(cfg), cfg.data.model_dump(), [])]


def plan(cfg) -> List[str]:
    lines = [f"study {cfg.name!r}:"]
    for stage in build_stages(cfg):
        lines.append(f"  {stage.name:<10} {json.dumps(stage.config, default=str)}")
    for name, issue in PENDING:
        lines.append(f"  {name:<10} not available yet (issue #{issue})")
    return lines


def run_study(cfg, run_dir: Path) -> int:
    outputs = run_stages(build_stages(cfg), Path(run_dir))
    summary = json.loads(Path(outputs["data"]["summary"]).read_text())
    print(f"data: {cfg.data.dataset}: " + ", ".join(
        f"{k} {v['images']:,}" for k, v in summary.items() if isinstance(v, dict)))
    missing = ", ".join(f"{n} (#{i})" for n, i in PENDING)
    print(f"stages not available yet: {missing}")
    print(f"run directory: {run_dir}")
    return 0
