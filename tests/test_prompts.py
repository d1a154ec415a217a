"""Prompt strategies: every registered one, WordNet fallbacks, captions files, a tiny local T5."""

from __future__ import annotations


import pytest

from synthclone.data.fashion_mnist import CLASSES
from synthclone.errors import UserError
from synthclone.prompts import PROMPTS, describe_prompts, make_prompts, readable


def test_registry_lists_every_strategy():
    assert set(PROMPTS.names()) == {"classname", "template", "templates", "wordnet", "language-enhancement", "domains", "captions"}
    for name in PROMPTS.names():
        assert PROMPTS.describe(name)
    with pytest.raises(UserError, match="valid prompt strategys: captions"):
        make_prompts("nope", CLASSES, 2)


@pytest.mark.parametrize("name", ["classname", "template", "templates", "wordnet", "language-enhancement", "domains"])
def test_strategy_shape_order_and_determinism(name):
    prompts = make_prompts(name, CLASSES, 7, seed=3)
    assert len(prompts) == 70
    assert [p.class_index for p in prompts] == [c for c in range(10) for _ in range(7)]
    assert prompts == make_prompts(name, CLASSES, 7, seed=3)
    for p in prompts:
        cls = CLASSES[p.class_index]
        # every prompt still names its class (readably: "T-shirt/top" -> "t-shirt or top")
        assert cls in p.text or readable(cls) in p.text, (name, p.text)


def test_readable_names_and_articles():
    assert readable("T-shirt/top") == "t-shirt or top"
    assert readable("Ankle boot") == "ankle boot"
    assert readable("iPod") == "iPod"
    texts = {p.text for p in make_prompts("template", CLASSES, 1)}
    assert "a photo of an ankle boot" in texts and "a photo of a t-shirt or top" in texts


def test_template_option_and_bad_template():
    prompts = make_prompts("template", ["Sandal"], 2, template="a sketch of a {c}")
    assert [p.text for p in prompts] == ["a sketch of a sandal"] * 2
    with pytest.raises(UserError, match=r"must contain \{c\}"):
        make_prompts("template", ["Sandal"], 2, template="a sketch")


def test_ensembles_cycle():
    counts = describe_prompts(make_prompts("templates", CLASSES, 45), CLASSES)
    assert set(counts.values()) == {20}
    counts = describe_prompts(make_prompts("domains", CLASSES, 8), CLASSES)
    assert set(counts.values()) == {8}
    texts = [p.text for p in make_prompts("domains", ["Coat"], 3)]
    assert texts[1] == "a sketch of a coat"


def test_wordnet_definitions_hypernyms_and_unknown_fallback():
    prompts = make_prompts("wordnet", ["Ankle boot", "T-shirt/top"], 2)
    texts = [p.text for p in prompts]
    assert texts[0] == "ankle boot, footwear that covers the whole foot and lower leg"
    assert texts[1] == "ankle boot, a type of footwear"
    assert texts[3] == "t-shirt or top, a type of shirt"
    with pytest.warns(UserWarning, match="'Florbix' is not in WordNet"):
        unknown = make_prompts("wordnet", ["Florbix"], 3)
    assert [p.text for p in unknown] == ["Florbix"] * 3


def test_language_enhancement_offline_many_unique_sentences():
    prompts = make_prompts("language-enhancement", CLASSES, 250)
    counts = describe_prompts(prompts, CLASSES)
    assert counts == {c: 200 for c in CLASSES}  # the research kept 200 unique sentences per class
    coat = [p.text for p in prompts if p.class_index == 4]
    assert any("overgarment" in t for t in coat)  # a WordNet relation made it in
    assert make_prompts("language-enhancement", CLASSES, 5, seed=1) != make_prompts("language-enhancement", CLASSES, 5, seed=2)
    with pytest.warns(UserWarning, match="not in WordNet"):
        odd = make_prompts("language-enhancement", ["Florbix"], 30)
    assert len({p.text for p in odd}) == 30 and all("florbix" in p.text for p in odd)


