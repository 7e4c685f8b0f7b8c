"""Optimizer: parameter groups, per-parameter state, state_dict in PyTorch's format.

Subclasses keep their state in `self.state[param]` and run the arithmetic of one step
as one fused `_C` call per group (CPU) or a pure array function (cupy).
"""
import copy
import warnings
from collections import defaultdict

import numpy as np

from distml import dtypes, kernels
from distml._backend import get_array_module
from distml.autograd.grad_mode import enable_grad
from distml.profiler import _recorder
from distml.tensor import Tensor


class Optimizer:
    """Base class: `Optimizer(params, defaults)`; `params` is an iterable of Tensors, of (name, Tensor)
    pairs (`model.named_parameters()`: the names are kept in the group's "param_names") or of dicts
    (parameter groups with their own options), e.g. `[{"params": w}, {"params": b, "lr": 0.1}]`.

    Options that choose an implementation, as torch's: where an optimizer has a fused `_C` kernel,
    `foreach=False` runs the per-tensor array loop instead (torch's for-loop implementation) and
    `foreach=True`, `fused=True` or neither run the kernel; the results agree to rounding.
    """

    # torch's error for capturable=True on a CPU parameter.
    _capturable_error = ("If capturable=True, params and state_steps must be on supported devices: "
                         "['cuda', 'xpu', 'hpu', 'privateuseone', 'xla'].")
    _sparse_grad_error = None
    # Whether "step" is a tensor in the state (a number in a loaded state dict is converted).
    _tensor_step = True

    def __init_subclass__(cls, **kwargs):
        # Each optimizer's step is one profiler range named as torch names it: "Optimizer.step#SGD.step".
        super().__init_subclass__(**kwargs)
        step = getattr(cls.step, "unprofiled", cls.step)
        cls.step = _recorder.ranged(f"Optimizer.step#{cls.__name__}.step")(step)

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {type(params).__module__}.{type(params).__name__}")
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __repr__(self):
        text = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"

    def add_param_group(self, param_group):
        """Add a group of parameters with its own options (the defaults fill the rest)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        params = list(params)
        if any(isinstance(p, tuple) for p in params):
            if not all(isinstance(p, tuple) for p in params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = [name for name, _ in params]
            params = [p for _, p in params]
        param_group["params"] = params
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{type(param).__module__}.{type(param).__name__}")
            if not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        if len(params) != len({id(p) for p in params}):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error", stacklevel=3)
        for group in self.param_groups:
            if ("param_names" in param_group) != ("param_names" in group):
                named = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {named} to the optimizer")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's gradient: set it to None (default) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.grad_fn, p.grad.requires_grad = None, False
                    p.grad.array[...] = 0

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns `closure()` (re-evaluated loss) if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._check_group(group, params)
                self._update_group(group, params)
        return loss

    def _check_group(self, group, params):
        """Refuse what this step cannot do: sparse gradients, differentiable and capturable steps."""
        name = type(self).__name__
        if any(p.grad.is_sparse for p in params):
            raise RuntimeError(self._sparse_grad_error or f"{name} does not support sparse gradients")
        if group.get("differentiable"):
            raise NotImplementedError(f"{name}: differentiable=True (autograd through the optimizer step) is not "
                                      "supported by distml")
        if group.get("capturable"):
            if all(p.is_cuda for p in params):
                raise NotImplementedError(f"{name}: capturable=True (CUDA graph capture) is not supported by distml")
            raise AssertionError(self._capturable_error)

    def _update_group(self, group, params):
        """Update `params` (those of `group` with a gradient) in place; subclasses implement it."""
        raise NotImplementedError

    def _fused(self, kernel, xp_update, params, tensor_lists, per_param, options):
        """Run one group's step: `kernel` (a `_C` function) where `distml.kernels.choose` says it serves
        the arrays (numpy; cupy when `_C` has its CUDA twin), `xp_update` otherwise.

        Both take `(params, grads, *tensor_lists, *per_param, *options)` as lists of arrays / values.
        Parameters are split by dtype and device (one call each); a non-contiguous parameter is
        updated through a contiguous copy, as the kernels need flat memory.
        """
        batches = defaultdict(list)
        for i, p in enumerate(params):
            if p.grad.array.shape != p.array.shape:
                raise RuntimeError(f"gradient has shape {list(p.grad.array.shape)} but the parameter has shape "
                                   f"{list(p.array.shape)}")
            batches[(p.array.dtype, get_array_module(p.array))].append(i)
        for (_, xp), index in batches.items():
            arrays = [xp.ascontiguousarray(params[i].array) for i in index]
            grads = [xp.ascontiguousarray(params[i].grad.array) for i in index]
            lists = [[lst[i] for i in index] if lst else [] for lst in tensor_lists]
            values = [[lst[i] for i in index] if lst else [] for lst in per_param]
            update = kernels.choose(kernel, xp_update, arrays[0])
            update(arrays, grads, *lists, *values, *options)
            for i, array in zip(index, arrays):
                if array is not params[i].array:
                    params[i].array[...] = array
                params[i]._version[0] += 1

    @staticmethod
    def _kernel(group, kernel, xp_update):
        """The implementation `group`'s foreach / fused options choose: `kernel` unless foreach=False."""
        return xp_update if group.get("foreach") is False and not group.get("fused") else kernel

    # ---- state ----
    def state_dict(self):
        """`{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}`, PyTorch's layout.

        The state tensors are the optimizer's own (not copies), as in PyTorch.
        """
        index_of = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {(index_of[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a `state_dict()` (ours or one in PyTorch's layout with distml tensors).

        State tensors are copied and cast to their parameter's dtype and device ("step" keeps its dtype;
        a number becomes a tensor); options the saved groups lack take this optimizer's defaults.
        """
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(self.param_groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        param_of = {i: p for g, s in zip(self.param_groups, saved_groups) for i, p in zip(s["params"], g["params"])}
        state = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key in param_of:
                param = param_of[key]
                state[param] = {name: _cast_state(param, name, v, self._tensor_step) for name, v in value.items()}
            else:
                state[key] = value
        for group, saved in zip(self.param_groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group:
                saved.setdefault("param_names", group["param_names"])
            for name, default in self.defaults.items():
                saved.setdefault(name, default)
        self.state = state
        self.param_groups = saved_groups


_VALUE_NAMES = {"lr": "learning rate", "eps": "epsilon value"}


def check_hyperparameters(betas=None, **values):
    """PyTorch's ValueErrors for negative hyperparameters, checked in the order given, and for betas
    outside [0, 1): `check_hyperparameters(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)`."""
    for name, value in values.items():
        if not 0.0 <= value:
            raise ValueError(f"Invalid {_VALUE_NAMES.get(name, name + ' value')}: {value}")
        if name == "eps" and betas is not None:
            for index, beta in enumerate(betas):
                if not 0.0 <= beta < 1.0:
                    raise ValueError(f"Invalid beta parameter at index {index}: {beta}")


def _check_fused(defaults):
    """torch's errors for fused=True with options it cannot combine with."""
    if defaults["fused"]:
        if defaults["differentiable"]:
            raise RuntimeError("`fused` does not support `differentiable`")
        if defaults["foreach"]:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def _cast_state(param, name, value, tensor_step):
    if name == "step" and tensor_step and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _step_tensor(value)
    if not isinstance(value, Tensor):
        return copy.deepcopy(value)
    out = value.detach().to(device=param.device)
    if name != "step" and param.is_floating_point():
        out = out.to(param.dtype)
    return Tensor(out.array.copy())


def _step_tensor(value=0.0):
    """A fresh step counter (or other scalar state), a 0-d float tensor on the CPU as in PyTorch."""
    dtype = dtypes.float64 if dtypes.get_default_dtype() is dtypes.float64 else dtypes.float32
    return Tensor(np.full((), value, dtype=dtype.np))


def _zeros_like(param, fill=0):
    xp = get_array_module(param.array)
    return Tensor(xp.full(param.array.shape, fill, dtype=param.array.dtype))


def _next_steps(states):
    """Advance every state's "step" counter by one and return the new counts as floats."""
    steps = []
    for state in states:
        state["step"].array += 1
        steps.append(float(state["step"].array))
    return steps


def _lerp_(start, end, weight):
    """`start.lerp_(end, weight)` in place, torch's two-sided form (exact at both ends)."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)
