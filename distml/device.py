"""`distml.device`: where a tensor's data lives ("cpu", "cuda", "cuda:1"), parsed as `torch.device` is.

Every device type PyTorch names is a valid device; distml holds tensors only on "cpu" and "cuda"
(see `_backend.no_tensors_on` for the errors elsewhere).
"""
import re

from distml import _backend

TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga", "maia", "xla",
         "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")
_DEVICE_STRING = re.compile(r"([A-Za-z_]+)(?::(0|[1-9][0-9]*))?")
_SIGNATURES = "\n * (distml.device device)\n * (str type, int index = -1)"


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class device:
    """A device: `distml.device("cuda:0")`, `distml.device("cuda", 1)`, `distml.device(type="cpu")`,
    `distml.device(0)` (the accelerator's device 0: cuda, when cupy is installed)."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): argument 'type' (position 1) must be str, not distml.device")
            self.type, self.index = type.type, type.index
            return
        if _is_int(type) and index is None:
            type, index = _accelerator_device(type)
        elif not isinstance(type, str):
            if index is not None:
                raise TypeError(f"device(): argument 'type' (position 1) must be str, not {type.__class__.__name__}")
            raise TypeError(f"device() received an invalid combination of arguments - got "
                            f"({type.__class__.__name__}), but expected one of:{_SIGNATURES}")
        if index is not None and not _is_int(index):
            raise TypeError(f"device(): argument 'index' (position 2) must be int, not {index.__class__.__name__}")
        kind, parsed = _parse(type)
        if parsed is not None and index is not None:
            raise RuntimeError(f"type (string) must not include an index because index was passed explicitly: {type}")
        index = parsed if index is None else index
        if index is not None and index < 0:
            raise RuntimeError("Device index must not be negative")
        self.type, self.index = kind, index

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        # Only devices compare equal, as in PyTorch: device("cpu") == "cpu" is False.
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __reduce__(self):
        return (device, (self.type,) if self.index is None else (self.type, self.index))


def _parse(spec):
    """("cuda", 1) from "cuda:1", with PyTorch's errors for malformed strings and unknown types."""
    if not spec:
        raise RuntimeError("Device string must not be empty")
    match = _DEVICE_STRING.fullmatch(spec)
    if match is None:
        raise RuntimeError(f"Invalid device string: '{spec}'")
    kind, number = match.groups()
    if kind not in TYPES:
        raise RuntimeError(f"Expected one of {', '.join(TYPES)} device type at start of device string: {kind}")
    return kind, None if number is None else int(number)


def _accelerator_device(index):
    """`device(0)`: index 0 of the accelerator, which is cuda once cupy is installed."""
    if index < 0:
        raise RuntimeError("Device index must not be negative")
    if _backend.cupy is None:
        raise RuntimeError("Cannot access accelerator device when none is available.")
    return "cuda", index


CPU = device("cpu")
