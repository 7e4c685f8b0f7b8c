"""distml.linalg against torch.linalg on the same float64 inputs: values, dtypes, gradients (batched
and unbatched), error types and messages; finite differences for a few; float32 kept as float32.

A case is f(m, *tensors) run with m = distml and m = torch. Gradients are of a weighted sum of the
float outputs, or of a given loss where the outputs are defined only up to sign (svd, eigh)."""
import math
import re

import numpy as np
import pytest
import torch

import distml
import distml.linalg


def _random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def _well_conditioned(shape, seed):
    """Square matrices: random plus a multiple of the identity."""
    n = shape[-1]
    return _random(shape, seed) + 2 * n ** 0.5 * np.eye(n)


def _spd(shape, seed):
    a = _random(shape, seed)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


def _symmetric(shape, seed):
    a = _random(shape, seed)
    return a + np.swapaxes(a, -1, -2)


def _floats(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _floats(o)]
    return [out] if out.dtype.is_floating_point and out.numel() else []


def weighted_sum(m, out):
    """A loss using every float output: sum of each output times fixed weights."""
    total = 0
    for t in _floats(out):
        weights = np.cos(np.arange(t.numel()) + 1.0).reshape(tuple(t.shape))
        total = total + (t * m.tensor(weights, dtype=t.dtype)).sum()
    return total


def assert_same(d, t, rtol=1e-7, atol=1e-9):
    """distml output d equals torch output t: same structure, shapes, dtypes and values."""
    if isinstance(t, (tuple, list)):
        assert isinstance(d, (tuple, list)) and len(d) == len(t)
        if hasattr(t, "_fields"):
            assert d._fields == t._fields
        for a, b in zip(d, t):
            assert_same(a, b, rtol, atol)
        return
    assert isinstance(d, distml.Tensor), type(d)
    assert tuple(d.shape) == tuple(t.shape), (d.shape, t.shape)
    assert d.dtype.name == str(t.dtype).replace("torch.", ""), (d.dtype, t.dtype)
    np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)


def compare(f, *arrays, loss=weighted_sum, values=None, grad=True, rtol=1e-7, atol=1e-9):
    """Run f on the arrays in both libraries; compare outputs (or `values(m, out)`) and the gradients of loss."""
    d_in = [distml.tensor(a, requires_grad=grad) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=grad) for a in arrays]
    d_out, t_out = f(distml, *d_in), f(torch, *t_in)
    if values is None:
        assert_same(d_out, t_out, rtol, atol)
    else:
        assert_same(values(distml, d_out), values(torch, t_out), rtol, atol)
    if grad:
        loss(distml, d_out).backward()
        loss(torch, t_out).backward()
        for d, t in zip(d_in, t_in):
            assert (d.grad is None) == (t.grad is None)
            if t.grad is not None:
                np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-8)
    return d_out


def raises_like(f, *arrays, dtype=np.float64):
    """f raises in distml what it raises in torch: the same exception type (or a subclass of
    RuntimeError where torch's is one) and the same message."""
    with pytest.raises(Exception) as t_error:
        f(torch, *[torch.tensor(np.asarray(a, dtype=dtype)) for a in arrays])
    with pytest.raises(Exception) as d_error:
        f(distml, *[distml.tensor(np.asarray(a, dtype=dtype)) for a in arrays])
    expected = t_error.type if t_error.type.__name__ != "_LinAlgError" else distml.linalg.LinAlgError
    if expected is NotImplementedError:
        expected = RuntimeError
    assert issubclass(d_error.type, expected), (d_error.type, t_error.type)
    assert str(d_error.value).split("\n")[0] == str(t_error.value).split("\n")[0]


# ---- norms ----

VECTOR_ORDS = [2, 1, math.inf, -math.inf, 3, 0.5, -1, 0]


@pytest.mark.parametrize("ord", VECTOR_ORDS)
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), ((0, 2), True), (-1, True)])
def test_vector_norm(ord, dim, keepdim):
    compare(lambda m, x: m.linalg.vector_norm(x, ord, dim, keepdim), _random((2, 3, 4), 1), grad=ord != 0)


@pytest.mark.parametrize("ord", [2, 1, math.inf, 3, 0.5, -1])
def test_vector_norm_gradient_where_elements_or_norm_are_zero(ord):
    compare(lambda m, x: m.linalg.vector_norm(x, ord), np.zeros(3))
    compare(lambda m, x: m.linalg.vector_norm(x, ord), np.array([0.0, 1.0, -1.0, 0.5]))


