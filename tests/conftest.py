import os

import numpy as np
import pytest

os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

MNIST_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def mnist_dir():
    """The real MNIST test split beside the repo (../shared/data/mnist); skip when absent."""
    path = os.path.abspath(MNIST_DIR)
    if not os.path.exists(os.path.join(path, "t10k-images-idx3-ubyte.gz")):
        pytest.skip(f"MNIST test split not found at {path}")
    return path
