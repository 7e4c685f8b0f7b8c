"""Mixed-precision regions (`distml.autocast`) and the one seam through which ops see them.

    with distml.autocast("cpu", dtype=distml.bfloat16):
        out = model(x)                   # linear, conv, matmul run in bfloat16
        loss = F.cross_entropy(out, y)   # losses run in float32
    with distml.autocast("cuda", dtype=distml.float16):
        out = model(x.cuda())            # on CUDA also softmax, layer_norm, sum, exp ... in float32

Each op on one of PyTorch's autocast lists says so beside its definition, once per device type's list,
`@autocast_op(cpu=policy, cuda=policy)`; the two tables are `policy(op, device_type)`. A call is
cast by the table of the device its tensors are on (cuda when any is), if autocast is on there:
"lower" casts its floating tensor arguments to the region's dtype, "float32" casts them to float32,
"promote" casts them to the widest floating dtype among them, "off" leaves them as they are (a
composite of listed ops whose PyTorch twin is one unlisted kernel, such as dot on the CPU), "banned"
raises PyTorch's error (binary_cross_entropy on CUDA). In all of them the op's insides run with
autocast off, as PyTorch's kernels run below autocast. An op with no policy for the device runs in its
inputs' dtypes (the listed ops it calls still cast). float64 tensors, sparse tensors and tensors on
another device type are never cast. The casts are recorded ops, so backward runs in the dtypes
forward used and float32 leaves get float32 gradients.

As distml's grad mode, the state is per process (PyTorch's is per thread).
"""
import functools
import warnings

import numpy as np

from distml import _backend, dtypes
from distml.autograd.grad_mode import _State as _grad_mode
from distml.device import _parse
from distml.ops.convert import cast
from distml.tensor import Tensor

_POLICIES = ("lower", "float32", "promote", "off", "banned")
_CASTABLE = (np.dtype(np.float32), np.dtype(np.float16), dtypes.bfloat16.np)
_LOWER = (dtypes.bfloat16, dtypes.float16)

_enabled = {"cpu": False, "cuda": False}
_dtype = {"cpu": dtypes.bfloat16, "cuda": dtypes.float16}
_cache_enabled = True
_nesting = 0
# (id of a float32 leaf, dtype) -> (leaf, its version, its cast): a region casts each weight once
# (holding the leaf keeps its id from being reused while the entry lives).
_cache = {}
_active = False  # whether declared ops cast now: the one check each makes
_BANNED = {"binary_cross_entropy": (
    "distml.nn.functional.binary_cross_entropy and distml.nn.BCELoss are unsafe to autocast.\nMany models use a "
    "sigmoid layer right before the binary cross entropy layer.\nIn this case, combine the two layers using "
    "distml.nn.functional.binary_cross_entropy_with_logits\nor distml.nn.BCEWithLogitsLoss.  "
    "binary_cross_entropy_with_logits and BCEWithLogits are\nsafe to autocast.")}


def _device_type(device_type):
    kind = _parse(device_type)[0]
    if kind not in _enabled:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
    return kind


def is_autocast_available(device_type):
    """Whether autocast can run on a device type: "cpu" and "cuda" in distml."""
    return _parse(device_type)[0] in _enabled


def is_autocast_enabled(device_type="cuda"):
    """Whether autocast is on for a device type: `distml.is_autocast_enabled("cpu")` (no argument: CUDA's)."""
    return _enabled[_device_type(device_type)]


def set_autocast_enabled(device_type, enabled):
    global _active
    if not isinstance(enabled, bool):
        raise TypeError(f"set_autocast_enabled(): argument 'enabled' (position 2) must be bool, not "
                        f"{type(enabled).__name__}")
    _enabled[_device_type(device_type)] = enabled
    _active = any(_enabled.values())


def get_autocast_dtype(device_type):
    """The dtype a region casts the "lower" ops to: bfloat16 on the CPU, float16 on CUDA unless set."""
    return _dtype[_device_type(device_type)]


def set_autocast_dtype(device_type, dtype):
    if not isinstance(dtype, dtypes.dtype):
        raise TypeError(f"set_autocast_dtype(): argument 'dtype' (position 2) must be distml.dtype, not "
                        f"{type(dtype).__name__}")
    _dtype[_device_type(device_type)] = dtype


def is_autocast_cache_enabled():
    return _cache_enabled


def set_autocast_cache_enabled(enabled):
    global _cache_enabled
    _cache_enabled = bool(enabled)


def clear_autocast_cache():
    _cache.clear()


