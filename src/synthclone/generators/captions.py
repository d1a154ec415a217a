"""Training captions of the embedded text-to-image model: several phrasings per class.

The generator corpus has labels, not captions, so captions are built from each class name, its
"/"-alternatives ("T-shirt/top" -> "T-shirt", "top"), WordNet synonyms, the WordNet definition and
hypernym, and photo templates. Varied captions make the model respond to free-form prompts and to
the prompt strategies rather than to one fixed string. :func:`caption_bank` embeds every caption once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch

TEMPLATES = [
    "a photo of a {}.",
    "a photo of a {}",
    "a {}",
    "{}",
    "a picture of a {}.",
    "a black and white photo of a {}.",
    "a grayscale photo of a {}.",
    "a product photo of a {}.",
    "a low resolution photo of a {}.",
    "a small photo of a {}.",
    "a centered photo of a {}.",
    "an image of a {}.",
    "a {} on a black background.",
    "a catalogue photo of a {}.",
]


def _names(class_name: str, info) -> List[str]:
    """The class name, its "/"-alternatives and its WordNet synonyms, deduplicated (case-insensitive)."""
    parts = [class_name] + [p.strip() for p in class_name.split("/") if p.strip()]
    if info:
        parts += info["synonyms"]
    seen, out = set(), []
    for p in parts:
        if p.lower() not in seen:
            seen.add(p.lower())
            out.append(p)
    return out


# caption sets of ``synthclone pretrain generator --captions``: ``full`` is every phrasing below (the shipped
# model's); ``narrow`` is the class name under the first four templates only (no alternatives, synonyms,
# definitions or hypernyms): a model that has seen few phrasings, one of the shipped snapshots (issue 18)
CAPTION_SETS = ("full", "narrow")
NARROW_TEMPLATES = TEMPLATES[:4]


def class_captions(class_name: str, caption_set: str = "full") -> List[str]:
    """Caption phrasings for one class (deterministic order, no duplicates) from ``caption_set``
    (:data:`CAPTION_SETS`)."""
    from ..wordnet import describe

    if caption_set not in CAPTION_SETS:
        raise ValueError(f"caption set {caption_set!r} is not one of {CAPTION_SETS}")
    if caption_set == "narrow":
        return list(dict.fromkeys(t.format(class_name) for t in NARROW_TEMPLATES))

    try:
        info = describe(class_name)
    except Exception:  # WordNet missing: the templates alone still vary the captions
        info = None
    names = _names(class_name, info)
    caps: List[str] = []
    for i, name in enumerate(names):
        # the class name itself gets every template; alternatives and synonyms get a share
        temps = TEMPLATES if i == 0 else TEMPLATES[:: 2 if i == 1 else 3]
        caps += [t.format(name) for t in temps]
    if info:
        main = names[0]
        if info["definition"]:
            caps += [f"a photo of a {main}, {info['definition']}.", f"a {main}: {info['definition']}"]
        for hyper in info["hypernyms"][:2]:
            caps += [f"a photo of a {main}, a type of {hyper}.", f"a {main}, a kind of {hyper}"]
    return list(dict.fromkeys(caps))


@dataclass
class CaptionBank:
    """Every caption of every class, embedded once.

    Attributes:
        captions: all captions, flat list.
        embeddings: float32 (len(captions), dim), L2-normalised.
        owner: int64 (len(captions),), class index of each caption.
        per_class: class index -> int64 tensor of caption indices.
    """

    captions: List[str]
    embeddings: torch.Tensor
    owner: torch.Tensor
    per_class: Dict[int, torch.Tensor]

    def sample(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random caption embedding per label: (N,) int64 -> float32 (N, dim)."""
        idx = torch.empty(len(labels), dtype=torch.long)
        for c in labels.unique().tolist():
            where = torch.nonzero(labels == c).flatten()
            options = self.per_class[c]
            idx[where] = options[torch.randint(len(options), (len(where),), generator=generator)]
        return self.embeddings[idx]


def caption_bank(classes: Sequence[str], encoder, caption_set: str = "full") -> CaptionBank:
    """Build and embed the captions of ``classes`` (from ``caption_set``) with ``encoder`` (a
    :class:`synthclone.text.TextEncoder`)."""
    caps, owner, per_class = [], [], {}
    for c, name in enumerate(classes):
        mine = class_captions(name, caption_set)
        per_class[c] = torch.arange(len(caps), len(caps) + len(mine))
        caps += mine
        owner += [c] * len(mine)
    emb = encoder.encode(caps)
    return CaptionBank(caps, emb, torch.tensor(owner, dtype=torch.long), per_class)
