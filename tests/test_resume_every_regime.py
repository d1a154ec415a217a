"""Issue 17 item 8: every training regime resumes deterministically. Each regime is trained twice
into fresh folders: once straight through, once interrupted in the middle of its second epoch (an
exception raised from inside the step loop, which leaves on disk exactly what a SIGKILL there leaves:
``tests/test_training_resume.py`` kills a real process) and then run again into the same folder. The
selected checkpoint and the last training state must be equal bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synthclone.training import engine, train_model

from test_training_regimes import real, store, val  # noqa: F401  (fixtures)


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing on the way catches it."""


def _tensors(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _last_state(folder: Path):
    import json

    from safetensors.torch import load_file

    info = json.loads((folder / "train_state" / "state.json").read_text())
    return info, load_file(str(folder / "train_state" / info["weights"]))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


REGIMES = {  # regime -> (model, train data fixture, options); 2 epochs each
    "supervised": ("resnet8", "real", {}),
    "finetune": (None, "real", {"init": "SUPERVISED"}),
    "linear-probe": ("resnet8", "real", {}),
    "classifier-tuning": ("small_clip:tiny", "store", {}),
    "ssl": ("resnet8", "real", {"probe_epochs": 2}),
    "ssl-multipos": ("resnet8", "store", {"probe_epochs": 2}),
    "clip": ("resnet8", "store", {}),
}


@pytest.fixture(scope="module")
def supervised(real, val, tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "sup"
    train_model("supervised", real, val, "resnet8", out, epochs=1, batch_size=48)
    return out


@pytest.mark.parametrize("regime", list(REGIMES))
def test_interrupted_run_resumes_to_the_same_weights(regime, request, supervised, val, tmp_path, monkeypatch):
    model, data_name, options = REGIMES[regime]
    data = request.getfixturevalue(data_name)
    options = {k: (str(supervised) if v == "SUPERVISED" else v) for k, v in options.items()}
    kwargs = dict(epochs=2, batch_size=40, seed=3, **options)
    if not isinstance(data, (str, Path)):
        kwargs["dataset"] = "fashion-mnist"
    # the uninterrupted run's process has encoded its prompts before, in other batches (generation does);
    # the resumed one starts fresh (a new process): text targets must not depend on that history
    from synthclone.data.store import load_store
    from synthclone.text import load_text_encoder

    prompts = list(load_store(data).meta["prompts"]) if isinstance(data, Path) else []
    load_text_encoder(None, pretrained=None).encode(prompts + ["a long caption about a leather ankle boot standing in the rain at night"])
    train_model(regime, str(data) if isinstance(data, Path) else data, val, model, tmp_path / "full", **kwargs)

    lr_at = engine.lr_at

    def dying_lr_at(step, total, warmup, peak):
        if step == total // 2 + total // 4:  # halfway through the second of two epochs (of the first phase)
            raise Killed
        return lr_at(step, total, warmup, peak)

    monkeypatch.setattr(engine, "lr_at", dying_lr_at)
    with pytest.raises(Killed):
        train_model(regime, str(data) if isinstance(data, Path) else data, val, model, tmp_path / "killed", **kwargs)
    monkeypatch.setattr(engine, "lr_at", lr_at)
    load_text_encoder.cache_clear()
    train_model(regime, str(data) if isinstance(data, Path) else data, val, model, tmp_path / "killed", **kwargs)

    full, killed = tmp_path / "full", tmp_path / "killed"
    if (full / "pretrain").is_dir():  # two-phase regimes: the pre-trained backbone too
        assert _same(_tensors(full / "pretrain"), _tensors(killed / "pretrain"))
    assert _same(_tensors(full), _tensors(killed)), f"{regime}: the resumed checkpoint differs"
    (info_f, state_f), (info_k, state_k) = _last_state(full), _last_state(killed)
    assert info_f["history"][-1]["loss"] == info_k["history"][-1]["loss"]
    assert _same(state_f, state_k)
