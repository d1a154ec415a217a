"""The embedded text-to-image model: a small FiLM UNet on 28x28x1 conditioned on sentence embeddings.

``create_generator("embedded")`` loads the weights shipped in ``synthclone/weights/generator.safetensors``
(+ ``generator.json``); ``weights="shipped:NAME"`` one of the shipped snapshots in
``synthclone/weights/snapshots/`` (other training lengths and caption sets, stored in float16; listed in
GENERATOR_CARD.md; :func:`shipped_snapshots`); ``weights=PATH`` loads another pair (a ``.safetensors`` file with its ``.json``
beside it, or a folder holding ``generator.safetensors`` such as a ``synthclone pretrain generator`` output
folder); ``weights=None, tiny=True`` builds a tiny random network for tests.

One call, in numbered steps like a diffusers pipeline: (1) check the request, (2) embed the prompts,
(3) draw each image's initial noise from its own seeded ``torch.Generator``, so image ``i`` depends only
on (prompt, seed, settings) and never on the rest of the batch, (4) for image-to-image noise the init
images to the timestep ``strength`` selects, (5) denoise with classifier-free guidance, the conditional
and unconditional halves in ONE forward pass, (6) convert to uint8.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..errors import UserError
from ..paths import WEIGHTS_DIR
from .base import GeneratorOutput, check_request
from .schedulers import NoiseSchedule, make_scheduler
from .unet import UNet

# prompts denoised together on a CPU (2x that many rows with guidance): set by the sweep in
# benchmarks/bench_generator_speedups.py (benchmarks/RESULTS.md section 4)
MICRO_BATCH = 64
TINY_UNET = {"in_channels": 1, "channels": [4, 8, 8], "blocks": 1, "text_dim": 384, "emb_dim": 16, "attention": False}


SNAPSHOT_DIR = WEIGHTS_DIR / "snapshots"
SHIPPED = "shipped"


def shipped_snapshots() -> list[str]:
    """Names of the shipped snapshots of the embedded model (``weights: shipped:<name>``)."""
    return sorted(p.stem for p in SNAPSHOT_DIR.glob("*.safetensors"))


def resolve_embedded_weights(weights: Union[str, Path, None]) -> Path:
    """The weights file that ``weights`` names: None or ``"shipped"`` = the shipped model,
    ``"shipped:<name>"`` = a shipped snapshot, else a ``.safetensors`` file or a folder holding
    ``generator.safetensors``. An unknown snapshot name is a user error listing the shipped ones."""
    if weights is None or str(weights) == SHIPPED:
        return WEIGHTS_DIR / "generator.safetensors"
    text = str(weights)
    if text.startswith(SHIPPED + ":"):
        name = text[len(SHIPPED) + 1:]
        if name not in shipped_snapshots():
            raise UserError(f"no shipped embedded snapshot {name!r}; shipped: {', '.join(shipped_snapshots()) or 'none'} "
                            "(weights: shipped:<name>), or give a weights path")
        return SNAPSHOT_DIR / f"{name}.safetensors"
    path = Path(weights)
    return path / "generator.safetensors" if path.is_dir() else path


def _resolve_weights(weights: Union[str, Path]) -> tuple[Path, Path]:
    path = resolve_embedded_weights(weights)
    if path.suffix != ".safetensors":
        raise UserError(f"generator weights {weights} must be a .safetensors file or a folder holding generator.safetensors")
    meta = path.with_suffix(".json")
    if not path.is_file():
        raise UserError(f"generator weights {path} not found; train them with 'synthclone pretrain generator' or give another path")
    if not meta.is_file():
        raise UserError(f"generator config {meta} not found next to {path.name}; both files are written by 'synthclone pretrain generator'")
    return path, meta


def save_generator(unet: UNet, schedule: NoiseSchedule, path: Union[str, Path], extra: Optional[dict] = None,
                   dtype: torch.dtype = torch.float32) -> Path:
    """Write ``unet``'s weights to ``path`` (.safetensors, stored as ``dtype``: float16 halves a shipped
    snapshot; loading casts back to float32) and its config to the ``.json`` beside it, atomically."""
    from safetensors.torch import save_file

    from ..paths import atomic_write, atomic_write_text

    path = Path(path)
    state = {k: v.detach().to(dtype if v.is_floating_point() else v.dtype).contiguous().cpu()
             for k, v in unet.state_dict().items()}
    # safetensors writes 0600 (shipped weights must be readable by every user) and its metadata map in a random
    # order: one key keeps equal weights equal bytes
    atomic_write(path, lambda p: save_file(state, str(p), metadata={"format": "pt"}),
                 mode=0o644)
    meta = {"unet": unet.config, "schedule": schedule.config(), "text_encoder": "all-MiniLM-L6-v2",
            "image_shape": [unet.config["in_channels"], 28, 28], **(extra or {})}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True))
    return path


def ship_snapshot(weights: Union[str, Path], name: str, folder: Path = SNAPSHOT_DIR) -> Path:
    """Write the embedded weights ``weights`` into ``folder/<name>.safetensors`` in float16 (with their
    training record and the source they came from), to be loaded as ``weights="shipped:<name>"``."""
    if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
        raise UserError(f"snapshot name {name!r} must be a plain name (letters, digits, '-', '_')")
    unet, schedule, meta = load_unet(weights)
    extra = {k: v for k, v in meta.items() if k not in ("unet", "schedule", "text_encoder", "image_shape")}
    folder.mkdir(parents=True, exist_ok=True)
    return save_generator(unet, schedule, folder / f"{name}.safetensors",
                          extra={**extra, "snapshot": {"name": name, "of": str(weights), "stored_as": "float16"}},
                          dtype=torch.float16)


def load_unet(weights: Union[str, Path]) -> tuple[UNet, NoiseSchedule, dict]:
    """(network in eval mode, noise schedule, config dict) from a weights file or folder."""
    from safetensors.torch import load_file

    path, mpath = _resolve_weights(weights)
    try:
        meta = json.loads(mpath.read_text())
        unet = UNet(**meta["unet"])
        unet.load_state_dict(load_file(str(path)))
    except Exception as exc:  # bad JSON, config keys, safetensors header or tensor shapes: all one user error
        raise UserError(f"{path} is not an embedded-generator checkpoint matching {mpath.name} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:120]})") from None
    schedule = NoiseSchedule(**meta["schedule"])
    return unet.eval(), schedule, meta


class EmbeddedGenerator:
    """``gen(prompts, seeds, guidance=2.0, steps=10, scheduler="dpm", init_images=None, strength=None,
    batch_size=256) -> GeneratorOutput`` with uint8 images (N, 1, 28, 28).

    Args:
        unet: the denoiser; schedule: its noise schedule; meta: the weights' config (for manifests).
        precision: ``"auto"`` (bf16 where the hardware has bf16 units, else fp32), ``"bf16"`` (autocast) or ``"fp32"``.
        device: torch device of the network.
        text_encoder: name for :func:`synthclone.text.load_text_encoder` (default the offline MiniLM).
        micro_batch: prompts denoised together (at most ``batch_size``; CPU only). Small batches keep
            the activations in the caches: see benchmarks/RESULTS.md section 4 for the sweep that
            set the default.
        cfg: ``"batched"`` runs the conditional and unconditional branches of classifier-free guidance
            as one batch of 2N, ``"separate"`` as two passes of N (slower; kept for the benchmark).
        channels_last: run the network in channels-last memory format (slower here; benchmark only).
        compile: ``torch.compile`` the network on first use (about 30 s of compilation on this 2-core CPU,
            then about 1.2x faster sampling: pays off beyond roughly 9,000 images at 10 steps).
    """

    name = "embedded"

    def __init__(self, unet: UNet, schedule: NoiseSchedule, meta: Optional[dict] = None, precision: str = "auto",
                 device: str = "cpu", text_encoder: Optional[str] = None, source: str = "", micro_batch: int = MICRO_BATCH,
                 cfg: str = "batched", channels_last: bool = False, compile: bool = False):
        from ..precision import resolve_precision

        precision = resolve_precision(precision, str(device))
        if cfg not in ("batched", "separate"):
            raise UserError(f"cfg must be 'batched' or 'separate' (got {cfg!r})")
        if int(micro_batch) < 1:
            raise UserError(f"micro_batch must be >= 1 (got {micro_batch})")
        self.unet = unet.to(device).eval()
        if channels_last:
            self.unet = self.unet.to(memory_format=torch.channels_last)
        self.micro_batch = int(micro_batch)
        self.cfg = cfg
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)
        self._net = None
        self.schedule = schedule
        self.meta = dict(meta or {})
        self.precision = precision
        self.device = torch.device(device)
        self.text_encoder_name = text_encoder
        self._encoder = None
        c = unet.config["in_channels"]
        self.image_shape = tuple(self.meta.get("image_shape", [c, 28, 28]))
        # the classes its captions covered (shipped weights: Fashion-MNIST's); None = no claim (tiny test models)
        self.known_classes = sorted((self.meta.get("training") or {}).get("captions_per_class") or {}) or None
        self.config = {"generator": "embedded", "weights": source, "unet": unet.config, "schedule": schedule.config(),
                       "precision": precision, "parameters": sum(p.numel() for p in unet.parameters())}

    @property
    def encoder(self):
        if self._encoder is None:
            from ..text import load_text_encoder

            self._encoder = load_text_encoder(self.text_encoder_name)
        return self._encoder

    @property
    def net(self):
        """The network that samples: the UNet, compiled on first use when ``compile``."""
        if self._net is None:
            self._net = torch.compile(self.unet) if self.compile else self.unet
        return self._net

    def _autocast(self):
        from ..precision import autocast

        return autocast(self.precision, self.device)

    @torch.inference_mode()
    def denoise(self, x: torch.Tensor, text: torch.Tensor, guidance: float, steps: int, scheduler: str,
                strength: Optional[float] = None) -> torch.Tensor:
        """Run the sampler from ``x`` (N, C, H, W) float at the first selected timestep to a clean image in [-1, 1].

        ``text`` is (N, text_dim) prompt embeddings. Guidance 1 runs the conditional branch only, 0 the
        unconditional one only; anything else concatenates both into one batch.
        """
        sampler = make_scheduler(scheduler, self.schedule, clip_sample=True)
        timesteps = sampler.set_timesteps(steps, strength=strength)
        n = x.shape[0]
        null = self.unet.null_embedding.detach().to(text.dtype).expand(n, -1)
        if guidance == 1.0:
            cond = text
        elif guidance == 0.0:
            cond = null
        else:
            cond = torch.cat([text, null])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for t in timesteps:
            tt = torch.full((cond.shape[0],), float(t), device=x.device)
            with self._autocast():
                if cond.shape[0] == n:
                    out = self.net(x, tt, cond).float()
                elif self.cfg == "separate":
                    out = torch.cat([self.net(x, tt[:n], cond[:n]), self.net(x, tt[n:], cond[n:])]).float()
                else:
                    out = self.net(torch.cat([x, x]), tt, cond).float()
            if cond.shape[0] != n:
                c_out, u_out = out.chunk(2)
                out = u_out + guidance * (c_out - u_out)
            x = sampler.step(out, x)
        return x.clamp(-1.0, 1.0)

    def __call__(self, prompts: Sequence[str], seeds: Sequence[int], guidance: float = 2.0, steps: int = 10,
                 scheduler: str = "dpm", init_images: Optional[torch.Tensor] = None, strength: Optional[float] = None,
                 batch_size: int = 256) -> GeneratorOutput:
        """Generate one image per (prompt, seed); see the class docstring."""
        # 1. check
        prompts, seeds = check_request(prompts, seeds, guidance, steps, init_images, strength, batch_size, self.image_shape)
        make_scheduler(scheduler, self.schedule)  # unknown names fail before any work
        if init_images is not None and strength is None:
            strength = 0.75  # diffusers' img2img default
        # 2. embed prompts (the encoder caches repeated captions)
        text = self.encoder.encode(prompts).to(self.device)
        out = torch.empty((len(prompts), *self.image_shape), dtype=torch.uint8)
        step = min(batch_size, self.micro_batch) if self.device.type == "cpu" else batch_size
        for start in range(0, len(prompts), step):
            sl = slice(start, start + step)
            # 3. per-sample noise: image i depends only on its own seed
            noise = torch.stack([torch.randn(self.image_shape, generator=torch.Generator().manual_seed(s)) for s in seeds[sl]])
            noise = noise.to(self.device)
            if init_images is None:
                x = noise
                run_strength = None
            else:
                # 4. image-to-image: noise the init to the first timestep the strength keeps
                sampler = make_scheduler(scheduler, self.schedule)
                ts = sampler.set_timesteps(steps, strength=strength)
                x0 = init_images[sl].to(self.device).float() / 127.5 - 1.0
                if not ts:  # strength 0 (or too small for one step): the init comes back unchanged
                    out[sl] = init_images[sl]
                    continue
                t0 = torch.full((x0.shape[0],), ts[0], dtype=torch.long)
                x = self.schedule.add_noise(x0, noise, t0)
                run_strength = strength
            # 5. denoise with classifier-free guidance
            x = self.denoise(x, text[sl], float(guidance), int(steps), scheduler, strength=run_strength)
            # 6. to uint8
            out[sl] = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()
        settings = {"generator": self.name, "guidance": float(guidance), "steps": int(steps), "scheduler": scheduler,
                    "strength": strength, "precision": self.precision, "weights": self.config["weights"]}
        return GeneratorOutput(images=out, settings=settings)


def create_embedded(weights: Union[str, Path, None, object] = "shipped", tiny: bool = False, precision: str = "auto",
                    device: str = "cpu", text_encoder: Optional[str] = None, seed: int = 0, model: Optional[str] = None,
                    micro_batch: int = MICRO_BATCH, cfg: str = "batched", channels_last: bool = False,
                    compile: bool = False, **unknown: object) -> EmbeddedGenerator:
    """The embedded generator: shipped weights by default, ``weights=PATH`` for others, ``weights=None, tiny=True``
    for a tiny random-weight network (tests). ``model=PATH`` (the config's ``generate.model``) is an alias of
    ``weights=PATH``. ``micro_batch``, ``cfg``, ``channels_last`` and ``compile``: see :class:`EmbeddedGenerator`."""
    if unknown:
        raise UserError(f"the embedded generator has no option(s) {sorted(unknown)}; valid: weights, precision, device, "
                        "text_encoder, micro_batch, cfg, channels_last, compile")
    speed = {"micro_batch": micro_batch, "cfg": cfg, "channels_last": channels_last, "compile": compile}
    if model:
        weights = model
    if weights is None:
        if not tiny:
            raise UserError("create_generator('embedded', weights=None) needs tiny=True (random weights, tests only)")
        torch.manual_seed(seed)
        unet = UNet(**TINY_UNET)
        # random but non-trivial outputs: the zero-initialised output layer would make every image grey,
        # and a zero null embedding next to small text effects would make guidance invisible
        with torch.no_grad():
            torch.nn.init.normal_(unet.conv_out.weight, std=0.05)
            torch.nn.init.normal_(unet.null_embedding, std=0.5)
            for block in unet.modules():
                if isinstance(block, torch.nn.Conv2d) and block.weight.abs().sum() == 0:
                    torch.nn.init.normal_(block.weight, std=0.1)
        return EmbeddedGenerator(unet, NoiseSchedule(), {"tiny": True}, precision, device, text_encoder, source="tiny-random",
                                 **speed)
    if weights == SHIPPED:
        weights = WEIGHTS_DIR / "generator.safetensors"
        if not Path(weights).is_file():
            raise UserError(f"the shipped generator weights {weights} are missing; reinstall synthclone or train them with "
                            "'synthclone pretrain generator' and pass weights=PATH")
    unet, schedule, meta = load_unet(weights)
    return EmbeddedGenerator(unet, schedule, meta, precision, device, text_encoder, source=str(weights), **speed)