def test_vector_norm_dtype_argument():
    compare(lambda m, x: m.linalg.vector_norm(x.float(), dtype=m.float64), _random((3,), 0))
    for f in [lambda m, x: m.linalg.vector_norm(x.long()),
              lambda m, x: m.linalg.vector_norm(x, dtype=m.float32),
              lambda m, x: m.linalg.vector_norm(x, dtype=m.int64),
              lambda m, x: m.linalg.vector_norm(x[:0], math.inf),
              lambda m, x: m.linalg.vector_norm(x[:0], -1.5),
              lambda m, x: m.linalg.vector_norm(x, dim=(0, 0))]:
        raises_like(f, _random((3,), 0))


MATRIX_ORDS = ["fro", "nuc", math.inf, -math.inf, 1, -1, 2, -2]


@pytest.mark.parametrize("ord", MATRIX_ORDS)
def test_matrix_norm(ord):
    compare(lambda m, x: m.linalg.matrix_norm(x, ord), _random((3, 4), 2))
    compare(lambda m, x: m.linalg.matrix_norm(x, ord, dim=(2, 0), keepdim=True), _random((3, 2, 4), 3))
    compare(lambda m, x: m.linalg.matrix_norm(x, ord, dim=(0, -1)), _random((3, 2, 4), 4))


def test_matrix_norm_errors():
    x = _random((3, 3, 3), 0)
    for f in [lambda m, x: m.linalg.matrix_norm(x[0, 0]), lambda m, x: m.linalg.matrix_norm(x, 3),
              lambda m, x: m.linalg.matrix_norm(x, "abc"), lambda m, x: m.linalg.matrix_norm(x, dim=(0,)),
              lambda m, x: m.linalg.matrix_norm(x, dim=(0, 1, 2)), lambda m, x: m.linalg.matrix_norm(x, dim=(1, 1)),
              lambda m, x: m.linalg.matrix_norm(x.long()), lambda m, x: m.linalg.matrix_norm(x.half(), "nuc")]:
        raises_like(f, x)


@pytest.mark.parametrize("case", [
    lambda m, x: m.linalg.norm(x),
    lambda m, x: m.linalg.norm(x[0, 0]),
    lambda m, x: m.linalg.norm(x[0], math.inf),
    lambda m, x: m.linalg.norm(x[0], "nuc"),
    lambda m, x: m.linalg.norm(x[0, 0], 3),
    lambda m, x: m.linalg.norm(x, 1, 1),
    lambda m, x: m.linalg.norm(x, -2, (0, 2), True),
    lambda m, x: m.linalg.norm(x, "fro", (1, 2)),
    lambda m, x: m.linalg.norm(x, dim=(1, 2)),
])
def test_norm(case):
    compare(case, _random((2, 3, 4), 5))


def test_norm_errors():
    x = _random((2, 3, 4), 0)
    for f in [lambda m, x: m.linalg.norm(x, 2), lambda m, x: m.linalg.norm(x, dim=(0, 1, 2)),
              lambda m, x: m.linalg.norm(x[0, 0], "fro")]:
        raises_like(f, x)


# ---- inverses, determinants, solvers ----

@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (1, 1)])
def test_inv(shape):
    compare(lambda m, a: m.linalg.inv(a), _well_conditioned(shape, 6))
    compare(lambda m, a: (m.inverse(a), a.inverse()), _well_conditioned(shape, 7))
    compare(lambda m, a: m.linalg.inv_ex(a), _well_conditioned(shape, 8))


SINGULAR = np.array([[1.0, 2, 3], [2, 4, 6], [1, 1, 1]])


def test_inv_errors():
    square = _well_conditioned((3, 3), 0)
    raises_like(lambda m, a: m.linalg.inv(a), _random((3, 4), 0))
    raises_like(lambda m, a: m.linalg.inv(a), _random((3,), 0))
    raises_like(lambda m, a: m.linalg.inv(a), np.eye(3), dtype=np.int64)
    raises_like(lambda m, a: m.linalg.inv(a.half()), np.eye(3))
    raises_like(lambda m, a: m.inverse(a), SINGULAR)
    raises_like(lambda m, a: m.linalg.inv(a), np.stack([square, SINGULAR]))
    raises_like(lambda m, a: m.linalg.inv_ex(a, check_errors=True), np.stack([square, SINGULAR]))
    assert issubclass(distml.linalg.LinAlgError, RuntimeError)


