"""The Tensor surface as PyTorch programs use it: legacy constructors and types, factory overloads,
out=, scalars in where/clamp, Python protocols, properties, dtype helpers. Every table row is one
expression run with `T` bound to torch and to distml; results (shape, dtype, values) or the error
type (and the key part of its message) must agree."""
import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import torch

import distml

ENV = {"np": np, "math": math, "copy": copy}


def _run(expr, module):
    """(value, exception, warning categories) of expr with T = module."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, error = eval(expr, dict(ENV, T=module)), None
        except Exception as e:  # noqa: BLE001  (the error is what is compared)
            value, error = None, e
    return value, error, sorted({w.category.__name__ for w in caught if w.category is not ResourceWarning})


def _same(expected, got, values=True):
    """got (distml) agrees with expected (torch): tensors by shape, dtype, requires_grad (and values)."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, distml.Tensor), got
        assert tuple(got.shape) == tuple(expected.shape)
        assert got.dtype.name == str(expected.dtype).split(".")[-1]
        assert got.requires_grad == expected.requires_grad
        if expected.is_conj():
            expected = expected.resolve_conj()
        if values:
            got_values = got.detach().float() if got.dtype.name == "bfloat16" else got.detach()
            expected_values = expected.detach().float() if expected.dtype == torch.bfloat16 else expected.detach()
            compare = np.testing.assert_array_equal if values is True else np.testing.assert_allclose
            compare(got_values.numpy(), expected_values.numpy(), **({} if values is True else dict(rtol=3e-7)))
    elif isinstance(expected, torch.Size):
        assert isinstance(got, distml.Size) and tuple(got) == tuple(expected)
    elif isinstance(expected, (tuple, list)):
        assert type(got) is type(expected) and len(got) == len(expected), (got, expected)
        for e, g in zip(expected, got):
            _same(e, g, values)
    elif isinstance(expected, torch.dtype):
        assert isinstance(got, distml.dtype) and got.name == str(expected).split(".")[-1]
    elif isinstance(expected, (torch.layout, torch.memory_format)):
        assert repr(got).split(".")[-1] == repr(expected).split(".")[-1]
    elif isinstance(expected, torch.device):
        assert isinstance(got, distml.device) and str(got) == str(expected)
    elif isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    else:
        assert type(got) is type(expected) and got == expected, (got, expected)


def check(expr, key=None, values=True):
    """expr agrees under torch and distml; key: a part both error messages contain; values: compare
    values exactly (True), to a float32 ulp ("close"), or not at all (False: random, uninitialised)."""
    expected, expected_error, expected_warnings = _run(expr, torch)
    got, got_error, got_warnings = _run(expr, distml)
    if expected_error is not None:
        assert type(got_error) is type(expected_error), (expr, expected_error, got_error, got)
        if key is not None:
            assert key in str(expected_error), (key, str(expected_error))
            assert key in str(got_error), (key, str(got_error))
        return
    assert got_error is None, (expr, got_error)
    _same(expected, got, values)
    assert got_warnings == expected_warnings, (expr, got_warnings, expected_warnings)


def table(*rows):
    """pytest parameters from rows that are expressions or (expression, key-or-None[, values])."""
    return pytest.mark.parametrize("row", [r if isinstance(r, tuple) else (r,) for r in rows], ids=lambda r: r[0])


# ---- legacy constructors and types ----

@table(
    "T.Tensor()", "T.Tensor([2, 3])", "T.Tensor((2, 3))", "T.Tensor([[1, 2], [3, 4]])", "T.Tensor([])",
    "T.Tensor([True])", "T.Tensor(range(3))", "T.Tensor([T.tensor(1.), T.tensor(2.)])",
    "T.Tensor(T.tensor([1, 2]))", "T.Tensor(T.tensor(2.))", "T.FloatTensor([1, 2], device='cpu')",
    ("T.Tensor(2, 3)", None, False), ("T.Tensor(3)", None, False), ("T.Tensor(T.Size([2, 3]))", None, False),
    ("T.FloatTensor(size=(2, 3))", None, False), ("T.FloatTensor(size=[2, 3])", None, False),
    ("T.FloatTensor(2, 3, device='cpu')", None, False), ("T.Tensor(2, T.tensor(3))", None, False),
    ("T.Tensor(2, np.int64(3))", None, False),
    ("T.Tensor(2.0)", "data must be a sequence (got float)"), ("T.Tensor(True)", "data must be a sequence (got bool)"),
    ("T.Tensor(None)", "data must be a sequence (got NoneType)"), ("T.Tensor({1: 2})", "(got dict)"),
    ("T.Tensor(x for x in [1])", "data must be a sequence (got generator)"), ("T.Tensor('ab')", "invalid data type 'str'"),
    ("T.Tensor(-1)", "Trying to create tensor with negative dimension -1: [-1]"),
    ("T.Tensor(2, 'a')", "failed to unpack the object at pos 2"), ("T.Tensor(2, 3.0)", "type must be tuple of ints"),
    ("T.Tensor([1, 2], [3])", "received an invalid combination of arguments - got (list, list)"),
    ("T.Tensor(np.array([1, 2]), 2)", "got (numpy.ndarray, int)"),
    ("T.FloatTensor(2, size=(2, 3))", "got (int, size=tuple)"), ("T.Tensor([1], dtype=T.float64)", None),
    ("T.FloatTensor(T.tensor([1.]), device='cpu')", "Legacy tensor constructor of the form torch.Tensor(tensor, device"),
    ("T.FloatTensor(2, device='meta')", "legacy constructor expects device type: cpu but device type: meta was passed"),
    "T.FloatTensor([1, 2])", "T.LongTensor([1.5, 2])", "T.BoolTensor([1, 0])", "T.HalfTensor([1])",
    "T.DoubleTensor([[1], [2]])", "T.IntTensor([1, 2])", "T.ShortTensor([1])", "T.CharTensor([-1])",
    "T.ByteTensor([1, 255])", "T.BFloat16Tensor([1.5])", "T.FloatTensor()", "T.FloatTensor(np.array([1, 2]))",
    "T.FloatTensor(T.tensor([1., 2.]))", ("T.LongTensor(2, 3)", None, False), ("T.FloatTensor(size=(2,))", None, False),
    ("T.DoubleTensor(T.Size([2]))", None, False), ("T.FloatTensor(T.tensor([1, 2]))", None),
    ("T.LongTensor(T.tensor([1.]))", None), ("T.FloatTensor(3.0)", "data must be a sequence (got float)"),
    ("T.ByteTensor([1, 300])", "value cannot be converted to type uint8 without overflow"),
    ("T.IntTensor([2 ** 40])", "value cannot be converted to type int32 without overflow"),
    "isinstance(T.zeros(2), T.FloatTensor)", "isinstance(T.zeros(2, dtype=T.float64), T.FloatTensor)",
    "isinstance(T.zeros(2, dtype=T.float64), T.DoubleTensor)", "isinstance(T.zeros(2, dtype=T.int64), T.LongTensor)",
    "isinstance(T.nn.Parameter(T.zeros(2)), T.FloatTensor)", "isinstance(T.zeros(2), T.Tensor)",
    "isinstance([1.], T.FloatTensor)", "issubclass(T.FloatTensor, T.Tensor)", "T.FloatTensor == T.Tensor",
    "T.FloatTensor.__name__", "T.DoubleTensor.dtype", "T.LongTensor.is_cuda", "T.FloatTensor.layout",
    "T.FloatTensor.is_sparse", "type(T.FloatTensor(2)) is T.Tensor", "T.FloatTensor(2, 3).type()",
)
def test_legacy_constructors_and_types(row):
    check(*row)


def test_legacy_constructor_aliases_and_wraps():
    t = distml.tensor([1, 2])
    alias = distml.Tensor(t)
    alias[0] = 5
    assert t.tolist() == [5, 2] and alias.dtype is distml.int64 and alias._version is t._version
    x = distml.tensor([1.0, 2.0], dtype=distml.float64, requires_grad=True)
    (distml.Tensor(x) * 3).sum().backward()  # PyTorch's alias is differentiable (AliasBackward0)
    assert x.grad.tolist() == [3.0, 3.0]
    # distml's own Tensor(array) wraps any numpy array without copying (PyTorch would copy to float32)
    a = np.arange(3)
    wrapped = distml.Tensor(a)
    assert wrapped.array is a and wrapped.dtype is distml.int64
    assert distml.Tensor(np.float64(2.0)).shape == () and distml.Tensor(np.float64(2.0)).dtype is distml.float64
    with pytest.raises(TypeError, match="new\\(\\) received an invalid combination"):
        distml.FloatTensor(np.zeros(2), 2)
    # distml.Tensor takes no keywords, to keep Tensor(array) fast: PyTorch's size=/device= forms are FloatTensor's
    with pytest.raises(TypeError, match="unexpected keyword argument 'size'"):
        distml.Tensor(size=(2, 3))
    assert pickle.loads(pickle.dumps(distml.FloatTensor)) is distml.FloatTensor


@table(
    "T.zeros(2).type()", "T.zeros(2, dtype=T.float64).type()", "T.zeros(2, dtype=T.int64).type()",
    "T.zeros(2, dtype=T.bool).type()", "T.zeros(2, dtype=T.half).type()", "T.zeros(2, dtype=T.bfloat16).type()",
    "T.zeros(2, dtype=T.int8).type()", "T.zeros(2, dtype=T.uint8).type()", "T.zeros(2, dtype=T.int16).type()",
    "T.zeros(2, dtype=T.int32).type()", "T.zeros(2, dtype=T.complex64).type()",
    "T.tensor([1.5, 2.]).type(T.LongTensor)", "T.tensor([1.5, 2.]).type('torch.LongTensor')",
    "T.tensor([1.5, 2.]).type(T.int32)", "T.tensor([1.5, 2.]).type(T.Tensor)", "T.tensor([1, 2]).type(T.FloatTensor)",
    "T.tensor([1.5]).type(T.float64, non_blocking=True)", "T.tensor([1.5]).type(dtype=T.float64)",
    "(lambda t: t.type(T.float32) is t)(T.zeros(2))", "(lambda t: t.type(T.FloatTensor) is t)(T.zeros(2))",
    "(lambda t: t.type('torch.FloatTensor') is t)(T.zeros(2))",
    ("T.zeros(2).type('torch.foo')", "invalid type: 'torch.foo'"), ("T.zeros(2).type('float')", "invalid type: 'float'"),
    ("T.zeros(2).type(int)", "invalid type: 'int'"), ("T.zeros(2).type(float)", "invalid type: 'float'"),
    "T.zeros(2).type_as(T.zeros(2, dtype=T.int64))", "T.zeros(2, dtype=T.int64).type_as(T.zeros(1))",
    "(lambda t: t.type_as(t) is t)(T.zeros(2))",
    ("T.zeros(2).type_as(2)", "type_as(): argument 'other' (position 1) must be Tensor, not int"),
)
def test_type_strings_and_conversions(row):
    check(*row)


