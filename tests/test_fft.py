"""distml.fft against torch.fft: values, dtypes and gradients (float64), sizes, dims, norms, errors."""
import numpy as np
import pytest
import torch

import distml

RNG = np.random.default_rng(0)


def loss(lib, y):
    """A real loss that weighs real and imaginary parts differently, so every gradient path counts."""
    if y.dtype.is_complex:
        re, im = lib.real(y), lib.imag(y)
        weights = lib.arange(re.numel(), dtype=re.dtype).reshape(re.shape) / re.numel()
        return (re * weights).sum() + (im * im).sum() + y.abs().sum()
    return (y * lib.arange(y.numel(), dtype=y.dtype).reshape(y.shape)).sum()


def run(lib, name, data, complex_input, kwargs):
    parts = [lib.tensor(d, requires_grad=True) for d in data]
    x = lib.complex(*parts) if complex_input else parts[0]
    y = getattr(lib.fft, name)(x, **kwargs)
    loss(lib, y).backward()
    return y, [p.grad for p in parts]


CASES = [
    ("fft", False, (6,), {}), ("fft", True, (2, 5), {"n": 8, "dim": 0}), ("fft", True, (3, 7), {"n": 4}),
    ("ifft", True, (4, 6), {"norm": "ortho"}), ("ifft", False, (5,), {"norm": "forward", "n": 7}),
    ("rfft", False, (3, 8), {}), ("rfft", False, (9,), {"n": 6, "norm": "ortho"}), ("rfft", False, (4, 5), {"dim": 0}),
    ("irfft", True, (3, 5), {}), ("irfft", True, (5,), {"n": 9}), ("irfft", True, (4, 4), {"n": 5, "norm": "forward"}),
    ("hfft", True, (6,), {}), ("ihfft", False, (7,), {"norm": "ortho"}),
    ("fft2", True, (3, 4, 5), {}), ("ifft2", True, (4, 6), {"s": (3, 8)}), ("rfft2", False, (2, 6, 6), {}),
    ("irfft2", True, (4, 5), {}), ("irfft2", True, (3, 4, 3), {"s": (5, 6)}),
    ("fftn", False, (2, 3, 4), {}), ("fftn", True, (2, 3, 4), {"s": (4, 4), "dim": (0, 2)}),
    ("ifftn", True, (3, 3), {"norm": "forward"}), ("rfftn", False, (2, 4, 6), {"dim": (1, 2)}),
    ("irfftn", True, (2, 3, 5), {}), ("irfftn", True, (3, 4), {"s": (3, 7)}),
]


@pytest.mark.parametrize("name,complex_input,shape,kwargs", CASES)
def test_transform_values_and_gradients_match_torch(name, complex_input, shape, kwargs):
    data = [RNG.standard_normal(shape) for _ in range(2 if complex_input else 1)]
    ours, our_grads = run(distml, name, data, complex_input, kwargs)
    theirs, their_grads = run(torch, name, data, complex_input, kwargs)
    assert str(ours.dtype).split(".")[1] == str(theirs.dtype).split(".")[1]
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().resolve_conj().numpy(), atol=1e-10)
    for g_ours, g_theirs in zip(our_grads, their_grads):
        np.testing.assert_allclose(g_ours.numpy(), g_theirs.numpy(), atol=1e-9)


@pytest.mark.parametrize("dtype,expected", [("float32", "complex64"), ("float64", "complex128"), ("int64", "complex64")])
def test_result_dtypes_follow_input_precision(dtype, expected):
    x = distml.arange(8).to(getattr(distml, dtype))
    t = torch.arange(8).to(getattr(torch, dtype))
    assert distml.fft.fft(x).dtype.name == str(torch.fft.fft(t).dtype).split(".")[1] == expected
    assert distml.fft.irfft(distml.fft.rfft(x)).dtype.name == str(torch.fft.irfft(torch.fft.rfft(t)).dtype).split(".")[1]


def test_round_trips_and_frequencies():
    x = distml.tensor(RNG.standard_normal((4, 10)))
    np.testing.assert_allclose(distml.fft.irfft(distml.fft.rfft(x), n=10).numpy(), x.numpy(), atol=1e-12)
    np.testing.assert_allclose(distml.real(distml.fft.ifft(distml.fft.fft(x))).numpy(), x.numpy(), atol=1e-12)
    for n, d in ((8, 1.0), (7, 0.5)):
        np.testing.assert_allclose(distml.fft.fftfreq(n, d).numpy(), torch.fft.fftfreq(n, d).numpy())
        np.testing.assert_allclose(distml.fft.rfftfreq(n, d).numpy(), torch.fft.rfftfreq(n, d).numpy())


