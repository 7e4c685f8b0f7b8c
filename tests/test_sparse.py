"""Sparse COO tensors against PyTorch on the same inputs: values, indices, dtypes, reprs,
gradients (float64) and errors."""
import copy
import pickle

import numpy as np
import pytest
import torch

import distml
from distml.sparse import SparseTensor

pytestmark = [pytest.mark.filterwarnings("ignore:Sparse invariant checks"),
              pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")]

INDICES = [[0, 1, 1, 0], [2, 0, 2, 2]]  # (0, 2) appears twice: uncoalesced
VALUES = [3.0, 4.0, 5.0, 6.0]


def coo(m, indices=INDICES, values=VALUES, size=(2, 3), dtype=None, **kwargs):
    sizes = () if size is None else (size,)  # PyTorch's overloads take no size=None
    values = values if isinstance(values, m.Tensor) else m.tensor(values, dtype=dtype)
    return m.sparse_coo_tensor(m.tensor(indices), values, *sizes, **kwargs)


def dense(m, shape, seed=0, requires_grad=False):
    array = np.random.default_rng(seed).standard_normal(shape)
    return m.tensor(array, dtype=m.float64, requires_grad=requires_grad)


def is_sparse(t):
    return isinstance(t, SparseTensor) or (isinstance(t, torch.Tensor) and t.is_sparse)


def same(ours, theirs):
    """Equal values, dtype and shape; sparse tensors also in their coalesced indices and values."""
    assert str(ours.dtype).replace("distml.", "torch.") == str(theirs.dtype)
    assert tuple(ours.shape) == tuple(theirs.shape)
    if theirs.is_sparse:
        assert isinstance(ours, SparseTensor)
        ours, theirs = ours.coalesce(), theirs.coalesce()
        np.testing.assert_array_equal(ours.indices().numpy(), theirs.indices().numpy())
        np.testing.assert_allclose(ours.values().detach().numpy(), theirs.values().detach().numpy(), rtol=1e-12)
    else:
        assert not isinstance(ours, SparseTensor)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-12)


def same_repr(ours, theirs):
    assert repr(ours) == repr(theirs).replace("torch.", "distml.")


def raises_like(f, exception, message):
    with pytest.raises(exception) as theirs:
        f(torch)
    with pytest.raises(exception) as ours:
        f(distml)
    assert message in str(ours.value)
    assert str(theirs.value).startswith(str(ours.value))


# ---- construction, metadata, repr ----

@pytest.mark.parametrize("make", [
    lambda m: coo(m),
    lambda m: coo(m).coalesce(),
    lambda m: coo(m, size=None),
    lambda m: coo(m, dtype=m.float64),
    lambda m: coo(m, [[0, 1], [1, 0]], [1, 2]),
    lambda m: coo(m, size=(3, 3), requires_grad=True),
    lambda m: coo(m, values=m.tensor(VALUES, dtype=m.float64, requires_grad=True)),
    lambda m: m.sparse_coo_tensor(m.zeros(2, 0, dtype=m.int64), m.zeros(0), (2, 3)),
    lambda m: m.sparse_coo_tensor(m.tensor(INDICES), m.arange(8.0).reshape(4, 2)),
    lambda m: m.sparse_coo_tensor([[0, 2, 1]], [1.5, -2.25, 0.125], dtype=m.float64),
    lambda m: m.tensor([[0.0, 1.0], [2.0, 0.0]]).to_sparse(),
    lambda m: m.tensor(3.0).to_sparse(),
])
def test_repr_and_metadata_match_torch(make):
    ours, theirs = make(distml), make(torch)
    same_repr(ours, theirs)
    assert tuple(ours.shape) == tuple(theirs.shape) and ours.dim() == theirs.dim() and ours.ndim == theirs.ndim
    assert (ours.sparse_dim(), ours.dense_dim(), ours._nnz()) == (theirs.sparse_dim(), theirs.dense_dim(),
                                                                   theirs._nnz())
    assert ours.is_coalesced() == theirs.is_coalesced()
    assert (ours.requires_grad, ours.is_leaf) == (theirs.requires_grad, theirs.is_leaf)
    assert ours.numel() == theirs.numel() and ours.is_floating_point() == theirs.is_floating_point()
    assert ours.is_sparse and isinstance(ours, distml.Tensor)
    assert ours.layout is distml.sparse_coo and repr(ours.layout) == "distml.sparse_coo"
    np.testing.assert_array_equal(ours._indices().numpy(), theirs._indices().numpy())
    np.testing.assert_array_equal(ours._values().numpy(), theirs._values().numpy())


