"""Issue 17 item 7: an external model's weights come from a local folder, offline:
``timm:local-dir:FOLDER`` (what ``timm.models.save_for_hf`` writes) loads that folder's weights with
``--pretrained``; without it a benchmark is refused unless ``--random-weights`` says so."""

import pytest
import torch

timm = pytest.importorskip("timm")

from synthclone.data.fashion_mnist import CLASSES  # noqa: E402
from synthclone.models import load_any_model, model_data_config  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from timm.models import save_for_hf

    folder = tmp_path_factory.mktemp("timm") / "tiny"
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", num_classes=len(CLASSES))
    save_for_hf(net, str(folder), safe_serialization=True)
    return folder, net.state_dict()


def _net_state(model):
    return {k.removeprefix("net."): v for k, v in model.state_dict().items() if k.startswith("net.")}


def test_pretrained_loads_the_folders_weights_and_without_it_they_are_random(saved):
    folder, state = saved
    model = load_any_model(f"timm:local-dir:{folder}", classes=CLASSES, pretrained=True)
    got = _net_state(model)
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    fresh = _net_state(load_any_model(f"timm:local-dir:{folder}", classes=CLASSES))
    assert not all(torch.equal(fresh[k], state[k]) for k in state if state[k].dtype.is_floating_point)
    # the data config comes from the folder's pretrained_cfg, read without building the model
    assert model_data_config(f"timm:local-dir:{folder}")["size"] == model.spec.input_size[-1]


def test_bench_refuses_a_local_folder_without_weights_flag_or_config(saved, tmp_path, run_cli):
    folder, _ = saved
    code, _, err = run_cli("bench", "--model", f"timm:local-dir:{folder}", "--out", str(tmp_path / "b"))
    assert code == 2 and "--random-weights" in err
    code, _, err = run_cli("bench", "--model", f"timm:local-dir:{tmp_path}", "--pretrained", "--out", str(tmp_path / "b"))
    assert code == 2 and "no config.json" in err and err.count("\n") == 1
