"""The study as a chain of cached stages.

A stage's folder is ``RUN_DIR/<stage>-<hash>``, the hash taken over the stage's config and the
hashes of the stages it reads; ``done.json`` in it marks it finished, so a second run skips it and
a killed run redoes only unfinished stages. ``done.json`` records the paths inside the run relative
to the run directory (``$RUN/...``), so a run directory can be moved or copied and reported from
anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List

from .progress import debug, say


def stable_hash(obj: Any) -> str:
    """12 hex digits of the SHA-256 of ``obj`` as canonical JSON."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temp file + rename)."""
    from .paths import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def reset_peak_memory(proc: Path = Path("/proc/self")) -> str:
    """Start a fresh peak-resident-memory reading for this process; returns what the next
    :func:`peak_memory_mib` measures: ``"stage"`` where the kernel resets the peak (Linux's
    ``clear_refs``), else ``"run so far"`` (the process's peak since it started). That the kernel
    both remembers a peak and forgets it on reset is checked once per process, not assumed: CI's
    sandbox accepts the write and reports a peak that does not follow the resident size."""
    try:
        resettable = _RESETTABLE.get(proc)
        if resettable is None:
            resettable = _RESETTABLE[proc] = _reset_takes_effect(*_probe_readings(proc))
        if resettable:
            _clear_peak(proc)
    except (OSError, KeyError):
        return "run so far"
    return "stage" if resettable else "run so far"


_RESETTABLE: Dict[Path, bool] = {}
_PROBE_KIB = 64 * 1024  # the block the probe touches and releases
_RESET_SLACK_KIB = 16 * 1024  # memory other threads may allocate or free between two readings


def _clear_peak(proc: Path) -> None:
    with open(proc / "clear_refs", "w") as f:
        f.write("5")


def _probe_readings(proc: Path) -> tuple:
    """``VmHWM``/``VmRSS`` after a reset, after touching and releasing a fresh block, and after a
    second reset."""
    import mmap

    fields = ("VmHWM", "VmRSS")
    _clear_peak(proc)
    before = _status_kib(proc, fields)
    block = mmap.mmap(-1, _PROBE_KIB * 1024)  # anonymous: fresh pages, whatever malloc holds
    for offset in range(0, len(block), mmap.PAGESIZE):
        block[offset] = 1
    block.close()
    released = _status_kib(proc, fields)
    _clear_peak(proc)
    return before, released, _status_kib(proc, fields)


def _reset_takes_effect(before: Dict[str, int], released: Dict[str, int], reset: Dict[str, int]) -> bool:
    """The peak remembered the released probe block, and the reset forgot it."""
    remembered = released["VmHWM"] - before["VmRSS"] >= _PROBE_KIB - _RESET_SLACK_KIB
    forgotten = reset["VmHWM"] - reset["VmRSS"] <= _RESET_SLACK_KIB
    return remembered and forgotten