def test_inv_ex_reports_the_singular_matrix():
    a = np.stack([_well_conditioned((3, 3), 0), SINGULAR, np.zeros((3, 3))])
    d, t = distml.linalg.inv_ex(distml.tensor(a)), torch.linalg.inv_ex(torch.tensor(a))
    assert_same(d.info, t.info)
    assert_same(d.inverse[0], t.inverse[0])


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 3), (1, 1)])
def test_det_slogdet_logdet(shape):
    a = _random(shape, 9) + np.eye(shape[-1])
    compare(lambda m, a: (m.linalg.det(a), m.det(a), a.det()), a)
    compare(lambda m, a: (m.linalg.slogdet(a), m.slogdet(a), a.slogdet()), a)
    positive = _spd(shape, 10)
    compare(lambda m, a: (m.logdet(a), a.logdet()), positive)
    compare(lambda m, a: m.logdet(a), -positive if shape[-1] % 2 else positive, grad=False)


def test_det_of_singular_matrix_has_the_cofactor_gradient():
    # PyTorch returns zeros here; the derivative of det is the transposed adjugate, finite at singular A.
    a = distml.tensor(np.array([[1.0, 2], [2, 4]]), requires_grad=True)
    distml.linalg.det(a).backward()
    np.testing.assert_allclose(a.grad.numpy(), [[4, -2], [-2, 1]], atol=1e-12)
    a = distml.tensor(SINGULAR, requires_grad=True)
    assert distml.autograd.gradcheck(distml.linalg.det, (a,))


def test_logdet_and_slogdet_of_singular_matrix():
    # Elimination is exact on this one, so every LU finds the zero pivot (on SINGULAR, torch's LU
    # leaves a rounding error of 1e-16 on some CPUs and not on others).
    exact = np.array([[1.0, 2], [2, 4]])
    d, t = distml.linalg.slogdet(distml.tensor(exact)), torch.linalg.slogdet(torch.tensor(exact))
    assert_same(d.logabsdet, t.logabsdet)
    assert d.sign.item() == 0
    assert distml.logdet(distml.tensor(exact)).item() == -math.inf


def test_det_errors():
    for f in [lambda m, a: m.linalg.det(a), lambda m, a: m.linalg.slogdet(a), lambda m, a: m.logdet(a)]:
        raises_like(f, _random((3, 4), 0))
        raises_like(f, _random((3,), 0))
        raises_like(f, np.eye(3), dtype=np.int64)


@pytest.mark.parametrize("a_shape,b_shape", [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3)),
                                             ((2, 3, 3), (3,)), ((2, 1, 3, 3), (5, 3, 2)), ((3, 3), (4, 3, 1))])
def test_solve(a_shape, b_shape):
    compare(lambda m, a, b: m.linalg.solve(a, b), _well_conditioned(a_shape, 11), _random(b_shape, 12))


@pytest.mark.parametrize("a_shape,b_shape", [((3, 3), (2, 3)), ((2, 3, 3), (4, 1, 5, 3))])
def test_solve_right(a_shape, b_shape):
    compare(lambda m, a, b: m.linalg.solve(a, b, left=False), _well_conditioned(a_shape, 13), _random(b_shape, 14))


def test_solve_errors():
    a = _well_conditioned((3, 3), 0)
    raises_like(lambda m, a, b: m.linalg.solve(a, b), _random((3, 4), 0), _random(3, 0))
    raises_like(lambda m, a, b: m.linalg.solve(a, b), a, _random(4, 0))
    raises_like(lambda m, a, b: m.linalg.solve(a, b), a, _random((4, 2), 0))
    raises_like(lambda m, a, b: m.linalg.solve(a, b, left=False), a, _random((3, 2), 0))
    raises_like(lambda m, a, b: m.linalg.solve(a, b), np.stack([a, a]), _random((4, 3, 1), 0))
    raises_like(lambda m, a, b: m.linalg.solve(a, b.float()), a, _random(3, 0))
    raises_like(lambda m, a, b: m.linalg.solve(a, b), SINGULAR, _random(3, 0))
    raises_like(lambda m, a, b: m.linalg.solve(a, b), np.stack([a, SINGULAR]), _random(3, 0))
    raises_like(lambda m, a, b: m.linalg.solve(a, b), np.eye(3), np.ones(3), dtype=np.int64)


@pytest.mark.parametrize("upper,left,unitriangular", [(True, True, False), (False, True, False), (True, False, False),
                                                      (False, False, True), (True, True, True)])
