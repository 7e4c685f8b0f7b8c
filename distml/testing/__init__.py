"""`distml.testing.assert_close`, as torch.testing's: tensors (or numbers, or nested sequences and
mappings of them) equal in shape, dtype and device and close elementwise, |a - e| <= atol + rtol * |e|,
with torch's default tolerances per dtype; an AssertionError saying where they differ most.

    distml.testing.assert_close(model(x), expected)
"""
import collections.abc

import numpy as np

from distml import dtypes
from distml.tensor import Tensor

# dtype -> (rtol, atol), torch.testing's defaults; exact for the others (integers, bool)
_TOLERANCES = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
               "float64": (1e-7, 1e-7), "complex64": (1.3e-6, 1e-5), "complex128": (1e-7, 1e-7)}


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None, equal_nan=False,
                 check_device=True, check_dtype=True, check_layout=True, check_stride=False, msg=None):
    if (rtol is None) != (atol is None):
        raise ValueError(f"Both 'rtol' and 'atol' must be either specified or omitted, but got no {'rtol' if rtol is None else 'atol'}.")
    options = dict(rtol=rtol, atol=atol, equal_nan=equal_nan, check_device=check_device, check_dtype=check_dtype,
                   check_stride=check_stride, msg=msg)
    for path, a, e in _pairs(actual, expected, ""):
        try:
            _compare(a, e, **options)
        except AssertionError as error:
            raise AssertionError(str(error) + (f"\n\nThe failure occurred for item {path}" if path else "")) from None


def _pairs(actual, expected, path):
    """(path, actual, expected) for every leaf of two nested sequences or mappings."""
    if isinstance(expected, collections.abc.Mapping) and isinstance(actual, collections.abc.Mapping):
        if set(actual) != set(expected):
            raise AssertionError(f"The keys of the mappings do not match: {sorted(map(str, actual))} != "
                                 f"{sorted(map(str, expected))}.")
        for key in expected:
            yield from _pairs(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        if len(actual) != len(expected):
            raise AssertionError(f"The length of the sequences mismatch: {len(actual)} != {len(expected)}")
        for index, (a, e) in enumerate(zip(actual, expected)):
            yield from _pairs(a, e, f"{path}[{index}]")
    else:
        yield path, actual, expected


def _compare(actual, expected, rtol, atol, equal_nan, check_device, check_dtype, check_stride, msg):
    if isinstance(actual, Tensor) != isinstance(expected, Tensor):
        raise TypeError(f"No comparison pair was able to handle inputs of type {type(actual)} and {type(expected)}.")
    _compare_tensors(actual if isinstance(actual, Tensor) else Tensor(np.asarray(actual)),
                     expected if isinstance(expected, Tensor) else Tensor(np.asarray(expected)),
                     rtol, atol, equal_nan, check_device, check_dtype, check_stride, msg)


def _attribute_mismatch(name, a, e):
    return AssertionError(f"The values for attribute '{name}' do not match: {a} != {e}.")


def _compare_tensors(actual, expected, rtol, atol, equal_nan, check_device, check_dtype, check_stride, msg):
    if actual.shape != expected.shape:
        raise _attribute_mismatch("shape", actual.shape, expected.shape)
    if check_device and actual.device != expected.device:
        raise _attribute_mismatch("device", actual.device, expected.device)
    if check_dtype and actual.dtype != expected.dtype:
        raise _attribute_mismatch("dtype", actual.dtype, expected.dtype)
    if check_stride and actual.stride() != expected.stride():
        raise _attribute_mismatch("stride()", actual.stride(), expected.stride())
    if rtol is None:
        rtol, atol = max((_TOLERANCES.get(t.dtype.name, (0.0, 0.0)) for t in (actual, expected)))
    a, e = (np.asarray(t.cpu().array) for t in (actual, expected))
    if a.dtype == dtypes.bfloat16.np or e.dtype == dtypes.bfloat16.np:
        a, e = a.astype(np.float32), e.astype(np.float32)
    close = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan) if a.dtype.kind in "fc" or \
        e.dtype.kind in "fc" else a == e
    if close.all():
        return
    if msg is not None:
        raise AssertionError(msg(None) if callable(msg) else msg)
    inexact = a.dtype.kind in "fc" or e.dtype.kind in "fc"
    common = np.result_type(a, e) if inexact else np.float32
    difference = np.abs(a.astype(common) - e.astype(common)) if inexact else np.abs(a.astype(np.int64) - e)
    relative = (difference / np.abs(e.astype(common))).astype(common if inexact else np.float32)
    kind, verdict = ("Scalars" if a.ndim == 0 else "Tensor-likes"), ("close" if inexact else "equal")
    allowed = lambda tolerance: f" (up to {tolerance} allowed)" if inexact else ""  # noqa: E731
    lines = [f"{kind} are not {verdict}!", ""]
    if a.ndim == 0:
        lines += [f"Expected {e.item()} but got {a.item()}.",
                  f"Absolute difference: {_number(difference)}{allowed(atol)}",
                  f"Relative difference: {_number(float(difference) / abs(float(e)) if e else np.inf)}{allowed(rtol)}"]
        raise AssertionError("\n".join(lines))
    mismatched = int((~close).sum())
    lines.append(f"Mismatched elements: {mismatched} / {a.size} ({100 * mismatched / a.size:.1f}%)")
    for label, values, tolerance in (("absolute", difference, atol), ("relative", relative, rtol)):
        ranked = np.where(close, -np.inf, np.where(np.isnan(values), np.inf, values))  # NaN counts as largest
        worst = np.unravel_index(int(np.argmax(ranked)), values.shape)
        lines.append(f"Greatest {label} difference: {_number(values[worst])} at index "
                     f"{tuple(int(i) for i in worst)}{allowed(tolerance)}")
    raise AssertionError("\n".join(lines))


def _number(value):
    return str(int(value)) if np.asarray(value).dtype.kind in "iu" else repr(float(value))
