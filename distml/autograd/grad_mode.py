"""Whether operations record the graph: `no_grad`, `enable_grad`, `set_grad_enabled`."""
import functools


class _State:
    enabled = True


def is_grad_enabled():
    return _State.enabled


class set_grad_enabled:
    """Turn recording on or off, as a call, a context manager or a decorator."""

    def __init__(self, mode):
        self.previous = _State.enabled
        self.mode = bool(mode)
        _State.enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _State.enabled = self.previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(self.mode):
                return fn(*args, **kwargs)
        _State.enabled = self.previous
        return wrapper


class _GradModeContext:
    mode = None

    def __enter__(self):
        self.previous = _State.enabled
        _State.enabled = self.mode

    def __exit__(self, *exc):
        _State.enabled = self.previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    """Do not record operations: `with distml.no_grad(): y = model(x)`."""
    mode = False


class enable_grad(_GradModeContext):
    """Record operations even inside `no_grad`."""
    mode = True
