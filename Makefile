# The quick start's two commands. Each first creates (or reuses) the virtual environment .venv
# and installs distml into it, rebuilding when pyproject.toml, setup.py or csrc/ change.
#
#   make demo     train a CNN on scikit-learn's bundled handwritten digits (no download)
#   make test     the whole test suite (multi-rank tests run under mpiexec -n 2, 3, 4)

PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: demo test

demo: $(INSTALLED)
	$(VENV)/bin/python examples/mnist.py

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest tests

$(INSTALLED): pyproject.toml setup.py $(shell find csrc -type f)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test,examples]"
	$(VENV)/bin/python -c "import distml; print(distml._C.build_info())"
	touch $@
