"""Regions a parameter or a sample must lie in (PyTorch's torch.distributions.constraints).

    constraints.positive.check(distml.tensor([1., -1.]))  # tensor([ True, False])

`check` returns a bool tensor of the value's shape less the constraint's `event_dim`
rightmost dimensions; the repr is PyTorch's (`GreaterThan(lower_bound=0.0)`), as it appears in
the error messages of argument validation.
"""
import numpy as np

from distml._backend import get_array_module
from distml.linalg import cholesky_ex
from distml.tensor import Tensor

__all__ = ["Constraint", "boolean", "dependent", "dependent_property", "greater_than", "greater_than_eq",
           "half_open_interval", "independent", "integer_interval", "interval", "is_dependent", "less_than",
           "lower_cholesky", "lower_triangular", "nonnegative", "nonnegative_integer", "one_hot", "positive",
           "positive_definite", "positive_integer", "real", "real_vector", "simplex", "square", "symmetric",
           "unit_interval"]


def _array(value):
    return value.array if isinstance(value, Tensor) else value


def _show(value):
    """A bound as PyTorch formats it: a number (or 0-d tensor) as its value, a tensor as its repr."""
    if isinstance(value, Tensor):
        return str(value.item()) if value.ndim == 0 else str(value)
    return str(value)


class Constraint:
    """A region; subclasses define `check(value)` (a bool tensor, one entry per event)."""

    is_discrete = False
    event_dim = 0

    def check(self, value):
        raise NotImplementedError

    def __repr__(self):
        return type(self).__name__[1:] + "()"


class _Elementwise(Constraint):
    """A constraint checked entry by entry: `test(array)` gives the bool array."""

    def check(self, value):
        with np.errstate(invalid="ignore"):
            return Tensor(get_array_module(value.array).asarray(self.test(value.array)))


class _Dependent(Constraint):
    """A placeholder for a support that depends on the parameters (validation skips it)."""

    def __init__(self, *, is_discrete=NotImplemented, event_dim=NotImplemented):
        self._is_discrete = is_discrete
        self._event_dim = event_dim

    @property
    def is_discrete(self):
        if self._is_discrete is NotImplemented:
            raise NotImplementedError(".is_discrete cannot be determined statically")
        return self._is_discrete

    @property
    def event_dim(self):
        if self._event_dim is NotImplemented:
            raise NotImplementedError(".event_dim cannot be determined statically")
        return self._event_dim

    def __call__(self, *, is_discrete=NotImplemented, event_dim=NotImplemented):
        return _Dependent(is_discrete=self._is_discrete if is_discrete is NotImplemented else is_discrete,
                          event_dim=self._event_dim if event_dim is NotImplemented else event_dim)

    def check(self, x):
        raise ValueError("Cannot determine validity of dependent constraint")


def is_dependent(constraint):
    """Whether `constraint` is a dependent placeholder (which argument validation skips)."""
    return isinstance(constraint, _Dependent)


class _DependentProperty(property, _Dependent):
    """A property on instances (Uniform's `support` is `interval(low, high)`) and a dependent
    constraint on the class."""

    def __init__(self, fn=None, *, is_discrete=NotImplemented, event_dim=NotImplemented):
        property.__init__(self, fn)
        self._is_discrete = is_discrete
        self._event_dim = event_dim

    def __call__(self, fn):
        return _DependentProperty(fn, is_discrete=self._is_discrete, event_dim=self._event_dim)


class _IndependentConstraint(Constraint):
    """`base_constraint` over events of `reinterpreted_batch_ndims` more dimensions: an event is
    valid when all its entries are."""

    def __init__(self, base_constraint, reinterpreted_batch_ndims):
        self.base_constraint = base_constraint
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims

    @property
    def is_discrete(self):
        return self.base_constraint.is_discrete

    @property
    def event_dim(self):
        return self.base_constraint.event_dim + self.reinterpreted_batch_ndims

    def check(self, value):
        result = self.base_constraint.check(value).array
        if result.ndim < self.reinterpreted_batch_ndims:
            raise ValueError(f"Expected value.dim() >= {self.event_dim} but got {value.ndim}")
        axes = tuple(range(result.ndim - self.reinterpreted_batch_ndims, result.ndim))
        return Tensor(result.all(axis=axes))

    def __repr__(self):
        return f"{type(self).__name__[1:]}({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


class _Boolean(_Elementwise):
    is_discrete = True

    def test(self, x):
        return (x == 0) | (x == 1)


