"""distml.distributions: PyTorch's torch.distributions.

    from distml.distributions import Normal, kl_divergence
    q = Normal(mu, sigma)
    z = q.rsample()                      # differentiable in mu and sigma
    loss = -q.log_prob(z).sum() + kl_divergence(q, Normal(0., 1.)).sum()

Samples come from distml's generator (`distml.manual_seed`), so a seed reproduces them; the
streams differ from PyTorch's.
"""
from distml.distributions import constraints, transforms
from distml.distributions.bernoulli import Bernoulli
from distml.distributions.beta import Beta
from distml.distributions.binomial import Binomial
from distml.distributions.categorical import Categorical
from distml.distributions.dirichlet import Dirichlet
from distml.distributions.distribution import Distribution
from distml.distributions.exponential import Exponential
from distml.distributions.gamma import Gamma
from distml.distributions.independent import Independent
from distml.distributions.kl import kl_divergence, register_kl
from distml.distributions.laplace import Laplace
from distml.distributions.log_normal import LogNormal
from distml.distributions.multivariate_normal import MultivariateNormal
from distml.distributions.normal import Normal
from distml.distributions.one_hot_categorical import OneHotCategorical
from distml.distributions.poisson import Poisson
from distml.distributions.transformed_distribution import TransformedDistribution
from distml.distributions.transforms import AffineTransform, ComposeTransform, ExpTransform, SigmoidTransform, Transform
from distml.distributions.uniform import Uniform

__all__ = ["AffineTransform", "Bernoulli", "Beta", "Binomial", "Categorical", "ComposeTransform", "Dirichlet",
           "Distribution", "ExpTransform", "Exponential", "Gamma", "Independent", "Laplace", "LogNormal",
           "MultivariateNormal", "Normal", "OneHotCategorical", "Poisson", "SigmoidTransform", "Transform",
           "TransformedDistribution", "Uniform", "constraints", "kl_divergence", "register_kl", "transforms"]
