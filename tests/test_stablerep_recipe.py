"""Issue 16 item 5: StableRep as published (Tian et al., NeurIPS 2023; google-research/syn-rep-learn):
several images per caption, a sampler that puts m images of a prompt into a batch together, the strong
augmentation, and a linear probe with BatchNorm before the head, an lr sweep selected on validation."""

import pytest
import torch

from synthclone.data import load_dataset
from synthclone.data.mixing import ShardedBatchSampler, TrainData
from synthclone.prompts import make_prompts


def test_images_per_prompt_repeats_each_prompt_for_consecutive_images():
    classes = ["Coat", "Bag"]
    prompts = make_prompts("language-enhancement", classes, 7, seed=0, images_per_prompt=3)
    assert len(prompts) == 14 and [p.class_index for p in prompts] == [0] * 7 + [1] * 7
    texts = [p.text for p in prompts]
    for c in range(2):
        block = texts[7 * c: 7 * c + 7]
        assert block[0] == block[1] == block[2] and block[3] == block[4] == block[5] and block[6] != block[5]
        assert len(set(block)) == 3
    with pytest.raises(Exception, match="images_per_prompt"):
        make_prompts("template", classes, 4, images_per_prompt=0)


def _store_like(n_prompts: int, per_prompt: int, group_size: int = 6):
    from synthclone.data.mixing import from_sets

    data = load_dataset("fashion-mnist", "train").per_class(n_prompts * per_prompt // 10, seed=0)
    td = from_sets([data])
    prompts = [f"caption {i // per_prompt}" for i in range(len(td))]
    return TrainData(td.data, td.source, td.parts, None, prompts, "store", group_size=group_size)


def test_the_sampler_puts_m_images_of_a_prompt_into_a_batch():
    td = _store_like(n_prompts=20, per_prompt=10)
    groups = td.prompt_groups()
    sampler = ShardedBatchSampler(td, batch_size=40, seed=1)
    batches = sampler.global_batches(0)
    seen = []
    for b in batches:
        g = groups[b]
        counts = torch.bincount(g)[g.unique()]
        assert (counts == 6).all()  # every prompt in a batch with m = 6 of its images, never split
        assert len(b) == 36 or b is batches[-1]  # as many whole groups as fit in 40
        seen += g.unique().tolist()
    assert sorted(seen) == list(range(20))  # an epoch: every prompt once
    assert len(sampler) == len(batches) == 4
    # a new order every epoch, the same for the same seed
    assert sampler.global_batches(1)[0].tolist() != batches[0].tolist()
    assert [b.tolist() for b in ShardedBatchSampler(td, 40, seed=1).global_batches(0)] == [b.tolist() for b in batches]
    # a prompt with fewer images than m contributes all it has
    small = _store_like(n_prompts=20, per_prompt=10, group_size=12)
    first = ShardedBatchSampler(small, 40, seed=0).global_batches(0)[0]
    assert (torch.bincount(groups[first])[groups[first].unique()] == 10).all()


def test_stablerep_views_apply_each_transform_at_its_rate():
    from synthclone.training.augment import stablerep_views

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4000, 3, 16, 16) * 0.5 + torch.tensor([0.4, 0.1, 0.2])[None, :, None, None]
    y = stablerep_views(x, g)
    gray = ((y[:, 0] - y[:, 1]).abs().amax(dim=(1, 2)) < 1e-6).float().mean().item()
    assert gray == pytest.approx(0.2, abs=0.03)  # RandomGrayscale(p=0.2)
    one = stablerep_views(torch.rand(8, 1, 28, 28), g)
    assert one.shape == (8, 1, 28, 28) and 0 <= one.min() and one.max() <= 1


def test_probe_has_batchnorm_and_the_sweep_keeps_the_best_lr(tmp_path):
    from synthclone.models import load_any_model
    from synthclone.models.checkpoint import read_meta
    from synthclone.training import train_model

    from test_training_regimes import write_store

    data = load_dataset("fashion-mnist", "train").per_class(8, seed=1)
    prompts = [f"a photo of a {data.classes[int(y)]}, style {i % 2}" for i, y in enumerate(data.labels)]
    store = write_store(tmp_path / "store", data, prompts)
    val = load_dataset("fashion-mnist", "val").per_class(10, seed=0)
    out = tmp_path / "mp"
    result = train_model("ssl-multipos", str(store), val, "resnet8", out, epochs=1, batch_size=24, probe_epochs=1,
                         probe_lrs=[1e-5, 0.3], probe_data="real:k=6", dataset="fashion-mnist", group_size=4)
    subs = {lr: read_meta(out / f"probe-lr{lr:g}")["training"]["val_accuracy"] for lr in (1e-5, 0.3)}
    kept = read_meta(out)
    assert result.val_accuracy == max(subs.values()) == kept["training"]["val_accuracy"]
    assert kept["recipe"].get("norm") is True and kept["training"]["probe_data"].startswith("real:k=6")
    model = load_any_model(str(out))
    assert model.norm is not None and not model.norm.affine and model.norm.running_var.ne(1).any()
