"""Helpers shared by the ops: broadcasting gradients back, PyTorch's type promotion."""
import numpy as np

from distml import dtypes
from distml.tensor import Tensor


def unbroadcast(grad, shape):
    """Sum `grad` over the dimensions that broadcasting added or stretched, back to `shape`."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, s in enumerate(shape) if s == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def normalize_dims(dim, ndim):
    """A dim argument (None, int, or tuple) as a tuple of non-negative axes, or None for all."""
    if dim is None:
        return None
    rank = max(ndim, 1)
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -rank <= d < rank:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got {d})")
        out.append(d % rank)
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {out} appears multiple times in the list of dims")
    return tuple(out) if ndim else ()


def check_same_device(a, b):
    if type(a.data) is not type(b.data) or (not isinstance(a.data, np.ndarray) and a.data.device != b.data.device):
        raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                           f"{a.device} and {b.device}!")


def promote(a, b, to_float=False):
    """Cast tensor operands of a binary op to PyTorch's result dtype; Python scalars stay
    scalars unless they change the result's category (int tensor + 0.5 -> float)."""
    from distml.ops.convert import cast
    a_is_tensor, b_is_tensor = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is_tensor and b_is_tensor:
        check_same_device(a, b)
        if a.data.dtype == b.data.dtype and not (to_float and a.data.dtype.kind != "f"):
            return a, b
        dtype = dtypes.result_type(a.data, b.data)
    elif a_is_tensor or b_is_tensor:
        tensor, scalar = (a, b) if a_is_tensor else (b, a)
        if isinstance(scalar, np.ndarray):
            raise TypeError(f"unsupported operand: Tensor and numpy.ndarray (use distml.from_numpy)")
        dtype = dtypes.result_type(tensor.data, scalar)
        if dtype == tensor.data.dtype and not (to_float and dtype.kind != "f"):
            return a, b
    else:
        raise TypeError(f"expected a Tensor operand, got {type(a).__name__} and {type(b).__name__}")
    if to_float and dtype.kind != "f":
        dtype = dtypes.default_float_np()
    a = cast(a, dtype) if a_is_tensor and a.data.dtype != dtype else a
    b = cast(b, dtype) if b_is_tensor and b.data.dtype != dtype else b
    return a, b