def test_layouts_and_small_metadata():
    s = coo(distml)
    assert repr(distml.strided) == "distml.strided" and distml.sparse.strided is distml.strided
    assert s.size() == distml.Size([2, 3]) and s.size(-1) == 3 and len(s) == 2
    assert s.device == distml.device("cpu") and s.dtype is distml.float32 and not s.is_cuda
    assert s.type() == torch.sparse_coo_tensor(torch.tensor(INDICES), torch.tensor(VALUES)).type()
    assert s.to(distml.float32) is s and s.float() is s and s.cpu() is s and s.to_sparse() is s
    assert s.double().dtype is distml.float64 and s.long().dtype is distml.int64
    detached = coo(distml, requires_grad=True).detach()
    assert not detached.requires_grad and detached.is_leaf


def test_deepcopy_and_pickle():
    s = coo(distml, requires_grad=True)
    for other in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        same_repr(other, s)
        assert other._values().array is not s._values().array


def test_values_are_shared_not_copied_and_requires_grad_is_the_sparse_tensors_own():
    for m in (distml, torch):
        values = m.tensor([1.0, 2.0])
        s = m.sparse_coo_tensor([[0, 1]], values, (2,))
        values[0] = 9.0
        s.requires_grad_()
        assert s._values()[0].item() == 9.0 and s.requires_grad and not values.requires_grad


def test_coalesce_sums_duplicates_and_sorts():
    ours, theirs = coo(distml).coalesce(), coo(torch).coalesce()
    same(ours, theirs)
    assert ours.coalesce() is ours and ours.is_coalesced()
    hybrid = [m.sparse_coo_tensor([[2, 0, 2]], m.arange(6.0).reshape(3, 2)).coalesce() for m in (distml, torch)]
    same(*hybrid)


@pytest.mark.parametrize("what", ["indices", "values"])
def test_parts_of_an_uncoalesced_tensor_raise(what):
    raises_like(lambda m: getattr(coo(m), what)(), RuntimeError,
                f"Cannot get {what} on an uncoalesced tensor, please call .coalesce() first")


@pytest.mark.parametrize("make", [
    lambda m: coo(m).to_dense(),
    lambda m: m.sparse_coo_tensor(m.tensor(INDICES), m.arange(8.0).reshape(4, 2), (2, 3, 2)).to_dense(),
    lambda m: m.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]]).to_sparse(),
    lambda m: m.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).to_sparse(1),
    lambda m: m.zeros(2, 3).to_sparse(layout=m.sparse_coo, dense_dim=1),
    lambda m: m.tensor(0.0).to_sparse(),
    lambda m: m.arange(6.0).reshape(3, 2).to_dense(),
])
def test_to_dense_and_to_sparse(make):
    ours, theirs = make(distml), make(torch)
    same(ours, theirs)
    if theirs.is_sparse:
        same_repr(ours, theirs)


@pytest.mark.parametrize("f, exception, message", [
    (lambda m: m.arange(6.0).reshape(3, 2).to_sparse(3), RuntimeError, "must be in [0,2] range, but 3 is given"),
    (lambda m: m.arange(6.0).reshape(3, 2).to_sparse(0), RuntimeError, "must be in >0 when self.dim()>0"),
    (lambda m: m.ones(2, 3).to_sparse(1, dense_dim=1), TypeError, "takes 0 positional arguments"),
    (lambda m: coo(m).to_sparse(1), RuntimeError, "with sparse_dim argument !=self.sparse_dim() is not supported"),
])
def test_to_sparse_errors(f, exception, message):
    raises_like(f, exception, message)


