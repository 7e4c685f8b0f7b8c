"""Random numbers: a global generator seeded by `manual_seed`, and the random factories.

The streams are NumPy's (PCG64), so the same seed gives different numbers than PyTorch;
shapes, dtypes and distributions match.

    distml.manual_seed(0)
    x = distml.randn(2, 3)
"""
import json

import numpy as np

from distml import dtypes
from distml.creation import _size
from distml.tensor import Tensor


class Generator:
    """A random stream: `g = distml.Generator().manual_seed(1); distml.rand(3, generator=g)`."""

    def __init__(self, device="cpu"):
        self.device = device
        self.seed()

    def manual_seed(self, seed):
        self._initial_seed = int(seed)
        self.rng = np.random.default_rng(self._initial_seed)
        return self

    def seed(self):
        """Reseed from the OS's entropy; returns the new seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy % (2 ** 63)))
        return self._initial_seed

    def initial_seed(self):
        return self._initial_seed

    def get_state(self):
        """The state as a uint8 tensor (JSON of NumPy's bit-generator state)."""
        return Tensor(np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), dtype=np.uint8).copy())

    def set_state(self, state):
        self.rng.bit_generator.state = json.loads(bytes(np.asarray(state.array, dtype=np.uint8)).decode())
        return self


default_generator = Generator()


def manual_seed(seed):
    """Seed the global generator (and so every random factory and `nn.init`)."""
    return default_generator.manual_seed(seed)


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state):
    default_generator.set_state(state)


def _rng(generator):
    return (generator or default_generator).rng


def _float_dtype(dtype):
    np_dtype = dtypes.to_numpy(dtype) or dtypes.default_float_np()
    if not dtypes.is_float(np_dtype):
        raise RuntimeError(f"expected a floating-point dtype, got {dtypes.from_numpy(np_dtype)}")
    return np_dtype


def _finish(array, dtype, device, requires_grad):
    """The array (generated in float32/float64 or int64 on the host) as a tensor on device."""
    from distml.creation import _finish as finish, _to_device_array
    array = array.astype(dtype, copy=False)
    if device is not None and str(device) != "cpu":
        array = _to_device_array(array, device)
    return finish(array, requires_grad)


def _uniform(rng, size, dtype):
    wide = dtype if dtype in (np.float32, np.float64) else np.float32
    return rng.random(size, dtype=wide)


def _normal(rng, size, dtype):
    wide = dtype if dtype in (np.float32, np.float64) else np.float32
    return rng.standard_normal(size, dtype=wide)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1): `distml.rand(2, 3)`."""
    np_dtype = _float_dtype(dtype)
    return _finish(_uniform(_rng(generator), _size(size), np_dtype), np_dtype, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal: `distml.randn(64, 10)`."""
    np_dtype = _float_dtype(dtype)
    return _finish(_normal(_rng(generator), _size(size), np_dtype), np_dtype, device, requires_grad)


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Integers in [low, high): `distml.randint(10, (3,))`, `distml.randint(2, 5, (3,))`."""
    if size is None:
        low, high, size = 0, low, high
    elif high is None:
        raise TypeError("randint() missing required argument 'high'")
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    np_dtype = dtypes.to_numpy(dtype) or np.dtype(np.int64)
    return _finish(_rng(generator).integers(low, high, _size((size,))), np_dtype, device, requires_grad)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0..n-1 (int64)."""
    return _finish(_rng(generator).permutation(int(n)), dtypes.to_numpy(dtype) or np.dtype(np.int64), device,
                   requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Normal samples: `normal(0., 2., size=(3,))`, or elementwise `normal(mean_tensor, std_tensor)`."""
    mean_is_tensor, std_is_tensor = isinstance(mean, Tensor), isinstance(std, Tensor)
    if mean_is_tensor or std_is_tensor:
        m = mean.array if mean_is_tensor else mean
        s = std.array if std_is_tensor else std
        if np.any(np.asarray(s) < 0):
            raise RuntimeError("normal expects all elements of std >= 0.0")
        shape = np.broadcast_shapes(np.shape(m), np.shape(s))
        np_dtype = (mean if mean_is_tensor else std).array.dtype
        sample = np.asarray(m + s * _normal(_rng(generator), shape, np_dtype))
        return _finish(sample, np_dtype, (mean if mean_is_tensor else std).device, requires_grad)
    if size is None:
        raise TypeError("normal() with float mean and std needs a size")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    np_dtype = _float_dtype(dtype)
    return _finish(mean + std * _normal(_rng(generator), _size((size,)), np_dtype), np_dtype, device, requires_grad)


def bernoulli(input, p=None, *, generator=None):
    """1 with probability input (or p) elementwise, else 0, in input's dtype."""
    probs = input.array if p is None else p
    if np.any((np.asarray(probs) < 0) | (np.asarray(probs) > 1)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    draws = _uniform(_rng(generator), input.array.shape, np.float64) < (probs.get() if hasattr(probs, "get") else probs)
    return _finish(draws, input.array.dtype, input.device, False)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices drawn with probability proportional to the rows of input (1-D or 2-D)."""
    probs = np.asarray(input.array if isinstance(input.array, np.ndarray) else input.array.get(), dtype=np.float64)
    rows = probs.reshape(-1, probs.shape[-1])
    if not replacement and num_samples > rows.shape[1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    rng = _rng(generator)
    out = np.stack([rng.choice(rows.shape[1], num_samples, replace=replacement, p=row / row.sum()) for row in rows])
    return _finish(out.reshape(probs.shape[:-1] + (num_samples,)), np.dtype(np.int64), input.device, False)


def rand_like(x, dtype=None, device=None, requires_grad=False):
    return rand(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False):
    return randn(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def randint_like(x, low=0, high=None, dtype=None, device=None):
    return randint(low, high, x.shape, dtype=dtype or x.dtype, device=device or x.device)


# ---- in-place fills, the Tensor methods uniform_, normal_, ... (nn.init uses them) ----

def uniform_(x, a=0.0, b=1.0, generator=None):
    sample = a + (b - a) * _uniform(_rng(generator), x.array.shape, np.float64)
    return x._inplace(_finish(sample, x.array.dtype, x.device, False))


def normal_(x, mean=0.0, std=1.0, generator=None):
    sample = mean + std * _normal(_rng(generator), x.array.shape, np.float64)
    return x._inplace(_finish(sample, x.array.dtype, x.device, False))


def bernoulli_(x, p=0.5, generator=None):
    probs = p.array if isinstance(p, Tensor) else p
    return x._inplace(_finish(_uniform(_rng(generator), x.array.shape, np.float64) < probs, x.array.dtype, x.device,
                              False))


def random_(x, low=0, high=None, generator=None):
    """Integers in [low, high) (or [0, low) with one bound) written into x."""
    if high is None:
        low, high = 0, low
    return x._inplace(_finish(_rng(generator).integers(low, high, x.array.shape), x.array.dtype, x.device, False))


def exponential_(x, lambd=1.0, generator=None):
    sample = _rng(generator).exponential(1.0 / lambd, x.array.shape)
    return x._inplace(_finish(sample, x.array.dtype, x.device, False))
