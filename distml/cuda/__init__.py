"""`distml.cuda`: PyTorch's torch.cuda device boilerplate, answering as PyTorch's CPU build does
while no CUDA device is usable (cupy missing, no driver or no device):

    device = distml.device("cuda" if distml.cuda.is_available() else "cpu")

Whether CUDA is usable is asked of distml._backend alone. The functions that need a device raise
PyTorch's AssertionError without one; with one, they reach `_device_call`, where the cupy
version of each is still to be written.
"""
from distml import _backend
from distml.device import device as Device
from distml.cuda import amp  # noqa: F401  (distml.cuda.amp.GradScaler)


def is_available():
    """True when distml can put tensors on a CUDA device: cupy imported and at least one device."""
    return _backend.cuda_device_count() > 0


def is_bf16_supported(including_emulation=True):
    """Whether the current CUDA device computes in bfloat16: False without a usable device, as
    PyTorch's CPU build answers."""
    if not is_available():
        return False
    return _device_call("is_bf16_supported")


def device_count():
    return _backend.cuda_device_count()


def _device_call(name):
    """The GPU path of `name`: PyTorch's AssertionError when no CUDA device is usable; with one,
    NotImplementedError until the cupy version is written."""
    _backend.require_cupy()
    raise NotImplementedError(f"distml.cuda.{name} on a CUDA device is not implemented yet")


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


def is_initialized():
    """Whether CUDA has been set up in this process; False while no device is usable."""
    if not is_available():
        return False
    _device_call("is_initialized")


def init():
    _device_call("init")


def current_device():
    _device_call("current_device")


def set_device(device):
    """Select the current device: `distml.cuda.set_device(0)`; a negative index is a no-op."""
    if _device_index(device) >= 0:
        _device_call("set_device")


def synchronize(device=None):
    _device_call("synchronize")


def get_device_name(device=None):
    _device_call("get_device_name")


def get_device_properties(device=None):
    _device_call("get_device_properties")


def get_device_capability(device=None):
    _device_call("get_device_capability")


def mem_get_info(device=None):
    """(free, total) bytes of a device."""
    _device_index(device, optional=True)
    _device_call("mem_get_info")


def empty_cache():
    """Release cached device memory; nothing to release while no device is usable."""
    if is_available():
        _device_call("empty_cache")


def _memory_stat(name):
    """0 while no device is usable, as PyTorch reports before CUDA is initialised."""
    if is_available():
        _device_call(name)
    return 0


def memory_allocated(device=None):
    return _memory_stat("memory_allocated")


def max_memory_allocated(device=None):
    return _memory_stat("max_memory_allocated")


def memory_reserved(device=None):
    return _memory_stat("memory_reserved")


def max_memory_reserved(device=None):
    return _memory_stat("max_memory_reserved")


def reset_peak_memory_stats(device=None):
    _device_index(device, optional=True)
    _device_call("reset_peak_memory_stats")


# Seeding. distml draws every random number on the host from distml's default generator, cuda
# tensors included (see distml.random), so there is no CUDA generator to seed: these check their
# argument as PyTorch does and change nothing. Seed with distml.manual_seed.

def manual_seed(seed):
    """Accepted for PyTorch programs; cuda tensors draw from `distml.manual_seed`'s generator."""
    int(seed)


def manual_seed_all(seed):
    """Accepted for PyTorch programs; cuda tensors draw from `distml.manual_seed`'s generator."""
    int(seed)


def seed():
    """Accepted for PyTorch programs; cuda tensors draw from distml's default generator."""


def seed_all():
    """Accepted for PyTorch programs; cuda tensors draw from distml's default generator."""


def initial_seed():
    """The seed of the generator cuda tensors draw from (distml's default one); PyTorch's
    AssertionError while no device is usable."""
    from distml.random import default_generator
    _backend.require_cupy()
    return default_generator.initial_seed()


class device:
    """Make `device` current inside a `with` block: `with distml.cuda.device(1): ...`;
    a no-op for None or a negative index."""

    def __init__(self, device):
        self.idx = _device_index(device, optional=True)

    def __enter__(self):
        if self.idx is None or self.idx < 0:
            return
        reason = _backend.cuda_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"distml.cuda.device({self.idx}): distml cannot use CUDA: {reason}")
        _device_call("device")

    def __exit__(self, *exc_info):
        return False
