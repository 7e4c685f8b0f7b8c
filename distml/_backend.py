"""The one place that imports the optional pieces: CuPy and the compiled core `_C`.

Everything else asks here: `get_array_module(x)` picks numpy or cupy from the data,
`C` is the compiled module, `cupy` is None (with `cupy_error` saying why) when absent.
"""
import numpy as np

try:
    import cupy
    cupy_error = None
except Exception as error:  # ImportError, or a CUDA runtime that fails to load
    cupy, cupy_error = None, error


def _load_compiled_core():
    # _C links libmpi; loading mpi4py's MPI module first puts that same libmpi in the
    # process. rc.initialize=False keeps `import distml` from initialising MPI.
    import mpi4py
    mpi4py.rc.initialize = False
    mpi4py.rc.finalize = False
    from mpi4py import MPI  # noqa: F401
    from distml import _C
    return _C


C = _load_compiled_core()


def get_array_module(array):
    """numpy for host arrays, cupy for device arrays: `xp = get_array_module(x.array)`."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


def require_cupy():
    """cupy, or a RuntimeError that says why CUDA is unavailable."""
    if cupy is None:
        raise RuntimeError(f"CUDA is not available: cupy failed to import ({cupy_error})")
    return cupy
