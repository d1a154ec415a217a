"""Training data from a spec string: real, synthetic, few-shot and mixtures; a sharded batch sampler.

Spec grammar (terms joined by ``+``, an optional ``@`` share list at the end)::

    real                      the real training split of the configured dataset (``data.dataset``)
    real:k=16                 few-shot: 16 real images per class, chosen with the seed
    runs/x/store              a synthetic store (``synthclone generate``) or any ImageFolder dir
    runs/x/store:n=100        100 images per class of it (seeded), e.g. added to real data
    real+STORE                real and synthetic concatenated, shuffled together
    real+STORE:n=100          real plus 100 synthetic images per class
    real+STORE@0.5            every batch half real, half synthetic (share of the LAST term;
                              or one share per term: @0.75,0.25)
    real:k=16+STORE@0.5       few-shot real mixed half-and-half with synthetic per batch

With per-batch shares an epoch is one pass over the first term; the other terms cycle through
fresh seeded permutations. Without shares an epoch is one pass over everything.

:class:`ShardedBatchSampler` cuts every global batch into disjoint per-rank slices, so with
``torch.distributed`` each sample is seen once per epoch across all ranks (no overlap, nothing
dropped), and the batches depend only on (seed, epoch), not on the number of ranks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch

from ..errors import UserError
from .images import ConcatPixels, ImageSet, conform

_OPTS = re.compile(r"^(?:[a-z_]+=[0-9.]+)(?:,[a-z_]+=[0-9.]+)*$")
_VALID_OPTS = {"k", "n", "limit", "seed"}
# load options that apply to a store or a plain folder term too (not the real dataset's split rules)
STORE_OPTIONS = ("size", "channels", "workers", "skip_unreadable", "cache_bytes")


@dataclass
class TrainData:
    """Labelled training samples from one or more sources.

    Attributes:
        data: all samples concatenated (uint8 (N, C, H, W)).
        source: int64 (N,): index of the part each sample came from.
        parts: names of the parts (``"real"``, ``"real[4-shot]"``, a store path).
        shares: per-batch share of each part, or None (shuffle everything together).
        prompts: the text each sample was generated from (real samples: None).
        spec: the spec string it was built from.
    """

    data: ImageSet
    source: torch.Tensor
    parts: List[str]
    shares: Optional[List[float]] = None
    prompts: List[Optional[str]] = field(default_factory=list)
    spec: str = ""
    group_size: Optional[int] = None  # StableRep's sampler: m images of each prompt drawn into a batch together

    def __len__(self) -> int:
        return len(self.data)

    @property
    def classes(self) -> List[str]:
        return self.data.classes

    def part_indices(self, i: int) -> torch.Tensor:
        return torch.nonzero(self.source == i).flatten()

    def prompt_groups(self) -> torch.Tensor:
        """int64 (N,): samples sharing a prompt share a group id; samples without one get their own."""
        ids, table = [], {}
        for i, p in enumerate(self.prompts or [None] * len(self)):
            key = ("p", p) if p is not None else ("i", i)
            ids.append(table.setdefault(key, len(table)))
        return torch.tensor(ids, dtype=torch.long)

    def summary(self) -> dict:
        return {"spec": self.spec, "images": len(self), "parts": {p: int((self.source == i).sum()) for i, p in enumerate(self.parts)},
                "shares": self.shares, "classes": self.classes, "skipped_unreadable": sorted(set(self.data.skipped))}


def concat(sets: Sequence[ImageSet], name: str = "") -> ImageSet:
    """Samples of several sets with the same label space, in order, without copying file-backed pixels.

    Parts of another shape are first brought to the first part's shape (:func:`~.images.conform`).
    """
    classes = sets[0].classes
    for s in sets[1:]:
        if list(s.classes) != list(classes):
            raise UserError(f"label spaces differ: {s.name} has {s.classes[:4]}..., {sets[0].name} has {classes[:4]}...; "
                            "use data with the same classes")
    c, h, w = sets[0].shape
    sets = [conform(s, c, h) for s in sets]
    labels = torch.cat([s.labels for s in sets])
    ids = [i for s in sets for i in s.ids]
    if all(s.in_memory for s in sets):
        pixels = torch.cat([s.images for s in sets])
    else:
        pixels = ConcatPixels([s.pixels for s in sets])
    workers = next((s.workers for s in sets if s.workers is not None), None)
    return ImageSet(pixels, labels, list(classes), ids, name=name or "+".join(s.name for s in sets), workers=workers)


def per_class_subset(data: ImageSet, n: int, seed: int) -> ImageSet:
    """At most ``n`` samples per class (all of a class that has fewer), chosen with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(data.num_classes):
        members = torch.nonzero(data.labels == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:n]])
    return data.subset(torch.cat(picks), name=f"{data.name}[{n}/class]")


