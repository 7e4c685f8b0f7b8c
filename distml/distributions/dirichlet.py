"""Dirichlet(concentration), with reparameterized samples."""
import distml
from distml.distributions import constraints
from distml.distributions.distribution import Distribution
from distml.distributions.gamma import _standard_gamma
from distml.distributions.utils import _finfo
from distml.special import digamma, lgamma, xlogy

__all__ = ["Dirichlet"]


class Dirichlet(Distribution):
    """Points of the simplex with density proportional to prod x_i ** (concentration_i - 1):
    `Dirichlet(torch.tensor([0.5, 0.5])).rsample()`. rsample normalises Gamma(concentration_i, 1)
    draws, so its gradient is the Gamma implicit gradient carried through the normalisation
    (PyTorch differentiates the marginal Beta CDFs instead: the same expectation, other draws)."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration, validate_args=None):
        if concentration.ndim < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:], validate_args=validate_args)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        gammas = _standard_gamma(self.concentration.expand(*shape))
        value = gammas / gammas.sum(-1, keepdim=True)
        info = _finfo(value)
        value.data.clamp_(min=float(info.tiny), max=1 - float(info.eps))  # not recorded, as in PyTorch
        return value

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return (xlogy(self.concentration - 1.0, value).sum(-1) + lgamma(self.concentration.sum(-1))
                - lgamma(self.concentration).sum(-1))

    @property
    def mean(self):
        return self.concentration / self.concentration.sum(-1, True)

    @property
    def mode(self):
        shifted = (self.concentration - 1).clamp(min=0.0)
        mode = shifted / shifted.sum(-1, True)
        # where every concentration is below 1 the density peaks at the corner of the largest
        corner = (mode.argmax(-1, keepdim=True) == distml.arange(mode.shape[-1], device=mode.device)).to(mode.dtype)
        below_one = (self.concentration < 1).to(distml.int64).sum(-1, keepdim=True) == mode.shape[-1]
        return distml.where(below_one, corner, mode)

    @property
    def variance(self):
        total = self.concentration.sum(-1, True)
        return self.concentration * (total - self.concentration) / (total.pow(2) * (total + 1))

    def entropy(self):
        k = self.concentration.shape[-1]
        total = self.concentration.sum(-1)
        return (lgamma(self.concentration).sum(-1) - lgamma(total) - (k - total) * digamma(total)
                - ((self.concentration - 1.0) * digamma(self.concentration)).sum(-1))