@pytest.mark.parametrize("f, message", [
    (lambda m: m.sparse_coo_tensor(m.tensor(INDICES[0]), m.tensor(VALUES)), "indices must be sparse_dim x nnz"),
    (lambda m: m.sparse_coo_tensor(m.tensor(INDICES), m.tensor(VALUES[:3])), "must have same nnz"),
    (lambda m: coo(m, size=(2, 3, 2)), "'len(size) == sparse_dim + dense_dim' is not satisfied"),
    (lambda m: m.sparse_coo_tensor(m.tensor(INDICES), m.ones(4, 1), (2, 3, 2)), "values has incorrect size"),
    (lambda m: coo(m, indices=[[0, -1, 1, 0], [2, 0, 2, 2]], size=None), "found negative index -1 for dim 0"),
    (lambda m: coo(m, size=(2, 2), check_invariants=True), "size is inconsistent with indices: for dim 1"),
    (lambda m: coo(m, size=(3, 3), check_invariants=True, is_coalesced=True),
     "cannot set is_coalesced to true if indices correspond to uncoalesced COO tensor"),
    (lambda m: coo(m, values=[1, 2, 3, 4], requires_grad=True),
     "Only Tensors of floating point and complex dtype can require gradients"),
])
def test_construction_errors(f, message):
    raises_like(f, RuntimeError, message)


def test_out_of_range_indices_raise_even_without_invariant_checks():
    # PyTorch skips this check by default and then reads out of bounds; distml indexes with them, so it checks.
    with pytest.raises(RuntimeError, match="size is inconsistent with indices: for dim 1, size is 2 but found index 2"):
        coo(distml, size=(2, 2))


def test_construction_options():
    for make in (lambda m: m.sparse_coo_tensor(INDICES, [1.0, 2, 3, 4], (2, 3), dtype=m.float64),
                 lambda m: m.sparse_coo_tensor(m.tensor(INDICES, dtype=m.int32), m.tensor(VALUES), [2, 3]),
                 lambda m: coo(m, size=(3, 3), is_coalesced=True),
                 lambda m: coo(m, size=(3, 3), device="cpu")):
        ours, theirs = make(distml), make(torch)
        same_repr(ours, theirs)
        assert ours.is_coalesced() == theirs.is_coalesced()


def test_dense_ops_on_a_sparse_tensor_raise():
    s = coo(distml)
    with pytest.raises(NotImplementedError, match="'SparseCPU' backend"):
        s.exp()
    with pytest.raises(NotImplementedError, match="'SparseCPU' backend"):
        distml.relu(s)
    raises_like(lambda m: coo(m).view(6), NotImplementedError, "Could not run 'aten::view' with arguments from "
                "the 'SparseCPU' backend.")
    raises_like(lambda m: coo(m).reshape(6), RuntimeError, "reshape is not implemented for sparse tensors")
    raises_like(lambda m: coo(m).numpy(), TypeError, "can't convert Sparse layout tensor to numpy.")
    with pytest.raises(NotImplementedError, match="register_hook on a sparse tensor"):
        coo(distml, requires_grad=True).register_hook(lambda g: g)


# ---- shape and arithmetic ----

@pytest.mark.parametrize("f", [
    lambda m, s, d: s.t(),
    lambda m, s, d: s.transpose(1, 0),
    lambda m, s, d: s.coalesce().T,
    lambda m, s, d: s * 2,
    lambda m, s, d: 2.5 * s,
    lambda m, s, d: s / 4,
    lambda m, s, d: -s,
    lambda m, s, d: s * m.tensor(3.0, dtype=m.float64),
    lambda m, s, d: s * d,
    lambda m, s, d: s * d[0],
    lambda m, s, d: s + s,
    lambda m, s, d: s.coalesce() + s.coalesce(),
    lambda m, s, d: s - s.t().t() * 2,
    lambda m, s, d: s.add(s, alpha=3),
    lambda m, s, d: d + s,
    lambda m, s, d: d - s,
    lambda m, s, d: s.long() * 2.5,
    lambda m, s, d: s + s.float(),
])
def test_shape_and_arithmetic(f):
    ours, theirs = f(distml, coo(distml, dtype=distml.float64), dense(distml, (2, 3))), \
        f(torch, coo(torch, dtype=torch.float64), dense(torch, (2, 3)))
    same(ours, theirs)
    if theirs.is_sparse and theirs.is_coalesced():
        assert ours.is_coalesced()


