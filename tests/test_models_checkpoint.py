"""Checkpoints (safetensors + meta.json) and load_any_model over timm / torchvision / open_clip."""

from __future__ import annotations

import json

import pytest
import torch

from synthclone.errors import UserError
from synthclone.models import load_any_model
from synthclone.models.checkpoint import load_checkpoint, read_meta, save_checkpoint

CLASSES = ["a", "b", "c"]


def _roundtrip(model, tmp_path, x):
    model.eval()
    save_checkpoint(model, tmp_path / "ckpt", training={"note": "test"})
    back = load_checkpoint(tmp_path / "ckpt")
    assert torch.allclose(back(x), model(x), atol=1e-6)
    assert back.classes == model.classes
    assert read_meta(tmp_path / "ckpt")["training"]["note"] == "test"
    return back


@pytest.mark.parametrize("name", ["resnet8", "timm:test_resnet", "torchvision:mobilenet_v3_small"])
def test_roundtrip_and_load_any_model(name, tmp_path):
    torch.manual_seed(0)
    model = load_any_model(name, classes=CLASSES, in_chans=1, input_size=(28, 28))
    x = torch.rand(4, 1, 28, 28)
    back = _roundtrip(model, tmp_path, x)
    assert back(x).shape == (4, 3)
    assert model.features(x).ndim == 2
    again = load_any_model(str(tmp_path / "ckpt"))  # a checkpoint dir is a model name too
    assert torch.equal(again(x), back(x))
    # no pickle anywhere: the directory holds exactly the two documented files
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["meta.json", "model.safetensors"]


def test_dir_without_meta_is_a_user_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="meta.json"):
        load_checkpoint(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")


def test_mismatched_weights_are_refused(tmp_path):
    save_checkpoint(load_any_model("resnet8", classes=CLASSES), tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    meta["recipe"]["name"] = "resnet20"
    (tmp_path / "a" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="does not fit"):
        load_checkpoint(tmp_path / "a")


def test_timm_wrapper_resizes_repeats_gray_and_normalises_inside():
    import timm
    from timm.data import resolve_data_config

    torch.manual_seed(0)
    model = load_any_model("timm:test_resnet", num_classes=5).eval()  # the model's own 3x160x160 config
    cfg = resolve_data_config({}, model=model.net)
    assert model.spec.input_size == tuple(cfg["input_size"][1:]) and model.spec.in_chans == 3
    gray = torch.rand(2, 1, 28, 28)
    rgb = gray.expand(-1, 3, -1, -1)
    manual = torch.nn.functional.interpolate(rgb, size=cfg["input_size"][1:], mode="bilinear", align_corners=False, antialias=False)
    manual = (manual - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    assert torch.allclose(model(gray), model.net(manual), atol=1e-5)
    assert isinstance(model.net, timm.models.ResNet)


def test_label_map_reduces_source_logits():
    torch.manual_seed(0)
    model = load_any_model("timm:test_resnet", class_map={"low": [0, 1, 2], "high": [7]}).eval()
    x = torch.rand(3, 3, 32, 32)
    full = model.net(model.prepare(x))
    out = model(x)
    assert out.shape == (3, 2) and model.classes == ["low", "high"]
    assert torch.allclose(out[:, 0], torch.logsumexp(full[:, :3], dim=1), atol=1e-5)
    assert torch.allclose(out[:, 1], full[:, 7], atol=1e-5)
    with pytest.raises(UserError):
        load_any_model("timm:test_resnet", class_map={"x": [5000]})


def test_unknown_names_list_the_valid_forms():
    with pytest.raises(UserError, match="timm:NAME"):
        load_any_model("no-such-model")
    with pytest.raises(UserError, match="unknown timm model"):
        load_any_model("timm:no_such_net")


def _tiny_open_clip(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    torch.manual_seed(0)
    net = open_clip.CLIP(**cfg)
    d = tmp_path / "oc"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.25] * 3}}))
    save_file({k: v.contiguous().clone() for k, v in net.state_dict().items()}, str(d / "open_clip_model.safetensors"))
    return d, net


def test_open_clip_tiny_model_from_a_saved_dir(tmp_path):
    d, net = _tiny_open_clip(tmp_path)
    model = load_any_model(f"open_clip:local-dir:{d}", classes=["cat", "dog", "shoe"]).eval()
    x = torch.rand(2, 1, 28, 28)
    logits = model(x)
    assert logits.shape == (2, 3) and model.spec.input_size == (32, 32) and model.spec.mean == (0.5, 0.5, 0.5)
    # the loaded weights are the saved ones: image embeddings match the original network
    emb = torch.nn.functional.normalize(net.encode_image((torch.nn.functional.interpolate(
        x.expand(-1, 3, -1, -1), size=(32, 32), mode="bilinear", align_corners=False) - 0.5) / 0.25), dim=-1)
    assert torch.allclose(model.features(x), emb, atol=1e-5)
    _roundtrip(model, tmp_path, x)
