"""The diffusers backend, offline: a tiny Stable Diffusion pipeline with random weights, built from configs
(components as in diffusers' own get_dummy_components), saved, loaded back by path and run."""

import json

import pytest
import torch

from synthclone.errors import UserError
from synthclone.generators import create_generator

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")


def _tiny_tokenizer(folder):
    """A CLIP BPE tokenizer with a letters-only vocabulary and a few merges, written to ``folder``."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for ch in letters:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    merges = ["a t</w>", "o f</w>", "p h", "ph o", "pho t", "phot o</w>"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-sd")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=2)
    vae = diffusers.AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=2)
    text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=64, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000))
    (root / "tok").mkdir()
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=_tiny_tokenizer(root / "tok"),
        scheduler=diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                          clip_sample=False, set_alpha_to_one=False),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


def test_loads_by_path_and_generates(tiny_pipeline):
    gen = create_generator("diffusers", model=str(tiny_pipeline), scheduler="dpm", attention_slicing=True,
                           height=16, width=16)
    out = gen(["a photo of a cat", "a dog"], seeds=[0, 1], guidance=2.0, steps=2, batch_size=2)
    assert out.images.dtype == torch.uint8 and out.images.shape == (2, 3, 16, 16)
    assert out.settings["scheduler"] == "dpm" and type(gen.pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    # per-sample seeds: image 1 alone equals image 1 in the batch, and seeds matter
    alone = gen(["a dog"], seeds=[1], guidance=2.0, steps=2)
    assert (alone.images[0].int() - out.images[1].int()).abs().max() <= 1
    other = gen(["a dog"], seeds=[7], guidance=2.0, steps=2)
    assert not torch.equal(other.images[0], alone.images[0])


def test_image_to_image(tiny_pipeline):
    gen = create_generator("diffusers", model=str(tiny_pipeline))
    init = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    out = gen(["a cat", "a cat"], seeds=[0, 1], guidance=1.0, steps=4, init_images=init, strength=0.5)
    assert out.images.shape == (2, 3, 16, 16) and out.settings["strength"] == 0.5


def test_bad_paths_and_inputs(tmp_path, tiny_pipeline):
    with pytest.raises(UserError, match="does not exist"):
        create_generator("diffusers", model=str(tmp_path / "nope" / "pipe"))
    with pytest.raises(UserError, match="model_index.json"):
        create_generator("diffusers", model=str(tmp_path))
    with pytest.raises(UserError, match="needs model"):
        create_generator("diffusers")
    gen = create_generator("diffusers", model=str(tiny_pipeline), height=16, width=16)
    with pytest.raises(UserError, match="empty"):
        gen([], seeds=[])
    with pytest.raises(UserError, match="valid"):
        gen(["a"], seeds=[0], scheduler="nonsense")


def test_missing_extra_is_a_one_line_error(monkeypatch):
    from synthclone.errors import MissingExtraError

    monkeypatch.setitem(__import__("sys").modules, "diffusers", None)  # what an absent package looks like to import
    with pytest.raises(MissingExtraError, match=r"synthclone\[diffusers\]"):
        create_generator("diffusers", model="org/some-pipeline")
