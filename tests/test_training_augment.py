import torch

from synthclone.training.augment import crop_flip, random_resized_crop_flip, simclr_views
from synthclone.training.regimes import SMALL_IMAGE_SIDE, Context, _augment


def _x(n=6, c=3, s=64):
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(0))


def test_random_resized_crop_is_seeded_in_range_and_identity_at_full_scale():
    x = _x()
    a = random_resized_crop_flip(x, torch.Generator().manual_seed(1))
    b = random_resized_crop_flip(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.allclose(a, x)
    same = random_resized_crop_flip(x, torch.Generator().manual_seed(1), scale=(1, 1), ratio=(1, 1), flip=False)
    assert torch.allclose(same, x, atol=1e-5)
    # a crop of a quarter of the area magnifies: neighbouring pixels become more alike
    zoom = random_resized_crop_flip(x, torch.Generator().manual_seed(2), scale=(0.25, 0.25), ratio=(1, 1), flip=False)
    assert (zoom[..., 1:] - zoom[..., :-1]).abs().mean() < 0.6 * (x[..., 1:] - x[..., :-1]).abs().mean()


def test_uint8_and_float_inputs_give_the_same_crops():
    x = (_x() * 255).round().to(torch.uint8)
    a = random_resized_crop_flip(x, torch.Generator().manual_seed(4))
    b = random_resized_crop_flip(x.float() / 255, torch.Generator().manual_seed(4))
    assert a.dtype == torch.uint8 and b.dtype == torch.float32
    assert (a.float() / 255 - b).abs().max() < 1.5 / 255  # the same boxes; uint8 rounds once


def test_simclr_views_are_seeded_and_in_range():
    x = _x(4, 1, 28)
    v = simclr_views(x, torch.Generator().manual_seed(3))
    assert torch.equal(v, simclr_views(x, torch.Generator().manual_seed(3))) and 0 <= float(v.min()) <= float(v.max()) <= 1


def test_auto_augmentation_follows_image_size_and_model():
    class _Data:
        def __init__(self, side):
            self.shape = (3, side, side)

    class _Train:
        def __init__(self, side):
            self.data = _Data(side)

    def kind(model, side):
        ctx = Context("supervised", _Train(side), None, model, None, None, {})
        fn = _augment(ctx)
        x = _x(2, 3, side)
        g = torch.Generator().manual_seed(0)
        out = fn(x, torch.Generator().manual_seed(0))
        return "crop-flip" if torch.equal(out, crop_flip(x, g, pad=2)) else "other"

    assert kind("resnet8", 28) == "crop-flip"
    assert kind("resnet8", SMALL_IMAGE_SIDE) == "other"
    assert kind("timm:resnet18", 32) == "other"
