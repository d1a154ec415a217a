"""``synthclone generate``: make (or resume) a synthetic dataset store with a text-to-image model.

    synthclone generate --dataset fashion-mnist --generator embedded --prompts template \\
        --per-class 500 --out DIR [--guidance 2 --steps 10 --seed 0 --filter clip --ray local|ADDRESS]
        [--config YAML] [--dtype auto --cpu-offload --vae-slicing ... --ray-workers N]

Settings come from ``GenerateConfig`` defaults, then the YAML file (a full study config with a
``generate:`` section, or just the generate keys), then the flags given. Running the same command
again resumes a killed run; a different config on an existing store is refused (exit 2).
"""

from __future__ import annotations

from typing import Any, Dict, List

from ..errors import UserError
from . import positive_int


def add_arguments(parser) -> None:
    add = parser.add_argument
    add("--out", "-o", required=True, help="store directory (created; an existing store is resumed)")
    add("--config", help="YAML config (a study config with a generate: section, or the generate keys alone)")
    add("--dataset", help="dataset whose classes to generate (fashion-mnist, or an ImageFolder path); default fashion-mnist")
    add("--classes", help="comma-separated class names to generate instead of the dataset's (text-only)")
    add("--generator", help="registered generator (embedded, diffusers); default embedded")
    add("--generator-weights", dest="model", metavar="PATH|ID|tiny",
        help="generator weights: a path, a diffusers hub id, or 'tiny' (random tiny model, smoke tests); default the shipped weights")
    add("--prompts", help="prompt strategy (see 'synthclone list prompts'); default template")
    add("--prompt-option", action="append", default=[], metavar="KEY=VALUE",
        help="option of the prompt strategy, e.g. template='a sketch of a {c}', captions=FILE, model=PATH (repeatable)")
    add("--per-class", type=positive_int, help="images per class (>= 1)")
    add("--guidance", type=float, help="classifier-free guidance scale")
    add("--steps", type=positive_int, help="sampler steps")
    add("--scheduler", help="sampler: dpm or ddim")
    add("--seed", type=int, help="global seed; image seeds derive from (seed, class, index)")
    add("--batch-size", type=positive_int, help="generator batch size (does not change the images)")
    add("--filter", action="append", metavar="NAME", help="filter (clip, dedup; repeatable or comma-separated; 'none' for no filter); default clip")
    add("--filter-option", action="append", default=[], metavar="FILTER.KEY=VALUE",
        help="filter option, e.g. clip.quota=100, clip.weights=PATH, dedup.max_distance=2 (repeatable)")
    add("--keep-per-class", type=int, metavar="N", help="CLIP filter quota: keep N images per class (top-confidence fill)")
    add("--clip-weights", metavar="PATH|tiny", help="small-CLIP weights for the clip filter ('tiny' = random tiny model)")
    add("--shots", type=int, metavar="K", help="real-guided generation from K real images per class (img2img); default 0 = text only")
    add("--strength", type=float, help="img2img strength for --shots (default: the rule from K)")
    add("--shard-size", type=int, help="images per resumable work unit / Ray task")
    add("--store-layout", choices=["folder", "tar"], help="folder (default): images/<class>/<id>.png; tar: one "
                                                           "WebDataset-style tar per shard (for millions of images)")
    add("--dtype", choices=["auto", "float32", "float16", "bfloat16"],
        help="diffusers: the dtype the pipeline runs in (auto: float16 on CUDA, float32 on the CPU)")
    add("--variant", metavar="auto|none|NAME",
        help="diffusers: weight files to load (auto: the fp16 files for float16 when the pipeline has them)")
    add("--cpu-offload", action="store_true", default=None,
        help="diffusers: keep each model on the CPU until it runs (less GPU memory; CUDA only)")
    add("--attention-slicing", action="store_true", default=None, help="diffusers: attention in slices (less memory)")
    add("--vae-slicing", action="store_true", default=None, help="diffusers: decode a batch one image at a time (less memory)")
    add("--vae-tiling", action="store_true", default=None,
        help="diffusers: decode large images in tiles (less memory; changes the pixels of images larger than a tile)")
    add("--ray", metavar="local|ADDRESS",
        help="make shards on Ray actors (one per GPU on CUDA, one per CPU otherwise) on a local Ray or a cluster; "
             "every node must see --out (and local weights) at the same path: a shared filesystem (docs/cluster.md)")
    add("--ray-cpus", type=int, help="CPUs of a local Ray (default: all)")
    add("--ray-workers", type=int, metavar="N",
        help="Ray actors, each loading the generator once (default: the cluster's GPUs on CUDA, its CPUs otherwise)")
    add("--threads", type=int, help="torch CPU threads of this process (default: torch's choice; 1 helps on a busy machine)")
    from ..device import add_device_argument

    add_device_argument(parser)


