"""Any CLIP: open_clip models in the CLIP filter, the zero-shot arm, classifier tuning and the clip regime.

Every test uses a tiny open_clip model built here: its config is registered with open_clip from a JSON
file and its random weights are saved to a safetensors file, then loaded back through
``open_clip.create_model(name, pretrained=<file>)``, the path users take with ``clip.model:
open_clip:/path/config.json`` and ``clip.pretrained: /path/weights.safetensors``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from synthclone.config import load_config
from synthclone.data.images import ImageSet
from synthclone.errors import UserError
from synthclone.filters import create_filter
from synthclone.models import load_any_model, model_data_config
from synthclone.models.checkpoint import read_meta
from synthclone.models.external import load_open_clip, resolve_open_clip
from synthclone.text import load_text_encoder
from synthclone.training import train_model

CLASSES = ["cat", "dog", "shoe"]
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(model spec, weights file)`` of a tiny open_clip model with random weights."""
    import open_clip
    from safetensors.torch import save_file

    from synthclone.models.external import register_open_clip_config

    d = tmp_path_factory.mktemp("tiny-clip")
    config = d / "synthclone-test-tiny-clip.json"
    config.write_text(json.dumps(TINY))
    arch = register_open_clip_config(config)
    torch.manual_seed(0)
    net = open_clip.create_model(arch)
    weights = d / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    return f"open_clip:{config}", str(weights)


def _images(n: int, size: int, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return ImageSet(pixels, torch.arange(n) % len(CLASSES), list(CLASSES), [f"img-{seed}-{i}" for i in range(n)], name="tiny")


def test_weights_load_back_and_preprocessing_is_the_models_own(tiny):
    import open_clip
    from PIL import Image

    spec, weights = tiny
    name, resolved = resolve_open_clip(spec, weights)
    tower = load_open_clip(name, resolved)
    model, _, preprocess = open_clip.create_model_and_transforms(Path(name).stem, pretrained=weights)
    model.eval()
    assert tower.input_size == (32, 32) and tower.resize_mode == "shortest"
    # at the model's own size: open_clip's transform (ToTensor + Normalize) exactly, and the same embedding
    g = torch.Generator().manual_seed(1)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)
    theirs = preprocess(Image.fromarray(img.permute(1, 2, 0).numpy()))
    ours = tower.prepare(img[None].float() / 255)[0]
    assert torch.allclose(ours, theirs, atol=1e-5)
    emb = torch.nn.functional.normalize(model.encode_image(theirs[None]), dim=-1)
    assert torch.allclose(tower.encode_image(img[None].float() / 255), emb, atol=1e-5)
    # a larger, non-square image: shorter side resized to 32 and centre-cropped, as open_clip does
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 80), indexing="ij")
    smooth = torch.stack([yy, xx, (yy + xx) / 2]).mul(255).round().to(torch.uint8)
    theirs = preprocess(Image.fromarray(smooth.permute(1, 2, 0).numpy()))
    ours = tower.prepare(smooth[None].float() / 255)[0]
    assert ours.shape == theirs.shape == (3, 32, 32)
    assert (ours - theirs).abs().mean() < 0.05  # bilinear here, bicubic in PIL: nearly equal on a smooth image
    assert model_data_config(spec) == {"size": 32, "crop_pct": 1.0}


def test_filter_scores_and_selects_with_open_clip(tiny):
    spec, weights = tiny
    f = create_filter("clip", model=spec, pretrained=weights, device="cpu", quota=1)
    data = _images(6, 48)
    scores = f.score(data.images, data.labels, CLASSES)["clip_score"]
    assert scores.shape == (6,) and ((scores > 0) & (scores < 1)).all()
    # the softmax confidence of the intended class: the three classes' scores of one image sum to 1
    one = data.images[:1]
    assert sum(f.score(one, torch.tensor([c]), CLASSES)["clip_score"][0] for c in range(3)) == pytest.approx(1, abs=1e-5)
    # the same numbers as the zero-shot classifier of that model (CLIP's 80 templates, its preprocessing)
    clf = load_any_model(spec, classes=CLASSES, pretrained=weights).eval()
    with torch.no_grad():
        probs = clf(data.images.float() / 255).softmax(-1)
    assert np.allclose(scores, probs[torch.arange(6), data.labels].numpy(), atol=1e-5)
    r = f(data.images, data.labels, CLASSES)
    assert r.keep.dtype == bool and r.kept == 3  # quota 1 per class, filled by confidence
    ident = f.identity()
    assert ident["model"] == spec and ident["pretrained"] == str(Path(weights).resolve()) and "device" not in ident
    assert create_filter("clip", model=spec, pretrained=weights, device="cpu", quota=1).identity() == ident
    assert "model" not in create_filter("clip", tiny=True).identity()  # small-CLIP stores keep their identity


def test_zero_shot_classifier_on_gray_28_and_rgb_64(tiny):
    spec, weights = tiny
    model = load_any_model(spec, classes=CLASSES, pretrained=weights).eval()
    assert model.recipe["tower"] == {"type": "open_clip_tower", "name": spec.split(":", 1)[1],
                                     "pretrained": str(Path(weights).resolve())}
    with torch.no_grad():
        for x in (torch.rand(4, 1, 28, 28), torch.rand(4, 3, 64, 64)):
            logits = model(x)
            assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    # classifier tuning starts at the zero-shot classifier: the trainable head is the text head
    tuned = load_any_model(spec, classes=CLASSES, pretrained=weights, trainable_head=True).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(tuned(x), model(x), atol=1e-4)


