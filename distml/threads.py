"""Threads used by the CPU: our OpenMP kernels and the BLAS libraries (NumPy's, and scipy's that the
recurrent kernels call), set together.

    distml.set_num_threads(1)

By default the OpenMP kernels use every core above a size threshold, and their idle threads sleep
at once (passive wait policy) instead of spinning on the cores the BLAS pool needs next; the BLAS
pools keep their library's default (every core). set_num_threads(n) gives n threads to every pool,
scipy's BLAS (the recurrent kernels') included.

A forked child runs the OpenMP kernels on one thread: GNU OpenMP hangs in a child forked after
the parent ran a thread team (DataLoader workers, Hogwild processes, any os.fork).
"""
import os

from threadpoolctl import threadpool_limits

from distml._backend import C, blas_core

_blas_threads = None  # None: the BLAS libraries' own default, until set_num_threads


def limit_blas_pools():
    """Hold every BLAS pool loaded in the process (NumPy's, scipy's) to set_num_threads' count."""
    if _blas_threads is not None:
        threadpool_limits(limits=_blas_threads, user_api="blas")


def set_num_threads(n):
    """Use n threads in the _C kernels (OpenMP) and in every BLAS pool: `distml.set_num_threads(4)`."""
    global _blas_threads
    if not isinstance(n, int) or isinstance(n, bool):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, got {n}")
    C.set_num_threads(n)
    _blas_threads = n
    blas_core()  # loads scipy's BLAS (the recurrent kernels' GEMMs) and limits the pools
    limit_blas_pools()


def get_num_threads():
    """Threads the OpenMP kernels use: `distml.get_num_threads()`."""
    return C.get_num_threads()


os.register_at_fork(after_in_child=lambda: C.set_num_threads(1))
