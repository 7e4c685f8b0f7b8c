"""The one place that imports the optional pieces: CuPy and the compiled core `_C`.

Everything else asks here: `get_array_module(x)` picks numpy or cupy from the data,
`C` is the compiled module, `cupy` is None (with `cupy_error` saying why) when absent.
Whether CUDA is usable (cupy imported and at least one device) is asked here too:
`cuda_device_count()`, `cuda_unavailable_reason()`, `require_cupy()`. Importing it also keeps
freed large arrays mapped (`_keep_freed_arrays_mapped`).
"""
import ctypes
import functools
import os

import numpy as np

try:
    import cupy
    cupy_error = None
except Exception as error:  # ImportError, or a CUDA runtime that fails to load
    cupy, cupy_error = None, error


def _ranks_on_this_host():
    """The launcher's count of ranks on this host (Open MPI's, MPICH's), 1 without one."""
    for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def _load_compiled_core():
    # _C links libmpi; loading mpi4py's MPI module first puts that same libmpi in the
    # process. rc.initialize=False keeps `import distml` from initialising MPI.
    import mpi4py
    mpi4py.rc.initialize = False
    mpi4py.rc.finalize = False
    from mpi4py import MPI  # noqa: F401
    # GNU OpenMP reads these when _C loads it. One process on the host: a thread team's idle threads
    # spin for 30,000 rounds (tens of microseconds) after each kernel before they sleep, so that the
    # next kernel of a step finds them awake (PyTorch's libgomp spins ten times longer); sleeping at
    # once cost each kernel a wake-up, and a LeNet step took 5.2 ms at 2 threads against 3.4 ms.
    # BLAS runs on these threads (distml/threads.py), so no other pool spins beside them. Several
    # ranks on the host (mpiexec's local size): idle threads sleep at once (a passive wait policy),
    # leaving the cores to the other ranks. A policy or spin count the user set is kept.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        if _ranks_on_this_host() > 1:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        else:
            os.environ["GOMP_SPINCOUNT"] = "30000"
    from distml import _C
    return _C


C = _load_compiled_core()


def _keep_freed_arrays_mapped():
    """Raise glibc malloc's mmap and trim thresholds (to 128 and 256 MiB) unless the user set them
    (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_). By default each large temporary array is
    unmapped when freed, and the next training step faults its pages back in one by one: a
    Transformer-layer step took 2,786 page faults and 9 ms of kernel time, PyTorch's 298 and 1 ms.
    Freed memory now stays in the process for the next array; peak RSS of the steps in
    benchmarks/memory_vs_torch.py did not change."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    libc = ctypes.CDLL(None)
    if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
        libc.mallopt(m_mmap_threshold, 128 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)


_keep_freed_arrays_mapped()


@functools.cache
def blas_core():
    """`C`, once its BLAS-calling kernels (the recurrent layers) hold scipy's sgemm and dgemm: the
    Fortran-convention functions scipy.linalg.cython_blas exports as capsules (scipy is imported on
    first use, not with distml)."""
    from scipy.linalg import cython_blas
    C.rnn_set_blas(cython_blas.__pyx_capi__["sgemm"], cython_blas.__pyx_capi__["dgemm"])
    from distml import threads
    threads.adopt_blas_pools()  # scipy's BLAS may have just been loaded, with a pool of its own
    return C


def get_array_module(array):
    """numpy for host arrays, cupy for device arrays: `xp = get_array_module(x.array)`."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


@functools.cache
def _cuda_probe():
    """(CUDA devices cupy can use, why CUDA is unusable or None), asked of the driver once."""
    if cupy is None:
        return 0, (f"cupy failed to import ({type(cupy_error).__name__}: {cupy_error}); install CuPy built for "
                   "this machine's CUDA (`pip install cupy-cuda13x`, the extra distml[cuda]) to use 'cuda' devices")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        return 0, f"cupy is installed but the CUDA driver is unusable ({error})"
    return count, None if count else "cupy is installed but sees no CUDA device"


def cuda_device_count():
    """How many CUDA devices distml can use: 0 without cupy, a driver or a device."""
    return _cuda_probe()[0]


def cuda_unavailable_reason():
    """Why distml cannot use CUDA ("cupy failed to import (...)"), or None when it can."""
    return _cuda_probe()[1]


_cuda_used = False


def require_cupy():
    """cupy, once a CUDA device is usable; otherwise the AssertionError PyTorch's CPU build raises
    ("Torch not compiled with CUDA enabled"), saying why. The first success sets up distml's use of
    CUDA (the memory pool's peak tracking, distml/cuda/_memory.py)."""
    global _cuda_used
    if not _cuda_used:
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise AssertionError(f"distml cannot use CUDA: {reason}")
        from distml.cuda import _memory
        _memory.install()
        _cuda_used = True
    return cupy


def cuda_used():
    """Whether distml has used CUDA in this process (made a cuda array or asked a device something)."""
    return _cuda_used


_NOT_COMPILED = {"xpu": "XPU", "mtia": "MTIA"}


def no_tensors_on(device_type, creating):
    """The error PyTorch's CPU build raises for a tensor on a backend it lacks, for every device
    type but cpu and cuda (the only ones distml holds tensors on): AssertionError for xpu and mtia,
    NotImplementedError for meta and for factories (`zeros(2, device="mps")`), RuntimeError for moves
    (`x.to("mps")`). Returned, for the caller to raise."""
    where = "distml holds tensors only on 'cpu' and 'cuda'"
    if device_type in _NOT_COMPILED:
        return AssertionError(f"distml is not compiled with {_NOT_COMPILED[device_type]} enabled: {where}")
    if device_type == "meta":
        return NotImplementedError(f"distml has no meta tensors: {where}")
    if creating:
        return NotImplementedError(f"distml cannot create tensors on the '{device_type}' backend: {where}")
    return RuntimeError(f"distml is not linked with support for {device_type} devices: {where}")


def device_array_module(device_type):
    """The array module for tensors made on a device type: numpy for "cpu", cupy for "cuda"
    (`require_cupy`'s AssertionError without a usable device), `no_tensors_on`'s error elsewhere."""
    if device_type == "cpu":
        return np
    if device_type == "cuda":
        return require_cupy()
    raise no_tensors_on(device_type, creating=True)
