"""Whether operations record the graph: `no_grad`, `enable_grad`, `set_grad_enabled`, `inference_mode`."""
import functools


class _State:
    enabled = True
    inference = False  # inside inference_mode


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


class inference_mode:
    """Run without recording operations, as PyTorch's inference mode: a context manager or decorator
    (`@distml.inference_mode()` or bare `@distml.inference_mode`). distml has no separate inference
    tensors: inside, it is `no_grad` with `is_inference_mode_enabled()` true. As in PyTorch,
    `inference_mode(False)` turns recording on (even inside `no_grad`) and inference mode off."""

    def __new__(cls, mode=True):
        if callable(mode) and not isinstance(mode, bool):  # bare decorator: @inference_mode
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = bool(mode)

    def __enter__(self):
        self.previous = (_State.enabled, _State.inference)
        _State.enabled, _State.inference = not self.mode, self.mode

    def __exit__(self, *exc):
        _State.enabled, _State.inference = self.previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(self.mode):
                return fn(*args, **kwargs)
        return wrapper


def is_inference_mode_enabled():
    return _State.inference
