"""Sparse COO tensors, PyTorch's `torch.sparse` surface for graph networks (GCN and friends):

    adjacency = distml.sparse_coo_tensor(edges, weights, (n, n))   # or dense.to_sparse()
    hidden = distml.sparse.mm(adjacency, features @ weight)         # adjacency @ x, s.t(), s + s, s * 2 ...

Design.

- `SparseTensor` subclasses `Tensor`, so `isinstance(s, distml.Tensor)` holds as in PyTorch (and a
  sparse adjacency can be a Module buffer). It holds an int64 index array (sparse_dim x nnz), a
  values Tensor (nnz x dense dims), the size and a coalesced flag. Its `array` is a property that
  raises PyTorch's NotImplementedError ("Could not run ... with arguments from the 'SparseCPU'
  backend"), so every dense op handed a sparse tensor stops at its first read of the data. The
  few dense-only methods users reach for (view, reshape, numpy) raise PyTorch's own messages.
  Nothing in `Tensor` or in the dense ops changes: the dense hot path is untouched.
- Autograd sees a sparse tensor through its values Tensor: `requires_grad`, `grad_fn` and
  `is_leaf` are the values'. Sparse ops are dense ops (or primitives) on the values with the
  indices as fixed parameters, so gradients reach values built with `sparse_coo_tensor(i, v)`
  from a `v` that requires grad (learnable edge weights: `v.grad` is dense, one entry per nnz).
  A sparse leaf (`requires_grad=True`) owns a leaf values Tensor; its `.grad` is a sparse tensor
  on the coalesced indices, as PyTorch's is. Every SparseTensor owns its values Tensor (ops that
  keep the values wrap them in an `Alias` node named as PyTorch names it).
- The kernel: sparse @ dense is one primitive (`SparseAddmm`: forward S @ D, backward S^T @ G and
  G[row] . D[col] per entry) over one kernel entry, SciPy's compiled CSR product on the CPU (about
  10x faster than numpy's reduceat and faster than torch.sparse.mm at GCN sizes; see
  benchmarks/sparse_mm.py) and a scatter-add on the GPU. The row order is built once per tensor
  and cached, since a GCN multiplies by the same adjacency every step.
- Coalescing and densifying are primitives over the project's one scatter-add (`_C` on the CPU).
- `distml.sparse_coo` is defined here, a `layout` beside tensor.py's `distml.strided`.
"""
from distml.sparse._tensor import SparseTensor, layout, sparse_coo, sparse_coo_tensor, strided, to_sparse
from distml.sparse._ops import addmm, matmul, mm, smm, softmax, spmm, sum

__all__ = ["SparseTensor", "addmm", "layout", "matmul", "mm", "smm", "softmax", "sparse_coo", "sparse_coo_tensor",
           "spmm", "strided", "sum", "to_sparse"]
