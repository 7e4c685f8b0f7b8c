"""save / load with PyTorch 2.6+ semantics: any picklable object saved atomically; by default
loaded without running code (`weights_only=True`).

    distml.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.pt")
    state = distml.load("ckpt.pt", map_location="cpu")
    distml.save(model, "model.pt")                           # a whole Module
    model = distml.load("model.pt", weights_only=False)      # runs the file's pickle: trusted files only

distml's format is a zip archive (entries stored uncompressed). `distml/header.json` holds a
format marker, the version and one record (dtype, shape, device, ...) per tensor, whose raw bytes
are `distml/tensors/<n>`. Tensors, numpy arrays, numbers, strings, None, Size, dtypes and exact
dicts, OrderedDicts, lists and tuples of them are written as version 1: the object's structure is
JSON in the header, and reading it never runs code. Anything else is written as version 2: the
object is pickled into `distml/data.pkl` with each tensor, numpy array and numpy scalar replaced by
its index (a persistent id), so no tensor bytes are in the pickle. Tensors that share memory (views)
are stored and loaded as separate copies.

`load(f, weights_only=True)` unpickles with an allow-list (tensors, Parameters, containers,
primitives, complex, bytes, dtypes, devices, Size, plus what `add_safe_globals` / `safe_globals`
name) and refuses anything else with a `pickle.UnpicklingError`: no file can make it run code
other than the allowed classes' own construction. `weights_only=False` is full pickle.

Interop: `load` also reads PyTorch checkpoints (`torch.save`'s zip files and its legacy format of
torch < 1.6: state_dicts, optimizer state, containers of tensors; with `weights_only=False` also
objects of non-torch classes that this program can import) and safetensors files (parsed by the
`safetensors` library, one tensor at a time). A whole model's classes, `torch.nn.modules.<path>`,
become distml's `distml.nn.modules.<path>` (with weights_only, those that `add_safe_globals` allowed);
other torch classes are refused. PyTorch cannot read distml's archives. Every size, stride and
storage offset in a PyTorch file is checked against its storage before a view is made, and any
failure to read a file is a `CheckpointError` (the original error as its `__cause__`).
"""
import _compat_pickle
import collections
import contextlib
import io
import json
import math
import os
import pickle
import re
import secrets
import struct
import sys
import types
import zipfile

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.device import device as Device
from distml.nn.module import Module
from distml.nn.parameter import Buffer, Parameter
from distml.tensor import Size, Tensor

FORMAT = "distml"
VERSION = 2
_HEADER = "distml/header.json"
_PICKLE = "distml/data.pkl"
_RAW_KINDS = "biufcmMSU"  # numpy dtype kinds stored as raw bytes (no objects, no structured types)


class CheckpointError(RuntimeError):
    """A file that is not a readable checkpoint: truncated, corrupt, or of an unknown or unsafe kind."""


class UnpicklingError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint's pickle that `load` refuses or cannot read; a `pickle.UnpicklingError`, as torch.load raises."""


# ---- save ----

def save(obj, f):
    """Write obj (anything picklable; tensors are stored as raw bytes) to f.

    `f` is a path or a writable binary file. A path is written atomically: to a temporary
    file in the same directory, flushed to disk, then renamed over the target, so an
    interrupted save leaves any previous file intact. The file's permissions follow the umask,
    as torch.save's do; temporaries that killed saves left in the directory are removed.
    """
    tensors = []
    try:
        header = {"format": FORMAT, "version": 1, "object": _encode(obj, tensors, {}, set())}
        pickled = None
    except _NotPlain:
        tensors = []
        pickled = _pickle(obj, tensors)
        header = {"format": FORMAT, "version": 2}
    if not isinstance(f, (str, os.PathLike)):
        _write_archive(f, header, tensors, pickled)
        return
    write_atomically(f, lambda out: _write_archive(out, header, tensors, pickled))