def test_type_accepts_distml_names_too():
    x = distml.tensor([1.5, 2.0])
    assert x.type("distml.LongTensor").tolist() == [1, 2]
    assert x.type("distml.DoubleTensor").dtype is distml.float64


def test_set_default_tensor_type_as_torch():
    with pytest.warns(UserWarning, match="set_default_tensor_type\\(\\) is deprecated"):  # PyTorch warns once
        distml.set_default_tensor_type(distml.FloatTensor)
    for module in (torch, distml):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for arg in ("torch.DoubleTensor", module.DoubleTensor):
                module.set_default_tensor_type(arg)
                assert module.get_default_dtype() is module.float64 and module.Tensor(1).dtype is module.float64
                assert isinstance(module.zeros(1), module.DoubleTensor) and module.zeros(1).type() == "torch.DoubleTensor"
                module.set_default_tensor_type(module.FloatTensor)
                assert module.tensor(1.0).dtype is module.float32
            for bad in ("torch.LongTensor", module.float64, "torch.cuda.FloatTensor"):
                with pytest.raises(TypeError):
                    module.set_default_tensor_type(bad)
        assert module.get_default_dtype() is module.float32


# ---- factories ----

@table(
    "T.zeros(size=(2, 3))", "T.zeros((2, 3))", "T.zeros([2, 3])", "T.zeros(T.Size([2, 3]))", "T.zeros(np.int64(2))",
    "T.zeros(T.tensor(2))", "T.zeros([T.tensor(2), 3])", "T.zeros(())", "T.zeros([])", "T.ones(2, 3)",
    "T.ones(size=[2])", "T.zeros(2, dtype=float)", "T.zeros(2, dtype=int)", "T.zeros(2, dtype=bool)",
    "T.zeros(2, layout=T.strided)", "T.zeros(2, pin_memory=False)", "T.ones(2, requires_grad=True)",
    "T.zeros(2, device='cpu')", "T.zeros(2, device=T.device('cpu'))",
    ("T.empty(2, 3)", None, False), ("T.empty(size=(2, 3), dtype=T.int32)", None, False),
    ("T.empty(2, 3, memory_format=T.contiguous_format)", None, False),
    "T.empty(2, 3, 4, 5, memory_format=T.channels_last).stride()",
    "T.empty(2, 3, 4, 5, 6, memory_format=T.channels_last_3d).stride()",
    ("T.empty(2, 3, memory_format=T.channels_last)", "required rank 4 tensor to use channels_last format"),
    ("T.zeros(2, size=(3,))", "got multiple values for argument 'size'"),
    ("T.zeros((2,), 3)", "takes 1 positional argument but 2 were given"),
    ("T.zeros(2.0)", "argument 'size' (position 1) must be tuple of ints, not float"),
    ("T.zeros()", "missing 1 required positional arguments"), ("T.zeros(-1)", "zeros: Dimension size must be non-negative."),
    ("T.zeros((2, -3))", "Dimension size must be non-negative"),
    ("T.ones(-1)", "Trying to create tensor with negative dimension -1: [-1]"),
    ("T.empty(2, -1)", "Trying to create tensor with negative dimension -1: [2, -1]"),
    ("T.zeros(2, dtype='float32')", "argument 'dtype' must be"), ("T.zeros(2, names=None)", "unexpected keyword"),
    ("T.zeros(2, foo=1)", "unexpected keyword argument 'foo'"),
    ("T.ones(2, dtype=T.int64, requires_grad=True)",
     "Only Tensors of floating point and complex dtype can require gradients"),
    "T.full((2, 3), 7.)", "T.full((2, 3), 7)", "T.full((2,), True)", "T.full([2], 1.)", "T.full((2,), T.tensor(3.))",
    "T.full((2,), 1.5, dtype=T.int64)", "T.full(size=(2,), fill_value=3)", "T.full((2,), np.float64(3))",
    "T.full((2,), np.int32(3))", "T.full((), 2.5)", "T.full((2,), 1+2j)",
    ("T.full(2, 1.)", "argument 'size' (position 1) must be tuple of ints, not int"),
    ("T.full((2,), T.tensor([3.]))", "argument 'fill_value' (position 2) must be Number, not Tensor"),
    ("T.full((2,), float('inf'), dtype=T.int64)", "value cannot be converted to type int64_t without overflow"),
    ("T.full((2,), 300, dtype=T.uint8)", "value cannot be converted to type uint8_t without overflow"),
    ("T.full((-1,), 1.)", "negative dimension"),
    "T.scalar_tensor(3)", "T.scalar_tensor(3.5)", "T.scalar_tensor(True)", "T.scalar_tensor(3, dtype=T.int64)",
    "T.scalar_tensor(T.tensor(2))", "T.scalar_tensor(3, requires_grad=True)",
    ("T.scalar_tensor([1])", "argument 's' (position 1) must be Number, not list"),
    "T.eye(3)", "T.eye(2, 3)", "T.eye(2, m=3)", "T.eye(n=2)", "T.eye(2, 3, dtype=T.int64)", "T.eye(2, dtype=T.bool)",
    "T.eye(np.int64(2))", "T.eye(2, requires_grad=True)", "T.eye(0)",
    ("T.eye(-1)", "n must be greater or equal to 0, got -1"), ("T.eye(2, -1)", "m must be greater or equal to 0, got -1"),
    ("T.eye(2.0)", "eye(): argument 'n' (position 1) must be int, not float"),
    "T.empty_strided((2, 3), (1, 2)).stride()", "T.empty_strided((2, 3), (3, 1)).shape",
    "T.empty_strided((2, 3), (3, 1), dtype=T.int64).dtype", "T.empty_strided((2, 3), (0, 1)).stride()",
    "T.empty_strided((0, 3), (3, 1)).shape",
    ("T.empty_strided((2, 3), (1,))", "dimensionality of sizes (2) must match dimensionality of strides (1)"),
)
def test_filled_factories(row):
    check(*row)


@table(
    "T.arange(5)", "T.arange(5.)", "T.arange(1, 4)", "T.arange(0, 1, 0.25)", "T.arange(0, 1, 0.1)", "T.arange(5, 0, -1)",
    "T.arange(1, 2.5, 0.5)", "T.arange(-1.5, 1, 0.5)", "T.arange(10, dtype=T.float64)", "T.arange(start=1, end=4)",
    "T.arange(end=4)", "T.arange(0, 10, 3, dtype=T.uint8)", "T.arange(T.tensor(3))", "T.arange(T.tensor(3.))",
    "T.arange(T.tensor(1), T.tensor(4), T.tensor(2))", "T.arange(np.int64(3))", "T.arange(np.float32(3))",
    "T.arange(True)", "T.arange(4., requires_grad=True)", "T.arange(0, 0)", "T.arange(0.5, 3)",
    ("T.arange(0, 5, 0)", "step must be nonzero"),
    ("T.arange(5, 0)", "upper bound and lower bound inconsistent with step sign"),
    ("T.arange(float('inf'))", "unsupported range: 0 -> inf"), ("T.arange(0, float('nan'))", "unsupported range"),
    ("T.arange(4, requires_grad=True)", "Only Tensors of floating point and complex dtype can require gradients"),
    ("T.arange()", None),
    "T.linspace(0, 1, 5)", "T.linspace(0, 1, 5, dtype=T.int64)", "T.linspace(0, 10, 5, dtype=T.int64)",
    "T.linspace(0, 1, 1)", "T.linspace(0, 1, 0)", "T.linspace(0, 1, steps=3)", ("T.linspace(-3.5, 7.25, 11)", None, "close"),
    "T.linspace(T.tensor(0.), T.tensor(1.), 3)", "T.linspace(0, 1, 3, requires_grad=True)",
    "T.linspace(0, 1, 7, dtype=T.float64)", ("T.linspace(1, -1, 9)", None, "close"),
    ("T.linspace(0.3, 0.9, 13)", None, "close"),
    "T.linspace(-2.5, 3.7, 6, dtype=T.int32)", "T.linspace(0, 1, 5, dtype=T.float16)",
    ("T.linspace(0, 1, -1)", "number of steps must be non-negative"), ("T.linspace(0, 1)", None),
    ("T.linspace(0, 1, 2.5)", None),
    "T.logspace(0, 2, 3)", "T.logspace(0, 2, 3, base=2)", "T.logspace(0, 2, 3, base=2, dtype=T.int64)",
    "T.logspace(0, 2, 3, dtype=T.float64)", "T.logspace(-1, 1, 5, dtype=T.float64)", "T.logspace(0, 1, 1)",
    ("T.logspace(0, 1)", None), ("T.logspace(0, 1, -2)", "number of steps must be non-negative"),
)
def test_ranges(row):
    check(*row)


