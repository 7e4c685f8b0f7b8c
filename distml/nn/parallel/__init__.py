"""`distml.nn.parallel.DistributedDataParallel`, PyTorch's name for distml.distributed.ddp's class.

Imported on first use, so that `distml.nn` itself never imports `distml.distributed`.
"""


def __getattr__(name):
    if name == "DistributedDataParallel":
        from distml.distributed.ddp import DistributedDataParallel
        return DistributedDataParallel
    raise AttributeError(f"module 'distml.nn.parallel' has no attribute '{name}'")
