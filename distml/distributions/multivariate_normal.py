"""MultivariateNormal(loc, covariance_matrix | precision_matrix | scale_tril)."""
import math

import distml
from distml.distributions import constraints
from distml.distributions.distribution import Distribution
from distml.distributions.utils import _standard_normal, lazy_property
from distml.linalg import cholesky, diagonal, solve_triangular
from distml.ops._util import broadcast_shapes

__all__ = ["MultivariateNormal"]


def _batch_mv(bmat, bvec):
    """Matrix-vector products over broadcasting batch dimensions."""
    return distml.matmul(bmat, bvec.unsqueeze(-1)).squeeze(-1)


def _solve_lower(L, B):
    return solve_triangular(L, B, upper=False)


def _batch_mahalanobis(bL, bx):
    """x^T (L L^T)^-1 x for a factor L, batch dimensions broadcasting."""
    return _solve_lower(bL, bx.unsqueeze(-1)).pow(2).sum((-2, -1))


def _precision_to_scale_tril(P):
    """The lower Cholesky factor of P^-1, via the Cholesky factor of P with rows and columns reversed."""
    Lf = cholesky(distml.flip(P, (-2, -1)))
    L_inv = distml.flip(Lf, (-2, -1)).transpose(-2, -1)
    return _solve_lower(L_inv, distml.eye(P.shape[-1], dtype=P.dtype, device=P.device))


class MultivariateNormal(Distribution):
    """The normal distribution over vectors with mean `loc` and one of `covariance_matrix`,
    `precision_matrix`, or `scale_tril` (the lower Cholesky factor of the covariance, used for
    everything inside): `MultivariateNormal(torch.zeros(2), torch.eye(2)).rsample()`."""

    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        if loc.ndim < 1:
            raise ValueError("loc must be at least one-dimensional.")
        given = {"scale_tril": scale_tril, "covariance_matrix": covariance_matrix, "precision_matrix": precision_matrix}
        given = {name: matrix for name, matrix in given.items() if matrix is not None}
        if len(given) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or scale_tril may be specified.")
        ((name, matrix),) = given.items()
        if matrix.ndim < 2:
            raise ValueError(f"{'scale_tril matrix' if name == 'scale_tril' else name} must be at least "
                             "two-dimensional, with optional leading batch dimensions")
        batch_shape = broadcast_shapes(tuple(matrix.shape[:-2]), tuple(loc.shape[:-1]))
        setattr(self, name, matrix.expand(*batch_shape, -1, -1))
        self.loc = loc.expand(*batch_shape, -1)
        super().__init__(batch_shape, self.loc.shape[-1:], validate_args=validate_args)
        if name == "scale_tril":
            self._unbroadcasted_scale_tril = matrix
        elif name == "covariance_matrix":
            self._unbroadcasted_scale_tril = cholesky(matrix)
        else:
            self._unbroadcasted_scale_tril = _precision_to_scale_tril(matrix)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new._unbroadcasted_scale_tril = self._unbroadcasted_scale_tril
        return new

    def _matrix_shape(self):
        return tuple(self._batch_shape) + tuple(self._event_shape) * 2

    @lazy_property
    def scale_tril(self):
        return self._unbroadcasted_scale_tril.expand(*self._matrix_shape())

    @lazy_property
    def covariance_matrix(self):
        L = self._unbroadcasted_scale_tril
        return distml.matmul(L, L.transpose(-2, -1)).expand(*self._matrix_shape())

    @lazy_property
    def precision_matrix(self):
        L = self._unbroadcasted_scale_tril
        L_inv = _solve_lower(L, distml.eye(L.shape[-1], dtype=L.dtype, device=L.device))
        return distml.matmul(L_inv.transpose(-2, -1), L_inv).expand(*self._matrix_shape())

    @property
    def mean(self):
        return self.loc

    mode = mean

    @property
    def variance(self):
        return self._unbroadcasted_scale_tril.pow(2).sum(-1).expand(*self._batch_shape, *self._event_shape)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + _batch_mv(self._unbroadcasted_scale_tril, eps)

    def _half_log_det(self):
        return diagonal(self._unbroadcasted_scale_tril).log().sum(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        M = _batch_mahalanobis(self._unbroadcasted_scale_tril, value - self.loc)
        return -0.5 * (self._event_shape[0] * math.log(2 * math.pi) + M) - self._half_log_det()

    def entropy(self):
        H = 0.5 * self._event_shape[0] * (1.0 + math.log(2 * math.pi)) + self._half_log_det()
        return H if len(self._batch_shape) == 0 else H.expand(*self._batch_shape)
