"""The random generators of cuda tensors, one per device, drawing on the device (cuRAND's Philox through
cupy.random.RandomState), so random tensors, dropout masks and permutations on a GPU never pass
through the host.

A device's state is PyTorch's pair (seed, offset): the seed last set for it (`distml.manual_seed`,
`distml.cuda.manual_seed[_all]`, `set_rng_state`) and how many draws it has made since. Each draw
reseeds the device's Philox generator from that pair, so `get_rng_state()` (16 bytes, as PyTorch's)
and `set_rng_state()` round-trip exactly and seeding never starts CUDA. The streams are cuRAND's: the
same seed gives other numbers than PyTorch's CUDA generator, and than distml's CPU generator.

    distml.manual_seed(0)
    mask = distml.rand(64, 128, device="cuda") >= 0.5
"""
import numpy as np

from distml import _backend

_MASK = 2 ** 64 - 1
_all_seed = int(np.random.SeedSequence().entropy % (2 ** 63))
_seeds = {}        # device index -> seed set for that device alone, since the last manual_seed_all
_offsets = {}      # device index -> draws made since its seed was set
_generators = {}   # device index -> cupy RandomState (Philox), reseeded for each draw


def fresh_seed():
    return int(np.random.SeedSequence().entropy % (2 ** 63))


def manual_seed(seed, all_devices):
    """Seed every device's generator (all_devices) or the current device's."""
    global _all_seed
    if all_devices:
        _all_seed = seed & _MASK
        _seeds.clear()
        _offsets.clear()
        return
    if _backend.cuda_unavailable_reason() is not None:
        return  # PyTorch's CPU build accepts torch.cuda.manual_seed and has nothing to seed
    index = _backend.cupy.cuda.runtime.getDevice()
    _seeds[index] = seed & _MASK
    _offsets.pop(index, None)


def initial_seed(index):
    return _seeds.get(index, _all_seed)


def get_state(index):
    """Device `index`'s state: its seed and offset as 16 bytes (two little-endian uint64)."""
    return np.array([initial_seed(index), _offsets.get(index, 0)], dtype="<u8").view(np.uint8)


def set_state(index, state):
    """Set device `index`'s state from `get_state`'s 16 bytes."""
    seed, offset = (int(v) for v in np.ascontiguousarray(state, dtype=np.uint8).view("<u8"))
    _seeds[index], _offsets[index] = seed, offset


def _mix(seed, offset):
    """A 64-bit seed for draw `offset` of stream `seed` (splitmix64's finaliser)."""
    z = (seed + (offset + 1) * 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def generator(index):
    """Device `index`'s cupy RandomState, seeded for the device's next draw (call once per draw, with
    device `index` current)."""
    cupy = _backend.require_cupy()
    made = _generators.get(index)
    if made is None:
        made = _generators[index] = cupy.random.RandomState(method=cupy.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
    offset = _offsets.get(index, 0)
    _offsets[index] = offset + 1
    made.seed(_mix(initial_seed(index), offset))
    return made


def _wide(dtype):
    return dtype if dtype in (np.float32, np.float64) else np.float32


def uniform(shape, dtype, index):
    """Uniform [0, 1) samples of a float dtype on device `index`."""
    with _backend.cupy.cuda.Device(index):
        return generator(index).random_sample(shape, dtype=_wide(dtype)).astype(dtype, copy=False)


def normal(shape, dtype, index):
    """Standard normal samples of a float dtype on device `index`."""
    with _backend.cupy.cuda.Device(index):
        return generator(index).standard_normal(shape, dtype=_wide(dtype)).astype(dtype, copy=False)


def integers(low, high, shape, index):
    """int64 samples uniform on [low, high) on device `index`."""
    with _backend.cupy.cuda.Device(index):
        return generator(index).randint(low, high, size=shape, dtype=np.int64)


def exponential(shape, index):
    """Exponential samples of rate 1 (float64) on device `index`."""
    with _backend.cupy.cuda.Device(index):
        return generator(index).standard_exponential(shape, dtype=np.float64)


def permutation(n, index):
    """A random permutation of 0..n-1 (int64) on device `index`."""
    with _backend.cupy.cuda.Device(index):
        return generator(index).permutation(n).astype(np.int64, copy=False)


def multinomial(probs, num_samples, replacement, index):
    """Indices drawn from each row of the 2-D float array `probs` (non-negative, each row with a positive
    sum) on device `index`: with replacement by inverse transform (row r's cumulative sums, scaled to
    end at 1 and shifted by r, make one sorted array for all rows); without, as the num_samples largest
    log(u) / p (the exponential race: one uniform per entry)."""
    cupy = _backend.cupy
    with cupy.cuda.Device(index):
        p = probs.astype(np.float64)
        rows, n = p.shape
        shift = cupy.arange(rows, dtype=np.float64)[:, None]
        if replacement:
            cdf = cupy.cumsum(p, axis=1)
            cdf = cdf / cdf[:, -1:] + shift
            draws = generator(index).random_sample((rows, num_samples)) + shift
            picks = cupy.searchsorted(cdf.ravel(), draws.ravel(), side="right").reshape(rows, num_samples)
            return cupy.minimum(picks - shift.astype(np.int64) * n, n - 1).astype(np.int64)
        u = generator(index).random_sample(p.shape)
        keys = cupy.where(p > 0, cupy.log(u) / cupy.where(p > 0, p, 1), -cupy.inf)
        return cupy.argsort(-keys, axis=1)[:, :num_samples].astype(np.int64)
