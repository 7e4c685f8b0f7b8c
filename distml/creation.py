"""Tensor factories: tensor, zeros, ones, arange, randn, ... (PyTorch's names and defaults)."""
import numpy as np

from distml import dtypes
from distml._backend import device_array_module
from distml.device import device as Device
from distml.tensor import Tensor


def _array_module(device):
    return np if device is None else device_array_module(Device(device).type)


def _finish(array, requires_grad):
    t = Tensor(array)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_numpy_dtype(data):
    """The dtype PyTorch would infer: Python floats -> default float, ints -> int64, bools -> bool."""
    array = np.asarray(data)
    if array.dtype.kind == "f" and not isinstance(data, np.ndarray):
        return dtypes.default_float_np()
    if array.dtype.kind in "iu" and not isinstance(data, np.ndarray):
        return np.dtype(np.int64)
    if array.dtype.kind == "O":
        raise TypeError(f"Could not infer dtype of {type(data).__name__}")
    dtypes.from_numpy(array.dtype)
    return array.dtype


def _unwrap_tensors(data):
    if isinstance(data, Tensor):
        return data.detach().cpu().array
    if isinstance(data, (list, tuple)):
        return [_unwrap_tensors(d) for d in data]
    return data


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor that copies `data`: `distml.tensor([[1., 2.], [3., 4.]])`."""
    data = _unwrap_tensors(data)
    np_dtype = dtypes.to_numpy(dtype) or _infer_numpy_dtype(data)
    xp = _array_module(device)
    array = np.array(data, dtype=np_dtype)
    return _finish(array if xp is np else _to_device_array(array, device), requires_grad)


def _to_device_array(array, device):
    from distml.ops.convert import _move
    return _move(array, Device(device))


def as_tensor(data, dtype=None, device=None):
    """Like `tensor`, but shares memory with a numpy array / tensor when no conversion is needed."""
    if isinstance(data, Tensor):
        return data.to(dtype=dtype, device=device)
    if isinstance(data, np.ndarray) and device in (None, "cpu"):
        return Tensor(data if dtype is None else data.astype(dtypes.to_numpy(dtype), copy=False))
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array):
    """A tensor sharing memory with a numpy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dtypes.from_numpy(array.dtype)
    return Tensor(array)


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    size = tuple(int(s) for s in size)
    if any(s < 0 for s in size):
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(size)}: {list(size)}")
    return size


def zeros(*size, dtype=None, device=None, requires_grad=False):
    xp = _array_module(device)
    return _finish(xp.zeros(_size(size), dtype=dtypes.to_numpy(dtype) or dtypes.default_float_np()), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    xp = _array_module(device)
    return _finish(xp.ones(_size(size), dtype=dtypes.to_numpy(dtype) or dtypes.default_float_np()), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    xp = _array_module(device)
    return _finish(xp.empty(_size(size), dtype=dtypes.to_numpy(dtype) or dtypes.default_float_np()), requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = dtypes.result_type(fill_value)
    xp = _array_module(device)
    return _finish(xp.full(_size((size,)), fill_value, dtype=dtypes.to_numpy(dtype)), requires_grad)


def _like(x, dtype, device):
    return dict(dtype=dtype or x.dtype, device=device or x.device)


def zeros_like(x, dtype=None, device=None, requires_grad=False):
    return zeros(x.shape, requires_grad=requires_grad, **_like(x, dtype, device))


def ones_like(x, dtype=None, device=None, requires_grad=False):
    return ones(x.shape, requires_grad=requires_grad, **_like(x, dtype, device))


def empty_like(x, dtype=None, device=None, requires_grad=False):
    return empty(x.shape, requires_grad=requires_grad, **_like(x, dtype, device))


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False):
    return full(x.shape, fill_value, requires_grad=requires_grad, **_like(x, dtype, device))


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """`distml.arange(5)`, `distml.arange(0, 1, 0.25)`; int64 unless a bound is a float."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    if dtype is None:
        dtype = dtypes.result_type(start, end, step)
    xp = _array_module(device)
    return _finish(xp.arange(start, end, step, dtype=np.float64).astype(dtypes.to_numpy(dtype)), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    xp = _array_module(device)
    np_dtype = dtypes.to_numpy(dtype) or dtypes.default_float_np()
    return _finish(xp.linspace(start, end, int(steps), dtype=np.float64).astype(np_dtype), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    xp = _array_module(device)
    return _finish(xp.eye(n, m, dtype=dtypes.to_numpy(dtype) or dtypes.default_float_np()), requires_grad)
