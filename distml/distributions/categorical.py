"""Categorical(probs or logits): integers 0 .. K-1."""
import numpy as np

import distml
from distml._backend import get_array_module
from distml.distributions import constraints
from distml.distributions.distribution import Distribution
from distml.distributions.utils import _either, _finfo, _ProbsOrLogits
from distml.ops._util import broadcast_shapes

__all__ = ["Categorical"]


class Categorical(_ProbsOrLogits, Distribution):
    """Class k with probability probs[..., k] (normalised to sum to 1), or softmax(logits)[..., k]:
    `Categorical(logits=scores).sample((10,))`. `.probs` and `.logits` are the normalised forms."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    has_enumerate_support = True
    _is_binary = False

    def __init__(self, probs=None, logits=None, validate_args=None):
        _either(probs, logits)
        if probs is not None:
            if probs.ndim < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            self.probs = probs / probs.sum(-1, keepdim=True)
        else:
            if logits.ndim < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        super().__init__(self._param.shape[:-1], validate_args=validate_args)

    @property
    def _num_events(self):
        return self._param.shape[-1]

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def mean(self):
        return distml.full(self._extended_shape(), float("nan"), dtype=self.probs.dtype, device=self.probs.device)

    @property
    def mode(self):
        return self.probs.argmax(dim=-1)

    @property
    def variance(self):
        return self.mean

    def sample(self, sample_shape=()):
        """Indices (int64) drawn by inverting each row's cumulative probabilities."""
        shape = self._extended_shape(sample_shape)
        with distml.no_grad():
            cumulative = self.probs.array.cumsum(-1)
            u = distml.rand(shape + (1,), dtype=distml.float64, device=self.probs.device).array
            index = (cumulative < u * cumulative[..., -1:]).sum(-1)
            return distml.Tensor(get_array_module(index).minimum(index, self._num_events - 1).astype(np.int64))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        shape = broadcast_shapes(tuple(value.shape), tuple(self.logits.shape))
        return self.logits.expand(*shape).gather(-1, value.expand(*shape[:-1], 1)).squeeze(-1)

    def entropy(self):
        logits = self.logits.clamp(min=float(_finfo(self.logits).min))
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand=True):
        values = distml.arange(self._num_events, dtype=distml.int64, device=self._param.device)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand(-1, *self._batch_shape) if expand else values
