"""The diffusers backend, offline: a tiny Stable Diffusion pipeline with random weights, built from configs
(components as in diffusers' own get_dummy_components), saved, loaded back by path and run."""

import json

import pandas as pd

import pytest
import torch

from synthclone.errors import UserError
from synthclone.generators import create_generator

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    from synthclone.generators.tiny import tiny_diffusers_pipeline

    return tiny_diffusers_pipeline(tmp_path_factory.mktemp("tiny-sd"))


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


# ------------------------------------------------------------------ dtype, weight variants, memory options


def _unet_dtype(gen):
    return next(gen.pipe.unet.parameters()).dtype


def test_dtype_auto_is_float32_on_the_cpu_and_the_config_says_what_ran(tiny_pipeline):
    gen = create_generator("diffusers", model=str(tiny_pipeline), dtype="auto")
    assert _unet_dtype(gen) == torch.float32
    assert gen.config["dtype"] == "float32" and gen.config["variant"] is None and gen.config["device"] == "cpu"
    assert gen.config["safety_checker"] is False and gen.config["cpu_offload"] is False
    from synthclone.generators.diffusers_backend import resolve_dtype

    assert resolve_dtype("auto", "cuda:1") == "float16" and resolve_dtype("bf16", "cpu") == "bfloat16"
    with pytest.raises(UserError, match="unknown dtype 'float8'"):
        create_generator("diffusers", model=str(tiny_pipeline), dtype="float8")


@pytest.fixture(scope="module")
def fp16_pipeline(tiny_pipeline, tmp_path_factory):
    """The tiny pipeline saved as diffusers' hub repositories ship half-precision weights: *.fp16.safetensors only."""
    folder = tmp_path_factory.mktemp("tiny-sd-fp16") / "pipe"
    diffusers.StableDiffusionPipeline.from_pretrained(tiny_pipeline).to(torch.float16).save_pretrained(folder, variant="fp16")
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    return folder


def test_fp16_variant_loaded_when_present_default_weights_when_absent(tiny_pipeline, fp16_pipeline):
    gen = create_generator("diffusers", model=str(fp16_pipeline), dtype="float16", height=16, width=16)
    assert gen.config["variant"] == "fp16" and gen.config["variant_note"] is None and _unet_dtype(gen) == torch.float16
    out = gen(["a cat"], seeds=[0], guidance=2.0, steps=2)  # float16 runs on this CPU too (slowly at scale)
    assert out.images.dtype == torch.uint8 and out.images.float().std() > 1
    # no fp16 files: the default weights, cast, and a note saying so
    plain = create_generator("diffusers", model=str(tiny_pipeline), dtype="fp16")
    assert plain.config["variant"] is None and _unet_dtype(plain) == torch.float16
    assert plain.config["variant_note"] == f"no fp16 weights in {tiny_pipeline}; loaded the default weights as float16"
    # asked for by name, absent: one line, no fallback
    with pytest.raises(UserError, match="has no 'fp16' weights") as info:
        create_generator("diffusers", model=str(tiny_pipeline), dtype="float16", variant="fp16")
    assert "\n" not in str(info.value)
    # a folder with only fp16 files loads them at float32 (diffusers alone would find no default weights)
    up = create_generator("diffusers", model=str(fp16_pipeline), dtype="float32")
    assert up.config["variant"] == "fp16" and "only fp16 weights" in up.config["variant_note"]
    assert _unet_dtype(up) == torch.float32
    with pytest.raises(UserError, match="could not load"):  # variant: none on it: diffusers' own error, one line
        create_generator("diffusers", model=str(fp16_pipeline), variant="none")


def test_cpu_offload_needs_cuda_and_unknown_options_are_one_line(tiny_pipeline):
    with pytest.raises(UserError, match="cpu_offload needs a CUDA device, but the device is cpu") as info:
        create_generator("diffusers", model=str(tiny_pipeline), cpu_offload=True)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match=r"no option\(s\) \['vae_tilling'\]; valid: dtype, device"):
        create_generator("diffusers", model=str(tiny_pipeline), vae_tilling=True)


def test_memory_options_run_and_change_nothing_at_this_size(tiny_pipeline):
    plain = create_generator("diffusers", model=str(tiny_pipeline), height=16, width=16)
    lean = create_generator("diffusers", model=str(tiny_pipeline), height=16, width=16, attention_slicing=True,
                            vae_slicing=True, vae_tiling=True)
    assert lean.pipe.vae.use_slicing and lean.pipe.vae.use_tiling
    assert {k: lean.config[k] for k in ("attention_slicing", "vae_slicing", "vae_tiling")} == dict.fromkeys(
        ("attention_slicing", "vae_slicing", "vae_tiling"), True)
    prompts, seeds = ["a cat", "a dog", "a photo"], [3, 4, 5]
    a = plain(prompts, seeds, guidance=2.0, steps=2, batch_size=3).images
    b = lean(prompts, seeds, guidance=2.0, steps=2, batch_size=3).images
    assert (a.int() - b.int()).abs().max() <= 1  # 16 px is below the VAE's tile: tiling never cuts


