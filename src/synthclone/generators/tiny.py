"""A tiny Stable Diffusion pipeline with random weights, for offline smoke tests and the GPU check.

Built from configs the way diffusers' own tests build their dummy components (a 2-level UNet, a
2-level VAE, a 2-layer CLIP text encoder with a letters-only BPE vocabulary), saved with
``save_pretrained`` and loaded back by the ``diffusers`` generator exactly like a downloaded one.
Its images are noise: it checks plumbing (devices, dtypes, stores, resumption), not quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import MissingExtraError


def _tokenizer(folder: Path):
    import transformers

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for ch in letters:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    merges = ["a t</w>", "o f</w>", "p h", "ph o", "pho t", "phot o</w>"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


def tiny_diffusers_pipeline(folder: str | Path, seed: int = 0, sample_size: int = 8) -> Path:
    """Write a tiny random-weight ``StableDiffusionPipeline`` to ``folder/pipe``; returns that path.

    Images come out at ``sample_size * 2`` pixels (two VAE levels). No safety checker.
    """
    try:
        import diffusers
        import transformers
    except ImportError as exc:
        raise MissingExtraError(getattr(exc, "name", None) or "diffusers", "diffusers", "the tiny pipeline") from None
    root = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = diffusers.UNet2DConditionModel(
            block_out_channels=(4, 8), layers_per_block=1, sample_size=sample_size, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32, norm_num_groups=2)
        vae = diffusers.AutoencoderKL(
            block_out_channels=[4, 8], in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
            up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=2)
        text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(
            bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=64, layer_norm_eps=1e-5,
            num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000))
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=_tokenizer(root / "tok"),
        scheduler=diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                          clip_sample=False, set_alpha_to_one=False),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"
