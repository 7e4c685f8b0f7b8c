"""Binomial(total_count, probs or logits)."""
import distml
from distml.distributions import constraints
from distml.distributions.distribution import Distribution
from distml.distributions.utils import _either, _from_host, _host, _ProbsOrLogits, broadcast_all
from distml.random import default_generator
from distml.special import lgamma

__all__ = ["Binomial"]


class Binomial(_ProbsOrLogits, Distribution):
    """The number of successes in `total_count` trials of probability `probs` (or sigmoid(`logits`)):
    `Binomial(10, torch.tensor([0.2, 0.8])).sample()`."""

    arg_constraints = {"total_count": constraints.nonnegative_integer, "probs": constraints.unit_interval,
                       "logits": constraints.real}
    has_enumerate_support = True

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        _either(probs, logits)
        total_count, param = broadcast_all(total_count, probs if probs is not None else logits)
        self.total_count = total_count.to(param.dtype)
        setattr(self, "probs" if probs is not None else "logits", param)
        super().__init__(param.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def mode(self):
        return distml.minimum(distml.floor((self.total_count + 1) * self.probs), self.total_count)

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with distml.no_grad():
            counts = _host(self.total_count.expand(*shape).array).astype("int64")
            probs = _host(self.probs.expand(*shape).array)
            return _from_host(default_generator.rng.binomial(counts, probs), self.probs)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n, logits = self.total_count, self.logits
        clamped = (logits.clamp(min=0) + logits - logits.clamp(max=0)) / 2  # max(logits, 0), PyTorch's gradient at 0
        normalize = n * clamped + n * distml.log1p(distml.exp(-distml.abs(logits))) - lgamma(n + 1)
        return value * logits - lgamma(value + 1) - lgamma(n - value + 1) - normalize

    def _homogeneous_count(self, what):
        total_count = int(self.total_count.max().item())
        if not self.total_count.min().item() == total_count:
            raise NotImplementedError(f"Inhomogeneous total count not supported by `{what}`.")
        return total_count

    def entropy(self):
        self._homogeneous_count("entropy")
        log_prob = self.log_prob(self.enumerate_support(False))
        return -(distml.exp(log_prob) * log_prob).sum(0)

    def enumerate_support(self, expand=True):
        total_count = self._homogeneous_count("enumerate_support")
        values = distml.arange(1 + total_count, dtype=self._param.dtype, device=self._param.device)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand(-1, *self._batch_shape) if expand else values
