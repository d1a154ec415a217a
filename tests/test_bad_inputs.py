"""Issue 17 item 4 (growing): bad input is a one-line error with exit code 2, no traceback, and the
files already in the output folder are left as they were.

Each case runs the command in-process (``synthclone.cli.main``) with an output folder that already
holds a file; an exception other than the one-line UserError/argparse exit fails the test.
"""

import hashlib

import pytest

SENTINEL = "keep.txt"

CASES = [
    # (id, argv with {out}, a fragment of the error line)
    ("train-epochs-negative", ["train", "--epochs", "-1", "--out", "{out}"], "--epochs"),
    ("train-epochs-zero", ["train", "--epochs", "0", "--out", "{out}"], "must be at least 1"),
    ("train-batch-size-zero", ["train", "--batch-size", "0", "--out", "{out}"], "--batch-size"),
    ("train-batch-size-word", ["train", "--batch-size", "many", "--out", "{out}"], "not a whole number"),
    ("train-val-limit-zero", ["train", "--val-limit", "0", "--out", "{out}"], "--val-limit"),
    ("train-empty-data", ["train", "--data", "", "--epochs", "1", "--out", "{out}"], "--data is empty"),
    ("train-empty-dataset", ["train", "--dataset", "", "--epochs", "1", "--out", "{out}"], "--dataset is empty"),
    ("train-unknown-option", ["train", "--option", "train_limit=600", "--epochs", "1", "--out", "{out}"],
     "has no option 'train_limit'"),
    ("train-option-without-value", ["train", "--option", "tau", "--out", "{out}"], "KEY=VALUE"),
    ("train-loss-weights-words", ["train", "--loss-weights", "a,b", "--out", "{out}"], "comma-separated numbers"),
    ("train-unknown-regime-option", ["train", "--regime", "ssl", "--option", "temperature=2", "--epochs", "1",
                                     "--out", "{out}"], "has no option 'temperature'"),
    ("bench-limit-negative", ["bench", "--model", "{out}", "--limit", "-5", "--out", "{out}"], "--limit"),
    ("bench-limit-zero", ["bench", "--model", "{out}", "--limit", "0", "--out", "{out}"], "must be at least 1"),
    ("bench-batch-size-zero", ["bench", "--model", "{out}", "--batch-size", "0", "--out", "{out}"], "--batch-size"),
    ("generate-per-class-zero", ["generate", "--per-class", "0", "--out", "{out}"], "--per-class"),
    ("generate-steps-zero", ["generate", "--steps", "0", "--out", "{out}"], "--steps"),
    ("run-missing-config", ["run", "no-such-config.yaml", "--out", "{out}"], "does not exist"),
    ("run-unknown-key", ["run", "quickstart", "--set", "train.epochz=3", "--out", "{out}"], "epochz"),
    ("run-epochs-zero", ["run", "quickstart", "--set", "train.epochs=0", "--out", "{out}"], "epochs"),
    ("report-not-a-run", ["report", "{out}"], "not a run directory"),
    ("run-dry-unknown-bench-option", ["run", "quickstart", "--dry-run", "--set", "bench.options.foo_bar=1", "--out",
                                      "{out}"], "unknown key 'foo_bar'"),
    ("run-dry-severities-out-of-range", ["run", "quickstart", "--dry-run", "--set", "bench.severities=[0,7]", "--out",
                                         "{out}"], "severities are 1 to 5"),
    ("run-dry-bench-option-wrong-type", ["run", "quickstart", "--dry-run", "--set", "bench.options.pgd_steps=abc",
                                         "--out", "{out}"], "pgd_steps = 'abc' is not of type int"),
    ("run-dry-option-severities", ["run", "quickstart", "--dry-run", "--set", "bench.options.severities=[9]", "--out",
                                   "{out}"], "severities are 1 to 5"),
    ("run-dry-epsilon-negative", ["run", "quickstart", "--dry-run", "--set", "bench.epsilons=[-0.1]", "--out", "{out}"],
     "epsilons must be > 0"),
    ("bench-option-wrong-type", ["bench", "--model", "{out}", "--option", "pgd_steps=abc", "--out", "{out}"],
     "pgd_steps = 'abc' is not of type int"),
    ("run-dry-guided-store-without-a-denoising-step", ["run", "imagenet100-sd", "--dry-run", "--set",
                                                       "generate.strength=null", "--out", "{out}"], "real-guided store"),
    ("run-name-is-a-path", ["run", "quickstart", "--dry-run", "--set", "name=../../../x"], "plain folder name"),
    ("bench-hub-model-without-weights", ["bench", "--model", "timm:test_resnet", "--out", "{out}"],
     "--random-weights"),
    ("bench-option-unknown", ["bench", "--model", "{out}", "--option", "foo=1", "--out", "{out}"], "unknown key 'foo'"),
    # --out that cannot become a folder: refused before any model loads, the file in its way untouched
    ("train-out-is-a-file", ["train", "--epochs", "1", "--out", "{out}/keep.txt"], "is a file, not a folder"),
    ("train-out-under-a-file", ["train", "--epochs", "1", "--out", "{out}/keep.txt/sub"], "not a writable folder"),
    ("bench-out-is-a-file", ["bench", "--model", "{out}", "--out", "{out}/keep.txt"], "is a file, not a folder"),
    ("run-out-is-a-file", ["run", "quickstart", "--out", "{out}/keep.txt"], "is a file, not a folder"),
    # one override grammar: --set on every subcommand with settings, checked by the typed config
    ("train-set-unknown-key", ["train", "--set", "train.epochz=2", "--out", "{out}"], "unknown config key 'train.epochz'"),
    ("train-set-bad-optimizer", ["train", "--set", "train.optimizer=lbfgs", "--out", "{out}"], "train.optimizer"),
    ("train-set-without-value", ["train", "--set", "train.epochs", "--out", "{out}"], "section.key=value"),
    ("train-set-warmup-negative", ["train", "--set", "train.warmup_epochs=-1", "--out", "{out}"], "train.warmup_epochs"),
    ("bench-set-unknown-probe", ["bench", "--model", "{out}", "--set", "bench.probes=[nope]", "--out", "{out}"], "nope"),
    ("bench-config-missing", ["bench", "--model", "{out}", "--config", "nope.yaml", "--out", "{out}"], "does not exist"),
    ("bench-workers-negative", ["bench", "--model", "{out}", "--workers", "-1", "--out", "{out}"], "--workers"),
    ("generate-set-unknown-key", ["generate", "--set", "generate.per_klass=3", "--out", "{out}"], "per_klass"),
    ("run-dry-train-options", ["run", "quickstart", "--dry-run", "--set", "train.options.tau=0.1"], "train.options"),
    ("run-two-configs", ["run", "quickstart", "--config", "quickstart", "--dry-run"], "two configs"),
    ("run-dry-no-report-format", ["run", "quickstart", "--dry-run", "--set", "report.formats=[]"], "report.formats"),
    ("report-set-outside-report", ["report", "{out}", "--set", "train.epochs=2"], "only report.*"),
]


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_files_alone(argv, fragment, tmp_path, capsys):
    from synthclone.cli import main

    out = tmp_path / "out"
    out.mkdir()
    (out / SENTINEL).write_text("written before\n")
    before = _digest(out)
    try:
        code = main([a.replace("{out}", str(out)) for a in argv])
    except SystemExit as exc:  # argparse exits; the one-line parser error still counts
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert fragment in err, err
    assert _digest(out) == before


