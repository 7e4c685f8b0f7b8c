"""`distml.cpu.amp`: PyTorch's deprecated spellings of `distml.amp.autocast("cpu", ...)` and
`distml.amp.GradScaler("cpu", ...)`; each warns (FutureWarning) when made, as PyTorch's do.

    with distml.cpu.amp.autocast():   # bfloat16
        out = model(x)
"""
import warnings

from distml import dtypes
from distml.amp import autocast_mode, grad_scaler


class autocast(autocast_mode.autocast):
    """`distml.amp.autocast("cpu", ...)` under its old name."""

    def __init__(self, enabled=True, dtype=dtypes.bfloat16, cache_enabled=True):
        warnings.warn("`distml.cpu.amp.autocast(args...)` is deprecated. Please use "
                      "`distml.amp.autocast('cpu', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cpu", enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)


class GradScaler(grad_scaler.GradScaler):
    """`distml.amp.GradScaler("cpu", ...)` under its old name."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        warnings.warn("`distml.cpu.amp.GradScaler(args...)` is deprecated. Please use "
                      "`distml.amp.GradScaler('cpu', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cpu", init_scale=init_scale, growth_factor=growth_factor,
                         backoff_factor=backoff_factor, growth_interval=growth_interval, enabled=enabled)
