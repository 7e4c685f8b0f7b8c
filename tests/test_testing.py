"""distml.testing.assert_close against torch.testing.assert_close: the same verdicts and messages."""
import pytest
import torch

import distml

CASES = {
    "close": (lambda m: m.tensor([1.0, 2.0]), lambda m: m.tensor([1.0, 2.000001])),
    "one element off": (lambda m: m.tensor([1.0, 2.0, 3.0]), lambda m: m.tensor([1.0, 2.5, 3.0])),
    "float64": (lambda m: m.tensor([1.0, 2.0], dtype=m.float64), lambda m: m.tensor([1.0, 2.5], dtype=m.float64)),
    "integers": (lambda m: m.tensor([1, 2]), lambda m: m.tensor([1, 3])),
    "scalars": (lambda m: m.tensor(1.0), lambda m: m.tensor(1.5)),
    "nan": (lambda m: m.tensor([[1.0, float("nan")]]), lambda m: m.tensor([[1.0, float("nan")]])),
    "dtype": (lambda m: m.tensor([1.0]), lambda m: m.tensor([1.0], dtype=m.float64)),
    "shape": (lambda m: m.tensor([1.0, 2.0]), lambda m: m.tensor([1.0, 2.0, 3.0])),
    "nested": (lambda m: [m.tensor([1.0]), {"a": m.tensor([2.0])}], lambda m: [m.tensor([1.0]), {"a": m.tensor([2.1])}]),
}


def outcome(lib, actual, expected, **options):
    try:
        lib.testing.assert_close(actual(lib), expected(lib), **options)
        return "passed"
    except AssertionError as error:
        return str(error).replace("torch.", "distml.")


@pytest.mark.parametrize("name", CASES)
def test_same_verdict_and_message_as_torch(name):
    assert outcome(distml, *CASES[name]) == outcome(torch, *CASES[name])


def test_tolerances_and_equal_nan_as_torch():
    actual, expected = CASES["one element off"]
    assert outcome(distml, actual, expected, rtol=0.3, atol=0.0) == outcome(torch, actual, expected, rtol=0.3, atol=0.0)
    assert outcome(distml, *CASES["nan"], equal_nan=True) == "passed"
    with pytest.raises(ValueError, match="Both 'rtol' and 'atol'"):
        distml.testing.assert_close(distml.ones(1), distml.ones(1), rtol=0.1)
