"""Issue 20 item 2: frost blends ImageNet-C's own photographs where the imagecorruptions package data is
installed, the procedural layer otherwise, and the rows say which."""

import json

import pytest
import torch

from synthclone.robustness import corruption_ops as ops


@pytest.fixture
def no_photos(monkeypatch):
    monkeypatch.setattr(ops, "frost_photo_dir", lambda: None)


def test_photographs_are_found_without_importing_the_package(monkeypatch):
    import math
    import sys

    if ops.frost_photo_dir() is None:
        pytest.skip("imagecorruptions is not installed (pip install 'synthclone[frost]')")
    # located, never imported: found even where its import fails (it needs pkg_resources)
    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    monkeypatch.delitem(sys.modules, "imagecorruptions", raising=False)
    ops.frost_photo_dir.cache_clear()
    assert ops.frost_photo_dir() is not None and ops.frost_source() == "photographs"
    x = torch.rand(4, 3, 224, 224)
    a = ops.corrupt(x, "frost", 3, torch.Generator().manual_seed(0))
    assert torch.equal(a, ops.corrupt(x, "frost", 3, torch.Generator().manual_seed(0)))
    assert a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    # each image's layer is a window of one of the five photographs, resized by 1.1 as the reference does
    layer = ops.frost_photo_layer(4, 3, 224, 224, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    for i, k in enumerate(torch.randint(0, 5, (4,), generator=g).tolist()):
        photo = ops._frost_photo(k, 224, 224)
        from PIL import Image

        with Image.open(ops.frost_photo_dir() / ops.FROST_PHOTOS[k]) as im:
            assert photo.shape[-2:] == (math.ceil(im.height * 1.1), math.ceil(im.width * 1.1))
        top = int(torch.randint(0, photo.shape[-2] - 223, (1,), generator=g))
        left = int(torch.randint(0, photo.shape[-1] - 223, (1,), generator=g))
        assert torch.equal(layer[i], photo[0, :, top:top + 224, left:left + 224])
    assert ops.corrupt(x[:, :1], "frost", 3, torch.Generator().manual_seed(0)).shape == (4, 1, 224, 224)
    assert ops._frost_photo(0, 28, 28).shape[-2] < 100  # small images: the crystals keep their relative size


def test_procedural_layer_without_the_package(no_photos):
    assert ops.frost_source() == "procedural"
    x = torch.rand(2, 3, 64, 64)
    y = ops.corrupt(x, "frost", 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)


def test_rows_record_the_frost_layer(no_photos):
    from synthclone.data import load_dataset
    from synthclone.models import create_model
    from synthclone.robustness import BenchSettings, run_probes

    data = load_dataset("fashion-mnist", split="test").subset(range(8))
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=data.classes).eval()
    rows = run_probes(model, "r8", ["corruptions"], BenchSettings(data=data, corruptions=["frost", "contrast"],
                                                                   severities=[1], corruption_limit=8))
    extra = {c: json.loads(e) for c, e in zip(rows["condition"], rows["extra"])}
    assert extra["frost"]["frost_layer"] == "procedural" and "frost_layer" not in extra["contrast"]
