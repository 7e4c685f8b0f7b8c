"""Padding layers over F.pad: constant (and zero), reflection, replication and circular, for 1 to 3
padded dims. `padding` is an int (every side) or a tuple (left, right[, top, bottom[, front, back]])."""
from distml.nn import functional as F
from distml.nn.module import Module


def _sides(padding, n):
    """PyTorch's _ntuple: an int repeated 2n times, any other iterable kept as a tuple."""
    return tuple(padding) if hasattr(padding, "__iter__") else (padding,) * (2 * n)


class _PadNd(Module):
    mode = "constant"

    def __init__(self, padding):
        super().__init__()
        self.padding = _sides(padding, self.dims)

    def forward(self, input):
        return F.pad(input, self.padding, self.mode)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = value

    def forward(self, input):
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pads the last dim with `value`: `nn.ConstantPad1d((1, 2), 3.5)`."""
    dims = 1


class ConstantPad2d(_ConstantPadNd):
    """Pads the last 2 dims with `value`: `nn.ConstantPad2d((1, 1, 2, 0), 0.5)`."""
    dims = 2


class ConstantPad3d(_ConstantPadNd):
    """Pads the last 3 dims with `value`: `nn.ConstantPad3d(1, -1.0)`."""
    dims = 3


class _ZeroPadNd(_ConstantPadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ZeroPad1d(_ZeroPadNd, ConstantPad1d):
    """Pads the last dim with zeros: `nn.ZeroPad1d(2)`."""


class ZeroPad2d(_ZeroPadNd, ConstantPad2d):
    """Pads the last 2 dims with zeros: `nn.ZeroPad2d((1, 1, 2, 0))`."""


class ZeroPad3d(_ZeroPadNd, ConstantPad3d):
    """Pads the last 3 dims with zeros: `nn.ZeroPad3d(1)`."""


class ReflectionPad1d(_PadNd):
    """Pads the last dim with its reflection (the edge not repeated): `nn.ReflectionPad1d(2)`."""
    dims, mode = 1, "reflect"


class ReflectionPad2d(_PadNd):
    dims, mode = 2, "reflect"


class ReflectionPad3d(_PadNd):
    dims, mode = 3, "reflect"


class ReplicationPad1d(_PadNd):
    """Pads the last dim by repeating its edge values: `nn.ReplicationPad1d((3, 1))`."""
    dims, mode = 1, "replicate"


class ReplicationPad2d(_PadNd):
    dims, mode = 2, "replicate"


class ReplicationPad3d(_PadNd):
    dims, mode = 3, "replicate"


class _CircularPadNd(_PadNd):
    mode = "circular"

    def forward(self, input):
        if input.dim() not in (self.dims + 1, self.dims + 2):
            raise ValueError(f"expected {self.dims + 1}D or {self.dims + 2}D input (got {input.dim()}D input)")
        return F.pad(input, self.padding, "circular")


class CircularPad1d(_CircularPadNd):
    """Pads the last dim with values wrapped around from the other end: `nn.CircularPad1d(2)`."""
    dims = 1


class CircularPad2d(_CircularPadNd):
    dims = 2


class CircularPad3d(_CircularPadNd):
    dims = 3
