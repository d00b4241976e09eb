# Everything a fresh machine needs is installed by `make install`, which `make demo` and
# `make test` run first. PYTHON must be 3.11+; TORCH pins the build (the machines this project
# is developed on have these wheels on disk; elsewhere pip downloads them). PyPI's default Linux
# torch is a CUDA build (~4 GB with its CUDA libraries); on a machine without an NVIDIA GPU,
#   make install TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cpu"
# installs PyTorch's CPU-only build (~0.7 GB) instead.
PYTHON ?= python3.11
TORCH ?= torch==2.14.1 torchvision==0.29.1
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-fast lint format bench reliability clean

install: $(VENV)/.installed

# Progress is shown (pip's own lines and bars): the first install takes minutes.
PIP := $(BIN)/python -m pip --disable-pip-version-check --no-input

$(VENV)/.installed: pyproject.toml Makefile
	@echo "==> creating the virtual environment $(VENV) ($(PYTHON))"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	@echo "==> installing PyTorch: $(TORCH) (the first time: a large download unless cached)"
	$(PIP) install $(TORCH)
	@echo "==> installing Glimpse and its dependencies"
	$(PIP) install -e '.[dev,postgres,ray,ocr]'
	touch $@
	@echo "==> installed into $(VENV)"

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
	$(BIN)/python bench/index_images.py --ray --catalogue 96 --photos 0 --rounds 3
	$(BIN)/python bench/video_sampling.py
	$(BIN)/python bench/query_latency.py
	$(BIN)/python bench/ocr.py

# The long reliability suites (README "Reliability"); CI runs short versions of each in `make test`.
# They exit non-zero on any failure; a script not in this checkout is named and skipped.
RELIABILITY := bench/fuzz_api.py bench/fault_injection.py bench/load_live_indexing.py

reliability: install
	@for script in $(RELIABILITY); do \
		if [ -f $$script ]; then echo "==> $$script"; $(BIN)/python $$script || exit 1; \
		else echo "==> $$script: not in this checkout, skipped"; fi; \
	done

clean:
	rm -rf $(VENV) glimpse-data .pytest_cache .mypy_cache .ruff_cache
