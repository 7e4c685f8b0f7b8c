"""Threads used by the CPU: our OpenMP kernels and the BLAS libraries (NumPy's, and scipy's that the
recurrent kernels call), set together.

    distml.set_num_threads(1)

A forked child runs the OpenMP kernels on one thread: GNU OpenMP hangs in a child forked after
the parent ran a thread team (DataLoader workers, Hogwild processes, any os.fork).
"""
import os

from distml._backend import C, blas_core


def set_num_threads(n):
    """Use n threads in the _C kernels (OpenMP) and in NumPy's BLAS (through threadpoolctl)."""
    if int(n) < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, got {n}")
    from threadpoolctl import threadpool_limits
    blas_core()  # load scipy's BLAS (the recurrent kernels' GEMMs) now, so that the limit below reaches it too
    C.set_num_threads(int(n))
    threadpool_limits(limits=int(n), user_api="blas")


def get_num_threads():
    return C.get_num_threads()


os.register_at_fork(after_in_child=lambda: C.set_num_threads(1))
