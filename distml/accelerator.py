"""`distml.accelerator`: PyTorch's device-generic API (torch.accelerator, PyTorch 2.6+).

distml's accelerator is CUDA, through cupy: `current_accelerator()` is device("cuda") once cupy is
installed, and the rest hands over to distml.cuda once a device is usable. Without one, they answer
as PyTorch's CPU build does:

    device = distml.accelerator.current_accelerator(check_available=True) or distml.device("cpu")
"""
from distml import _backend, cuda
from distml.device import device as Device


def current_accelerator(check_available=False):
    """device("cuda") when cupy is installed (and, with check_available, a device is usable), else None."""
    if _backend.cupy is None or (check_available and not cuda.is_available()):
        return None
    return Device("cuda")


def is_available():
    return cuda.is_available()


def device_count():
    return cuda.device_count()


def _require_device():
    reason = _backend.cuda_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"Cannot access accelerator device when none is available. (distml cannot use CUDA: "
                           f"{reason})")


def _device_index(spec, optional=False):
    """An int as it is, "cuda:1" -> 1; None (or "cuda") only if `optional`, meaning the current device."""
    if isinstance(spec, int):
        return spec
    index = None
    if isinstance(spec, (str, Device)):
        accelerator = Device(spec)
        if accelerator.type != "cuda":
            raise RuntimeError(f"Accelerator expected: distml's accelerator is cuda, got {accelerator}")
        index = accelerator.index
    if index is None and not optional:
        raise ValueError(f"Expected a distml.device with a specified index or an integer, but got:{spec}")
    return index


def current_device_index():
    _require_device()
    return cuda.current_device()


def set_device_index(device, /):
    """Make `device` current; a negative index is a no-op."""
    index = _device_index(device)
    if index >= 0:
        _require_device()
        cuda.set_device(index)


def synchronize(device=None, /):
    """Wait for the work queued on `device` (the current one by default)."""
    index = _device_index(device, optional=True)
    _require_device()
    cuda.synchronize(index)


class device_index:
    """Make a device index current inside a `with` block; a no-op for None."""

    def __init__(self, device, /):
        self.idx = device

    def __enter__(self):
        if self.idx is not None:
            _require_device()
            self._cuda = cuda.device(self.idx)
            self._cuda.__enter__()

    def __exit__(self, *exc_info):
        if self.idx is not None:
            self._cuda.__exit__(*exc_info)
        return False


def empty_cache():
    _require_device()
    cuda.empty_cache()


def memory_allocated(device_index=None, /):
    _require_device()
    return cuda.memory_allocated(device_index)


def max_memory_allocated(device_index=None, /):
    _require_device()
    return cuda.max_memory_allocated(device_index)


def memory_reserved(device_index=None, /):
    _require_device()
    return cuda.memory_reserved(device_index)


def max_memory_reserved(device_index=None, /):
    _require_device()
    return cuda.max_memory_reserved(device_index)


def reset_peak_memory_stats(device_index=None, /):
    _require_device()
    cuda.reset_peak_memory_stats(device_index)


def get_memory_info(device_index=None, /):
    """(free, total) bytes of a device."""
    _require_device()
    return cuda.mem_get_info(device_index)