@table(
    "T.zeros_like(T.ones(2, dtype=T.int64))", "T.zeros_like(T.zeros(2), dtype=T.int64)",
    "T.zeros_like(T.zeros(2), requires_grad=True)", "T.ones_like(T.zeros(2, 3))", "T.full_like(T.zeros(2), 7)",
    "T.full_like(T.zeros(2, dtype=T.int64), 2.5)", "T.full_like(T.zeros(2), 2, dtype=T.int32)",
    "T.full_like(T.zeros(2), T.tensor(3.))",
    "T.zeros_like(T.zeros(2), memory_format=T.preserve_format)", "T.zeros_like(T.zeros(2), memory_format=T.contiguous_format)",
    "T.zeros_like(T.zeros(2, 3, 4, 5), memory_format=T.channels_last).stride()",
    "T.zeros_like(T.zeros(2, 3, 4, 5).contiguous(memory_format=T.channels_last)).stride()",
    "T.zeros_like(T.zeros(2, 3).t()).stride()", "T.empty_like(T.zeros(2, 3).t()).stride()",
    "T.ones_like(T.zeros(2, 3).t()).stride()", "T.full_like(T.zeros(2, 3).t(), 2).stride()",
    "T.rand_like(T.zeros(2, 3).t()).stride()", "T.randn_like(T.zeros(2, 3).t()).stride()",
    "T.randint_like(T.zeros(2, 3).t(), 5).stride()", "T.zeros_like(T.zeros(2, 3)[:, :2]).stride()",
    "T.zeros_like(T.zeros(2, 3)[:, ::2]).stride()", "T.zeros_like(T.zeros(3, 2).t()[:, :2]).stride()",
    "T.zeros_like(T.zeros(2, 4, 3).permute(2, 0, 1)).stride()",
    "T.zeros_like(T.zeros(2, 3).t(), memory_format=T.contiguous_format).stride()",
    ("T.zeros_like([1, 2])", "argument 'input' (position 1) must be Tensor, not list"),
    ("T.zeros_like(T.zeros(2), out=T.zeros(2))", "unexpected keyword argument 'out'"),
    ("T.zeros_like(T.zeros(2, 3), memory_format=T.channels_last)", "required rank 4 tensor to use channels_last format"),
    ("T.full_like(T.zeros(2, dtype=T.uint8), 300)", "value cannot be converted to type uint8_t without overflow"),
    ("T.rand_like(T.zeros(2), generator=T.Generator())", None, False), ("T.randn_like(T.zeros(2, dtype=T.float64))", None, False),
    ("T.rand_like(T.zeros(2, dtype=T.int64))", '"check_uniform_bounds" not implemented for \'Long\''),
    ("T.randn_like(T.zeros(2, dtype=T.int64))", '"normal_kernel_cpu" not implemented for \'Long\''),
    ("T.rand_like(T.zeros(2), requires_grad=True)", None, False),
)
def test_like_factories(row):
    check(*row)


@table(
    ("T.rand(2, 3)", None, False), ("T.rand((2, 3))", None, False), ("T.rand(size=(2, 3))", None, False),
    ("T.rand(2, generator=T.Generator())", None, False), ("T.rand(2, dtype=T.float16)", None, False),
    ("T.rand(2, dtype=T.bfloat16)", None, False), ("T.rand(2, requires_grad=True)", None, False),
    ("T.rand(2, pin_memory=False, layout=T.strided)", None, False), ("T.randn(2, 3, dtype=T.float64)", None, False),
    ("T.randn(size=[4])", None, False), ("T.rand()", None), ("T.rand(2.5)", "must be tuple of ints, not float"),
    ("T.rand(-1)", "negative dimension -1: [-1]"), ("T.randn(2, -1)", "negative dimension -1: [2, -1]"),
    ("T.rand(2, dtype=T.int64)", '"check_uniform_bounds" not implemented for \'Long\''),
    ("T.randn(2, dtype=T.bool)", '"normal_kernel_cpu" not implemented for \'Bool\''),
    ("T.randint(10, (3,))", None, False), ("T.randint(3, 10, (3,))", None, False), ("T.randint(10, size=(3,))", None, False),
    ("T.randint(0, 10, (3,), dtype=T.float32)", None, False), ("T.randint(low=0, high=10, size=(3,))", None, False),
    ("T.randint(high=10, size=(3,))", None, False), ("T.randint(T.tensor(10), (3,))", None, False),
    ("T.randint(10, T.Size([3]))", None, False), ("T.randint(10, [3])", None, False), ("T.randint(1, (0,))", None, False),
    ("T.randint(2, (3,), dtype=T.bool)", None, False), ("T.randint(0, 256, (2,), dtype=T.uint8)", None, False),
    ("T.randint(-5, -3, (2,))", None, False), ("T.randint(10, (3,), dtype=T.float32, requires_grad=True)", None, False),
    ("T.randint(10, (3,), generator=T.Generator())", None, False),
    ("T.randint(10, 3)", None), ("T.randint(10)", "randint() received an invalid combination of arguments - got (int)"),
    ("T.randint(5, 3, (2,))", "random_ expects 'from' to be less than 'to', but got from=5 >= to=3"),
    ("T.randint(10, 3, size=(2,))", "but got from=10 >= to=3"),
    ("T.randint(10, (3,), dtype=T.bool)", "to - 1 is out of bounds for bool"),
    ("T.randint(0, 300, (3,), dtype=T.uint8)", "to - 1 is out of bounds for unsigned char"),
    ("T.randint(-1, 3, (3,), dtype=T.uint8)", "from is out of bounds for unsigned char"),
    ("T.randint(0, 2 ** 31 + 1, (2,), dtype=T.int32)", "to - 1 is out of bounds for int"),
    ("T.randint(10.5, (3,))", "argument 'high' (position 1) must be int, not float"),
    ("T.randint(10, (3,), requires_grad=True)", "Only Tensors of floating point and complex dtype can require gradients"),
    ("T.randint_like(T.zeros(3), 10)", None, False), ("T.randint_like(T.zeros(3), 3, 10)", None, False),
    ("T.randint_like(T.zeros(3), high=10)", None, False), ("T.randint_like(T.zeros(3), low=3, high=10)", None, False),
    ("T.randint_like(T.zeros(3, dtype=T.int32), 10)", None, False),
    ("T.randint_like(T.zeros(3), 10, dtype=T.int64)", None, False),
    ("T.randint_like(T.zeros(3), 10, generator=T.Generator())", None, False),
    ("T.randint_like(T.zeros(3), 10, requires_grad=True)", None, False),
    ("T.randint_like(T.zeros(2, dtype=T.bool), 2)", None, False),
    ("T.randint_like(T.zeros(3))", "randint_like() received an invalid combination of arguments - got (Tensor)"),
    ("T.randint_like(T.zeros(2, dtype=T.uint8), 300)", "to - 1 is out of bounds for unsigned char"),
    ("T.randint_like(T.zeros(2), 5, 3)", "from=5 >= to=3"),
    ("T.randperm(4)", None, False), ("T.randperm(4, dtype=T.float32)", None, False), ("T.randperm(0)", None, False),
    ("T.randperm(-1)", "Trying to create tensor with negative dimension -1: [-1]"),
    ("T.randperm(4.5)", "randperm(): argument 'n' (position 1) must be int, not float"),
    ("T.randperm(4, requires_grad=True)", "Only Tensors of floating point and complex dtype can require gradients"),
    ("T.normal(0., 1., size=(2,))", None, False), ("T.normal(0., 1., (2,))", None, False),
    ("T.normal(0., 1., size=(2,), dtype=T.float64)", None, False), ("T.normal(T.zeros(2), 1.)", None, False),
    ("T.normal(0., T.ones(2))", None, False), ("T.normal(T.zeros(2), 1., generator=T.Generator())", None, False),
    ("T.normal(0., 1.)", "normal() received an invalid combination of arguments - got (float, float)"),
    ("T.empty(2).uniform_(1, 0)", "uniform_ expects to return a [from, to) range, but found from=1 > to=0"),
    ("T.empty(2).normal_(0, -1)", "normal expects std >= 0.0, but found std -1"),
    ("T.empty(2).exponential_(-1)", "exponential_ expects lambda > 0.0, but found lambda=-1"),
    ("T.empty(2).bernoulli_(1.5)", "bernoulli_ expects p to be in [0, 1], but got p=1.5"),
    ("T.empty(2, dtype=T.int64).uniform_()", '"check_uniform_bounds" not implemented for \'Long\''),
    ("T.empty(2, dtype=T.int64).normal_()", '"normal_kernel_cpu" not implemented for \'Long\''),
    ("T.empty(2, dtype=T.int64).random_(0, 5)", None, False), ("T.empty(2).random_(5)", None, False),
    ("T.empty(2).random_()", None, False), ("T.empty(2).uniform_(generator=T.Generator())", None, False),
)
def test_random_factories(row):
    check(*row)


def test_random_values_in_range():
    distml.manual_seed(0)
    assert 0 <= distml.empty(1000).random_().min().item() and distml.empty(1000).random_().max().item() <= 2 ** 24
    ints = distml.randint(-3, 4, (1000,), dtype=distml.int16)
    assert ints.dtype is distml.int16 and ints.min().item() == -3 and ints.max().item() == 3
    assert sorted(distml.randperm(6, dtype=distml.float64).tolist()) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert distml.randint_like(distml.zeros(100, dtype=distml.bool), 2).dtype is distml.bool