class autocast:
    """A region (context manager or decorator) in which the declared ops run in mixed precision:
    `with distml.autocast("cpu"):` (bfloat16) or `@distml.autocast("cpu", dtype=distml.float16)`.

    `enabled=False` turns autocast off inside an enclosing region; `cache_enabled` keeps the cast of
    each float32 leaf that requires grad (the weights) for the whole region.
    """

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        self.device = _device_type(device_type)
        self.fast_dtype = get_autocast_dtype(self.device) if dtype is None else dtype
        self._cache_enabled = _cache_enabled if cache_enabled is None else cache_enabled
        if enabled and self.device == "cuda":
            enabled = _cuda_enabled("distml.autocast", "Disabling autocast.")
            if enabled and self.fast_dtype is dtypes.bfloat16 and not _cuda_bf16_supported():
                raise RuntimeError("Current CUDA Device does not support bfloat16. Please switch dtype to float16.")
        elif enabled and self.fast_dtype not in _LOWER:
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                          "CPU Autocast only supports dtypes of distml.bfloat16, distml.float16 currently.",
                          stacklevel=2)
            enabled = False
        self._enabled = enabled
        self._saved = []  # one entry per entered, unexited use (a decorated function may recurse)

    def __enter__(self):
        global _nesting
        self._saved.append((_enabled[self.device], _dtype[self.device], _cache_enabled))
        set_autocast_enabled(self.device, self._enabled)
        set_autocast_dtype(self.device, self.fast_dtype)
        set_autocast_cache_enabled(self._cache_enabled)
        _nesting += 1
        return self

    def __exit__(self, *exc_info):
        global _nesting
        _nesting -= 1
        if _nesting == 0:
            _cache.clear()
        enabled, dtype, cache_enabled = self._saved.pop()
        set_autocast_enabled(self.device, enabled)
        set_autocast_dtype(self.device, dtype)
        set_autocast_cache_enabled(cache_enabled)
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"autocast()(func) requires a callable, but got {type(func).__name__}. Did you mean to "
                            "use autocast as a context manager? For example:\n"
                            "    with distml.autocast(device_type=...):\n"
                            "        output = model(input)")

        @functools.wraps(func)
        def decorate_autocast(*args, **kwargs):
            with self:
                return func(*args, **kwargs)
        return decorate_autocast


def _cuda_enabled(what, disabling="Disabling."):
    """Whether `what` (autocast, a GradScaler) can turn on for CUDA: False, with PyTorch's warning,
    when no CUDA device is usable."""
    if _backend.cuda_device_count() == 0:
        warnings.warn(f"{what} is enabled, but CUDA is not available ({_backend.cuda_unavailable_reason()}). "
                      f"{disabling}", stacklevel=3)
        return False
    return True


def _cuda_bf16_supported():
    from distml import cuda
    return cuda.is_bf16_supported()


def custom_fwd(fwd=None, *, device_type, cast_inputs=None):
    """Decorate a custom Function's forward for autocast: with `cast_inputs` (a dtype), inside an enabled
    region forward gets its floating tensors cast to it and runs with autocast off; without, forward
    runs in the region's state, which `custom_bwd` gives backward too.

        @staticmethod
        @distml.amp.custom_fwd(device_type="cpu", cast_inputs=distml.float32)
        def forward(ctx, x): ...
    """
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        args[0]._dtype = get_autocast_dtype(device_type)
        if cast_inputs is None:
            args[0]._fwd_used_autocast = is_autocast_enabled(device_type)
            return fwd(*args, **kwargs)
        args[0]._fwd_used_autocast = False
        if not is_autocast_enabled(device_type):
            return fwd(*args, **kwargs)
        with autocast(device_type=device_type, enabled=False):
            return fwd(*_cast(args, device_type, cast_inputs), **_cast(kwargs, device_type, cast_inputs))
    return decorate_fwd


