"""One declaration per op, beside its definition:

    @register("absolute", method=True, inplace=True)
    def abs(x): ...

makes `distml.abs` and `distml.absolute`, the methods `Tensor.abs` / `Tensor.absolute`, and
the in-place `Tensor.abs_` / `Tensor.absolute_` (which compute out of place, then write into self).
"""
FUNCTIONS = {}  # name -> function: the top-level distml.* ops
METHODS = {}  # name -> function taking the tensor first: Tensor.<name>
INPLACE = {}  # name -> function: Tensor.<name>_


def register(*aliases, function=True, method=False, inplace=False):
    """Record `fn` under its own name and `aliases` as a top-level function, a method, an in-place method."""
    def record(fn):
        for name in (fn.__name__,) + aliases:
            for wanted, table in ((function, FUNCTIONS), (method, METHODS), (inplace, INPLACE)):
                if wanted:
                    if table.get(name, fn) is not fn:
                        raise TypeError(f"two ops are registered as {name}: {table[name].__module__} and "
                                        f"{fn.__module__}; keep one")
                    table[name] = fn
        return fn
    return record


def install_methods(tensor_class):
    """Attach the registered methods to Tensor; a name Tensor already defines is an error (one definition each)."""
    methods = dict(METHODS)
    methods.update({name + "_": _inplace_method(fn, name + "_") for name, fn in INPLACE.items()})
    for name, method in methods.items():
        if name in tensor_class.__dict__:
            raise TypeError(f"Tensor.{name} is defined in tensor.py and registered as an op: keep one")
        setattr(tensor_class, name, method)


def _inplace_method(function, name):
    def method(self, *args, **kwargs):
        return self._inplace(function(self._inplace_input(*args, *kwargs.values()), *args, **kwargs))
    method.__name__ = name
    method.__doc__ = f"In-place {function.__name__}: writes the result into self and returns self."
    return method