@pytest.mark.parametrize("f, exception, message", [
    (lambda m: coo(m) + m.ones(2, 3), RuntimeError, "add(sparse, dense) is not supported. Use add(dense, sparse)"),
    (lambda m: coo(m) - m.ones(2, 3), RuntimeError, "add(sparse, dense) is not supported. Use add(dense, sparse)"),
    (lambda m: coo(m) + coo(m, size=(2, 4)), RuntimeError, "add: expected sizes of 'self' and 'other' to match"),
    (lambda m: coo(m) / m.ones(2, 3), RuntimeError, "Sparse division requires a scalar or zero-dim dense tensor"),
    (lambda m: coo(m).sum(2), IndexError, "Dimension out of range (expected to be in range of [-2, 1], but got 2)"),
    (lambda m: m.sparse.sum(coo(m), (0, 0)), RuntimeError, "dim 0 appears multiple times in the list of dims"),
    (lambda m: coo(m).transpose(0, 2), IndexError, "Dimension out of range"),
])
def test_arithmetic_errors(f, exception, message):
    raises_like(f, exception, message)


@pytest.mark.parametrize("f", [
    lambda m, s: s.sum(),
    lambda m, s: s.sum(dtype=m.float32),
    lambda m, s: s.sum(0),
    lambda m, s: s.sum(dim=1),
    lambda m, s: s.sum(-1, keepdim=True),
    lambda m, s: s.sum((0, 1)),
    lambda m, s: s.sum((0, 1), keepdim=True),
    lambda m, s: m.sparse.sum(s),
    lambda m, s: m.sparse.sum(s, 1),
    lambda m, s: m.sparse.sum(s, (1, 0)),
])
def test_sum(f):
    same(f(distml, coo(distml, dtype=distml.float64)), f(torch, coo(torch, dtype=torch.float64)))


@pytest.mark.parametrize("dim", [None, 0, 2, (0, 1), (0, 2), (1, 2)])
def test_sum_of_a_hybrid_tensor(dim):
    def make(m):
        return m.sparse_coo_tensor(m.tensor(INDICES), m.arange(8.0, dtype=m.float64).reshape(4, 2), (2, 3, 2))
    same(distml.sparse.sum(make(distml), dim), torch.sparse.sum(make(torch), dim))


# ---- products ----

@pytest.mark.parametrize("f", [
    lambda m, s, d: m.sparse.mm(s, d),
    lambda m, s, d: m.sparse.mm(s.coalesce(), d),
    lambda m, s, d: s.mm(d),
    lambda m, s, d: s @ d,
    lambda m, s, d: s.matmul(d),
    lambda m, s, d: m.spmm(s, d),
    lambda m, s, d: s @ d[:, 0],
    lambda m, s, d: d.t() @ s.t(),
    lambda m, s, d: d[:, 1] @ s.t(),
    lambda m, s, d: m.sparse.mm(d.t(), s.t()),
    lambda m, s, d: m.sparse.mm(s, s.t()),
    lambda m, s, d: m.sparse.mm(s.t(), s),
    lambda m, s, d: m.smm(s, d),
    lambda m, s, d: m.sparse.addmm(d[:2], s, d),
    lambda m, s, d: m.sparse.addmm(d[:1], s, d, beta=2, alpha=0.5),
    lambda m, s, d: m.sparse.mm(d, d.t()),
    lambda m, s, d: m.spmm(d, d.t()),
])
def test_products(f):
    make_s = lambda m: coo(m, dtype=m.float64)  # noqa: E731
    same(f(distml, make_s(distml), dense(distml, (3, 2))), f(torch, make_s(torch), dense(torch, (3, 2))))


def test_a_row_without_entries_and_an_empty_tensor():
    for make in (lambda m: coo(m, [[0, 2], [1, 1]], [1.0, 2.0], (4, 3), dtype=m.float64),
                 lambda m: m.sparse_coo_tensor(m.zeros(2, 0, dtype=m.int64), m.zeros(0, dtype=m.float64), (4, 3))):
        same(distml.sparse.mm(make(distml), dense(distml, (3, 5))), torch.sparse.mm(make(torch), dense(torch, (3, 5))))
        same(make(distml).t() @ dense(distml, (4, 2)), make(torch).t() @ dense(torch, (4, 2)))


