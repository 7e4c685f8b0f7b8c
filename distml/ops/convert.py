"""Changing dtype or device, and copying."""
import numpy as np

from distml import dtypes
from distml._backend import get_array_module, no_tensors_on, require_cupy
from distml.autograd.function import Primitive
from distml.ops.registry import register


class Cast(Primitive):
    saves_inputs = False

    def forward(self, x, dtype):
        self.input_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        if self.input_dtype.kind == "c":
            return grad.astype(self.input_dtype)
        if not dtypes.is_float(self.input_dtype):
            return None
        return (grad.real if grad.dtype.kind == "c" else grad).astype(self.input_dtype)  # real -> complex: the real part


class Clone(Primitive):
    saves_inputs = False

    def forward(self, x):
        return x.copy()

    def backward(self, grad):
        return grad


class ToDevice(Primitive):
    saves_inputs = False

    def forward(self, x, device, non_blocking):
        self.source = "cpu" if isinstance(x, np.ndarray) else x.device.id
        return _move(x, device)

    def backward(self, grad):
        return grad.get() if self.source == "cpu" else _move(grad, ("cuda", self.source))


def _move(array, device):
    kind, index = device if isinstance(device, tuple) else (device.type, device.index)
    if kind == "cpu":
        return array if isinstance(array, np.ndarray) else array.get()
    if kind != "cuda":
        raise no_tensors_on(kind, creating=False)
    cupy = require_cupy()
    with cupy.cuda.Device(index or 0):
        return cupy.asarray(array)


def cast(x, dtype):
    """x as another dtype (a distml or numpy dtype): `cast(x, distml.float64)`."""
    np_dtype = dtypes.to_numpy(dtype)
    return x if x.array.dtype == np_dtype else Cast.apply(x, dtype=np_dtype)


@register()
def clone(x):
    return Clone.apply(x)


def to_device(x, device, non_blocking=False):
    on_cpu = isinstance(x.array, np.ndarray)
    if (device.type == "cpu") == on_cpu and (on_cpu or device.index in (None, x.array.device.id)):
        return x
    return ToDevice.apply(x, device=device, non_blocking=non_blocking)


def full_like_value(x, value):
    """A tensor shaped like x, filled with value (no grad): used by fill_ and zero_."""
    from distml.tensor import Tensor
    xp = get_array_module(x.array)
    return Tensor(xp.full(x.array.shape, value, dtype=x.array.dtype))


def expand_as_copy(source, target):
    """`source` broadcast to `target`'s shape, in target's dtype: what copy_ writes."""
    from distml.ops.shape import expand
    from distml.tensor import Tensor
    if not isinstance(source, Tensor):
        source = Tensor(get_array_module(target.array).asarray(source))
    if type(source.array) is not type(target.array):
        source = to_device(source, target.device)
    return cast(expand(source, target.array.shape), target.array.dtype)
