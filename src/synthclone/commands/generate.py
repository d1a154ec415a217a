"""``synthclone generate``: make (or resume) a synthetic dataset store with a text-to-image model.

    synthclone generate --dataset fashion-mnist --generator embedded --prompts template \\
        --per-class 500 --out DIR [--guidance 2 --steps 10 --seed 0 --filter clip --ray local|ADDRESS]
        [--config YAML] [--dtype auto --cpu-offload --vae-slicing ... --ray-workers N]

Settings come from ``GenerateConfig`` defaults, then the YAML file (a full study config with a
``generate:`` section, or just the generate keys), then ``--set generate.KEY=VALUE``, then the flags given. Running the same command
again resumes a killed run; a different config on an existing store is refused (exit 2).
"""

from __future__ import annotations

from typing import Any, Dict, List

from ..errors import UserError
from . import add_config_arguments, load_settings, positive_int


def add_arguments(parser) -> None:
    add = parser.add_argument
    add("--out", "-o", required=True, help="store directory (created; an existing store is resumed)")
    add_config_arguments(parser, "generate")
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
    add("--threads", type=positive_int, help="torch CPU threads of this process (default: torch's choice; 1 helps on a busy machine)")
    from ..device import add_device_argument

    add_device_argument(parser)


# flag -> the config key it sets (the flags win over --set, which wins over --config)
FLAG_KEYS = {name: f"generate.{name}" for name in (
    "generator", "model", "per_class", "guidance", "steps", "scheduler", "seed", "batch_size", "shots", "strength",
    "shard_size", "ray", "ray_workers", "store_layout")}
FLAG_KEYS.update({name: f"generate.generator_options.{name}" for name in (
    "dtype", "variant", "cpu_offload", "attention_slicing", "vae_slicing", "vae_tiling")})
FLAG_KEYS.update({"dataset": "data.dataset", "threads": "threads", "device": "device"})


def _shorthands(args) -> List[str]:
    """``--prompt-option``, ``--filter-option``, ``--keep-per-class`` and ``--clip-weights`` as ``--set`` overrides."""
    out = []
    for text in args.prompt_option:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--prompt-option {text!r} must look like KEY=VALUE (e.g. template='a sketch of a {{c}}')")
        out.append(f"generate.prompt_options.{key.strip()}={value}")
    for text in args.filter_option:
        key, sep, value = text.partition("=")
        if not sep or "." not in key:
            raise UserError(f"--filter-option {text!r} must name the filter: FILTER.KEY=VALUE (e.g. clip.quota=100)")
        out.append(f"generate.filter_options.{key.strip()}={value}")
    if args.keep_per_class is not None:
        out.append(f"generate.filter_options.clip.quota={args.keep_per_class}")
    if args.clip_weights:
        out.append("generate.filter_options.clip.tiny=true" if args.clip_weights == "tiny"
                   else f"generate.filter_options.clip.weights={args.clip_weights}")
    return out


def resolve(args):
    """The run config of this command: ``--config`` <- ``--set`` <- the shorthand and plain flags."""
    from ..config import RunConfig, read_yaml

    tree: Dict[str, Any] = read_yaml(args.config) if args.config else {}
    if tree and not set(tree) & set(RunConfig.model_fields):
        tree = {"generate": tree}  # a file of the generate keys alone
    flags = {key: getattr(args, name, None) for name, key in FLAG_KEYS.items()}
    if args.prompts:
        flags["generate.prompts"] = [args.prompts]
    if args.filter:
        names: List[str] = [n.strip() for item in args.filter for n in item.split(",") if n.strip()]
        flags["generate.filter"] = [] if names in (["none"], []) else names
    cfg = load_settings(args, _shorthands(args), flags, tree=tree)
    gen = cfg.generate
    # options for a filter that is off (e.g. --clip-weights with --filter none) are ignored, not an error
    gen.filter_options = {k: v for k, v in gen.filter_options.items() if k in gen.filter}
    return cfg


def run(args) -> int:
    from ..distributed.generation import generate_store

    from ..device import resolve_device

    cfg = resolve(args)
    device = resolve_device(cfg.device)  # CUDA on a machine without it fails before anything is written
    if cfg.threads is not None:
        import torch

        torch.set_num_threads(cfg.threads)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    if args.classes is not None and not classes:
        raise UserError("--classes is empty; give comma-separated class names")
    summary = generate_store(cfg.generate, args.out, dataset=cfg.data.dataset, classes=classes, num_cpus=args.ray_cpus, device=device)
    for line in summary.lines():
        print(line)
    return 0
