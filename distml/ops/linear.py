"""The dense layer's product and the embedding lookup, each one graph node."""
import math

import numpy as np

from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops.index import scatter_add_flat


class Linear(Primitive):
    """x @ weight.T + bias over the last dim of x: one BLAS GEMM each way on x's rows (a matmul of
    a 3-d array would be a loop of small GEMMs, one per leading index)."""

    def forward(self, x, weight, bias):
        self.x, self.weight = x, weight
        out = _rows(x) @ weight.T
        if bias is not None:
            out += bias
        return _shaped(out, x.shape[:-1] + weight.shape[:1])

    def backward(self, grad):
        x, weight = self.x, self.weight
        grad_rows = _rows(grad)
        needs = self.needs_input_grad
        grad_x = _shaped(grad_rows @ weight, x.shape) if needs[0] else None
        grad_w = grad_rows.T @ _rows(x) if needs[1] else None
        grad_b = grad_rows.sum(axis=0) if needs[2] else None
        return grad_x, grad_w, grad_b


def _rows(a):
    """`a` as a matrix of its last dim's vectors (a copy only where a's layout needs one)."""
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def _shaped(a, shape):
    """`a` reshaped to `shape`; `a` itself where it has that shape (an array that owns its memory
    can become a leaf's .grad without a copy, a view of it cannot)."""
    return a if a.shape == shape else a.reshape(shape)


class Embedding(Primitive):
    """weight[indices]; the rows' gradients add up, and row padding_idx gets none."""
    saves_inputs = False

    def forward(self, weight, indices, padding_idx):
        self.shape, self.indices, self.padding_idx = weight.shape, indices, padding_idx
        return weight[indices]

    def backward(self, grad):
        xp = get_array_module(grad)
        rows, dim = self.shape
        grad_w = xp.zeros(self.shape, dtype=grad.dtype)
        positions = self.indices.reshape(-1, 1).astype(np.int64) * dim + xp.arange(dim)
        scatter_add_flat(grad_w, positions, grad.reshape(-1, dim))
        if self.padding_idx is not None:
            grad_w[self.padding_idx] = 0
        return grad_w, None
