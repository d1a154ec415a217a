"""Typed configuration: YAML file -> preset -> ``--set section.key=value`` overrides.

Every section is a pydantic model that forbids unknown keys, so a typo is rejected naming the key
and the valid ones. :func:`write_resolved` saves the resolved config with the package version and
the git SHA into a run directory.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer

from .errors import UserError

PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"


class Section(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class DataConfig(Section):
    dataset: str = Field("fashion-mnist", description="registered dataset name or an ImageFolder path")
    train_limit: Optional[int] = Field(None, ge=1, description="use at most this many real training images")
    val_limit: Optional[int] = Field(None, ge=1, description="use at most this many validation images")
    test_limit: Optional[int] = Field(None, ge=1, description="evaluate on at most this many test images")
    ood: Optional[List[str]] = Field(None, description="out-of-distribution sets (names or folders); None = the dataset's own (fashion-mnist: digits)")
    image_size: Optional[int] = Field(None, ge=8, description="images are brought to this size (shorter side, centre crop); None = the dataset's own size (a folder: its first image's shorter side)")
    workers: Optional[int] = Field(None, ge=0, description="DataLoader workers decoding file-backed images; None = the machine's cores (at most 8), 0 = in the main process")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of train/ (or of a flat folder) carved out as validation, by a hash of each file's path")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of a flat folder carved out as test, by a hash of each file's path")
    skip_unreadable: bool = Field(False, description="leave unreadable image files out (counted) instead of stopping with an error")
    class_names: Optional[str] = Field(None, description="JSON file mapping class folder names to class names")
    cache_mb: int = Field(256, ge=0, description="a split or store whose decoded pixels take at most this many MiB is held in memory; larger ones are decoded batch by batch in DataLoader workers (0: always stream)")


class GeneratorSpec(Section):
    """One more text-to-image generator of the study (issue 18): its store of the first prompt strategy is
    made and a clone trained on it for every seed, beside the main generator's (``generate.generator``)."""

    name: str = Field(description="a plain name for the report (e.g. embedded-g5, sd-turbo)")
    generator: str = Field("embedded", description="registered generator backend: embedded, diffusers")
    model: Optional[str] = Field(None, description="its weights: a diffusers id/path; embedded: None = the shipped model, "
                                 "shipped:<name> = a shipped snapshot (GENERATOR_CARD.md), or a weights path")
    guidance: Optional[float] = Field(None, ge=0, description="None: generate.guidance")
    steps: Optional[int] = Field(None, ge=1, description="None: generate.steps")
    scheduler: Optional[str] = Field(None, description="None: generate.scheduler")
    generator_options: Dict[str, Any] = Field(default_factory=dict, description="options of this generator")

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        if not v or not all(ch.isalnum() or ch in "-_." for ch in v):
            raise ValueError(f"{v!r} must be a plain name (letters, digits, '-', '_', '.')")
        return v