def test_a_changed_setting_on_a_finished_checkpoint_is_an_error_naming_it(tmp_path, capsys):
    """Issue 17 item 5: never a silent 'already finished' for a run asked with other settings."""
    from synthclone.cli import main

    out = tmp_path / "ckpt"
    base = ["-q", "train", "--data", "real:k=2", "--epochs", "1", "--val-limit", "20", "--batch-size", "8",
            "--out", str(out)]
    assert main(base) == 0
    capsys.readouterr()
    weights = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert main(base) == 0                                       # the same settings: nothing to do
    assert main(base + ["--lr", "0.01"]) == 2
    assert "finished with lr" in capsys.readouterr().err
    assert main([a if a != "8" else "4" for a in base]) == 2     # another batch size
    err = capsys.readouterr().err.strip()
    assert "batch_size (8 there, 4 asked)" in err and "\n" not in err
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() == weights


def _saved_checkpoint(folder):
    import torch

    from synthclone.models import load_any_model
    from synthclone.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = load_any_model("resnet8", classes=[str(i) for i in range(10)])
    save_checkpoint(model, folder)
    return folder


def test_checkpoint_metadata_is_data_not_a_call(tmp_path, capsys):
    """Issue 17 item 6: a meta.json that asks timm to load a file it names is refused in one line;
    wrong types in meta.json and a truncated weights file are one-line errors, not tracebacks."""
    import json

    from synthclone.cli import main

    ckpt = _saved_checkpoint(tmp_path / "ckpt")
    meta = json.loads((ckpt / "meta.json").read_text())
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes())
    (evil / "meta.json").write_text(json.dumps({**meta, "recipe": {"type": "timm", "name": "resnet18", "kwargs": {
        "checkpoint_path": str(tmp_path / "secret.pth"), "num_classes": 10}}}))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes())
    (wrong / "meta.json").write_text(json.dumps({**meta, "recipe": {**meta["recipe"], "kwargs": {"num_classes": "ten"}}}))
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "meta.json").write_text((ckpt / "meta.json").read_text())
    (cut / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes()[:100])
    for folder, fragment in ((evil, "checkpoint_path"), (wrong, "does not describe a model"), (cut, "not a readable safetensors")):
        code = main(["bench", "--model", str(folder), "--probes", "clean", "--limit", "8", "--out", str(tmp_path / "b")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and fragment in err, err
