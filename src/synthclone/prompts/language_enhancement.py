"""``language-enhancement``: many distinct sentences per class name (He et al., ICLR 2023).

The research fed each class name to a word-to-sentence T5 model and kept 200 unique sentences per
class. Two sources here:

* ``model=ID_OR_PATH``: a Hugging Face text-to-text (seq2seq) model and its tokenizer, loaded with
  ``AutoModelForSeq2SeqLM`` / ``AutoTokenizer``; sentences are sampled (top-k/top-p, seeded per
  class) from the input ``input_template`` (default: the class name), de-duplicated, and a sentence
  that does not mention the class gets the class name put in front, so every prompt names its class.
* offline default: sentences composed from the class's own WordNet synset (definition and its
  clauses, synonyms, hypernyms, kinds = hyponyms, parts = meronyms, part and member holonyms) with
  domain-agnostic photo framings and conditions, no word list about any domain (issue 16: clothing
  context words gave "a photo of a leather goldfish"). The grid is shuffled with the seed and the first
  ``max_sentences`` unique sentences are kept. A class with a WordNet id (``class_ids``) uses that
  id's synset; one without is looked up by name.

Either way a class gets up to ``max_sentences`` (default 200) unique sentences, cycled across its
images; :func:`synthclone.prompts.describe_prompts` counts them.
"""

from __future__ import annotations

import itertools
import random
import warnings
from typing import Dict, List, Optional

from ..errors import UserError
from . import PROMPTS
from .base import ClassIds, Prompt, class_id, cycle, fix_articles, readable, warn_unknown

MAX_SENTENCES = 200

# Domain-agnostic photographic framings and conditions (no word about any class's domain: they hold for
# any object a photo can show); the class-specific words all come from the class's own WordNet synset.
FRAMINGS = ["a photo of", "a close-up photo of", "a picture of", "an image of", "a snapshot of", "a cropped photo of"]
VIEWS = ["", "seen from the front", "seen from the side", "seen from above", "in bright light", "in dim light",
         "in the center of the frame", "at a distance"]


def _relations(name: str, wnid: Optional[str] = None) -> Optional[Dict[str, List[str]]]:
    from ..wordnet import synset_for

    s = synset_for(name, wnid)
    if s is None:
        return None
    clean = lambda lemma: lemma.replace("_", " ")  # noqa: E731
    # nltk returns related synsets in hash-seed-dependent order: sort by name, so prompts (and the
    # store's config hash) are the same in every process
    names = lambda synsets: sorted({clean(x.lemmas()[0].name()) for x in synsets})  # noqa: E731
    own = {readable(name).lower()}
    if wnid is not None:  # a name from wordnet.wnid_names may follow its lemma with "(hypernym)"
        own.add(readable(name).lower().split(" (", 1)[0])
    hypernyms = sorted(s.hypernyms(), key=lambda x: x.name())
    gloss = s.definition()
    return {
        "definition": [gloss],
        # the gloss's clauses ("...; worn outdoors"): the typical contexts WordNet gives the class
        "contexts": [c.strip() for c in gloss.split(";")[1:] if c.strip()],
        "synonyms": [clean(l.name()) for l in s.lemmas() if clean(l.name()).lower() not in own],
        "hypernyms": names(hypernyms) + names([h2 for h in hypernyms for h2 in h.hypernyms()]),
        "kinds": names(s.hyponyms())[:12],
        "parts": names(s.part_meronyms())[:8],
        "wholes": names(s.part_holonyms())[:4],
        "groups": names(s.member_holonyms())[:4],
    }


