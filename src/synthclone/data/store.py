"""The synthetic dataset store: ImageFolder images plus ``manifest.parquet``, written in resumable shards.

Layout of a store directory (``layout: folder``, the default)::

    store.json                   what made it: config, its hash, classes, folder names (written first)
    images/<safe_class>/<id>.png images the filters kept (any ImageFolder reader reads this folder)
    rejected/<safe_class>/<id>.png images a filter dropped (kept for inspection, listed in the manifest)
    shards/<shard>.parquet       manifest rows of each finished shard
    manifest.parquet             all rows, one per image, with filter decisions (written last)

With ``layout: tar`` (stores of millions of images: one file per shard instead of one per image)
there is no ``images/`` or ``rejected/`` folder; each finished shard is one WebDataset-style tar
``shards/<shard>.tar`` (members ``<safe_class>/<index>.png`` / ``.cls`` / ``.json``, see
:mod:`synthclone.data.shards`), written atomically *before* its manifest part, and the manifest's
``path`` is ``shards/<shard>.tar#<member>``. ``finalize`` records filter decisions in the manifest
only (``kept``); nothing moves. Columns, ``sha256`` (of the PNG bytes), determinism and resume
guarantees are the same in both layouts.

Guarantees:

* **Deterministic.** Image ``j`` of class ``c`` is generated from its prompt and the seed
  :func:`slot_seed` ``(seed, c, j)``; a generator's image depends on its own prompt and seed only
  (generator contract), so the same config gives byte-identical PNGs (written by PIL with no
  metadata) and manifest rows, whichever process or Ray worker made them.
* **Atomic, sharded, resumable.** A shard is a fixed block of slots ``[start, stop)`` of one class.
  Its PNGs are written to a temp file then renamed; its manifest part is written (atomically) only
  after all its PNGs. A re-run skips shards whose part exists and redoes the rest, overwriting any
  PNG a killed run left (same bytes), so a run killed at any point and started again ends exactly as
  an uninterrupted one: none lost, none twice.
* **Filter decisions at the end.** Filter scores are computed per shard (stored with the rows);
  decisions that need the whole class (CLIP quotas, de-duplication) are taken by :func:`finalize`,
  which moves dropped images to ``rejected/`` and writes ``manifest.parquet``. It is idempotent.
* **Config-checked.** ``store.json`` holds the hash of everything that determines the content; a
  re-run with a different config is refused before anything is touched.

Manifest columns beyond the contract: ``nsfw`` (the generator's safety checker flagged the image;
always False for a generator without one, see the generator's ``config["safety_checker"]``),
``device`` (where the row was made: ``cpu`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``; a store resumed
on another device says so row by row), ``dropped_by`` (empty for a kept image, else the first
reason it was dropped: ``nsfw`` or a filter's name). Flagged images are never kept: the checker
blacks them out, and a black square is not a training image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..errors import UserError
from .images import DEFAULT_CACHE_BYTES, FilePixels, ImageSet, nbytes
from .shards import TAR_SEP, TarPixels, member_key, write_tar

STORE_VERSION = 1
STORE_JSON = "store.json"
MANIFEST = "manifest.parquet"
MANIFEST_SCHEMA = "synthclone.manifest/1"  # the columns of COLUMNS, in Parquet metadata
KEPT_DIR = "images"
REJECTED_DIR = "rejected"
SHARDS_DIR = "shards"
LAYOUTS = ("folder", "tar")  # images/<class>/<id>.png files, or one tar per shard

# Columns of manifest.parquet, in order (contract 4 plus bookkeeping).
COLUMNS = [
    "id", "path", "class_index", "class_name", "index", "shard", "prompt", "strategy", "generator",
    "guidance", "steps", "scheduler", "seed", "source_id", "strength", "clip_score", "phash",
    "dedup_distance", "nsfw", "device", "kept", "dropped_by", "sha256",
]
# columns added after stores were first made: the value an older shard part means by leaving them out
_LATER_COLUMNS = {"nsfw": False, "device": "", "dropped_by": ""}


# ----------------------------------------------------------------------------------------- names

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A folder name for a class name: ASCII letters, digits, ``.``, ``_``, ``-`` only, no leading dot.

    ``"T-shirt/top"`` -> ``"T-shirt_top"``, ``"../etc"`` -> ``"etc"``, ``""`` -> ``"class"``.
    """
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    text = _UNSAFE.sub("_", text).strip("._-")
    return text[:80] or "class"