@pytest.mark.parametrize("f, exception, message", [
    (lambda m: m.sparse.mm(coo(m), m.ones(2, 2)), RuntimeError,
     "addmm: Argument #3 (dense): Expected dim 0 size 3, got 2"),
    (lambda m: coo(m) @ m.ones(2, 2), RuntimeError, "addmm: Argument #3 (dense): Expected dim 0 size 3, got 2"),
    (lambda m: m.ones(2, 4) @ coo(m), RuntimeError, "addmm: Argument #3 (dense): Expected dim 0 size 2, got 4"),
    (lambda m: m.ones(4) @ coo(m), RuntimeError, "addmm: Argument #3 (dense): Expected dim 0 size 2, got 4"),
    (lambda m: coo(m) @ m.ones(4), RuntimeError, "mv: expected self.size(-1) == vec.size(-1)"),
    (lambda m: m.sparse.mm(coo(m), m.ones(3, 2, dtype=m.float64)), RuntimeError,
     "expected scalar type Float but found Double"),
    (lambda m: m.ones(2, 2, dtype=m.float64) @ coo(m), RuntimeError, "expected scalar type Float but found Double"),
    (lambda m: m.sparse.mm(coo(m), m.ones(3, 2, 2)), RuntimeError, "addmm: matrices expected, got 3D tensor"),
    (lambda m: m.sparse.mm(coo(m), m.ones(3)), IndexError, "Dimension out of range"),
    (lambda m: coo(m) @ m.ones(3, 2, 2), RuntimeError, "expand is unsupported for Sparse tensors"),
    (lambda m: m.sparse.mm(coo(m), coo(m)), RuntimeError, "mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)"),
    (lambda m: m.sparse.mm(coo(m, dtype=m.float64), coo(m).t()), RuntimeError,
     "mat1 dtype Double does not match mat2 dtype Float"),
    (lambda m: m.sparse.mm(coo(m), m.ones(3, 2), reduce="sum"), NotImplementedError, ""),
])
def test_product_errors(f, exception, message):
    if exception is NotImplementedError:
        with pytest.raises(NotImplementedError, match="CSR"):
            f(distml)
        return
    raises_like(f, exception, message)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax(dim):
    same(distml.sparse.softmax(coo(distml, dtype=distml.float64), dim),
         torch.sparse.softmax(coo(torch, dtype=torch.float64), dim))


@pytest.mark.parametrize("dim", [0, 2])
def test_softmax_of_a_hybrid_tensor_and_dtype(dim):
    def make(m):
        return m.sparse_coo_tensor(m.tensor(INDICES), m.arange(8.0).reshape(4, 2), (2, 3, 2))
    ours, theirs = distml.sparse.softmax(make(distml), dim, dtype=distml.float64), \
        torch.sparse.softmax(make(torch), dim, dtype=torch.float64)
    same(ours, theirs)
    same_repr(ours, theirs)


# ---- gradients (float64) ----

def grads(m, f, sparse_leaf=False):
    """Run f(m, s, d) with the sparse operand's values and the dense operand requiring grad; the
    output (densified), and the gradients of the values (dense), the dense operand and, for a
    sparse leaf, of the leaf."""
    d = dense(m, (3, 2), requires_grad=True)
    if sparse_leaf:
        s = coo(m, dtype=m.float64, requires_grad=True)
        values = None
    else:
        values = m.tensor(VALUES, dtype=m.float64, requires_grad=True)
        s = coo(m, values=values)
    out = f(m, s, d)
    out = out.to_dense() if is_sparse(out) else out
    weight = dense(m, tuple(out.shape), seed=7)
    (out * weight).sum().backward()
    leaf_grad = s.grad.to_dense() if sparse_leaf and s.grad is not None else None
    return out, (values.grad if values is not None else leaf_grad), d.grad


GRADIENT_CASES = [
    lambda m, s, d: m.sparse.mm(s, d),
    lambda m, s, d: s @ d,
    lambda m, s, d: d.t() @ s.t(),
    lambda m, s, d: s.coalesce() @ d * 2,
    lambda m, s, d: m.sparse.addmm(d[:2], s, d, alpha=0.5),
    lambda m, s, d: s.to_dense() @ d,
    lambda m, s, d: (s * 3 + s).to_dense(),
    lambda m, s, d: (s * d.t()).to_dense(),
    lambda m, s, d: s.sum(),
    lambda m, s, d: m.sparse.sum(s, 0),
    lambda m, s, d: m.sparse.sum(s, 1, dtype=m.float64),
    lambda m, s, d: s.coalesce().values(),
    lambda m, s, d: m.sparse.softmax(s, 1),
    lambda m, s, d: m.sparse.mm(s, s.t()),
    lambda m, s, d: (d.t() + d.t().to_sparse() * 2).to_dense(),
]


