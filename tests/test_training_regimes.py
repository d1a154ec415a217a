"""Every training regime at tiny sizes, determinism, divergence handling, the CLI, test-split hygiene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from synthclone.cli import main
from synthclone.data import load_dataset
from synthclone.data.mixing import from_sets
from synthclone.models import load_any_model
from synthclone.models.checkpoint import read_meta
from synthclone.training import REGIMES, train_model
from synthclone.training.engine import TrainingDiverged, accuracy
from synthclone.training.regimes import multi_positive_loss

from test_training_mixing import write_store


@pytest.fixture(scope="module")
def real():
    return load_dataset("fashion-mnist", "train").per_class(24, seed=0)  # 240 images


@pytest.fixture(scope="module")
def val():
    return load_dataset("fashion-mnist", "val").per_class(10, seed=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory, real):
    # a store of real images standing in for generated ones: 2 prompts per class
    data = load_dataset("fashion-mnist", "train").per_class(8, seed=1)
    prompts = [f"a photo of a {data.classes[int(y)]}, style {i % 2}" for i, y in enumerate(data.labels)]
    return write_store(tmp_path_factory.mktemp("store"), data, prompts)


def _state(path: Path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def test_registry_lists_every_regime():
    assert set(REGIMES.names()) >= {"supervised", "finetune", "linear-probe", "classifier-tuning", "ssl",
                                    "ssl-multipos", "clip"}


@pytest.mark.parametrize("regime,model", [
    ("supervised", "resnet8"), ("linear-probe", "timm:test_resnet"), ("ssl", "resnet8"),
    ("clip", "resnet8"), ("classifier-tuning", "small_clip:tiny"),
])
def test_each_regime_writes_a_loadable_checkpoint(regime, model, real, val, tmp_path):
    out = tmp_path / regime
    extra = {"probe_epochs": 1} if regime == "ssl" else {}  # other regimes have no such option (an error now)
    result = train_model(regime, real, val, model, out, epochs=1, batch_size=48, **extra)
    assert result.val_accuracy is not None and 0.0 <= result.val_accuracy <= 1.0
    assert result.history[-1]["images_per_s"] > 0 and "loss" in result.history[-1]
    loaded = load_any_model(str(out))
    assert list(loaded.classes) == real.classes
    logits = loaded(val.images[:5].float() / 255)
    assert logits.shape == (5, 10) and torch.isfinite(logits).all()
    # the robustness benchmark attacks every model: gradients must reach the input pixels
    x = (val.images[:5].float() / 255).requires_grad_(True)
    loaded(x).logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the checkpoint holds the epoch chosen on the validation split, with its measured accuracy
    meta = read_meta(out)
    assert meta["training"]["regime"] == regime and meta["training"]["val_accuracy"] == pytest.approx(result.val_accuracy)
    assert accuracy(loaded, val) == pytest.approx(result.val_accuracy, abs=0.02)


def test_supervised_learns(real, val, tmp_path):
    result = train_model("supervised", real, val, "resnet8", tmp_path / "s", epochs=4, batch_size=32)
    assert result.val_accuracy > 0.45  # chance is 0.10
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]


def test_same_seed_same_weights_other_seed_differs(real, tmp_path):
    kw = dict(epochs=2, batch_size=64, precision="auto")  # bf16 where the CPU has it (emulated bf16 is 5x slower)
    train_model("supervised", real, None, "resnet8", tmp_path / "a", seed=7, **kw)
    train_model("supervised", real, None, "resnet8", tmp_path / "b", seed=7, **kw)
    train_model("supervised", real, None, "resnet8", tmp_path / "c", seed=8, **kw)
    a, b, c = _state(tmp_path / "a"), _state(tmp_path / "b"), _state(tmp_path / "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(real, val, tmp_path):
    out = tmp_path / "run"
    train_model("supervised", real, val, "resnet8", out, epochs=1, batch_size=64)
    before = (out / "model.safetensors").read_bytes()
    # resume the same run for a second epoch with an absurd learning rate: it must diverge
    with pytest.raises(TrainingDiverged, match=r"diverged.*last good checkpoint \(epoch 1\)"):
        train_model("supervised", real, val, "resnet8", out, epochs=2, batch_size=64, lr=1e30)
    assert (out / "model.safetensors").read_bytes() == before
    assert json.loads((out / "train_state" / "state.json").read_text())["epochs_done"] == 1
    assert torch.isfinite(load_any_model(str(out))(val.images[:4].float() / 255)).all()


def test_classifier_tuning_starts_at_zero_shot_and_keeps_the_tower_frozen(real, val, tmp_path):
    x = val.images[:8].float() / 255
    zero_shot = load_any_model("small_clip:tiny", classes=real.classes).eval()
    tuned_init = load_any_model("small_clip:tiny", classes=real.classes, trainable_head=True).eval()
    assert torch.allclose(zero_shot(x), tuned_init(x), atol=1e-4)  # head initialised from the text weights
    # few-shot variant: real and synthetic parts with their own loss weights
    data = from_sets([real.per_class(2, seed=0), real.per_class(6, seed=1)], [0.5, 0.5], ["real", "synthetic"])
    train_model("classifier-tuning", data, val, "small_clip:tiny", tmp_path / "ct", epochs=2, batch_size=20,
                loss_weights=[1.0, 0.5], lr=0.5)
    tuned = load_any_model(str(tmp_path / "ct")).eval()
    t0, t1 = zero_shot.tower.state_dict(), tuned.tower.state_dict()
    assert all(torch.equal(t0[k], t1[k]) for k in t0)
    assert not torch.allclose(tuned(x), zero_shot(x), atol=1e-3)  # the head moved


def test_linear_probe_leaves_the_backbone_untouched_and_finetune_replaces_the_head(real, val, tmp_path):
    train_model("supervised", real, val, "resnet8", tmp_path / "base", epochs=1, batch_size=64)
    train_model("linear-probe", real, val, str(tmp_path / "base"), tmp_path / "probe", epochs=1, batch_size=64)
    base, probe = _state(tmp_path / "base"), _state(tmp_path / "probe")
    assert all(torch.equal(base[k], probe[f"backbone.{k}"]) for k in base)
    # fine-tune onto a different label space (5 coarse classes): a new head is trained
    coarse = real.subset(torch.nonzero(real.labels < 5).flatten())
    coarse.classes = coarse.classes[:5]
    coarse_val = val.subset(torch.nonzero(val.labels < 5).flatten())
    coarse_val.classes = coarse_val.classes[:5]
    r = train_model("finetune", coarse, coarse_val, None, tmp_path / "ft", init=str(tmp_path / "base"), epochs=1, batch_size=32)
    ft = load_any_model(str(tmp_path / "ft"))
    assert ft.classes == real.classes[:5] and ft(coarse_val.images[:3].float() / 255).shape == (3, 5)
    assert r.val_accuracy is not None


def test_ssl_multipos_and_clip_use_store_prompts(store, val, tmp_path):
    r = train_model("ssl-multipos", str(store), val, "resnet8", tmp_path / "mp", epochs=1, batch_size=40, probe_epochs=1)
    meta = read_meta(tmp_path / "mp" / "pretrain")
    assert meta["training"]["positives"] == "prompt" and r.val_accuracy is not None
    r = train_model("clip", str(store), val, "resnet8", tmp_path / "clip", epochs=1, batch_size=40)
    meta = read_meta(tmp_path / "clip")
    assert meta["training"]["prompts"] == 20  # 10 classes x 2 prompts, each a text target
    assert load_any_model(str(tmp_path / "clip")).scale == pytest.approx(meta["recipe"]["scale"])
    with pytest.raises(Exception, match="needs prompts"):
        train_model("ssl-multipos", "real:k=2", val, "resnet8", tmp_path / "bad", epochs=1, dataset="fashion-mnist")


def test_multi_positive_loss_is_nt_xent_for_view_pairs():
    torch.manual_seed(0)
    z = F.normalize(torch.randn(8, 5), dim=1)
    groups = torch.arange(4).repeat(2)  # rows i and i+4 are the two views of image i
    tau = 0.2
    sim = z @ z.t() / tau
    sim.fill_diagonal_(-1e9)
    partner = (torch.arange(8) + 4) % 8
    ref = F.cross_entropy(sim, partner, reduction="none")
    assert torch.allclose(multi_positive_loss(z, groups, tau), ref, atol=1e-5)


def test_cli_train_never_reads_the_test_split(tmp_path, monkeypatch, capsys):
    from synthclone.data import fashion_mnist

    real_load = fashion_mnist.load

    def guarded(split="train"):
        assert split != "test", "training touched the test split"
        return real_load(split)

    monkeypatch.setattr(fashion_mnist, "load", guarded)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  data: real:k=10\n  epochs: 1\n  batch_size: 50\ndata:\n  val_limit: 100\n")
    assert main(["-q", "train", "--config", str(cfg), "--out", str(tmp_path / "o"), "--seed", "3"]) == 0
    meta = read_meta(tmp_path / "o")
    assert meta["training"]["data"]["images"] == 100 and meta["training"]["val_size"] == 100
    assert meta["training"]["settings"]["seed"] == 3 and meta["training"]["settings"]["batch_size"] == 50
    assert "best val acc" in capsys.readouterr().out
    # --test evaluates the selected checkpoint once, after training
    monkeypatch.setattr(fashion_mnist, "load", real_load)
    assert main(["-q", "train", "--data", "real:k=10", "--epochs", "1", "--batch-size", "50", "--val-limit", "100",
                 "--out", str(tmp_path / "o"), "--seed", "3", "--test", "--test-limit", "200"]) == 0
    assert json.loads((tmp_path / "o" / "test_eval.json").read_text())["test_size"] == 200


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", "real:k=2", "--regime", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "valid regimes" in capsys.readouterr().err
    assert main(["train", "--data", "/no/store", "--out", str(tmp_path / "y")]) == 2