def _load_term(path: str, dataset: str, real_split: str, options: Dict[str, Any]) -> ImageSet:
    if path == "real":
        from . import load_dataset

        if not dataset:
            raise UserError("data spec term 'real' needs a dataset; set data.dataset (or --dataset) to a registered "
                            "name or an ImageFolder path")

        return load_dataset(dataset, split=real_split, **options)
    p = Path(path)
    if not p.exists():
        raise UserError(f"data spec term {path!r} is neither 'real' nor an existing store/ImageFolder directory")
    if (p / "store.json").is_file():
        from .store import load_store

        return load_store(p, **{k: v for k, v in options.items() if k in STORE_OPTIONS})
    from .folder import load_folder

    return load_folder(p / "images" if (p / "images").is_dir() else p,
                       **{k: v for k, v in options.items() if k in STORE_OPTIONS})


def parse_spec(spec: str) -> tuple[List[tuple[str, dict]], Optional[List[float]]]:
    """``"real:k=4+STORE@0.5"`` -> ``([("real", {"k": 4}), ("STORE", {})], [0.5, 0.5])``."""
    spec = spec.strip()
    if not spec:
        raise UserError("empty data spec; use 'real', a store path, or e.g. real+STORE@0.5")
    shares = None
    if "@" in spec:
        spec, raw = spec.rsplit("@", 1)
        try:
            shares = [float(v) for v in raw.split(",")]
        except ValueError:
            raise UserError(f"data spec share list {raw!r} must be numbers, e.g. @0.5 or @0.75,0.25") from None
    terms = []
    for term in spec.split("+"):
        opts = {}
        if ":" in term and _OPTS.match(term.rsplit(":", 1)[1]):
            term, raw = term.rsplit(":", 1)
            for kv in raw.split(","):
                k, v = kv.split("=")
                if k not in _VALID_OPTS:
                    raise UserError(f"data spec option {k!r} is unknown; valid options: {', '.join(sorted(_VALID_OPTS))}")
                opts[k] = int(float(v))
        if not term:
            raise UserError(f"data spec {spec!r} has an empty term; write terms like real or runs/x/store")
        terms.append((term, opts))
    if shares is not None:
        if len(shares) == 1 and len(terms) > 1:
            shares = [(1 - shares[0]) / (len(terms) - 1)] * (len(terms) - 1) + [shares[0]] if len(terms) > 2 else [1 - shares[0], shares[0]]
        if len(shares) != len(terms) or any(s < 0 for s in shares) or abs(sum(shares) - 1) > 1e-6 or shares[0] <= 0:
            raise UserError(f"data spec shares {shares} must be one per term (or one for the last), >= 0, sum to 1, "
                            "and the first term's share must be > 0")
    return terms, shares