class _OneHot(Constraint):
    is_discrete = True
    event_dim = 1

    def check(self, value):
        x = value.array
        return Tensor(((x == 0) | (x == 1)).all(-1) & (x.sum(-1) == 1))


class _Bounded(_Elementwise):
    """A constraint with bounds, shown as `Name(lower_bound=..., upper_bound=...)`."""
    bounds = ()

    def __repr__(self):
        shown = ", ".join(f"{name}={_show(getattr(self, name))}" for name in self.bounds)
        return f"{type(self).__name__[1:]}({shown})"


class _IntegerInterval(_Bounded):
    is_discrete = True
    bounds = ("lower_bound", "upper_bound")

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def test(self, x):
        return (x % 1 == 0) & (_array(self.lower_bound) <= x) & (x <= _array(self.upper_bound))


class _IntegerGreaterThan(_Bounded):
    is_discrete = True
    bounds = ("lower_bound",)

    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def test(self, x):
        return (x % 1 == 0) & (x >= _array(self.lower_bound))


class _Real(_Elementwise):
    def test(self, x):
        return x == x  # False for NaN


class _GreaterThan(_Bounded):
    bounds = ("lower_bound",)

    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def test(self, x):
        return _array(self.lower_bound) < x


class _GreaterThanEq(_GreaterThan):
    def test(self, x):
        return _array(self.lower_bound) <= x


class _LessThan(_Bounded):
    bounds = ("upper_bound",)

    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def test(self, x):
        return x < _array(self.upper_bound)


class _Interval(_Bounded):
    bounds = ("lower_bound", "upper_bound")

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def test(self, x):
        return (_array(self.lower_bound) <= x) & (x <= _array(self.upper_bound))


class _HalfOpenInterval(_Interval):
    def test(self, x):
        return (_array(self.lower_bound) <= x) & (x < _array(self.upper_bound))


class _Simplex(Constraint):
    """x >= 0 and x.sum(-1) == 1 (to 1e-6) over the last dimension."""
    event_dim = 1

    def check(self, value):
        x = get_array_module(value.array)
        with np.errstate(invalid="ignore"):
            return Tensor(x.asarray((value.array >= 0).all(-1) & (x.abs(value.array.sum(-1) - 1) < 1e-6)))


class _LowerTriangular(Constraint):
    event_dim = 2

    def check(self, value):
        x = value.array
        return Tensor((get_array_module(x).tril(x) == x).all(axis=(-2, -1)))


class _LowerCholesky(_LowerTriangular):
    """Lower triangular with a positive diagonal."""

    def check(self, value):
        diagonal = value.array.diagonal(axis1=-2, axis2=-1)
        return Tensor(super().check(value).array & (diagonal > 0).all(-1))


class _Square(Constraint):
    event_dim = 2

    def check(self, value):
        x = value.array
        return Tensor(get_array_module(x).full(x.shape[:-2], x.shape[-2] == x.shape[-1], dtype=bool))


class _Symmetric(_Square):
    def check(self, value):
        square = super().check(value)
        if not square.array.all():
            return square
        x = value.array
        return Tensor(get_array_module(x).isclose(x, x.swapaxes(-2, -1), atol=1e-6).all(axis=(-2, -1)))


class _PositiveDefinite(_Symmetric):
    """Symmetric with a Cholesky factorisation."""

    def check(self, value):
        symmetric = super().check(value)
        if not symmetric.array.all():
            return symmetric
        return Tensor(cholesky_ex(value.detach()).info.array == 0)


dependent = _Dependent()
dependent_property = _DependentProperty
independent = _IndependentConstraint
boolean = _Boolean()
one_hot = _OneHot()
nonnegative_integer = _IntegerGreaterThan(0)
positive_integer = _IntegerGreaterThan(1)
integer_interval = _IntegerInterval
real = _Real()
real_vector = independent(real, 1)
positive = _GreaterThan(0.0)
nonnegative = _GreaterThanEq(0.0)
greater_than = _GreaterThan
greater_than_eq = _GreaterThanEq
less_than = _LessThan
unit_interval = _Interval(0.0, 1.0)
interval = _Interval
half_open_interval = _HalfOpenInterval
simplex = _Simplex()
lower_triangular = _LowerTriangular()
lower_cholesky = _LowerCholesky()
square = _Square()
symmetric = _Symmetric()
positive_definite = _PositiveDefinite()
