"""Tensor factories: tensor, zeros, ones, arange, linspace, eye, ... with PyTorch's overloads and defaults.

Every factory takes PyTorch's keywords dtype=, device=, requires_grad=, layout= (distml.strided, the
one layout) and pin_memory= (False: pinned memory needs a GPU). Those PyTorch gives `out=` write into
that tensor (its dtype unless dtype= agrees): `distml.zeros(2, 3, out=t)`.
"""
import contextlib
import numbers
import warnings

import numpy as np

from distml import dtypes
from distml._backend import cuda_unavailable_reason, device_array_module
from distml.device import device as Device
from distml.tensor import (Tensor, _as_dtype, _check_memory_format, _dim_order, _format_order, _is_int,
                           _is_int_tensor, _is_sequence, _label, _require_tensor, contiguous_format,
                           layout as Layout, preserve_format, strided, write_out)


def _array_module(device):
    """numpy for the CPU (device None or "cpu"), cupy for CUDA; PyTorch's errors for other devices."""
    return np if device is None else device_array_module(Device(device).type)


def _build(device, make):
    """make(xp) for the device: numpy arrays on the CPU, cupy arrays made on the CUDA device named."""
    xp = _array_module(device)
    if xp is np:
        return make(np)
    index = Device(device).index
    with contextlib.nullcontext() if index is None else xp.cuda.Device(index):
        return make(xp)


def _finish(array, requires_grad):
    t = Tensor(array)
    if requires_grad:
        if not (dtypes.is_float(array.dtype) or array.dtype.kind == "c"):
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        t.requires_grad = True
    return t


def _factory_options(function, out, dtype, layout, device, pin_memory, default=None):
    """(dtype, device) of a factory call: dtype= or out's (or `default`, else the default float dtype), and
    device= or out's; PyTorch's errors for out= of another dtype, other layouts and pinned memory."""
    if layout is not strided:
        if isinstance(layout, Layout):
            raise NotImplementedError(f"{function}() makes {strided} tensors only, not {layout}")
        raise TypeError(f"{function}(): argument 'layout' must be distml.layout, not {_label(layout)}")
    if pin_memory and cuda_unavailable_reason() is None:
        raise NotImplementedError(f"{function}(pin_memory=True) is not supported: make the tensor, then call "
                                  ".pin_memory() on it")
    if pin_memory:
        raise RuntimeError("Cannot access accelerator device when none is available.")
    dtype = _as_dtype(dtype, function)
    if out is None:
        return dtype or default or dtypes.get_default_dtype(), device
    if not isinstance(out, Tensor):
        raise TypeError(f"{function}(): argument 'out' must be Tensor, not {_label(out)}")
    if dtype is not None and dtype is not out.dtype:
        raise RuntimeError(f"dtype {dtype.legacy_name} does not match dtype of out parameter ({out.dtype.legacy_name})")
    return out.dtype, device or out.device


def _result(array, requires_grad, out, function):
    """The new tensor, or out with its values (PyTorch's out=)."""
    if out is None:
        return _finish(array, requires_grad)
    write_out(_finish(array, False), out, function, warn_resize=False)
    return out.requires_grad_() if requires_grad else out


_NEGATIVE_SIZE = {"zeros": "zeros: Dimension size must be non-negative."}


def _size(args, size=None, function="empty"):
    """The shape a factory's size arguments give: ints (`zeros(2, 3)`), one tuple, list or Size
    (`zeros((2, 3))`), or `size=`; PyTorch's errors for anything else."""
    if size is not None:
        if args:
            raise TypeError(f"{function}() got multiple values for argument 'size'")
        args = (size,)
    if not args:
        raise TypeError(f'{function}() missing 1 required positional arguments: "size"')
    dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    if dims is args and any(isinstance(a, (tuple, list)) for a in args):
        raise TypeError(f"{function}() takes 1 positional argument but {len(args)} were given")
    for d in dims:
        if not (_is_int(d) or _is_int_tensor(d)):
            raise TypeError(f"{function}(): argument 'size' (position 1) must be tuple of ints, not {_label(d)}")
    shape = tuple(int(d) for d in dims)
    if any(s < 0 for s in shape):
        raise RuntimeError(_NEGATIVE_SIZE.get(function) or
                           f"Trying to create tensor with negative dimension {min(shape)}: {list(shape)}")
    return shape


