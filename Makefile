# Two commands do everything: `make demo` (the main job) and `make test` (the test suite).
# Both set up .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synthclone-setup

.PHONY: setup demo test test-slow bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so pip takes the local wheels before resolving anything else
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	sh scripts/system-deps.sh
	@touch $(STAMP)

demo: setup
	$(BIN)/synthclone run configs/quickstart.yaml

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
