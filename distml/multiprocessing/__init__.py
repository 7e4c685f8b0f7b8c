"""The standard library's multiprocessing, with Tensors that travel as shared memory (torch.multiprocessing).

    import distml.multiprocessing as mp
    model.share_memory()
    processes = [mp.Process(target=train, args=(model,)) for _ in range(4)]   # Hogwild

Every name of `multiprocessing` is here. A Tensor or Parameter sent through a Queue, a Pipe or a
Pool, or passed to a process started by spawn/forkserver, arrives viewing the same shared memory
(see distml.multiprocessing.reductions); a tensor not yet shared is moved there first.
`spawn(fn, args, nprocs)` runs `fn(rank, *args)` in nprocs processes and raises when one fails.

A forked child runs the OpenMP kernels on one thread (distml.threads sees to it for every fork).
"""
import multiprocessing
from multiprocessing import *  # noqa: F401,F403

from distml.multiprocessing.reductions import init_reductions
from distml.multiprocessing.spawn import (ProcessContext, ProcessException, ProcessExitedException,
                                          ProcessRaisedException, spawn, start_processes)

__all__ = multiprocessing.__all__ + ["ProcessContext", "ProcessException", "ProcessExitedException",
                                     "ProcessRaisedException", "spawn", "start_processes", "get_sharing_strategy",
                                     "set_sharing_strategy", "get_all_sharing_strategies"]


def get_all_sharing_strategies():
    """How CPU tensors can be shared: distml sends the shared-memory file's descriptor."""
    return {"file_descriptor"}


def get_sharing_strategy():
    return "file_descriptor"


def set_sharing_strategy(new_strategy):
    """Only "file_descriptor" exists in distml (PyTorch also has "file_system": named files in /dev/shm)."""
    if new_strategy == "file_system":
        raise NotImplementedError("distml shares tensors by file descriptor only; the 'file_system' strategy "
                                  "is not implemented")
    if new_strategy not in get_all_sharing_strategies():
        raise AssertionError(f"invalid sharing strategy {new_strategy!r}, expected one of "
                             f"{get_all_sharing_strategies()}")


init_reductions()