def _empty(xp, shape, np_dtype, order):
    """An uninitialised array whose memory holds the dims in `order` (outermost first; None: row-major)."""
    if order is None:
        return xp.empty(shape, dtype=np_dtype)
    return xp.empty(tuple(shape[d] for d in order), dtype=np_dtype).transpose(tuple(int(d) for d in np.argsort(order)))


def _fill(array, value):
    """array[...] = value, with PyTorch's error for a value the dtype cannot hold."""
    with np.errstate(invalid="raise", over="ignore"):
        try:
            array[...] = value
        except (OverflowError, FloatingPointError, ValueError):
            raise RuntimeError(f"value cannot be converted to type {array.dtype.name}_t without overflow") from None
    return array


# ---- from data ----

def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """A new tensor that copies data (nested lists of numbers, arrays, tensors): `distml.tensor([[1., 2.]])`.
    The dtype is PyTorch's inference unless given: Python floats -> the default dtype, ints -> int64,
    bools -> bool; numpy arrays, numpy scalars and tensors keep theirs; lists promote over their elements."""
    _factory_options("tensor", None, None, strided, device, pin_memory)
    if isinstance(data, Tensor):
        warnings.warn("To copy construct from a tensor, it is recommended to use sourceTensor.detach().clone() or "
                      "sourceTensor.detach().clone().requires_grad_(True), rather than torch.tensor(sourceTensor).",
                      UserWarning, stacklevel=2)
    return _copy_data(data, _as_dtype(dtype, "tensor"), device, requires_grad)


def _copy_data(data, dtype, device, requires_grad):
    """tensor()'s work (also new_tensor's and Tensor(list)'s): data copied into a new array of dtype
    (inferred when None) on device (data's own device when None and data is a tensor)."""
    dtype = dtype or _inferred_dtype(data)
    if isinstance(data, Tensor) and device is None:
        device = data.device
    with np.errstate(invalid="raise", over="ignore"):
        try:
            array = np.array(_host_arrays(data), dtype=dtype.np)
        except (OverflowError, FloatingPointError, ValueError) as error:
            if isinstance(error, ValueError) and "cannot convert float" not in str(error):  # NaN or inf to an integer
                raise
            raise RuntimeError(f"value cannot be converted to type {dtype.name} without overflow") from None
    if device is not None and Device(device).type != "cpu":
        from distml.ops.convert import _move
        array = _move(array, Device(device))
    return _finish(array, requires_grad)


def _host_arrays(data):
    """data with every tensor in it replaced by its values as a host array."""
    if isinstance(data, Tensor):
        return data.detach().cpu().array
    if isinstance(data, (list, tuple)):
        return [_host_arrays(d) for d in data]
    return data


def _inferred_dtype(data):
    """PyTorch's dtype for tensor(data): see `tensor`. Sequences promote over their elements
    (`[1, 2.5]` -> float32, `[True, 2]` -> int64, `[]` -> the default float dtype)."""
    kind = type(data)
    if kind is float:
        return dtypes.get_default_dtype()
    if kind is int:
        return dtypes.int64
    if kind is bool:
        return dtypes.bool
    if isinstance(data, Tensor):
        return data.dtype
    if isinstance(data, (np.ndarray, np.generic)):
        return dtypes.from_numpy(data.dtype)
    if isinstance(data, numbers.Number):
        return dtypes.from_numpy(dtypes.result_type(data))
    if isinstance(data, str):
        raise TypeError("new(): invalid data type 'str'")
    if not _is_sequence(data):
        raise RuntimeError(f"Could not infer dtype of {kind.__name__}")
    result, seen = None, set()
    for x in data:
        kind = type(x)
        if kind in seen:
            continue
        if kind in (float, int, bool) or issubclass(kind, np.generic):  # every element of this type agrees
            seen.add(kind)
        found = _inferred_dtype(x)
        result = found if result is None else dtypes.promote_types(result, found)
    return result or dtypes.get_default_dtype()


