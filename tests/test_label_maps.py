"""ImageNet label spaces as the anchors score them (issue 15, item 8).

The curated class lists (model-vs-human's 16 categories, backgrounds_challenge's IN-9 table) are data
files that name their source; ImageNet-9 is scored by the 1000-way argmax with unmapped classes wrong;
and a test reports how the WordNet derivation differs from the curated lists.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from synthclone.models.base import ModelSpec
from synthclone.robustness import BenchSettings, run_probes
from synthclone.robustness.core import ModelAdapter
from synthclone.robustness.label_maps import (IMAGENET9, derivation_differences, groups_for, imagenet_groups,
                                              label_file, wordnet_groups)
from synthclone.data import load_dataset


@pytest.mark.parametrize("which, n", [("imagenet16", 16), ("imagenet9", 9)])
def test_curated_lists_are_data_files_that_cite_their_source(which, n):
    doc = label_file(which)
    assert {"repository", "path", "commit"} <= set(doc["source"])
    assert len(doc["source"]["commit"]) == 40
    groups = imagenet_groups(which)
    assert len(groups) == n
    flat = [i for g in groups.values() for i in g]
    assert len(flat) == len(set(flat)) and all(0 <= i < 1000 for i in flat)


def test_curated_lists_hold_the_anchors_facts():
    g16, g9 = imagenet_groups("imagenet16"), imagenet_groups("imagenet9")
    assert g16["car"] == [436, 511, 817]            # beach wagon, convertible, sports car
    assert 286 in g16["cat"]                        # cougar is a cat in model-vs-human
    assert g16["knife"] == [499] and g16["oven"] == [766]
    assert len(g9["dog"]) == 116 and len(g9["wheeled vehicle"]) == 42
    assert sum(map(len, g9.values())) == 370        # 630 of the 1000 classes are in no IN-9 superclass
    assert not set(g9["carnivore"]) & set(range(281, 286))  # domestic cats are not IN-9 carnivores


def test_wordnet_derivation_differs_from_the_curated_lists():
    """Reports (``pytest -s``) how the WordNet derivation differs, and checks the differences the
    curated lists exist for: the derivation would give car 10 classes, move cougar out of cat and
    put the domestic cats into carnivore."""
    for which in ("imagenet16", "imagenet9"):
        diff = derivation_differences(which)
        print(f"\n{which}: {len(diff)} categories differ from the curated lists")
        for name, d in diff.items():
            print(f"  {name:20s} WordNet only {d['wordnet_only']}  curated only {d['curated_only']}")
    w16, w9 = wordnet_groups("imagenet16"), wordnet_groups("imagenet9")
    assert len(w16["car"]) == 10 and "car" in derivation_differences("imagenet16")
    assert 286 not in w16["cat"]
    assert set(range(281, 286)) <= set(w9["carnivore"])
    assert "carnivore" in derivation_differences("imagenet9")


class _Fixed(torch.nn.Module):
    """A 1000-class 'model' with the same logits for every image."""

    def __init__(self, logits, size=16):
        super().__init__()
        self.spec = ModelSpec("fixed", 1000, in_chans=3, input_size=(size, size), mean=(0.5,) * 3, std=(0.5,) * 3)
        self.logits = torch.as_tensor(logits, dtype=torch.float32)

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def _dog_heavy_but_salamander_first():
    """Logits whose argmax is class 25 (European fire salamander, in no IN-9 superclass) while the
    116 dog classes hold most of the probability mass together."""
    z = torch.full((1000,), -10.0)
    z[imagenet_groups("imagenet9")["dog"]] = 2.0
    z[25] = 4.0
    return z


def test_argmax_decision_maps_the_models_argmax_and_counts_unmapped_as_wrong():
    groups = groups_for("imagenet9", list(IMAGENET9))
    model = _Fixed(_dog_heavy_but_salamander_first())
    x = torch.zeros(2, 3, 16, 16)
    mean = ModelAdapter(model, list(IMAGENET9), groups, "mean")(x).argmax(1)
    argmax = ModelAdapter(model, list(IMAGENET9), groups, "argmax")(x).argmax(1)
    assert mean.tolist() == [0, 0]          # mean probability: dog
    assert argmax.tolist() == [9, 9]        # argmax is unmapped: the extra column, never a label
    z = _dog_heavy_but_salamander_first()
    z[25] = -10.0
    z[152] = 5.0                            # now the argmax is a dog breed
    assert ModelAdapter(_Fixed(z), list(IMAGENET9), groups, "argmax")(x).argmax(1).tolist() == [0, 0]


def test_imagenet9_probe_scores_a_1000_class_model_by_its_argmax(tmp_path):
    root = tmp_path / "bg_challenge"
    rng = np.random.default_rng(0)
    for v in ("original", "mixed_same", "mixed_rand"):
        for k, name in enumerate(IMAGENET9):
            for j in range(2):
                d = root / v / "val" / f"{k:02d}_{name.replace(' ', '_')}"
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"n{k}_{j}.png")
    fmnist = load_dataset("fashion-mnist", split="test").subset(range(10))
    rows = run_probes(_Fixed(_dog_heavy_but_salamander_first()), "fixed", ["background"],
                      BenchSettings(data=fmnist, imagenet9_root=str(root)))
    dog = rows[rows["label"] == 0]
    assert len(dog) == 6 and not dog["correct"].any()   # mean probability would call them all dogs
    assert set(rows["prediction"]) == {9}
