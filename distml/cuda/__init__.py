"""`distml.cuda`: PyTorch's torch.cuda over CuPy (cupy-cuda13x, the extra distml[cuda]):

    device = distml.device("cuda" if distml.cuda.is_available() else "cpu")
    with distml.cuda.device(1):
        x = distml.randn(3, device="cuda")      # on cuda:1
    distml.cuda.synchronize()

Whether CUDA is usable is asked of distml._backend alone. While no device is usable (cupy missing,
no driver or no device) every function answers as PyTorch's CPU build does: AssertionError
("distml cannot use CUDA: <why>") for the calls that need a device, 0 / False / a no-op for the
rest. Streams and events are in distml/cuda/streams.py, the memory statistics (memory_stats,
memory_summary, ...) in _memory.py, the per-device generators (get_rng_state / set_rng_state) in
random.py.
"""
import contextlib

import numpy as np

from distml import _backend
from distml.device import device as Device
from distml.cuda import amp  # noqa: F401  (distml.cuda.amp.GradScaler)
from distml.cuda import _memory
from distml.cuda.streams import Event, Stream, current_stream, default_stream, set_stream, stream  # noqa: F401


def is_available():
    """True when distml can put tensors on a CUDA device: cupy imported and at least one device."""
    return _backend.cuda_device_count() > 0


def device_count():
    return _backend.cuda_device_count()


def _device_index(spec, optional=False):
    """PyTorch's reading of a device argument: an int as it is, "cuda:1" or device("cuda", 1) -> 1;
    without an index (None, "cuda") None if `optional` (the current device), else ValueError."""
    if isinstance(spec, int):
        return spec
    if isinstance(spec, device):
        return spec.idx
    index = None
    if isinstance(spec, (str, Device)):
        cuda = Device(spec)
        if cuda.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {cuda}")
        index = cuda.index
    if index is None and not optional:
        raise ValueError(f"Expected a distml.device with a specified index or an integer, but got:{spec}")
    return index


def _index(spec=None):
    """The device a call is about, as an int: `spec` read as `_device_index(optional=True)` does, the
    current device for None or a negative index; PyTorch's AssertionError without a usable device
    (raised before a wrong `spec`'s ValueError, as PyTorch checks)."""
    cupy = _backend.require_cupy()
    index = _device_index(spec, optional=True)
    if index is None or index < 0:
        return cupy.cuda.runtime.getDevice()
    return index  # one past the last device: cupy's CUDARuntimeError (a RuntimeError), "invalid device ordinal"


def is_bf16_supported(including_emulation=True):
    """Whether the current CUDA device computes in bfloat16 (compute capability 8.0 or later); False
    without a usable device, as PyTorch's CPU build answers. bfloat16 cuda tensors need CuPy 14 or
    later (bfloat16 arrays through ml_dtypes)."""
    if not is_available():
        return False
    return get_device_capability()[0] >= 8 or bool(including_emulation)


def is_initialized():
    """Whether this process has used CUDA through distml yet (made a cuda tensor or called a
    device function); False while no device is usable."""
    return is_available() and _backend.cuda_used()


def init():
    """Set CUDA up now rather than on first use: `distml.cuda.init()`."""
    _backend.require_cupy().cuda.Device().use()


def current_device():
    """The index of the current device: `distml.cuda.current_device()` -> 0."""
    return _backend.require_cupy().cuda.runtime.getDevice()


def set_device(device):
    """Select the current device: `distml.cuda.set_device(1)`; a negative index is a no-op."""
    index = _device_index(device)
    if index >= 0:
        _backend.require_cupy().cuda.runtime.setDevice(_index(index))


def synchronize(device=None):
    """Wait for every stream of a device (the current one by default) to finish its work."""
    with _backend.require_cupy().cuda.Device(_index(device)) as on:
        on.synchronize()


class _CudaDeviceProperties:
    """What `get_device_properties` returns: the fields PyTorch's has, read from cudaGetDeviceProperties."""

    def __init__(self, props):
        self.name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        self.major, self.minor = props["major"], props["minor"]
        self.total_memory = props["totalGlobalMem"]
        self.multi_processor_count = props["multiProcessorCount"]
        self.is_integrated = props["integrated"]
        self.is_multi_gpu_board = props["isMultiGpuBoard"]
        self.max_threads_per_multi_processor = props["maxThreadsPerMultiProcessor"]
        self.warp_size = props["warpSize"]
        self.L2_cache_size = props["l2CacheSize"]

    def __repr__(self):
        return (f"_CudaDeviceProperties(name='{self.name}', major={self.major}, minor={self.minor}, "
                f"total_memory={self.total_memory // 2 ** 20}MB, multi_processor_count={self.multi_processor_count}, "
                f"L2_cache_size={self.L2_cache_size // 2 ** 20}MB)")


def get_device_properties(device=None):
    """name, total_memory (bytes), major, minor, multi_processor_count, ... of a device."""
    index = _index(device)
    if index >= device_count():
        raise AssertionError("Invalid device id")
    return _CudaDeviceProperties(_backend.cupy.cuda.runtime.getDeviceProperties(index))


def get_device_name(device=None):
    """The device's name: 'NVIDIA H200'."""
    return get_device_properties(device).name


def get_device_capability(device=None):
    """The device's compute capability (major, minor): (9, 0) on an H100/H200."""
    props = get_device_properties(device)
    return props.major, props.minor


def mem_get_info(device=None):
    """(free, total) bytes of a device, as the driver counts them (memory cupy's pool holds is not free)."""
    _device_index(device, optional=True)
    with _backend.require_cupy().cuda.Device(_index(device)):
        return _backend.cupy.cuda.runtime.memGetInfo()


