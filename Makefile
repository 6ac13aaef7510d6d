# Two commands do all the set-up on a fresh machine:
#   make demo   renders the shipped demo song to out/demo.mp4
#   make test   runs lint, the layering contracts and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint format clean docs bundle bundle-smoke

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch: the CPU/CUDA build this machine has on disk; users with a GPU install their own.
	$(BIN)/python -m pip install --quiet 'torch==2.14.1' 'torchvision==0.29.1' || \
		$(BIN)/python -m pip install --quiet 'torch>=2.4,<3' 'torchvision>=0.19,<1'
	@# docs: Sphinx + myst-parser, so the docs-build test runs in CI instead of skipping.
	$(BIN)/python -m pip install --quiet -e '.[dev,sd,secure,docs]'
	@# The analysis itself needs no librosa (engine/audio/features.py is numpy). librosa
	@# stays for the tests and the benchmarks' stock-librosa comparison; it compiles numba
	@# kernels on first use (~20 s on 2 cores), so do that once here, not in the first test.
	$(BIN)/python -c "import librosa.feature, librosa.onset, librosa.beat"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@mkdir -p out
	$(BIN)/apex-director render resources/demo/demo_song.mp3 -o out/demo.mp4 \
		--preset web --json-report out/demo.report.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

# The user and developer guides and the engine.api reference (from the docstrings) as
# HTML in docs/_build/html; any warning fails the build.
docs: $(STAMP)
	$(BIN)/python -c 'import sphinx, myst_parser' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet 'sphinx>=7.2' 'myst-parser>=3'
	$(BIN)/python -m sphinx -b html -E -W --keep-going -q docs docs/_build/html

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# PyInstaller one-folder build of the CLI and GUI (draft/stills/QC/GUI; no torch): see
# packaging/README.md.  dist/apex-director/{apex-director,apex-director-gui}.
bundle: $(STAMP)
	@$(BIN)/python -c 'import PyInstaller' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet -e '.[package]'
	$(BIN)/pyinstaller --noconfirm --log-level WARN packaging/apex_director.spec \
		--distpath dist --workpath build/pyinstaller
	packaging/smoke_test.sh dist/apex-director

bundle-smoke:
	packaging/smoke_test.sh dist/apex-director

clean:
	rm -rf out .pytest_cache .ruff_cache build/pyinstaller dist/apex-director