def test_solve_triangular(upper, left, unitriangular):
    a = _well_conditioned((2, 1, 4, 4), 15)
    b = _random((3, 4, 2) if left else (3, 2, 4), 16)
    compare(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=upper, left=left, unitriangular=unitriangular),
            a, b)


def test_solve_triangular_singular_and_errors():
    compare(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True), np.zeros((3, 3)), np.ones((3, 1)),
            grad=False)
    a = _well_conditioned((3, 3), 0)
    raises_like(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True), a, np.ones(3))
    raises_like(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True), _random((3, 4), 0), np.ones((3, 2)))
    raises_like(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True), a, np.ones((4, 2)))
    raises_like(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True, left=False), a, np.ones((3, 2)))


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3), (1, 1)])
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky(shape, upper):
    compare(lambda m, a: m.linalg.cholesky(a, upper=upper), _spd(shape, 17))
    compare(lambda m, a: m.linalg.cholesky_ex(a, upper=upper), _spd(shape, 18))
    compare(lambda m, a: (m.cholesky(a, upper), a.cholesky(upper)), _spd(shape, 19))


def test_cholesky_reads_one_triangle():
    spd = _spd((3, 3), 20)
    compare(lambda m, a: m.linalg.cholesky(a), np.tril(spd) + np.triu(np.ones((3, 3)), 1), grad=False)
    compare(lambda m, a: m.linalg.cholesky(a, upper=True), np.triu(spd) + np.tril(np.ones((3, 3)), -1), grad=False)


def test_cholesky_errors():
    spd = _spd((3, 3), 0)
    not_pd = np.array([[1.0, 2], [2, 1]])
    raises_like(lambda m, a: m.linalg.cholesky(a), not_pd)
    raises_like(lambda m, a: m.linalg.cholesky(a), np.stack([spd, -spd]))
    raises_like(lambda m, a: m.cholesky(a), -spd)
    raises_like(lambda m, a: m.linalg.cholesky_ex(a, check_errors=True), -spd)
    raises_like(lambda m, a: m.linalg.cholesky(a), _random((3, 4), 0))
    raises_like(lambda m, a: m.linalg.cholesky(a), _random(3, 0))
    compare(lambda m, a: m.linalg.cholesky_ex(a), not_pd, grad=False)
    d = distml.linalg.cholesky_ex(distml.tensor(np.stack([spd, -spd, spd])))
    assert d.info.tolist() == [0, 1, 0]


# ---- decompositions ----

@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (3, 5), (2, 5, 3), (2, 3, 4)])
@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
def test_qr(shape, mode):
    differentiable = mode == "reduced" or (mode == "complete" and shape[-2] <= shape[-1])
    compare(lambda m, a: m.linalg.qr(a, mode), _random(shape, 21), grad=differentiable)


def test_qr_legacy_and_method():
    compare(lambda m, a: (m.qr(a), a.qr(some=False)), _random((3, 4), 22))


def test_qr_errors():
    raises_like(lambda m, a: m.linalg.qr(a, "foo"), _random((3, 3), 0))
    raises_like(lambda m, a: m.linalg.qr(a), _random(3, 0))
    for mode in ["r", "complete"]:
        d, t = distml.tensor(_random((4, 3), 0), requires_grad=True), torch.tensor(_random((4, 3), 0),
                                                                                  requires_grad=True)
        with pytest.raises(RuntimeError) as t_error:
            torch.linalg.qr(t, mode).R.sum().backward()
        with pytest.raises(RuntimeError, match=re.escape(str(t_error.value))):
            distml.linalg.qr(d, mode).R.sum().backward()


def _sign_free(m, out):
    """The first k = len(S) left singular vectors with their signs fixed (first row positive), and S."""
    u, s, _ = out
    k = s.shape[-1]
    return u[..., :k] * m.sign(u[..., :1, :k]), s


def _svd_loss(m, out):
    """A loss invariant to the singular vectors' signs (PyTorch's gauge): squares of U and Vh, and S."""
    u, s, vh = out
    return weighted_sum(m, [u * u, s, vh * vh])


@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (3, 5), (2, 5, 3), (2, 3, 4)])
@pytest.mark.parametrize("full_matrices", [False, True])
def test_svd(shape, full_matrices):
    compare(lambda m, a: m.linalg.svd(a, full_matrices), _random(shape, 23), loss=_svd_loss,
            values=lambda m, out: (_sign_free(m, out), (out.U[..., :out.S.shape[-1]] * out.S[..., None, :])
                                   @ out.Vh[..., :out.S.shape[-1], :]))
    compare(lambda m, a: m.linalg.svdvals(a), _random(shape, 24))