def safe_class_names(classes: Sequence[str]) -> List[str]:
    """Distinct folder names for ``classes``; collisions (also case-insensitive ones) get ``-<index>``."""
    out: List[str] = []
    taken: set = set()
    for i, name in enumerate(classes):
        base = safe_name(name)
        cand = base
        if cand.lower() in taken:
            cand = f"{base}-{i}"
        n = 2
        while cand.lower() in taken:  # "a-1" may itself be a class name
            cand = f"{base}-{i}-{n}"
            n += 1
        taken.add(cand.lower())
        out.append(cand)
    return out


def slot_seed(seed: int, class_index: int, index: int) -> int:
    """The noise seed of image ``index`` of class ``class_index``: 31 bits of SHA-256, no RNG state."""
    digest = hashlib.sha256(f"synthclone-slot:{int(seed)}:{int(class_index)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def slot_id(safe_class: str, index: int) -> str:
    return f"{safe_class}-{index:06d}"


# ----------------------------------------------------------------------------------------- atomic files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    from ..paths import atomic_write

    atomic_write(path, lambda p: p.write_bytes(data))


def png_bytes(image: torch.Tensor | np.ndarray) -> bytes:
    """PNG of one ``uint8`` image (C, H, W), C in {1, 3}; PIL writes no time stamp or text chunk."""
    from PIL import Image

    array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"png_bytes wants uint8 (C, H, W) with C in (1, 3), got {array.dtype} {array.shape}")
    pil = Image.fromarray(array[0], mode="L") if array.shape[0] == 1 else Image.fromarray(array.transpose(1, 2, 0), mode="RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_table(rows: List[Dict[str, Any]] | "Any", path: Path, columns: Optional[Sequence[str]] = None,
                schema: Optional[str] = None, config_hash: Optional[str] = None) -> None:
    """Write rows (dicts or a DataFrame) to Parquet atomically (temp file + rename), deterministically.

    ``columns`` selects and orders the columns (the manifest passes :data:`COLUMNS`); by default a
    DataFrame keeps its own columns. The file's key-value metadata ``synthclone`` holds
    :func:`~synthclone.config.file_provenance` of ``schema`` and ``config_hash`` (read it back with
    :func:`table_provenance`).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=list(columns) if columns else None)
    if columns is not None:
        df = df[list(columns)]
    df = df.reset_index(drop=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    from ..config import file_provenance

    meta = dict(table.schema.metadata or {})
    meta[b"synthclone"] = json.dumps(file_provenance(schema, config_hash), sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(path, buf.getvalue().to_pybytes())


def _provenance(schema: str, config_hash: Optional[str] = None) -> Dict[str, Any]:
    from ..config import file_provenance

    return file_provenance(schema, config_hash)


def table_provenance(path: Path) -> Dict[str, Any]:
    """The ``synthclone`` metadata of a Parquet file :func:`write_table` wrote ({} for other files)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(b"synthclone")
    return json.loads(raw) if raw else {}


def read_table(path: Path):
    import pandas as pd

    return pd.read_parquet(path)


def clean_temp_files(root: Path) -> int:
    """Delete temp files a killed run left (``.<name>.tmp<pid>``); returns how many."""
    n = 0
    for sub in (KEPT_DIR, REJECTED_DIR, SHARDS_DIR, "."):
        folder = Path(root) / sub
        if not folder.is_dir():
            continue
        pattern = "*/.*.tmp*" if sub in (KEPT_DIR, REJECTED_DIR) else ".*.tmp*"
        for p in folder.glob(pattern):
            p.unlink(missing_ok=True)
            n += 1
    return n