@table(
    "T.tensor([1, 2])", "T.tensor([1., 2.])", "T.tensor(3)", "T.tensor(3.5)", "T.tensor(True)", "T.tensor([])",
    "T.tensor([[]])", "T.tensor(range(3))", "T.tensor((1, 2.5))", "T.tensor([True, 2])", "T.tensor([True, 2.5])",
    "T.tensor([np.float64(2.5)])", "T.tensor([np.float32(2.5), 1])", "T.tensor([np.int32(1), 2])",
    "T.tensor([np.float16(1), 2.])", "T.tensor(np.float64(2.5))", "T.tensor(np.int32(2))",
    "T.tensor(np.array([1, 2], dtype=np.int32))", "T.tensor(np.array([1., 2.]), dtype=T.float32)",
    "T.tensor([T.tensor(1), T.tensor(2)])", "T.tensor([T.tensor(1., dtype=T.float64), 2.])",
    "T.tensor([T.tensor(1, dtype=T.int32), 2])", "T.tensor([T.tensor(1, dtype=T.int32)])", "T.tensor([T.tensor(1.), 2])",
    "T.tensor([[np.float64(1)], [2.]])", "T.tensor(T.tensor([1, 2]))", "T.tensor([1+2j])",
    "T.tensor([1, 2], dtype=T.float64, requires_grad=True)", "T.tensor([1., 2.], device='cpu')",
    "T.tensor(3, dtype=float)", "T.tensor([1, 2], dtype=T.bool)", "T.tensor([0.5, 0.], dtype=T.bool)",
    "T.tensor([1, 2], pin_memory=False)", "T.tensor([1.5, 2.7], dtype=T.int64)", "T.tensor([1e300], dtype=T.float32)",
    ("T.tensor([1, 2], requires_grad=True)", "Only Tensors of floating point and complex dtype can require gradients"),
    ("T.tensor('a')", "invalid data type 'str'"), ("T.tensor(None)", "Could not infer dtype of NoneType"),
    ("T.tensor([1, None])", "Could not infer dtype of NoneType"),
    ("T.tensor(x for x in [1])", "Could not infer dtype of generator"), ("T.tensor({1, 2})", "Could not infer dtype of set"),
    ("T.tensor([300], dtype=T.uint8)", "value cannot be converted to type uint8 without overflow"),
    ("T.tensor(float('nan'), dtype=T.int64)", "value cannot be converted to type int64 without overflow"),
    ("T.tensor(2 ** 31, dtype=T.int32)", "value cannot be converted to type int32 without overflow"),
    ("T.tensor(256., dtype=T.uint8)", "value cannot be converted to type uint8 without overflow"),
    ("T.tensor([[1, 2], [3]])", None),
    "T.as_tensor([1, 2])", "T.as_tensor([1, 2], dtype=T.float32)", "T.as_tensor(np.array([1., 2.]))",
    "T.as_tensor(T.tensor([1, 2]), dtype=T.float32)", "T.as_tensor(3.5)", "T.as_tensor(np.float32(3.5))",
    "T.as_tensor([1, 2], device='cpu')", "T.as_tensor(np.array([1., 2.]), device='cpu')",
    ("T.as_tensor([1], requires_grad=True)", "unexpected keyword argument 'requires_grad'"),
    "(lambda a: T.as_tensor(a) is a)(T.tensor([1., 2.]))", "(lambda a: T.as_tensor(a, dtype=T.float32) is a)(T.zeros(2))",
    "(lambda a: T.as_tensor(a) is a)(T.tensor([1., 2.], requires_grad=True))",
    "T.as_tensor(T.tensor([1., 2.], requires_grad=True), dtype=T.float64)",
    "(lambda a: (T.as_tensor(a), a.__setitem__(0, 5))[0])(np.array([1., 2.]))",
    "(lambda a: (T.as_tensor(a, dtype=T.float32), a.__setitem__(0, 5))[0])(np.array([1., 2.]))",
    "(lambda a: (T.from_numpy(a), a.__setitem__(0, 5))[0])(np.array([1., 2.]))",
    "T.from_numpy(np.array([1., 2.])[::2])", "T.from_numpy(np.array([1+2j]))", "T.from_numpy(np.zeros((2, 3)).T).stride()",
    ("T.from_numpy([1])", "expected np.ndarray (got list)"), ("T.from_numpy(np.float64(1))", "expected np.ndarray (got numpy.float64)"),
    ("T.from_numpy(np.array(['a']))", "can't convert np.ndarray of type"),
    ("T.from_numpy(np.array([1., 2.])[::-1])", "At least one stride in the given numpy array is negative"),
    ("T.from_numpy(np.array([1, 2], dtype='>i4'))", "byte order different from the native byte order"),
)
def test_from_data(row):
    check(*row)


def test_tensor_warns_on_tensor_data():
    for module in (torch, distml):
        with pytest.warns(UserWarning, match="rather than torch.tensor\\(sourceTensor\\)"):
            module.tensor(module.zeros(2))
        with pytest.warns(UserWarning, match="rather than tensor.new_tensor\\(sourceTensor\\)"):
            module.zeros(2).new_tensor(module.zeros(2))


# ---- out= ----

@table(
    "T.zeros(2, 3, out=T.empty(6))", "T.zeros(2, 3, out=T.empty(2, 3, dtype=T.int64))",
    "T.zeros(2, 3, out=T.empty(2, 3), dtype=T.float32)", "T.ones(3, out=T.zeros(2))", "T.ones(3, out=T.zeros(0))",
    "T.full((3,), 2.5, out=T.zeros(3, dtype=T.int64))", "T.full((2,), 1, out=T.empty(2))",
    "T.eye(2, out=T.zeros(3, dtype=T.int64))", "T.eye(2, 3, out=T.empty(2, 3))", "T.arange(4, out=T.empty(4, dtype=T.int64))",
    "T.arange(3, out=T.empty(3))", "T.linspace(0, 1, 3, out=T.zeros(3, dtype=T.int64))", "T.linspace(0, 1, 3, out=T.empty(3))",
    "T.logspace(0, 2, 3, out=T.empty(3))", "T.ones(3, out=T.zeros(3), requires_grad=True)",
    ("T.randn(3, out=T.zeros(3, dtype=T.float64))", None, False), ("T.rand(2, out=T.zeros(2))", None, False),
    ("T.randint(3, (3,), out=T.zeros(3))", None, False), ("T.randperm(3, out=T.zeros(3))", None, False),
    ("T.randint(10, (3,), out=T.empty(3, dtype=T.int64))", None, False),
    ("T.normal(0., 1., size=(2,), out=T.zeros(2))", None, False),
    ("T.zeros(2, 3, out=T.empty(2, 3, dtype=T.int64), dtype=T.float32)",
     "dtype Float does not match dtype of out parameter (Long)"),
    ("T.ones(3, out=T.zeros(2), dtype=T.float64)", "dtype Double does not match dtype of out parameter (Float)"),
    ("T.arange(3, out=T.zeros(3), dtype=T.float64)", "dtype Double does not match dtype of out parameter (Float)"),
    ("T.randn(3, out=T.zeros(3), dtype=T.float64)", "does not match dtype of out parameter"),
    ("T.rand(3, out=T.zeros(3, dtype=T.int64))", '"check_uniform_bounds" not implemented for \'Long\''),
    ("T.zeros(2, out=[1])", "argument 'out' must be Tensor, not list"),
    ("T.zeros(2, out=T.zeros(2, requires_grad=True))",
     "functions with out=... arguments don't support automatic differentiation, but one of the arguments requires grad"),
    "T.clamp(T.tensor([-1., 2.]), 0, out=T.empty(2))", "T.clamp(T.tensor([-1., 2.]), 0, out=T.zeros(0))",
    "T.maximum(T.tensor([1., 2.]), T.tensor([2., 1.]), out=T.empty(2))",
    "T.minimum(T.tensor([1., 2.]), T.tensor([[2.], [1.]]), out=T.empty(2, 2))",
    "T.where(T.tensor([True, False]), T.tensor([1., 2.]), T.tensor([3., 4.]), out=T.empty(2))",
    "T.clamp(T.tensor([-1., 2.]), 0, out=T.zeros(3))", "T.clamp(T.tensor([-1., 2.]), 0, out=T.zeros(2, 1))",
    ("T.clamp(T.tensor([-1., 2.]), 0, out=T.zeros(2, dtype=T.int64))", "Found dtype Long but expected Float"),
    ("T.clamp(T.tensor([-1., 2.]), 0, out=T.zeros(2, dtype=T.float64))", "Found dtype Double but expected Float"),
    ("T.clamp(T.tensor([-1., 2.], requires_grad=True), 0, out=T.zeros(2))",
     "clamp(): functions with out=... arguments don't support automatic differentiation"),
    ("T.where(T.tensor([True]), T.tensor([1.]), T.tensor([2.]), out=T.zeros(1, dtype=T.int64))",
     "Expected out type to be Float but got Long"),
    ("T.where(T.tensor([True, False]), T.tensor([1., 2.]), 0., out=T.empty(2))",
     "where(): argument 'other' (position 3) must be Tensor, not float"),
    ("T.where(T.tensor([True]), T.tensor([1.], requires_grad=True), T.tensor([2.]), out=T.zeros(1))",
     "where(): functions with out=... arguments don't support automatic differentiation"),
)
def test_out(row):
    check(*row)


def test_out_writes_into_and_returns_out():
    out = distml.empty(2)
    assert distml.clamp(distml.tensor([-1.0, 2.0]), 0, out=out) is out and out.tolist() == [0.0, 2.0]
    out = distml.zeros(3, 2).t()
    assert distml.zeros(2, 3, out=out) is out and out.stride() == (1, 2)  # written in place, strides kept
    with distml.no_grad():
        x = distml.tensor([-1.0, 2.0], requires_grad=True)
        assert distml.clamp(x, 0, out=distml.zeros(2)).tolist() == [0.0, 2.0]
    with pytest.warns(UserWarning, match="An output with one or more elements was resized"):
        distml.maximum(distml.ones(2), distml.zeros(2), out=distml.zeros(3))
    version = out._version_number
    distml.ones(2, 3, out=out)
    assert out._version_number == version + 1


# ---- scalars in where / clamp / maximum / masked_fill ----