def test_svdvals_with_repeated_singular_values_has_a_gradient():
    compare(lambda m, a: m.linalg.svdvals(a), np.eye(3))


@pytest.mark.parametrize("some", [True, False])
def test_legacy_svd_returns_v(some):
    def values(m, out):
        u, s, v = out
        k = s.shape[-1]
        return u[..., :k].abs(), s, v[..., :k].abs(), (u[..., :k] * s[..., None, :]) @ v[..., :k].transpose(-1, -2)
    compare(lambda m, a: m.svd(a, some), _random((4, 3), 25), values=values,
            loss=lambda m, out: weighted_sum(m, [out.U * out.U, out.S, out.V * out.V]))
    compare(lambda m, a: a.svd(compute_uv=False), _random((3, 4), 26))


def _eigh_loss(m, out):
    w, v = out
    return weighted_sum(m, [w, v * v])


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3)])
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh(shape, uplo):
    a = _random(shape, 27)  # not symmetric: only the UPLO triangle is read
    compare(lambda m, a: m.linalg.eigh(a, uplo), a, loss=_eigh_loss,
            values=lambda m, out: (out.eigenvalues, out.eigenvectors.abs()))
    compare(lambda m, a: m.linalg.eigvalsh(a, UPLO=uplo), _symmetric(shape, 28))


def test_eigh_errors():
    raises_like(lambda m, a: m.linalg.eigh(a, "X"), _random((3, 3), 0))
    raises_like(lambda m, a: m.linalg.eigh(a), _random((3, 4), 0))
    raises_like(lambda m, a: m.linalg.eigvalsh(a), _random(3, 0))


# ---- pseudo-inverse, rank, least squares ----

@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 3, 5)])
def test_pinv(shape):
    compare(lambda m, a: m.linalg.pinv(a), _random(shape, 29))
    compare(lambda m, a: (m.pinverse(a), a.pinverse()), _random(shape, 30))


def test_pinv_hermitian_and_tolerances():
    compare(lambda m, a: m.linalg.pinv(a, hermitian=True), _symmetric((2, 4, 4), 31))
    diagonal = np.diag([1.0, 0.1, 0.01])
    for f in [lambda m, a: m.linalg.pinv(a, atol=0.05), lambda m, a: m.linalg.pinv(a, atol=0.05, rtol=0.2),
              lambda m, a: m.linalg.pinv(a, rtol=0.05), lambda m, a: m.linalg.pinv(-a, atol=0.05, hermitian=True),
              lambda m, a: m.linalg.pinv(a.expand(2, 3, 3), atol=m.tensor([0.05, 0.5], dtype=m.float64)),
              lambda m, a: m.pinverse(a, rcond=0.05)]:
        compare(f, diagonal, grad=False)
    compare(lambda m, a: m.linalg.pinv(a), np.ones((3, 2)))  # rank deficient


def test_pinv_errors():
    raises_like(lambda m, a: m.linalg.pinv(a), _random(3, 0))
    raises_like(lambda m, a: m.linalg.pinv(a), np.eye(3), dtype=np.int64)


@pytest.mark.parametrize("f", [
    lambda m, a: m.linalg.matrix_rank(a),
    lambda m, a: m.linalg.matrix_rank(a[..., :2]),
    lambda m, a: m.linalg.matrix_rank(a * m.tensor([1.0, 0.1, 0.01], dtype=m.float64), atol=0.05, rtol=0.5),
    lambda m, a: m.linalg.matrix_rank(a * m.tensor([1.0, 0.1, 0.01], dtype=m.float64), rtol=0.05),
    lambda m, a: m.linalg.matrix_rank(a.transpose(-1, -2) @ a, hermitian=True),
    lambda m, a: m.linalg.matrix_rank(m.ones(3, 3, dtype=m.float64), tol=0.5),
    lambda m, a: m.linalg.matrix_rank(m.zeros(0, 0, dtype=m.float64)),
])
def test_matrix_rank(f):
    compare(f, _random((2, 4, 3), 32) @ np.diag([1.0, 1.0, 1e-20]), grad=False)


@pytest.mark.parametrize("driver", [None, "gels", "gelsy", "gelsd", "gelss"])
@pytest.mark.parametrize("a_shape,b_shape", [((5, 3), (5, 2)), ((5, 3), (5,)), ((2, 5, 3), (2, 5, 2)),
                                             ((2, 5, 3), (2, 5)), ((3, 5), (3, 2)), ((4, 4), (4, 1))])