def as_tensor(data, dtype=None, device=None):
    """data as a tensor, sharing memory when it already is one (a Tensor, or a numpy array on the CPU) of
    the dtype asked: `distml.as_tensor(array)`; otherwise a copy as `tensor` makes."""
    dtype = _as_dtype(dtype, "as_tensor")
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    if isinstance(data, np.ndarray) and (device is None or Device(device).type == "cpu"):
        dtypes.from_numpy(data.dtype)
        return Tensor(data if dtype is None or dtype.np == data.dtype else data.astype(dtype.np))
    return _copy_data(data, dtype, device, False)


def from_numpy(array):
    """A tensor sharing memory with a numpy array: `distml.from_numpy(np.zeros(3))`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {_label(array)})")
    if any(s < 0 for s in array.strides):
        raise ValueError("At least one stride in the given numpy array is negative, and tensors with negative "
                         "strides are not currently supported. (You can probably work around this by making a "
                         "copy of your array  with array.copy().) ")
    if not array.dtype.isnative:
        raise ValueError("given numpy array has byte order different from the native byte order. Conversion "
                         "between byte orders is currently not supported.")
    dtypes.from_numpy(array.dtype)
    return Tensor(array)


def scalar_tensor(s, *, dtype=None, layout=strided, device=None, pin_memory=False, requires_grad=False):
    """A 0-d tensor holding the number s, in the default float dtype unless given: `scalar_tensor(3)`."""
    if isinstance(s, Tensor):
        s = s.item()
    if not isinstance(s, numbers.Number):
        raise TypeError(f"scalar_tensor(): argument 's' (position 1) must be Number, not {_label(s)}")
    dtype, device = _factory_options("scalar_tensor", None, dtype, layout, device, pin_memory)
    return _finish(_build(device, lambda xp: _fill(xp.empty((), dtype=dtype.np), s)), requires_grad)


# ---- filled ----

def zeros(*args, size=None, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
          requires_grad=False):
    """Zeros: `distml.zeros(2, 3)`, `zeros((2, 3))`, `zeros(size=(2, 3))`, `zeros(2, 3, out=t)`."""
    shape = _size(args, size, "zeros")
    dtype, device = _factory_options("zeros", out, dtype, layout, device, pin_memory)
    return _result(_build(device, lambda xp: xp.zeros(shape, dtype=dtype.np)), requires_grad, out, "zeros")


def ones(*args, size=None, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
         requires_grad=False):
    """Ones: `distml.ones(2, 3)`, with zeros' forms."""
    shape = _size(args, size, "ones")
    dtype, device = _factory_options("ones", out, dtype, layout, device, pin_memory)
    return _result(_build(device, lambda xp: xp.ones(shape, dtype=dtype.np)), requires_grad, out, "ones")


def empty(*args, size=None, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
          requires_grad=False, memory_format=contiguous_format):
    """Uninitialised memory: `distml.empty(2, 3)`; `memory_format=distml.channels_last` lays a 4-D
    tensor out as NHWC."""
    shape = _size(args, size, "empty")
    dtype, device = _factory_options("empty", out, dtype, layout, device, pin_memory)
    _check_memory_format(memory_format, "empty")
    if memory_format is preserve_format:
        raise RuntimeError("preserve memory format is unsupported by the empty operator")
    order = _format_order(memory_format, len(shape))
    return _result(_build(device, lambda xp: _empty(xp, shape, dtype.np, order)), requires_grad, out, "empty")