@table(
    "T.where(T.tensor([True, False]), 1, 0)", "T.where(T.tensor([True, False]), 1., 0)",
    "T.where(T.tensor([True, False]), True, False)", "T.where(T.tensor([True, False]), T.tensor([1., 2.]), 0.)",
    "T.where(T.tensor([True, False]), T.tensor([1, 2]), 0.)", "T.where(T.tensor([True, False]), 0, T.tensor([1, 2]))",
    "T.where(T.tensor([True, False]), T.tensor([1., 2.], dtype=T.float64), 0)",
    "T.where(T.tensor([True, False]), T.tensor(1., dtype=T.float64), T.tensor([1., 2.]))",
    "T.where(T.tensor([[True, False]]), T.tensor([1., 2.]), T.tensor([[3.], [4.]]))",
    "T.where(T.tensor([[True], [False]]), 1, 0)", "T.where(T.tensor([True, False]), T.tensor([1, 2], dtype=T.int8), 300)",
    "T.where(condition=T.tensor([True, False]), input=T.tensor([1., 2.]), other=0.)",
    "T.tensor([1., 2.]).where(T.tensor([True, False]), 0.)",
    "T.where(T.tensor([True, False]))", "T.where(T.tensor([[1, 0], [2, 3]]))", "T.where(T.tensor(1))",
    "T.where(T.tensor([0., 0.]))",
    ("T.where(T.tensor([1, 0]), 1, 0)", "where expected condition to be a boolean tensor, but got a tensor with dtype Long"),
    ("T.where([True], 1, 0)", "where() received an invalid combination of arguments - got (list, int, int)"),
    ("T.where(T.tensor([True]), 1)", "where() received an invalid combination of arguments - got (Tensor, int)"),
    ("T.where(T.tensor([True, False, True]), T.tensor([1., 2.]), 0.)", "must match the size of tensor"),
    "T.clamp(T.tensor([-1., 2.]), min=0)", "T.clamp(T.tensor([-1, 2]), min=0)", "T.clamp(T.tensor([-1, 2]), min=0.5)",
    "T.clamp(T.tensor([-1, 2]), 0.5, 1)", "T.clamp(T.tensor([-1., 2.]), min=T.tensor([0., 3.]))",
    "T.clamp(T.tensor([-1., 2.]), min=T.tensor(0.), max=T.tensor(1.))", "T.clamp(T.tensor([-1, 2]), min=T.tensor([0., 3.]))",
    "T.clamp(T.tensor([-1., 2.]), min=T.tensor([0, 3]))",
    "T.clamp(T.tensor([-1., 2.]), min=T.tensor([0., 3.], dtype=T.float64))",
    "T.clamp(T.tensor([-1., 2.]), min=T.tensor(0., dtype=T.float64))",
    "T.clamp(T.tensor([-1., 2.]), min=T.tensor([[0.], [3.]]))", "T.clamp(T.tensor([-1., 2.]), min=0, max=T.tensor(1.))",
    "T.clamp(T.tensor([-1., 2.]), 2, 1)", "T.clamp(T.tensor([-1., 2.]), T.tensor(2.), T.tensor(1.))",
    "T.clamp(T.tensor([-1., 2., float('nan')]), 0, 1)", "T.clamp(T.tensor([-1., 2.]), float('nan'), 1)",
    "T.clamp(T.tensor([True, False]), 0, 1)", "T.clamp(T.tensor([True, False]), 0.5, 1)",
    "T.clamp(T.tensor([1, 5], dtype=T.uint8), max=3)", "T.tensor([-1., 2.]).clip(0, 1)", "T.tensor([-3, 4]).clamp(-1, 1)",
    "T.clamp_min(T.tensor([-1, 2]), 0.5)", "T.tensor([-1., 2.]).clamp_min(T.tensor(0.))", "T.clamp_max(T.tensor([-1., 2.]), 0)",
    "(lambda t: (t.clamp_(min=0), t)[1])(T.tensor([-1., 2.]))",
    ("T.tensor([-1, 2]).clamp_(min=0.5)", "result type Float can't be cast to the desired output type"),
    ("T.clamp(T.tensor([-1., 2.]))", "At least one of 'min' or 'max' must not be None"),
    ("T.clamp(T.tensor([1, 5], dtype=T.uint8), min=-1, max=300)", "value cannot be converted to type uint8_t"),
    "T.clamp(T.tensor([1, 5], dtype=T.int8), min=-100)",
    ("T.clamp(T.tensor([-1., 2.]), min=T.tensor([0., 1., 2.]))", "must match the size of tensor"),
    "T.maximum(T.tensor([1., 2.]), T.tensor([2, 1]))", "T.maximum(T.tensor([1, 2]), T.tensor(2.))",
    "T.maximum(T.tensor([1., float('nan')]), T.tensor([2., 1.]))", "T.minimum(T.tensor([1., 2.]), T.tensor([[2.], [1.]]))",
    "T.maximum(T.tensor([True, False]), T.tensor([False, False]))", "T.tensor([1, 5]).minimum(T.tensor([3, 3]))",
    ("T.maximum(T.tensor([1., 2.]), 1.)", "maximum(): argument 'other' (position 2) must be Tensor, not float"),
    ("T.minimum(1, T.tensor([1., 2.]))", "minimum(): argument 'input' (position 1) must be Tensor, not int"),
    "T.tensor([1., 2.]).masked_fill(T.tensor([True, False]), float('-inf'))",
    "T.tensor([1, 2]).masked_fill(T.tensor([True, False]), 2.5)",
    "T.tensor([1., 2.]).masked_fill(T.tensor([True, False]), T.tensor(5, dtype=T.int64))",
    "T.tensor([[1., 2.]]).masked_fill(T.tensor([[True], [False]]), 0.)", "T.tensor([True, False]).masked_fill(T.tensor(True), 2)",
    "T.masked_fill(T.tensor([1., 2.]), T.tensor([True, False]), 0.)", "T.tensor([1., 2.]).masked_fill(T.tensor(True), 7)",
    "(lambda t: (t.masked_fill_(T.tensor([True, False]), 0.), t)[1])(T.tensor([1., 2.]))",
    ("T.tensor([1, 2]).masked_fill(T.tensor([True, False]), float('-inf'))", "value cannot be converted to type int64_t"),
    ("T.tensor([1, 2], dtype=T.uint8).masked_fill(T.tensor([True, False]), 300)", "value cannot be converted to type uint8_t"),
    ("T.tensor([1., 2.]).masked_fill(T.tensor([1, 0]), 0.)", "only supports boolean masks, but got mask with dtype long int"),
    ("T.tensor([1., 2.]).masked_fill(T.tensor([True, False, True]), 0.)",
     "The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 0"),
    ("T.tensor([1., 2.]).masked_fill(T.tensor([True, False]), T.tensor([0.]))",
     "only supports a 0-dimensional value tensor, but got tensor with 1 dimension(s)"),
    ("T.tensor([1., 2.]).masked_fill(T.tensor([True, False]), 'a')", "got (Tensor, str)"),
    ("T.zeros(1, 2).masked_fill_(T.tensor([[True], [False]]), 0.)", "doesn't match the broadcast shape"),
    "T.pow(2, T.tensor([1., 2.]))", "T.pow(2, T.tensor([1, 2]))", "T.pow(2.5, T.tensor([1, 2]))",
    "T.add(T.tensor([1., 2.]), 1, alpha=2)", "T.add(T.tensor([1, 2]), 1, alpha=2)",
)
def test_scalars_where_torch_takes_them(row):
    check(*row)


def _grads(make, n_inputs=2):
    """Gradients (float64) of make(T, *leaves) for torch and distml, pairwise."""
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((2, 3)) for _ in range(n_inputs)]
    out = []
    for module in (torch, distml):
        leaves = [module.tensor(v, dtype=module.float64, requires_grad=True) for v in values]
        result = make(module, *leaves)
        (result * module.tensor(np.arange(result.numel(), dtype=np.float64).reshape(tuple(result.shape)))).sum().backward()
        out.append((result.detach().numpy(), [None if leaf.grad is None else leaf.grad.numpy() for leaf in leaves]))
    return out


@pytest.mark.parametrize("make", [
    lambda T, x, y: T.where(x > 0, x, 0.),
    lambda T, x, y: T.where(x > y, 1.5, y),
    lambda T, x, y: T.where(x > 0, x, y[0]),
    lambda T, x, y: T.clamp(x, min=y),
    lambda T, x, y: T.clamp(x, max=y[:1]),
    lambda T, x, y: T.clamp(x, min=y - 1, max=y + 1),
    lambda T, x, y: T.clamp(x, min=y + 1, max=y - 1),  # min > max: the result is max
    lambda T, x, y: T.clamp(x, min=y.round(), max=T.tensor(1.0, dtype=T.float64)),
    lambda T, x, y: T.clamp(x.round(), min=y.round()),  # ties: the gradient goes to x, as PyTorch's
    lambda T, x, y: T.clamp(x, -0.5, 0.5),
    lambda T, x, y: T.maximum(x, y),
    lambda T, x, y: T.minimum(x, y[:1]),
    lambda T, x, y: x.masked_fill(y > 0, 0.),
    lambda T, x, y: x.masked_fill(y[:1] > 0, y[0, 0]),
    lambda T, x, y: x[:1].masked_fill(y > 0, 2.),
    lambda T, x, y: T.Tensor(x) * y,
    lambda T, x, y: x.clone(memory_format=T.contiguous_format) * y,
    lambda T, x, y: x.t().clone() * y.t(),
    lambda T, x, y: x.t().contiguous() * y.t(),
    lambda T, x, y: x.reshape(1, 2, 3, 1).contiguous(memory_format=T.channels_last) * y.reshape(1, 2, 3, 1),
    lambda T, x, y: x.to(T.float32).to(T.float64) + x.mT.mT * y,
])
def test_gradients_match_torch(make):
    (expected, expected_grads), (got, got_grads) = _grads(make)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    for e, g in zip(expected_grads, got_grads):
        assert (e is None) == (g is None)
        if e is not None:
            np.testing.assert_allclose(g, e, rtol=1e-6)


# ---- Python protocols ----