def test_language_enhancement_offline_uses_the_classes_own_synset_and_no_domain_words():
    """Issue 16 item 4: the offline sentences come from each class's synset only; clothing context words
    once gave "a photo of a leather goldfish", and a lookup by name "chihuahua, a city in Mexico"."""
    from synthclone.prompts.language_enhancement import FRAMINGS, VIEWS

    classes, ids = ["goldfish", "Chihuahua", "crane"], ["n01443537", "n02085620", "n03126707"]
    prompts = make_prompts("language-enhancement", classes, 200, class_ids=ids)
    assert describe_prompts(prompts, classes) == {"goldfish": 200, "Chihuahua": 192, "crane": 200}
    by_class = {c: [p.text for p in prompts if p.class_index == i] for i, c in enumerate(classes)}
    for c, texts in by_class.items():
        assert all(c.lower() in t.lower() for t in texts)  # every sentence names its class
    words = {w for t in by_class["goldfish"] for w in t.replace(",", " ").split()}
    assert not words & {"leather", "cotton", "denim", "rack", "mannequin", "shop", "catalogue", "folded"}
    assert any("freshwater" in t for t in by_class["goldfish"])  # its own definition
    assert any("a kind of dog" in t for t in by_class["Chihuahua"]) and not any("city" in t for t in by_class["Chihuahua"])
    assert any("lifting device" in t for t in by_class["crane"])  # the machine's synset, not the bird's
    # every word outside the class's synset is one of the domain-agnostic framings and conditions
    generic = {w for phrase in FRAMINGS + VIEWS for w in phrase.split()}
    assert {w for w in "a close-up photo of a goldfish, seen from above".replace(",", "").split()} - generic == {"goldfish"}


def test_language_enhancement_with_tiny_local_t5(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = "a the of on with photo shirt coat sandal boot dark light leather worn in shop window".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(tmp_path)
    cfg = transformers.T5Config(vocab_size=len(vocab), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
                                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    transformers.T5ForConditionalGeneration(cfg).save_pretrained(tmp_path)

    prompts = make_prompts("language-enhancement", ["Coat", "Sandal"], 12, seed=0, model=str(tmp_path))
    again = make_prompts("language-enhancement", ["Coat", "Sandal"], 12, seed=0, model=str(tmp_path))
    assert prompts == again  # seeded sampling
    counts = describe_prompts(prompts, ["Coat", "Sandal"])
    assert counts["Coat"] > 1 and counts["Sandal"] > 1
    assert all(("coat" if p.class_index == 0 else "sandal") in p.text.lower() for p in prompts)
    with pytest.raises(UserError, match="cannot load text-to-text model"):
        make_prompts("language-enhancement", ["Coat"], 2, model=str(tmp_path / "missing"))


def test_captions_file_formats_and_errors(tmp_path):
    yml = tmp_path / "caps.yaml"
    yml.write_text("Coat: [a long coat on a hanger, a short coat]\nSandal: a sandal on sand\n")
    prompts = make_prompts("captions", ["Coat", "Sandal"], 3, captions=str(yml))
    assert [p.text for p in prompts] == ["a long coat on a hanger", "a short coat", "a long coat on a hanger"] + ["a sandal on sand"] * 3
    tsv = tmp_path / "caps.tsv"
    tsv.write_text("# class\tcaption\nCoat\ta coat\nSandal\ta sandal\n")
    assert [p.text for p in make_prompts("captions", ["Coat", "Sandal"], 1, captions=str(tsv))] == ["a coat", "a sandal"]
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("Coat: [unclosed\n")
    no_tab = tmp_path / "bad.txt"
    no_tab.write_text("Coat a coat\n")
    for path, match in [(bad_yaml, "not valid YAML"), (no_tab, "has no TAB"), (tmp_path / "none.yaml", "does not exist")]:
        with pytest.raises(UserError, match=match):
            make_prompts("captions", ["Coat"], 1, captions=str(path))
    only_coat = tmp_path / "only_coat.tsv"
    only_coat.write_text("Coat\tx\n")
    with pytest.raises(UserError, match=r"no captions for classes \['Sandal'\]"):
        make_prompts("captions", ["Coat", "Sandal"], 1, captions=str(only_coat))
    with pytest.raises(UserError, match="needs a captions file"):
        make_prompts("captions", ["Coat"], 1)


def test_per_class_must_be_positive():
    with pytest.raises(UserError, match=">= 1"):
        make_prompts("template", CLASSES, 0)


def test_wordnet_prompts_do_not_depend_on_the_hash_seed():
    """nltk lists related synsets in hash-seed order; the strategies sort them. Pinned, so a change
    (which would change every store's config hash and images) is noticed."""
    from synthclone.data.store import prompts_digest

    le = [p.text for p in make_prompts("language-enhancement", ["Trouser"], 250)]
    assert prompts_digest(le)[:16] == "8f2a775401078669"  # re-pinned: the offline sentences use no domain words (issue 16)
    wn = [p.text for p in make_prompts("wordnet", CLASSES, 250)]
    assert prompts_digest(wn)[:16] == "6b30db1b5b31dcb9"
