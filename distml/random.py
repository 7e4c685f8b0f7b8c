"""Random numbers: a global generator seeded by `manual_seed`, and the random factories.

The streams are NumPy's (PCG64), so the same seed gives different numbers than PyTorch;
shapes, dtypes and distributions match. On a cuda device every sampler (rand, randn, normal,
randint, randperm, multinomial, bernoulli, the _like forms and the in-place fills, so dropout and
nn.init too) draws there, from the device's generator (distml.cuda.random, which manual_seed seeds
too); a call given an explicit Generator draws on the host and copies the result to the device.

    distml.manual_seed(0)
    x = distml.randn(2, 3)
    with distml.random.fork_rng(devices=[]):
        noise = distml.rand(3)       # the global state is restored on exit
"""
import contextlib
import json
import numbers
import warnings

import numpy as np

from distml import _backend, dtypes
from distml._backend import get_array_module
from distml.cuda import random as cuda_random
from distml.creation import _build, _dim_order, _empty, _factory_options, _finish, _result, _size
from distml.device import device as Device
from distml.tensor import (Tensor, _check_memory_format, _is_int, _is_int_tensor, _label, _require_tensor,
                           preserve_format, strided)


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
    """Seed the global generator (and so every random factory and `nn.init`) and every cuda device's
    generator (distml.cuda.random; they are made on first use, so this never starts CUDA)."""
    cuda_random.manual_seed(int(seed), all_devices=True)
    return default_generator.manual_seed(seed)


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state):
    default_generator.set_state(state)


_fork_rng_warned = False


@contextlib.contextmanager
def fork_rng(devices=None, enabled=True, _caller="fork_rng", _devices_kw="devices", device_type="cuda"):
    """Restore the CPU generator's state and the cuda `devices`' (every device when None) on exit:
    `with distml.random.fork_rng(devices=[0]): ...`; `enabled=False` forks nothing."""
    global _fork_rng_warned
    from distml import cuda
    if device_type != "cuda":
        raise RuntimeError(f"distml has no module of `{device_type}`: distml forks the cpu and cuda generators")
    if not enabled:
        yield
        return
    if devices is None:
        count = cuda.device_count()
        if count > 1 and not _fork_rng_warned:
            warnings.warn(f"CUDA reports that you have {count} available devices, and you have used {_caller} "
                          f"without explicitly specifying which devices are being used. For safety, we initialize "
                          f"*every* CUDA device by default, which can be quite slow if you have a lot of CUDAs. "
                          f"Set the '{_devices_kw}' keyword argument of {_caller} with the set of devices you are "
                          f"actually using, for example devices=[0].", stacklevel=3)
            _fork_rng_warned = True
        devices = range(count)
    devices = list(devices)
    cpu_state = get_rng_state()
    device_states = [cuda.get_rng_state(d) for d in devices]
    try:
        yield
    finally:
        set_rng_state(cpu_state)
        for d, state in zip(devices, device_states):
            cuda.set_rng_state(state, d)


def _rng(generator):
    return (generator or default_generator).rng


def _float_only(dtype, kernel):
    """PyTorch's error for a floating-point sampler asked for another dtype."""
    if not dtypes.is_float(dtype.np):
        raise NotImplementedError(f'"{kernel}" not implemented for \'{dtype.legacy_name}\'')
    return dtype


def _on_device(array, dtype, device):
    """A sample as an array of dtype on device: one drawn on a GPU stays there, a host one is copied."""
    if get_array_module(array) is not np:
        return array.astype(dtype.np, copy=False)
    array = np.asarray(array).astype(dtype.np, copy=False)
    return array if device is None else _build(device, lambda xp: xp.asarray(array))


def _cuda_index(generator, device):
    """The cuda device to draw a sample on (its own generator, distml.cuda.random), or None to draw it
    on the host: for cpu devices, and for an explicit Generator (its numbers are NumPy's, drawn on the
    host and copied to the device)."""
    if generator is not None or device is None:
        return None
    device = Device(device)
    if device.type != "cuda":
        return None
    cupy = _backend.require_cupy()
    return cupy.cuda.runtime.getDevice() if device.index is None else device.index


def _uniform(generator, size, np_dtype, device=None):
    """Uniform [0, 1) samples, on device's GPU when it is a cuda device."""
    index = _cuda_index(generator, device)
    if index is not None:
        return cuda_random.uniform(size, np_dtype, index)
    wide = np_dtype if np_dtype in (np.float32, np.float64) else np.float32
    return _rng(generator).random(size, dtype=wide)


