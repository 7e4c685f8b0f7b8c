"""Poisson(rate)."""
import distml
from distml.distributions import constraints
from distml.distributions.distribution import Distribution
from distml.distributions.utils import _from_host, _host, broadcast_all
from distml.random import default_generator
from distml.special import lgamma, xlogy

__all__ = ["Poisson"]


class Poisson(Distribution):
    """Counts with mean `rate`: `Poisson(torch.tensor([4.])).sample()` (floats, as in PyTorch)."""

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(self.rate.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.rate

    @property
    def mode(self):
        return distml.floor(self.rate)

    @property
    def variance(self):
        return self.rate

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with distml.no_grad():
            rate = _host(self.rate.expand(*shape).array)
            return _from_host(default_generator.rng.poisson(rate), self.rate)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return xlogy(value, rate) - rate - lgamma(value + 1)