def same_grads(ours, theirs):
    for a, b in zip(ours, theirs):
        if b is None:
            assert a is None
        else:
            same(a, b.to_dense() if b.is_sparse else b)  # PyTorch's gradient of d in `s * d` is sparse


@pytest.mark.parametrize("f", GRADIENT_CASES)
def test_gradients_reach_values_and_dense_operands(f):
    same_grads(grads(distml, f), grads(torch, f))


# A sparse leaf's gradient lives on its pattern (torch.sparse.mm's rule). PyTorch's torch.mm / @ / sum()
# on a grad-requiring sparse leaf fail inside PyTorch (cases 1, 2, 8), or, behind a coalesce, give
# the unmasked dense gradient (case 3), which distml does not.
@pytest.mark.parametrize("f", [case for i, case in enumerate(GRADIENT_CASES) if i not in (1, 2, 3, 8)])
def test_a_sparse_leaf_gets_a_sparse_gradient(f):
    same_grads(grads(distml, f, sparse_leaf=True), grads(torch, f, sparse_leaf=True))


def test_sparse_leaf_gradient_is_sparse_on_the_coalesced_indices():
    for m in (distml, torch):
        s = coo(m, dtype=m.float64, requires_grad=True)
        m.sparse.mm(s, dense(m, (3, 2))).sum().backward()
        if m is distml:
            ours = s.grad
        else:
            theirs = s.grad
    assert ours.is_sparse and ours.is_coalesced()
    same(ours, theirs)
    s.grad = None
    assert s.grad is None


def test_gcn_layer_matches_torch():
    """Two GCN layers (constant normalised adjacency, learnable weights and edge weights): the
    loss and every gradient as PyTorch's."""
    rng = np.random.default_rng(3)
    n, edges = 12, 30
    index = np.concatenate([rng.integers(0, n, (2, edges)), np.tile(np.arange(n), (2, 1))], axis=1)
    features, w1, w2 = rng.standard_normal((n, 5)), rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    edge_weights = rng.random(index.shape[1])

    def run(m):
        adj = m.sparse_coo_tensor(m.tensor(index), m.tensor(edge_weights), (n, n)).coalesce()
        params = [m.tensor(w, requires_grad=True) for w in (w1, w2)]
        learned = m.tensor(edge_weights, requires_grad=True)
        weighted = m.sparse_coo_tensor(m.tensor(index), learned, (n, n))
        h = m.relu(m.sparse.mm(adj, m.tensor(features) @ params[0]))
        out = weighted @ (h @ params[1])
        loss = m.nn.functional.cross_entropy(out, m.tensor(np.arange(n) % 3))
        loss.backward()
        return [loss] + [p.grad for p in params] + [learned.grad]

    for ours, theirs in zip(run(distml), run(torch)):
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_grad_fn_names_and_no_grad():
    for m in (distml, torch):
        values = m.tensor(VALUES, requires_grad=True)
        s = coo(m, values=values)
        assert "SparseCooTensorWithDimsAndTensorsBackward0" in repr(s)
        with m.no_grad():
            assert not m.sparse.mm(s, m.ones(3, 2)).requires_grad


def test_sparse_buffer_moves_with_the_module():
    class Graph(distml.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("adjacency", coo(distml).coalesce())
            self.linear = distml.nn.Linear(3, 2)

        def forward(self, x):
            return self.adjacency @ self.linear(x)

    model = Graph().double()
    assert model.adjacency.dtype is distml.float64 and model.adjacency.is_sparse
    assert tuple(model(distml.ones(3, 3, dtype=distml.float64)).shape) == (2, 2)


def test_top_level_mm_and_matmul_take_sparse_operands():
    for f in (lambda m, s, d: m.mm(s, d), lambda m, s, d: m.matmul(s, d), lambda m, s, d: m.mm(d.t(), s.t()),
              lambda m, s, d: m.matmul(d[:, 0], s.t())):
        same(f(distml, coo(distml, dtype=distml.float64), dense(distml, (3, 2))),
             f(torch, coo(torch, dtype=torch.float64), dense(torch, (3, 2))))


def test_top_level_addmm_takes_a_sparse_mat1():
    same(distml.addmm(dense(distml, (2, 2)), coo(distml, dtype=distml.float64), dense(distml, (3, 2)), beta=0.5, alpha=2),
         torch.addmm(dense(torch, (2, 2)), coo(torch, dtype=torch.float64), dense(torch, (3, 2)), beta=0.5, alpha=2))