def _normal(generator, size, np_dtype, device=None):
    """Standard normal samples, on device's GPU when it is a cuda device."""
    index = _cuda_index(generator, device)
    if index is not None:
        return cuda_random.normal(size, np_dtype, index)
    wide = np_dtype if np_dtype in (np.float32, np.float64) else np.float32
    return _rng(generator).standard_normal(size, dtype=wide)


def rand(*args, size=None, generator=None, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
         requires_grad=False):
    """Uniform on [0, 1): `distml.rand(2, 3)`, `rand((2, 3))`, `rand(size=(2, 3), generator=g)`."""
    shape = _size(args, size, "rand")
    dtype, device = _factory_options("rand", out, dtype, layout, device, pin_memory)
    _float_only(dtype, "check_uniform_bounds")
    return _result(_on_device(_uniform(generator, shape, dtype.np, device), dtype, device), requires_grad, out,
                   "rand")


def randn(*args, size=None, generator=None, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
          requires_grad=False):
    """Standard normal: `distml.randn(64, 10)`, with rand's forms."""
    shape = _size(args, size, "randn")
    dtype, device = _factory_options("randn", out, dtype, layout, device, pin_memory)
    _float_only(dtype, "normal_kernel_cpu")
    return _result(_on_device(_normal(generator, shape, dtype.np, device), dtype, device), requires_grad, out,
                   "randn")


_RANDINT_SIGNATURES = ("\n * (int high, tuple of ints size, *, distml.Generator generator = None, Tensor out = None, "
                       "distml.dtype dtype = None, distml.layout layout = None, distml.device device = None, "
                       "bool pin_memory = False, bool requires_grad = False)"
                       "\n * (int low, int high, tuple of ints size, *, distml.Generator generator = None, "
                       "Tensor out = None, distml.dtype dtype = None, distml.layout layout = None, "
                       "distml.device device = None, bool pin_memory = False, bool requires_grad = False)\n")
_C_NAMES = {"bool": "bool", "uint8": "unsigned char", "int8": "signed char", "int16": "short", "int32": "int",
            "int64": "long"}


def _bound(value, name, position, function="randint"):
    """A randint bound: an int, or the value of a one-element integer tensor."""
    if _is_int_tensor(value):
        return int(value.item())
    if not _is_int(value):
        raise TypeError(f"{function}(): argument '{name}' (position {position}) must be int, not {_label(value)}")
    return int(value)


def _integers(generator, low, high, shape, dtype, device=None):
    """Integers in [low, high) for dtype (on device's GPU when it is a cuda device), with PyTorch's errors
    for empty ranges and bounds dtype cannot hold."""
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    if dtype.np.kind in "iub":
        limits = (0, 1) if dtype.np.kind == "b" else (int(np.iinfo(dtype.np).min), int(np.iinfo(dtype.np).max))
        if low < limits[0]:
            raise RuntimeError(f"from is out of bounds for {_C_NAMES[dtype.name]}")
        if high - 1 > limits[1]:
            raise RuntimeError(f"to - 1 is out of bounds for {_C_NAMES[dtype.name]}")
    index = _cuda_index(generator, device)
    if index is not None:
        return cuda_random.integers(low, high, shape, index)
    return _rng(generator).integers(low, high, shape)


def randint(*args, low=None, high=None, size=None, generator=None, out=None, dtype=None, layout=strided,
            device=None, pin_memory=False, requires_grad=False):
    """Integers in [low, high) (low 0 when omitted), int64 unless dtype says: `distml.randint(10, (3,))`,
    `randint(2, 5, (3,))`, `randint(10, size=(3,))`, `randint(low=2, high=5, size=(3,))`."""
    given = [_label(a) for a in args] + [f"{k}={_label(v)}" for k, v in (("low", low), ("high", high), ("size", size))
                                          if v is not None]
    values = list(args)
    if size is None and values and isinstance(values[-1], (tuple, list)):
        size = values.pop()
    if len(values) == 2 and low is None and high is None:
        low, high = values
    elif len(values) == 1 and high is None:
        high = values[0]
    elif len(values) == 1 and low is None:
        low = values[0]
    elif values:
        high = None  # more positional arguments than the signatures have
    if high is None or size is None:
        raise TypeError(f"randint() received an invalid combination of arguments - got ({', '.join(given)}), but "
                        f"expected one of:{_RANDINT_SIGNATURES}")
    low = 0 if low is None else _bound(low, "low", 1)
    high = _bound(high, "high", 2 if args and len(values) == 2 else 1)
    shape = _size((size,), None, "randint")
    dtype, device = _factory_options("randint", out, dtype, layout, device, pin_memory, default=dtypes.int64)
    sample = _integers(generator, low, high, shape, dtype, device)
    return _result(_on_device(sample, dtype, device), requires_grad, out, "randint")