def test_lstsq(driver, a_shape, b_shape):
    wide = a_shape[-2] < a_shape[-1]
    if driver == "gels" and wide:
        pytest.skip("gels solves full-rank tall or square systems only")
    compare(lambda m, a, b: m.linalg.lstsq(a, b, driver=driver), _random(a_shape, 33), _random(b_shape, 34),
            loss=lambda m, out: weighted_sum(m, out.solution))


def test_lstsq_rank_deficient_and_errors():
    compare(lambda m, a, b: m.linalg.lstsq(a, b), np.ones((4, 3)), _random((4, 1), 35),
            loss=lambda m, out: weighted_sum(m, out.solution))
    compare(lambda m, a, b: m.linalg.lstsq(a, b, rcond=1e-2, driver="gelsd"), np.diag([1.0, 1e-3, 1]),
            np.ones((3, 1)), grad=False)
    a = _random((3, 3), 0)
    raises_like(lambda m, a, b: m.linalg.lstsq(a, b, driver="foo"), a, a)
    raises_like(lambda m, a, b: m.linalg.lstsq(a, b), a, _random((4, 2), 0))
    raises_like(lambda m, a, b: m.linalg.lstsq(a, b), a[0], a[0])
    raises_like(lambda m, a, b: m.linalg.lstsq(a, b.float()), a, a)


# ---- products ----

@pytest.mark.parametrize("n", [-3, -1, 0, 1, 2, 3, 6])
def test_matrix_power(n):
    compare(lambda m, a: (m.linalg.matrix_power(a, n), m.matrix_power(a, n), a.matrix_power(n)),
            _well_conditioned((2, 3, 3), 36) / 3, grad=n != 0)


def test_matrix_power_integers_and_errors():
    d = distml.linalg.matrix_power(distml.ones(2, 2, dtype=distml.int64), 3)
    assert d.dtype == distml.int64 and d.tolist() == [[4, 4], [4, 4]]
    raises_like(lambda m, a: m.linalg.matrix_power(a, 2), _random((3, 4), 0))
    raises_like(lambda m, a: m.linalg.matrix_power(a, 2), _random(3, 0))
    raises_like(lambda m, a: m.linalg.matrix_power(a, -1), np.eye(2), dtype=np.int64)
    raises_like(lambda m, a: m.linalg.matrix_power(a, 1.5), np.eye(2))
    raises_like(lambda m, a: m.linalg.matrix_power(a, -1), np.zeros((2, 2)))


@pytest.mark.parametrize("a_shape,b_shape,dim", [((3,), (3,), -1), ((2, 3), (2, 3), -1), ((3, 4), (3, 4), 0),
                                                 ((2, 1, 3), (1, 4, 3), -1)])
def test_cross(a_shape, b_shape, dim):
    compare(lambda m, a, b: m.linalg.cross(a, b, dim=dim), _random(a_shape, 37), _random(b_shape, 38))


def test_cross_errors():
    raises_like(lambda m, a, b: m.linalg.cross(a, b), _random((2, 4), 0), _random((2, 4), 1))
    raises_like(lambda m, a, b: m.linalg.cross(a, b), _random((2, 1, 3), 0), _random((5, 3), 1))
    raises_like(lambda m, a, b: m.linalg.cross(a, b.float()), _random(3, 0), _random(3, 1))
    raises_like(lambda m, a, b: m.linalg.cross(a, b), _random((3, 3), 0), _random((2, 3), 1))


@pytest.mark.parametrize("shapes", [[(2, 3), (3, 4)], [(3,), (3, 4), (4, 5), (5,)], [(2, 30), (30, 3), (3, 40)],
                                    [(3,), (3,)], [(6, 2), (2, 5), (5, 1), (1, 4)]])
def test_multi_dot(shapes):
    arrays = [_random(s, 39 + i) for i, s in enumerate(shapes)]
    compare(lambda m, *ts: m.linalg.multi_dot(ts), *arrays)


def test_multi_dot_errors():
    a = _random((2, 2), 0)
    with pytest.raises(RuntimeError, match=re.escape("multi_dot(): expected at least 2 tensors but got 1")):
        distml.linalg.multi_dot([distml.tensor(a)])
    raises_like(lambda m, a, b: m.linalg.multi_dot([a, b]), a, _random((2, 2, 2), 0))
    raises_like(lambda m, a, b: m.linalg.multi_dot([b, a]), a, _random((2, 2, 2), 0))
    raises_like(lambda m, a, b: m.linalg.multi_dot([a, b, a]), a, _random(2, 0))
    raises_like(lambda m, a, b: m.linalg.multi_dot([a, b]), _random((2, 3), 0), a)
    raises_like(lambda m, a, b: m.linalg.multi_dot([a, b.float()]), a, a)


