"""Threads used by the CPU: our OpenMP kernels and the BLAS libraries (NumPy's, and scipy's that the
recurrent kernels call), one pool for both.

    distml.set_num_threads(1)

By default the OpenMP kernels use every core above a size threshold, and their idle threads spin
briefly before they sleep (GOMP_SPINCOUNT, distml/_backend.py). OpenBLAS (NumPy's and scipy's) runs
its parallel jobs on those same OpenMP threads (csrc/blas_threads.h): its own pool spins for about
2**28 cycles after every call, on the cores the OpenMP kernels need next, which made two threads
slower than one. The BLAS pools
keep their library's default count (every core); set_num_threads(n) gives n threads to every pool.

A forked child runs the OpenMP kernels on one thread: GNU OpenMP hangs in a child forked after
the parent ran a thread team (DataLoader workers, Hogwild processes, any os.fork).
"""
import ctypes
import itertools
import os

from threadpoolctl import threadpool_info, threadpool_limits

from distml._backend import C, blas_core

_blas_threads = None  # None: the BLAS libraries' own default, until set_num_threads


def adopt_blas_pools():
    """Run every OpenBLAS loaded in the process (NumPy's, scipy's) on the OpenMP threads, held to
    set_num_threads' count once it was called."""
    for pool in threadpool_info():
        if pool["internal_api"] == "openblas" and pool["threading_layer"] == "pthreads":
            _set_threads_callback(ctypes.CDLL(pool["filepath"]))
    if _blas_threads is not None:
        threadpool_limits(limits=_blas_threads, user_api="blas")


def _set_threads_callback(library):
    """openblas_set_threads_callback_function (OpenBLAS >= 0.3.27), under the names the scipy-openblas
    builds give it (a scipy_ prefix, a 64_ suffix, or neither); older OpenBLAS keeps its pool."""
    for prefix, suffix in itertools.product(("scipy_", ""), ("64_", "_64", "")):
        setter = getattr(library, f"{prefix}openblas_set_threads_callback_function{suffix}", None)
        if setter is not None:
            setter.argtypes = [ctypes.c_void_p]
            setter(C.blas_threads_callback())
            return


def set_num_threads(n):
    """Use n threads in the _C kernels (OpenMP) and in every BLAS pool: `distml.set_num_threads(4)`."""
    global _blas_threads
    if not isinstance(n, int) or isinstance(n, bool):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, got {n}")
    C.set_num_threads(n)
    _blas_threads = n
    blas_core()  # loads scipy's BLAS (the recurrent kernels' GEMMs) and adopts its pool
    threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """Threads the OpenMP kernels use: `distml.get_num_threads()`."""
    return C.get_num_threads()


adopt_blas_pools()
os.register_at_fork(after_in_child=lambda: C.set_num_threads(1))
