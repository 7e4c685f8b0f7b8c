"""LogNormal(loc, scale): exp of a Normal."""
from distml.distributions import constraints
from distml.distributions.normal import Normal
from distml.distributions.transformed_distribution import TransformedDistribution
from distml.distributions.transforms import ExpTransform
from distml.special import expm1

__all__ = ["LogNormal"]


class LogNormal(TransformedDistribution):
    """Y = exp(X) for X ~ Normal(loc, scale): `LogNormal(0., 0.5).rsample((3,))`."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        super().__init__(Normal(loc, scale, validate_args=validate_args), ExpTransform(), validate_args=validate_args)

    @property
    def loc(self):
        return self.base_dist.loc

    @property
    def scale(self):
        return self.base_dist.scale

    @property
    def mean(self):
        return (self.loc + self.scale.pow(2) / 2).exp()

    @property
    def mode(self):
        return (self.loc - self.scale.square()).exp()

    @property
    def variance(self):
        scale_sq = self.scale.pow(2)
        return expm1(scale_sq) * (2 * self.loc + scale_sq).exp()

    def entropy(self):
        return self.base_dist.entropy() + self.loc