def test_vecdot_matmul_diagonal():
    compare(lambda m, x, y: m.linalg.vecdot(x, y), _random((2, 3), 40), _random(3, 41))
    compare(lambda m, x, y: m.linalg.vecdot(x, y, dim=0), _random((2, 3), 42), _random((2, 3), 43))
    compare(lambda m, a, b: m.linalg.matmul(a, b), _random((2, 3, 4), 44), _random((4, 2), 45))
    for offset, dim1, dim2 in [(0, -2, -1), (1, -2, -1), (-2, 0, 2), (0, 2, 0)]:
        compare(lambda m, a: m.linalg.diagonal(a, offset=offset, dim1=dim1, dim2=dim2), _random((3, 4, 5), 46))
    compare(lambda m, a: m.linalg.diagonal(a, offset=5, dim1=0), _random((3, 4, 5), 46), grad=False)
    raises_like(lambda m, x, y: m.linalg.vecdot(x, y), _random((2, 3), 0), _random(4, 0))
    raises_like(lambda m, x, y: m.linalg.vecdot(x, y.float()), _random(3, 0), _random(3, 0))
    raises_like(lambda m, x, y: m.linalg.vecdot(x, y), np.ones(3), np.ones(3), dtype=np.int64)
    raises_like(lambda m, a: m.linalg.diagonal(a), _random(3, 0))
    raises_like(lambda m, a: m.linalg.diagonal(a, dim1=0, dim2=-2), _random((3, 3), 0))


# ---- LU ----

@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3), (5, 3), (3, 5), (2, 4, 2)])
def test_lu_factor_and_lu(shape):
    a = _random(shape, 47)
    compare(lambda m, a: m.linalg.lu_factor(a), a)
    compare(lambda m, a: m.linalg.lu_factor_ex(a), a)
    compare(lambda m, a: m.linalg.lu(a), a)


@pytest.mark.parametrize("left,adjoint", [(True, False), (True, True), (False, False), (False, True)])
def test_lu_solve(left, adjoint):
    b = _random((2, 4, 2) if left else (2, 2, 4), 49)
    compare(lambda m, a, b: m.linalg.lu_solve(*m.linalg.lu_factor(a), b, left=left, adjoint=adjoint),
            _random((4, 4), 48), b)


def test_lu_errors():
    singular = np.array([[1.0, 2], [2, 4]])
    raises_like(lambda m, a: m.linalg.lu_factor(a), singular)
    raises_like(lambda m, a: m.linalg.lu_factor(a), np.stack([np.eye(2), singular]))
    raises_like(lambda m, a: m.linalg.lu_factor_ex(a, check_errors=True), np.stack([singular, singular]))
    raises_like(lambda m, a: m.linalg.lu(a, pivot=False), _random((3, 3), 0))
    raises_like(lambda m, a: m.linalg.lu(a), _random(3, 0))
    raises_like(lambda m, a: m.linalg.lu_factor_ex(a), _random(3, 0))
    raises_like(lambda m, a: m.linalg.lu_solve(a, a[0].long(), a), np.eye(2))
    compare(lambda m, a: m.linalg.lu_factor_ex(a), np.stack([singular, np.zeros((2, 2))]), grad=False)
    raises_like(lambda m, a: m.linalg.lu_factor(a, pivot=False), _random((3, 3), 0))
    lu = distml.linalg.lu_factor(distml.tensor(_random((3, 3), 0)))
    with pytest.raises(RuntimeError, match=re.escape("linalg.lu_solve: Incompatible shapes of A and B for the "
                                                     "equation AX = B (3x3 and 4x2)")):
        distml.linalg.lu_solve(*lu, distml.tensor(_random((4, 2), 0)))
    compare(lambda m, a: m.linalg.lu(a), np.zeros((2, 2)), grad=False)


# ---- finite differences, float32 ----