def load_train_data(spec: str, dataset: Optional[str], seed: int = 0, real_split: str = "train",
                    options: Optional[Dict[str, Any]] = None) -> TrainData:
    """Build the training samples a spec string describes (see the module docstring).

    Args:
        spec: the data spec (``real``, ``real+STORE@0.5``, ...).
        dataset: the real dataset behind ``real`` (a registered name or an ImageFolder path).
        seed: chooses few-shot and per-class subsets.
        real_split: the split ``real`` means.
        options: ``load_dataset`` options (``size``, ``channels``, ``workers``, ...); every part is
            brought to ``size`` (default: the first part's size) before the parts are joined.
    """
    options = dict(options or {})
    terms, shares = parse_spec(spec)
    sets, names, prompts = [], [], []
    cache: Dict[str, ImageSet] = {}
    for i, (path, opts) in enumerate(terms):
        if path not in cache:
            cache[path] = _load_term(path, dataset, real_split, options)
        data = cache[path]
        s = opts.get("seed", seed)
        name = "real" if path == "real" else path
        if "k" in opts:
            try:
                data = data.per_class(opts["k"], seed=s)
            except ValueError as exc:
                raise UserError(f"data spec {path}:k={opts['k']}: {exc}") from None
            name += f"[{opts['k']}-shot]"
        if "n" in opts:
            data = per_class_subset(data, opts["n"], seed=s + 1)
            name += f"[{opts['n']}/class]"
        if "limit" in opts:
            g = torch.Generator().manual_seed(s + 2)
            idx = torch.randperm(len(data), generator=g)[: opts["limit"]].sort().values
            data = data.subset(idx)
            name += f"[limit={opts['limit']}]"
        sets.append(data)
        names.append(name)
        p = data.meta.get("prompts") if path != "real" else None
        prompts.extend(p if p is not None else [None] * len(data))
    if options.get("size") or options.get("channels"):
        sets = [conform(d, options.get("channels"), options.get("size")) for d in sets]
    all_data = concat(sets, name=spec)
    source = torch.cat([torch.full((len(s),), i, dtype=torch.long) for i, s in enumerate(sets)])
    return TrainData(all_data, source, names, shares, prompts, spec)


def from_sets(sets: Sequence[ImageSet], shares: Optional[Sequence[float]] = None, names: Optional[Sequence[str]] = None) -> TrainData:
    """A :class:`TrainData` from in-memory sets (the first is the anchor of per-batch shares)."""
    names = list(names or [s.name or f"part{i}" for i, s in enumerate(sets)])
    prompts: List[Optional[str]] = []
    for s in sets:
        prompts.extend(s.meta.get("prompts") or [None] * len(s))
    source = torch.cat([torch.full((len(s),), i, dtype=torch.long) for i, s in enumerate(sets)])
    return TrainData(concat(sets), source, names, list(shares) if shares else None, prompts, "+".join(names))