def randperm(n, *, generator=None, out=None, dtype=None, layout=strided, device=None, pin_memory=False,
             requires_grad=False):
    """A random permutation of 0..n-1 (int64 unless dtype says): `distml.randperm(5)`."""
    n = _bound(n, "n", 1, "randperm")
    _size((n,), None, "randperm")
    dtype, device = _factory_options("randperm", out, dtype, layout, device, pin_memory, default=dtypes.int64)
    index = _cuda_index(generator, device)
    sample = _rng(generator).permutation(n) if index is None else cuda_random.permutation(n, index)
    return _result(_on_device(sample, dtype, device), requires_grad, out, "randperm")


def normal(mean=0.0, std=1.0, size=None, *, generator=None, out=None, dtype=None, layout=strided, device=None,
           pin_memory=False, requires_grad=False):
    """Normal samples: `normal(0., 2., size=(3,))`, or elementwise `normal(mean_tensor, std_tensor)`."""
    mean_is_tensor, std_is_tensor = isinstance(mean, Tensor), isinstance(std, Tensor)
    if mean_is_tensor or std_is_tensor:
        m = mean.array if mean_is_tensor else mean
        s = std.array if std_is_tensor else std
        like = mean if mean_is_tensor else std
        xp = get_array_module(like.array)
        if bool(xp.any(xp.asarray(s) < 0)):
            raise RuntimeError("normal expects all elements of std >= 0.0")
        shape = np.broadcast_shapes(np.shape(m), np.shape(s))
        sample = m + s * _normal(generator, shape, like.array.dtype, like.device)
        return _result(_on_device(sample, like.dtype, like.device), requires_grad, out, "normal")
    if size is None:
        raise TypeError(f"normal() received an invalid combination of arguments - got ({_label(mean)}, "
                        f"{_label(std)}), but expected one of:\n * (Tensor mean, Tensor std, *, distml.Generator "
                        "generator = None, Tensor out = None)\n * (Tensor mean, float std = 1, *, distml.Generator "
                        "generator = None, Tensor out = None)\n * (float mean, Tensor std, *, distml.Generator "
                        "generator = None, Tensor out = None)\n * (float mean, float std, tuple of ints size, *, "
                        "distml.Generator generator = None, Tensor out = None, distml.dtype dtype = None, ...)\n")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    shape = _size((size,), None, "normal")
    dtype, device = _factory_options("normal", out, dtype, layout, device, pin_memory)
    _float_only(dtype, "normal_kernel_cpu")
    sample = mean + std * _normal(generator, shape, dtype.np, device)
    return _result(_on_device(sample, dtype, device), requires_grad, out, "normal")