class GenerateConfig(Section):
    generator: str = "embedded"
    model: Optional[str] = Field(None, description="generator weights: a diffusers id/path; embedded: None = the shipped "
                                 "model, shipped:<name> = a shipped snapshot (GENERATOR_CARD.md), or a weights path")
    prompts: List[str] = Field(default_factory=lambda: ["template"], description="prompt strategies, one store each")
    per_class: int = Field(100, ge=1)
    guidance: float = Field(2.0, ge=0)
    steps: int = Field(10, ge=1)
    scheduler: str = "dpm"
    seed: int = 0
    batch_size: int = Field(256, ge=1)
    filter: List[str] = Field(default_factory=lambda: ["clip"], description="filters applied in order")
    generator_options: Dict[str, Any] = Field(default_factory=dict, description="options of the generator, checked by it (an unknown one is an error). embedded: {compile: true} (about 1.2x faster sampling after ~30 s of compilation), precision, micro_batch, cfg, channels_last. diffusers: dtype (auto = float16 on CUDA, float32 on the CPU; float32, float16, bfloat16), variant (auto = the fp16 weight files for float16 when the pipeline has them; none; or a name), cpu_offload (CUDA only), attention_slicing, vae_slicing, vae_tiling, height, width, negative_prompt. The device is the run's device setting, not an option here")
    ray: Optional[str] = Field(None, description="'local' or a Ray address; None runs in-process. Every Ray node must see the store folder (and local weights) at the same path: a shared filesystem")
    ray_workers: Optional[int] = Field(None, ge=1, description="Ray actors making shards, each loading the generator once (default: one per GPU of the cluster on CUDA, one per CPU otherwise)")
    prompt_options: Dict[str, Any] = Field(default_factory=dict, description="options of the prompt strategy, e.g. {template: 'a sketch of a {c}'} or {captions: FILE}")
    images_per_prompt: int = Field(1, ge=1, description="each prompt is used for this many images of its class (StableRep generates several images per caption, positives of each other); the study's ssl store uses study.ssl_images_per_prompt")
    filter_options: Dict[str, Dict[str, Any]] = Field(default_factory=dict, description="options per filter, e.g. {clip: {quota: 100}, dedup: {max_distance: 2}}")
    shard_size: int = Field(128, ge=1, description="images per resumable work unit (one Ray task each)")
    store_layout: Literal["folder", "tar"] = Field("folder", description="how the store holds images: folder = images/<class>/<id>.png (any ImageFolder reader), tar = one WebDataset-style tar per shard, shards/<shard>.tar (millions of images, few files)")
    shots: int = Field(0, ge=0, description="generate command: k real images per class guide generation (0 = text only)")
    strength: Optional[float] = Field(None, ge=0, le=1, description="img2img strength of real-guided generation; None = the rule from k")
    generators: List[GeneratorSpec] = Field(default_factory=list, description="more generators to compare (a study): each makes a store of the first prompt strategy, gets a clone per seed (arm 'generator') and a row in the report's generator table with its fidelity, diversity and coverage (synthclone compare's metrics)")

    @field_validator("generators")
    @classmethod
    def _distinct(cls, v: List[GeneratorSpec]) -> List[GeneratorSpec]:
        names = [g.name for g in v]
        if len(set(names)) != len(names):
            raise ValueError(f"generator names must be distinct, got {names}")
        return v


class TrainConfig(Section):
    data: str = Field("real", description="training data spec: real, a store path, real+STORE@0.5, real:k=16, ...")
    model: str = "resnet8"
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.05, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    seeds: List[int] = Field(default_factory=lambda: [0])
    regimes: List[str] = Field(default_factory=lambda: ["supervised"])
    mix_ratio: float = Field(0.5, ge=0, le=1, description="share of synthetic images per batch in mixed training")
    optimizer: Optional[Literal["sgd", "adamw"]] = Field(None, description="None: the regime's own (SGD with momentum for supervised training, AdamW for the CLIP and SSL regimes)")
    warmup_epochs: float = Field(0.5, ge=0, description="linear learning-rate warm-up before the cosine decay, in epochs")
    patience: Optional[int] = Field(None, ge=1, description="early stopping: epochs without validation improvement (None: train every epoch)")
    options: Dict[str, Any] = Field(default_factory=dict, description="regime options of 'synthclone train' (tau, temperature, probe_epochs, ...; 'synthclone list regimes'); a study sets each arm's own, so 'synthclone run' refuses them")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="auto: bf16 autocast where the CPU/GPU has native bf16 (AMX, AVX-512 BF16, CUDA bf16), else fp32; fp16 (CUDA only) trains with a GradScaler")
    channels_last: bool = Field(False, description="channels-last memory format for model and batches (faster convolutions on GPUs with tensor cores)")
    compile: bool = Field(False, description="torch.compile the model (nn.Module.compile; the first steps compile, later ones run faster)")
    sync_bn: bool = Field(False, description="SyncBatchNorm across data-parallel processes (CUDA only); otherwise BatchNorm statistics are averaged over processes after each epoch")


