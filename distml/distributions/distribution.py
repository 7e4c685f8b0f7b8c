"""Distribution: the base class (PyTorch's torch.distributions.Distribution)."""
import warnings

import distml
from distml.distributions import constraints
from distml.distributions.utils import _size, broadcast_all, lazy_property
from distml.tensor import Tensor

__all__ = ["Distribution"]


def _show(value):
    """A tensor as PyTorch's f-strings show it: 0-d tensors as their number."""
    return str(value.item()) if value.ndim == 0 else str(value)


class Distribution:
    """A probability distribution over events of `event_shape`, batched over `batch_shape`.

    Subclasses set `arg_constraints` and `support`, and define what they can of `sample`,
    `rsample` (a sample differentiable in the parameters), `log_prob`, `cdf`, `icdf`,
    `entropy`, `mean`, `mode`, `variance`, `expand`. With `validate_args` (the default, as in
    PyTorch) invalid parameters and out-of-support values raise ValueError.
    """

    has_rsample = False
    has_enumerate_support = False
    _validate_args = __debug__

    @staticmethod
    def set_default_validate_args(value):
        """Turn argument validation on or off for every distribution made afterwards."""
        if value not in (True, False):
            raise ValueError
        Distribution._validate_args = value

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = _size(batch_shape)
        self._event_shape = _size(event_shape)
        if validate_args is not None:
            self._validate_args = validate_args
        if self._validate_args:
            try:
                arg_constraints = self.arg_constraints
            except NotImplementedError:
                arg_constraints = {}
                warnings.warn(f"{self.__class__} does not define `arg_constraints`. Please set "
                              "`arg_constraints = {}` or initialize the distribution with `validate_args=False` "
                              "to turn off validation.", stacklevel=2)
            for param, constraint in arg_constraints.items():
                if constraints.is_dependent(constraint):
                    continue
                if param not in self.__dict__ and isinstance(getattr(type(self), param), lazy_property):
                    continue  # a parameter computed lazily from the one given
                value = getattr(self, param)
                if not bool(constraint.check(value).array.all()):
                    raise ValueError(f"Expected parameter {param} ({type(value).__name__} of shape "
                                     f"{tuple(value.shape)}) of distribution {self!r} to satisfy the constraint "
                                     f"{constraint!r}, but found invalid values:\n{_show(value)}")

    def expand(self, batch_shape, _instance=None):
        """This distribution with its parameters expanded to `batch_shape` (views, no copies):
        `Normal(torch.zeros(3), 1.).expand((2, 3))`. Expands each parameter named in
        `arg_constraints` that the instance holds (of probs and logits, those given or computed
        so far), keeping its dimensions right of the batch ones. It serves the class that sets
        `arg_constraints`; a subclass of it with its own `__init__` must define expand (PyTorch's
        rule), and a class with other state extends it: `new = super().expand(batch_shape, _instance)`."""
        owner = next(cls for cls in type(self).__mro__ if "arg_constraints" in vars(cls))
        new = self._get_checked_instance(owner, _instance)
        batch_shape = _size(batch_shape)
        for name in self.arg_constraints:
            if name in self.__dict__:
                value = self.__dict__[name]
                setattr(new, name, value.expand(*batch_shape, *value.shape[len(self._batch_shape):]))
        Distribution.__init__(new, batch_shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def batch_shape(self):
        return self._batch_shape

    @property
    def event_shape(self):
        return self._event_shape

    @property
    def arg_constraints(self):
        raise NotImplementedError

    @property
    def support(self):
        raise NotImplementedError

    @property
    def mean(self):
        raise NotImplementedError

    @property
    def mode(self):
        raise NotImplementedError(f"{self.__class__} does not implement mode")

    @property
    def variance(self):
        raise NotImplementedError

    @property
    def stddev(self):
        return self.variance.sqrt()

    def sample(self, sample_shape=()):
        """A sample (no gradient) of shape sample_shape + batch_shape + event_shape."""
        with distml.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()):
        """A reparameterized sample: differentiable in the parameters."""
        raise NotImplementedError

    def log_prob(self, value):
        raise NotImplementedError

    def cdf(self, value):
        raise NotImplementedError

    def icdf(self, value):
        raise NotImplementedError

    def enumerate_support(self, expand=True):
        raise NotImplementedError

    def entropy(self):
        raise NotImplementedError

    def perplexity(self):
        return distml.exp(self.entropy())

    def _extended_shape(self, sample_shape=()):
        return _size(tuple(sample_shape) + tuple(self._batch_shape) + tuple(self._event_shape))

    def _validate_sample(self, value):
        """PyTorch's checks of a value to score: a Tensor, whose rightmost dims match the event
        shape, broadcastable with batch_shape + event_shape, inside the support."""
        if not isinstance(value, Tensor):
            raise ValueError("The value argument to log_prob must be a Tensor")
        event_dim_start = value.ndim - len(self._event_shape)
        if tuple(value.shape[event_dim_start:]) != tuple(self._event_shape):
            raise ValueError(f"The right-most size of value must match event_shape: {value.shape} vs "
                             f"{self._event_shape}.")
        actual, expected = value.shape, self._extended_shape()
        for i, j in zip(reversed(actual), reversed(expected)):
            if i != 1 and j != 1 and i != j:
                raise ValueError(f"Value is not broadcastable with batch_shape+event_shape: {actual} vs {expected}.")
        try:
            support = self.support
        except NotImplementedError:
            warnings.warn(f"{self.__class__} does not define `support` to enable sample validation. Please "
                          "initialize the distribution with `validate_args=False` to turn off validation.",
                          stacklevel=2)
            return
        if not bool(support.check(value).array.all()):
            raise ValueError(f"Expected value argument ({type(value).__name__} of shape {tuple(value.shape)}) to be "
                             f"within the support ({support!r}) of the distribution {self!r}, but found invalid "
                             f"values:\n{_show(value)}")

    def _get_checked_instance(self, cls, _instance=None):
        if _instance is None and type(self).__init__ != cls.__init__:
            raise NotImplementedError(f"Subclass {self.__class__.__name__} of {cls.__name__} that defines a custom "
                                      "__init__ method must also define a custom .expand() method.")
        return self.__new__(type(self)) if _instance is None else _instance

    def __repr__(self):
        shown = [f"{p}: {_show(self.__dict__[p]) if self.__dict__[p].numel() == 1 else self.__dict__[p].shape}"
                 for p in self.arg_constraints if p in self.__dict__]
        return f"{type(self).__name__}({', '.join(shown)})"


class _LocScale(Distribution):
    """A location-scale family (Normal, Laplace): `loc` and `scale` broadcast together, numbers
    becoming 0-d tensors; the mean and the mode are `loc`."""

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.loc

    mode = mean
