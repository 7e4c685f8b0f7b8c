"""Helpers shared by the ops: broadcasting gradients back, PyTorch's type promotion."""
import numpy as np

from distml import dtypes
from distml.ops.convert import cast
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


def complex_grads(grad, a, b, grad_a_of, grad_b_of):
    """The gradients of a product-like op (mul, div, matmul) with a complex output, in PyTorch's
    convention: each formula on the conjugated inputs, the real part for a real input."""
    conj_a, conj_b = np.conj(a), np.conj(b)
    grad_a, grad_b = grad_a_of(grad, conj_a, conj_b), grad_b_of(grad, conj_a, conj_b)
    return (grad_a if grad_a is None or np.iscomplexobj(a) else grad_a.real,
            grad_b if grad_b is None or np.iscomplexobj(b) else grad_b.real)


def broadcast_shapes(a, b):
    """The broadcast shape of shapes a and b, or PyTorch's RuntimeError naming the clash."""
    ndim = max(len(a), len(b))
    a, b = (1,) * (ndim - len(a)) + tuple(a), (1,) * (ndim - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y and x != 1 and y != 1:
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b ({y}) at "
                               f"non-singleton dimension {i}")
        out.append(y if x == 1 else x)
    return tuple(out)


def wrap_dim(dim, ndim):
    """dim as a non-negative axis of an ndim-dimensional tensor, or PyTorch's IndexError."""
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got {dim})")
    return dim % rank


def normalize_dims(dim, ndim):
    """A dim argument (None, int, or tuple) as a tuple of non-negative axes, or None for all."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = [wrap_dim(d, ndim) for d in dims]
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {out[-1]} appears multiple times in the list of dims")
    return tuple(out) if ndim else ()


def check_same_device(a, b):
    if type(a.array) is not type(b.array) or (not isinstance(a.array, np.ndarray) and a.array.device != b.array.device):
        raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                           f"{a.device} and {b.device}!")


def promote(a, b, to_float=False):
    """Cast tensor operands of a binary op to PyTorch's result dtype; Python scalars stay
    scalars unless they change the result's category (int tensor + 0.5 -> float).
    Also checks that two tensors broadcast and live on the same device."""
    a_is_tensor, b_is_tensor = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is_tensor and b_is_tensor:
        data_a, data_b = a.array, b.array
        if (data_a.dtype is data_b.dtype and type(data_a) is np.ndarray and type(data_b) is np.ndarray
                and data_a.shape == data_b.shape and (not to_float or dtypes.is_inexact(data_a.dtype))):
            return a, b  # the common case: same dtype, same shape, on the CPU
        if type(data_a) is not np.ndarray or type(data_b) is not np.ndarray:
            check_same_device(a, b)
        if data_a.shape != data_b.shape:
            broadcast_shapes(data_a.shape, data_b.shape)
        if data_a.dtype == data_b.dtype and (not to_float or dtypes.is_inexact(data_a.dtype)):
            return a, b
        dtype = dtypes.result_type(data_a, data_b)
    elif a_is_tensor or b_is_tensor:
        tensor, scalar = (a, b) if a_is_tensor else (b, a)
        kind = tensor.array.dtype.kind
        if kind in _KEEPS_DTYPE.get(type(scalar), "") and (not to_float or kind in "fc"):
            return a, b  # the common case, decided without result_type
        if isinstance(scalar, np.ndarray):
            raise TypeError("unsupported operand: Tensor and numpy.ndarray (use distml.from_numpy)")
        dtype = dtypes.result_type(tensor.array, scalar)
        if dtype == tensor.array.dtype and not (to_float and not dtypes.is_inexact(dtype)):
            return a, b
    else:
        raise TypeError(f"expected a Tensor operand, got {type(a).__name__} and {type(b).__name__}")
    if to_float and not dtypes.is_inexact(dtype):
        dtype = dtypes.default_float_np()
    a = cast(a, dtype) if a_is_tensor and a.array.dtype != dtype else a
    b = cast(b, dtype) if b_is_tensor and b.array.dtype != dtype else b
    return a, b


# The tensor dtype kinds that a Python scalar of each type leaves unchanged.
_KEEPS_DTYPE = {float: "fc", int: "fiuc", bool: "fiubc", complex: "c"}