def test_classifier_tuning_trains_and_reloads_from_its_own_state(tiny, tmp_path):
    from safetensors.torch import load_file

    spec, weights = tiny
    local = tmp_path / "weights.safetensors"
    shutil.copyfile(weights, local)
    out = tmp_path / "ct"
    result = train_model("classifier-tuning", _images(24, 32), _images(9, 32, seed=1), spec, out, epochs=1,
                         batch_size=12, pretrained=str(local))
    assert result.val_accuracy is not None
    meta = read_meta(out)
    assert meta["recipe"]["tower"]["name"] == spec.split(":", 1)[1]
    assert meta["recipe"]["tower"]["pretrained"] == str(local.resolve())
    assert meta["training"]["clip_pretrained"] == str(local.resolve())
    local.unlink()  # the checkpoint holds the whole tower: reloading needs neither these weights nor a network
    loaded = load_any_model(str(out))
    with torch.no_grad():
        logits = loaded(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    state, original = load_file(str(out / "model.safetensors")), load_file(weights)
    assert torch.equal(state["tower.model.visual.conv1.weight"], original["visual.conv1.weight"])  # frozen tower
    zero_shot = load_any_model(spec, classes=CLASSES, pretrained=weights, trainable_head=True)
    assert not torch.allclose(state["head.weight"], zero_shot.head.weight)  # the head trained


def test_clip_regime_with_an_open_clip_text_tower(tiny, tmp_path):
    spec, weights = tiny
    enc = load_text_encoder(spec, pretrained=weights)
    emb = enc.encode(["a photo of a cat.", "a photo of a dog."])
    assert emb.shape == (2, 32) and torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    data = _images(24, 32)
    data.meta["prompts"] = [f"a photo of a {CLASSES[int(y)]}, style {i % 2}" for i, y in enumerate(data.labels)]
    out = tmp_path / "clip"
    result = train_model("clip", data, _images(9, 32, seed=1), "resnet8", out, epochs=1, batch_size=12,
                         text_encoder=spec, text_pretrained=weights)
    assert result.val_accuracy is not None
    training = read_meta(out)["training"]
    assert training["text_encoder"] == spec and training["text_pretrained"] == str(Path(weights).resolve())
    assert load_any_model(str(out))(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_the_study_passes_open_clip_to_every_clip_step(tiny):
    from synthclone import study

    spec, weights = tiny
    cfg = load_config(None, [f"clip.model={spec}", f"clip.pretrained={weights}"])
    options = study.clip_filter_options(cfg)["clip"]
    assert options == {"device": cfg.device, "model": spec, "pretrained": weights}
    assert create_filter("clip", **{**options, "device": "cpu"}).identity()["model"] == spec
    study._check_embedded_models(cfg)  # open_clip models are not held to the small CLIP's classes
    assert study._clip_model(cfg) == (spec, {"pretrained": weights})  # zero-shot arm and classifier tuning
    assert "pretrained" not in load_config(None, []).clip.model_dump()  # unset: stage keys of older runs unchanged
    with pytest.raises(UserError, match="has no weights set"):
        study._check_embedded_models(load_config(None, [f"clip.model={spec}"]))
    with pytest.raises(UserError, match="clip.pretrained is for open_clip models"):
        study._check_embedded_models(load_config(None, ["clip.pretrained=openai"]))


def test_bad_names_and_weights_are_one_line_errors(tiny, tmp_path):
    spec, weights = tiny
    cases = [
        (lambda: load_any_model("open_clip:no-such-model", classes=CLASSES, pretrained="none"), "open_clip.list_models()"),
        (lambda: create_filter("clip", model="open_clip:no-such-model"), "open_clip.list_models()"),
        (lambda: load_any_model(spec, classes=CLASSES), "'none' for random weights"),
        (lambda: load_any_model("open_clip:RN50", classes=CLASSES, pretrained="no-such-tag"), "openai"),
        (lambda: resolve_open_clip(f"open_clip:local-dir:{tmp_path}", "openai"), "carries its own weights"),
        (lambda: resolve_open_clip(f"open_clip:local-dir:{tmp_path}"), "open_clip_config.json"),
        (lambda: load_text_encoder(spec), "text_pretrained"),
    ]
    for call, fix in cases:
        with pytest.raises(UserError) as err:
            call()
        assert fix in str(err.value) and "\n" not in str(err.value)
    bad = tmp_path / "wrong-shape.json"
    bad.write_text(json.dumps({**TINY, "embed_dim": 16}))
    with pytest.raises(UserError, match="weights are for this architecture"):
        load_any_model(f"open_clip:{bad}", classes=CLASSES, pretrained=weights)
    # random weights only when asked for in so many words
    assert load_any_model(spec, classes=CLASSES, pretrained="none")(torch.rand(1, 3, 32, 32)).shape == (1, 3)
