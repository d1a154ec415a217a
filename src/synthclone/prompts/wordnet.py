"""``wordnet``: the class name with its WordNet definition or hypernym.

As synthetic ImageNet clones were prompted: ``"{c}, {definition}"`` and ``"{c}, a type of
{hypernym}"``, alternating across a class's images. WordNet is Debian's ``wordnet-base`` read with
nltk (:mod:`synthclone.wordnet`). A class with a WordNet id (``class_ids``) uses that id's synset;
one without is looked up by name. A class WordNet lacks gets the plain name and a warning.
"""

from __future__ import annotations

from typing import List, Optional

from . import PROMPTS
from .base import ClassIds, Prompt, class_id, cycle, fix_articles, readable, warn_unknown


def wordnet_texts(name: str, wnid: Optional[str] = None) -> List[str]:
    """The WordNet prompts of one class (empty when WordNet does not know it); ``wnid`` picks the synset."""
    from ..wordnet import describe

    info = describe(name, wnid)
    if info is None:
        return []
    c = readable(name)
    texts = [f"{c}, {info['definition']}"]
    # sorted: nltk's order of related synsets depends on the hash seed
    texts += [fix_articles(f"{c}, a type of {h}") for h in sorted(set(info["hypernyms"]))]
    return texts


@PROMPTS.register("wordnet")
def wordnet_prompts(classes: List[str], n_per_class: int, seed: int = 0, class_ids: ClassIds = None) -> List[Prompt]:
    """'{c}, {definition}' and '{c}, a type of {hypernym}' from WordNet, alternating."""
    out: List[Prompt] = []
    for c, name in enumerate(classes):
        texts = wordnet_texts(name, class_id(class_ids, c))
        if not texts:
            warn_unknown(name, "wordnet")
            texts = [name]
        out += [Prompt(c, t) for t in cycle(texts, n_per_class, start=seed % len(texts))]
    return out
