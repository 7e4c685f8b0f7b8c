"""Loss scaling for reduced-precision training, as PyTorch's torch.amp.GradScaler:

    scaler = distml.amp.GradScaler("cpu")
    with distml.autocast("cpu", dtype=distml.float16):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()   # gradients of loss * scale: small float16 ones do not flush to zero
    scaler.step(optimizer)          # unscales them; skips optimizer.step() when one holds an inf or nan
    scaler.update()                 # the scale * backoff_factor after a skipped step, * growth_factor
                                    # after growth_interval steps in a row that were not

The arithmetic is two pure functions on arrays, `non_finite_check_and_unscale_` and `update_scale_`
(PyTorch's _amp_foreach_non_finite_check_and_unscale_ and _amp_update_scale_).
"""
import enum
from collections import abc, defaultdict

import numpy as np

from distml._backend import get_array_module, no_tensors_on
from distml.amp.autocast_mode import _cuda_enabled
from distml.autograd.grad_mode import no_grad
from distml.device import _parse
from distml.tensor import Tensor


class OptState(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state():
    return {"stage": OptState.READY, "found_inf_per_device": {}}


def non_finite_check_and_unscale_(grads, found_inf, inv_scale):
    """Multiply each gradient array by inv_scale (a 0-d float32 array on their device) in place, and set
    found_inf (a 0-d float32 array there) to 1 when one held an inf or a nan before: PyTorch's
    _amp_foreach_non_finite_check_and_unscale_. Device arrays stay on the device (no host sync)."""
    for grad in grads:
        xp = get_array_module(grad)
        xp.maximum(found_inf, xp.logical_not(xp.isfinite(grad).all()).astype(found_inf.dtype), out=found_inf)
        grad *= inv_scale


def update_scale_(scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval):
    """Update the 0-d arrays scale (float32) and growth_tracker (int32) in place, on their device: back off
    and reset the tracker after an inf (found_inf nonzero); else count the step, and grow the scale (when
    the result is finite) after growth_interval of them. PyTorch's _amp_update_scale_."""
    xp = get_array_module(scale)
    found = found_inf.reshape(()) != 0
    successful = xp.where(found, 0, growth_tracker + 1).astype(np.int32)
    grow = successful == growth_interval
    wide = scale.astype(np.float64)
    with np.errstate(over="ignore"):
        grown = (wide * growth_factor).astype(np.float32)
    backed_off = (wide * backoff_factor).astype(np.float32)
    scale[...] = xp.where(found, backed_off, xp.where(grow & xp.isfinite(grown), grown, scale))
    growth_tracker[...] = xp.where(grow, 0, successful)


class GradScaler:
    """Scales losses so that reduced-precision gradients keep their small values, then unscales the
    gradients before the step: `scaler = distml.amp.GradScaler("cpu")` (PyTorch's default device is
    "cuda", disabled with a warning where CUDA is not usable). `enabled=False` makes every method a
    pass-through.
    """

    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self._device = device
        self._enabled = enabled
        kind = _parse(device)[0]
        if enabled and kind == "cuda":
            self._enabled = _cuda_enabled("distml.amp.GradScaler")
        elif enabled and kind != "cpu":
            raise no_tensors_on(kind, creating=True)
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
            self._init_scale = init_scale
            self._scale = None  # made on the device of the first scaled output
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            self._growth_tracker = None
            self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def _check_scale_growth_tracker(self, funcname):
        fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  " + fix)
        if self._growth_tracker is None:
            raise AssertionError(f"Attempted {funcname} but _growth_tracker is None.  " + fix)
        return self._scale, self._growth_tracker

    def _lazy_init_scale_growth_tracker(self, like):
        xp = get_array_module(like.array)
        self._scale = Tensor(xp.full((), self._init_scale, dtype=np.float32))
        self._growth_tracker = Tensor(xp.full((), self._init_growth_tracker, dtype=np.int32))

    def scale(self, outputs):
        """outputs (a Tensor, or nested lists / tuples / iterables of them) times the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init_scale_growth_tracker(outputs)
            return outputs * self._scale
        if isinstance(outputs, abc.Iterable):
            scaled = map(self.scale, outputs)
            return type(outputs)(scaled) if isinstance(outputs, (list, tuple)) else scaled
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def _unscale_grads_(self, optimizer, inv_scale, found_inf, allow_fp16):
        """Unscale the optimizer's gradients in place, grouped by device; {device: 0-d float32 tensor there,
        1 when one of its gradients held an inf or nan} ({}: no gradients)."""
        per_device = defaultdict(list)
        for group in optimizer.param_groups:
            for param in group["params"]:
                if not isinstance(param, Tensor):
                    raise AssertionError(f"expected param to be distml.Tensor, got {type(param).__name__}")
                if param.grad is None:
                    continue
                if not allow_fp16 and param.grad.array.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                per_device[param.grad.device].append(param.grad)
        found_inf_per_device = {}
        for device, grads in per_device.items():
            found = found_inf_per_device[device] = found_inf.to(device, copy=True)
            non_finite_check_and_unscale_([g.array for g in grads], found.array, inv_scale.to(device).array)
            for grad in grads:
                grad._version[0] += 1
        return found_inf_per_device

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by the scale (once per step), e.g. before clipping them:

            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            distml.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
        """
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        scale = self._scale.array  # the reciprocal in float64, as PyTorch, on the scale's device
        inv_scale = Tensor((1.0 / scale.astype(np.float64)).astype(np.float32))
        found_inf = Tensor(get_array_module(scale).zeros((), dtype=np.float32))
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, found_inf, allow_fp16=False)
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """Unscale the gradients (unless unscale_ did), then `optimizer.step(*args, **kwargs)` unless one
        of them holds an inf or a nan; returns what optimizer.step returned (None when skipped). The one
        host synchronisation of the step is here: reading each device's flag."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if len(state["found_inf_per_device"]) == 0:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        skip = sum(v.item() for v in state["found_inf_per_device"].values())
        retval = None if skip else optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None):
        """Back off or grow the scale from this iteration's steps, or set it: `scaler.update(1024.0)`."""
        if not self._enabled:
            return
        scale, growth_tracker = self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if isinstance(new_scale, float):
                scale.array[...] = new_scale
            else:
                reason = ("new_scale should be a float or a 1-element distml.cuda.FloatTensor or "
                          "distml.FloatTensor with requires_grad=False.")
                if new_scale.device.type != _parse(self._device)[0] or new_scale.numel() != 1:
                    raise AssertionError(reason)
                if new_scale.requires_grad:
                    raise AssertionError(reason)
                with no_grad():
                    scale.copy_(new_scale)
        else:
            found_infs = [found.to(scale.device).array for state in self._per_optimizer_states.values()
                          for found in state["found_inf_per_device"].values()]
            if not found_infs:
                raise AssertionError("No inf checks were recorded prior to update.")
            update_scale_(scale.array, growth_tracker.array, sum(found_infs), self._growth_factor,
                          self._backoff_factor, self._growth_interval)
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def get_scale(self):
        """The current scale as a float (1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.array)

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = new_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = new_factor

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = new_interval

    def _get_growth_tracker(self):
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.array)

    def is_enabled(self):
        return self._enabled

    def state_dict(self):
        """scale, growth_factor, backoff_factor, growth_interval and _growth_tracker ({} when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale.array[...] = state_dict["scale"]
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker.array[...] = state_dict["_growth_tracker"]

    def __getstate__(self):
        state = self.__dict__.copy()
        if self._enabled:
            if len(self._per_optimizer_states) != 0:
                raise AssertionError("A GradScaler instance may only be pickled at the beginning of an iteration, "
                                     "or at the end after scaler.update().")
            state["_init_scale"] = self.get_scale()
            state["_init_growth_tracker"] = self._get_growth_tracker()
            state["_scale"] = None
            state["_growth_tracker"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
