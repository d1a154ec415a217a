"""The shipped embedded generator makes images a real-data classifier recognises."""


from synthclone.paths import WEIGHTS_DIR


def test_shipped_generator_images_are_recognised():
    """10 images per class at the default settings; a ResNet-8 trained 3 epochs on the 5k real val images must
    recognise well over half of them (the model card's figure, with 1,000/class and 3 epochs, is far higher)."""
    assert (WEIGHTS_DIR / "generator.safetensors").is_file(), "shipped generator weights are missing"
    from synthclone.generators import create_generator
    from synthclone.generators.evaluate import generate_per_class, predict, train_real_classifier

    gen = create_generator("embedded")
    imgs, labels = generate_per_class(gen, gen_classes(), 10, guidance=2.0, steps=10, scheduler="dpm", seed=123)
    assert imgs.shape == (100, 1, 28, 28)
    clf, real_acc = train_real_classifier(epochs=3, split="val", batch_size=128)
    assert real_acc > 0.7
    acc = float((predict(clf, imgs) == labels).float().mean())
    assert acc >= 0.6, f"only {acc:.2f} of generated images recognised"


def gen_classes():
    from synthclone.data.fashion_mnist import CLASSES

    return list(CLASSES)
