"""`distml.nn.parallel`: DataParallel, and DistributedDataParallel (PyTorch's name for
distml.distributed.ddp's class), the latter imported on first use so that `distml.nn` itself never
imports `distml.distributed`.
"""
from distml.nn.parallel.data_parallel import DataParallel  # noqa: F401


def __getattr__(name):
    if name == "DistributedDataParallel":
        from distml.distributed.ddp import DistributedDataParallel
        return DistributedDataParallel
    raise AttributeError(f"module 'distml.nn.parallel' has no attribute '{name}'")
