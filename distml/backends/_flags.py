"""Backend switches that, like PyTorch's, take only bools and read back what was set."""
import sys
import types


class BoolFlag:
    """A class attribute holding a bool per instance (or per module), default `default`."""

    def __init__(self, default):
        self.default = default

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return vars(obj).get("_flag_" + self.name, self.default)

    def __set__(self, obj, value):
        if not isinstance(value, bool):
            raise RuntimeError(f"{obj.__name__}.{self.name} expects a bool, but got {type(value).__name__}")
        vars(obj)["_flag_" + self.name] = value


def install(module_name, **flags):
    """Give module `module_name` the BoolFlag attributes `flags` (name=default): `cudnn.benchmark = True`."""
    module = sys.modules[module_name]
    namespace = {name: BoolFlag(default) for name, default in flags.items()}
    module.__class__ = type("FlagModule", (types.ModuleType,), {"__module__": module_name, **namespace})