@table(
    "'{:+.2f}'.format(T.tensor(1.5))", "f'{T.tensor(1.23456):.3f}'", "f'{T.tensor(3):d}'", "f'{T.tensor(3):.2f}'",
    "f'{T.tensor(True)}'", "f'{T.tensor(1.5)}'", "format(T.tensor(1.5, requires_grad=True), '.2f')",
    "format(T.tensor(2.5), '')", "format(T.tensor(2.5, dtype=T.float64), '.3e')", "format(T.tensor(7), '>5')",
    "format(T.tensor(7), 'x')", "format(T.tensor(-0.5, dtype=T.float16), '.1%')",
    ("format(T.ones(2), '.2f')", "unsupported format string passed to Tensor.__format__"),
    ("format(T.tensor([[7]]), '.1f')", "unsupported format string passed to Tensor.__format__"),
    ("format(T.nn.Parameter(T.tensor(1.5)), '.2f')", "unsupported format string passed to Parameter.__format__"),
    "[1, 2, 3][T.tensor(1)]", "[1, 2, 3][T.tensor([1])]", "[1, 2, 3][T.tensor(True)]",
    "range(10)[T.tensor(3, dtype=T.uint8)]", "T.tensor(2).__index__()",
    ("[1, 2, 3][T.tensor(1.)]", "only integer tensors of a single element can be converted to an index"),
    ("[1, 2, 3][T.tensor([1, 2])]", "only integer tensors of a single element can be converted to an index"),
    "bool(T.tensor([0.]))", "bool(T.tensor(2.5))", "bool(T.tensor([[3]]))", "bool(T.tensor(float('nan')))",
    ("bool(T.tensor([1, 2]))", "Boolean value of Tensor with more than one value is ambiguous"),
    ("bool(T.tensor([]))", "Boolean value of Tensor with no values is ambiguous"),
    "T.is_nonzero(T.tensor([1]))", ("T.is_nonzero(T.tensor([]))", "Boolean value of Tensor with no values is ambiguous"),
    "len(T.zeros(3, 2))", "len(T.zeros(0))", ("len(T.tensor(1.))", "len() of a 0-d tensor"),
    "np.asarray(T.tensor([1., 2.])).dtype", "np.asarray(T.tensor(1.)).shape", "T.tensor([1., 2.]).__array__()",
    "T.tensor([1., 2.]).__array__(np.float64)",
    "(lambda t: np.shares_memory(np.asarray(t), t.numpy()))(T.tensor([1., 2.]))",
    ("np.asarray(T.tensor([1., 2.], requires_grad=True))", "Can't call numpy() on Tensor that requires grad"),
    "3 in T.tensor([1, 2, 3])", "4 in T.tensor([1, 2, 3])", "3. in T.tensor([1, 2, 3])", "T.tensor(2) in T.tensor([1, 2, 3])",
    "T.tensor([[1, 2]]) in T.tensor([[1, 3], [4, 5]])", "True in T.tensor([1, 0])",
    "float('nan') in T.tensor([float('nan')])", "2 in T.tensor(2)",
    ("T.tensor([2, 3]) in T.tensor([1, 2, 3])", "must match the size of tensor"),
    ("'a' in T.tensor([1, 2, 3])", "Tensor.__contains__ only supports Tensor or scalar, but you passed in a <class 'str'>."),
    ("[1] in T.tensor([1, 2, 3])", "but you passed in a <class 'list'>"), ("None in T.tensor([1])", "<class 'NoneType'>"),
    "list(T.tensor([1, 2]))", "list(T.tensor([[1, 2], [3, 4]]))", ("list(T.tensor(1))", "iteration over a 0-d tensor"),
    "reversed(T.tensor([1, 2, 3]))", "reversed(T.tensor([[1, 2], [3, 4]]))", "reversed(T.tensor(1))",
    "reversed(T.tensor([1., 2.], requires_grad=True))", "list(reversed(T.tensor([1, 2])))",
    ("round(T.tensor(1.5))", "doesn't define __round__"),
    "int(T.tensor(2.7))", "int(T.tensor(-2.7))", "int(T.tensor([2.7]))", "int(T.tensor(True))", "float(T.tensor(2))",
    "float(T.tensor([[2]]))", "float(T.tensor(2., requires_grad=True))", "complex(T.tensor(2.))", "complex(T.tensor(2))",
    "int(T.tensor(1., requires_grad=True))",
    ("int(T.tensor([2.7, 1]))", "only one element tensors can be converted to Python scalars"),
    ("float(T.tensor([2, 3]))", "only one element tensors can be converted to Python scalars"),
    ("complex(T.tensor([2, 3]))", "only one element tensors can be converted to Python scalars"),
    ("int(T.tensor(float('nan')))", "cannot convert float NaN to integer"),
    ("int(T.tensor(float('inf')))", "cannot convert float infinity to integer"),
    "T.tensor(2.5).item()", "T.tensor([2.5]).item()", "T.tensor(2.5, requires_grad=True).item()",
    "type(T.tensor(2, dtype=T.int32).item())", "type(T.tensor(2, dtype=T.float16).item())", "type(T.tensor(True).item())",
    ("T.tensor([2.5, 3]).item()", "a Tensor with 2 elements cannot be converted to Scalar"),
    ("T.tensor([]).item()", "a Tensor with 0 elements cannot be converted to Scalar"),
    "T.tensor([[1, 2]]).tolist()", "T.tensor(1.5).tolist()", "type(T.tensor(1, dtype=T.uint8).tolist())",
    "T.tensor([1., 2.], requires_grad=True).tolist()", "T.tensor([1.5], dtype=T.float16).tolist()",
    "T.tensor([1., 2.], requires_grad=True).numpy(force=True)", "T.tensor([1., 2.]).numpy(force=True)",
    "T.tensor([1., 2.]).numpy(force=False)",
    "(lambda t: np.shares_memory(t.numpy(force=True), t.numpy()))(T.tensor([1., 2.]))",
    ("T.tensor([1., 2.], requires_grad=True).numpy()", "Can't call numpy() on Tensor that requires grad"),
    ("T.tensor([1., 2.]).numpy(True)", "positional argument"),
    ("T.tensor([1., 2.]).numpy(dtype=np.float64)", "unexpected keyword argument 'dtype'"),
)
def test_python_protocols(row):
    check(*row)


def test_hash_is_identity():
    for module in (torch, distml):
        t = module.tensor(1)
        assert hash(t) == id(t) and {t: 1}[t] == 1


