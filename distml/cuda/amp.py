"""`distml.cuda.amp`: PyTorch's older names for mixed precision on CUDA, distml.amp's classes with
device "cuda":

    scaler = distml.cuda.amp.GradScaler(enabled=use_amp)
    with distml.cuda.amp.autocast(enabled=use_amp):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()

Without a usable CUDA device both turn themselves off with PyTorch's warning.
"""
from distml.amp import autocast_mode, grad_scaler
from distml.dtypes import float16


class GradScaler(grad_scaler.GradScaler):
    """`distml.amp.GradScaler("cuda", ...)` under PyTorch's older name."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        super().__init__("cuda", init_scale=init_scale, growth_factor=growth_factor, backoff_factor=backoff_factor,
                         growth_interval=growth_interval, enabled=enabled)


class autocast(autocast_mode.autocast):
    """`distml.autocast("cuda", ...)` under PyTorch's older name: `with distml.cuda.amp.autocast(enabled=use_amp):`."""

    def __init__(self, enabled=True, dtype=float16, cache_enabled=True):
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)
