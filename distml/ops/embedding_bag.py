"""EmbeddingBag: rows of a weight table picked by indices and reduced per bag (sum, mean or
max), in one primitive so that the picked rows are never materialised twice and the
backward scatters straight into the weight gradient.

    out = EmbeddingBag.apply(weight, None, indices=idx, bags=bag_of_each_index, n_bags=2, mode="sum")
"""
import numpy as np

from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops.index import scatter_add_flat


def _row_positions(xp, rows, dim):
    """Flat positions of whole rows of a (?, dim) array."""
    return rows.reshape(-1, 1).astype(np.int64) * dim + xp.arange(dim)


class EmbeddingBag(Primitive):
    """out[b] = reduce over the indices i of bag b of weight[indices[i]] (times
    per_sample_weights[i] in sum mode); `bags` is each index's bag, non-decreasing; empty
    bags give zeros. Max mode sends each output's gradient to the first maximal row."""
    saves_inputs = False

    def forward(self, weight, per_sample_weights, indices, bags, n_bags, mode):
        xp = get_array_module(weight)
        dim = weight.shape[1]
        self.shape, self.indices, self.bags, self.mode = weight.shape, indices, bags, mode
        rows = weight[indices]
        if mode == "max":
            return self._max(xp, rows, n_bags)
        self.counts = xp.bincount(bags, minlength=n_bags)
        self.rows, self.per_sample_weights = (rows, per_sample_weights) if per_sample_weights is not None else (None, None)
        if per_sample_weights is not None:
            rows = rows * per_sample_weights[:, None]
        out = xp.zeros((n_bags, dim), dtype=weight.dtype)
        scatter_add_flat(out, _row_positions(xp, bags, dim), rows)
        if mode == "mean":
            out /= xp.maximum(self.counts, 1)[:, None].astype(out.dtype)
        return out

    def _max(self, xp, rows, n_bags):
        """Bags laid out padded to the longest, padding at -inf; argmax takes the first maximum."""
        counts = xp.bincount(self.bags, minlength=n_bags)
        starts = xp.cumsum(counts) - counts
        slot = xp.arange(len(self.bags)) - starts[self.bags]
        longest = int(counts.max()) if n_bags else 0
        padded = xp.full((n_bags, max(longest, 1), rows.shape[1]), -np.inf, dtype=rows.dtype)
        padded[self.bags, slot] = rows
        best = padded.argmax(axis=1)  # (n_bags, dim): the slot of each maximum
        out = xp.take_along_axis(padded, best[:, None], axis=1)[:, 0]
        empty = counts == 0
        out[empty] = 0
        self.winner = xp.where(empty[:, None], -1, starts[:, None] + best)  # position in indices, -1: none
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        dim = self.shape[1]
        grad_w = xp.zeros(self.shape, dtype=grad.dtype)
        if self.mode == "max":
            taken = self.winner >= 0
            rows = self.indices[self.winner[taken]]
            columns = xp.nonzero(taken)[1]
            scatter_add_flat(grad_w, rows.astype(np.int64) * dim + columns, grad[taken])
            return grad_w, None
        grad_rows = grad[self.bags]
        if self.mode == "mean":
            grad_rows = grad_rows / xp.maximum(self.counts, 1)[self.bags, None].astype(grad.dtype)
        grad_psw = None
        if self.per_sample_weights is not None:
            grad_psw = (grad_rows * self.rows).sum(axis=1) if self.needs_input_grad[1] else None
            grad_rows = grad_rows * self.per_sample_weights[:, None]
        scatter_add_flat(grad_w, _row_positions(xp, self.indices, dim), grad_rows)
        return grad_w, grad_psw