def test_array_protocol_follows_numpy2_copy():
    t = distml.tensor([1.0, 2.0])
    assert np.shares_memory(np.asarray(t, copy=False), t.numpy())
    assert not np.shares_memory(np.asarray(t, copy=True), t.numpy())
    assert not np.shares_memory(np.asarray(t, dtype=np.float64), t.numpy())
    with pytest.raises(ValueError, match="Unable to avoid copy"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_deepcopy_as_torch():
    for module in (torch, distml):
        a = module.tensor([1.0, 2.0], requires_grad=True)
        a.grad = module.ones(2)
        b = copy.deepcopy(a)
        assert b.requires_grad and b.is_leaf and b.grad is not a.grad and b.grad.tolist() == [1.0, 1.0]
        b.data[0] = 9
        assert a.tolist() == [1.0, 2.0]
        with pytest.raises(RuntimeError, match="Only Tensors created explicitly by the user \\(graph leaves\\)"):
            copy.deepcopy(a * 2)
        d = module.zeros(2)
        first, second = copy.deepcopy([d, d])
        assert first is second
        v = module.arange(4.0)
        copied = copy.deepcopy({"v": v, "w": v[1:3], "t": module.zeros(2, 3).t()})
        copied["w"][0] = 100  # views of one tensor stay views of one copy
        assert copied["v"].tolist() == [0.0, 100.0, 2.0, 3.0] and v.tolist() == [0.0, 1.0, 2.0, 3.0]
        assert copied["t"].stride() == (1, 3)
        p = copy.deepcopy(module.nn.Parameter(module.zeros(2)))
        assert type(p) is module.nn.Parameter and p.requires_grad
        shallow = copy.copy(a)
        shallow.data[0] = 5
        assert a.tolist()[0] == 5 and shallow.requires_grad and shallow.grad is None


def test_pickle_keeps_requires_grad():
    t = pickle.loads(pickle.dumps(distml.tensor([1.0, 2.0], requires_grad=True)))
    assert t.requires_grad and t.tolist() == [1.0, 2.0]
    assert pickle.loads(pickle.dumps(distml.channels_last)) is distml.channels_last
    assert pickle.loads(pickle.dumps(distml.strided)) is distml.strided


# ---- properties and methods ----

@table(
    "T.arange(6.).reshape(2, 3).mT", "T.arange(6.).reshape(1, 2, 3).mT.shape", "T.arange(6.).reshape(2, 3).H",
    "T.arange(6.).reshape(2, 3).mH", "T.arange(6.).reshape(2, 3).T", "T.arange(3.).T", "T.tensor(3.).T", "T.tensor(3.).H",
    "T.tensor([[1+2j, 3j]]).H", "T.tensor([[1+2j, 3j]]).mH", "T.tensor([[1+2j, 3j]]).mT",
    ("T.arange(3.).mT", "tensor.mT is only supported on matrices or batches of matrices. Got 1-D tensor."),
    ("T.arange(3.).mH", "tensor.mH is only supported on matrices or batches of matrices. Got 1-D tensor."),
    ("T.arange(3.).H", "tensor.H is only supported on matrices (2-D tensors). Got 1-D tensor."),
    ("T.arange(6.).reshape(1, 2, 3).H", "Got 3-D tensor. For batches of matrices, consider using tensor.mH"),
    "T.zeros(2).is_cuda", "T.zeros(2).is_cpu", "T.zeros(2).is_xpu", "T.zeros(2).is_mps", "T.zeros(2).is_meta",
    "T.zeros(2).is_sparse", "T.zeros(2).is_sparse_csr", "T.zeros(2).is_quantized", "T.zeros(2).is_mkldnn",
    "T.zeros(2).is_nested", "T.zeros(2).is_complex()", "T.zeros(2, dtype=T.complex64).is_complex()",
    "T.zeros(2).is_floating_point()", "T.zeros(2, dtype=T.int64).is_floating_point()",
    "T.zeros(2, dtype=T.bfloat16).is_floating_point()", "T.zeros(2).is_signed()", "T.zeros(2, dtype=T.uint8).is_signed()",
    "T.zeros(2, dtype=T.bool).is_signed()", "T.zeros(2, dtype=T.int8).is_signed()", "T.zeros(2).device.index",
    "T.zeros(2).layout", "T.strided", "T.zeros(2).itemsize", "T.zeros(2, dtype=T.float64).nbytes",
    "T.zeros(2, 3)[:, :2].nbytes", "T.zeros(2, dtype=T.int16).itemsize", "T.zeros(2).grad_fn",
    "(T.zeros(2, requires_grad=True) * 2).grad_fn.name()", "T.zeros(2, 3).storage_offset()",
    "T.zeros(2, 3)[1].storage_offset()", "T.zeros(2, 3)[:, 1].storage_offset()", "T.zeros(2, 3)[1:, 1:].storage_offset()",
    "T.zeros(2, 3).t()[1].storage_offset()", "T.zeros(2, 3).ndimension()", "T.zeros(2, 3).nelement()",
    "T.zeros(2, 3, dtype=T.int16).element_size()", "T.zeros(2).data_ptr() > 0",
    "(lambda t: t[1].data_ptr() - t.data_ptr())(T.zeros(2, 3))",
    ("(lambda t: setattr(t, 'is_sparse', True))(T.zeros(2))", None),
)
def test_properties(row):
    check(*row)


@table(
    "T.zeros(2).new_tensor([1, 2])", "T.zeros(2).new_tensor([1, 2], dtype=T.int64)",
    "T.zeros(2).new_tensor([1., 2.], requires_grad=True)", "T.zeros(2).new_tensor(np.array([1, 2]))",
    "T.zeros(2, dtype=T.int32).new_tensor(2.5)", "T.zeros(2).new_tensor([1], device='cpu')",
    "T.zeros(2).new_zeros((2, 3))", "T.zeros(2).new_zeros(2, 3)", "T.zeros(2).new_zeros([2, 3])",
    "T.zeros(2).new_zeros(size=(2, 3))", "T.zeros(2).new_zeros(T.Size([2]))", "T.zeros(2).new_zeros(2, dtype=T.int64)",
    "T.zeros(2).new_zeros(2, requires_grad=True)", "T.zeros(2).new_zeros(2, device='cpu')",
    "T.zeros(2, dtype=T.float64).new_ones((2,))", "T.zeros(2).new_ones(2, requires_grad=True)", "T.zeros(2).new_ones(2, 3)",
    "T.zeros(2).new_full((2, 3), 7)", "T.zeros(2).new_full((2,), 7.5)", "T.zeros(2, dtype=T.int64).new_full((2,), 7.5)",
    "T.zeros(2).new_full((2,), 7, dtype=T.int64)", "T.zeros(2).new_full([2], 7, requires_grad=True)",
    "T.zeros(2).new_full(size=(2,), fill_value=7)", ("T.zeros(2).new_empty(2, 3)", None, False),
    ("T.zeros(2).new_empty((2, 3))", None, False), ("T.zeros(2, dtype=T.int8).new_empty((2, 3))", None, False),
    ("T.zeros(2).new_empty(2, requires_grad=True)", None, False), ("T.zeros(2).new_empty(size=(2,))", None, False),
    ("T.zeros(2).new_zeros(2, 3, out=None)", "unexpected keyword argument 'out'"),
    ("T.zeros(2).new_full(2, 7)", "argument 'size' (position 1) must be tuple of ints, not int"),
    "T.arange(6.).view_as(T.zeros(2, 3))", "T.arange(2.).expand_as(T.zeros(3, 2))",
    ("T.arange(6.).view_as(T.zeros(2, 2))", None), ("T.arange(2.).expand_as(T.zeros(3, 3))", None),
    "T.zeros(2).clone(memory_format=T.preserve_format)", "T.zeros(2).clone(memory_format=T.contiguous_format)",
    "T.zeros(2).clone(memory_format=None)", "T.zeros(2, 3).t().clone().stride()",
    "T.zeros(2, 3).t().clone(memory_format=T.contiguous_format).stride()",
    "T.zeros(2, 3).t().clone(memory_format=T.preserve_format).stride()", "T.zeros(2, 3)[:, :2].clone().stride()",
    "T.zeros(2, 3, 4, 5).clone(memory_format=T.channels_last).stride()", "T.zeros(2, 3, 4).permute(2, 0, 1).clone().stride()",
    "T.zeros(2, 3).expand(4, 2, 3).clone().stride()", "T.zeros(2, 3, 4, 5).contiguous(memory_format=T.channels_last).clone().stride()",
    ("T.zeros(2, 3).t().clone(memory_format=T.channels_last)", "required rank 4 tensor to use channels_last format"),
    ("T.zeros(2).clone(T.contiguous_format)", "positional argument"),
    "T.zeros(2, 3).t().contiguous().stride()", "T.zeros(2, 3).contiguous(memory_format=T.contiguous_format).stride()",
    "T.zeros(2, 3).contiguous(memory_format=T.preserve_format)",
    "T.zeros(2, 3, 4, 5).contiguous(memory_format=T.channels_last).stride()",
    "T.zeros(2, 3, 4, 5, 6).contiguous(memory_format=T.channels_last_3d).stride()",
    "T.zeros(2, 3, 4, 5).contiguous(memory_format=T.channels_last).is_contiguous()",
    "T.zeros(2, 3, 4, 5).contiguous(memory_format=T.channels_last).is_contiguous(memory_format=T.channels_last)",
    "T.zeros(2, 3, 4, 5).contiguous(memory_format=T.channels_last).contiguous().stride()",
    "T.zeros(2, 3, 4, 5).is_contiguous(memory_format=T.channels_last)", "T.zeros(2, 1, 4, 5).is_contiguous(memory_format=T.channels_last)",
    "T.zeros(2, 3, 4).is_contiguous(memory_format=T.channels_last)",
    "T.zeros(2, 3, 4, 5).is_contiguous(memory_format=T.preserve_format)",
    "T.zeros(2, 3).t().is_contiguous(memory_format=T.preserve_format)", "(lambda t: t.contiguous() is t)(T.zeros(2, 3))",
    ("T.zeros(2, 3).t().contiguous(memory_format=T.preserve_format)", "preserve memory format is unsupported by the contiguous operator"),
    ("T.zeros(2, 3, 4, 5).contiguous(memory_format=T.channels_last_3d)", "required rank 5 tensor to use channels_last_3d format"),
    ("T.zeros(2).contiguous(memory_format=None)", "argument 'memory_format' must be"),
    ("T.zeros(2).is_contiguous(memory_format=1)", "argument 'memory_format' must be"),
    "T.zeros(2).to(T.float64)", "T.zeros(2).to('cpu')", "T.zeros(2).to(T.device('cpu'))", "T.zeros(2).to('cpu', T.int64)",
    "T.zeros(2).to(T.zeros(1, dtype=T.int64))", "T.zeros(2).to(dtype=T.int64, device='cpu', non_blocking=True, copy=True)",
    "(lambda t: t.to(copy=True) is t)(T.zeros(2))", "(lambda t: t.to(T.float32) is t)(T.zeros(2))",
    "(lambda t: t.to(T.float32, copy=True) is t)(T.zeros(2))", "(lambda t: t.to() is t)(T.zeros(2))",
    "T.zeros(2).to(memory_format=T.contiguous_format)", "T.zeros(2, 3, 4, 5).to(memory_format=T.channels_last).stride()",
    "T.zeros(2, 3, 4, 5).to(T.float64, memory_format=T.channels_last).stride()", "T.zeros(3, 2).t().to(T.float64).stride()",
    "T.zeros(2).to(T.float64, True)", "T.zeros(2).to(T.float64, False, True)", "T.zeros(2).to('cpu', T.float64, True)",
    "T.zeros(2).to(T.zeros(1, dtype=T.int64), True, True)", "T.zeros(2).to(int)", "T.zeros(2).to(float)",
    "T.zeros(2).to(bool)", "T.zeros(2, requires_grad=True).to(T.float64).requires_grad",
    ("T.zeros(2, 3).to(memory_format=T.channels_last)", "required rank 4 tensor to use channels_last format"),
    ("T.zeros(2).to(T.float64, T.int64)", "to() received an invalid combination of arguments - got ("),
    ("T.zeros(2).to('cpu', 'cpu')", "to() received an invalid combination of arguments - got (str, str)"),
    ("T.zeros(2).to(T.float64, dtype=T.int64)", "to() received an invalid combination of arguments"),
    ("T.zeros(2).to(foo=1)", "to() received an invalid combination of arguments - got (foo=int"),
    ("T.zeros(2).to('foo')", "device type at start of device string: foo"),
)
def test_methods(row):
    check(*row)


def test_transpose_warnings_as_torch():
    # PyTorch's own text (it warns once per process; distml warns as Python's warning filters say)
    with pytest.warns(UserWarning, match="The use of `x.T` on tensors of dimension other than 2"):
        distml.zeros(2, 3, 4).T
    with pytest.warns(UserWarning, match="Tensor.T is deprecated on 0-D tensors"):
        distml.tensor(1.0).T
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distml.zeros(2, 3).T


def test_clone_in_a_memory_format_is_not_a_view():
    x = distml.arange(6.0, requires_grad=True)
    y = x.reshape(2, 3).t().clone()
    assert y.stride() == (1, 3) and y._base is None
    y.add_(1)  # in place on the copy: allowed, as in PyTorch
    y.sum().backward()
    assert x.grad.tolist() == [1.0] * 6


# ---- top-level dtype helpers and questions ----

DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
          "complex64", "complex128"]


@pytest.mark.parametrize("a", DTYPES)
def test_promote_types_and_can_cast_match_torch(a):
    for b in DTYPES:
        expected = torch.promote_types(getattr(torch, a), getattr(torch, b))
        assert distml.promote_types(getattr(distml, a), getattr(distml, b)).name == str(expected)[6:], (a, b)
        assert distml.can_cast(getattr(distml, a), getattr(distml, b)) == torch.can_cast(getattr(torch, a),
                                                                                          getattr(torch, b)), (a, b)