def full(size, fill_value, *, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
         requires_grad=False):
    """size filled with fill_value, whose type gives the dtype unless given: `full((2, 3), 7.)` is float32,
    `full((2, 3), 7)` int64, `full((2,), True)` bool."""
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"full(): argument 'size' (position 1) must be tuple of ints, not {_label(size)}")
    if isinstance(fill_value, Tensor) and fill_value.array.ndim == 0:
        fill_value = fill_value.item()
    if not isinstance(fill_value, numbers.Number):
        raise TypeError(f"full(): argument 'fill_value' (position 2) must be Number, not {_label(fill_value)}")
    shape = _size((size,), None, "full")
    inferred = dtypes.from_numpy(dtypes.result_type(fill_value))
    dtype, device = _factory_options("full", out, dtype, layout, device, pin_memory, default=inferred)
    return _result(_build(device, lambda xp: _fill(xp.empty(shape, dtype=dtype.np), fill_value)),
                   requires_grad, out, "full")


def _like(function, input, fill, dtype, layout, device, pin_memory, requires_grad, memory_format):
    """A tensor shaped like input (its dtype and device unless given), elements laid out by memory_format
    (preserve_format: as input's where input is dense), filled with fill (None: uninitialised)."""
    _require_tensor(input, function)
    _check_memory_format(memory_format, function)
    dtype, device = _factory_options(function, None, dtype or input.dtype, layout or strided, device or input.device,
                                     pin_memory)
    order = _dim_order(input.array, memory_format)

    def make(xp):
        array = _empty(xp, input.array.shape, dtype.np, order)
        return array if fill is None else _fill(array, fill)
    return _finish(_build(device, make), requires_grad)


def zeros_like(input, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
               memory_format=preserve_format):
    """Zeros shaped like input, with its dtype and device unless given: `distml.zeros_like(x)`."""
    return _like("zeros_like", input, 0, dtype, layout, device, pin_memory, requires_grad, memory_format)


def ones_like(input, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
              memory_format=preserve_format):
    return _like("ones_like", input, 1, dtype, layout, device, pin_memory, requires_grad, memory_format)


def empty_like(input, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
               memory_format=preserve_format):
    return _like("empty_like", input, None, dtype, layout, device, pin_memory, requires_grad, memory_format)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
              memory_format=preserve_format):
    """input's shape filled with fill_value, in input's dtype unless given (`full_like(int_x, 2.5)` holds 2)."""
    if isinstance(fill_value, Tensor) and fill_value.array.ndim == 0:
        fill_value = fill_value.item()
    if not isinstance(fill_value, numbers.Number):
        raise TypeError(f"full_like(): argument 'fill_value' (position 2) must be Number, not {_label(fill_value)}")
    return _like("full_like", input, fill_value, dtype, layout, device, pin_memory, requires_grad, memory_format)


def empty_strided(size, stride, *, dtype=None, layout=strided, device=None, pin_memory=False, requires_grad=False):
    """Uninitialised memory viewed with the given strides (in elements): `empty_strided((2, 3), (1, 2))`."""
    shape = _size((size,), None, "empty_strided")
    stride = _size((stride,), None, "empty_strided")
    if len(shape) != len(stride):
        raise RuntimeError(f"dimensionality of sizes ({len(shape)}) must match dimensionality of strides "
                           f"({len(stride)})")
    dtype, device = _factory_options("empty_strided", None, dtype, layout, device, pin_memory)
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, stride)) if all(shape) else 0
    itemsize = dtype.itemsize

    def make(xp):
        return xp.lib.stride_tricks.as_strided(xp.empty(extent, dtype=dtype.np), shape, [s * itemsize for s in stride])
    return _finish(_build(device, make), requires_grad)


# ---- ranges ----

def _number(x, function, name):
    """A range bound: a Python number, or the value of a one-element tensor."""
    if isinstance(x, Tensor):
        return x.item()
    if not isinstance(x, numbers.Number) or isinstance(x, complex):
        raise TypeError(f"{function}(): argument '{name}' must be Number, not {_label(x)}")
    return x


