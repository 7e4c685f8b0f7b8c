"""`distml.cuda.amp`: PyTorch's mixed-precision helpers, in the form they take without CUDA.

PyTorch disables both (with a warning) when CUDA is not available, and programs build them with
`enabled=use_amp`; distml does the same (autocast is distml.autocast with device_type "cuda"). Mixed
precision on a CUDA device is not implemented yet.

    scaler = distml.cuda.amp.GradScaler(enabled=False)
    scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()
"""
import warnings

from distml import _backend
from distml.amp import autocast_mode
from distml.dtypes import float16


def _enabled(enabled, name, disabling):
    """enabled, turned off with PyTorch's warning when no CUDA device is usable."""
    if enabled and _backend.cuda_device_count() == 0:
        warnings.warn(f"{name} is enabled, but CUDA is not available ({_backend.cuda_unavailable_reason()}). "
                      f"{disabling}", stacklevel=3)
        return False
    if enabled:
        raise NotImplementedError(f"{name} with a CUDA device is not implemented yet: pass enabled=False")
    return False


class GradScaler:
    """Loss scaling for float16 training; disabled, every method passes through (PyTorch's
    behaviour with enabled=False or without CUDA)."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        # The scale settings only take effect when enabled, as in PyTorch.
        self._enabled = _enabled(enabled, "distml.cuda.amp.GradScaler", "Disabling.")

    def scale(self, outputs):
        return outputs

    def unscale_(self, optimizer):
        return None

    def step(self, optimizer, *args, **kwargs):
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        return None

    def get_scale(self):
        return 1.0

    def is_enabled(self):
        return self._enabled

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict):
        return None


class autocast(autocast_mode.autocast):
    """`distml.autocast("cuda", ...)` under PyTorch's older name: `with distml.cuda.amp.autocast(enabled=use_amp):`
    (disabled with a warning while no CUDA device is usable)."""

    def __init__(self, enabled=True, dtype=float16, cache_enabled=True):
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)