def test_batch_size_is_what_the_unet_sees(tiny_pipeline):
    """generate.batch_size reaches the pipeline: 3 prompts in chunks of 2 -> UNet batches of 4 and 2
    (classifier-free guidance doubles each), and the images do not depend on the chunking."""
    gen = create_generator("diffusers", model=str(tiny_pipeline), height=16, width=16)
    seen = []
    handle = gen.pipe.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    try:
        chunked = gen(["a", "b", "c"], seeds=[0, 1, 2], guidance=2.0, steps=1, batch_size=2).images
    finally:
        handle.remove()
    assert seen == [4, 2]
    whole = gen(["a", "b", "c"], seeds=[0, 1, 2], guidance=2.0, steps=1, batch_size=3).images
    assert (chunked.int() - whole.int()).abs().max() <= 1


def test_zero_denoising_steps_is_refused_before_generating(tiny_pipeline):
    gen = create_generator("diffusers", model=str(tiny_pipeline), height=16, width=16)
    init = torch.zeros((1, 3, 16, 16), dtype=torch.uint8)
    with pytest.raises(UserError, match=r"steps 5 x strength 0.1 = 0.5 < 1 denoising step; raise steps to at least 10") as info:
        gen(["a"], seeds=[0], steps=5, init_images=init, strength=0.1)
    assert "\n" not in str(info.value)
    gen.check_settings(10, 0.1)  # exactly one step: fine


def test_zero_denoising_steps_stops_generate_before_the_store_exists(tiny_pipeline, tmp_path):
    from synthclone.config import GenerateConfig
    from synthclone.distributed.generation import generate_store

    cfg = GenerateConfig(generator="diffusers", model=str(tiny_pipeline), per_class=1, steps=3, shots=1,
                         strength=0.2, filter=[], generator_options={"height": 16, "width": 16})
    with pytest.raises(UserError, match="steps 3 x strength 0.2"):
        generate_store(cfg, tmp_path / "store", dataset="digits")
    assert not (tmp_path / "store").exists()


# ------------------------------------------------------------------ the safety checker


def _tiny_checker(flag_all: bool):
    """diffusers' own StableDiffusionSafetyChecker at toy size; its thresholds set to flag every image (or none)."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1, vocab_size=100),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                           image_size=8, patch_size=4),
        projection_dim=8)
    torch.manual_seed(0)
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():  # cosine similarity is in [-1, 1]: a threshold of -2 flags all, +2 none
        checker.concept_embeds_weights.fill_(-2.0 if flag_all else 2.0)
        checker.special_care_embeds_weights.fill_(2.0)
    return checker


def _feature_extractor():
    return transformers.CLIPImageProcessor(size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8})


def test_a_saved_safety_checker_flags_reach_the_output(tiny_pipeline, tmp_path):
    """A pipeline folder with a safety checker (as SD 1.x ships): output_type='pt' still carries its flags."""
    base = diffusers.StableDiffusionPipeline.from_pretrained(tiny_pipeline)
    diffusers.StableDiffusionPipeline(**{**base.components, "safety_checker": _tiny_checker(True),
                                         "feature_extractor": _feature_extractor()},
                                      requires_safety_checker=True).save_pretrained(tmp_path / "pipe")
    gen = create_generator("diffusers", model=str(tmp_path / "pipe"), height=16, width=16)
    assert gen.config["safety_checker"] is True
    out = gen(["a cat", "a dog", "a photo"], seeds=[0, 1, 2], guidance=2.0, steps=2, batch_size=2)
    assert out.nsfw.tolist() == [True, True, True] and int(out.images.max()) == 0  # black, as diffusers makes them
    init = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    assert gen(["a", "b"], seeds=[0, 1], steps=4, init_images=init, strength=0.5).nsfw.tolist() == [True, True]
    clean = create_generator("diffusers", model=str(tiny_pipeline), height=16, width=16)
    assert clean(["a cat"], seeds=[0], steps=1).nsfw is None  # no checker: no flags, not "all clean"


class MeanChecker(torch.nn.Module):
    """A safety checker by diffusers' call contract, ``(images, clip_input) -> (images, has_nsfw)``: it flags
    images whose mean (in the decoder's [-1, 1]) is above ``threshold`` and blacks them out, as the real one does."""

    def __init__(self):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(1))
        self.threshold = float("inf")
        self.seen = []

    @property
    def device(self):  # diffusers asks every component for its device, as models from diffusers / transformers have one
        return self.anchor.device

    def forward(self, images, clip_input):
        assert clip_input.shape[1:] == (3, 8, 8)  # the feature extractor ran
        values = images.float().mean(dim=(1, 2, 3)).tolist()
        self.seen.extend(values)
        flags = [v > self.threshold for v in values]
        for i, flagged in enumerate(flags):
            if flagged:
                images[i] = torch.zeros_like(images[i])
        return images, flags


