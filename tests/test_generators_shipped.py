"""The shipped embedded generator makes images a real-data classifier recognises."""


import torch

from synthclone.paths import WEIGHTS_DIR


def test_shipped_generator_images_are_recognised():
    """10 images per class at the default settings; the shipped small CLIP (trained apart from the generator,
    91.8% zero-shot on the real test split) must recognise well over half of them (the model card's CAS, a
    ResNet-8 trained on real images scoring 1,000 per class, is far higher)."""
    assert (WEIGHTS_DIR / "generator.safetensors").is_file(), "shipped generator weights are missing"
    from synthclone.generators import create_generator
    from synthclone.generators.evaluate import generate_per_class, predict
    from synthclone.models import load_any_model

    gen = create_generator("embedded")
    imgs, labels = generate_per_class(gen, gen_classes(), 10, guidance=2.0, steps=10, scheduler="dpm", seed=123)
    assert imgs.shape == (100, 1, 28, 28)
    clip = load_any_model("small_clip", classes=gen_classes()).eval()
    acc = float((predict(clip, imgs) == labels).float().mean())
    assert acc >= 0.6, f"only {acc:.2f} of generated images recognised"
    noise = torch.randint(0, 256, imgs.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert float((predict(clip, noise) == labels).float().mean()) < 0.3  # the recogniser is not fooled by anything


def gen_classes():
    from synthclone.data.fashion_mnist import CLASSES

    return list(CLASSES)
