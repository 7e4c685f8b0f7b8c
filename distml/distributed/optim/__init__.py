"""Distributed optimizers, with torch.distributed.optim's names.

    from distml.distributed.optim import ZeroRedundancyOptimizer
    zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=distml.optim.Adam, lr=1e-3)
"""
from distml.distributed.optim.zero_redundancy_optimizer import ZeroRedundancyOptimizer

__all__ = ["ZeroRedundancyOptimizer"]
