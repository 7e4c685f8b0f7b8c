"""Helpers shared by the distributions (PyTorch's torch.distributions.utils)."""
from functools import update_wrapper
from numbers import Number

import numpy as np

import distml
from distml import dtypes
from distml._backend import get_array_module
from distml.ops._util import broadcast_shapes
from distml.tensor import Size, Tensor

euler_constant = 0.57721566490153286060  # Euler-Mascheroni constant

__all__ = ["broadcast_all", "clamp_probs", "lazy_property", "logits_to_probs", "probs_to_logits"]


def broadcast_all(*values):
    """Tensors and numbers broadcast to one shape; numbers become tensors of the first tensor's
    dtype and device (or the default dtype): `loc, scale = broadcast_all(loc, 1.0)`."""
    if not all(isinstance(v, (Tensor, Number)) for v in values):
        raise ValueError("Input arguments must all be instances of Number, "
                         "distml.Tensor or objects implementing __torch_function__.")
    like = next((v for v in values if isinstance(v, Tensor)), None)
    options = {"dtype": dtypes.get_default_dtype()} if like is None else {"dtype": like.dtype, "device": like.device}
    tensors = [v if isinstance(v, Tensor) else distml.tensor(v, **options) for v in values]
    shape = ()
    for t in tensors:
        shape = broadcast_shapes(shape, tuple(t.shape))
    return tuple(t if tuple(t.shape) == shape else t.expand(*shape) for t in tensors)


def _standard_normal(shape, dtype, device):
    return distml.randn(tuple(shape), dtype=dtype, device=device)


def _sum_rightmost(value, dim):
    """value summed over its `dim` rightmost dimensions."""
    if dim == 0:
        return value
    return value.reshape(tuple(value.shape[:-dim]) + (-1,)).sum(-1)


def _from_host(array, like):
    """A host (numpy) array as a tensor with `like`'s dtype on `like`'s device."""
    xp = get_array_module(like.array)
    return Tensor(xp.asarray(np.asarray(array).astype(like.array.dtype, copy=False)))


def _host(array):
    """An array as a numpy array (copied off the GPU when there)."""
    return array if isinstance(array, np.ndarray) else array.get()


def _finfo(tensor):
    """np.finfo of the tensor's float dtype (PyTorch's torch.finfo)."""
    return np.finfo(tensor.array.dtype)


def logits_to_probs(logits, is_binary=False):
    """sigmoid(logits) for the binary case, softmax over the last dimension otherwise."""
    return logits.sigmoid() if is_binary else logits.softmax(-1)


def clamp_probs(probs):
    """probs clamped to [eps, 1 - eps], eps being the dtype's machine epsilon."""
    eps = float(_finfo(probs).eps)
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary=False):
    """log-odds for the binary case, log-probabilities otherwise (of the clamped probs)."""
    clamped = clamp_probs(probs)
    return clamped.log() - (-clamped).log1p() if is_binary else clamped.log()


def _either(probs, logits):
    if (probs is None) == (logits is None):
        raise ValueError("Either `probs` or `logits` must be specified, but not both.")


class lazy_property:
    """A property computed on first access (with gradients enabled) and then stored on the
    instance: how Categorical gets `.logits` from `.probs` and back."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        update_wrapper(self, wrapped)

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        with distml.enable_grad():
            value = self.wrapped(instance)
        setattr(instance, self.wrapped.__name__, value)
        return value


class _ProbsOrLogits:
    """Mixin of the distributions given `probs` or `logits` (Bernoulli, Binomial, Categorical),
    which store the one given: the other is computed on first use. Binary (logits are log-odds)
    unless the class sets `_is_binary = False` (probabilities over the last dimension)."""

    _is_binary = True

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=self._is_binary)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits, is_binary=self._is_binary)

    @property
    def _param(self):
        """probs or logits, whichever is stored (the two have one shape, dtype and device)."""
        return self.__dict__["probs"] if "probs" in self.__dict__ else self.__dict__["logits"]

    @property
    def param_shape(self):
        return self._param.shape


def _size(shape):
    return Size(tuple(shape))
