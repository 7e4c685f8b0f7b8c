"""Parameter and Buffer: Tensors that a Module registers as a learnable weight or as state."""
from distml.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad and that a Module's `__setattr__` registers:
    `self.weight = nn.Parameter(distml.zeros(3, 4))`. Shares memory with `data`."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            from distml.creation import empty
            data = empty(0)
        array = data.array if isinstance(data, Tensor) else data
        super().__init__(array)
        if isinstance(data, Tensor):
            self._version = data._version
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self.detach().cpu().numpy(), self.requires_grad))


def _rebuild_parameter(array, requires_grad):
    return Parameter(array, requires_grad)


class Buffer(Tensor):
    """A tensor that assigning to a Module attribute registers as a buffer (PyTorch 2.x):
    `self.running_mean = nn.Buffer(distml.zeros(3))`; `persistent=False` keeps it out of
    state_dict. Shares memory with `data`, detached, keeping its requires_grad."""

    __slots__ = ("persistent",)

    def __init__(self, data=None, *, persistent=True):
        if data is None:
            from distml.creation import empty
            data = empty(0)
        super().__init__(data.array)
        self._version = data._version
        self.requires_grad = data.requires_grad
        self.persistent = persistent
