# Everything a fresh machine needs is installed by `make install`, which `make demo` and
# `make test` run first. PYTHON must be 3.10+; TORCH pins the build (the machines this project
# is developed on have these wheels on disk; elsewhere pip downloads them).
PYTHON ?= python3.11
TORCH ?= torch==2.14.1 torchvision==0.29.1
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-fast lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $@

demo: install
	$(BIN)/glimpse demo

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

# The lint and type gate CI runs: ruff's rules and formatter, and mypy (strict on the project's own
# types; torch, open_clip and FAISS are loosely typed, see [tool.mypy] in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python bench/index_images.py
	$(BIN)/python bench/video_sampling.py
	$(BIN)/python bench/query_latency.py

clean:
	rm -rf $(VENV) glimpse-data .pytest_cache .mypy_cache .ruff_cache
