"""`distml.fft`: discrete Fourier transforms with gradients, as `torch.fft`.

    spectrum = distml.fft.rfft(signal)           # complex, n // 2 + 1 frequencies
    power = spectrum.abs().square().sum()
    power.backward()                             # gradients flow back to `signal`

Three primitives carry every transform: complex-to-complex (fft, ifft, fft2, fftn, ...),
real-to-complex (rfft*) and complex-to-real (irfft*, and hfft/ihfft through them). Each
backward is the transform's adjoint: the opposite direction with the dual normalisation
("backward" <-> "forward", "ortho" stays), zero-padded or cropped back to the input's
length. Gradients of complex tensors follow PyTorch's convention (the conjugate Wirtinger
derivative), so `z.abs()` backward is `grad * z / |z|`.
"""
import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.amp.autocast_mode import autocast_op
from distml.autograd.function import Primitive
from distml.ops._util import normalize_dims


_DUAL_NORM = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _resize(array, axes, sizes):
    """array cropped or zero-padded (at the end) along `axes` to `sizes`."""
    xp = get_array_module(array)
    for axis, size in zip(axes, sizes):
        have = array.shape[axis]
        if have > size:
            array = array[(slice(None),) * axis + (slice(0, size),)]
        elif have < size:
            pad = [(0, 0)] * array.ndim
            pad[axis] = (0, size - have)
            array = xp.pad(array, pad)
    return array


def _complex_precision(array):
    """The complex dtype a transform of `array` returns: complex64 for float32/complex64 input, else complex128."""
    return dtypes.complex_of(np.float32 if array.dtype in (np.float32, np.complex64, np.float16) else np.float64)


class ComplexFFT(Primitive):
    """Complex-to-complex transform over `axes`, each padded or cropped to `sizes` first."""
    saves_inputs = False

    def forward(self, x, sizes, axes, norm, inverse):
        xp = get_array_module(x)
        self.shape, self.dtype, self.args = x.shape, x.dtype, (axes, norm, inverse)
        transform = xp.fft.ifftn if inverse else xp.fft.fftn
        return transform(x, s=sizes, axes=axes, norm=norm).astype(_complex_precision(x), copy=False)

    def backward(self, grad):
        axes, norm, inverse = self.args
        xp = get_array_module(grad)
        adjoint = xp.fft.fftn if inverse else xp.fft.ifftn
        grad = _resize(adjoint(grad, axes=axes, norm=_DUAL_NORM[norm]), axes, [self.shape[a] for a in axes])
        return grad.real.astype(self.dtype) if self.dtype.kind != "c" else grad.astype(self.dtype, copy=False)


class RealFFT(Primitive):
    """Real-to-complex transform: the n // 2 + 1 non-negative frequencies of the last axis."""
    saves_inputs = False

    def forward(self, x, sizes, axes, norm):
        xp = get_array_module(x)
        self.shape, self.dtype, self.args = x.shape, x.dtype, (sizes, axes, norm)
        return xp.fft.rfftn(x, s=sizes, axes=axes, norm=norm).astype(_complex_precision(x), copy=False)

    def backward(self, grad):
        sizes, axes, norm = self.args
        xp = get_array_module(grad)
        full = _resize(grad, axes[-1:], sizes[-1:])  # the negative frequencies had no gradient
        grad = xp.fft.ifftn(full, axes=axes, norm=_DUAL_NORM[norm]).real
        return _resize(grad, axes, [self.shape[a] for a in axes]).astype(self.dtype, copy=False)