@table(
    "T.float", "T.long", "T.int", "T.short", "T.half", "T.double", "T.bool", "T.cfloat", "T.cdouble",
    "repr(T.finfo(T.float32))", "repr(T.finfo())", "repr(T.finfo(T.float16))", "repr(T.finfo(T.bfloat16))",
    "repr(T.finfo(T.float64))", "repr(T.finfo(float))", "repr(T.finfo(T.complex64))", "T.finfo(T.complex128).dtype",
    "T.finfo(T.float32).max", "T.finfo(T.float32).min", "T.finfo(T.float32).eps", "T.finfo(T.float32).tiny",
    "T.finfo(T.float32).smallest_normal", "T.finfo(T.float32).bits", "T.finfo(T.float32).resolution",
    "T.finfo(T.float32).dtype", "T.finfo(T.float64).max", "T.finfo(T.bfloat16).eps", "T.finfo(T.float16).bits",
    "T.finfo(T.float32) == T.finfo(T.float32)", "T.finfo(T.float32) == T.finfo(T.float64)",
    "T.finfo(T.float32) is T.finfo(T.float32)",
    ("hash(T.finfo(T.float32))", "unhashable type"),
    ("T.finfo(T.int32)", "finfo() requires a floating point input type. Use"),
    ("T.finfo('float32')", "argument 'type' (position 1) must be"),
    "repr(T.iinfo(T.int32))", "repr(T.iinfo(T.uint8))", "repr(T.iinfo(T.int64))", "repr(T.iinfo(int))",
    "T.iinfo(T.int64).max", "T.iinfo(T.int8).min", "T.iinfo(T.uint8).bits", "T.iinfo(T.uint8).dtype",
    "T.iinfo(T.int16).max", "T.iinfo(T.int32) == T.iinfo(T.int32)",
    ("T.iinfo(T.bool)", "bool is not supported by"), ("T.iinfo(T.float32)", "iinfo() requires an integer input type. Use"),
    ("T.iinfo(T.int16).eps", "object has no attribute 'eps'"),
    "T.is_tensor(T.zeros(1))", "T.is_tensor([1])", "T.is_tensor(T.nn.Parameter(T.zeros(1)))",
    "T.is_floating_point(T.zeros(1))", "T.is_floating_point(T.zeros(1, dtype=T.int64))", "T.is_complex(T.zeros(1))",
    ("T.is_floating_point(1.0)", "argument 'input' (position 1) must be Tensor, not float"),
    "T.numel(T.zeros(2, 3))", ("T.numel([1])", "argument 'input' (position 1) must be Tensor, not list"),
    "T.promote_types(T.int32, float)", "T.promote_types(bool, T.int8)", "T.can_cast(T.int32, float)",
    ("T.promote_types(T.int32, 'a')", "promote_types(): argument 'type2' (position 2) must be"),
    ("T.can_cast(1, T.int32)", "can_cast(): argument 'from_' (position 1) must be"),
    "T.can_cast(from_=T.int32, to=T.float32)",
    "T.result_type(T.tensor([1]), 1.0)", "T.result_type(T.tensor([1], dtype=T.int32), 1)",
    "T.result_type(T.tensor([1.], dtype=T.float16), T.tensor(1., dtype=T.float64))", "T.result_type(1, 1.0)",
    "T.result_type(1, 2)", "T.result_type(True, 2)", "T.result_type(tensor=T.tensor([1]), other=2.)",
    "T.result_type(T.tensor([1]), T.tensor([1.], dtype=T.float64))", "T.result_type(T.tensor([True]), 1+2j)",
    ("T.result_type([1], 2)", "result_type() received an invalid combination of arguments - got (list, int)"),
    "T.preserve_format", "T.contiguous_format", "T.channels_last", "T.channels_last_3d",
    "T.preserve_format == T.contiguous_format", "repr(T.preserve_format).split('.')[1]", "type(T.channels_last).__name__",
    "type(T.strided).__name__", "T.get_default_dtype()", "T.is_inference_mode_enabled()",
)
def test_top_level(row):
    check(*row)


def test_inference_mode_as_torch():
    for module in (torch, distml):
        x = module.ones(2, requires_grad=True)
        with module.inference_mode():
            assert not module.is_grad_enabled() and module.is_inference_mode_enabled()
            assert not (x * 2).requires_grad
            with module.inference_mode(False):
                assert module.is_grad_enabled() and not module.is_inference_mode_enabled()
            with module.inference_mode(mode=True):
                assert module.is_inference_mode_enabled()
        assert module.is_grad_enabled() and not module.is_inference_mode_enabled()
        with module.no_grad():
            with module.inference_mode(False):
                assert module.is_grad_enabled() and not module.is_inference_mode_enabled()

        @module.inference_mode()
        def called():
            return module.is_inference_mode_enabled(), module.is_grad_enabled(), (x * 2).requires_grad

        @module.inference_mode
        def bare():
            return module.is_inference_mode_enabled()

        assert called() == (True, False, False) and bare() is True and called.__name__ == "called"
        assert module.is_grad_enabled() and not module.is_inference_mode_enabled()
        try:
            with module.inference_mode():
                raise KeyError
        except KeyError:
            assert module.is_grad_enabled() and not module.is_inference_mode_enabled()


def test_compile_returns_the_model_itself():
    model = distml.nn.Linear(2, 2)
    assert distml.compile(model) is model
    assert distml.compile(model, mode="reduce-overhead", fullgraph=True, dynamic=False) is model
    assert distml.compile(model, backend="eager") is model and distml.compile(model, disable=True) is model

    @distml.compile(mode="max-autotune")
    def double(x):
        return 2 * x

    assert double(distml.tensor(3.0)).item() == 6.0 and distml.compile(double) is double
    assert distml.compiler.is_compiling() is False
    # torch.compile raises these as RuntimeError (InvalidBackend is one) before compiling anything
    for kwargs in (dict(backend="nope"), dict(mode="foo"), dict(mode="default", options={})):
        with pytest.raises(RuntimeError):
            distml.compile(model, **kwargs)
    with pytest.raises(TypeError, match="no compiler to pass options to"):
        distml.compile(model, options={"max_autotune": True})
    with pytest.raises(AssertionError, match="A callable function is expected"):
        distml.compile(3)


# ---- printing ----

REPRS = [
    "T.tensor([True, True])", "T.tensor([True, False])", "T.tensor([0., 1., float('nan')])", "T.tensor([float('inf'), -1.5])",
    "T.arange(2000.)", "T.arange(2000)", "T.tensor([1+2j, -3.5j])", "T.tensor([[1e-5, 1.], [2., 3.]])", "T.tensor([1e10, 1.])",
    "T.tensor(0.)", "T.tensor(-0.)", "T.tensor([100000.5])", "T.arange(100.).reshape(4, 25)", "T.arange(3000.).reshape(10, 300)",
    "T.arange(24).reshape(2, 3, 4)", "T.zeros(2, 0)", "T.zeros(0, dtype=T.int64)", "T.tensor([1.5, 2.25], dtype=T.bfloat16)",
    "T.tensor([[1., -2.], [3., 4.]], requires_grad=True)", "T.tensor([1., 2.], requires_grad=True) * 2",
    "T.tensor([123456789.])", "T.tensor([1.23456789, -0.000123])", "T.linspace(0, 1, 30)", "T.tensor([-1, 20, 300])",
    "T.tensor(1+1j)", "T.tensor([float('nan'), float('inf')])", "T.arange(60.).reshape(3, 4, 5) / 7", "T.ones(1100, dtype=T.bool)",
    "T.full((3, 30), 1.5, dtype=T.float64)", "T.nn.Parameter(T.ones(2))",
]


@pytest.mark.parametrize("expr", REPRS)
def test_repr_matches_torch(expr):
    assert repr(eval(expr, dict(T=distml))) == repr(eval(expr, dict(T=torch))).replace("torch.", "distml.")


@pytest.mark.parametrize("options", [dict(precision=2), dict(sci_mode=True), dict(sci_mode=False), dict(threshold=5),
                                     dict(edgeitems=1, threshold=5), dict(linewidth=30), dict(profile="short"),
                                     dict(profile="full"), dict(edgeitems=0, threshold=3)], ids=str)
def test_set_printoptions_as_torch(options):
    try:
        for module in (torch, distml):
            module.set_printoptions(**options)
        for expr in ("T.tensor([1.12345, 2000.5, 3e-5])", "T.arange(10)", "T.arange(12.).reshape(3, 4) / 3",
                     "T.tensor([1+2j, 3.25-1j])"):
            assert repr(eval(expr, dict(T=distml))) == repr(eval(expr, dict(T=torch))).replace("torch.", "distml.")
        assert distml.get_printoptions() == {k: getattr(torch._tensor_str.PRINT_OPTS, k) for k in distml.get_printoptions()}
    finally:
        for module in (torch, distml):
            module.set_printoptions(profile="default")


def test_layouts_and_memory_formats_pickle_as_their_singletons():
    import pickle
    for constant in (distml.strided, distml.sparse_coo, distml.preserve_format, distml.contiguous_format,
                     distml.channels_last, distml.channels_last_3d):
        assert pickle.loads(pickle.dumps(constant)) is constant
        assert repr(constant) == repr(getattr(torch, constant.name)).replace("torch.", "distml.")


@pytest.mark.parametrize("call", [
    lambda lib, t: lib.flip(t, dims=[1]), lambda lib, t: t.flip(dims=(0, 1)), lambda lib, t: t.flip(1),
    lambda lib, t: lib.permute(t, dims=(1, 0)), lambda lib, t: t.permute(dims=[1, 0]),
    lambda lib, t: lib.reshape(t, shape=(3, 2)), lambda lib, t: t.reshape(shape=(-1,)), lambda lib, t: t.reshape(6),
    lambda lib, t: t.view(size=(3, 2)), lambda lib, t: t.repeat(repeats=(2, 1)),
    lambda lib, t: t[:1].expand(size=(4, 3)), lambda lib, t: t[:1].expand((4, 3)),
])
def test_size_and_dims_lists_by_keyword_as_torch(call):
    ours, theirs = call(distml, distml.arange(6.0).reshape(2, 3)), call(torch, torch.arange(6.0).reshape(2, 3))
    assert ours.tolist() == theirs.tolist()


def test_size_list_given_twice_raises_type_error():
    with pytest.raises(TypeError):
        distml.arange(6.0).reshape(2, 3, shape=(3, 2))


@pytest.mark.parametrize("shape,repeats", [((2, 3), (2, 1)), ((3,), (2, 2, 1)), ((2, 1, 3), (1, 4, 2)),
                                           ((0, 2), (3, 1))])
def test_repeat_is_a_writable_copy_with_torchs_gradient(shape, repeats):
    values = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    ours, theirs = distml.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    out_ours, out_theirs = ours.repeat(*repeats), theirs.repeat(*repeats)
    assert out_ours.tolist() == out_theirs.tolist()
    weights = np.random.default_rng(0).standard_normal(tuple(out_theirs.shape))
    (out_ours * distml.tensor(weights)).sum().backward()
    (out_theirs * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy())
    copy = out_ours.detach()
    copy[...] = 1.0  # a new array, not a read-only expanded view
    assert ours.detach().tolist() == values.tolist()
