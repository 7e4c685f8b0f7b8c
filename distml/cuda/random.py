"""The random generators of cuda tensors: one cupy.random.RandomState (cuRAND) per device, so
random tensors and dropout masks on a GPU are drawn there, with no copy from the host.

A generator is made on a device's first draw, from the seed last set for it (by
`distml.manual_seed`, `distml.cuda.manual_seed[_all]`), so seeding never starts CUDA. The streams
are cuRAND's: the same seed gives other numbers than PyTorch's Philox generator, and than
distml's CPU generator.

    distml.manual_seed(0)
    mask = distml.rand(64, 128, device="cuda") >= 0.5
"""
import numpy as np

from distml import _backend

_all_seed = int(np.random.SeedSequence().entropy % (2 ** 63))
_seeds = {}        # device index -> seed set for that device alone, since the last manual_seed_all
_generators = {}   # device index -> (seed, cupy RandomState)


def fresh_seed():
    return int(np.random.SeedSequence().entropy % (2 ** 63))


def manual_seed(seed, all_devices):
    """Seed every device's generator (all_devices) or the current device's."""
    global _all_seed
    if all_devices:
        _all_seed = seed
        _seeds.clear()
        _generators.clear()
        return
    if _backend.cuda_unavailable_reason() is not None:
        return  # PyTorch's CPU build accepts torch.cuda.manual_seed and has nothing to seed
    index = _backend.cupy.cuda.runtime.getDevice()
    _seeds[index] = seed
    _generators.pop(index, None)


def initial_seed(index):
    return _seeds.get(index, _all_seed)


def generator(index):
    """Device `index`'s cupy RandomState."""
    seed = initial_seed(index)
    made = _generators.get(index)
    if made is None or made[0] != seed:
        cupy = _backend.require_cupy()
        with cupy.cuda.Device(index):
            made = _generators[index] = (seed, cupy.random.RandomState(seed))
    return made[1]


def uniform(shape, dtype, index):
    """Uniform [0, 1) samples of a float dtype on device `index`."""
    cupy = _backend.cupy
    with cupy.cuda.Device(index):
        wide = dtype if dtype in (np.float32, np.float64) else np.float32
        return generator(index).random_sample(shape, dtype=wide).astype(dtype, copy=False)


def normal(shape, dtype, index):
    """Standard normal samples of a float dtype on device `index`."""
    cupy = _backend.cupy
    with cupy.cuda.Device(index):
        wide = dtype if dtype in (np.float32, np.float64) else np.float32
        return generator(index).standard_normal(shape, dtype=wide).astype(dtype, copy=False)
