"""Built-in DDP communication hooks (PyTorch's torch.distributed.algorithms.ddp_comm_hooks).

    from distml.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook
    model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    state = powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank=2)
    model.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
"""
from distml.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook  # noqa: F401
