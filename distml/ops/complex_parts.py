"""Complex tensors' parts: real, imag, conj, angle, and complex / polar / view_as_real to build
and take them apart, with gradients in PyTorch's convention (for a real loss L of z = x + iy,
the gradient is dL/dx + i dL/dy): `spectrum.real`, `distml.complex(re, im)`."""
import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.autograd.function import Primitive
from distml.ops.registry import register


class Real(Primitive):
    saves_inputs = False

    def forward(self, z):
        return z.real

    def backward(self, grad):
        return grad.astype(dtypes.complex_of(grad.dtype))


class Imag(Primitive):
    saves_inputs = False

    def forward(self, z):
        return z.imag

    def backward(self, grad):
        return (1j * grad).astype(dtypes.complex_of(grad.dtype))


class Conj(Primitive):
    saves_inputs = False

    def forward(self, z):
        return z.conj()

    def backward(self, grad):
        return grad.conj()


class Angle(Primitive):
    def forward(self, z):
        self.z = z
        return get_array_module(z).angle(z)

    def backward(self, grad):
        z = self.z
        if z.dtype.kind != "c":
            return grad * 0
        squared = (z * z.conj()).real
        squared[squared == 0] = 1
        return grad * (-z.imag + 1j * z.real) / squared  # d angle / d(re, im) = (-im, re) / |z|^2


class MakeComplex(Primitive):
    saves_inputs = False

    def forward(self, real, imag):
        return real + 1j * imag.astype(dtypes.complex_of(imag.dtype))

    def backward(self, grad):
        return grad.real, grad.imag


def _complex_only(z, name):
    if z.array.dtype.kind != "c":
        raise RuntimeError(f"{name} is not implemented for tensors with non-complex dtypes.")


@register(function=True)
def real(input):
    """The real part: `z.real` (for real tensors, the tensor itself)."""
    return Real.apply(input) if input.array.dtype.kind == "c" else input


@register(function=True)
def imag(input):
    _complex_only(input, "imag")
    return Imag.apply(input)


@register("conj_physical", "resolve_conj", method=True)
def conj(input):
    """The complex conjugate (real tensors are returned as they are)."""
    return Conj.apply(input) if input.array.dtype.kind == "c" else input


@register(method=True)
def angle(input):
    """The argument of each element (0 or pi for real tensors)."""
    from distml.ops.elementwise import _float_input
    return Angle.apply(input if input.array.dtype.kind == "c" else _float_input(input))


@register()
def complex(real, imag):
    """The complex tensor real + i * imag, from two float tensors of the same dtype."""
    if real.array.dtype != imag.array.dtype or real.array.dtype.kind != "f":
        raise RuntimeError(f"Expected both inputs to be Half, Float or Double tensors but got "
                           f"{real.dtype.legacy_name} and {imag.dtype.legacy_name}")
    return MakeComplex.apply(real, imag)


@register()
def polar(abs, angle):
    """The complex tensor abs * (cos(angle) + i sin(angle))."""
    return complex(abs * angle.cos(), abs * angle.sin())


@register()
def view_as_real(input):
    """A complex tensor's real and imaginary parts stacked in a last dimension of size 2."""
    _complex_only(input, "view_as_real")
    from distml.ops.shape import stack
    return stack([Real.apply(input), Imag.apply(input)], -1)


@register()
def view_as_complex(input):
    """The complex tensor whose parts are the last dimension (of size 2) of a float tensor."""
    if input.array.ndim == 0 or input.array.shape[-1] != 2:
        raise RuntimeError("Tensor must have a last dimension of size 2")
    return complex(input[..., 0], input[..., 1])