# ----------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Shard:
    """A work unit: slots ``start..stop-1`` of class ``class_index``."""

    class_index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"c{self.class_index:04d}-{self.start:07d}"

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass
class StorePlan:
    """Everything a worker needs to make any shard of a store (picklable, shipped to Ray tasks).

    Attributes:
        root: the store directory.
        classes: class names; ``safe_classes`` their folder names.
        prompts: ``len(classes) * per_class`` texts, prompt of slot ``(c, j)`` at ``c * per_class + j``.
        generator: how to build the generator (:func:`synthclone.distributed.worker.build_generator`):
            ``{"name", "weights", "tiny"}``.
        settings: guidance, steps, scheduler (passed to the generator), batch_size.
        filters: ``[{"name", "options"}]`` in order.
        real: for real-guided generation, ``{"images": uint8 (C*k, ch, H, W), "ids": [...], "k", "strength"}``;
            slot ``(c, j)`` starts from real image ``c * k + j % k``.
        identity: the content-defining config whose hash is checked on resume.
        layout: ``"folder"`` (one PNG per image under ``images/``) or ``"tar"`` (one tar per shard).
    """

    root: str
    classes: List[str]
    safe_classes: List[str]
    prompts: List[str]
    strategy: str
    per_class: int
    seed: int
    shard_size: int
    generator: Dict[str, Any]
    settings: Dict[str, Any]
    filters: List[Dict[str, Any]] = field(default_factory=list)
    real: Optional[Dict[str, Any]] = None
    identity: Dict[str, Any] = field(default_factory=dict)
    layout: str = "folder"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise UserError(f"store layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}; "
                            "set generate.store_layout")

    def shards(self) -> List[Shard]:
        out = []
        for c in range(len(self.classes)):
            for start in range(0, self.per_class, self.shard_size):
                out.append(Shard(c, start, min(start + self.shard_size, self.per_class)))
        return out

    @property
    def total(self) -> int:
        return len(self.classes) * self.per_class

    def config_hash(self) -> str:
        text = json.dumps(self.identity, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def shard_path(self, shard: Shard) -> Path:
        return Path(self.root) / SHARDS_DIR / f"{shard.name}.parquet"

    def tar_path(self, shard: Shard) -> Path:
        """The shard's tar (``layout: tar``)."""
        return Path(self.root) / SHARDS_DIR / f"{shard.name}.tar"

    def is_done(self, shard: Shard) -> bool:
        """A shard is done when its manifest part exists (and, for tar stores, its tar: a part whose
        tar was deleted is made again, the same bytes, rather than left to fail at reading)."""
        if not self.shard_path(shard).is_file():
            return False
        return self.layout != "tar" or self.tar_path(shard).is_file()


def prompts_digest(prompts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in prompts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def check_output(root: str | Path) -> None:
    """Fail early (before any model loads) when ``root`` cannot become a store directory."""
    from ..paths import check_out_dir

    root = check_out_dir(root)
    if root.is_dir() and not (root / STORE_JSON).is_file() and any(root.iterdir()):
        raise UserError(f"output folder {root} is not empty and holds no {STORE_JSON}; choose an empty or new --out")


def open_store(plan: StorePlan) -> int:
    """Create the store (or check an existing one made with the same config); returns finished shards.

    Raises :class:`UserError` — before writing anything — when ``plan.root`` cannot be written, is a
    non-empty folder that is not a store, or is a store made with a different config.
    """
    root = Path(plan.root)
    digest = plan.config_hash()
    meta_path = root / STORE_JSON
    if root.exists() and not root.is_dir():
        raise UserError(f"output {root} is a file, not a folder; choose another --out")
    if meta_path.is_file():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            raise UserError(f"{meta_path} is unreadable; this is not an intact store, choose another --out") from None
        if old.get("layout", "folder") != plan.layout:  # also when a hand-made plan's identity leaves the layout out
            was = old.get("layout", "folder")
            raise UserError(f"store {root} was made with a different config (changed: layout, {was} -> {plan.layout}); "
                            "use a new --out or the original settings")
        if old.get("config_hash") != digest:
            changed = sorted(k for k in set(old.get("identity", {})) | set(plan.identity)
                             if old.get("identity", {}).get(k) != plan.identity.get(k))
            raise UserError(
                f"store {root} was made with a different config (changed: {', '.join(changed[:6]) or 'unknown'}); "
                "use a new --out or the original settings"
            )
    elif root.is_dir() and any(root.iterdir()):
        raise UserError(f"output folder {root} is not empty and holds no {STORE_JSON}; choose an empty or new --out")
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / SHARDS_DIR).mkdir(exist_ok=True)
        if not meta_path.is_file():
            doc = {
                "store_version": STORE_VERSION,
                "config_hash": digest,
                "classes": plan.classes,
                "folders": plan.safe_classes,
                "strategy": plan.strategy,
                "per_class": plan.per_class,
                "layout": plan.layout,
                "identity": plan.identity,
                "provenance": _provenance("synthclone.store/1", digest),
            }
            atomic_write_bytes(meta_path, json.dumps(doc, indent=2, sort_keys=True, default=str).encode())
        probe = root / SHARDS_DIR / f".write-test.tmp{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {root} ({exc.strerror or exc.__class__.__name__}); choose a writable --out") from None
    clean_temp_files(root)
    return sum(plan.is_done(s) for s in plan.shards())


