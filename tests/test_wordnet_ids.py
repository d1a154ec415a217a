"""WordNet ids named from their own synset, shared names told apart, prompts from the id's synset."""

from __future__ import annotations

import json

import pytest

from synthclone.data.fashion_mnist import CLASSES
from synthclone.errors import UserError
from synthclone.prompts import PROMPTS, make_prompts
from synthclone.wordnet import describe, folder_classes, from_wnid, synset_for, wnid, wnid_names, wnid_to_name, wordnet

# ImageNet-1k's two "crane" classes
CRANE_BIRD, CRANE_MACHINE = "n02012849", "n03126707"


def _shared_name_ids(want: int = 50) -> list:
    """Ids of noun synsets whose first lemma (ignoring case) several synsets share, whole groups
    in lemma order until ``want`` ids: groups of three or more, so not just pairs collide."""
    wn = wordnet()
    ids: list = []
    for lemma in sorted(wn.all_lemma_names(pos="n")):
        group = [s for s in wn.synsets(lemma, pos="n") if s.lemmas()[0].name().lower() == lemma.lower()]
        if len({s.lemmas()[0].name().lower() for s in group}) == 1 and len(group) >= 3:
            ids += sorted(wnid(s) for s in group)
            if len(ids) >= want:
                return ids
    raise AssertionError("WordNet has fewer shared-name synsets than expected")


def test_the_two_imagenet_cranes_get_distinct_names_from_their_synsets():
    bird, machine = wnid_names([CRANE_BIRD, CRANE_MACHINE])
    assert wnid_to_name(CRANE_BIRD) == wnid_to_name(CRANE_MACHINE) == "crane"  # one id alone: no suffix
    assert bird != machine and bird.startswith("crane (") and machine.startswith("crane (")
    assert "bird" in bird and "device" in machine
    # the order of the list changes neither name
    assert wnid_names([CRANE_MACHINE, CRANE_BIRD]) == [machine, bird]


def test_ids_without_a_shared_name_get_plain_names():
    wn = wordnet()
    ids = [wnid(wn.synset(n)) for n in ("dog.n.01", "school_bus.n.01", "sandal.n.01")]
    assert wnid_names(ids) == [wnid_to_name(i) for i in ids] == ["dog", "school bus", "sandal"]
    assert wnid_names([CRANE_BIRD]) == ["crane"]


def test_names_are_unique_over_many_shared_names():
    ids = _shared_name_ids(50)
    names = wnid_names(ids)
    assert len(ids) >= 50 and len({n.lower() for n in names}) == len(ids)
    for i, name in zip(ids, names):
        assert name.startswith(wnid_to_name(i) + " (") and name.endswith(")")
    # the id is only the last resort: most names are told apart by a hypernym
    assert sum(name.endswith(f"({i})") for i, name in zip(ids, names)) < len(ids) // 5
    assert wnid_names(ids) == names  # deterministic


def test_case_only_differences_count_as_collisions():
    wn = wordnet()
    # "Crane" the poet and "crane" the bird
    poets = [s for s in wn.synsets("crane", pos="n") if s.lemmas()[0].name() == "Crane"]
    assert poets
    names = wnid_names([wnid(poets[0]), CRANE_BIRD])
    assert len({n.lower() for n in names}) == 2 and all("(" in n for n in names)


def test_unknown_or_repeated_ids_raise_user_errors():
    with pytest.raises(UserError, match=r"n99999999.*class-name map JSON") as err:
        wnid_names(["n02084071", "n99999999"])
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="listed twice"):
        wnid_names([CRANE_BIRD, CRANE_BIRD])


def test_synset_for_and_describe_use_the_id_never_the_name():
    assert synset_for("crane", CRANE_BIRD) == from_wnid(CRANE_BIRD)
    assert describe("crane", CRANE_MACHINE)["synset"] == from_wnid(CRANE_MACHINE).name()
    assert describe("anything at all", CRANE_BIRD)["synset"] == from_wnid(CRANE_BIRD).name()
    assert describe("Ankle boot")["synset"].startswith("boot")  # no id: by name, as before


def test_folder_classes_names_and_ids():
    names, ids = folder_classes([CRANE_BIRD, CRANE_MACHINE, "plain"])
    assert names == wnid_names([CRANE_BIRD, CRANE_MACHINE]) + ["plain"]
    assert ids == [CRANE_BIRD, CRANE_MACHINE, None]
    # a mapped folder keeps the map's name and its id; the other crane is then alone
    names, ids = folder_classes([CRANE_BIRD, CRANE_MACHINE], {CRANE_BIRD: "whooping crane"})
    assert names == ["whooping crane", "crane"] and ids == [CRANE_BIRD, CRANE_MACHINE]
    # an id WordNet lacks is fixed by the map, and carries no id
    assert folder_classes(["n99999999"], {"n99999999": "thing"}) == (["thing"], [None])
    with pytest.raises(UserError, match="class-name map"):
        folder_classes(["n99999999"])
    with pytest.raises(UserError, match="'n03126707' and 'Crane' are both named"):
        folder_classes([CRANE_MACHINE, "Crane"])


def test_wordnet_strategies_take_the_synset_from_class_ids():
    ids = [CRANE_BIRD, CRANE_MACHINE]
    classes = wnid_names(ids)
    texts = [p.text for p in make_prompts("wordnet", classes, 1, class_ids=ids)]
    bird_definition = from_wnid(CRANE_BIRD).definition()
    assert "bird" in bird_definition
    assert texts[0] == f"{classes[0]}, {bird_definition}"
    assert texts[1] == f"{classes[1]}, {from_wnid(CRANE_MACHINE).definition()}"
    assert texts[0] != texts[1]
    # by name both would be the same synset, whatever "crane" means first in WordNet
    by_name = [p.text.split(", ", 1)[1] for p in make_prompts("wordnet", ["crane", "crane"], 1)]
    assert by_name[0] == by_name[1]

    sentences = make_prompts("language-enhancement", classes, 200, class_ids=ids)
    bird = {p.text for p in sentences if p.class_index == 0}
    machine = {p.text for p in sentences if p.class_index == 1}
    assert any(bird_definition in t for t in bird) and not any(bird_definition in t for t in machine)
    assert not any("also called a crane" in t for t in bird | machine)  # the name's own lemma is no synonym


@pytest.mark.parametrize("name", ["classname", "template", "templates", "wordnet", "language-enhancement", "domains"])
def test_class_ids_of_none_change_nothing(name):
    plain = make_prompts(name, CLASSES, 5, seed=2)
    assert make_prompts(name, CLASSES, 5, seed=2, class_ids=[None] * len(CLASSES)) == plain


def test_every_strategy_accepts_class_ids(tmp_path):
    classes = wnid_names([CRANE_BIRD, CRANE_MACHINE])
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({c: [f"a photo of a {c}"] for c in classes}))
    for name in PROMPTS.names():
        options = {"captions": str(caps)} if name == "captions" else {}
        prompts = make_prompts(name, classes, 2, class_ids=[CRANE_BIRD, CRANE_MACHINE], **options)
        assert [p.class_index for p in prompts] == [0, 0, 1, 1]
    with pytest.raises(UserError, match="class_ids has 1 entries for 2 classes"):
        make_prompts("template", classes, 1, class_ids=[CRANE_BIRD])