def write_atomically(path, write):
    """Call write(binary file) on a temporary file beside `path`, flush it to disk and rename it over
    `path`: an interrupted write leaves any previous file intact. The file's mode follows the umask;
    temporaries that killed writers left in the directory are removed. `save`, the ONNX exporter
    and `vision.utils.save_image` write through it."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise RuntimeError(f"Parent directory {os.path.dirname(path)} does not exist.")
    _remove_orphaned_temporaries(directory)
    fd, tmp = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


# `.<target>.distml-<pid>-<random>.tmp`: the pid tells a later save whether its writer is still running.
_TEMPORARY = re.compile(r"\..+\.distml-(\d+)-[0-9a-f]{16}\.tmp")


def _create_temporary(directory, base):
    """A new hidden file next to the target, created with mode 0o666 so that the umask (and a
    default ACL) decides its permissions, as for torch.save's `open(path, "wb")`."""
    while True:
        tmp = os.path.join(directory, f".{base}.distml-{os.getpid()}-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def _remove_orphaned_temporaries(directory):
    """Delete temporaries that a killed save left in `directory` (their writer's pid is gone)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for entry in names:
        match = _TEMPORARY.fullmatch(entry)
        if match and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):  # another save removed it first, or it is not ours to remove
                os.remove(os.path.join(directory, entry))


def _pid_alive(pid):
    """Whether process `pid` may still be writing; True whenever that cannot be told (on Windows
    os.kill(pid, 0) would end the process, so nothing is removed there)."""
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (EPERM), or a pid out of range
        return True
    return True


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _NotPlain(Exception):
    """obj holds something the version-1 JSON structure cannot represent exactly: it is pickled."""


def _encode(obj, tensors, seen, containers):
    """JSON-able structure for obj; tensors are appended to `tensors` (once per object) and referenced."""
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str):
        return obj
    if kind is Tensor or kind is np.ndarray and _is_raw(obj.dtype):
        if id(obj) not in seen:
            seen[id(obj)] = len(tensors)
            tensors.append(obj)
        return {"$tensor" if kind is Tensor else "$ndarray": seen[id(obj)]}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if kind is Size:
        return {"$size": list(obj)}
    if kind is dtypes.dtype:
        return {"$dtype": obj.name}
    if kind in (dict, collections.OrderedDict, list):
        if id(obj) in containers or kind is collections.OrderedDict and vars(obj):
            raise _NotPlain  # shared, cyclic or with attributes: pickling keeps that
        containers.add(id(obj))
    if kind in (dict, collections.OrderedDict):
        items = [[_encode(k, tensors, seen, containers), _encode(v, tensors, seen, containers)]
                 for k, v in obj.items()]
        return {"$odict" if kind is collections.OrderedDict else "$dict": items}
    if kind is tuple:
        return {"$tuple": [_encode(x, tensors, seen, containers) for x in obj]}
    if kind is list:
        return [_encode(x, tensors, seen, containers) for x in obj]
    raise _NotPlain


def _is_raw(np_dtype):
    return np_dtype.kind in _RAW_KINDS and np_dtype.fields is None and np_dtype.itemsize > 0


class _Pickler(pickle.Pickler):
    """Pickles with each tensor, numpy array and numpy scalar replaced by its index in `tensors`."""

    def __init__(self, file, tensors):
        super().__init__(file, protocol=4)
        self.tensors, self.index = tensors, {}

    def persistent_id(self, obj):
        if isinstance(obj, Tensor):
            if type(obj) not in (Tensor, Parameter, Buffer):  # a Buffer is stored (and loads) as a Tensor
                raise TypeError(f"distml.save cannot store a {type(obj).__name__}: only Tensor, Parameter and Buffer "
                                f"among Tensor subclasses (save x.detach() instead)")
        elif not (isinstance(obj, (np.ndarray, np.generic)) and _is_raw(obj.dtype)):
            return None
        if id(obj) not in self.index:
            self.index[id(obj)] = len(self.tensors)
            self.tensors.append(obj)
        return self.index[id(obj)]

    def reducer_override(self, obj):
        if type(obj) is Size:  # as a call, which weights_only loading checks, not a bare tuple.__new__
            return Size, (tuple(obj),)
        return NotImplemented


def _pickle(obj, tensors):
    out = io.BytesIO()
    _Pickler(out, tensors).dump(obj)
    return out.getvalue()


def _write_archive(out, header, tensors, pickled):
    entries = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for i, t in enumerate(tensors):
            array = t.array if isinstance(t, Tensor) else np.asarray(t)
            # by name for numpy's extension types (ml_dtypes' bfloat16), whose .str is an anonymous '<V2'
            entry = {"dtype": array.dtype.name if array.dtype.kind == "V" else array.dtype.str,
                     "shape": list(array.shape)}
            if isinstance(t, Tensor):
                entry.update(device=str(t.device), requires_grad=t.requires_grad)
            if isinstance(t, Parameter):
                entry["parameter"] = True
            if isinstance(t, np.generic):
                entry["scalar"] = True
            if get_array_module(array) is not np:
                array = array.get()
            with archive.open(f"distml/tensors/{i}", "w", force_zip64=array.nbytes > 2 ** 31) as blob:
                blob.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
            entries.append(entry)
        if pickled is not None:
            archive.writestr(_PICKLE, pickled)
        archive.writestr(_HEADER, json.dumps(dict(header, tensors=entries)))


# ---- the weights_only allow-list ----

_safe_globals = []  # what add_safe_globals added, in order


def add_safe_globals(safe_globals):
    """Let `load(..., weights_only=True)` rebuild these classes or call these functions:
    `distml.serialization.add_safe_globals([MyConfig])`. An entry `(obj, "module.name")` allows
    obj under the name the file uses (a class that moved, or your stand-in for another library's)."""
    safe_globals = list(safe_globals)
    for entry in safe_globals:
        _global_name(entry)
    for entry in safe_globals:
        if entry not in _safe_globals:
            _safe_globals.append(entry)


def get_safe_globals():
    """The classes and functions `add_safe_globals` allowed, in the order they were added."""
    return list(_safe_globals)


def clear_safe_globals():
    """Forget everything `add_safe_globals` allowed."""
    _safe_globals.clear()


@contextlib.contextmanager
def safe_globals(safe_globals):
    """Allow these globals for weights_only loads inside a `with` block only:
    `with distml.serialization.safe_globals([MyConfig]): cfg = distml.load("cfg.pt")`."""
    safe_globals = list(safe_globals)
    added = [entry for entry in safe_globals if entry not in _safe_globals]
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        for entry in added:
            if entry in _safe_globals:
                _safe_globals.remove(entry)


def _global_name(entry):
    if isinstance(entry, tuple):
        if len(entry) != 2:
            raise ValueError(f"Expected tuple of length 2 (global, str of callable full path), but got tuple of "
                             f"length: {len(entry)}")
        if type(entry[1]) is not str:
            raise TypeError(f"Expected second item in tuple to be str of callable full path, but got: "
                            f"{type(entry[1])}")
        return entry[1]
    if not (hasattr(entry, "__module__") and hasattr(entry, "__qualname__")):
        raise TypeError(f"safe globals are classes, functions or (global, 'module.name') tuples; "
                        f"got a {type(entry).__name__}")
    return f"{entry.__module__}.{entry.__qualname__}"


def _user_globals():
    return {_global_name(e): (e[0] if isinstance(e, tuple) else e) for e in _safe_globals}


# What weights_only loading calls for the names a pickle of allowed objects uses: each checks its
# arguments, so that a crafted file cannot make them iterate tensors or build anything else.
# (set, frozenset and Counter hash their items: they are the unpickler's methods, which check keys.)

def _ordered_dict():
    return collections.OrderedDict()


def _complex(real=0.0, imag=0.0):
    if type(real) not in (int, float) or type(imag) not in (int, float):
        raise TypeError("complex from non-numbers")
    return complex(real, imag)


def _bytes(text, encoding):
    """Protocol 2 pickles bytes as `_codecs.encode(text, "latin1")`."""
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise TypeError("bytes from anything but latin-1 text")
    return text.encode("latin-1")


def _bytearray(data=b"", encoding=None):
    return bytearray(data if encoding is None and type(data) is bytes else _bytes(data, encoding))


def _size(dims):
    if type(dims) not in (tuple, list) or any(type(d) is not int for d in dims):
        raise TypeError("Size from anything but ints")
    return Size(dims)


def _device(kind, index=None):
    if type(kind) is not str or index is not None and type(index) is not int:
        raise TypeError("device from anything but a string and an index")
    return Device(kind, index)


def _dtype(name):
    if type(name) is not str:
        raise TypeError("dtype from anything but its name")
    return dtypes._dtype_from_name(name)


_SAFE_GLOBALS = {
    "collections.OrderedDict": _ordered_dict, "builtins.complex": _complex, "builtins.bytearray": _bytearray,
    "_codecs.encode": _bytes, "distml.tensor.Size": _size, "distml.device.device": _device,
    "distml.dtypes._dtype_from_name": _dtype,
}
_BLOCKED_MODULES = {"sys", "os", "posix", "nt", "subprocess", "shutil"}  # never allowed, even if allowlisted
_MAX_KEY_DEPTH = 100  # tuples nested deeper as a dict key or set item: hashing them could overflow the C stack
_SIZED = (list, tuple, dict, set, frozenset, str, bytes, bytearray)


def _refusal(detail):
    return UnpicklingError(f"Weights only load failed. {detail} Re-running `distml.load` with `weights_only` set "
                           f"to `False` will likely succeed, but it can result in arbitrary code execution. Do it "
                           f"only if you got the file from a trusted source.")


def _unsupported_global(full):
    shown = full[len("builtins."):] if full.startswith("builtins.") else full
    return UnpicklingError(
        "Weights only load failed. This file can still be loaded, to do so you have two options, do those steps "
        "only if you trust the source of the checkpoint.\n"
        "\t(1) Re-running `distml.load` with `weights_only` set to `False` will likely succeed, but it can result "
        "in arbitrary code execution. Do it only if you got the file from a trusted source.\n"
        "\t(2) Alternatively, to load with `weights_only=True` please check the recommended steps in the "
        "following error message.\n"
        f"\tWeightsUnpickler error: Unsupported global: GLOBAL {shown} was not an allowed global by default. "
        f"Please use `distml.serialization.add_safe_globals([{shown}])` or the "
        f"`distml.serialization.safe_globals([{shown}])` context manager to allowlist this global if you trust "
        f"this class/function.")


def _describe(obj):
    """A short name for obj in an error message (never its repr, which a crafted file can make huge)."""
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return f"{getattr(obj, '__module__', '?')}.{obj.__qualname__}"
    return f"a {type(obj).__qualname__} object"


class _WeightsOnlyUnpickler(pickle._Unpickler):
    """pickle's reference unpickler with every step that finds, calls, builds or fills an object
    checked against the allow-list. `find_class` alone is not enough: REDUCE would call any callable
    on the stack (an allowed class's instance), BUILD would set attributes of any object (the
    distml.float32 singleton) and APPEND/SETITEM would call methods of any object (a Tensor's
    __setitem__). Here allowing a class means: it may be called, `__new__`-ed, built (its
    `__setstate__` or `__dict__`) and filled (list/dict/set items); nothing else may be.

    Work is budgeted too, in proportion to the pickle's size: calls and builds pay for the
    containers they are given and hashing pays for the tuples it visits, so that memoized objects
    reused again and again, or tuple keys sharing parts, cannot make a small file load forever.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, size, source):
        super().__init__(file)
        self.source, self.work_left = source, 8 * size + 2 ** 16
        user = _user_globals()
        hashing = {"builtins.set": self.make_set, "builtins.frozenset": self.make_frozenset,
                   "collections.Counter": self.make_counter}
        self.globals = {**user, **_SAFE_GLOBALS, **hashing, **source.globals}
        self.callables = {id(g) for g in self.globals.values()}
        self.classes = {id(g) for g in user.values() if isinstance(g, type)}
        self.buildable = self.classes | {id(collections.OrderedDict), id(collections.Counter)}
        self.mappings = self.classes | {id(dict), id(collections.OrderedDict), id(collections.Counter)}
        self.lists = self.classes | {id(list)}
        self.sets = self.classes | {id(set)}

    def spend(self, units):
        self.work_left -= units
        if self.work_left < 0:
            raise UnpicklingError(f"{self.source.name} is corrupt or crafted: its pickle asks for far more work than "
                                  f"its size accounts for (calls repeated on large memoized objects, or tuple keys "
                                  f"that share parts)")

    def check_keys(self, keys):
        """Pay for hashing `keys` (tuples do not cache their hash) and refuse deeply nested ones."""
        todo = [(key, 0) for key in keys]
        while todo:
            item, depth = todo.pop()
            if isinstance(item, tuple):
                if depth > _MAX_KEY_DEPTH:
                    raise UnpicklingError(f"{self.source.name}: a dict key or set item is a tuple nested deeper than "
                                          f"{_MAX_KEY_DEPTH}")
                self.spend(len(item))
                todo.extend((x, depth + 1) for x in item)
        return keys

    def make_set(self, items=()):
        if type(items) not in (list, tuple):
            raise TypeError(f"a set from a {type(items).__name__}")
        return set(self.check_keys(items))

    def make_frozenset(self, items=()):
        if type(items) not in (list, tuple):
            raise TypeError(f"a frozenset from a {type(items).__name__}")
        return frozenset(self.check_keys(items))

    def make_counter(self, counts=None):
        if counts is not None and type(counts) is not dict:
            raise TypeError(f"a Counter from a {type(counts).__name__}")
        self.check_keys(list(counts or ()))
        return collections.Counter(counts or {})

    def find_class(self, module, name):
        if self.proto < 3 and (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif self.proto < 3:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if module.partition(".")[0] in _BLOCKED_MODULES:
            raise _refusal(f"Trying to load unsupported GLOBAL {full} whose module {module} is blocked.")
        if full in self.globals:
            return self.globals[full]
        counterpart = _distml_counterpart(module, name) if self.source.foreign else None
        if counterpart is not None and id(counterpart) in self.callables:  # allowlisted by the user
            return counterpart
        raise _unsupported_global(full)

    def persistent_load(self, pid):
        return self.source.persistent_load(pid)

    def _expect(self, target, allowed, opcode, what):
        if id(type(target)) not in allowed:
            raise _refusal(f"Can only {opcode} {what} or types allowlisted via `add_safe_globals`, but got "
                           f"{type(target).__qualname__}.")

    def _pay_for(self, args):
        self.spend(1 + sum(len(a) for a in args if type(a) in _SIZED))

    def load_reduce(self):
        func, args = self.stack[-2:]
        if id(func) not in self.callables:
            raise _refusal(f"Trying to call reduce for unrecognized function {_describe(func)}.")
        if type(args) is not tuple:
            raise TypeError("REDUCE arguments are not a tuple")
        self._pay_for(args)
        pickle._Unpickler.load_reduce(self)

    def load_newobj(self):
        cls, args = self.stack[-2:]
        if id(cls) not in self.classes:
            raise _refusal(f"Can only create new object for classes allowlisted via `add_safe_globals` but got "
                           f"{_describe(cls)}.")
        if type(args) is not tuple:
            raise TypeError("NEWOBJ arguments are not a tuple")
        self._pay_for(args)
        pickle._Unpickler.load_newobj(self)

    def load_newobj_ex(self):
        cls, args, kwargs = self.stack[-3:]
        if id(cls) not in self.classes:
            raise _refusal(f"Can only create new object for classes allowlisted via `add_safe_globals` but got "
                           f"{_describe(cls)}.")
        if type(args) is not tuple or type(kwargs) is not dict:
            raise TypeError("NEWOBJ_EX arguments are not a tuple and a dict")
        self._pay_for((*args, kwargs))
        pickle._Unpickler.load_newobj_ex(self)

    def load_build(self):
        inst, state = self.stack[-2:]
        self._expect(inst, self.buildable, "build", "OrderedDict, Counter")
        self._pay_for(state if type(state) is tuple else (state,))
        pickle._Unpickler.load_build(self)

    def load_append(self):
        self._expect(self.stack[-2], self.lists, "append to", "lists")
        pickle._Unpickler.load_append(self)

    def load_appends(self):
        self._expect(self.metastack[-1][-1], self.lists, "extend", "lists")
        pickle._Unpickler.load_appends(self)

    def load_setitem(self):
        self._expect(self.stack[-3], self.mappings, "set items of", "dict, OrderedDict, Counter")
        self.check_keys(self.stack[-2:-1])
        pickle._Unpickler.load_setitem(self)

    def load_setitems(self):
        self._expect(self.metastack[-1][-1], self.mappings, "set items of", "dict, OrderedDict, Counter")
        self.check_keys(self.stack[::2])
        pickle._Unpickler.load_setitems(self)

    def load_dict(self):
        self.check_keys(self.stack[::2])
        pickle._Unpickler.load_dict(self)

    def load_additems(self):
        self._expect(self.metastack[-1][-1], self.sets, "add items to", "sets")
        self.check_keys(self.stack)
        pickle._Unpickler.load_additems(self)

    def load_frozenset(self):
        self.check_keys(self.stack)
        pickle._Unpickler.load_frozenset(self)

    def refuse_opcode(self):
        raise _refusal("Unsupported pickle opcode (protocol 0/1 instances, extension codes, text persistent ids "
                       "and out-of-band buffers are not read).")


_WeightsOnlyUnpickler.dispatch.update({code[0]: method for code, method in (
    (pickle.REDUCE, _WeightsOnlyUnpickler.load_reduce), (pickle.NEWOBJ, _WeightsOnlyUnpickler.load_newobj),
    (pickle.NEWOBJ_EX, _WeightsOnlyUnpickler.load_newobj_ex), (pickle.BUILD, _WeightsOnlyUnpickler.load_build),
    (pickle.APPEND, _WeightsOnlyUnpickler.load_append), (pickle.APPENDS, _WeightsOnlyUnpickler.load_appends),
    (pickle.SETITEM, _WeightsOnlyUnpickler.load_setitem), (pickle.SETITEMS, _WeightsOnlyUnpickler.load_setitems),
    (pickle.DICT, _WeightsOnlyUnpickler.load_dict), (pickle.ADDITEMS, _WeightsOnlyUnpickler.load_additems),
    (pickle.FROZENSET, _WeightsOnlyUnpickler.load_frozenset))})
_WeightsOnlyUnpickler.dispatch.update({code[0]: _WeightsOnlyUnpickler.refuse_opcode for code in (
    pickle.INST, pickle.OBJ, pickle.EXT1, pickle.EXT2, pickle.EXT4, pickle.PERSID, pickle.NEXT_BUFFER,
    pickle.READONLY_BUFFER)})


class _FullUnpickler(pickle.Unpickler):
    """weights_only=False: ordinary pickle, with the archive's persistent ids and, for PyTorch
    files, torch's rebuild functions mapped to distml's (other torch classes are refused)."""

    def __init__(self, file, source):
        super().__init__(file)
        self.source = source

    def persistent_load(self, pid):
        return self.source.persistent_load(pid)

    def find_class(self, module, name):
        full = f"{module}.{name}"
        if full in self.source.globals:
            return self.source.globals[full]
        if self.source.foreign and module.partition(".")[0] == "torch":
            counterpart = _distml_counterpart(module, name)
            if counterpart is not None:
                return counterpart
            raise CheckpointError(f"{self.source.name}: distml cannot rebuild {full} from a PyTorch checkpoint "
                                  f"(distml never imports torch); save its state_dict() with torch.save and load "
                                  f"that into the matching distml object")
        return super().find_class(module, name)


def _distml_counterpart(module, name):
    """What a whole PyTorch model's pickle names stand for in distml: the Module class at the same
    path (`torch.nn.modules.activation.ReLU` -> `distml.nn.modules.activation.ReLU`) or the
    nn.functional function (a TransformerEncoderLayer's activation); None for anything else.
    Looked up among the imported modules only: a file triggers no import."""
    if module.startswith("torch.nn.modules."):
        counterpart = getattr(sys.modules.get("distml" + module[len("torch"):]), name, None)
        return counterpart if isinstance(counterpart, type) and issubclass(counterpart, Module) else None
    if module == "torch.nn.functional" and not name.startswith("_"):
        counterpart = getattr(sys.modules["distml.nn.functional"], name, None)
        return counterpart if isinstance(counterpart, types.FunctionType) else None
    return None


def _unpickle(data, source, weights_only, entry):
    """The object `data` (the pickle in `entry`) holds; any failure is an UnpicklingError, with
    weights_only=False too (then it may also come from the file's classes), the original as its cause."""
    try:
        if not weights_only:
            return _FullUnpickler(io.BytesIO(data), source).load()
        return _WeightsOnlyUnpickler(io.BytesIO(data), len(data), source).load()
    except CheckpointError:
        raise
    except Exception as error:
        raise UnpicklingError(f"{source.name} is corrupt: cannot unpickle {entry} ({type(error).__name__}: "
                              f"{str(error)[:200]})") from error


# ---- load ----

def load(f, map_location=None, weights_only=True):
    """Read what `save` wrote, a PyTorch zip checkpoint, or a safetensors file.

    `map_location`: where tensors go: a device or string like "cpu", a dict from saved to wanted
    location, or a function `(tensor, location) -> tensor or None` (None: the default); by default
    each goes back where it was saved. `weights_only=True` (the default; None means it too) reads
    only tensors, containers, primitives, dtypes, devices, Size and what `add_safe_globals`
    allows, and never runs code from the file; `weights_only=False` unpickles anything, running
    whatever the file says: use it only for files you trust.
    """
    weights_only = True if weights_only is None else weights_only
    name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "<file>")
    with _open_source(f) as source:
        head = source.read(9)
        if head[:4] == b"PK\x03\x04":
            source.seek(0)
            return _load_zip(source, name, map_location, weights_only)
        length = source.seek(0, os.SEEK_END)
        if _looks_like_safetensors(head, length):
            source.seek(0)
            path = os.fspath(f) if isinstance(f, (str, os.PathLike)) else None
            return _load_safetensors(path or source, name, map_location)
        if head[:1] == b"\x80":
            source.seek(0)
            return _load_torch_legacy(source, length, name, map_location, weights_only)
    raise CheckpointError(f"{name} is not a distml, PyTorch or safetensors checkpoint (truncated or corrupt?)")


@contextlib.contextmanager
def _open_source(f):
    """A seekable binary file for f, from its start: zip archives are read from it entry by entry
    (each tensor once, straight into its array), not as one bytes object."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as source:
            yield source
    elif getattr(f, "seekable", lambda: False)() and f.tell() == 0:
        yield f
    else:
        yield io.BytesIO(f.read())


def _location(location, name):
    """A saved device string, checked: a corrupt one is the file's fault, not a device error."""
    try:
        Device(location)
    except (RuntimeError, TypeError) as error:
        raise CheckpointError(f"{name} is corrupt: bad device {str(location)[:50]!r}") from error
    return location


def _place(tensor, location, map_location):
    """Move a freshly read (CPU) tensor, in place, to where `map_location` sends `location`."""
    if callable(map_location):
        moved = map_location(tensor, location)
        if moved is not None:
            if not isinstance(moved, Tensor):
                raise TypeError(f"map_location function must return a Tensor or None, not {type(moved).__name__}")
            tensor.array = moved.array
            return tensor
        map_location = None
    if map_location is None:
        device = Device(location)
    elif isinstance(map_location, dict):
        device = Device(map_location.get(location, location))
    else:
        device = Device(map_location)
    if device.type != "cpu":
        from distml._backend import cupy
        if cupy is None:
            raise RuntimeError("Attempting to deserialize object on a CUDA device but CUDA is not available. "
                               "If you are running on a CPU-only machine, please use distml.load with "
                               "map_location='cpu' to map your tensors to the CPU.")
        tensor.array = tensor.to(device).array
    return tensor


def _open_zip(source, name):
    try:
        return zipfile.ZipFile(source)
    except Exception as error:  # zipfile raises many kinds on damaged directories
        raise CheckpointError(f"{name} is truncated or corrupt: {error}") from error


def _entry_info(archive, entry, name):
    try:
        info = archive.getinfo(entry)
    except KeyError as error:
        raise CheckpointError(f"{name} is corrupt: the entry {entry!r} is missing") from error
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(f"{name}: the entry {entry!r} uses zip compression method {info.compress_type}; "
                              f"distml reads stored or deflated entries")
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > 1100 * info.compress_size + 1024:
        # deflate expands at most 1032 times
        raise CheckpointError(f"{name} is corrupt: {entry!r} declares {info.file_size} bytes of "
                              f"{info.compress_size} compressed bytes")
    return info


def _read_entry(archive, entry, name):
    info = _entry_info(archive, entry, name)
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            return archive.read(info)
        chunks = []
        with archive.open(info) as blob:  # in chunks: memory stays within the declared size
            while chunk := blob.read(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks)
    except Exception as error:  # bad CRC, cut-off data, bad method, encrypted, ...
        raise CheckpointError(f"{name} is truncated or corrupt: {error} (in {entry!r})") from error


def _read_entry_into(archive, entry, name, nbytes, what):
    """A new uint8 array of the `nbytes` bytes of `entry` (holding `what`), read straight into it in
    chunks: loading holds each tensor's bytes once. The entry's CRC-32 is checked at its end."""
    info = _entry_info(archive, entry, name)
    if info.file_size != nbytes:
        raise CheckpointError(f"{name} is corrupt: {entry} has {info.file_size} bytes, expected {nbytes} for {what}")
    array = np.empty(nbytes, dtype=np.uint8)
    try:
        with archive.open(info) as blob:
            done = 0
            while chunk := blob.read(min(1 << 18, nbytes - done) or 1):  # reading on past the end checks the CRC
                array[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                done += len(chunk)
        if done != nbytes:
            raise zipfile.BadZipFile(f"{done} of the declared {nbytes} bytes")
    except Exception as error:  # bad CRC, cut-off data, bad method, encrypted, ...
        raise CheckpointError(f"{name} is truncated or corrupt: {error} (in {entry!r})") from error
    return array


def _load_zip(source, name, map_location, weights_only):
    archive = _open_zip(source, name)
    names = archive.namelist()
    if _HEADER in names:
        return _load_distml(archive, name, map_location, weights_only)
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if pickles:
        return _load_torch(archive, pickles[0][:-len("data.pkl")], name, map_location, weights_only)
    raise CheckpointError(f"{name} is a zip archive but neither a distml nor a PyTorch checkpoint")


def _load_distml(archive, name, map_location, weights_only):
    try:
        header = json.loads(_read_entry(archive, _HEADER, name))
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{name} is corrupt: unreadable header ({type(error).__name__})") from error
    if type(header) is not dict or header.get("format") != FORMAT:
        marker = header.get("format") if type(header) is dict else None
        raise CheckpointError(f"{name} is corrupt: format marker {str(marker)[:50]!r}, expected {FORMAT!r}")
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise CheckpointError(f"{name} is corrupt: format version {str(version)[:50]!r}")
    if version > VERSION:
        raise CheckpointError(f"{name} was written by a newer distml (format version {version}; "
                              f"this one reads up to {VERSION})")
    entries = header.get("tensors")
    if type(entries) is not list:
        raise CheckpointError(f"{name} is corrupt: no tensor list in its header")
    tensors = []
    for i, entry in enumerate(entries):
        obj, location = _read_tensor(entry, archive, i, name)
        tensors.append(obj if location is None else _place(obj, location, map_location))
    if "object" not in header:
        return _unpickle(_read_entry(archive, _PICKLE, name), _DistmlArchive(tensors, name), weights_only, _PICKLE)
    try:
        return _decode(header["object"], tensors)
    except (KeyError, IndexError, TypeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{name} is corrupt: bad object structure ({type(error).__name__})") from error


def _read_tensor(entry, archive, i, name):
    """The Tensor (on the CPU) or numpy array/scalar that header record `entry` describes, and
    the device a Tensor was saved on (None for numpy)."""
    bad = f"{name} is corrupt: tensor {i} has a bad record"
    if type(entry) is not dict or type(entry.get("dtype")) is not str or type(entry.get("shape")) is not list:
        raise CheckpointError(bad)
    shape = tuple(entry["shape"])
    try:
        np_dtype = np.dtype(entry["dtype"])
    except Exception as error:  # numpy parses dtype strings with several kinds of error
        raise CheckpointError(f"{bad} (dtype {entry['dtype'][:20]!r})") from error
    known = _is_raw(np_dtype) or np_dtype in dtypes._BY_NUMPY
    if not known or len(shape) > 64 or any(type(n) is not int or n < 0 for n in shape):
        raise CheckpointError(f"{bad} (dtype {np_dtype}, shape {str(list(shape))[:50]})")
    expected = np_dtype.itemsize * math.prod(shape)
    raw = _read_entry_into(archive, f"distml/tensors/{i}", name, expected, f"{np_dtype} {list(shape)}")
    try:
        array = raw.view(np_dtype).reshape(shape)
    except ValueError as error:
        raise CheckpointError(f"{bad} ({error})") from error
    if "device" not in entry:
        return (array[()] if entry.get("scalar") is True else array), None
    location, requires_grad = entry["device"], entry.get("requires_grad")
    if type(location) is not str or type(requires_grad) is not bool or array.dtype not in dtypes._BY_NUMPY:
        raise CheckpointError(f"{bad} (device, requires_grad or a dtype distml lacks)")
    _location(location, name)
    if entry.get("parameter") is True:
        try:
            return Parameter(array, requires_grad), location
        except RuntimeError as error:  # requires_grad on a dtype that cannot have gradients
            raise CheckpointError(f"{bad} ({error})") from error
    tensor = Tensor(array)
    tensor.requires_grad = requires_grad
    return tensor, location


def _decode(node, tensors):
    if isinstance(node, list):
        return [_decode(x, tensors) for x in node]
    if not isinstance(node, dict):
        return node
    (tag, value), = node.items()
    if tag in ("$tensor", "$ndarray"):
        if type(value) is not int or value < 0:
            raise ValueError(f"tensor index {value!r}")
        return tensors[value]
    if tag == "$tuple":
        return tuple(_decode(x, tensors) for x in value)
    if tag == "$dict":
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value}
    if tag == "$odict":
        return collections.OrderedDict((_decode(k, tensors), _decode(v, tensors)) for k, v in value)
    if tag == "$size":
        return Size(value)
    if tag == "$dtype":
        return dtypes._dtype_from_name(value)
    raise ValueError(f"unknown tag {tag}")


class _DistmlArchive:
    """What a distml version-2 pickle's persistent ids refer to: the archive's tensors, by index."""

    foreign = False
    globals = {}

    def __init__(self, tensors, name):
        self.tensors, self.name = tensors, name

    def persistent_load(self, pid):
        if type(pid) is not int or not 0 <= pid < len(self.tensors):
            raise UnpicklingError(f"{self.name} is corrupt: persistent id {str(pid)[:50]} is not a tensor index "
                                  f"below {len(self.tensors)}")
        return self.tensors[pid]


# ---- PyTorch checkpoints ----

_TORCH_STORAGES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    """What a torch storage class name (`torch.FloatStorage`) unpickles to: its element type."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype


class _Storage:
    __slots__ = ("array", "location", "taken")

    def __init__(self, array, location):
        self.array, self.location, self.taken = array, location, False


def _bfloat16_from_bytes(raw, byteorder="<"):
    """A bfloat16 array (distml.bfloat16, from ml_dtypes) from little- or big-endian bytes."""
    return np.frombuffer(raw, dtype=np.dtype("u2").newbyteorder(byteorder)).astype("<u2").view(dtypes.bfloat16.np)


def _torch_globals(source):
    """The torch names a torch.save pickle may use, mapped to `source`'s rebuild functions and distml's types."""
    return {
        "torch._utils._rebuild_tensor_v2": source.rebuild_tensor,
        "torch._utils._rebuild_parameter": source.rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": source.rebuild_parameter,
        "torch.Size": _size, "torch.device": _device,
        **{f"torch.{storage}": _StorageType(dtype) for storage, dtype in _TORCH_STORAGES.items()},
        **{f"torch.{d.name}": d for d in dtypes.ALL},
    }


class _TorchArchive:
    """What a torch.save pickle refers to: storages (raw entries, read once each) and torch's
    rebuild functions, which make distml Tensors (copies, on the CPU); `place` moves them afterwards.
    With weights_only, the tensors may hold a few times the elements the storages hold (views
    overlap), not more: a crafted pickle could otherwise copy one storage again and again."""

    foreign = True

    def __init__(self, archive, prefix, name, weights_only):
        self.archive, self.prefix, self.name, self.capped = archive, prefix, name, weights_only
        self.storages = {}
        self.tensors = {}  # id -> (tensor, saved location) of every tensor rebuilt so far
        self.stored = self.rebuilt = 0  # elements in the storages read, in the tensors built
        byteorder = prefix + "byteorder"
        self.byteorder = _read_entry(archive, byteorder, name) if byteorder in archive.namelist() else b"little"
        if self.byteorder not in (b"little", b"big"):
            raise CheckpointError(f"{name} is corrupt: byte order {self.byteorder[:20]!r}")
        self.globals = _torch_globals(self)

    def persistent_load(self, pid):
        if type(pid) is not tuple or len(pid) != 5 or pid[0] != "storage":
            raise UnpicklingError(f"{self.name}: only storages may be persistent ids, got {_describe(pid)}")
        _, kind, key, location, numel = pid
        if type(kind) is not _StorageType or type(key) is not str or type(numel) is not int or \
                type(location) is not str:
            raise UnpicklingError(f"{self.name} is corrupt: bad storage id")
        _location(location, self.name)
        if key not in self.storages:
            np_dtype = dtypes.bfloat16.np if kind.dtype == "bfloat16" else np.dtype(kind.dtype)
            nbytes = numel * np_dtype.itemsize
            raw = _read_entry_into(self.archive, f"{self.prefix}data/{key}", self.name, nbytes,
                                   f"a storage of {numel} {np_dtype} elements")
            if self.byteorder == b"big" and np_dtype.itemsize > 1:
                raw.view(f"u{np_dtype.itemsize}").byteswap(inplace=True)
            array = raw.view(np_dtype)
            self.storages[key] = _Storage(array, location)
            self.stored += array.size
        return self.storages[key]

    def rebuild_tensor(self, storage, offset, size, stride, requires_grad, backward_hooks, metadata=None):
        if type(storage) is not _Storage or type(requires_grad) is not bool:
            raise UnpicklingError(f"{self.name} is corrupt: _rebuild_tensor_v2 without a storage or requires_grad")
        array = storage.array
        _check_view(array.nbytes, array.itemsize, offset, size, stride, self.name)
        numel = math.prod(size)
        self.rebuilt += numel
        if self.capped and self.rebuilt > 4 * self.stored + 2 ** 20:
            raise CheckpointError(f"{self.name}: its tensors would hold {self.rebuilt} elements, far more than the "
                                  f"{self.stored} its storages hold (distml copies each tensor)")
        if numel == 0:
            values = np.empty(size, dtype=array.dtype)
        elif not storage.taken and offset == 0 and numel == array.size and _row_major(size, stride):
            values = array.reshape(size)  # the whole storage: the first such tensor takes it, later ones copy
            storage.taken = True
        else:
            values = self.copy_view(storage, offset, size, stride)
        tensor = Tensor(values)
        tensor.requires_grad = requires_grad
        self.tensors[id(tensor)] = (tensor, storage.location)
        return tensor

    @staticmethod
    def copy_view(storage, offset, size, stride):
        """A new array of the elements of a view (checked by _check_view) of the storage."""
        return _strided(storage.array, offset, size, stride).copy()

    def rebuild_parameter(self, data, requires_grad, backward_hooks, state=None):
        if type(data) is not Tensor or id(data) not in self.tensors or type(requires_grad) is not bool:
            raise TypeError("_rebuild_parameter without a tensor")
        _, location = self.tensors.pop(id(data))
        param = Parameter(data, requires_grad)
        self.tensors[id(param)] = (param, location)
        return param

    def place(self, map_location):
        for tensor, location in self.tensors.values():
            _place(tensor, location, map_location)


def _strided(array, offset, size, stride):
    return np.lib.stride_tricks.as_strided(array[offset:], shape=size, strides=[
        s * array.itemsize if n > 1 else 0 for n, s in zip(size, stride)])  # any stride for a size-1 dim


def _check_view(nbytes, itemsize, offset, size, stride, name):
    """Refuse a tensor view (element offset, sizes, strides) of a storage of `nbytes` bytes that
    reaches outside it, before any view is made: numpy's as_strided would read whatever memory is there."""
    def fail(what):
        raise UnpicklingError(f"{name} is corrupt: a tensor {what} (storage offset {str(offset)[:30]}, "
                              f"size {str(size)[:100]}, stride {str(stride)[:100]})")

    if itemsize <= 0 or nbytes % itemsize:
        fail(f"of {itemsize}-byte elements in a storage of {nbytes} bytes")
    if type(size) is not tuple or type(stride) is not tuple or type(offset) is not int:
        fail("whose size and stride are not tuples, or whose storage offset is not an int")
    if len(size) != len(stride) or len(size) > 64:
        fail(f"with {len(size)} sizes and {len(stride)} strides (at most 64 dims)")
    if any(type(n) is not int for n in (*size, *stride)):
        fail("with a size or stride that is not an int")
    if any(abs(n) >= 2 ** 63 for n in (offset, *size, *stride)):  # torch refuses them too
        fail("with a size, stride or storage offset beyond 64 bits")
    if offset < 0 or any(n < 0 for n in size):
        fail("with a negative size or storage offset")
    if any(s < 0 for s in stride):
        fail("with a negative stride")
    if math.prod(size) == 0:
        return  # an empty tensor reads nothing
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))  # Python ints: no overflow
    if last >= nbytes // itemsize:
        fail(f"reaching element {last} of a storage of {nbytes // itemsize} elements")


def _row_major(size, stride):
    """Whether strides are those of a C-contiguous tensor of this size (any stride for a size-1 dim)."""
    expected = 1
    for n, s in zip(reversed(size), reversed(stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _load_torch(archive, prefix, name, map_location, weights_only):
    source = _TorchArchive(archive, prefix, name, weights_only)
    obj = _unpickle(_read_entry(archive, prefix + "data.pkl", name), source, weights_only, prefix + "data.pkl")
    source.storages.clear()  # source.globals' bound methods make a cycle: free the storages now, not at gc
    source.place(map_location)
    return obj


# ---- legacy PyTorch files (torch < 1.6, or _use_new_zipfile_serialization=False) ----

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _PlainUnpickler(pickle.Unpickler):
    """Numbers, strings, lists and dicts only: the legacy file's magic number, version, system info and keys."""

    def find_class(self, module, name):
        raise UnpicklingError(f"expected a plain value, found the global {module}.{name}")

    def persistent_load(self, pid):
        raise UnpicklingError("expected a plain value, found a persistent id")


class _LegacyTorchFile(_TorchArchive):
    """A legacy file's storages follow its pickle, so each is allocated (after checking that the file
    has room for it) when the pickle names it, and filled once the pickle is read; views that copy part
    of a storage are filled then too."""

    def __init__(self, name, weights_only, room):
        self.name, self.capped, self.room = name, weights_only, room
        self.storages, self.tensors, self.pending = {}, {}, []
        self.stored = self.rebuilt = 0
        self.globals = _torch_globals(self)

    def persistent_load(self, pid):
        if type(pid) is not tuple or len(pid) != 6 or pid[0] != "storage":
            raise UnpicklingError(f"{self.name}: only storages may be persistent ids, got {_describe(pid)}")
        _, kind, key, location, numel, view = pid
        if type(kind) is not _StorageType or type(key) is not str or type(numel) is not int or \
                type(location) is not str or numel < 0:
            raise UnpicklingError(f"{self.name} is corrupt: bad storage id")
        if view is not None:
            raise UnpicklingError(f"{self.name}: storage views (torch < 0.4) are not supported")
        _location(location, self.name)
        if key not in self.storages:
            np_dtype = dtypes.bfloat16.np if kind.dtype == "bfloat16" else np.dtype(kind.dtype)
            self.room -= 8 + numel * np_dtype.itemsize
            if self.room < 0:
                raise UnpicklingError(f"{self.name} is truncated or corrupt: its storages need more bytes than "
                                      f"the file has")
            self.storages[key] = _Storage(np.empty(numel, np_dtype), location)
            self.stored += numel
        return self.storages[key]

    def copy_view(self, storage, offset, size, stride):
        values = np.empty(size, storage.array.dtype)
        self.pending.append((values, storage, offset, size, stride))
        return values

    def fill(self, stream, keys):
        """Read the storages, in the order of `keys`, from the stream: each an int64 element count and
        its bytes, straight into its array; then the views' copies."""
        if type(keys) is not list or any(type(k) is not str for k in keys) or set(keys) != set(self.storages) \
                or len(keys) != len(self.storages):
            raise CheckpointError(f"{self.name} is corrupt: its storage list does not match its pickle")
        for key in keys:
            array = self.storages[key].array
            numel = int.from_bytes(stream.read(8), "little", signed=True)
            if numel != array.size or stream.readinto(memoryview(array.view(np.uint8))) != array.nbytes:
                raise CheckpointError(f"{self.name} is truncated or corrupt: storage {key[:30]!r} holds "
                                      f"{numel} elements, its pickle says {array.size}")
        for values, storage, view_offset, size, stride in self.pending:
            values[...] = _strided(storage.array, view_offset, size, stride)
        self.pending.clear()


def _load_torch_legacy(stream, length, name, map_location, weights_only):
    """torch's format before 1.6 from a seekable binary stream of `length` bytes: pickles of a magic
    number, the protocol version and system info, the object (its storages as persistent ids), the
    storage keys, then each storage's bytes."""

    def plain(what):
        try:
            return _PlainUnpickler(stream).load()
        except Exception as error:
            raise CheckpointError(f"{name} is corrupt: unreadable {what} ({type(error).__name__})") from error

    if plain("magic number") != _LEGACY_MAGIC or plain("protocol version") != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{name} is not a PyTorch checkpoint: wrong magic number or protocol version")
    info = plain("system info")
    if type(info) is not dict or info.get("little_endian") is not True:
        raise CheckpointError(f"{name}: a big-endian (or unlabelled) legacy PyTorch checkpoint, which distml "
                              f"does not read; re-save it with a recent torch.save")
    source = _LegacyTorchFile(name, weights_only, length - stream.tell())
    try:
        if weights_only:
            obj = _WeightsOnlyUnpickler(stream, length, source).load()
        else:
            obj = _FullUnpickler(stream, source).load()
    except CheckpointError:
        raise
    except Exception as error:
        raise UnpicklingError(f"{name} is corrupt: cannot unpickle its object ({type(error).__name__}: "
                              f"{str(error)[:200]})") from error
    source.fill(stream, plain("storage keys"))
    source.storages.clear()
    source.place(map_location)
    return obj


# ---- safetensors ----

_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": "bfloat16"}


def _looks_like_safetensors(head, length):
    """Whether a file of `length` bytes starting with `head` (its first 9) has a safetensors header."""
    if len(head) < 9 or length < 10:
        return False
    size, = struct.unpack("<Q", head[:8])
    return size <= length - 8 and head[8:9] == b"{"


def _load_safetensors(source, name, map_location):
    """The tensors of a safetensors file, parsed and checked by the `safetensors` library, one at a time:
    from a path memory-mapped (each tensor copied out once, so loading holds the tensor bytes about once),
    from a file object out of its bytes. Any failure is a CheckpointError with the library's error as cause."""
    import safetensors

    def check(key, dtype):
        if dtype not in _SAFETENSORS_DTYPES:
            raise CheckpointError(f"{name}: tensor {key!r} has dtype {dtype[:20]}, which distml cannot load")

    out = collections.OrderedDict()
    try:
        if isinstance(source, str):
            with safetensors.safe_open(source, framework="numpy") as st:
                for key in st.keys():
                    check(key, st.get_slice(key).get_dtype())
                    out[key] = _place(Tensor(st.get_tensor(key)), "cpu", map_location)
            return out
        for key, record in sorted(safetensors.deserialize(source.read()), key=lambda item: item[0]):  # as keys()
            check(key, record["dtype"])
            kind = _SAFETENSORS_DTYPES[record["dtype"]]
            raw = record.pop("data")  # a bytearray: the array is a writable view of it, no copy
            array = _bfloat16_from_bytes(raw) if kind == "bfloat16" else np.frombuffer(raw, dtype=np.dtype(kind))
            out[key] = _place(Tensor(array.reshape(record["shape"])), "cpu", map_location)
        return out
    except CheckpointError:
        raise
    except Exception as error:  # the library's SafetensorError, and whatever a damaged header makes it raise
        raise CheckpointError(f"{name} is truncated or corrupt: unreadable safetensors file "
                              f"({type(error).__name__}: {str(error)[:200]})") from error
