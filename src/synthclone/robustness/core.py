"""What every probe shares: the row schema, settings, the model adapter and batched prediction.

Probes read pixels in batches: :func:`predict` streams an :class:`ImageSet` (file-backed sets are
decoded in DataLoader workers), and nothing here materialises a whole evaluation set. A probe with a
size cap (``*_limit``) may decode its capped subset into memory (:func:`limited`); without a cap it
streams, and what it builds (corrupted, attacked or composited images) is built batch by batch.

Devices: the model and every computation on pixels run on ``settings.device``
(:func:`~synthclone.robustness.run_probes` moves the model there). Images are read on the CPU and
sent with :func:`to_device` (pinned memory, asynchronous copy, when the device is a GPU); results
(logits, features) come back to the CPU once per call. Random numbers are always drawn on the CPU
from the seeded ``torch.Generator`` and then moved (:func:`rand_on`, :func:`randn_on`,
:func:`randint_on`), so one seed gives the same corruptions, stimuli and attack starts on every
device, up to float rounding of the arithmetic done on them.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import ImageSet, conform
from ..device import is_cuda
from ..errors import UserError

COLUMNS = ["model", "probe", "condition", "severity", "sample_id", "label", "prediction", "confidence",
           "correct", "score", "extra"]
DTYPES = {"model": "string", "probe": "string", "condition": "string", "severity": "int64", "sample_id": "string",
          "label": "int64", "prediction": "int64", "confidence": "float64", "correct": "bool", "score": "float64",
          "extra": "string"}


@dataclass
class BenchSettings:
    """Everything a probe may read. Defaults are the embedded world's (Fashion-MNIST test set).

    Sizes (``*_limit``) cap how many samples a probe uses; ``None`` means all of them. A capped
    subset is decoded into memory once (its size bounds the memory); an uncapped probe streams the
    set batch by batch (``batch_size`` images), so memory does not grow with the set.
    """

    data: Optional[ImageSet] = None           # evaluation set (test split)
    model_name: str = "model"                 # the ``model`` column of every row
    label_groups: Optional[List[List[int]]] = None  # data class -> model class indices (e.g. 1000 -> 16)
    val: Optional[ImageSet] = None            # temperature scaling / Mahalanobis statistics
    train: Optional[ImageSet] = None          # Mahalanobis class means (falls back to ``val``)
    batch_size: int = 256
    seed: int = 0
    limit: Optional[int] = None               # cap on the evaluation set for every probe
    device: str = "cpu"                       # where the model and every probe compute ("cpu", "cuda:N")
    # calibration
    ece_bins: int = 15
    # clean: extra shifted test sets (ImageFolder paths, ImageNet-R/-A/-Sketch/-V2 style)
    extra_sets: List[str] = field(default_factory=list)
    # corruptions
    corruptions: Any = "all"                  # "all" | "imagenet-c" | "extra" | list of names
    severities: List[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    corruption_limit: Optional[int] = 2000
    corruption_folder: Optional[str] = None   # precomputed <root>/<corruption>/<severity>/<class>/<img>
    # adversarial
    epsilons: List[float] = field(default_factory=lambda: [1 / 255, 2 / 255, 4 / 255, 8 / 255])
    l2_epsilons: List[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    attacks: List[str] = field(default_factory=lambda: ["fgsm", "pgd_linf", "pgd_l2"])
    pgd_steps: int = 10
    pgd_step_ratio: float = 2.5               # step size = ratio * eps / steps (Madry et al.)
    pgd_restarts: int = 1
    pgd_random_start: bool = True
    adversarial_limit: Optional[int] = 500
    autoattack: bool = False
    paper_attack: bool = True                 # also attack at Singh et al.'s setting (adversarial.PAPER_PGD): condition pgd_paper
    # shape bias
    cue_conflict_folder: Optional[str] = None
    shape_limit: Optional[int] = 2000
    # background
    imagenet9_root: Optional[str] = None
    background_limit: Optional[int] = 2000
    # OOD
    ood_sets: List[str] = field(default_factory=lambda: ["digits", "textures", "uniform_noise", "gaussian_noise"])
    ood_folders: List[str] = field(default_factory=list)
    ood_limit: Optional[int] = 2000
    mahalanobis: bool = True
    # context (FOCUS-style folder)
    focus_folder: Optional[str] = None

    def generator(self, *salt: Any) -> torch.Generator:
        """A CPU generator seeded from ``seed`` and ``salt`` (so every cell is reproducible on its own)."""
        import hashlib

        digest = hashlib.sha256(json.dumps([self.seed, *salt], default=str).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))

    def evaluation_set(self, limit: Optional[int] = None) -> ImageSet:
        """``data`` cut to ``min(limit, self.limit)`` samples (a seeded random subset, kept in index order)."""
        if self.data is None:
            raise UserError("no evaluation data given; pass --data fashion-mnist or an ImageFolder path")
        return take(self.data, _min(limit, self.limit), self.generator("subset", self.data.name))


# BenchSettings fields a user sets (config bench.options, bench --option); the rest are the run's own
NOT_OPTIONS = ("data", "val", "train", "model_name", "label_groups", "device")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (parsed YAML/JSON) has the type ``hint`` of a BenchSettings field."""
    import typing

    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin in (list, List):
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value) if args else isinstance(value, list)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def check_bench_options(options: Dict[str, Any], where: str = "bench.options") -> None:
    """Refuse unknown keys and values of the wrong type in user-set :class:`BenchSettings` fields (one
    line naming the key and the valid ones), so a typo or ``pgd_steps: abc`` fails before anything runs."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(BenchSettings)
    valid = sorted(f.name for f in dataclasses.fields(BenchSettings) if f.name not in NOT_OPTIONS)
    for key, value in options.items():
        if key not in valid:
            raise UserError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        if not _fits(value, hints[key]):
            raise UserError(f"{where}.{key} = {value!r} is not of type {_type_name(hints[key])}; fix the value")
    for key in ("severities",):
        bad = [v for v in options.get(key, []) if not 1 <= v <= 5] if isinstance(options.get(key), list) else []
        if bad:
            raise UserError(f"{where}.{key}: severities are 1 to 5, not {bad}")


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _min(a: Optional[int], b: Optional[int]) -> Optional[int]:
    vals = [v for v in (a, b) if v is not None]
    return min(vals) if vals else None


def take(data: ImageSet, n: Optional[int], g: torch.Generator) -> ImageSet:
    """A random subset of ``n`` samples (all of ``data`` when ``n`` is None or larger), in index order.

    File-backed sets stay file-backed (the subset is a view)."""
    if n is None or n >= len(data):
        return data
    idx = torch.randperm(len(data), generator=g)[:n].sort().values
    return data.subset(idx)


def limited(data: ImageSet, limit: Optional[int], g: torch.Generator) -> ImageSet:
    """What a probe with a size cap works on: :func:`take` of ``limit`` samples, decoded into memory.

    The cap bounds the memory, and the probe then reads the same pixels once per condition without
    decoding them again. Without a cap (None) the set is returned as it is, to be streamed.
    Unreadable files that the set skips are left out of the decoded subset.
    """
    subset = take(data, limit, g)
    return subset if limit is None else subset.cached()


def folder_ids(folder) -> List[str]:
    """The sample ids an ImageFolder's set gets (``<class>/<file>`` relative paths, sorted), listed
    without decoding anything."""
    from ..data.folder import list_images

    root = Path(folder)
    return [p.relative_to(root).as_posix() for found in list_images(root)[1] for p in found]


def paired_ids(variants: Iterable[Tuple[str, Sequence[str]]], limit: Optional[int], g: torch.Generator,
               what: str) -> List[str]:
    """The sample ids that every variant of a probe is scored on: one subset, so the variants are paired.

    ``variants`` yields ``(variant name, its sample ids)``; images are matched across variants by
    id (the relative path ``<class>/<file>``, as ImageNet-9 and ImageNet-C name them). Every
    variant must hold the same ids: a variant lacking one that another has is a :class:`UserError`
    naming the variant and the file (dropping it would score the variants on sets that differ by a file nobody saw
    go). ``limit`` ids (all when None or larger) are drawn once with ``g``, in sorted order.
    """
    first, ref = None, set()
    for name, ids in variants:
        have = set(ids)
        if first is None:
            first, ref = name, have
            continue
        for lacking, gone in ((name, ref - have), (first, have - ref)):
            if gone:
                raise UserError(f"{what} {lacking} lacks {min(gone)} ({len(gone)} images that another {what} has); "
                                f"every {what} must hold the same <class>/<file> names so that all are scored on the "
                                "same images: restore the files, or delete them from the others")
    ref = sorted(ref)
    if limit is None or limit >= len(ref):
        return ref
    return [ref[i] for i in torch.randperm(len(ref), generator=g)[:limit].sort().values.tolist()]


def select(data: ImageSet, ids: Sequence[str]) -> ImageSet:
    """The samples of ``data`` whose sample ids are ``ids``, in index order (a view: file-backed sets
    stay file-backed; ``data`` itself when that is all of it). Every id must be in ``data`` (see
    :func:`paired_ids`)."""
    if len(ids) == len(data) and set(ids) == set(data.ids):
        return data
    pos = {s: i for i, s in enumerate(data.ids)}
    return data.subset(torch.tensor(sorted(pos[s] for s in ids), dtype=torch.long))


def blocks(n: int, limit: Optional[int], batch_size: int) -> List[range]:
    """How a probe builds ``n`` random stimuli: at once when a cap bounds ``n``, else in blocks of ``batch_size``.

    The blocks are built one after another from one generator, so their content depends on
    ``batch_size`` but never on how the data is stored, and memory holds one block.
    """
    step = n if limit is not None else max(1, int(batch_size))
    return [range(i, min(n, i + step)) for i in range(0, n, max(1, step))]


def gather(data: ImageSet, index: torch.Tensor) -> torch.Tensor:
    """uint8 (len(index), C, H, W): the images at ``index`` (repeats allowed).

    In-memory sets are indexed; file-backed ones decode each distinct image once, in DataLoader
    workers. An unreadable image is a :class:`UserError` naming it, even where the set skips
    unreadable files: the caller asked for that very image.
    """
    index = torch.as_tensor(index, dtype=torch.long)
    if data.in_memory:
        return data.take(index)
    unique, inverse = torch.unique(index, return_inverse=True)
    part = data.subset(unique).cached()
    if len(part) != len(unique):
        missing = sorted(set(data.ids[i] for i in unique.tolist()) - set(part.ids))
        raise UserError(f"cannot read image {missing[0]} of {data.name or 'the data'} ({len(missing)} unreadable); "
                        "delete or replace the file, or give the probe a limit (its subset leaves unreadable files out)")
    return part.images[inverse]


def open_folder(folder, channels: Optional[int], size: Optional[int], workers: Optional[int] = None,
                **options) -> ImageSet:
    """An ImageFolder as a file-backed set brought to ``channels`` x ``size`` x ``size`` with :func:`conform`.

    Nothing is decoded here: each image is decoded at that shape when a probe reads it (None
    keeps the folder's own channels or size). ``options`` go to ``load_folder`` (``class_names``).
    """
    from ..data.folder import load_folder

    return conform(load_folder(folder, cache_bytes=0, workers=workers, **options), channels, size)


class ModelAdapter(nn.Module):
    """The model seen in the data's label space and image shape.

    Takes float pixels (N, C, H, W) in [0, 1] in the data's shape, fits channels (repeat grey to RGB,
    average RGB to grey) and size (bilinear) to the model's spec, and returns logits over the
    *data's* classes:

    * same classes as the model: the logits themselves;
    * the data's classes a subset of the model's (ImageNet-R/-A style): the subset's logits;
    * ``groups`` (target class -> model class indices, e.g. ImageNet 1000 -> 16) with ``decision``:

      - ``"mean"``: the log of the mean probability over each group (model-vs-human averages the
        softmax over a category's classes); classes in no group take no part;
      - ``"argmax"``: the model's own argmax, mapped (Xiao et al. score ImageNet-9 so): column ``g`` is
        the largest log-probability among group ``g``'s classes and one more column the largest among
        the classes in no group, so the argmax over the columns is the group holding the model's
        argmax, or the extra column (index ``len(groups)``, never a label: a wrong answer). These
        columns are not probabilities; only the decision is meant.
    """

    def __init__(self, model: nn.Module, data_classes: Sequence[str], groups: Optional[Sequence[Sequence[int]]] = None,
                 decision: str = "mean"):
        super().__init__()
        if decision not in ("mean", "argmax"):
            raise ValueError(f"decision must be mean or argmax, got {decision!r}")
        self.decision = decision
        self.model = model
        self.spec = getattr(model, "spec", None)
        model_classes = list(self.spec.classes) if self.spec is not None and self.spec.classes else None
        num_model = self.spec.num_classes if self.spec is not None else None
        self.index: Optional[torch.Tensor] = None
        self.groups = None
        # A mismatch is raised when the adapter is first used, not here: probes that read their own
        # folders (cue-conflict, ImageNet-9, ImageNet-C trees) build their own adapters from ``.model``.
        self.error: Optional[UserError] = None
        try:
            self._resolve(list(data_classes), groups, model_classes, num_model)
        except UserError as exc:
            self.error = exc

    def _resolve(self, data_classes, groups, model_classes, num_model) -> None:
        k = len(data_classes)
        if groups is not None:
            if len(groups) != k:
                raise UserError(f"label map has {len(groups)} groups for {k} data classes; they must agree")
            self.groups = [list(map(int, gr)) for gr in groups]
        elif model_classes is not None and list(model_classes) != list(data_classes):
            norm = {_norm(c): i for i, c in enumerate(model_classes)}
            missing = [c for c in data_classes if _norm(c) not in norm]
            if missing:
                raise UserError(
                    f"the model's {len(model_classes)} classes do not cover the data's classes {missing[:5]}; "
                    "evaluate on data in the model's label space or pass a label mapping (e.g. --label-map imagenet16)")
            self.index = torch.tensor([norm[_norm(c)] for c in data_classes])
        elif model_classes is None and num_model is not None and num_model != k:
            raise UserError(f"the model has {num_model} outputs but the data has {k} classes; pass a label mapping")

    def check(self) -> None:
        """Raise the label-space mismatch, if any (a :class:`UserError`)."""
        if self.error is not None:
            raise self.error

    def fit_input(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if spec is None:
            return x
        if x.shape[1] == 1 and spec.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and spec.in_chans == 1:
            x = x.mean(dim=1, keepdim=True)
        size = tuple(spec.input_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def to_data_space(self, logits: torch.Tensor) -> torch.Tensor:
        if self.index is not None:
            return logits[:, self.index.to(logits.device)]
        if self.groups is not None:
            logp = logits.float().log_softmax(1)
            if self.decision == "argmax":
                cols = [logp[:, g].amax(1) for g in self.groups]
                mapped = torch.zeros(logp.shape[1], dtype=torch.bool, device=logp.device)
                mapped[[i for g in self.groups for i in g]] = True
                if not bool(mapped.all()):
                    cols.append(logp[:, ~mapped].amax(1))
                return torch.stack(cols, 1)
            return torch.stack([torch.logsumexp(logp[:, g], 1) - math.log(len(g)) for g in self.groups], 1)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check()
        return self.to_data_space(self.model(self.fit_input(x)).float())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.check()
        if not hasattr(self.model, "features"):
            raise AttributeError("model exposes no features()")
        return self.model.features(self.fit_input(x)).float()


def _norm(name: str) -> str:
    return str(name).strip().lower().replace("_", " ")


def cpu_chunk(images: torch.Tensor, batch_size: Optional[int] = None, device: str = "cpu") -> int:
    """Images per forward pass over ``images`` (N, C, H, W) computed on ``device``.

    On a GPU (any device but the CPU): ``batch_size`` as it is (default: all of ``images``). On the
    CPU at most ``batch_size`` and at most about 2^16 input values (64-83 images at 28 px, 8 at
    224 px): there a batch whose activations overflow the caches is slower per image than several
    small ones (a ResNet-8 at 28 px predicted 1.45x faster in chunks of 64 than of 256, and PGD ran
    1.26x faster in chunks of 64 than in one batch of 250; benchmarks/RESULTS.md, section 2), while
    a GPU wants the whole batch.
    """
    limit = batch_size or max(1, len(images))
    if torch.device(device).type != "cpu" or len(images) == 0:
        return limit
    return min(limit, max(8, 2 ** 16 // max(1, images[0].numel())))


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """``t`` on ``device``. A CPU tensor bound for a GPU is copied from pinned memory with
    ``non_blocking=True``, so the copy overlaps the GPU's work; anything else is ``t.to(device)``
    (``t`` itself when it is there already)."""
    if t.device.type != "cpu" or not is_cuda(device):
        return t.to(device)
    if not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def _pinned(shape, dtype: torch.dtype) -> torch.Tensor:
    # where random numbers bound for a GPU are drawn: pinned, so the copy to the GPU is asynchronous
    return torch.empty(shape, dtype=dtype, pin_memory=True)


def rand_on(shape, g: Optional[torch.Generator], device="cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.rand(shape, generator=g)`` drawn on the CPU, whatever ``device`` is, and delivered there.

    The CPU generator makes the numbers, so they are the same on every device (``torch.rand`` is
    ``empty(shape).uniform_(0, 1, generator)`` in ATen; the GPU path fills a pinned buffer that
    way)."""
    if not is_cuda(device):
        return torch.rand(shape, generator=g, dtype=dtype).to(device)
    return _pinned(shape, dtype).uniform_(0.0, 1.0, generator=g).to(device, non_blocking=True)


def randn_on(shape, g: Optional[torch.Generator], device="cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.randn(shape, generator=g)`` drawn on the CPU and delivered to ``device`` (see :func:`rand_on`)."""
    if not is_cuda(device):
        return torch.randn(shape, generator=g, dtype=dtype).to(device)
    return _pinned(shape, dtype).normal_(0.0, 1.0, generator=g).to(device, non_blocking=True)


def random_bits_on(n: int, g: Optional[torch.Generator], device="cpu") -> torch.Tensor:
    """``n`` int64 words of 64 uniform random bits (any sign) drawn on the CPU and delivered to ``device``:
    numpy's SFC64 generator started from three 63-bit draws of ``g``, so the words follow ``g``'s state and
    are the same on every device. Split into fields, many small random integers per word. SFC64 (Chris
    Doty-Humphrey's small fast chaotic generator with a 64-bit counter, one of numpy's own bit generators;
    numpy's docs: expected period about 2^255, never below 2^64) gives 64 bits in 2.6 ns here against
    4.1 ns for torch's mt19937 ``random_()``, whose words carry 63."""
    words = _sfc64(g).random_raw(n).view(np.int64)
    if not is_cuda(device):
        return torch.from_numpy(words)
    buf = _pinned((n,), torch.int64)
    buf.numpy()[:] = words
    return buf.to(device, non_blocking=True)


_BIT_SOURCE = threading.local()


def _sfc64(g: Optional[torch.Generator]) -> np.random.SFC64:
    """This thread's SFC64 bit generator, started as numpy seeds one: its three state words from ``g``
    (three 63-bit draws), the counter at 1, then 12 rounds discarded, which mix the words (their top bits
    are 0) through the whole state. 3 us against 20 us for a fresh generator seeded through a SeedSequence."""
    a, b, c = torch.empty(3, dtype=torch.int64).random_(generator=g).tolist()
    source = getattr(_BIT_SOURCE, "sfc64", None)
    if source is None:
        source = _BIT_SOURCE.sfc64 = np.random.SFC64(0)
    source.state = {"bit_generator": "SFC64", "state": {"state": np.array([a, b, c, 1], dtype=np.uint64)},
                    "has_uint32": 0, "uinteger": 0}
    source.random_raw(12)
    return source


def numpy_generator(g: Optional[torch.Generator]) -> np.random.Generator:
    """A numpy ``Generator`` over :func:`_sfc64` set from ``g``: numpy's samplers (float32 uniforms in 0.2 ns
    a value against ``torch.rand``'s 3.4 ns) driven by ``g``'s state. Use it at once: the next call from
    this thread resets its bits."""
    return np.random.Generator(_sfc64(g))


def randint_on(low: int, high: int, shape, g: Optional[torch.Generator], device="cpu") -> torch.Tensor:
    """``torch.randint(low, high, shape, generator=g)`` (int64) drawn on the CPU and delivered to ``device``."""
    if not is_cuda(device):
        return torch.randint(low, high, shape, generator=g).to(device)
    return _pinned(shape, torch.int64).random_(low, high, generator=g).to(device, non_blocking=True)


Batches = Iterable[Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Predictions:
    """What :func:`predict` returns.

    Attributes:
        logits: float32 (N, K), one row per predicted sample.
        index: int64 (N,), each row's position in the input (a set that skips unreadable files
            predicts fewer samples than it has: pick labels and ids with this, never by position).
        features: float32 (N, D) penultimate features when asked for, else None.
    """

    logits: torch.Tensor
    index: torch.Tensor
    features: Optional[torch.Tensor] = None

    def ids(self, data: ImageSet) -> List[str]:
        """The sample ids of the predicted rows of ``data``."""
        return [data.ids[i] for i in self.index.tolist()]

    def labels(self, data: ImageSet) -> torch.Tensor:
        """The labels (N,) of the predicted rows of ``data``."""
        return data.labels[self.index]


def _input_batches(data: Union[ImageSet, torch.Tensor, Batches], batch_size: int) -> Iterator[tuple]:
    if isinstance(data, ImageSet):
        return iter(data.batches(batch_size))
    if isinstance(data, torch.Tensor):
        return iter([(data, torch.arange(len(data)))])
    return iter(data)


def rechunk(batches: Batches, batch_size: Optional[int], device: str) -> Iterator[tuple]:
    """Re-cut a stream of ``(images (B, C, H, W), index (B,))`` into forward passes of :func:`cpu_chunk` images.

    The passes start at every multiple of the chunk size over the whole stream, whatever the
    batches were, so a set predicts exactly as the one tensor of its images would. Holds at most
    one batch plus one chunk.
    """
    step, held, count = None, [], 0
    for x, idx in batches:
        if step is None:
            step = cpu_chunk(x, batch_size, device)
        start = 0
        while start < len(x):
            n = min(step - count, len(x) - start)
            held.append((x[start:start + n], idx[start:start + n]))
            start, count = start + n, count + n
            if count == step:
                yield _joined(held)
                held, count = [], 0
    if held:
        yield _joined(held)


def _joined(pieces: list) -> tuple:
    if len(pieces) == 1:
        return pieces[0]
    return torch.cat([x for x, _ in pieces]), torch.cat([i for _, i in pieces])


@torch.no_grad()
def predict(model: nn.Module, data: Union[ImageSet, torch.Tensor, Batches], batch_size: int = 256,
            device: str = "cpu", features: bool = False) -> Predictions:
    """Logits of every sample of ``data``, read batch by batch; with ``features``, also (N, D) features.

    Args:
        data: an :class:`ImageSet` (streamed with :meth:`ImageSet.batches`, file-backed sets decoded in
            DataLoader workers), a tensor (N, C, H, W), or an iterable of ``(images, index)``
            batches (a probe's corrupted or attacked images). Images are uint8 in [0, 255] or float
            in [0, 1].
        batch_size: images read per batch, and the most per forward pass (:func:`cpu_chunk`).
        device: where ``model`` is (its parameters); each pass is sent there with :func:`to_device`
            (images already there stay), uint8 images as uint8, converted to float there.

    The results are on the CPU; on a GPU they stay there until the last pass, then come back at once.
    """
    model.eval()
    outs, feats, kept = [], [], []
    for x, idx in rechunk(_input_batches(data, batch_size), batch_size, device):
        x = to_device(x, device)
        x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
        outs.append(model(x).float())
        if features:
            feats.append(model.features(x).float())
        kept.append(idx)
    logits = torch.cat(outs).cpu() if outs else torch.zeros(0, 0)
    index = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long)
    if features:
        return Predictions(logits, index, torch.cat(feats).cpu() if feats else torch.zeros(0, 0))
    return Predictions(logits, index)


def predicted_rows(model_name: str, probe: str, condition: str, severity: int, data: ImageSet, p: Predictions,
                   score=None, extra=None) -> pd.DataFrame:
    """:func:`rows_from_logits` for the samples of ``data`` that ``p`` predicted."""
    return rows_from_logits(model_name, probe, condition, severity, p.ids(data), p.labels(data), p.logits,
                            score=score, extra=extra)


def rows_from_logits(model_name: str, probe: str, condition: str, severity: int, ids: Sequence[str],
                     labels: torch.Tensor, logits: torch.Tensor, score=None, extra=None) -> pd.DataFrame:
    """One row per sample in the schema (see the package docstring).

    ``score``: (N,) floats or None (NaN); ``extra``: a dict shared by every row, a list of per-row
    dicts, or None (``"{}"``).
    """
    probs = logits.float().softmax(1)
    conf, pred = probs.max(1)
    n = len(ids)
    labels = labels.long()
    if extra is None:
        extras = ["{}"] * n
    elif isinstance(extra, dict):
        extras = [json.dumps(extra, default=_json_default)] * n
    else:
        extras = [json.dumps(e, default=_json_default) for e in extra]
    sc = np.full(n, np.nan) if score is None else np.asarray(score, dtype=np.float64)
    df = pd.DataFrame({
        "model": model_name, "probe": probe, "condition": condition, "severity": int(severity),
        "sample_id": list(map(str, ids)), "label": labels.numpy(), "prediction": pred.numpy(),
        "confidence": conf.double().numpy(), "correct": (pred == labels).numpy(), "score": sc, "extra": extras,
    })
    return df


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in DTYPES.items()})


def finalize(rows) -> pd.DataFrame:
    """Concatenate row frames / lists of dicts and fix the column order and dtypes."""
    if isinstance(rows, pd.DataFrame):
        frames = [rows]
    else:
        frames = [r if isinstance(r, pd.DataFrame) else pd.DataFrame(r) for r in rows]
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_rows()
    df = pd.concat(frames, ignore_index=True)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"probe rows lack columns {missing}")
    return df[COLUMNS].astype(DTYPES)


def extra_of(df: pd.DataFrame) -> pd.DataFrame:
    """The ``extra`` JSON column expanded into columns (one per key)."""
    return pd.DataFrame([json.loads(e) for e in df["extra"]], index=df.index)
