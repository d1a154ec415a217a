"""The model-card measurements: Fréchet distance, diversity, sample grid, card rendering, CLI errors."""


import pytest
import torch

from synthclone.generators.evaluate import diversity, frechet_distance, generator_card, sample_grid


def test_frechet_distance_known_values():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + torch.tensor([2.0, 0.0, 0.0])
    assert frechet_distance(a, shifted) == pytest.approx(4.0, rel=1e-3)
    wider = a * 2.0  # sigma 1 -> 2 in each of 3 dims: 3 * (1 + 4 - 2 * 2) = 3
    assert frechet_distance(a, wider) == pytest.approx(3.0, rel=0.05)


def test_diversity():
    labels = torch.tensor([0, 0, 1, 1])
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert diversity(same, labels) == 0.0
    apart = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert diversity(apart, labels) == pytest.approx(2 ** 0.5 / 2)


def test_sample_grid(tmp_path):
    from PIL import Image

    imgs = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    path = sample_grid(imgs, torch.tensor([0, 0, 1, 1, 2, 2]), ["a", "b", "c"], tmp_path / "g.png", per_row=2)
    with Image.open(path) as im:
        assert im.size == (90 + 2 * 56, 3 * 56)


def test_generator_card_renders_every_figure():
    metrics = {"generator": {"parameters": 820000}, "guidance": 2.0, "steps": 10, "scheduler": "dpm", "per_class": 5,
               "cas": 0.9, "cas_per_class": {"Bag": 0.8, "Coat": 1.0}, "real_classifier": {"test_accuracy": 0.87},
               "guidance_sweep": [{"guidance": 1.0, "images_per_class": 5, "cas": 0.7, "diversity": 0.2}],
               "diversity_real_test": 0.25, "frechet_distance_clip": 0.01, "frechet_distance_clip_real_val_vs_test": 0.001,
               "clip_zero_shot_test_accuracy": 0.9, "throughput_img_per_s": {"10": 60.0}, "threads": 1}
    meta = {"unet": {"channels": [16, 32, 64], "blocks": 1}, "schedule": {"kind": "cosine"},
            "training": {"steps": 100, "config": {"batch_size": 128}, "wall_time_s": 60, "final_loss": 0.1}}
    card = generator_card(metrics, meta, "synthclone pretrain generator --steps 100", "synthclone pretrain evaluate")
    for text in ["90.0%", "| Bag | 80.0% |", "| 1.0 | 5 | 70.0% | 0.200 |", "0.0100", "| 10 | 60.0 |", "--steps 100"]:
        assert text in card


def test_pretrain_bad_arguments(run_cli, tmp_path):
    assert run_cli("pretrain", "generator", "--steps", "0", "--out", tmp_path)[0] == 2
    code, _, err = run_cli("pretrain", "generator", "--channels", "a,b", "--out", tmp_path)
    assert code == 2 and "--channels" in err


def test_the_cards_generator_section_is_replaced_in_place():
    """Issue 18 item 4: every shipped snapshot has a line in the generator card, from the measured document;
    writing it again replaces the section (and 'pretrain evaluate --card-dir' keeps it)."""
    import json

    from synthclone.generators.embedded import SNAPSHOT_DIR, shipped_snapshots
    from synthclone.generators.evaluate import SNAPSHOT_BEGIN, with_snapshot_section

    doc = json.loads((SNAPSHOT_DIR / "metrics.json").read_text())
    measured = {r["name"] for r in doc["generators"]}
    assert {f"snapshot {name}" for name in shipped_snapshots()} <= measured
    assert doc["per_class"] == 1000
    card = with_snapshot_section("# card\n\n## Limitations\n- none\n", doc)
    again = with_snapshot_section(card, doc)
    assert again == card and card.count(SNAPSHOT_BEGIN) == 1 and card.index(SNAPSHOT_BEGIN) < card.index("## Limitations")
    assert all(f"| snapshot {name} |" in card for name in shipped_snapshots())