@pytest.mark.parametrize("dim", [None, 0, (1,), (0, 1)])
def test_shifts_match_torch(dim):
    x = np.arange(30.0).reshape(5, 6)
    for name in ("fftshift", "ifftshift"):
        ours = getattr(distml.fft, name)(distml.tensor(x), dim=dim)
        theirs = getattr(torch.fft, name)(torch.tensor(x), dim=dim)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_complex_parts_and_their_gradients_match_torch():
    re, im = RNG.standard_normal(5), RNG.standard_normal(5)

    def parts(lib):
        a, b = lib.tensor(re, requires_grad=True), lib.tensor(im, requires_grad=True)
        z = lib.complex(a, b)
        pieces = [z.abs(), z.angle(), lib.real(z.conj() * 2), lib.imag(z.conj()), lib.view_as_real(z).sum(-1),
                  lib.real(lib.polar(a.abs(), b)), lib.real(lib.view_as_complex(lib.stack([a, b], -1)))]
        sum(p.sum() * (i + 1) for i, p in enumerate(pieces)).backward()
        return [p.detach() for p in pieces] + [a.grad, b.grad]
    for ours, theirs in zip(parts(distml), parts(torch)):
        np.testing.assert_allclose(ours.numpy(), theirs.resolve_conj().resolve_neg().numpy(), atol=1e-12)


@pytest.mark.parametrize("call,error,message", [
    (lambda lib: lib.fft.rfft(lib.complex(lib.ones(4), lib.ones(4))), RuntimeError, "expects a real input"),
    (lambda lib: lib.fft.fft(lib.ones(4), norm="bogus"), RuntimeError, "Invalid normalization mode"),
    (lambda lib: lib.fft.fft(lib.ones(4), n=0), RuntimeError, "Invalid number of data points"),
    (lambda lib: lib.fft.fftn(lib.ones(4, 4), s=(4, 4), dim=(0,)), RuntimeError, "must have the same length"),
    (lambda lib: lib.imag(lib.ones(3)), RuntimeError, "imag is not implemented for tensors with non-complex dtypes"),
    (lambda lib: lib.fft.fft(lib.ones(4), dim=2), IndexError, "Dimension out of range"),
])
def test_errors_match_torch(call, error, message):
    for lib in (torch, distml):
        with pytest.raises(error, match=message):
            call(lib)


def test_real_and_imag_properties_match_torch():
    for lib in (distml, torch):
        z = lib.fft.fft(lib.arange(5, dtype=lib.float64))
        assert lib.equal(z.real, lib.real(z)) and lib.equal(z.imag, lib.imag(z))
        assert lib.ones(2).real.tolist() == [1.0, 1.0]
        with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex dtypes"):
            lib.ones(2).imag
    ours = distml.fft.rfft(distml.linspace(0, 1, 6, dtype=distml.float64))
    theirs = torch.fft.rfft(torch.linspace(0, 1, 6, dtype=torch.float64))
    np.testing.assert_allclose(ours.imag.numpy(), theirs.imag.numpy(), atol=1e-12)


def test_complex_products_have_torch_gradients():
    re, im = RNG.standard_normal((3, 3)), RNG.standard_normal((3, 3))
    real = RNG.standard_normal((3, 3))

    def run(lib):
        a, b = lib.tensor(re, requires_grad=True), lib.tensor(im, requires_grad=True)
        r = lib.tensor(real, requires_grad=True)
        w = lib.complex(a, b)
        rc = r.to(w.dtype)
        pieces = [w * w.conj(), w * r, r * w, w / (w + 3), r / (w + 3), w @ w.conj(), w @ rc, rc @ w]
        sum(((p.real if p.dtype.is_complex else p) * (i + 1)).sum() + (p.imag * p.imag).sum()
            for i, p in enumerate(pieces)).backward()
        return a.grad, b.grad, r.grad
    for ours, theirs in zip(run(distml), run(torch)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-10)