def arange(start=None, end=None, step=1, *, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
           requires_grad=False):
    """[start, end) in steps: `distml.arange(5)`, `arange(1, 4)`, `arange(0, 1, 0.25)`; int64 unless a bound
    or the step is a float (then the default float dtype). Tensor bounds count as their values."""
    if end is None:
        if start is None:
            raise TypeError("arange() missing 1 required positional arguments: \"end\"")
        start, end = 0, start
    elif start is None:
        start = 0
    start, end, step = (_number(v, "arange", n) for v, n in ((start, "start"), (end, "end"), (step, "step")))
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if not (np.isfinite(start) and np.isfinite(end)):
        raise RuntimeError(f"unsupported range: {start} -> {end}")
    if (step > 0 and end < start) or (step < 0 and end > start):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    inferred = dtypes.from_numpy(dtypes.result_type(start, end, step))
    dtype, device = _factory_options("arange", out, dtype, layout, device, pin_memory, default=inferred)
    exact = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    wide = np.int64 if exact else np.float64  # PyTorch computes start + i * step in double for floats

    def make(xp):
        return xp.arange(start, end, step, dtype=wide).astype(dtype.np)
    return _result(_build(device, make), requires_grad, out, "arange")


def _steps(steps, function):
    if isinstance(steps, Tensor):
        steps = steps.item()
    if not _is_int(steps):
        raise TypeError(f"{function}(): argument 'steps' (position 3) must be int, not {_label(steps)}")
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return steps


def _spaced(xp, start, end, steps, np_dtype):
    """PyTorch's linspace values: start + i * step for the first half, end - (steps - 1 - i) * step for the
    rest (so both ends are exact), computed in np_dtype for floats, in double for integers (after
    truncating the bounds to integers, as PyTorch does)."""
    floating = dtypes.is_float(np.dtype(np_dtype)) or np.dtype(np_dtype).kind == "c"
    compute = np.dtype(np_dtype) if floating else np.dtype(np.float64)
    if not floating:
        start, end = int(start), int(end)
    start, end = compute.type(start), compute.type(end)
    if steps == 1:
        return xp.full(1, start, dtype=compute)
    step = (end - start) / compute.type(steps - 1)
    index = xp.arange(steps, dtype=compute)
    return xp.where(xp.arange(steps) < steps // 2, start + step * index, end - step * (compute.type(steps - 1) - index))


def linspace(start, end, steps, *, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
             requires_grad=False):
    """steps evenly spaced values from start to end (both included): `distml.linspace(0, 1, 5)`."""
    start, end = _number(start, "linspace", "start"), _number(end, "linspace", "end")
    steps = _steps(steps, "linspace")
    dtype, device = _factory_options("linspace", out, dtype, layout, device, pin_memory)

    def make(xp):
        return _spaced(xp, start, end, steps, dtype.np).astype(dtype.np)
    return _result(_build(device, make), requires_grad, out, "linspace")


def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
             requires_grad=False):
    """base ** linspace(start, end, steps): `distml.logspace(0, 2, 3)` is [1, 10, 100]."""
    start, end = _number(start, "logspace", "start"), _number(end, "logspace", "end")
    steps = _steps(steps, "logspace")
    base = _number(base, "logspace", "base")
    dtype, device = _factory_options("logspace", out, dtype, layout, device, pin_memory)

    def make(xp):
        exponents = _spaced(xp, start, end, steps, dtype.np)
        return xp.power(exponents.dtype.type(base), exponents).astype(dtype.np)
    return _result(_build(device, make), requires_grad, out, "logspace")


def eye(n, m=None, *, out=None, dtype=None, layout=strided, device=None, pin_memory=False, requires_grad=False):
    """The n x m (n x n) identity matrix: `distml.eye(3)`, `eye(2, 3)`."""
    for value, name, position in ((n, "n", 1), (m, "m", 2)):
        if value is not None and not _is_int(value):
            raise TypeError(f"eye(): argument '{name}' (position {position}) must be int, not {_label(value)}")
        if value is not None and value < 0:
            raise RuntimeError(f"{name} must be greater or equal to 0, got {value}")
    dtype, device = _factory_options("eye", out, dtype, layout, device, pin_memory)
    return _result(_build(device, lambda xp: xp.eye(int(n), None if m is None else int(m), dtype=dtype.np)),
                   requires_grad, out, "eye")

