"""The study that ``synthclone run`` executes: generate -> train -> bench -> report, as cached stages.

Arms (``study.arms``), each trained once per seed in ``train.seeds``:

====================  =====================================================================
arm                   model
====================  =====================================================================
real                  supervised on the real training split (``data.train_limit`` images)
synthetic             supervised on each prompt strategy's CLIP-filtered store (one model each)
unfiltered            supervised on the first strategy's store without the filter
mixed                 real + first strategy's store, ``train.mix_ratio`` synthetic per batch
zero-shot             the small CLIP, zero-shot from class names (no training)
classifier-tuning     frozen CLIP + linear head from the zero-shot weights, on synthetic data (He et al.)
ssl                   multi-positive SimCLR on synthetic images (same prompt = positives) + probe
clip                  a CLIP-style image tower trained on the store's (image, prompt) pairs, zero-shot
few-shot-real         supervised on ``study.few_shot_k`` real images per class
few-shot-guided       the same few-shot images + a store generated from them (real guidance)
pretrain-finetune     the synthetic model fine-tuned on the few-shot real images
few-shot-clip         classifier tuning of the CLIP on the few-shot real images alone (cross-entropy)
few-shot-clip-guided  He et al.'s few-shot setting: a real batch (cross-entropy) + a real-guided synthetic
                      batch (soft + hard loss) per step
generator             per ``generate.generators`` entry: supervised on that generator's store of the first
                      prompt strategy (strategy tag ``<strategy>@<name>``); a ``compare`` stage scores
                      every generator's store against the real test split
====================  =====================================================================

Every stage lives in ``RUN_DIR/<stage>-<hash>`` (see :mod:`synthclone.pipeline`), so a second run
skips finished stages and a killed run resumes. Every stage runs on ``device`` (``auto``: CUDA when
there is a GPU); the device is not part of the stage keys, so a study moved to another machine
reuses its finished stages, and each output records where it was computed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .pipeline import Stage, read_done, run_stages, stage_hash, write_json
from .progress import say


@dataclass
class ArmModel:
    """One model of the study: how to train it and what it is for the findings."""

    name: str                  # unique, e.g. "synthetic:template/s0"
    arm: str
    seed: int
    strategy: Optional[str] = None
    regime: Optional[str] = None   # None: not trained (zero-shot)
    data: Any = None               # spec string or ("store", stage, kept_only)
    needs: List[str] = field(default_factory=list)  # stage names it reads
    options: Dict[str, Any] = field(default_factory=dict)
    epochs: Optional[int] = None
    model: Optional[str] = None
    batch_size: Optional[int] = None      # None: train.batch_size
    lr: Optional[float] = None            # None: train.lr (supervised) or the regime's default
    weight_decay: Optional[float] = None  # None: train.weight_decay

    def tags(self) -> Dict[str, Any]:
        return {"model": self.name, "arm": self.arm, "seed": self.seed, "strategy": self.strategy, "regime": self.regime}


def _gen_stage_name(strategy: str) -> str:
    return f"generate-{strategy}"


def _generator_stage(name: str) -> str:
    return f"generate-generator-{name}"


COMPARE_STAGE = "compare"
COMPARE_K = 5  # nearest neighbours of the compare stage's precision / recall / density / coverage (Naeem et al.)
SSL_STAGE = "generate-ssl"
# prompt strategies whose prompts differ image by image: with them, "same prompt" in StableRep's loss is a
# caption's several images, not a class (classname, template, templates, wordnet, domains give every image
# of a class one of a handful of class-level prompts: a supervised contrastive loss with the labels)
PER_IMAGE_PROMPTS = ("language-enhancement", "captions")
SSL_PROBE_LRS = [0.03, 0.1, 0.3]  # a small version of StableRep's sweep (main_linear.py: 0.001 ... 0.5)


def ssl_prompts(cfg) -> Optional[str]:
    """The prompt strategy of the ssl arm's store: ``study.ssl_prompts``, else the first of
    ``generate.prompts`` whose prompts differ image by image (None when there is none)."""
    if cfg.study.ssl_prompts:
        return cfg.study.ssl_prompts
    return next((p for p in cfg.generate.prompts if p in PER_IMAGE_PROMPTS), None)


FEW_SHOT_STAGE = "generate-guided"
FEW_SHOT_CLIP_LR = 1e-3  # He et al.'s few-shot classifier tuning (CVMI-Lab/SyntheticData README, ct_fsl.py)


def load_options(cfg, evaluation: bool = False) -> Dict[str, Any]:
    """``load_dataset`` options of the study: the data section, with the input size (and, for the
    validation and test splits, the centre-crop share) that the trained model's data config asks
    for when ``data.image_size`` is unset (a timm model's pretrained config)."""
    from .data import data_options
    from .models import model_data_config

    model = model_data_config(cfg.train.model) or {}
    extra: Dict[str, Any] = {}
    if cfg.data.image_size or model.get("size"):
        extra["size"] = cfg.data.image_size or model["size"]
    if evaluation and model.get("crop_pct") and not cfg.data.image_size:
        extra["crop_pct"] = model["crop_pct"]
    return data_options(cfg.data, **extra)


def ood_settings(cfg) -> Dict[str, List[str]]:
    """BenchSettings ``ood_sets`` / ``ood_folders``: the dataset's OOD sets (``data.ood`` or its
    registry entry's) plus the procedural ones every dataset gets."""
    from .data import DATASETS, dataset_entry

    named = cfg.data.ood if cfg.data.ood is not None else list(dataset_entry(cfg.data.dataset).ood)
    sets = [n for n in named if n in DATASETS] + ["textures", "uniform_noise", "gaussian_noise"]
    return {"ood_sets": sets, "ood_folders": [n for n in named if n not in DATASETS]}


def clip_filter_options(cfg) -> Dict[str, Dict[str, Any]]:
    """``generate.filter_options`` with the CLIP filter's model taken from ``clip.model`` / ``clip.pretrained``
    (unless the filter's own options name one) and placed on the run's ``device``."""
    options = {k: dict(v) for k, v in cfg.generate.filter_options.items()}
    if "clip" not in cfg.generate.filter:
        return options
    clip = options.setdefault("clip", {})
    clip.setdefault("device", cfg.device)
    if {"weights", "tiny", "model"} & set(clip):
        return options
    model = cfg.clip.model
    if model.startswith("open_clip:"):
        clip["model"] = model
        if cfg.clip.pretrained is not None:
            clip["pretrained"] = cfg.clip.pretrained
    elif model == "small_clip:tiny":
        clip["tiny"] = True
    elif model != "small_clip":
        clip["weights"] = model
    return options


def _store_path(outputs: Dict[str, Any], stage: str) -> str:
    return outputs[stage]["store"]


def _real_spec(cfg) -> str:
    return f"real:limit={cfg.data.train_limit}" if cfg.data.train_limit else "real"


def plan_models(cfg) -> List[ArmModel]:
    """The models of the study, in training order (a fine-tune comes after what it starts from)."""
    arms = set(cfg.study.arms)
    strategies = list(cfg.generate.prompts)
    first = strategies[0]
    out: List[ArmModel] = []
    for seed in cfg.train.seeds:
        s = f"/s{seed}"
        if "real" in arms:
            out.append(ArmModel(f"real{s}", "real", seed, regime="supervised", data=_real_spec(cfg)))
        if "synthetic" in arms or "pretrain-finetune" in arms:
            for strat in strategies if "synthetic" in arms else [first]:
                out.append(ArmModel(f"synthetic:{strat}{s}", "synthetic", seed, strat, "supervised",
                                    ("store", _gen_stage_name(strat), True), [_gen_stage_name(strat)]))
        if "unfiltered" in arms:
            out.append(ArmModel(f"unfiltered:{first}{s}", "unfiltered", seed, first, "supervised",
                                ("store", _gen_stage_name(first), False), [_gen_stage_name(first)]))
        if "mixed" in arms:
            out.append(ArmModel(f"mixed:{first}{s}", "mixed", seed, first, "supervised",
                                ("mix", _gen_stage_name(first), cfg.train.mix_ratio), [_gen_stage_name(first)]))
        if "zero-shot" in arms and seed == cfg.train.seeds[0]:
            out.append(ArmModel("zero-shot", "zero-shot", seed))  # deterministic: one model for all seeds
        st = cfg.study
        clip_kw = dict(epochs=st.clip_epochs, weight_decay=st.clip_weight_decay)
        if "classifier-tuning" in arms:
            out.append(ArmModel(f"classifier-tuning:{first}{s}", "classifier-tuning", seed, first, "classifier-tuning",
                                ("store", _gen_stage_name(first), True), [_gen_stage_name(first)],
                                batch_size=st.clip_batch_size, **clip_kw))
        if "ssl" in arms and ssl_prompts(cfg):
            strat = ssl_prompts(cfg)
            out.append(ArmModel(f"ssl:{strat}{s}", "ssl", seed, strat, "ssl-multipos",
                                ("store", SSL_STAGE, True), [SSL_STAGE], epochs=cfg.study.ssl_epochs,
                                options={"group_size": st.ssl_group_size, "probe_data": _real_spec(cfg),
                                         "probe_lrs": SSL_PROBE_LRS}))
        if "clip" in arms:
            out.append(ArmModel(f"clip:{first}{s}", "clip", seed, first, "clip",
                                ("store", _gen_stage_name(first), True), [_gen_stage_name(first)]))
        if "few-shot-real" in arms or "few-shot-guided" in arms or "pretrain-finetune" in arms:
            out.append(ArmModel(f"few-shot-real{s}", "few-shot-real", seed, regime="supervised",
                                data=_few_shot_spec(cfg), epochs=cfg.study.few_shot_epochs))
        if "few-shot-guided" in arms:
            out.append(ArmModel(f"few-shot-guided{s}", "few-shot-guided", seed, first, "supervised",
                                ("few-shot-mix", FEW_SHOT_STAGE, 0.5), [FEW_SHOT_STAGE], epochs=cfg.study.few_shot_epochs))
        if "pretrain-finetune" in arms:
            out.append(ArmModel(f"pretrain-finetune:{first}{s}", "pretrain-finetune", seed, first, "finetune",
                                data=_few_shot_spec(cfg), options={"init_model": f"synthetic:{first}{s}"},
                                epochs=cfg.study.few_shot_epochs))
        if "generator" in arms:
            for g in cfg.generate.generators:
                out.append(ArmModel(f"generator:{g.name}{s}", "generator", seed, f"{first}@{g.name}", "supervised",
                                    ("store", _generator_stage(g.name), True), [_generator_stage(g.name)]))
        if "few-shot-clip" in arms or "few-shot-clip-guided" in arms:
            out.append(ArmModel(f"few-shot-clip{s}", "few-shot-clip", seed, regime="classifier-tuning",
                                data=_few_shot_spec(cfg), batch_size=st.clip_real_batch_size, lr=FEW_SHOT_CLIP_LR,
                                **clip_kw))
        if "few-shot-clip-guided" in arms:
            out.append(ArmModel(f"few-shot-clip-guided{s}", "few-shot-clip-guided", seed, first, "classifier-tuning",
                                ("few-shot-clip-mix", FEW_SHOT_STAGE, None), [FEW_SHOT_STAGE],
                                batch_size=st.clip_batch_size + st.clip_real_batch_size, lr=FEW_SHOT_CLIP_LR, **clip_kw))
    return out


# ------------------------------------------------------------------------------------------ stages


def _generator_update(g) -> Dict[str, Any]:
    """The ``generate`` settings a ``generate.generators`` entry changes."""
    out: Dict[str, Any] = {"generator": g.generator, "model": g.model, "generator_options": dict(g.generator_options)}
    out.update({k: getattr(g, k) for k in ("guidance", "steps", "scheduler") if getattr(g, k) is not None})
    return out


def _snapshot_key(g) -> Dict[str, Any]:
    """A shipped snapshot's SHA-256 (first 16 hex digits) for the key of its generator's stage, so the
    stage reruns when the snapshot changes (the shipped model's own hash is in every key already)."""
    import hashlib

    if g.generator != "embedded" or not str(g.model or "").startswith("shipped:"):
        return {}
    from .generators.embedded import resolve_embedded_weights

    return {"snapshot_sha": hashlib.sha256(resolve_embedded_weights(g.model).read_bytes()).hexdigest()[:16]}


def _generate_fn(cfg, strategy: str, shots: int = 0, images_per_prompt: int = 1, generator=None):
    def fn(folder: Path, _inputs: Dict[str, Any]) -> Dict[str, Any]:
        from .device import resolve_device
        from .distributed.generation import generate_store

        update = {"prompts": [strategy], "shots": shots, "images_per_prompt": images_per_prompt,
                  "filter_options": clip_filter_options(cfg), "generators": []}
        if generator is not None:
            update.update(_generator_update(generator))
        gen_cfg = cfg.generate.model_copy(update=update)
        summary = generate_store(gen_cfg, folder / "store", dataset=cfg.data.dataset, data_options=load_options(cfg),
                                 device=resolve_device(cfg.device))
        for line in summary.lines()[:3]:
            say(f"  {line}")
        info = {k: v for k, v in summary.__dict__.items()}
        info["images_per_second"] = summary.images_per_second
        write_json(folder / "summary.json", info)
        return {"store": str(folder / "store"), "made": summary.total, "kept": summary.kept,
                "seconds": round(summary.seconds, 2), "unique_prompts": summary.unique_prompts}

    return fn


def _compare_fn(cfg, stage_names: List[str], cas_stage: Optional[str] = None):
    """The generator metrics (``synthclone compare``'s) of the main generator's first store and every
    ``generate.generators`` store against the real test split, on the study CLIP's features; with
    ``cas_stage`` (the real arm's first training stage) the classification accuracy score too."""
    def fn(folder: Path, inputs: Dict[str, Any]) -> Dict[str, Any]:
        from .data import dataset_entry, load_dataset
        from .data.store import load_store
        from .device import resolve_device
        from .generators.metrics import compare_stores
        from .models import load_any_model

        device = resolve_device(cfg.device)
        real = load_dataset(cfg.data.dataset, split="test", **load_options(cfg, evaluation=True))
        classes, _ = dataset_entry(cfg.data.dataset).classes(**load_options(cfg))
        name, kwargs = _clip_model(cfg)
        extractor = load_any_model(name, classes=classes, **kwargs).eval().to(device)
        main = cfg.generate.generator if cfg.generate.model is None else f"{cfg.generate.generator}:{cfg.generate.model}"
        labels = {stage_names[0]: f"{main} (main)", **{_generator_stage(g.name): g.name for g in cfg.generate.generators}}
        stores = {labels[st]: load_store(inputs[st]["store"], size=real.shape[1], channels=real.shape[0])
                  for st in stage_names}
        cas = load_any_model(inputs[cas_stage]["checkpoint"]).eval().to(device) if cas_stage else None
        report = compare_stores(real, stores, extractor, k=COMPARE_K, per_class=cfg.generate.per_class, seed=0, device=device,
                                cas=cas, progress_desc="compare generators")
        strategy = cfg.generate.prompts[0]
        tags = {labels[stage_names[0]]: strategy, **{g.name: f"{strategy}@{g.name}" for g in cfg.generate.generators}}
        write_json(folder / "compare.json", {"features": name, "k": COMPARE_K, "per_class": cfg.generate.per_class,
                                             "cas_model": cas_stage[len("train-"):] if cas_stage else None,
                                             "strategy_tags": tags, "stages": {labels[st]: st for st in stage_names},
                                             "stores": report})
        return {"compare": str(folder / "compare.json")}

    return fn


def _val_set(cfg):
    from .data import load_dataset
    from .training.engine import limit_val

    val = load_dataset(cfg.data.dataset, split="val", **load_options(cfg, evaluation=True))
    return limit_val(val, cfg.data.val_limit, seed=0)


def _few_shot_spec(cfg) -> str:
    """The few-shot arms' real images: the k per class the real-guided store was generated from
    (drawn with ``generate.seed``, as generation draws them), whatever the training seed, so the
    guided arm never sees real images its baseline does not (issue 16: with the training seed the
    guided arm saw 2k distinct real images per class for seeds other than the generation seed)."""
    return f"real:k={cfg.study.few_shot_k},seed={cfg.generate.seed}"


def _train_data(cfg, m: ArmModel, inputs: Dict[str, Any]):
    """The training data of ``m``: a spec string, or an ImageSet for the unfiltered store."""
    from .data.mixing import STORE_OPTIONS
    from .data.store import load_store

    if isinstance(m.data, str) or m.data is None:
        return m.data
    kind, stage, arg = m.data
    store = _store_path(inputs, stage)
    if kind == "store":
        if arg:
            return store
        opts = load_options(cfg)
        return load_store(store, kept_only=False, **{k: v for k, v in opts.items() if k in STORE_OPTIONS})
    if kind == "mix":
        return f"{_real_spec(cfg)}+{store}@{arg}"
    if kind == "few-shot-mix":
        return f"{_few_shot_spec(cfg)}+{store}@{arg}"
    if kind == "few-shot-clip-mix":  # an epoch is a pass over the synthetic store; the real images cycle
        syn, real = cfg.study.clip_batch_size, cfg.study.clip_real_batch_size
        return f"{store}+{_few_shot_spec(cfg)}@{syn / (syn + real)!r},{real / (syn + real)!r}"
    raise ValueError(kind)


def _clip_model(cfg) -> tuple:
    """``(name, load_any_model kwargs)`` of ``clip.model``: ``small_clip`` with ``clip_kwargs`` for a
    small-CLIP weights path, ``open_clip:NAME`` with ``pretrained``, else the name as it is."""
    model = cfg.clip.model
    if model.startswith("open_clip:"):
        return model, {"pretrained": cfg.clip.pretrained}
    if model == "small_clip" or model.startswith("small_clip:"):
        return model, {}
    return "small_clip", {"clip_kwargs": {"weights": model}}


def _arm_model(cfg, m: ArmModel) -> Optional[str]:
    """The model name an arm trains: ``train.model`` (supervised), ``clip.model`` (classifier tuning),
    else the regime's default."""
    if m.regime == "supervised":
        return cfg.train.model
    if m.regime == "classifier-tuning":
        return _clip_model(cfg)[0]
    return None


def _train_fn(cfg, m: ArmModel):
    def fn(folder: Path, inputs: Dict[str, Any]) -> Dict[str, Any]:
        from .training import train_model

        options = dict(m.options)
        init = options.pop("init_model", None)
        if init:
            options["init"] = inputs[f"train-{init}"]["checkpoint"]
        if m.regime == "classifier-tuning":
            options.update(_clip_model(cfg)[1])  # clip.pretrained, or the small CLIP's weights
        result = train_model(
            m.regime, _train_data(cfg, m, inputs), _val_set(cfg), _arm_model(cfg, m),
            folder / "checkpoint", epochs=m.epochs or cfg.train.epochs, batch_size=m.batch_size or cfg.train.batch_size,
            lr=m.lr if m.lr is not None else (cfg.train.lr if m.regime == "supervised" else None), seed=m.seed,
            weight_decay=m.weight_decay if m.weight_decay is not None else cfg.train.weight_decay,
            precision=cfg.train.precision, warmup_epochs=cfg.train.warmup_epochs, patience=cfg.train.patience,
            optimizer=cfg.train.optimizer, dataset=cfg.data.dataset, data_options=load_options(cfg), **options,
        )
        info = result.to_dict()
        write_json(folder / "result.json", info)
        return {"checkpoint": str(result.checkpoint_dir), "val_accuracy": result.val_accuracy,
                "seconds": round(result.seconds, 2), "images_per_s": result.images_per_s}

    return fn


def bench_settings(cfg):
    """``robustness.BenchSettings`` from the run config (the test split is used only here)."""
    from .data import load_dataset
    from .robustness import BenchSettings

    train = load_dataset(cfg.data.dataset, split="train", **load_options(cfg))
    if cfg.data.train_limit and cfg.data.train_limit < len(train):  # a fixed real subset for the Mahalanobis means
        from .training.engine import limit_val

        train = limit_val(train, cfg.data.train_limit, seed=0)
    return BenchSettings(data=load_dataset(cfg.data.dataset, split="test", **load_options(cfg, evaluation=True)),
                         val=_val_set(cfg), train=train, **{**ood_settings(cfg), **bench_fields(cfg)})


def bench_fields(cfg) -> Dict[str, Any]:
    """The ``BenchSettings`` fields the config's bench section sets (``bench.options`` last), checked; the
    study's bench stages and ``synthclone bench`` both take their settings from here."""
    from .device import resolve_device
    from .robustness.core import check_bench_options

    check_bench_options(cfg.bench.options)
    b = cfg.bench
    return {"batch_size": b.batch_size, "seed": b.seed, "limit": b.limit or cfg.data.test_limit, "ece_bins": b.ece_bins,
            "severities": list(b.severities), "epsilons": list(b.epsilons), "device": resolve_device(cfg.device),
            **b.options}


def _bench_fn(cfg, m: ArmModel):
    def fn(folder: Path, inputs: Dict[str, Any]) -> Dict[str, Any]:
        from .data import dataset_entry
        from .data.store import write_table
        from .models import load_any_model
        from .robustness import run_probes

        if m.regime is None:
            classes, _ = dataset_entry(cfg.data.dataset).classes(**load_options(cfg))
            name, kwargs = _clip_model(cfg)
            model = load_any_model(name, classes=classes, **kwargs)
        else:
            model = load_any_model(inputs[f"train-{m.name}"]["checkpoint"])
        rows = run_probes(model, m.name, cfg.bench.probes, bench_settings(cfg))
        from .robustness import ROWS_SCHEMA

        write_table(rows, folder / "rows.parquet", schema=ROWS_SCHEMA, config_hash=stage_hash(folder))
        return {"rows": str(folder / "rows.parquet"), "seconds": rows.attrs.get("seconds", {}), "tags": m.tags(),
                "hardware": rows.attrs.get("device")}

    return fn


def _report_fn(cfg, models: List[ArmModel]):
    def fn(folder: Path, inputs: Dict[str, Any]) -> Dict[str, Any]:
        from .report.build import build_report

        # the report always lands in RUN_DIR/report/ (the hashed stage folder holds only done.json)
        written = build_report(cfg, folder.parent, inputs, models, folder.parent / "report")
        return {path.suffix.lstrip("."): str(path) for path in written}

    return fn


def shipped_weights_fingerprint() -> Dict[str, str]:
    """SHA-256 (first 16 hex digits) of each shipped weights file, so stages rerun when weights change."""
    import hashlib

    from .paths import WEIGHTS_DIR

    out = {}
    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return out


def _train_key(cfg) -> Dict[str, Any]:
    """The train section as it enters the training stages' keys: how fast training runs
    (channels-last, compilation) is left out, and ``sync_bn`` only when on, so finished stages of
    runs made before these settings existed are reused."""
    key = cfg.train.model_dump(exclude={"channels_last", "compile"})
    if not key.get("sync_bn"):
        key.pop("sync_bn", None)
    return key


def build_stages(cfg) -> List[Stage]:
    """Every stage of the study, in dependency order."""

    stages = [data_stage(cfg)]
    weights = shipped_weights_fingerprint()
    # the list of further generators is not part of any store's key: adding one reruns nothing else
    gcfg = {**{k: v for k, v in cfg.generate.model_dump().items() if k != "generators"}, "shipped_weights": weights,
            "clip": cfg.clip.model_dump(), "load": load_options(cfg)}
    models = plan_models(cfg)
    wanted = {need for m in models for need in m.needs}
    for strat in cfg.generate.prompts:
        name = _gen_stage_name(strat)
        if name in wanted or strat == cfg.generate.prompts[0]:
            stages.append(Stage(name, _generate_fn(cfg, strat), {**gcfg, "prompts": [strat], "dataset": cfg.data.dataset}, []))
    if SSL_STAGE in wanted:
        strat = ssl_prompts(cfg)
        stages.append(Stage(SSL_STAGE, _generate_fn(cfg, strat, images_per_prompt=cfg.study.ssl_images_per_prompt),
                            {**gcfg, "prompts": [strat], "images_per_prompt": cfg.study.ssl_images_per_prompt,
                             "dataset": cfg.data.dataset}, []))
    for g in cfg.generate.generators:
        if _generator_stage(g.name) in wanted:
            stages.append(Stage(_generator_stage(g.name), _generate_fn(cfg, cfg.generate.prompts[0], generator=g),
                                {**gcfg, "prompts": [cfg.generate.prompts[0]], **_generator_update(g), **_snapshot_key(g),
                                 "dataset": cfg.data.dataset}, []))
    compared = [_gen_stage_name(cfg.generate.prompts[0])] + [_generator_stage(g.name) for g in cfg.generate.generators
                                                            if _generator_stage(g.name) in wanted]
    if FEW_SHOT_STAGE in wanted:
        stages.append(Stage(FEW_SHOT_STAGE, _generate_fn(cfg, cfg.generate.prompts[0], cfg.study.few_shot_k),
                            {**gcfg, "prompts": [cfg.generate.prompts[0]], "shots": cfg.study.few_shot_k,
                             "dataset": cfg.data.dataset}, []))
    train_cfg = {**_train_key(cfg), "data": cfg.data.model_dump(), "study": cfg.study.model_dump(),
                 "shipped_weights": weights, "clip": cfg.clip.model_dump()}
    for m in models:
        if m.regime is None:
            continue
        needs = list(m.needs)
        if "init_model" in m.options:
            needs.append(f"train-{m.options['init_model']}")
        stages.append(Stage(f"train-{m.name}", _train_fn(cfg, m), {**train_cfg, "arm": m.tags(), "epochs": m.epochs, "batch_size": m.batch_size, "lr": m.lr,
                                                          "weight_decay": m.weight_decay}, needs))
    if len(compared) > 1:
        # the CAS reads the real arm's first model (trained on real data) where the study has one
        cas = next((f"train-{m.name}" for m in models if m.arm == "real" and m.regime == "supervised"), None)
        stages.append(Stage(COMPARE_STAGE, _compare_fn(cfg, compared, cas),
                            {"data": cfg.data.model_dump(), "k": COMPARE_K, "per_class": cfg.generate.per_class,
                             "shipped_weights": weights, "clip": cfg.clip.model_dump(), "cas": cas},
                            compared + ([cas] if cas else [])))
    bench_cfg = {**cfg.bench.model_dump(), "data": cfg.data.model_dump(), "shipped_weights": weights,
                 "clip": cfg.clip.model_dump()}
    if "corruptions" in cfg.bench.probes or "all" in cfg.bench.probes:
        from .robustness.corruption_ops import frost_source

        if frost_source() == "photographs":  # another frost layer, other rows (the procedural one keeps old keys)
            bench_cfg["frost_layer"] = "photographs"
    for m in models:
        needs = [] if m.regime is None else [f"train-{m.name}"]
        stages.append(Stage(f"bench-{m.name}", _bench_fn(cfg, m), {**bench_cfg, "arm": m.tags()}, needs))
    report_inputs = [s.name for s in stages]
    stages.append(Stage("report", _report_fn(cfg, models), {**cfg.report.model_dump(), "study": cfg.study.model_dump()},
                        report_inputs))
    return stages


def finished_outputs(cfg, run_dir: Path) -> Dict[str, Any]:
    """Outputs of the stages of ``cfg`` already finished in ``run_dir`` (nothing is run)."""
    hashes: Dict[str, str] = {}
    outputs: Dict[str, Any] = {}
    for stage in build_stages(cfg):
        folder = stage.folder(Path(run_dir), hashes)
        hashes[stage.name] = folder.name
        marker = folder / "done.json"
        if marker.is_file():
            outputs[stage.name] = read_done(marker, Path(run_dir))["outputs"]
    return outputs


def _weights_classes(weights: Path, key: str) -> Optional[List[str]]:
    """The classes a shipped-style weights file's JSON sidecar says the model learnt (None: no claim)."""
    meta = weights.with_suffix(".json") if weights.suffix else weights
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return sorted((doc.get("training") or {}).get(key) or {}) or None


def _check_embedded_models(cfg) -> None:
    """The embedded generator and the small CLIP only know the classes they were trained on: a
    study on other classes fails here, before anything runs, naming the setting to change."""
    from .data import dataset_entry
    from .errors import UserError
    from .models.small_clip import require_known_classes
    from .paths import WEIGHTS_DIR

    from .generators.embedded import resolve_embedded_weights

    classes, _ = dataset_entry(cfg.data.dataset).classes(**load_options(cfg))
    embedded = [("the embedded generator", cfg.generate)] if cfg.generate.generator == "embedded" else []
    if "generator" in cfg.study.arms:
        embedded += [(f"generate.generators' {g.name}", g) for g in cfg.generate.generators if g.generator == "embedded"]
    for what, spec in embedded:
        if spec.model != "tiny":
            require_known_classes(what, _weights_classes(resolve_embedded_weights(spec.model), "captions_per_class"),
                                  classes, "set generate.generator: diffusers with generate.model: <a pipeline id or folder>")
    clip_arms = {"zero-shot", "classifier-tuning"} & set(cfg.study.arms)
    model = cfg.clip.model
    if model.startswith("open_clip:"):
        if clip_arms or "clip" in cfg.generate.filter:
            from .models.external import resolve_open_clip

            resolve_open_clip(model, cfg.clip.pretrained)  # the name and the weights, offline: nothing is loaded
        return
    if cfg.clip.pretrained is not None:
        raise UserError(f"clip.pretrained is for open_clip models, not clip.model {model!r}; drop it or set "
                        "clip.model: open_clip:NAME")
    if (clip_arms or "clip" in cfg.generate.filter) and model != "small_clip:tiny":
        path = WEIGHTS_DIR / "small_clip.safetensors" if model == "small_clip" else Path(model)
        path = path / "small_clip.safetensors" if path.is_dir() else path
        require_known_classes("the small CLIP", _weights_classes(path, "zero_shot_test_per_class"), classes,
                              "set clip.model: open_clip:NAME with clip.pretrained (e.g. open_clip:ViT-B-16 with "
                              "openai, docs/clip.md), or drop the zero-shot and classifier-tuning arms and the clip filter")


def check(cfg, dry_run: bool = False) -> List[str]:
    """Validate the names a config uses against the registries, without loading data or weights.

    Raises :class:`~synthclone.errors.UserError` for an unknown name, and for a device this machine
    lacks (CUDA without a GPU) unless ``dry_run``; returns notes about things that are only needed
    at run time (a dataset folder absent on this machine, a missing extra, with ``dry_run`` the GPU).
    """
    import importlib.util

    from .data import DATASETS
    from .device import resolve_device
    from .errors import UserError
    from .filters import FILTERS
    from .generators import GENERATORS
    from .prompts import PROMPTS
    from .robustness import resolve_probes
    from .training import REGIMES

    notes: List[str] = []
    try:
        resolve_device(cfg.device)  # CUDA asked for on a machine without it: an error now, not a CPU run later
    except UserError as exc:
        if not dry_run:
            raise
        notes.append(f"{exc} (needed at run time)")
    GENERATORS.get(cfg.generate.generator)
    for g in cfg.generate.generators:
        GENERATORS.get(g.generator)  # an unknown backend of a compared generator: one line now
    for p in cfg.generate.prompts:
        PROMPTS.get(p)
    for f in cfg.generate.filter:
        FILTERS.get(f)
    resolve_probes(cfg.bench.probes)
    from .robustness.core import check_bench_options

    check_bench_options(cfg.bench.options)
    if "ssl" in cfg.study.arms and not ssl_prompts(cfg):
        raise UserError(f"the ssl arm (StableRep) needs prompts that differ image by image, but generate.prompts "
                        f"{cfg.generate.prompts} has none of {', '.join(PER_IMAGE_PROMPTS)}: add one, set "
                        "study.ssl_prompts, or drop ssl from study.arms")
    if cfg.study.ssl_prompts and cfg.study.ssl_prompts not in PROMPTS:
        PROMPTS.get(cfg.study.ssl_prompts)  # the one-line error listing the strategies
    if cfg.train.options:
        raise UserError(f"train.options {sorted(cfg.train.options)} are regime options of 'synthclone train'; a study "
                        "sets each arm's own, so remove them from the config")
    if cfg.generate.generator == "diffusers" and {"few-shot-guided", "few-shot-clip-guided"} & set(cfg.study.arms):
        # the real-guided store is image-to-image: settings that give no denoising step fail now, not hours in
        from .distributed.generation import guided_strength
        from .generators.diffusers_backend import check_img2img

        strength = guided_strength(cfg.generate.strength, cfg.study.few_shot_k)
        try:
            check_img2img(cfg.generate.steps, strength)
        except UserError as exc:
            raise UserError(f"the real-guided store (study.few_shot_k {cfg.study.few_shot_k}, strength {strength}): "
                            f"{exc}; or set generate.strength") from None
    for m in plan_models(cfg):
        if m.regime:
            REGIMES.get(m.regime)
    model = cfg.train.model
    if model.startswith("timm:"):
        import timm

        if not timm.is_model(model.split(":", 1)[1].split("@")[0]):
            raise UserError(f"train.model {model!r}: timm has no such model; see timm.list_models()")
    elif model.startswith("torchvision:"):
        import torchvision

        if model.split(":", 1)[1] not in torchvision.models.list_models():
            raise UserError(f"train.model {model!r}: torchvision has no such model; see torchvision.models.list_models()")
    elif ":" not in model and not Path(model).exists():
        from .models import MODELS

        MODELS.get(model)
    if cfg.data.dataset not in DATASETS and not Path(cfg.data.dataset).is_dir():
        notes.append(f"dataset folder {cfg.data.dataset} is not on this machine (needed at run time)")
    else:
        _check_embedded_models(cfg)
    extras = {"diffusers": "diffusers", "open_clip": "clip"}
    if cfg.generate.generator == "diffusers" and importlib.util.find_spec("diffusers") is None:
        notes.append("the diffusers extra is not installed: pip install 'synthclone[diffusers]'")
    if cfg.generate.ray and importlib.util.find_spec("ray") is None:
        notes.append("the ray extra is not installed: pip install 'synthclone[ray]'")
    if "open_clip" in model and importlib.util.find_spec(extras["open_clip"]) is None:
        notes.append("the clip extra is not installed: pip install 'synthclone[clip]'")
    return notes


def _data_stage(cfg):
    def fn(folder: Path, _inputs: Dict[str, Any]) -> Dict[str, Any]:
        from .data import DATASETS, dataset_entry, load_dataset

        entry = dataset_entry(cfg.data.dataset)
        opts = load_options(cfg)
        summary = {}
        for split in entry.splits:  # every split the dataset has, the generator corpus included
            data = entry.load(split, **opts)
            counts = [int((data.labels == c).sum()) for c in range(data.num_classes)]
            summary[split] = {"images": len(data), "shape": list(data.shape), "per_class": counts,
                              "how": data.meta.get("split_how", "as registered")}
        summary["classes"] = data.classes
        ood = ood_settings(cfg)
        for name in ood["ood_sets"]:
            if name in DATASETS:
                oset = load_dataset(name, split="test")
                summary[f"ood:{name}"] = {"images": len(oset), "shape": list(oset.shape)}
        write_json(folder / "summary.json", summary)
        return {"summary": str(folder / "summary.json")}

    return fn


def data_stage(cfg) -> Stage:
    return Stage("data", _data_stage(cfg), cfg.data.model_dump(), [])


def plan(cfg) -> List[str]:
    """The study's stages, one line each (``synthclone run --dry-run``)."""
    notes = check(cfg, dry_run=True)
    stages = build_stages(cfg)
    lines = [f"config OK: {cfg.name!r}"] + [f"note: {n}" for n in notes]
    lines.append(f"study {cfg.name!r}: {len(stages)} stages")
    for stage in stages:
        needs = f"  <- {', '.join(stage.inputs)}" if stage.inputs and stage.name != "report" else ""
        lines.append(f"  {stage.name}{needs}")
    return lines


def run_study(cfg, run_dir: Path) -> int:
    """Run (or resume) every stage of the study and print where the report is."""
    from .config import provenance
    from .progress import debug, run_log

    start = time.time()
    with run_log(Path(run_dir) / "run.log"):
        debug(f"study {cfg.name!r} in {Path(run_dir).resolve()}: {json.dumps(provenance(), default=str)}")
        outputs = run_stages(build_stages(cfg), Path(run_dir))
        debug(f"study {cfg.name!r} finished in {time.time() - start:.0f} s")
    report = outputs.get("report", {})
    print(f"study {cfg.name!r} finished in {time.time() - start:.0f} s")
    for i, path in enumerate(report.values()):
        print(f"{'report:' if i == 0 else '       '} {path}")
    return 0