def test_flagged_images_are_recorded_and_not_kept(tiny_pipeline, tmp_path):
    """Store manifest: ``nsfw`` per image; a flagged image is kept=False, dropped_by='nsfw', in rejected/
    (never a black training image); the unflagged ones are the same bytes as without the checker."""
    from synthclone.config import GenerateConfig
    from synthclone.data.store import load_store
    from synthclone.distributed.generation import generate_store, plan_store

    cfg = GenerateConfig(generator="diffusers", model=str(tiny_pipeline), per_class=4, shard_size=2, batch_size=2,
                         steps=2, guidance=2.0, filter=["dedup"], generator_options={"height": 16, "width": 16})
    classes = ["cat", "dog"]
    _, gen, _ = plan_store(cfg, tmp_path / "unused", classes=classes)  # the generator generate_store will use
    gen.pipe.safety_checker, gen.pipe.feature_extractor = MeanChecker(), _feature_extractor()
    generate_store(cfg, tmp_path / "open", classes=classes)  # threshold inf: the checker only looks
    values = list(gen.pipe.safety_checker.seen)
    gen.pipe.safety_checker.threshold = sorted(values)[len(values) // 2]
    summary = generate_store(cfg, tmp_path / "checked", classes=classes)
    a = pd.read_parquet(tmp_path / "open" / "manifest.parquet")
    b = pd.read_parquet(tmp_path / "checked" / "manifest.parquet")
    flagged = [v > gen.pipe.safety_checker.threshold for v in values]
    assert b["nsfw"].tolist() == flagged and 0 < sum(flagged) < len(flagged) and not a["nsfw"].any()
    assert not b.loc[b["nsfw"], "kept"].any() and set(b.loc[b["nsfw"], "dropped_by"]) == {"nsfw"}
    assert (b.loc[~b["nsfw"], "sha256"] == a.loc[~b["nsfw"], "sha256"]).all()
    assert b.loc[b["kept"], "dropped_by"].eq("").all() and summary.kept == int(b["kept"].sum())
    for row in b[b["nsfw"]].itertuples():
        assert row.path.startswith("rejected/")
        from PIL import Image

        assert max(Image.open(tmp_path / "checked" / row.path).getextrema()[0]) == 0  # the black square
    assert len(load_store(tmp_path / "checked")) == int(b["kept"].sum())


def test_generate_flags_and_what_a_store_resumes_with(tiny_pipeline, tmp_path, run_cli):
    """--dtype / memory flags reach the pipeline; memory options and the device stay out of the store's
    identity (a store resumes with other ones), the dtype actually used and vae_tiling are in it."""
    import json

    cfg = tmp_path / "gen.yaml"
    cfg.write_text("generate:\n  generator_options: {height: 16, width: 16}\n")
    out = tmp_path / "store"
    base = ["generate", "--config", cfg, "--out", out, "--generator", "diffusers", "--generator-weights", tiny_pipeline,
            "--classes", "cat", "--per-class", "2", "--filter", "none", "--steps", "1"]
    code, stdout, err = run_cli(*base, "--dtype", "auto", "--attention-slicing", "--vae-slicing")
    assert code == 0, err
    assert "made 2 images this run" in stdout and "in-process on cpu" in stdout
    identity = json.loads((out / "store.json").read_text())["identity"]["generator"]
    assert identity["config"]["dtype"] == "float32" and identity["spec"]["options"] == {"dtype": "auto", "height": 16, "width": 16}
    assert not {"device", "attention_slicing", "vae_slicing", "cpu_offload"} & set(identity["config"])
    assert pd.read_parquet(out / "manifest.parquet")["device"].tolist() == ["cpu", "cpu"]
    code, stdout, err = run_cli(*base, "--dtype", "auto")  # other memory options: the same store, resumed
    assert code == 0 and "made 0 images this run" in stdout, err
    code, _, err = run_cli(*base, "--dtype", "float16")
    assert code == 2 and "different config (changed: generator)" in err
    code, _, err = run_cli(*base, "--dtype", "auto", "--vae-tiling")
    assert code == 2 and "different config (changed: generator)" in err
