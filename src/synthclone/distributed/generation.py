"""The whole of ``synthclone generate``: plan a store, make its shards (in-process or Ray), filter, summarise.

Real-guided (few-shot) generation: ``shots = k`` real images per class are taken from the dataset's
``train`` split with ``ImageSet.per_class(k, seed)``; image ``j`` of class ``c`` starts from real
image ``j mod k`` of that class, noised to ``strength`` and denoised with the class prompt (img2img).
The strength, when not given, is He et al.'s real-guidance schedule (:data:`REAL_GUIDANCE_STRENGTH`):
their released generation code (CVMI-Lab/SyntheticData, ``src/glide/glide_fsl.py`` with the README's
``refer_img_iters`` of 50, 40, 35, 20, 15 for 1, 2, 4, 8, 16 shots) noises the real image to step
``refer_img_iters`` of 100 and denoises from there, i.e. strength 0.5, 0.4, 0.35, 0.2, 0.15. A shot
count between the listed ones takes the value of the next smaller one (more shots, less noise);
more than 16 shots take 0.15. With one shot the generator must add most of the variety; with more
shots the real images already vary, so less noise keeps the synthetic set closer to them. Each
manifest row records ``source_id`` and ``strength``.

The device (``generate_store(..., device="cuda:0")``, resolved once by the command) goes into the
generator's options and into the options of filters that take one. It is *not* part of a store's
identity (the hash ``store.json`` checks on resume), nor are the options that only trade memory or
speed (``batch_size``, ``cpu_offload``, ``attention_slicing``, ``vae_slicing``): a store begun on one
GPU resumes on another, or on the CPU. What a device changes in the images is recorded instead:
each manifest row's ``device`` says where it was made (a GPU's float kernels round differently
from the CPU's, so a resumed store is byte-identical to an uninterrupted one only on the same
device). What changes the images by design is part of the identity: the dtype actually used
(``auto`` resolves to float16 on CUDA, float32 on the CPU, so an ``auto`` store begun on a GPU is
refused on the CPU: set the dtype to resume there), the weight variant, ``vae_tiling``, the embedded
generator's resolved precision. Ray workers must resolve those as the plan did, else one line asks
to set them explicitly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..data.store import STORE_VERSION, StorePlan, check_output, finalize, open_store, prompts_digest, safe_class_names
from ..device import device_record, is_cuda
from ..errors import UserError
from ..progress import progress, say


# generator options that change where or how fast images are made, not which images: out of the identity
EXECUTION_OPTIONS = ("device", "cpu_offload", "attention_slicing", "vae_slicing")


def content_view(spec_or_config: dict) -> dict:
    """``spec_or_config`` without :data:`EXECUTION_OPTIONS` (a spec's ``options`` emptied away), for the identity."""
    out = {k: v for k, v in spec_or_config.items() if k not in EXECUTION_OPTIONS}
    if "options" in out:
        options = {k: v for k, v in (out["options"] or {}).items() if k not in EXECUTION_OPTIONS}
        if options:
            out["options"] = options
        else:  # as specs were written before the device existed, so those stores still resume
            del out["options"]
    return out


def filter_specs_for(names: Sequence[str], filter_options: dict, device: str) -> List[dict]:
    """``[{"name", "options"}]``; a filter whose constructor takes ``device`` gets it."""
    import inspect

    from ..filters import create_filter

    specs = []
    for name in names:
        options = dict(filter_options.get(name, {}))
        try:
            probe = create_filter(name, **options)  # constructing loads nothing (models load in prepare)
        except TypeError as exc:
            raise UserError(f"bad filter options {filter_options}: {exc}") from None
        if "device" in inspect.signature(type(probe)).parameters and "device" not in options:
            options["device"] = device
        specs.append({"name": name, "options": options})
    return specs


# shots -> img2img strength of He et al.'s real guidance (refer_img_iters / 100 steps; see the module doc)
REAL_GUIDANCE_STRENGTH = {1: 0.5, 2: 0.4, 4: 0.35, 8: 0.2, 16: 0.15}


def strength_for_shots(k: int) -> float:
    """img2img strength for ``k`` real images per class: He et al.'s schedule (the module doc)."""
    if k < 1:
        raise UserError(f"shots must be >= 1 for real-guided generation, got {k}")
    return REAL_GUIDANCE_STRENGTH[max(s for s in REAL_GUIDANCE_STRENGTH if s <= k)]


def guided_strength(strength: Optional[float], shots: int) -> float:
    """The strength real-guided generation uses: the configured one, else :func:`strength_for_shots`."""
    return strength if strength is not None else strength_for_shots(shots)


@dataclass
class GenerateSummary:
    """What a ``generate`` run did."""

    out: str
    total: int
    made: int
    resumed_shards: int
    kept: int
    per_class: Dict[str, Dict[str, int]]
    unique_prompts: Dict[str, int]
    seconds: float
    config_hash: str
    strength: Optional[float] = None
    filters: List[str] = field(default_factory=list)
    where: str = "in-process on cpu"

    @property
    def images_per_second(self) -> float:
        return self.made / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> List[str]:
        out = [
            f"store: {self.out} (config {self.config_hash})",
            f"made {self.made:,} images this run ({self.total:,} in the store, {self.resumed_shards} shards resumed) "
            f"in {self.seconds:.1f} s, {self.images_per_second:.1f} images/s ({self.where})",
            f"kept {self.kept:,} of {self.total:,} by filters: {', '.join(self.filters) or 'none'}",
        ]
        width = max((len(c) for c in self.per_class), default=5)
        out.append(f"  {'class':<{width}}  made  kept  unique prompts")
        for c, row in self.per_class.items():
            out.append(f"  {c:<{width}}  {row['made']:>4}  {row['kept']:>4}  {self.unique_prompts.get(c, 0):>5}")
        return out


def classes_of(dataset: str) -> tuple:
    """``(class names, WordNet ids or None)`` of a dataset (name or ImageFolder path), without decoding images."""
    from ..data import dataset_entry

    return dataset_entry(dataset).classes()


def plan_store(cfg, out: str | Path, dataset: Optional[str] = None, classes: Optional[Sequence[str]] = None,
               class_ids: Optional[Sequence[Optional[str]]] = None, data_options: Optional[dict] = None,
               device: str = "cpu") -> tuple:
    """Build the :class:`StorePlan` of a ``GenerateConfig``; returns ``(plan, generator, filters)``.

    ``device``: a resolved device (``"cpu"``, ``"cuda:0"``) the generator and filters run on.

    Raises a one-line :class:`UserError` for an unknown strategy / filter / generator, a bad
    option, or real guidance the dataset cannot give — before anything is written.
    """
    from ..filters import FILTERS
    from ..prompts import PROMPTS, make_prompts
    from .worker import build_filters, build_generator

    if len(cfg.prompts) != 1:
        raise UserError(f"generate makes one store per prompt strategy; give one (got {cfg.prompts}); 'synthclone run' makes one store each")
    strategy = cfg.prompts[0]
    PROMPTS.get(strategy)
    filter_names = [f for f in cfg.filter if f not in ("none", "")]
    for name in filter_names:
        FILTERS.get(name)
    unknown = sorted(set(cfg.filter_options) - set(filter_names))
    if unknown:
        raise UserError(f"filter_options for {unknown} but those filters are not enabled ({filter_names or 'none'}); add them to filter")
    if cfg.per_class < 1:
        raise UserError(f"per-class must be >= 1, got {cfg.per_class}")
    check_output(out)
    if classes:
        classes = list(classes)
    elif dataset:
        classes, class_ids = classes_of(dataset)
    else:
        raise UserError("say which classes to generate: a dataset (--dataset / data.dataset) or --classes")
    if not classes:
        raise UserError(f"dataset {dataset} has no classes")
    try:
        prompts = make_prompts(strategy, classes, cfg.per_class, cfg.seed, class_ids=class_ids,
                               images_per_prompt=cfg.images_per_prompt, **cfg.prompt_options)
    except TypeError as exc:  # an option the strategy does not take
        raise UserError(f"prompt strategy {strategy!r} does not take those options ({cfg.prompt_options}): {exc}") from None
    if "device" in cfg.generator_options:
        raise UserError("generate.generator_options.device: the device is one setting for every stage; "
                        "set device: (or --device) instead")
    gen_spec = {"name": cfg.generator, "weights": cfg.model, "options": {**cfg.generator_options, "device": device}}
    generator = build_generator(gen_spec)
    from ..models.small_clip import require_known_classes

    require_known_classes(f"the {cfg.generator} generator", getattr(generator, "known_classes", None), classes,
                          "set generate.generator: diffusers with generate.model: <a pipeline id or folder>")
    filter_specs = filter_specs_for(filter_names, cfg.filter_options, device)
    try:
        filters = build_filters(filter_specs)
    except TypeError as exc:
        raise UserError(f"bad filter options {cfg.filter_options}: {exc}") from None
    for f in filters:
        f.prepare()
    real = None
    strength = None
    if cfg.shots:
        from ..data import load_dataset
        from ..data.images import conform_tensor

        if not dataset:
            raise UserError("real-guided generation (shots) needs the real dataset; give --dataset / data.dataset")
        data = load_dataset(dataset, split="train", **(data_options or {}))
        if list(data.classes) != classes:
            raise UserError(f"real-guided generation needs the dataset's own classes; {dataset} has {data.classes[:5]}...")
        try:
            few = data.per_class(cfg.shots, seed=cfg.seed)
        except ValueError as exc:
            raise UserError(f"shots={cfg.shots}: {exc}; use fewer shots") from None
        strength = guided_strength(cfg.strength, cfg.shots)
        init = few.take(torch.arange(len(few)))
        shape = getattr(generator, "image_shape", None)
        if shape is not None:  # the init images at the generator's own resolution and channels
            init = conform_tensor(init, int(shape[0]), int(shape[1]))
        real = {"images": init.contiguous(), "ids": list(few.ids), "k": cfg.shots, "strength": strength}
    elif cfg.strength is not None:
        raise UserError("strength is only for real-guided generation; add --shots K or drop --strength")
    check = getattr(generator, "check_settings", None)
    if check is not None:  # settings the backend cannot run fail here, before the store exists
        check(int(cfg.steps), strength)
    settings = {"guidance": float(cfg.guidance), "steps": int(cfg.steps), "scheduler": cfg.scheduler, "batch_size": int(cfg.batch_size)}
    identity = {
        "store_version": STORE_VERSION,
        "classes": classes,
        "strategy": strategy,
        "prompt_options": cfg.prompt_options,
        "prompts_sha256": prompts_digest([p.text for p in prompts]),
        "per_class": cfg.per_class,
        "seed": cfg.seed,
        "shard_size": cfg.shard_size,
        "generator": {"spec": content_view(gen_spec), "config": content_view(getattr(generator, "config", {}))},
        "guidance": settings["guidance"],
        "steps": settings["steps"],
        "scheduler": settings["scheduler"],
        "filters": [f.identity() for f in filters],
        "real": None if real is None else {"dataset": dataset, "k": cfg.shots, "strength": strength,
                                           "source_ids": prompts_digest(real["ids"])},
    }
    if cfg.images_per_prompt != 1:  # absent otherwise, so stores made before it existed still resume
        identity["images_per_prompt"] = cfg.images_per_prompt
    if cfg.store_layout != "folder":  # absent for folder stores, so stores made before layouts existed still resume
        identity["layout"] = cfg.store_layout
    plan = StorePlan(
        root=str(Path(out)), classes=classes, safe_classes=safe_class_names(classes),
        prompts=[p.text for p in prompts], strategy=strategy, per_class=cfg.per_class, seed=cfg.seed,
        shard_size=cfg.shard_size, generator=gen_spec, settings=settings, filters=filter_specs, real=real,
        identity=identity, layout=cfg.store_layout,
    )
    return plan, generator, filters


def generate_store(cfg, out: str | Path, dataset: Optional[str] = None, classes: Optional[Sequence[str]] = None,
                   num_cpus: Optional[int] = None, data_options: Optional[dict] = None,
                   device: str = "cpu") -> GenerateSummary:
    """Make (or resume) the store of ``cfg`` (a ``GenerateConfig``) in ``out``; returns the summary.

    ``device``: the resolved device (:func:`synthclone.device.resolve_device`) of the generator and
    filters; with ``cfg.ray`` each actor takes one GPU of the cluster when it is CUDA.
    ``num_cpus`` sizes a local Ray (``--ray-cpus``).
    """
    from ..prompts import Prompt, describe_prompts
    from . import run_shards
    from .worker import release_generator

    plan, generator, filters = plan_store(cfg, out, dataset=dataset, classes=classes, data_options=data_options,
                                          device=device)
    if cfg.ray:  # the actors load their own; the driver's copy would hold GPU memory they need
        del generator
        release_generator(plan.generator)
        where = f"Ray {cfg.ray}, {'GPU' if is_cuda(device) else 'CPU'} actors"
    else:
        record = device_record(device)
        where = f"in-process on {device}" + (f" ({record['gpu']})" if "gpu" in record else "")
    done = open_store(plan)
    shards = plan.shards()
    pending = [s for s in shards if not plan.is_done(s)]
    if done:
        say(f"resuming {plan.root}: {done} of {len(shards)} shards already done")
    start = time.time()
    bar = progress(total=plan.total, initial=plan.total - sum(len(s) for s in pending), desc="generate", unit="img")
    try:
        made = run_shards(plan, pending, ray=cfg.ray, num_cpus=num_cpus, workers=cfg.ray_workers,
                          on_done=lambda shard, n: bar.update(len(shard)))
    finally:
        bar.close()
    manifest = finalize(plan, filters)
    seconds = time.time() - start
    per_class = {}
    for c, name in enumerate(plan.classes):
        rows = manifest[manifest["class_index"] == c]
        per_class[name] = {"made": int(len(rows)), "kept": int(rows["kept"].sum())}
    prompts = [Prompt(i // plan.per_class, t) for i, t in enumerate(plan.prompts)]
    return GenerateSummary(
        out=plan.root, total=plan.total, made=made, resumed_shards=done, kept=int(manifest["kept"].sum()),
        per_class=per_class, unique_prompts=describe_prompts(prompts, plan.classes), seconds=seconds,
        config_hash=plan.config_hash(), strength=None if plan.real is None else plan.real["strength"],
        filters=[f["name"] for f in plan.filters], where=where,
    )