GRADCHECK = [
    ("inv", lambda a: distml.linalg.inv(a), _well_conditioned((2, 3, 3), 50)),
    ("slogdet", lambda a: distml.linalg.slogdet(a).logabsdet, _random((3, 3), 51)),
    ("solve_triangular", lambda a: distml.linalg.solve_triangular(a, a[..., :2], upper=False),
     _well_conditioned((3, 3), 52)),
    ("cholesky", lambda a: distml.linalg.cholesky(a @ a.mT + distml.eye(3, dtype=distml.float64)),
     _random((3, 3), 53)),
    ("qr_wide", lambda a: distml.linalg.qr(a), _random((3, 5), 54)),
    ("svd", lambda a: _svd_loss(distml, distml.linalg.svd(a, full_matrices=False)), _random((4, 3), 55)),
    # eigh reads one triangle, and its gradient (PyTorch's) is for symmetric changes: perturb symmetrically
    ("eigh", lambda a: _eigh_loss(distml, distml.linalg.eigh(a + a.mT)), _random((3, 3), 56)),
    ("pinv_wide", lambda a: distml.linalg.pinv(a), _random((2, 4), 57)),
    ("lu_tall", lambda a: distml.linalg.lu(a)[1:], _random((4, 3), 58)),
    ("lu_wide", lambda a: distml.linalg.lu(a)[1:], _random((3, 4), 59)),
    ("lu_solve", lambda a: distml.linalg.lu_solve(*distml.linalg.lu_factor(a), a, adjoint=True),
     _random((3, 3), 60)),
    ("matrix_norm_nuc", lambda a: distml.linalg.matrix_norm(a, "nuc"), _random((3, 4), 61)),
]


@pytest.mark.parametrize("name,f,array", GRADCHECK, ids=[c[0] for c in GRADCHECK])
def test_gradcheck(name, f, array):
    assert distml.autograd.gradcheck(f, (distml.tensor(array, requires_grad=True),))


@pytest.mark.parametrize("f", [
    lambda m, a: m.linalg.inv(a), lambda m, a: m.linalg.det(a), lambda m, a: m.linalg.slogdet(a),
    lambda m, a: m.linalg.cholesky(a), lambda m, a: m.linalg.qr(a), lambda m, a: m.linalg.svdvals(a),
    lambda m, a: m.linalg.eigvalsh(a), lambda m, a: m.linalg.pinv(a), lambda m, a: m.linalg.solve(a, a[0]),
    lambda m, a: m.linalg.norm(a), lambda m, a: m.linalg.matrix_norm(a, 2), lambda m, a: m.linalg.lu_factor(a),
    lambda m, a: m.linalg.solve_triangular(a, a, upper=True), lambda m, a: m.linalg.matrix_power(a, -2),
])
def test_float32_stays_float32(f):
    a = _spd((2, 3, 3), 62).astype(np.float32)
    compare(f, a, rtol=1e-4, atol=1e-5, grad=False)


@pytest.mark.skipif(not hasattr(distml, "complex128"), reason="distml without complex dtypes")
def test_complex_inputs_are_refused():
    a = distml.tensor(np.eye(2, dtype=np.complex128))
    with pytest.raises(NotImplementedError, match="linalg.inv: complex inputs are not supported"):
        distml.linalg.inv(a)


@pytest.mark.parametrize("shape", [(0, 0), (2, 0, 0), (0, 3, 3), (3, 0)])
def test_empty_matrices(shape):
    e = np.zeros(shape)
    compare(lambda m, a: m.linalg.lu(a), e, grad=False)
    if shape[-1] == shape[-2]:
        compare(lambda m, a: (m.linalg.inv(a), m.linalg.det(a), m.linalg.slogdet(a), m.linalg.solve(a, a)), e,
                grad=False)


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("batch", [(), (2,)])
def test_cholesky_solve_and_inverse_match_torch(upper, batch):
    rng = np.random.default_rng(3)
    M = rng.standard_normal(batch + (3, 3))
    A = M @ np.swapaxes(M, -1, -2) + 3 * np.eye(3)
    B = rng.standard_normal(batch + (3, 2))

    def run(lib):
        factor = lib.linalg.cholesky(lib.tensor(A), upper=upper).detach().requires_grad_()
        rhs = lib.tensor(B, requires_grad=True)
        X, inverse = lib.cholesky_solve(rhs, factor, upper), lib.cholesky_inverse(factor, upper)
        ((X * X).sum() + (inverse * lib.arange(9.0, dtype=lib.float64).reshape(3, 3)).sum()).backward()
        return X, inverse, rhs.grad, factor.grad
    for ours, theirs in zip(run(distml), run(torch)):
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-9, atol=1e-12)
    for lib in (distml, torch):
        with pytest.raises(RuntimeError, match="Expected b and A to have the same dtype"):
            lib.cholesky_solve(lib.ones(3, 1), lib.eye(3, dtype=lib.float64))
