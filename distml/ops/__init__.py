"""Every differentiable op, defined once (forward + backward) and device-generic.

Each public op carries its own declaration (`@register(...)`, see registry.py) saying whether
it is a top-level `distml.*` function, a Tensor method, and has an in-place `name_` form.
Importing the modules below runs those declarations; distml/__init__.py installs them.
"""
from distml.ops import (combine, compare, complex_parts, convert, elementwise, index, indexed, layout,  # noqa: F401
                        linalg, math, reduce, search, shape, softmax, sort, stats)
from distml.ops.registry import FUNCTIONS

globals().update(FUNCTIONS)  # internal callers write ops.add, ops.cat, ...
