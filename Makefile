# geocsp: the two quick-start commands are `make demo` and `make test`.
# Both install what they need into the current Python environment.
# torch: a user's existing torch (>= 2.3) is kept; with none installed we take the
# CPU build torch==2.13.0 (never an unpinned, multi-GB CUDA build).
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install install-test demo test lint bench

install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e .

install-test: install
	$(PIP) install -q -e ".[test,onnx,lite0,raster]" scikit-learn
	@# timm and open_clip declare torchvision (and so a CUDA torch) as a dependency:
	@# install them alone (their tests use a test-only torchvision stub).
	$(PIP) install -q --no-deps "timm>=0.9" "open_clip_torch>=2.20"
	$(PIP) install -q ftfy regex
	@# GeoCLIP's released location encoder, the oracle of tests/pretrained (its deps are not needed).
	$(PIP) install -q --no-deps "geoclip==1.3.0"

demo: install
	$(PYTHON) -m geocsp demo

test: install-test
	$(PYTHON) -m ruff check src tests benchmarks tools
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -q -n 2 --dist loadfile --doctest-modules -m "slow or not slow" tests src/geocsp

lint:
	$(PYTHON) -m ruff check src tests benchmarks tools
	$(PYTHON) -m mypy

bench: install
	$(PYTHON) benchmarks/run.py