class InverseRealFFT(Primitive):
    """Complex-to-real transform: a Hermitian half spectrum along the last axis to a real signal."""
    saves_inputs = False

    def forward(self, x, sizes, axes, norm):
        xp = get_array_module(x)
        self.shape, self.dtype, self.args = x.shape, x.dtype, (sizes, axes, norm)
        out = xp.fft.irfftn(x, s=sizes, axes=axes, norm=norm)
        return out.astype(np.float32 if x.dtype == np.complex64 else np.float64, copy=False)

    def backward(self, grad):
        sizes, axes, norm = self.args
        xp = get_array_module(grad)
        grad = xp.fft.rfftn(grad, axes=axes, norm=_DUAL_NORM[norm])
        n = sizes[-1]
        mirrored = slice(1, n - n // 2)  # frequencies whose conjugate twin the half spectrum leaves out
        grad[(slice(None),) * axes[-1] + (mirrored,)] *= 2
        return _resize(grad, axes, [self.shape[a] for a in axes]).astype(self.dtype, copy=False)


def _plan(x, s, dim, default_dims, name):
    """(sizes, axes) for a transform of x, checking PyTorch's rules for `s` and `dim`."""
    ndim = x.array.ndim
    if dim is None:
        axes = tuple(range(ndim - len(s), ndim)) if s is not None else default_dims(ndim)
    else:
        axes = normalize_dims(dim, ndim)
    if s is not None and len(s) != len(axes):
        raise RuntimeError("When given, dim and shape arguments must have the same length")
    sizes = tuple(x.array.shape[a] if s is None or s[i] == -1 else s[i] for i, a in enumerate(axes))
    if any(n < 1 for n in sizes):
        raise RuntimeError(f"Invalid number of data points ({min(sizes)}) specified")
    if not axes:
        raise RuntimeError(f"{name} expects at least one dimension to transform")
    return sizes, axes


def _check_norm(norm):
    if norm is None:
        return "backward"
    if norm not in _DUAL_NORM:
        raise RuntimeError(f'Invalid normalization mode: "{norm}"')
    return norm


def _float_or_complex(x):
    if x.array.dtype.kind in "iub":
        from distml.ops.convert import cast
        return cast(x, dtypes.get_default_dtype())
    return x


def _real_input(x, name):
    if x.array.dtype.kind == "c":
        raise RuntimeError(f"{name} expects a real input tensor, but got {x.dtype.name.capitalize()}")
    return _float_or_complex(x)


def _one_dim(n, dim):
    return (None if n is None else (n,)), (dim,)


def _all_dims(ndim):
    return tuple(range(ndim))


def _complex_transform(x, s, dim, norm, inverse, default, name):
    x = _float_or_complex(x)
    sizes, axes = _plan(x, s, dim, default, name)
    return ComplexFFT.apply(x, sizes=sizes, axes=axes, norm=_check_norm(norm), inverse=inverse)


def _real_transform(x, s, dim, norm, default, name):
    x = _real_input(x, name)
    sizes, axes = _plan(x, s, dim, default, name)
    return RealFFT.apply(x, sizes=sizes, axes=axes, norm=_check_norm(norm))


def _inverse_real_transform(x, s, dim, norm, default, name):
    x = _float_or_complex(x)
    if x.array.dtype.kind != "c":
        from distml.ops.convert import cast
        x = cast(x, dtypes.complex_of(x.array.dtype))
    sizes, axes = _plan(x, s, dim, default, name)
    sizes = list(sizes)
    if s is None or s[-1] == -1:
        sizes[-1] = 2 * (x.array.shape[axes[-1]] - 1)
    if sizes[-1] < 1:
        raise RuntimeError(f"Invalid number of data points ({sizes[-1]}) specified")
    return InverseRealFFT.apply(x, sizes=tuple(sizes), axes=axes, norm=_check_norm(norm))


# ---- one-dimensional ----

@autocast_op(cpu="float32")
def fft(input, n=None, dim=-1, norm=None):
    """The discrete Fourier transform along `dim`: `distml.fft.fft(x)`."""
    return _complex_transform(input, *_one_dim(n, dim), norm, False, None, "fft")


@autocast_op(cpu="float32")
def ifft(input, n=None, dim=-1, norm=None):
    return _complex_transform(input, *_one_dim(n, dim), norm, True, None, "ifft")


@autocast_op(cpu="float32")
def rfft(input, n=None, dim=-1, norm=None):
    """The non-negative frequencies of a real signal's transform: `distml.fft.rfft(x)`."""
    return _real_transform(input, *_one_dim(n, dim), norm, None, "rfft")


@autocast_op(cpu="float32")
def irfft(input, n=None, dim=-1, norm=None):
    """The real signal of a half spectrum (length 2 * (m - 1) unless n is given)."""
    return _inverse_real_transform(input, *_one_dim(n, dim), norm, None, "irfft")


@autocast_op(cpu="float32")
def hfft(input, n=None, dim=-1, norm=None):
    """The real transform of a Hermitian-symmetric signal given by its first half."""
    return irfft(input.conj(), n, dim, _DUAL_NORM[_check_norm(norm)])


@autocast_op(cpu="float32")
def ihfft(input, n=None, dim=-1, norm=None):
    """The inverse of hfft: the first half of the inverse transform of a real signal."""
    return rfft(input, n, dim, _DUAL_NORM[_check_norm(norm)]).conj()


# ---- two- and n-dimensional ----

@autocast_op(cpu="float32")
def fft2(input, s=None, dim=(-2, -1), norm=None):
    return _complex_transform(input, s, dim, norm, False, None, "fft2")


@autocast_op(cpu="float32")
def ifft2(input, s=None, dim=(-2, -1), norm=None):
    return _complex_transform(input, s, dim, norm, True, None, "ifft2")


@autocast_op(cpu="float32")
def rfft2(input, s=None, dim=(-2, -1), norm=None):
    return _real_transform(input, s, dim, norm, None, "rfft2")


@autocast_op(cpu="float32")
def irfft2(input, s=None, dim=(-2, -1), norm=None):
    return _inverse_real_transform(input, s, dim, norm, None, "irfft2")


@autocast_op(cpu="float32")
def fftn(input, s=None, dim=None, norm=None):
    """The transform over `dim` (all dimensions by default, or the last len(s))."""
    return _complex_transform(input, s, dim, norm, False, _all_dims, "fftn")


@autocast_op(cpu="float32")
def ifftn(input, s=None, dim=None, norm=None):
    return _complex_transform(input, s, dim, norm, True, _all_dims, "ifftn")


@autocast_op(cpu="float32")
def rfftn(input, s=None, dim=None, norm=None):
    return _real_transform(input, s, dim, norm, _all_dims, "rfftn")


@autocast_op(cpu="float32")
def irfftn(input, s=None, dim=None, norm=None):
    return _inverse_real_transform(input, s, dim, norm, _all_dims, "irfftn")


# ---- frequencies and shifts ----

def fftfreq(n, d=1.0, *, dtype=None, device=None, requires_grad=False):
    """Sample frequencies of an n-point transform: [0, 1, ..., -1] / (d * n)."""
    from distml.creation import tensor
    return tensor(np.fft.fftfreq(n, d), dtype=dtype or dtypes.get_default_dtype(), device=device,
                  requires_grad=requires_grad)


def rfftfreq(n, d=1.0, *, dtype=None, device=None, requires_grad=False):
    from distml.creation import tensor
    return tensor(np.fft.rfftfreq(n, d), dtype=dtype or dtypes.get_default_dtype(), device=device,
                  requires_grad=requires_grad)


def fftshift(input, dim=None):
    """The zero frequency moved to the centre of `dim` (all dimensions by default)."""
    dims = _all_dims(input.array.ndim) if dim is None else normalize_dims(dim, input.array.ndim)
    return input.roll([input.array.shape[d] // 2 for d in dims], list(dims))


def ifftshift(input, dim=None):
    dims = _all_dims(input.array.ndim) if dim is None else normalize_dims(dim, input.array.ndim)
    return input.roll([-(input.array.shape[d] // 2) for d in dims], list(dims))