def empty_cache():
    """Release the device and pinned memory cupy's pools hold but no array uses; a no-op while no
    device is usable."""
    if is_available():
        _memory.empty_cache()


def _memory_stat(name, device):
    """0 while no device is usable, as PyTorch reports before CUDA is initialised."""
    if not is_available():
        return 0
    return _memory.stat(name, _index(device))


def memory_allocated(device=None):
    """Bytes the device's arrays use now (cupy's pool's used_bytes); see distml/cuda/_memory.py for how
    this differs from PyTorch's caching allocator."""
    return _memory_stat("allocated", device)


def max_memory_allocated(device=None):
    """The peak of memory_allocated since the start or the last reset_peak_memory_stats."""
    return _memory_stat("max_allocated", device)


def memory_reserved(device=None):
    """Bytes cupy's pool holds on the device (used or cached for reuse)."""
    return _memory_stat("reserved", device)


def max_memory_reserved(device=None):
    """The peak of memory_reserved since the start or the last reset_peak_memory_stats."""
    return _memory_stat("max_reserved", device)


def memory_stats(device=None):
    """PyTorch's statistics dict for a device, with the keys cupy's pool can answer:
    "allocated_bytes.all.current" / ".peak", "reserved_bytes.all.current" / ".peak",
    "active_bytes.all.current" / ".peak" (as allocated: cupy frees a block when its array dies) and
    "inactive_split.all.current" (the pool's cached free blocks); {} while no device is usable, as
    PyTorch answers before CUDA starts."""
    if not is_available():
        return {}
    return _memory.stats(_index(device))


def memory_summary(device=None, abbreviated=False):
    """A printable table of memory_stats: `print(distml.cuda.memory_summary())`."""
    stats = _memory.stats(_index(device))
    rows = [("Allocated memory", "allocated_bytes"), ("Active memory", "active_bytes"),
            ("GPU reserved memory", "reserved_bytes")]
    lines = [f"distml CUDA memory summary, device ID {_index(device)} (cupy's default memory pool)",
             f"{'Metric':<24}{'Cur Usage':>14}{'Peak Usage':>14}"]
    lines += [f"{label:<24}{_memory.readable(stats[key + '.all.current']):>14}"
              f"{_memory.readable(stats[key + '.all.peak']):>14}" for label, key in rows]
    if not abbreviated:
        lines.append(f"{'Free cached blocks':<24}{stats['inactive_split.all.current']:>14}")
    width = max(len(line) for line in lines)
    return "\n".join(["=" * width, *lines[:2], "-" * width, *lines[2:], "=" * width]) + "\n"


def reset_peak_memory_stats(device=None):
    """Start the peaks of max_memory_allocated / max_memory_reserved again from the current values."""
    _device_index(device, optional=True)
    _memory.reset_peaks(_index(device))


# Seeding: every cuda device has its own generator (distml/cuda/random.py), made on first use from the
# seed these set, so seeding never initialises CUDA; distml.manual_seed seeds them all.

def manual_seed(seed):
    """Seed the current device's generator: `distml.cuda.manual_seed(0)`."""
    from distml.cuda import random
    random.manual_seed(int(seed), all_devices=False)


def manual_seed_all(seed):
    """Seed every device's generator."""
    from distml.cuda import random
    random.manual_seed(int(seed), all_devices=True)


def seed():
    """Seed the current device's generator from the OS's entropy."""
    from distml.cuda import random
    random.manual_seed(random.fresh_seed(), all_devices=False)


def seed_all():
    """Seed every device's generator from the OS's entropy."""
    from distml.cuda import random
    random.manual_seed(random.fresh_seed(), all_devices=True)


def initial_seed():
    """The seed of the current device's generator; PyTorch's AssertionError while no device is usable."""
    from distml.cuda import random
    return random.initial_seed(current_device())


def get_rng_state(device="cuda"):
    """A device's generator state as a uint8 tensor (16 bytes: seed and offset, as PyTorch's):
    `state = distml.cuda.get_rng_state(); ...; distml.cuda.set_rng_state(state)`."""
    from distml.cuda import random
    from distml.tensor import Tensor
    return Tensor(random.get_state(_index(device)))


def set_rng_state(new_state, device="cuda"):
    """Set a device's generator state from get_rng_state's tensor (a no-op while no device is usable,
    as PyTorch's CPU build defers it)."""
    from distml.cuda import random
    array = new_state.detach().cpu().array
    if array.dtype != np.uint8:
        raise TypeError(f"expected a uint8 tensor for the RNG state, got {new_state.dtype}")
    if array.size != 16:
        raise RuntimeError("RNG state is wrong size")
    if is_available():
        random.set_state(_index(device), array.reshape(-1))


def get_rng_state_all():
    """Every device's generator state, in device order ([] without a device)."""
    return [get_rng_state(i) for i in range(device_count())]


def set_rng_state_all(new_states):
    """Set each device's generator state from get_rng_state_all's list."""
    for index, state in enumerate(new_states):
        set_rng_state(state, index)


class device:
    """Make `device` current inside a `with` block: `with distml.cuda.device(1): ...`;
    a no-op for None or a negative index."""

    def __init__(self, device):
        self.idx = _device_index(device, optional=True)
        self._outer = contextlib.nullcontext()

    def __enter__(self):
        if self.idx is None or self.idx < 0:
            return
        reason = _backend.cuda_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"distml.cuda.device({self.idx}): distml cannot use CUDA: {reason}")
        self._outer = _backend.require_cupy().cuda.Device(_index(self.idx))
        self._outer.__enter__()

    def __exit__(self, *exc_info):
        outer, self._outer = self._outer, contextlib.nullcontext()
        outer.__exit__(*exc_info)
        return False