# ----------------------------------------------------------------------------------------- shards


def run_shard(plan: StorePlan, shard: Shard, generator, filters: Sequence[Any] = ()) -> int:
    """Make one shard's images, write them and then its manifest part; returns images made (0 if done).

    ``generator`` follows the generator contract; ``filters`` are built filter objects whose
    ``score`` runs here (per image), their decisions come in :func:`finalize`.
    """
    if plan.is_done(shard):
        return 0
    root = Path(plan.root)
    c = shard.class_index
    safe = plan.safe_classes[c]
    index = list(range(shard.start, shard.stop))
    prompts = [plan.prompts[c * plan.per_class + j] for j in index]
    seeds = [slot_seed(plan.seed, c, j) for j in index]
    init, strength, sources = None, None, [None] * len(index)
    if plan.real is not None:
        k = int(plan.real["k"])
        rows = [c * k + j % k for j in index]
        init = plan.real["images"][rows]
        strength = float(plan.real["strength"])
        sources = [plan.real["ids"][r] for r in rows]
    s = plan.settings
    out = generator(prompts, seeds, guidance=s["guidance"], steps=s["steps"], scheduler=s["scheduler"],
                    init_images=init, strength=strength, batch_size=s.get("batch_size", 256))
    images = out.images
    if images.dtype != torch.uint8 or images.shape[0] != len(index):
        raise RuntimeError(f"generator returned {images.dtype} {tuple(images.shape)} for {len(index)} prompts")
    nsfw = [False] * len(index) if out.nsfw is None else [bool(x) for x in out.nsfw.tolist()]
    where = _where(generator)
    labels = torch.full((len(index),), c, dtype=torch.long)
    scores: Dict[str, np.ndarray] = {}
    for f in filters:
        scores.update(f.score(images, labels, plan.classes))
    rows_out, members = [], []
    tar_rel = f"{SHARDS_DIR}/{shard.name}.tar"
    for i, j in enumerate(index):
        data = png_bytes(images[i])
        ident = slot_id(safe, j)
        if plan.layout == "tar":
            key = member_key(safe, j)
            rel = f"{tar_rel}{TAR_SEP}{key}.png"
            members.append((key, data))
        else:
            rel = f"{KEPT_DIR}/{safe}/{ident}.png"
            atomic_write_bytes(root / rel, data)
        rows_out.append({
            "id": ident, "path": rel, "class_index": c, "class_name": plan.classes[c], "index": j,
            "shard": shard.name, "prompt": prompts[i], "strategy": plan.strategy, "generator": plan.generator["name"],
            "guidance": float(s["guidance"]), "steps": int(s["steps"]), "scheduler": str(s["scheduler"]),
            "seed": seeds[i], "source_id": sources[i], "strength": float("nan") if strength is None else strength,
            "clip_score": float(scores["clip_score"][i]) if "clip_score" in scores else float("nan"),
            "phash": str(scores["phash"][i]) if "phash" in scores else "",
            "dedup_distance": -1, "nsfw": nsfw[i], "device": where, "kept": not nsfw[i],
            "dropped_by": "nsfw" if nsfw[i] else "", "sha256": hashlib.sha256(data).hexdigest(),
        })
    if plan.layout == "tar":  # the whole shard in one tar, renamed into place before its manifest part
        write_tar(plan.tar_path(shard), _tar_members(members, rows_out))
    write_table(rows_out, plan.shard_path(shard), COLUMNS, MANIFEST_SCHEMA, plan.config_hash())
    return len(index)