def custom_bwd(bwd=None, *, device_type):
    """Decorate a custom Function's backward to run in the autocast state its forward ran in."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        with autocast(device_type=device_type, enabled=args[0]._fwd_used_autocast, dtype=args[0]._dtype):
            return bwd(*args, **kwargs)
    return decorate_bwd


def autocast_op(cpu=None, cuda=None):
    """Declare an op's place in each device type's autocast list, above its definition (below `@register`):

        @register(method=True)
        @autocast_op(cpu="lower", cuda="lower")
        def matmul(a, b): ...

    Outside autocast the op costs one flag check more.
    """
    policies = {"cpu": cpu, "cuda": cuda}
    for given in policies.values():
        if given is not None and given not in _POLICIES:
            raise ValueError(f"autocast policy must be one of {_POLICIES}, got {given!r}")

    def declare(fn):
        @functools.wraps(fn)
        def op(*args, **kwargs):
            if not _active:
                return fn(*args, **kwargs)
            return _autocast_call(policies, fn, args, kwargs)
        op.autocast_policies = policies
        return op
    return declare


def policy(op, device_type):
    """What autocast does to a call of `op` whose tensors are on `device_type`: "lower", "float32",
    "promote", "off", "banned", or None (not on that device type's list):
    `policy(distml.exp, "cuda")` -> "float32", `policy(distml.exp, "cpu")` -> None."""
    return getattr(op, "autocast_policies", {}).get(_device_type(device_type))


def _kind(tensor):
    """The device type a tensor is on, as autocast's tables are keyed."""
    return "cuda" if tensor.is_cuda else "cpu"


def _tensors(value):
    """The tensors in value, through lists, tuples and dicts."""
    if isinstance(value, Tensor):
        yield value
    elif type(value) in (list, tuple):
        for v in value:
            yield from _tensors(v)
    elif type(value) is dict:
        for v in value.values():
            yield from _tensors(v)


def _call_device(values):
    """The device type a call dispatches on: cuda when any tensor argument is there, else cpu (None: no tensor)."""
    kinds = {_kind(t) for t in _tensors(values)}
    return "cuda" if "cuda" in kinds else "cpu" if kinds else None


def _autocast_call(policies, fn, args, kwargs):
    global _active
    device = _call_device((args, kwargs))
    policy = policies[device] if device is not None and _enabled[device] else None
    if policy is None:
        return fn(*args, **kwargs)
    if policy == "banned":
        raise RuntimeError(_BANNED[fn.__name__])
    target = {"lower": _dtype[device], "float32": dtypes.float32, "off": None}.get(policy)
    if policy == "promote":
        target = _widest((args, kwargs), device)
    if target is not None:
        args = _cast(args, device, target, cache=policy == "lower")
        kwargs = _cast(kwargs, device, target, cache=policy == "lower")
    _active = False
    try:
        return fn(*args, **kwargs)
    finally:
        _active = True


def _widest(values, device):
    """The dtype "promote" casts to, as PyTorch's prioritize picks it: float32 when a floating tensor on
    `device` is float32, else the region's dtype (a tensor of the other lower dtype is an error)."""
    widest = _dtype[device]
    for t in _tensors(values):
        if t.is_sparse or _kind(t) != device or t.array.dtype not in _CASTABLE:
            continue
        found = t.array.dtype
        if widest is dtypes.float32 or found == np.float32:
            widest = dtypes.float32
        elif found != widest.np:
            raise RuntimeError("Unexpected floating ScalarType in at::autocast::prioritize")
    return widest


def _cast(value, device, dtype, cache=False):
    """value with each floating tensor on `device` (any device: None; float64 and sparse ones
    excepted) as `dtype`, through lists, tuples and dicts; `cache`: reuse the region's cast of a
    float32 leaf."""
    if isinstance(value, Tensor):
        if value.is_sparse or (device is not None and _kind(value) != device):
            return value
        if value.array.dtype in _CASTABLE and value.array.dtype != dtype.np:
            return _cached_cast(value, dtype) if cache else cast(value, dtype)
        return value
    if type(value) in (list, tuple):
        return type(value)(_cast(v, device, dtype, cache) for v in value)
    if type(value) is dict:
        return {k: _cast(v, device, dtype, cache) for k, v in value.items()}
    return value


def _cached_cast(t, dtype):
    """PyTorch's weight cache: a float32 leaf that requires grad is cast once per region while grad
    mode is on (recast after an in-place change or a backward through the old cast)."""
    if not (_cache_enabled and _grad_mode.enabled and t.requires_grad and t.grad_fn is None and t._base is None
            and t.array.dtype == np.float32):
        return cast(t, dtype)
    key = (id(t), dtype.name)
    entry = _cache.get(key)
    if entry is None or entry[1] != t._version[0] or entry[2].grad_fn is None or entry[2].grad_fn.freed:
        entry = _cache[key] = (t, t._version[0], cast(t, dtype))
    return entry[2]


def float32_kernel(fn):
    """Declare an op whose kernels (the _C im2col and pooling loops) have no bfloat16 / float16 loop:
    when its floating tensor arguments all have one such dtype, it computes in float32 and rounds its
    floating outputs back to that dtype, as PyTorch's CPU kernels do inside.

        @float32_kernel
        def conv2d(input, weight, bias=None, ...): ...
    """
    @functools.wraps(fn)
    def op(*args, **kwargs):
        low = _one_lower_dtype((*args, *kwargs.values()))
        if low is None:
            return fn(*args, **kwargs)
        return _round(fn(*_cast(args, None, dtypes.float32), **_cast(kwargs, None, dtypes.float32)), low)
    return op


def _one_lower_dtype(values):
    """bfloat16 or float16 when every floating tensor among values has that dtype, else None."""
    found = {v.array.dtype for v in values if isinstance(v, Tensor) and dtypes.is_float(v.array.dtype)}
    if len(found) == 1 and found <= {dtypes.bfloat16.np, dtypes.float16.np}:
        return dtypes.from_numpy(found.pop())
    return None


def _round(value, dtype):
    if isinstance(value, Tensor):
        return cast(value, dtype) if value.array.dtype == np.float32 else value
    return tuple(_round(v, dtype) for v in value)
