# The README's two set-up commands: `make serve` and `make test`. Each builds
# the virtual environment it needs from pinned constraints, then runs.
PYTHON ?= python3
VENV := .venv
SERVE_VENV := .venv-serve
PIP_FLAGS := -q --disable-pip-version-check -c constraints.txt
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: test serve lint venv serve-venv bench-venv clean model classifier ablation figures bench docker-check gpu-check

# Everything (training, serving, dev tools) for tests and development.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -e ".[train,serve,dev,ray]"
	touch $@

# Serving only: no torch, no compiler needed; proves the service stands alone.
$(SERVE_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) -e ".[serve]"
	touch $@

# The GPU check's environment: onnxruntime-gpu *instead of* onnxruntime (never both), and torch
# with what `trainer train` imports, for the training measurement (on a GPU machine pip's torch is
# a CUDA build). Set GPU_PYTHON to use an environment that already has them.
GPU_VENV := .venv-gpu
$(GPU_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install $(PIP_FLAGS) -e ".[serve-gpu]" torch tqdm matplotlib
	! $(GPU_VENV)/bin/pip show onnxruntime >/dev/null 2>&1
	touch $@

# The service's tests in the serving environment alone (no torch, no trainer): see `test`.
SERVICE_TEST_VENV := .venv-service-test
$(SERVICE_TEST_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(SERVICE_TEST_VENV)
	$(SERVICE_TEST_VENV)/bin/pip install $(PIP_FLAGS) -e ".[serve,service-test]"
	! $(SERVICE_TEST_VENV)/bin/python -c "import torch" 2>/dev/null
	touch $@

# The bench's peer servers, LitServe and BentoML (bench/peers), in their own environment.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml bench/constraints-peers.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -c bench/constraints-peers.txt -e ".[bench]"
	touch $@

venv: $(VENV)/.installed
bench-venv: $(BENCH_VENV)/.installed
serve-venv: $(SERVE_VENV)/.installed

# Three pytest sessions, all must pass: the Ray Serve tests (they mostly wait on Ray's start-up and
# on a replica's restart) beside the rest; tests/service in the torch-free serving environment
# (what proves the service stands alone; only its Ray Serve batcher tests need the full one); and
# everything else in the full environment. The Ray session's output follows the others'.
MAIN_TESTS = $(filter-out tests/service/ tests/fixtures/,$(wildcard tests/*/)) $(wildcard tests/test_*.py)
test: $(VENV)/.installed $(SERVICE_TEST_VENV)/.installed $(BENCH_VENV)/.installed
	@$(VENV)/bin/python -m pytest -q -m ray -p no:cacheprovider > .ray-tests.log 2>&1 & ray=$$!; \
	echo "---- the service's tests, torch-free (.venv-service-test) ----"; \
	$(SERVICE_TEST_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/service; service=$$?; \
	echo "---- everything else (.venv) ----"; \
	$(VENV)/bin/python -m pytest -q -m "not ray" -p no:cacheprovider $(MAIN_TESTS) \
	  tests/service/test_ray_batching.py tests/service/test_batching.py; main=$$?; \
	wait $$ray; ray_status=$$?; echo "---- Ray Serve tests (tests/deploy/test_ray_serve.py) ----"; \
	cat .ray-tests.log; exit $$(( main != 0 || service != 0 || ray_status != 0 ))

# Build the Docker image and run it for real (buildah + podman + Docker Compose v2; about 2.5 minutes
# from nothing, under a minute from cache). It installs its own tools; see deploy/docker-check.sh.
docker-check: $(SERVE_VENV)/.installed
	SERVE_PYTHON=$(SERVE_VENV)/bin/python bash deploy/docker-check.sh

# On a machine with an NVIDIA GPU: the CUDA provider serves both models, answers match the CPU's,
# /swap latency, /encode and ONNX Runtime throughput at several batch sizes, training speed.
# Writes bench/results/gpu.{md,json}. About 2 minutes. See bench/gpu_check.py.
GPU_PYTHON ?=
gpu-check:
	@if [ -z "$(GPU_PYTHON)" ]; then $(MAKE) --no-print-directory $(GPU_VENV)/.installed; fi
	$(or $(GPU_PYTHON),$(GPU_VENV)/bin/python) -m bench.gpu_check --data-dir $(MNIST)

serve: $(SERVE_VENV)/.installed
	TWOCODE_HOST=$(HOST) TWOCODE_PORT=$(PORT) $(SERVE_VENV)/bin/python -m service

# The whole tree: ruff's checks and format, mypy (strict on service/ and modelrepo/). CI runs it.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy modelrepo service trainer deploy bench tests

# Reproduce the shipped models (about 25 minutes each on 2 CPU cores); see README.
MNIST ?= data/mnist
classifier: $(VENV)/.installed
	$(VENV)/bin/python -m trainer train-classifier --data-dir $(MNIST) --out evaluators/digit_cnn.pt

clean:
	rm -rf $(VENV) $(SERVE_VENV) $(GPU_VENV) $(SERVICE_TEST_VENV) .pytest_cache .mypy_cache .ruff_cache

# Train, export and evaluate a model into models/NAME (docs/results.md has each shipped model's exact
# commands and wall times). The shipped colour model (14 minutes on 2 CPU cores):
# make model SPECIFIED=colour FLAGS="--b1 4 --l-between1 30 --l-pair2 2 --leakage-start-step 2800 --epochs 10" \
#   EXPORT_FLAGS="--version 3 --prune-below 0.05"
SPECIFIED ?= digit
NAME ?= colormnist-$(SPECIFIED)
FLAGS ?=
EXPORT_FLAGS ?=
model: $(VENV)/.installed
	$(VENV)/bin/python -m trainer train --data-dir $(MNIST) --out runs/$(NAME) --specified $(SPECIFIED) --threads 2 $(FLAGS)
	$(VENV)/bin/python -m trainer export runs/$(NAME) --name $(NAME) --data-dir $(MNIST) $(EXPORT_FLAGS)
	$(VENV)/bin/python -m trainer evaluate models/$(NAME) --data-dir $(MNIST) --write-manifest

# The ablation table (32 runs, about 90 minutes on 2 CPU cores; resumes if interrupted)
# and the README's pictures of the shipped models.
ablation: $(VENV)/.installed figures
	$(VENV)/bin/python -m trainer ablate --data-dir $(MNIST) --out runs/ablation --report docs/ablation

figures: $(VENV)/.installed
	$(VENV)/bin/python -m trainer figures models/colormnist-digit --data-dir $(MNIST) --out docs --prefix digit
	$(VENV)/bin/python -m trainer figures models/colormnist-colour --data-dir $(MNIST) --out docs --prefix colour

# Speed, measured side by side in one run (about 14 minutes on 2 cores; needs wrk): bench/results/results.{md,json,png}.
# Nothing else should run meanwhile; see bench/__main__.py for the method.
bench: $(VENV)/.installed $(BENCH_VENV)/.installed
	$(VENV)/bin/python -m bench --data-dir $(MNIST)