def bernoulli(input, p=None, *, generator=None):
    """1 with probability input (or p) elementwise, else 0, in input's dtype."""
    probs = input.array if p is None else p
    xp = get_array_module(probs)
    if bool(xp.any((xp.asarray(probs) < 0) | (xp.asarray(probs) > 1))):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    draws = _uniform(generator, input.array.shape, np.float64, input.device) < probs
    return _finish(_on_device(draws, input.dtype, input.device), False)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices drawn with probability proportional to the rows of input (1-D or 2-D)."""
    shape = input.array.shape
    if not replacement and num_samples > shape[-1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    index = _cuda_index(generator, input.device)
    if index is not None:
        out = cuda_random.multinomial(input.array.reshape(-1, shape[-1]), num_samples, replacement, index)
        return _finish(out.reshape(shape[:-1] + (num_samples,)), False)
    probs = np.asarray(input.array if isinstance(input.array, np.ndarray) else input.array.get(), dtype=np.float64)
    rows = probs.reshape(-1, probs.shape[-1])
    rng = _rng(generator)
    out = np.stack([rng.choice(rows.shape[1], num_samples, replace=replacement, p=row / row.sum()) for row in rows])
    return _finish(_on_device(out.reshape(probs.shape[:-1] + (num_samples,)), dtypes.int64, input.device), False)


def _like(function, input, sample, dtype, layout, device, pin_memory, requires_grad, memory_format):
    """A sample (sample(shape, dtype) on the host) shaped like input: its dtype and device unless given,
    laid out in memory as memory_format says (preserve_format: as input, where input is dense)."""
    _require_tensor(input, function)
    _check_memory_format(memory_format, function)
    dtype, device = _factory_options(function, None, dtype or input.dtype, layout or strided, device or input.device,
                                     pin_memory)
    order = _dim_order(input.array, memory_format)
    values = sample(input.array.shape, dtype, device)

    def make(xp):
        array = _empty(xp, input.array.shape, dtype.np, order)
        array[...] = xp.asarray(values)
        return array
    return _finish(_build(device, make), requires_grad)


def rand_like(input, *, generator=None, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
              memory_format=preserve_format):
    """Uniform on [0, 1), shaped like input: `distml.rand_like(x)`."""
    def sample(shape, d, device):
        return _uniform(generator, shape, _float_only(d, "check_uniform_bounds").np, device).astype(d.np)
    return _like("rand_like", input, sample, dtype, layout, device, pin_memory, requires_grad, memory_format)


def randn_like(input, *, generator=None, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
               memory_format=preserve_format):
    """Standard normal, shaped like input: `distml.randn_like(x)`."""
    def sample(shape, d, device):
        return _normal(generator, shape, _float_only(d, "normal_kernel_cpu").np, device).astype(d.np)
    return _like("randn_like", input, sample, dtype, layout, device, pin_memory, requires_grad, memory_format)


def randint_like(input, low=None, high=None, *, generator=None, dtype=None, layout=None, device=None,
                 pin_memory=False, requires_grad=False, memory_format=preserve_format):
    """Integers in [low, high) shaped like input, in input's dtype unless given: `randint_like(x, 10)`,
    `randint_like(x, 3, 10)`, `randint_like(x, high=10)`."""
    if high is None:
        low, high = None, low
    if high is None:
        raise TypeError(f"randint_like() received an invalid combination of arguments - got ({_label(input)}), but "
                        "expected one of:\n * (Tensor input, int high, *, ...)\n * (Tensor input, int low, int high, "
                        "*, ...)\n")
    low = 0 if low is None else _bound(low, "low", 2, "randint_like")
    high = _bound(high, "high", 3 if low else 2, "randint_like")

    def sample(shape, d, device):
        return _integers(generator, low, high, shape, d, device)
    return _like("randint_like", input, sample, dtype, layout, device, pin_memory, requires_grad, memory_format)


# ---- in-place fills, the Tensor methods uniform_, normal_, ... (nn.init uses them) ----

def _fill_with(x, sample):
    return x._inplace(_finish(_on_device(sample, x.dtype, None if x.is_cpu else x.device), False))


def uniform_(x, a=0.0, b=1.0, generator=None):
    _float_only(x.dtype, "check_uniform_bounds")
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    return _fill_with(x, a + (b - a) * _uniform(generator, x.array.shape, np.float64, x.device))


def normal_(x, mean=0.0, std=1.0, generator=None):
    _float_only(x.dtype, "normal_kernel_cpu")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _fill_with(x, mean + std * _normal(generator, x.array.shape, np.float64, x.device))


def bernoulli_(x, p=0.5, generator=None):
    if isinstance(p, numbers.Number) and not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    probs = p.array if isinstance(p, Tensor) else p
    return _fill_with(x, _uniform(generator, x.array.shape, np.float64, x.device) < probs)


# random_() without bounds: [0, 2 ** mantissa bits] for floats (every value exact), the dtype's range for integers.
_MANTISSA = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def random_(x, low=0, high=None, generator=None):
    """Integers in [low, high) (or [0, low) with one bound) written into x."""
    if high is None and low == 0:
        if x.dtype.name in _MANTISSA:
            high = 2 ** _MANTISSA[x.dtype.name] + 1
        else:
            high = 2 if x.dtype is dtypes.bool else int(np.iinfo(x.array.dtype).max) + 1
    elif high is None:
        low, high = 0, low
    return _fill_with(x, _integers(generator, low, high, x.array.shape, x.dtype, x.device))


def exponential_(x, lambd=1.0, generator=None):
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    index = _cuda_index(generator, x.device)
    if index is not None:
        return _fill_with(x, cuda_random.exponential(x.array.shape, index) / lambd)
    return _fill_with(x, _rng(generator).exponential(1.0 / lambd, x.array.shape))
