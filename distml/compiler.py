"""`distml.compile`: PyTorch programs write `model = torch.compile(model)`.

torch.compile promises the same results, faster. distml has no graph compiler, so `compile` returns
the module or function itself: the same results, at eager speed. It accepts only the arguments whose
promise that keeps (the default backend or "eager", the modes, fullgraph, dynamic, disable) and raises
for the rest, as torch.compile raises for unknown backends and modes.
"""

_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_BACKENDS = (None, "inductor", "eager", "aot_eager")


def compile(model=None, *, fullgraph=False, dynamic=None, backend=None, mode=None, options=None,
            disable=False):
    """`model` itself (a Module or a function), which runs eagerly; `distml.compile(mode=...)` without
    a model returns the decorator: `@distml.compile(fullgraph=True)`."""
    if backend not in _BACKENDS:
        raise RuntimeError(f"Invalid backend: {backend!r}; distml runs eagerly and takes only the backends "
                           f"{', '.join(b for b in _BACKENDS if b)}")
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be specified at the same time.")
    if mode is not None and mode not in _MODES:
        raise RuntimeError(f"Unrecognized mode={mode}, should be one of: {', '.join(_MODES)}")
    if options:
        raise TypeError(f"compile(): distml has no compiler to pass options to (got {sorted(options)})")
    if not all(isinstance(flag, bool) for flag in (fullgraph, disable)) or dynamic not in (None, True, False):
        raise TypeError("compile(): fullgraph and disable must be bool, dynamic None or bool")
    if model is None:
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                                  options=options, disable=disable)
    if not callable(model):
        raise AssertionError(f"A callable function is expected, but {type(model)} is provided.")
    return model


def is_compiling():
    """Whether the code runs inside a compiled graph: never, in distml."""
    return False
