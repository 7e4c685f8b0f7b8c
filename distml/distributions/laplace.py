"""Laplace(loc, scale)."""
import math

import distml
from distml.distributions import constraints
from distml.distributions.distribution import _LocScale
from distml.distributions.utils import _finfo
from distml.special import expm1

__all__ = ["Laplace"]


class Laplace(_LocScale):
    """The Laplace (double exponential) distribution: `Laplace(0., 1.).rsample()`."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    @property
    def variance(self):
        return 2 * self.scale.pow(2)

    @property
    def stddev(self):
        return math.sqrt(2) * self.scale

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = float(_finfo(self.loc).eps)
        u = distml.empty(shape, dtype=self.loc.dtype, device=self.loc.device).uniform_(eps - 1, 1)
        return self.loc - self.scale * u.sign() * distml.log1p(-u.abs())

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return -distml.log(2 * self.scale) - distml.abs(value - self.loc) / self.scale

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return 0.5 - 0.5 * (value - self.loc).sign() * expm1(-(value - self.loc).abs() / self.scale)

    def icdf(self, value):
        term = value - 0.5
        return self.loc - self.scale * term.sign() * distml.log1p(-2 * term.abs())

    def entropy(self):
        return 1 + distml.log(2 * self.scale)
