"""Module: the base of every layer. `__setattr__` routes Parameters, buffers and submodules
into their registries; everything else (state_dict, to, train, hooks, repr) walks them."""
from collections import OrderedDict, namedtuple

from distml import dtypes
from distml.autograd.grad_mode import no_grad
from distml.nn.parameter import Buffer, Parameter
from distml.tensor import Tensor, _to_arguments, preserve_format


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class RemovableHandle:
    """Returned by the register_*_hook methods: `handle.remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks):
        self.hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self):
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Module:
    """Base class of all layers. Subclasses assign Parameters, submodules and buffers in
    `__init__` and define `forward`:

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(x).relu()
    """

    training = True

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()

    def forward(self, *input):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ---- registration ----
    def register_parameter(self, name, param):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name(self, name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(distml.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not a parameter (BatchNorm's running_mean); it is in
        state_dict unless `persistent=False`, and moves with `to()`."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name(self, name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(distml Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f'module name can\'t contain ".", got: {name}' if name else 'module name can\'t be empty string ""')
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        d = self.__dict__
        params, buffers, modules = d.get("_parameters"), d.get("_buffers"), d.get("_modules")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            _remove_from(self, name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(distml.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            _remove_from(self, name)
            modules[name] = value
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(distml.nn.Module or None expected)")
            modules[name] = value
        elif isinstance(value, Buffer):  # nn.Buffer(t) registers a buffer, persistent as it says
            self.register_buffer(name, value, value.persistent)
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(distml.nn.Buffer, distml Tensor or None expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __setstate__(self, state):
        """Restore a pickled module, one that PyTorch pickled too (torch.save of a whole model, loaded
        through distml.load): PyTorch's registries that distml has no use for are dropped."""
        if "_non_persistent_buffers_set" in state:
            state = {k: v for k, v in state.items() if k not in _TORCH_ONLY_STATE}
            state["_non_persistent_buffers"] = state.pop("_non_persistent_buffers_set")
        self.__dict__.update(state)

    def __getattr__(self, name):
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # ---- traversal ----
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        memo = set() if memo is None else memo
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, prefix, recurse, remove_duplicate):
        seen = set()
        owners = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for owner_prefix, owner in owners:
            for name, value in getattr(owner, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield owner_prefix + ("." if owner_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def get_submodule(self, target):
        module = self
        for item in target.split(".") if target else []:
            if item not in module._modules:
                raise AttributeError(f"{module._get_name()} has no attribute `{item}`")
            module = module._modules[item]
        return module

    # ---- state ----
    _version = 1  # the layout of this class's state_dict; a subclass that changes it counts up (BatchNorm: 2)

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Parameters and persistent buffers by dotted name: `{"fc.weight": ..., "bn.running_mean": ...}`.
        Its `_metadata` holds each submodule's `_version`, for `_load_from_state_dict`, as PyTorch's."""
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = {"version": self._version}
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = buffer if keep_vars else buffer.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copy parameters and buffers from `state_dict` (Tensors or numpy arrays) into this
        module in place. With strict=True, missing or unexpected keys raise; shape mismatches
        always raise. Returns (missing_keys, unexpected_keys).

        Each submodule reads its own entries in `_load_from_state_dict`, which a layer may
        override to accept older layouts (BatchNorm fills in a missing num_batches_tracked)."""
        missing, unexpected, errors = [], [], []
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)

        def load(module, local, prefix):
            local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
            module._load_from_state_dict(local, prefix, local_metadata, True, missing, unexpected, errors)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    load(child, {k: v for k, v in local.items() if k.startswith(child_prefix)}, child_prefix)

        load(self, state_dict, "")
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(self._get_name(), "\n\t".join(errors)))
        return _IncompatibleKeys(missing, unexpected)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Copy this module's own parameters and persistent buffers from `state_dict` (keys
        `prefix + name`); record missing keys, keys under `prefix` that name nothing here or in a
        child (with strict), and size mismatches. `local_metadata` is this module's entry of the
        state dict's `_metadata` ({"version": ...}; empty when it has none). PyTorch's signature."""
        local = [(n, p) for n, p in self._parameters.items() if p is not None]
        local += [(n, b) for n, b in self._buffers.items() if b is not None and n not in self._non_persistent_buffers]
        for name, target in local:
            key = prefix + name
            if key in state_dict:
                _copy_into(target, state_dict[key], key, error_msgs)
            elif strict:
                missing_keys.append(key)
        if strict:
            names = {name for name, _ in local}
            for key in state_dict:
                if key.startswith(prefix):
                    head, *rest = key[len(prefix):].split(".", 1)
                    if head not in (self._modules if rest else names):
                        unexpected_keys.append(key)

    # ---- modes, devices, dtypes ----
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad = param.grad.detach()
                param.grad.array[...] = 0

    def apply(self, fn):
        """Call `fn` on every submodule (children first) and then self: `model.apply(init_weights)`."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def _apply(self, fn):
        """Replace every parameter's, gradient's and buffer's data by `fn(tensor)`, keeping
        the Parameter objects (optimizers hold them)."""
        with no_grad():
            for module in self.modules():
                for param in module._parameters.values():
                    if param is not None:
                        array = fn(param.detach()).array
                        if param.requires_grad and not (dtypes.is_float(array.dtype) or array.dtype.kind == "c"):
                            raise RuntimeError("data set to a tensor that requires gradients must be floating point "
                                               "or complex dtype")
                        param.array = array
                        if param.grad is not None:
                            param.grad = Tensor(fn(param.grad).array)
                for name, buffer in module._buffers.items():
                    if buffer is not None:
                        module._buffers[name] = fn(buffer)
        return self

    def to(self, *args, **kwargs):
        """Move and/or cast parameters and buffers in place, with Tensor.to's arguments:
        `model.to("cuda")`, `model.to(distml.float64)`, `model.to(memory_format=distml.channels_last)`.
        Only floating-point tensors change dtype; the memory format applies to 4-d and 5-d ones."""
        device, dtype, non_blocking, copy, memory_format = _to_arguments(args, kwargs)
        if copy:
            raise RuntimeError(".to() does not accept copy argument")
        if dtype is not None and not (dtype.is_floating_point or dtype.is_complex):
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired "
                            f"dtype={dtype}")

        def convert(t):
            fmt = memory_format if t.dim() in (4, 5) else preserve_format
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None, non_blocking=non_blocking,
                        memory_format=fmt)
        return self._apply(convert)

    def share_memory(self):
        """Move every parameter, gradient and buffer into shared memory in place, for processes
        that train this one model (Hogwild): `model.share_memory()`. Returns self."""
        from distml.multiprocessing.reductions import share_tensors
        params = list(self.parameters())
        share_tensors(params + [p.grad for p in params if p.grad is not None] + list(self.buffers()))
        return self

    def cuda(self, device=None):
        from distml.device import device as Device
        return self.to(Device("cuda", device) if isinstance(device, int) else (device or "cuda"))

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def half(self):
        return self.to(dtypes.float16)

    def bfloat16(self):
        return self.to(dtypes.bfloat16)

    def type(self, dst_type):
        """Cast every parameter and buffer, integer ones too (as PyTorch's): `model.type(distml.float64)`."""
        return self._apply(lambda t: t.type(dst_type))

    # ---- hooks ----
    def register_forward_pre_hook(self, hook):
        """`hook(module, args)` runs before forward; a non-None result replaces args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """`hook(module, args, output)` runs after forward; a non-None result replaces output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ---- printing ----
    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        """The text inside the parentheses of this module's repr (its constructor arguments)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = ["(" + name + "): " + _addindent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        text = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"


_TORCH_ONLY_STATE = {"_backward_hooks", "_backward_pre_hooks", "_is_full_backward_hook", "_forward_hooks_with_kwargs",
                     "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
                     "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks"}


def _check_name(module, name, kind):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain "."')
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    registry = module._parameters if kind == "parameter" else module._buffers
    if hasattr(module, name) and name not in registry:
        raise KeyError(f"attribute '{name}' already exists")


def _remove_from(module, name):
    d = module.__dict__
    d.pop(name, None)
    for registry in ("_parameters", "_buffers", "_modules"):
        d[registry].pop(name, None)
    d["_non_persistent_buffers"].discard(name)


def _copy_into(target, value, key, errors):
    """Copy a state_dict entry into a parameter or buffer in place; record a shape mismatch."""
    import numpy as np
    from distml._backend import get_array_module
    array = value.array if isinstance(value, Tensor) else np.asarray(value)
    if array.shape != target.array.shape:
        errors.append(f"size mismatch for {key}: copying a param with shape {_size(array.shape)} from checkpoint, "
                      f"the shape in current model is {target.shape}.")
        return
    xp = get_array_module(target.array)
    if xp is not np and isinstance(array, np.ndarray):
        array = xp.asarray(array)
    elif xp is np and not isinstance(array, np.ndarray):
        array = array.get()
    target.array[...] = array.astype(target.array.dtype, copy=False)
    target._version[0] += 1


def _size(shape):
    from distml.tensor import Size
    return Size(shape)


def _addindent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])
