"""Changing dtype or device, and copying."""
import numpy as np

from distml import _backend, dtypes, kernels
from distml._backend import C, get_array_module, no_tensors_on, require_cupy
from distml.autograd.function import Primitive
from distml.ops.registry import register


_HALVES = (np.dtype(np.float16), dtypes.bfloat16.np)


def _astype(x, dtype):
    """x.astype(dtype); float32 to and from float16/bfloat16 in one pass of C++ where `_C` takes x
    (NumPy's half casts are several times slower), rounding to nearest even as NumPy does."""
    dtype = np.dtype(dtype)
    if x.dtype == np.float32 and dtype in _HALVES and kernels.compiled("f32_to_half_divided", x) is not None:
        out = np.empty(x.shape, dtype)
        C.f32_to_half_divided(np.ascontiguousarray(x), out, 1.0)
        return out
    if x.dtype in _HALVES and dtype == np.float32 and kernels.compiled("half_to_f32", x) is not None:
        out = np.empty(x.shape, dtype)
        C.half_to_f32(np.ascontiguousarray(x), out)
        return out
    return x.astype(dtype)


class Cast(Primitive):
    saves_inputs = False

    def forward(self, x, dtype):
        self.input_dtype = x.dtype
        return _astype(x, dtype)

    def backward(self, grad):
        if self.input_dtype.kind == "c":
            return grad.astype(self.input_dtype)
        if not dtypes.is_float(self.input_dtype):
            return None
        return _astype(grad.real if grad.dtype.kind == "c" else grad, self.input_dtype)  # real -> complex: the real part


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
        return _move(x, device, non_blocking)

    def backward(self, grad):
        # Blocking: the engine reads a host gradient at once.
        return _move(grad, ("cpu", None) if self.source == "cpu" else ("cuda", self.source))


def _move(array, device, non_blocking=False):
    """`array` copied to device ("cuda", 1) or device("cpu"). With non_blocking, a copy from pinned host
    memory to the GPU, or from the GPU into new pinned host memory, is queued on the current stream
    and returns at once, as in PyTorch (synchronize, or wait on an event, before reading the result
    on the host); other copies wait for their data."""
    kind, index = device if isinstance(device, tuple) else (device.type, device.index)
    if kind == "cpu":
        if isinstance(array, np.ndarray):
            return array
        if not non_blocking:
            return array.get()
        with array.device:
            out = pinned_empty(array.shape, array.dtype)
            return array.get(out=out, blocking=False)
    if kind != "cuda":
        raise no_tensors_on(kind, creating=False)
    cupy = require_cupy()
    with cupy.cuda.Device(cupy.cuda.runtime.getDevice() if index is None else index):
        if not isinstance(array, np.ndarray):
            return array.copy()  # from another device: cupy copies between devices
        if non_blocking and is_pinned(array):
            out = cupy.empty(array.shape, array.dtype)
            out.set(np.ascontiguousarray(array))  # queued on the current stream: the memory is pinned
            return out
        return cupy.asarray(array)


def pinned_empty(shape, dtype):
    """A new numpy array in page-locked host memory (cupyx's pinned memory pool)."""
    import cupyx
    return cupyx.empty_pinned(shape, dtype=dtype)


def is_pinned(array):
    """Whether a host array's memory is page-locked (CUDA can copy it asynchronously)."""
    cupy = require_cupy()
    if not isinstance(array, np.ndarray) or array.size == 0:
        return False
    try:
        attributes = cupy.cuda.runtime.pointerGetAttributes(array.ctypes.data)
    except cupy.cuda.runtime.CUDARuntimeError:
        return False
    return attributes.type == cupy.cuda.runtime.memoryTypeHost


class PinMemory(Primitive):
    saves_inputs = False

    def forward(self, x):
        out = pinned_empty(x.shape, x.dtype)
        out[...] = x
        return out

    def backward(self, grad):
        return grad


def pin_memory(x):
    """x copied into page-locked host memory (x itself when it is there already): what makes
    `.to("cuda", non_blocking=True)` asynchronous. Needs a usable CUDA device, as in PyTorch."""
    if _backend.cuda_unavailable_reason() is not None:
        raise RuntimeError("Cannot access accelerator device when none is available.")
    if not isinstance(x.array, np.ndarray):
        raise RuntimeError(f"cannot pin '{x.type()}' only dense CPU tensors can be pinned")
    return x if is_pinned(x.array) else PinMemory.apply(x)


def cast(x, dtype):
    """x as another dtype (a distml or numpy dtype): `cast(x, distml.float64)`."""
    np_dtype = dtypes.to_numpy(dtype)
    return x if x.array.dtype == np_dtype else Cast.apply(x, dtype=np_dtype)


@register()
def clone(x):
    return Clone.apply(x)


def to_device(x, device, non_blocking=False):
    """x on `device` (x itself when it is there); "cuda" without an index is the current device, as in PyTorch."""
    on_cpu = isinstance(x.array, np.ndarray)
    if device.type == "cpu" and on_cpu:
        return x
    if device.type == "cuda" and not on_cpu:
        index = require_cupy().cuda.runtime.getDevice() if device.index is None else device.index
        if index == x.array.device.id:
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
