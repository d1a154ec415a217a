"""``wordnet``: the class name with its WordNet definition or hypernym.

As synthetic ImageNet clones were prompted: ``"{c}, {definition}"`` and ``"{c}, a type of
{hypernym}"``, alternating across a class's images. WordNet is Debian's ``wordnet-base`` read with
nltk (:mod:`synthclone.wordnet`). A class WordNet lacks gets the plain name and a warning.
"""

from __future__ import annotations

from typing import List

from . import PROMPTS
from .base import Prompt, cycle, fix_articles, readable, warn_unknown


def wordnet_texts(name: str) -> List[str]:
    """The WordNet prompts of one class (empty when WordNet does not know it)."""
    from ..wordnet import describe

    info = describe(name)
    if info is None:
        return []
    c = readable(name)
    texts = [f"{c}, {info['definition']}"]
    # sorted: nltk's order of related synsets depends on the hash seed
    texts += [fix_articles(f"{c}, a type of {h}") for h in sorted(set(info["hypernyms"]))]
    return texts


@PROMPTS.register("wordnet")
def wordnet_prompts(classes: List[str], n_per_class: int, seed: int = 0) -> List[Prompt]:
    """'{c}, {definition}' and '{c}, a type of {hypernym}' from WordNet, alternating."""
    out: List[Prompt] = []
    for c, name in enumerate(classes):
        texts = wordnet_texts(name)
        if not texts:
            warn_unknown(name, "wordnet")
            texts = [name]
        out += [Prompt(c, t) for t in cycle(texts, n_per_class, start=seed % len(texts))]
    return out