def composed_sentences(name: str, max_sentences: int = MAX_SENTENCES, seed: int = 0,
                       wnid: Optional[str] = None) -> List[str]:
    """Up to ``max_sentences`` unique sentences about class ``name``, composed from its WordNet synset.

    Every sentence is a framing ("a photo of") + a description of the class + a photographic condition
    ("seen from above"); the descriptions come from the synset alone: its name, definition and the
    definition's clauses (typical contexts), synonyms, hypernyms (two levels), kinds (hyponyms), parts
    (part meronyms), what it is a part of (part holonyms) and a member of (member holonyms). ``wnid``
    picks the synset (else it is looked up by name); unknown to WordNet, the name alone is used (and a
    warning is given). No list of words about any domain is involved.
    """
    c = readable(name)
    rel = _relations(name, wnid)
    if rel is None:
        warn_unknown(name, "language-enhancement")
        rel = {k: [] for k in ("definition", "contexts", "synonyms", "hypernyms", "kinds", "parts", "wholes", "groups")}
    families: List[List[str]] = [
        [c],
        [f"{c}, {d}" for d in rel["definition"]] + [f"{c}, {x}" for x in rel["contexts"]],
        [f"{c}, a kind of {h}" for h in rel["hypernyms"]],
        [f"{c}, also called {syn}" for syn in rel["synonyms"]],
        [f"{k}, a kind of {c}" for k in rel["kinds"]],
        [f"{c} with its {p}" for p in rel["parts"]],
        [f"{c}, part of a {w}" for w in rel["wholes"]] + [f"{c}, one of a {g}" for g in rel["groups"]],
    ]
    pools = [[f"{f} a {core}, {v}" if v else f"{f} a {core}" for f, core, v in itertools.product(FRAMINGS, fam, VIEWS)]
             for fam in families if fam]
    rng = random.Random(f"language-enhancement:{seed}:{name}")
    for pool in pools:
        rng.shuffle(pool)
    # Interleave the families so the WordNet-derived sentences are not crowded out by the plain name.
    out: List[str] = []
    seen = set()
    for group in itertools.zip_longest(*pools):
        for text in group:
            if text is None:
                continue
            text = fix_articles(text)
            if text not in seen:
                seen.add(text)
                out.append(text)
                if len(out) >= max_sentences:
                    return out
    return out


class Seq2SeqSentences:
    """Sentences sampled from a Hugging Face text-to-text model (e.g. a word-to-sentence T5)."""

    def __init__(self, model: str, device: str = "cpu"):
        try:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError:
            from ..errors import MissingExtraError

            raise MissingExtraError("transformers", "diffusers", "language-enhancement with a model") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(model).to(device).eval()
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise UserError(f"cannot load text-to-text model {model!r} for language-enhancement ({first}); give a local path or a cached Hugging Face id") from None
        self.device = device

    def sentences(self, word: str, want: int, seed: int, input_template: str = "{c}", batch: int = 32,
                  max_rounds: int = 8, max_new_tokens: int = 32) -> List[str]:
        """Up to ``want`` unique sentences sampled for ``word``, reproducible for a seed."""
        import torch

        inputs = self.tokenizer([input_template.replace("{c}", word)], return_tensors="pt").to(self.device)
        gen = torch.Generator().manual_seed(seed)
        out: List[str] = []
        seen = set()
        for _ in range(max_rounds):
            # transformers samples from the global RNG; seed it per round for reproducible prompts.
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            with torch.no_grad():
                ids = self.model.generate(**inputs, do_sample=True, top_k=50, top_p=0.95,
                                          num_return_sequences=batch, max_new_tokens=max_new_tokens)
            for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True):
                text = " ".join(text.split())
                if not text:
                    continue
                if word.lower() not in text.lower():
                    text = f"{word}, {text}"  # every prompt must still name its class
                if text not in seen:
                    seen.add(text)
                    out.append(text)
                    if len(out) >= want:
                        return out
        return out


@PROMPTS.register("language-enhancement")
def language_enhancement_prompts(classes: List[str], n_per_class: int, seed: int = 0, model: Optional[str] = None,
                                 max_sentences: int = MAX_SENTENCES, input_template: str = "{c}",
                                 device: str = "cpu", class_ids: ClassIds = None) -> List[Prompt]:
    """Many distinct sentences per class: a HF text-to-text model (option model=...) or WordNet composition."""
    if max_sentences < 1:
        raise UserError(f"language-enhancement max_sentences must be >= 1, got {max_sentences}")
    want = min(max_sentences, n_per_class)
    lm = Seq2SeqSentences(model, device=device) if model else None
    out: List[Prompt] = []
    for c, name in enumerate(classes):
        texts: List[str] = []
        if lm is not None:
            texts = lm.sentences(readable(name), want, seed=seed * 100_003 + c, input_template=input_template)
            if not texts:
                warnings.warn(f"model {model!r} produced no sentence for {name!r}; composing them offline", UserWarning)
        if not texts:
            texts = composed_sentences(name, want, seed=seed, wnid=class_id(class_ids, c)) or [name]
        out += [Prompt(c, t) for t in cycle(texts, n_per_class)]
    return out
