"""`nn.DataParallel`: single-process replication over the GPUs, as torch's. Without a usable CUDA
device it calls the module itself, as PyTorch's does on a CPU-only machine (device_ids == []);
state_dict keys carry the `module.` prefix either way.

    model = nn.DataParallel(model)   # common in public programs; for several processes use
                                     # DistributedDataParallel
"""
from distml import cuda
from distml.nn.module import Module


class DataParallel(Module):
    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.dim = dim
        if not cuda.is_available():
            self.device_ids, self.output_device = [], None
            return
        raise NotImplementedError("nn.DataParallel over CUDA devices is not implemented in distml: use "
                                  "DistributedDataParallel with one process per GPU (distmlrun)")

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)
