"""Issue 17 item 3: one override grammar. Every subcommand with settings takes ``--config`` and
``--set KEY=VALUE`` (YAML values), merged with its own flags by one function in one order:
the built-in defaults <- the config file <- ``--set`` <- the flags."""

from synthclone.cli import build_parser


def _settings(argv):
    from synthclone.commands import bench, generate, train

    args = build_parser().parse_args(argv)
    return {"train": train.settings, "bench": bench.settings, "generate": generate.resolve}[args.command](args)


def test_train_merges_config_then_set_then_flags():
    base = ["train", "--config", "quickstart", "--out", "x"]
    assert _settings(base).train.epochs == 6  # the quickstart preset's
    assert _settings(base + ["--set", "train.epochs=5"]).train.epochs == 5
    assert _settings(base + ["--set", "train.epochs=5", "--epochs", "2"]).train.epochs == 2
    cfg = _settings(["train", "--out", "x", "--option", "tau=0.2", "--set", "train.options.probe_epochs=3",
                     "--seed", "4", "--regime", "ssl"])
    assert cfg.train.options == {"tau": 0.2, "probe_epochs": 3}  # --option is --set train.options.KEY
    assert cfg.train.seeds == [4] and cfg.train.regimes == ["ssl"]
    assert "lr" not in cfg.train.model_fields_set  # so the regime's own learning rate applies


def test_bench_takes_a_config_and_reads_options_as_yaml():
    cfg = _settings(["bench", "--model", "m", "--out", "x", "--config", "quickstart", "--set", "bench.seed=3",
                     "--option", "pgd_steps=5", "--option", "attacks=[fgsm]", "--probes", "clean,calibration"])
    assert cfg.bench.seed == 3 and cfg.bench.probes == ["clean", "calibration"]
    assert cfg.bench.options["pgd_steps"] == 5 and cfg.bench.options["attacks"] == ["fgsm"]  # YAML, as --set reads
    assert cfg.bench.options["corruption_limit"] == 50  # the preset's own bench options stay
    assert cfg.data.val_limit == 150  # the preset's data section reaches the bench command too
    from synthclone.study import bench_fields

    fields = bench_fields(cfg)
    assert fields["seed"] == 3 and fields["pgd_steps"] == 5 and fields["limit"] == 150


def test_generate_shorthands_are_set_overrides():
    cfg = _settings(["generate", "--out", "x", "--prompt-option", "template=a sketch of a {c}",
                     "--filter-option", "clip.quota=7", "--set", "generate.per_class=9", "--per-class", "4"])
    assert cfg.generate.prompt_options == {"template": "a sketch of a {c}"}
    assert cfg.generate.filter_options == {"clip": {"quota": 7}} and cfg.generate.per_class == 4
    off = _settings(["generate", "--out", "x", "--filter", "none", "--keep-per-class", "5"])
    assert off.generate.filter == [] and off.generate.filter_options == {}  # an option of a filter that is off


def test_a_flag_that_is_not_given_leaves_the_config_value():
    cfg = _settings(["bench", "--model", "m", "--out", "x", "--set", "bench.batch_size=64"])
    assert cfg.bench.batch_size == 64 and cfg.bench.probes == ["all"]