class BenchConfig(Section):
    probes: List[str] = Field(default_factory=lambda: ["all"])
    batch_size: int = Field(256, ge=1)
    severities: List[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], description="corruption severities, each 1 to 5")
    epsilons: List[float] = Field(default_factory=lambda: [1 / 255, 2 / 255, 4 / 255, 8 / 255], description="L-inf attack radii (> 0) in pixel units")
    ece_bins: int = Field(15, ge=1)
    seed: int = 0
    limit: Optional[int] = Field(None, ge=1, description="evaluate every probe on at most this many test images")
    options: Dict[str, Any] = Field(default_factory=dict, description="further robustness.BenchSettings fields, e.g. {pgd_steps: 5, attacks: [fgsm, pgd_linf]}")

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: List[int]) -> List[int]:
        bad = [s for s in v if not 1 <= s <= 5]
        if bad or not v:
            raise ValueError(f"severities are 1 to 5 (at least one), not {bad or v}")
        return v

    @field_validator("epsilons")
    @classmethod
    def _epsilons(cls, v: List[float]) -> List[float]:
        if any(e <= 0 for e in v):
            raise ValueError(f"epsilons must be > 0, not {[e for e in v if e <= 0]}")
        return v


ARMS = [
    "real", "synthetic", "unfiltered", "mixed", "zero-shot", "classifier-tuning", "ssl", "clip",
    "few-shot-real", "few-shot-guided", "pretrain-finetune", "few-shot-clip", "few-shot-clip-guided", "generator",
]


class StudyConfig(Section):
    """Which models the study trains and compares (each arm is one or more models per seed)."""

    arms: List[Literal[tuple(ARMS)]] = Field(default_factory=lambda: list(ARMS), description="the models to train and compare")
    few_shot_k: int = Field(8, ge=1, description="real images per class in the few-shot arms (and for real-guided generation)")
    few_shot_epochs: int = Field(30, ge=1, description="epochs of the few-shot arms (tiny data needs more passes)")
    ssl_epochs: Optional[int] = Field(None, ge=1, description="epochs of self-supervised pre-training (default: train.epochs)")
    # He et al.'s classifier tuning (CVMI-Lab/SyntheticData README: 30 epochs, AdamW, weight decay 0.1; zero-shot
    # batch 512 and lr 2e-3; few-shot a synthetic batch of 512 and a real batch of 32 per step, lr 1e-3)
    # StableRep (Tian et al., NeurIPS 2023; google-research/syn-rep-learn StableRep/README: --n_img 6, 10 images per caption)
    ssl_prompts: Optional[str] = Field(None, description="the prompt strategy of the ssl arm's store; None: the first of generate.prompts whose prompts are not the class name alone (not classname, template): with one prompt per class 'same prompt' would mean 'same class'")
    ssl_images_per_prompt: int = Field(10, ge=2, description="images generated per prompt for the ssl arm's store (StableRep: 10)")
    ssl_group_size: int = Field(6, ge=2, description="images of one prompt drawn into a batch together (StableRep's n_img: 6)")
    clip_epochs: int = Field(30, ge=1, description="epochs of the classifier-tuning arms (He et al.: 30)")
    clip_batch_size: int = Field(512, ge=1, description="synthetic images per step in the classifier-tuning arms (He et al.: 512)")
    clip_real_batch_size: int = Field(32, ge=1, description="real images per step in the few-shot classifier-tuning arms (He et al.: 32)")
    clip_weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay of the classifier-tuning arms (He et al.: 0.1)")
    baseline_prompts: str = Field("template", description="the prompt strategy the language-enhancement claim compares against (it should be one of generate.prompts)")


