"""Reductions over dimensions: sum, mean, ..."""
import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops._util import normalize_dims


class Sum(Primitive):
    saves_inputs = False

    def forward(self, x, dims, keepdim, dtype):
        self.shape, self.dims, self.keepdim = x.shape, dims, keepdim
        if dtype is None and x.dtype.kind in "biu":
            dtype = np.int64
        return get_array_module(x).asarray(x.sum(axis=dims, keepdims=keepdim, dtype=dtype))

    def backward(self, grad):
        if not self.keepdim and self.dims is not None:
            grad = grad.reshape([1 if i in self.dims else s for i, s in enumerate(self.shape)])
        return get_array_module(grad).broadcast_to(grad, self.shape)


def sum(x, dim=None, keepdim=False, dtype=None):
    """Sum over `dim` (int, tuple, or all): `x.sum(dim=(0, 2), keepdim=True)`."""
    return Sum.apply(x, dims=normalize_dims(dim, x.data.ndim), keepdim=keepdim, dtype=dtypes.to_numpy(dtype))


def mean(x, dim=None, keepdim=False, dtype=None):
    """Average over `dim`; needs a floating-point input (or `dtype=`) as in PyTorch."""
    if dtype is not None:
        from distml.ops.convert import cast
        x = cast(x, dtype)
    if x.data.dtype.kind != "f":
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating point "
                           f"or complex dtype. Got: {x.dtype.name.capitalize()}")
    dims = normalize_dims(dim, x.data.ndim)
    count = x.data.size if dims is None else int(np.prod([x.data.shape[d] for d in dims]))
    total = Sum.apply(x, dims=dims, keepdim=keepdim, dtype=None)
    return total / count if count else total * float("nan")