def stable_seed(*parts: int) -> int:
    """A 48-bit seed mixed from integers (FNV-style), the same on every machine and Python version."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h * 0x100000001B3 ^ (p + 0x632BE59BD9B4E019)) & 0xFFFFFFFFFFFF
    return h


class ShardedBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's slice of every global batch of an epoch (lists of sample indices).

    The global batches depend only on (``seed``, epoch): a plain set is one seeded permutation cut
    into batches of ``batch_size``; with per-part ``shares`` every batch takes
    ``round(batch_size * share)`` samples of each part. Rank ``r`` of ``world_size`` gets positions
    ``r, r + world_size, ...`` of each global batch (of each part's chunk, so shares hold per rank):
    slices are disjoint and cover the batch, so with plain data every sample is seen exactly once
    per epoch across ranks. With several ranks, a short last batch that would leave a rank with
    no sample is dropped (every rank must take part in every step). Call :meth:`set_epoch` before
    iterating.
    """

    def __init__(self, data: TrainData, batch_size: int, seed: int = 0, world_size: int = 1, rank: int = 0):
        if batch_size < world_size:
            raise UserError(f"batch size {batch_size} is smaller than the {world_size} processes; raise --batch-size")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.world_size, self.rank = world_size, rank
        self.epoch = 0
        self.counts = None
        if data.shares is not None:
            raw = [batch_size * s for s in data.shares]
            counts = [int(round(r)) for r in raw]
            counts[0] += batch_size - sum(counts)  # rounding slack goes to the anchor part
            self.counts = counts
            self.part_index = [data.part_indices(i) for i in range(len(data.parts))]
            empty = [data.parts[i] for i, c in enumerate(counts) if c > 0 and len(self.part_index[i]) == 0]
            if empty:
                raise UserError(f"data parts {empty} are empty but have a batch share")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self, epoch: Optional[int] = None) -> list:
        """Every global batch of ``epoch``: index tensors, or (with shares) lists of per-part index tensors."""
        batches = self._global_batches(self.epoch if epoch is None else epoch)
        if self.world_size > 1 and batches and min(self._slice_sizes(batches[-1])) == 0:
            batches = batches[:-1]
        return batches

    def _slice_sizes(self, batch) -> List[int]:
        parts = batch if isinstance(batch, list) else [batch]
        return [sum(len(p[r::self.world_size]) for p in parts) for r in range(self.world_size)]

    def _global_batches(self, epoch: int) -> list:
        if self.data.group_size and self.counts is None:
            return self._grouped(epoch)
        if self.counts is None:
            g = torch.Generator().manual_seed(stable_seed(self.seed, epoch))
            perm = torch.randperm(len(self.data), generator=g)
            return list(perm.split(self.batch_size))
        anchor = self.part_index[0]
        steps = -(-len(anchor) // self.counts[0])
        streams = []
        for i, idx in enumerate(self.part_index):
            need = steps * self.counts[i]
            chunks, cycle = [], 0
            while sum(len(c) for c in chunks) < need and len(idx):
                g = torch.Generator().manual_seed(stable_seed(self.seed, epoch, i, cycle))
                chunks.append(idx[torch.randperm(len(idx), generator=g)])
                cycle += 1
            streams.append(torch.cat(chunks)[:need] if chunks else idx[:0])
        streams[0] = streams[0][: len(anchor)]  # one pass over the anchor: its last batch may be short
        # per-part chunks stay apart so every rank gets its share of each part
        return [[streams[i][s * c:(s + 1) * c] for i, c in enumerate(self.counts)] for s in range(steps)]

    def _grouped(self, epoch: int) -> list:
        """StableRep's batches (google-research/syn-rep-learn, ``SupconDataset``): the prompts in a seeded
        random order, each contributing ``group_size`` of its images (drawn at random; all of them when it
        has fewer); a batch holds whole groups of same-prompt positives, as many as fit in ``batch_size``.
        An epoch is one pass over the prompts."""
        m = int(self.data.group_size)
        groups = self.data.prompt_groups()
        order = torch.argsort(groups, stable=True)
        bounds = torch.cumsum(torch.bincount(groups), 0)
        starts = torch.cat([bounds.new_zeros(1), bounds[:-1]])
        g = torch.Generator().manual_seed(stable_seed(self.seed, epoch, 0x47525053))  # salt: "GRPS"
        picks = []
        for k in torch.randperm(len(bounds), generator=g).tolist():
            members = order[starts[k]:bounds[k]]
            picks.append(members[torch.randperm(len(members), generator=g)[:m]])
        batches, current, size = [], [], 0
        for pick in picks:
            if current and size + len(pick) > self.batch_size:
                batches.append(torch.cat(current))
                current, size = [], 0
            current.append(pick)
            size += len(pick)
        if current:
            batches.append(torch.cat(current))
        return batches

    def _rank_slice(self, batch) -> torch.Tensor:
        if isinstance(batch, list):
            return torch.cat([p[self.rank::self.world_size] for p in batch])
        return batch[self.rank::self.world_size]

    def __iter__(self) -> Iterator[List[int]]:
        for batch in self.global_batches():
            yield self._rank_slice(batch).tolist()

    def __len__(self) -> int:
        return len(self.global_batches(0))


__all__ = ["TrainData", "ShardedBatchSampler", "load_train_data", "from_sets", "parse_spec", "concat", "per_class_subset",
           "stable_seed"]
