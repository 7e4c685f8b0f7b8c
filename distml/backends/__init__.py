"""`distml.backends`: PyTorch's backend switches (cudnn, cuda.matmul, mps, mkldnn, openmp) and the
deterministic-algorithms mode.

    distml.backends.cudnn.benchmark = True
    distml.use_deterministic_algorithms(True)
"""
from distml import _backend
from distml.backends import cuda, cudnn, mkldnn, mps, openmp  # noqa: F401

_deterministic = {"mode": False, "warn_only": False}


def use_deterministic_algorithms(mode, *, warn_only=False):
    """Ask for deterministic algorithms. distml's CPU kernels already are (no atomics: each output
    element is computed by one thread in a fixed order), so on the CPU this records the mode.
    distml does not check cupy's kernels (their atomic adds are not deterministic), so mode=True
    while a CUDA device is usable raises NotImplementedError."""
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms(): argument 'mode' (position 1) must be bool, "
                        f"not {type(mode).__name__}")
    if not isinstance(warn_only, bool):
        raise TypeError(f"use_deterministic_algorithms(): argument 'warn_only' must be bool, "
                        f"not {type(warn_only).__name__}")
    if mode and _backend.cuda_device_count() > 0:
        raise NotImplementedError("use_deterministic_algorithms(True) with a CUDA device: distml does not "
                                  "check its CUDA kernels for determinism yet")
    _deterministic.update(mode=mode, warn_only=warn_only)


def are_deterministic_algorithms_enabled():
    return _deterministic["mode"]


def is_deterministic_algorithms_warn_only_enabled():
    return _deterministic["warn_only"]