def _status_kib(proc: Path, fields: tuple) -> Dict[str, int]:
    """The named ``kB`` fields of ``proc/status``."""
    found = {}
    with open(proc / "status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in fields:
                found[name] = int(value.split()[0])
    return found


def peak_memory_mib(proc: Path = Path("/proc/self")) -> float:
    """Peak resident memory of this process in MiB (``VmHWM``; ``ru_maxrss`` where /proc is missing).
    Worker processes a stage starts are not counted."""
    try:  # Linux's own reading is max(high-water mark, resident): the mark may lag
        status = _status_kib(proc, ("VmHWM", "VmRSS"))
        return round(max(status["VmHWM"], status.get("VmRSS", 0)) / 1024, 1)
    except (OSError, KeyError):
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


RUN_PREFIX = "$RUN/"


def record_paths(obj: Any, run_dir: Path) -> Any:
    """``obj`` (a stage's outputs) with every existing path inside ``run_dir`` written relative to it,
    as ``$RUN/<relative path>``: a run directory can then be moved or copied and read from anywhere,
    and a copy reads its own files, not the original's (:func:`resolve_paths` turns them back).
    Other values, and paths outside the run (shipped weights, the user's data), are kept."""
    root = Path(run_dir).resolve()
    if isinstance(obj, dict):
        return {k: record_paths(v, run_dir) for k, v in obj.items()}
    if isinstance(obj, list):
        return [record_paths(v, run_dir) for v in obj]
    if isinstance(obj, str) and obj and not obj.startswith(RUN_PREFIX) and os.sep in obj:
        try:
            # only what exists is a path: a model name such as real/s0 is not one
            rel = Path(obj).resolve(strict=True).relative_to(root)
        except (ValueError, OSError):
            return obj
        return RUN_PREFIX + rel.as_posix()
    return obj


def resolve_paths(obj: Any, run_dir: Path) -> Any:
    """The inverse of :func:`record_paths`: ``$RUN/<path>`` becomes ``run_dir/<path>``."""
    if isinstance(obj, dict):
        return {k: resolve_paths(v, run_dir) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve_paths(v, run_dir) for v in obj]
    if isinstance(obj, str) and obj.startswith(RUN_PREFIX):
        return str(Path(run_dir) / obj[len(RUN_PREFIX):])
    return obj


def read_done(marker: Path, run_dir: Path) -> Dict[str, Any]:
    """A finished stage's ``done.json`` with its outputs' paths resolved against ``run_dir``."""
    done = json.loads(marker.read_text())
    done["outputs"] = resolve_paths(done.get("outputs", {}), run_dir)
    return done


@dataclass
class Stage:
    """One cached step of the study."""

    name: str
    fn: Callable[[Path, Dict[str, Any]], Dict[str, Any]]
    config: Dict[str, Any]
    inputs: List[str]

    def folder(self, run_dir: Path, hashes: Dict[str, str]) -> Path:
        key = stable_hash({"config": self.config, "inputs": {i: hashes[i] for i in self.inputs}})
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.name)
        return run_dir / f"{safe}-{key}"


def stage_hash(folder: Path) -> str:
    """The hash a stage folder is named by (``RUN_DIR/<stage>-<hash>``): the stage's config and inputs."""
    return Path(folder).name.rsplit("-", 1)[-1]


def _timing(done: Dict[str, Any], folder: Path, cached: bool) -> Dict[str, Any]:
    """A stage's line in ``stages.json``: its wall time and peak memory as its ``done.json`` records them."""
    return {"stage": done["stage"], "folder": folder.name, "seconds": done.get("seconds"),
            "peak_mib": done.get("peak_mib"), "peak_of": done.get("peak_of"), "cached": cached}


def run_stages(stages: List[Stage], run_dir: Path) -> Dict[str, Dict[str, Any]]:
    """Run each stage unless its folder already says done; returns every stage's outputs."""
    hashes: Dict[str, str] = {}
    outputs: Dict[str, Dict[str, Any]] = {}
    timings: List[Dict[str, Any]] = []
    total = len(stages)
    for i, stage in enumerate(stages, 1):
        folder = stage.folder(run_dir, hashes)
        hashes[stage.name] = folder.name
        debug(f"stage {stage.name}: folder {folder.name}, inputs {', '.join(stage.inputs) or 'none'}")
        marker = folder / "done.json"
        if marker.is_file():
            done = read_done(marker, run_dir)
            outputs[stage.name] = done["outputs"]
            timings.append(_timing(done, folder, cached=True))
            write_json(Path(run_dir) / "stages.json", timings)
            say(f"[{i}/{total}] {stage.name}: cached")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        say(f"[{i}/{total}] {stage.name} -> {folder}")
        peak_of = reset_peak_memory()
        start = time.time()
        result = stage.fn(folder, {k: outputs[k] for k in stage.inputs})
        seconds = round(time.time() - start, 2)
        peak = peak_memory_mib()
        recorded = record_paths(result, run_dir)
        done = {"stage": stage.name, "seconds": seconds, "peak_mib": peak, "peak_of": peak_of, "outputs": recorded}
        write_json(marker, done)
        outputs[stage.name] = resolve_paths(recorded, run_dir)
        timings.append(_timing(done, folder, cached=False))
        write_json(Path(run_dir) / "stages.json", timings)  # after each stage: the report stage reads it
        say(f"[{i}/{total}] {stage.name}: done in {seconds:.1f} s")
    return outputs
