"""sort, argsort, topk: indices found without grad, values gathered (so gather's backward serves)."""
import numpy as np

from distml import return_types
from distml._backend import get_array_module
from distml.ops._util import wrap_dim
from distml.ops.registry import register
from distml.tensor import Tensor


def _sort_indices(x, dim, descending):
    xp = get_array_module(x.array)
    data = x.array
    if descending:
        data = -(data.astype(np.int64) if data.dtype.kind in "bu" else data)
    return xp.argsort(data, axis=dim, kind="stable")


@register(method=True)
def argsort(x, dim=-1, descending=False, stable=False):
    """Indices that sort x along dim."""
    if x.array.ndim == 0:
        return Tensor(get_array_module(x.array).zeros((), dtype=np.int64))
    return Tensor(_sort_indices(x, wrap_dim(dim, x.array.ndim), descending).astype(np.int64, copy=False))


@register(method=True)
def sort(x, dim=-1, descending=False, stable=False):
    """(values, indices) of x sorted along dim; ties keep their order."""
    from distml.ops.index import gather
    indices = argsort(x, dim, descending)
    values = gather(x, dim, indices) if x.array.ndim else x.clone()
    return return_types.sort(values, indices)


@register(method=True)
def topk(x, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the k largest (or smallest) elements along dim."""
    from distml.ops.index import gather
    from distml.ops.shape import narrow
    d = wrap_dim(dim, x.array.ndim)
    size = x.array.shape[d] if x.array.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError("selected index k out of range")
    if x.array.ndim == 0:
        return return_types.topk(x.clone(), Tensor(np.zeros((), dtype=np.int64)))
    indices = narrow(argsort(x, d, descending=largest), d, 0, k).contiguous()
    return return_types.topk(gather(x, d, indices), indices)


@register(method=True)
def msort(x):
    return sort(x, 0).values