class ClipConfig(Section):
    """The CLIP model of every CLIP step: the CLIP filter, the zero-shot arm and classifier tuning (docs/clip.md)."""

    model: str = Field("small_clip", description="small_clip (the shipped small CLIP, the embedded world's: Fashion-MNIST's "
                                                 "classes only), small_clip:tiny (random weights, smoke tests), a small-CLIP "
                                                 "weights path, or open_clip:NAME for any other data: NAME from "
                                                 "open_clip.list_models() (He et al. used RN50 and ViT-B-16), a model-config "
                                                 "JSON path (open_clip:/path/my-clip.json), local-dir:FOLDER or hf-hub:ORG/REPO")
    pretrained: Optional[str] = Field(None, description="weights of an open_clip:NAME model: a pretrained tag (openai, "
                                                        "laion2b_s34b_b79k, ...; downloaded unless in the Hugging Face cache) "
                                                        "or a local weights file; 'none' = random weights (a meaningless "
                                                        "zero-shot classifier, smoke tests only); must be set for open_clip:NAME, "
                                                        "left unset for local-dir:/hf-hub: models (their own weights) and small_clip")

    @field_validator("pretrained")
    @classmethod
    def _pretrained_text(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else str(value).strip() or None

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # unset weights are left out: this section is hashed into every stage's key, and runs made
        # before clip.pretrained existed must keep their finished stages (stores above all)
        out = handler(self)
        if isinstance(out, dict) and out.get("pretrained") is None:
            out.pop("pretrained", None)
        return out


class ReportConfig(Section):
    formats: List[Literal["html", "md"]] = Field(default_factory=lambda: ["html", "md"], min_length=1, description="html: RUN_DIR/report/index.html (figures inline), md: report.md with the figures as PNG files beside it")
    confidence: float = Field(0.95, gt=0, lt=1)
    guidance_grid: List[float] = Field(default_factory=lambda: [1.0, 2.0, 3.0, 5.0, 7.5], description="guidance scales of the sample grids")


class RunConfig(Section):
    """The whole study: what ``synthclone run`` executes."""

    name: str = Field("quickstart", description="the study's name; its run directory is <out_dir>/<name>")
    out_dir: str = Field("runs", description="run directories are created under this folder")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # the name becomes a folder under out_dir: a path in it would put the run anywhere
        if not v or v in (".", "..") or "/" in v or "\\" in v:
            raise ValueError(f"{v!r} must be a plain folder name (no '/', not '..'); put paths in out_dir or --out")
        return v
    device: str = Field("auto", description="auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda or cuda:N; "
                                            "every stage runs there, and CUDA on a machine without one is an error")
    threads: Optional[int] = Field(None, ge=1)
    data: DataConfig = Field(default_factory=DataConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    bench: BenchConfig = Field(default_factory=BenchConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)
    clip: ClipConfig = Field(default_factory=ClipConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("device")
    @classmethod
    def _device_spelling(cls, value: str) -> str:
        from .device import check_device_spec

        try:
            return check_device_spec(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None


def _set_path(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise UserError(f"config key {dotted!r}: {key!r} is a value, not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` -> ``("train.epochs", 3)``; the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"override {text!r} must look like section.key=value (e.g. train.epochs=3)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"override {text!r} has no key; write section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _model_for(path: tuple, root: type[BaseModel] = RunConfig) -> type[BaseModel]:
    model = root
    for key in path:
        field = model.model_fields.get(str(key))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return model
        model = field.annotation
    return model


def _explain(err: ValidationError, schema: type[BaseModel]) -> str:
    first = err.errors()[0]
    loc = tuple(first["loc"])
    dotted = ".".join(str(p) for p in loc)
    if first["type"] == "extra_forbidden":
        parent = _model_for(loc[:-1], schema)
        valid = ", ".join(parent.model_fields)
        where = ".".join(str(p) for p in loc[:-1]) or "the top level"
        return f"unknown config key {dotted!r}; valid keys in {where}: {valid}"
    value = first.get("input")
    return f"bad value for config key {dotted!r}: {first['msg'].removeprefix('Value error, ')} (got {value!r})"


def validate(tree: Dict[str, Any], schema: type[BaseModel] = RunConfig) -> Any:
    try:
        return schema.model_validate(tree)
    except ValidationError as err:
        raise UserError(_explain(err, schema)) from None


def read_yaml(path: str | Path) -> Dict[str, Any]:
    p = Path(path)
    if not p.is_file() and not p.suffix and (PACKAGE_CONFIGS / f"{p}.yaml").is_file():
        p = PACKAGE_CONFIGS / f"{p}.yaml"  # a preset name shipped with the package
    if not p.is_file():
        raise UserError(f"config file {path} does not exist; pass a YAML file (see configs/)")
    try:
        tree = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config file {p} is not valid YAML{where}; fix the syntax") from None
    if not isinstance(tree, dict):
        raise UserError(f"config file {p} must hold a mapping of sections (data:, train:, ...)")
    return tree


def load_config(path: Optional[str | Path] = None, overrides: Optional[List[str]] = None,
                schema: type[BaseModel] = RunConfig, flags: Optional[Dict[str, Any]] = None):
    """Defaults <- YAML file <- ``--set`` overrides <- flags, validated into ``schema`` (see :func:`merge`)."""
    return merge(read_yaml(path) if path else {}, overrides, flags, schema)


def merge(tree: Dict[str, Any], overrides: Optional[List[str]] = None, flags: Optional[Dict[str, Any]] = None,
          schema: type[BaseModel] = RunConfig):
    """The one way settings reach a command: the config ``tree`` (a YAML file's) <- ``--set key=value``
    overrides (YAML values) <- the command's own flags, given as ``{dotted config key: value}`` with
    ``None`` for a flag not given; validated once into ``schema``, so a flag, a ``--set`` and a YAML key
    are checked by the same typed field (unknown keys and out-of-range values are one-line errors)."""
    tree = {k: v for k, v in tree.items() if k != "_provenance"}  # a run's resolved config.yaml reads back
    for text in overrides or []:
        key, value = parse_override(text)
        _set_path(tree, key, value)
    for key, value in (flags or {}).items():
        if value is not None:
            _set_path(tree, key, value)
    return validate(tree, schema)


def option_overrides(pairs: List[str], section: str, flag: str = "--option") -> List[str]:
    """``--option KEY=VALUE`` (the shorthand for ``--set SECTION.options.KEY=VALUE``) as ``--set`` overrides."""
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {pair!r} must look like KEY=VALUE (e.g. tau=0.1)")
        out.append(f"{section}.options.{key.strip()}={value}")
    return out


@functools.lru_cache(maxsize=None)
def file_provenance(schema: Optional[str] = None, config_hash: Optional[str] = None) -> Dict[str, Any]:
    """What every file synthclone writes carries about its origin: the schema it follows (e.g.
    ``synthclone.rows/1``), the package version, the git commit and, where one config made the file,
    ``config_hash`` (a store's config hash, a study stage's hash, :func:`config_hash` of a run config).
    No clock, so equal content still gives equal bytes."""
    from . import __version__

    out = {"schema": schema, "synthclone_version": __version__, "git_sha": git_sha()}
    if config_hash is not None:
        out["config_hash"] = config_hash
    return out


def config_hash(cfg: BaseModel) -> str:
    """12 hex digits of the SHA-256 of a resolved config (its canonical JSON)."""
    import hashlib

    text = json.dumps(json.loads(cfg.model_dump_json()), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def git_sha(cwd: Optional[Path] = None) -> Optional[str]:
    """The git commit of the synthclone source tree (None outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance() -> Dict[str, Any]:
    from . import __version__

    import torch

    return {
        "synthclone_version": __version__,
        "git_sha": git_sha(),
        "torch_version": str(torch.__version__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host_cpus": os.cpu_count(),
    }


def write_resolved(cfg: BaseModel, run_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config plus provenance (version, git SHA) atomically into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = {"_provenance": provenance(), **json.loads(cfg.model_dump_json())}
    from .paths import atomic_write_text

    return atomic_write_text(run_dir / name, yaml.safe_dump(doc, sort_keys=False))
