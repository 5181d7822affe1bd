# geocsp: the two quick-start commands are `make demo` and `make test`.
# Both install what they need into the current Python environment.
# torch: a user's existing torch (>= TORCH_FLOOR, CPU or CUDA) is kept. With none (or an older
# one) we install the CPU-only build from PyTorch's CPU wheel index: a plain
# `pip install torch` on Linux takes the PyPI wheel, a CUDA build that pulls several GB of
# nvidia-* packages. GPU users install their CUDA torch first (pytorch.org), and it is kept.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_FLOOR := 2.3
TORCH_PIN := torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAS_TORCH := import sys, torch; v = torch.__version__.split("+")[0].split("."); \
	sys.exit(tuple(map(int, v[:2])) < tuple(map(int, "$(TORCH_FLOOR)".split("."))))

.PHONY: install install-test demo test lint bench

install:
	@# The CPU index first; where it cannot be reached (an offline mirror of PyPI, e.g. CI) fall
	@# back to the index pip is configured with, still pinned.
	@$(PYTHON) -c '$(HAS_TORCH)' 2>/dev/null || $(PIP) install -q --retries 0 --timeout 10 \
		--index-url $(TORCH_CPU_INDEX) "$(TORCH_PIN)" 2>/dev/null || $(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e .

install-test: install
	$(PIP) install -q -e ".[test,onnx,lite0,raster,crs]"
	@# timm and open_clip declare torchvision (and so a CUDA torch) as a dependency:
	@# install them alone (their tests use a test-only torchvision stub).
	$(PIP) install -q --no-deps "timm>=0.9" "open_clip_torch>=2.20"
	$(PIP) install -q ftfy regex
	@# GeoCLIP's released location encoder, the oracle of tests/pretrained (its deps are not needed).
	$(PIP) install -q --no-deps "geoclip==1.3.0"
	@# Peers' own encoder code, the oracles of the converter tests (tests/pretrained/test_convert_*.py):
	@# SatCLIP's location encoder + spherical harmonics (rangegeo), CSP / TorchSpatial encoders.
	$(PIP) install -q --no-deps "rangegeo==0.1.0" "torchspatial==0.0.0.1"

demo: install
	$(PYTHON) -m geocsp demo

test: install-test
	$(PYTHON) -m ruff check src tests benchmarks tools examples
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -q -n 2 --dist loadfile --doctest-modules -m "slow or not slow" tests src/geocsp

lint:
	$(PYTHON) -m ruff check src tests benchmarks tools examples
	$(PYTHON) -m mypy

bench: install
	$(PYTHON) benchmarks/run.py
