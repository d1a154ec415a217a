"""The embedded world's generators measured (issue 18 item 4 and "Measured"): per generator, the
generator metrics on 1,000 images per class against the real test split, the CAS, and the time per metric.

    python benchmarks/bench_embedded_generators.py --out runs/bench-gens             # 1,000 images per class
    python benchmarks/bench_embedded_generators.py --out runs/bench-gens --card      # ... and write the card lines
    python benchmarks/bench_embedded_generators.py --out /tmp/g --per-class 50 --quick

Each generator makes a store of the 'template' prompts with ``synthclone generate`` (no filter; a store
that exists is resumed), one ResNet-8 is trained 3 epochs on the real ``train`` split for the CAS, and
``synthclone compare`` scores every store on the small CLIP's features (k = 5). The generators are the
shipped model at guidance 1, 2 (its default) and 5 and with 3 sampler steps, and every shipped snapshot
(``weights: shipped:<name>``). ``--card`` writes the table into
``synthclone/weights/snapshots/metrics.json`` and the generator card's section between its markers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table  # noqa: E402
from synthclone.generators.evaluate import SNAPSHOT_COLUMNS  # noqa: E402

# (name, generate flags, training record): the shipped model at three guidance scales and with a 3-step sampler
SHIPPED = [("shipped g2 (default)", [], {}), ("shipped g1", ["--guidance", "1"], {}),
           ("shipped g5", ["--guidance", "5"], {}), ("shipped 3 steps", ["--steps", "3"], {})]
COLUMNS = SNAPSHOT_COLUMNS


def _cli(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "synthclone", "-q", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def generators() -> list:
    from synthclone.generators.embedded import SNAPSHOT_DIR, shipped_snapshots

    out = list(SHIPPED)
    for name in shipped_snapshots():
        meta = json.loads((SNAPSHOT_DIR / f"{name}.json").read_text()).get("training", {})
        out.append((f"snapshot {name}", ["--generator-weights", f"shipped:{name}"], meta))
    return out


def _store_dir(out: Path, name: str) -> Path:
    return out / "stores" / name.replace(" ", "-").replace("(", "").replace(")", "")


def write_card(doc: dict) -> Path:
    """``doc`` into ``weights/snapshots/metrics.json`` and the generator card's section (replaced in place)."""
    from synthclone.generators.embedded import SNAPSHOT_DIR
    from synthclone.generators.evaluate import with_snapshot_section
    from synthclone.paths import WEIGHTS_DIR, atomic_write_text

    atomic_write_text(SNAPSHOT_DIR / "metrics.json", json.dumps(doc, indent=2))
    card = WEIGHTS_DIR / "GENERATOR_CARD.md"
    atomic_write_text(card, with_snapshot_section(card.read_text(), doc))
    return card


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for the stores, the CAS classifier and compare.json")
    ap.add_argument("--per-class", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="a 1-epoch CAS classifier on 2,000 images (smoke run)")
    ap.add_argument("--card", action="store_true", help="write the card section and snapshots/metrics.json")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gens = generators()
    timing = {}
    for name, flags, _ in gens:
        timing[name] = _cli("generate", "--prompts", "template", "--per-class", str(args.per_class), "--filter", "none",
                            *flags, "--out", str(_store_dir(out, name)))
        print(f"{name}: {timing[name]:.0f} s", flush=True)
    cas_dir = out / ("cas-resnet8-quick" if args.quick else "cas-resnet8")
    if not (cas_dir / "test_eval.json").is_file():  # a killed training resumes from its folder
        _cli("train", "--data", "real" + (":k=20" if args.quick else ""), "--model", "resnet8", "--epochs",
             "1" if args.quick else "3", "--test", "--out", str(cas_dir))
    stores = [str(_store_dir(out, name)) for name, _, _ in gens]
    _cli("compare", *stores, "--per-class", str(args.per_class), "--cas-model", str(cas_dir), "--out", str(out / "compare"))
    compare = json.loads((out / "compare" / "compare.json").read_text())
    test_acc = json.loads((cas_dir / "test_eval.json").read_text())["test_accuracy"]
    rows, records = [], []
    for (name, flags, training), path in zip(gens, stores):
        r = compare["stores"][path]
        rows.append([name] + [round(r["overall"][c], 4) for c in COLUMNS] + [round(timing[name], 1)])
        records.append({"name": name, "flags": flags, "training": training, "metrics": r["overall"],
                        "seconds": r["seconds"], "generation_seconds": round(timing[name], 1)})
    per_metric = {k: round(float(sum(r["seconds"].get(k, 0) for r in records) / len(records)), 3)
                  for k in ("prdc", "fd", "diversity", "cas")}
    doc = {"per_class": args.per_class, "k": compare["k"], "features": compare["features"], "machine": machine_line(),
           "command": "python benchmarks/bench_embedded_generators.py " + " ".join(argv or sys.argv[1:]),
           "cas_model_test_accuracy": test_acc, "generators": records, "seconds_per_metric": per_metric,
           "generation_seconds_median": sorted(timing.values())[len(timing) // 2]}
    (out / "generators.json").write_text(json.dumps(doc, indent=2))
    print(machine_line())
    print(markdown_table([dict(zip(["generator"] + COLUMNS + ["generate s"], r)) for r in rows]))
    print("seconds per metric (mean over stores):", per_metric)
    if args.card:
        print(f"wrote {write_card(doc)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