def _kv(text: str, what: str) -> tuple[str, Any]:
    from ..config import parse_override

    if "=" not in text:
        raise UserError(f"{what} {text!r} must look like KEY=VALUE")
    return parse_override(text)


def resolve(args) -> tuple:
    """``(GenerateConfig, dataset)`` from defaults <- YAML <- flags."""
    from ..config import GenerateConfig, RunConfig, read_yaml, validate

    tree: Dict[str, Any] = {}
    dataset = "fashion-mnist"
    if args.config:
        raw = read_yaml(args.config)
        if set(raw) & set(RunConfig.model_fields) and not set(raw) & (set(GenerateConfig.model_fields) - set(RunConfig.model_fields)):
            run_cfg = validate(raw, RunConfig)
            tree = run_cfg.generate.model_dump()
            dataset = run_cfg.data.dataset
        else:
            tree = validate(raw, GenerateConfig).model_dump()
    for key in ("generator", "model", "per_class", "guidance", "steps", "scheduler", "seed", "batch_size",
                "shots", "strength", "shard_size", "ray", "ray_workers", "store_layout"):
        value = getattr(args, key, None)
        if value is not None:
            tree[key] = value
    gen_options = dict(tree.get("generator_options") or {})
    for key in ("dtype", "variant", "cpu_offload", "attention_slicing", "vae_slicing", "vae_tiling"):
        value = getattr(args, key, None)
        if value is not None:
            gen_options[key] = value
    if gen_options:
        tree["generator_options"] = gen_options
    if args.prompts:
        tree["prompts"] = [args.prompts]
    if args.prompt_option:
        options = dict(tree.get("prompt_options") or {})
        for text in args.prompt_option:
            k, v = _kv(text, "--prompt-option")
            options[k] = v
        tree["prompt_options"] = options
    if args.filter:
        names: List[str] = [n.strip() for item in args.filter for n in item.split(",") if n.strip()]
        tree["filter"] = [] if names in (["none"], []) else names
    fopts: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in (tree.get("filter_options") or {}).items()}
    for text in args.filter_option:
        k, v = _kv(text, "--filter-option")
        if "." not in k:
            raise UserError(f"--filter-option {text!r} must name the filter: FILTER.KEY=VALUE (e.g. clip.quota=100)")
        name, key = k.split(".", 1)
        fopts.setdefault(name, {})[key] = v
    if args.keep_per_class is not None:
        fopts.setdefault("clip", {})["quota"] = args.keep_per_class
    if args.clip_weights:
        if args.clip_weights == "tiny":
            fopts.setdefault("clip", {})["tiny"] = True
        else:
            fopts.setdefault("clip", {})["weights"] = args.clip_weights
    enabled = tree.get("filter", GenerateConfig.model_fields["filter"].default_factory())
    # options for a filter that is off (e.g. --clip-weights with --filter none) are ignored, not an error
    tree["filter_options"] = {k: v for k, v in fopts.items() if k in enabled}
    if args.dataset:
        dataset = args.dataset
    cfg = validate(tree, GenerateConfig)
    return cfg, dataset


def run(args) -> int:
    from ..distributed.generation import generate_store

    from ..device import resolve_device

    device = resolve_device(args.device)  # CUDA on a machine without it fails before anything is written
    cfg, dataset = resolve(args)
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    if args.classes is not None and not classes:
        raise UserError("--classes is empty; give comma-separated class names")
    summary = generate_store(cfg, args.out, dataset=dataset, classes=classes, num_cpus=args.ray_cpus, device=device)
    for line in summary.lines():
        print(line)
    return 0