def _where(generator) -> str:
    """The manifest's ``device``: the generator's device, with the GPU's name on CUDA."""
    from ..device import device_record

    device = getattr(generator, "device", None)
    if device is None:
        return ""
    record = device_record(str(device))
    return f"{record['device']} ({record['gpu']})" if "gpu" in record else record["device"]


# facts a WebDataset reader gets with each image; filter decisions and paths are the manifest's alone
_DECIDED = ("path", "kept", "dedup_distance", "dropped_by")


def _tar_members(members: List[tuple], rows: List[Dict[str, Any]]):
    """``(name, bytes)`` of a shard's tar: per image ``<key>.png``, ``<key>.cls``, ``<key>.json``."""
    for (key, data), row in zip(members, rows):
        facts = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items() if k not in _DECIDED}
        yield f"{key}.png", data
        yield f"{key}.cls", str(row["class_index"]).encode()
        yield f"{key}.json", json.dumps(facts, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def finalize(plan: StorePlan, filters: Sequence[Any] = ()):
    """Merge shard parts, take the filters' decisions, place files, write ``manifest.parquet``.

    Dropped images move to ``rejected/<class>/``, kept ones live in ``images/<class>/``; in a tar
    store nothing moves (``kept`` says it all, ``path`` stays the tar member). Safe to run again
    (after a kill, or on a finished store): it recomputes the same decisions.
    Returns the manifest DataFrame.
    """
    import pandas as pd

    root = Path(plan.root)
    missing = [s.name for s in plan.shards() if not plan.is_done(s)]
    if missing:
        raise RuntimeError(f"finalize: {len(missing)} shards unfinished ({missing[:3]})")
    df = pd.concat([read_table(plan.shard_path(s)) for s in plan.shards()], ignore_index=True)
    df = df.sort_values(["class_index", "index"], kind="stable").reset_index(drop=True)
    for column, value in _LATER_COLUMNS.items():
        if column not in df:
            df[column] = value
    labels = df["class_index"].to_numpy()
    nsfw = df["nsfw"].to_numpy(dtype=bool)
    keep = ~nsfw  # flagged images never reach the filters' quotas
    reason = np.where(nsfw, "nsfw", "").astype(object)
    for f in filters:
        result = f.select(df, labels, len(plan.classes), candidates=keep)
        reason[keep & ~result.keep] = f.name
        keep &= result.keep
        for column, values in (result.columns or {}).items():
            df[column] = values
    df["kept"] = keep
    df["dropped_by"] = reason
    if plan.layout == "tar":
        for s in plan.shards():
            if not plan.tar_path(s).is_file():
                raise UserError(f"store {root} lost {SHARDS_DIR}/{s.name}.tar; "
                                f"delete {SHARDS_DIR}/{s.name}.parquet and run generate again")
        write_table(df, root / MANIFEST, COLUMNS, MANIFEST_SCHEMA, plan.config_hash())
        return df
    paths = []
    for row, kept in zip(df.itertuples(index=False), keep):
        folder = KEPT_DIR if kept else REJECTED_DIR
        rel = f"{folder}/{plan.safe_classes[row.class_index]}/{row.id}.png"
        other = f"{REJECTED_DIR if kept else KEPT_DIR}/{plan.safe_classes[row.class_index]}/{row.id}.png"
        target, source = root / rel, root / other
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        if not target.is_file():
            raise UserError(f"store {root} lost image {rel}; delete shards/{row.shard}.parquet and run generate again")
        paths.append(rel)
    df["path"] = paths
    write_table(df, root / MANIFEST, COLUMNS, MANIFEST_SCHEMA, plan.config_hash())
    return df


# ----------------------------------------------------------------------------------------- reading


def read_store_meta(path: str | Path) -> Dict[str, Any]:
    meta = Path(path) / STORE_JSON
    if not meta.is_file():
        raise UserError(f"{path} is not a synthetic store (no {STORE_JSON}); make one with synthclone generate")
    return json.loads(meta.read_text())


def load_store(path: str | Path, kept_only: bool = True, size: Optional[int] = None, channels: Optional[int] = None,
               workers: Optional[int] = None, skip_unreadable: bool = False,
               cache_bytes: int = DEFAULT_CACHE_BYTES) -> ImageSet:
    """A finished store as a file-backed :class:`ImageSet` (decoded into memory when small).

    Pixels come from :class:`~synthclone.data.images.FilePixels` (``layout: folder``) or
    :class:`~synthclone.data.shards.TarPixels` (``layout: tar``); everything else is the same.

    Labels are class indices, ids manifest ids, ``meta["prompts"]`` the prompts aligned with the
    samples, ``meta["manifest"]`` the manifest rows of those samples, ``meta["store"]`` the path.
    ``kept_only`` drops the images the filters rejected. ``size`` / ``channels`` bring the images
    to that shape (default: the store's own, read from its first image).
    """
    root = Path(path)
    meta = read_store_meta(root)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise UserError(f"store {root} is unfinished (no {MANIFEST}); run the same synthclone generate command again to finish it")
    df = read_table(manifest)
    if kept_only:
        df = df[df["kept"]].reset_index(drop=True)
    if not len(df):
        raise UserError(f"store {root} has no {'kept ' if kept_only else ''}images; generate more or relax the filters")
    paths = df["path"].tolist()
    layout = meta.get("layout", "folder")
    if layout not in LAYOUTS:
        raise UserError(f"store {root} has layout {layout!r}, which this synthclone cannot read "
                        f"(known: {', '.join(LAYOUTS)}); upgrade synthclone")
    # a tar store's index is read once here (the source holds offsets, not open files)
    source = TarPixels if layout == "tar" else FilePixels
    pixels = source(root, paths, 1, 1, skip_unreadable=skip_unreadable)
    own_channels, own_size = pixels.native_shape(0)
    pixels = pixels.with_shape(channels or own_channels, size or own_size)
    labels = torch.tensor(df["class_index"].to_numpy(), dtype=torch.long)
    data = ImageSet(
        pixels, labels, list(meta["classes"]), df["id"].tolist(), name=f"synthetic:{root.name}",
        meta={"prompts": df["prompt"].tolist(), "manifest": df, "store": str(root), "strategy": meta.get("strategy")},
        workers=workers,
    )
    if nbytes(len(data), data.shape) <= cache_bytes:
        data = data.cached()
    return data


__all__ = [
    "COLUMNS", "LAYOUTS", "Shard", "StorePlan", "check_output", "finalize", "load_store", "open_store", "png_bytes",
    "prompts_digest", "run_shard", "safe_class_names", "safe_name", "slot_seed", "write_table",
]
