"""The small CLIP: tiny random model contract, save/load, and the shipped weights' zero-shot accuracy."""

import pytest
import torch

from synthclone.errors import UserError
from synthclone.models.small_clip import load_small_clip, save_small_clip
from synthclone.paths import WEIGHTS_DIR


@pytest.fixture(scope="module")
def tiny():
    return load_small_clip(weights=None, tiny=True)


def test_encoders_are_unit_norm(tiny):
    x = torch.rand(3, 1, 28, 28)
    img = tiny.encode_image(x)
    txt = tiny.encode_text(["a photo of a bag", "a coat"])
    assert img.shape == (3, 16) and txt.shape == (2, 16)
    torch.testing.assert_close(img.norm(dim=1), torch.ones(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(txt.norm(dim=1), torch.ones(2), atol=1e-4, rtol=0)
    # RGB and other sizes are accepted (gray average, resize to 28x28)
    assert tiny.encode_image(torch.rand(2, 3, 64, 64)).shape == (2, 16)
    assert tiny.logit_scale > 1


def test_zero_shot_classifier_contract(tiny):
    classes = ["Bag", "Coat", "Sandal"]
    head = tiny.zero_shot_head(classes, ["a photo of a {}.", "a {}."])
    assert head.shape == (3, 16)
    clf = tiny.zero_shot_classifier(classes)
    x = torch.rand(4, 1, 28, 28)
    logits = clf(x)
    assert logits.shape == (4, 3) and clf.spec.num_classes == 3 and clf.spec.classes == classes
    assert clf.features(x).shape == (4, 16)
    with pytest.raises(UserError):
        tiny.zero_shot_head([])


def test_save_load_round_trip(tiny, tmp_path):
    path = save_small_clip(tiny, tmp_path / "c.safetensors")
    loaded = load_small_clip(path)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(loaded.encode_image(x), tiny.encode_image(x))
    with pytest.raises(UserError, match="not found"):
        load_small_clip(tmp_path / "missing.safetensors")


def test_shipped_clip_zero_shot_accuracy():
    """The shipped weights classify real test images zero-shot well above chance (model card: measured figure)."""
    assert (WEIGHTS_DIR / "small_clip.safetensors").is_file(), "shipped small CLIP weights are missing"
    from synthclone.data import load_dataset
    from synthclone.models.small_clip import zero_shot_accuracy

    test = load_dataset("fashion-mnist", split="test").subset(range(2000))
    acc = zero_shot_accuracy(load_small_clip(), test)["accuracy"]
    assert acc > 0.6


def test_pretrain_clip_cli_writes_loadable_weights(run_cli, tmp_path):
    code, out, _ = run_cli("pretrain", "clip", "--epochs", "1", "--limit", "256", "--width", "4", "--batch-size", "64",
                           "--out", tmp_path, "--card-dir", tmp_path)
    assert code == 0
    assert (tmp_path / "small_clip.safetensors").is_file() and (tmp_path / "CLIP_CARD.md").is_file()
    clip = load_small_clip(tmp_path)
    assert clip.encode_image(torch.rand(1, 1, 28, 28)).shape == (1, 256)
    assert '"zero_shot_test_accuracy"' in out
