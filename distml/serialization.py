"""save / load: tensors in nested containers, written atomically, read without running code.

    distml.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.pt")
    state = distml.load("ckpt.pt", map_location="cpu")

distml's own format is a zip archive (entries stored uncompressed): `distml/header.json`
holds a format marker, the version and the object's structure with each tensor replaced
by a reference to its raw bytes in `distml/tensors/<n>`. `load` also reads PyTorch's zip
checkpoints (`torch.save`) and safetensors files, rebuilding tensors only: nothing in any
file can name a function to call.
"""
import collections
import io
import json
import os
import pickle
import struct
import tempfile
import zipfile

import numpy as np

from distml import dtypes
from distml._backend import get_array_module
from distml.device import device as Device
from distml.tensor import Size, Tensor

FORMAT = "distml"
VERSION = 1
_HEADER = "distml/header.json"


class CheckpointError(RuntimeError):
    """A file that is not a readable checkpoint: truncated, corrupt, or of an unknown or unsafe kind."""


# ---- save ----

def save(obj, f):
    """Write obj (tensors, numpy arrays, numbers, strings, None and dicts/lists/tuples of them) to f.

    `f` is a path or a writable binary file. A path is written atomically: to a temporary
    file in the same directory, flushed to disk, then renamed over the target, so an
    interrupted save leaves any previous file intact.
    """
    tensors = []
    structure = _encode(obj, tensors, {})
    if not isinstance(f, (str, os.PathLike)):
        _write_archive(f, structure, tensors)
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            _write_archive(out, structure, tensors)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


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


def _encode(obj, tensors, seen):
    """JSON-able structure for obj; tensors are appended to `tensors` (once per object) and referenced."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (Tensor, np.ndarray)):
        if id(obj) not in seen:
            seen[id(obj)] = len(tensors)
            tensors.append(obj)
        return {"$tensor" if isinstance(obj, Tensor) else "$ndarray": seen[id(obj)]}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, Size):
        return {"$size": list(obj)}
    if isinstance(obj, dtypes.dtype):
        return {"$dtype": obj.name}
    if isinstance(obj, dict):
        items = [[_encode(k, tensors, seen), _encode(v, tensors, seen)] for k, v in obj.items()]
        return {"$odict" if isinstance(obj, collections.OrderedDict) else "$dict": items}
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(x, tensors, seen) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x, tensors, seen) for x in obj]
    hint = " (save its state_dict() instead)" if hasattr(obj, "state_dict") else ""
    raise TypeError(f"distml.save can store tensors, numpy arrays, numbers, strings, None and dicts, lists "
                    f"and tuples of them; got an object of type {type(obj).__name__}{hint}")


def _write_archive(out, structure, tensors):
    entries = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for i, t in enumerate(tensors):
            array = t.array if isinstance(t, Tensor) else t
            entry = {"dtype": array.dtype.str, "shape": list(array.shape)}
            if isinstance(t, Tensor):
                entry.update(device=str(t.device), requires_grad=t.requires_grad)
            if get_array_module(array) is not np:
                array = array.get()
            with archive.open(f"distml/tensors/{i}", "w", force_zip64=array.nbytes > 2 ** 31) as blob:
                blob.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
            entries.append(entry)
        header = {"format": FORMAT, "version": VERSION, "tensors": entries, "object": structure}
        archive.writestr(_HEADER, json.dumps(header))


# ---- load ----

def load(f, map_location=None, weights_only=True):
    """Read what `save` wrote, a PyTorch zip checkpoint, or a safetensors file.

    `map_location`: where tensors go (a device or string like "cpu", or a dict from saved to
    wanted location); by default each goes back where it was saved. `weights_only` is accepted
    for PyTorch compatibility: distml only ever reads data, whatever its value.
    """
    name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "<file>")
    data = _read_bytes(f)
    if data[:4] == b"PK\x03\x04":
        return _load_zip(data, name, map_location)
    if _looks_like_safetensors(data):
        return _load_safetensors(data, name, map_location)
    if data[:1] == b"\x80":
        raise CheckpointError(f"{name} is a legacy (non-zip) PyTorch checkpoint, which distml cannot read safely; "
                              f"re-save it with a recent torch.save")
    raise CheckpointError(f"{name} is not a distml, PyTorch or safetensors checkpoint (truncated or corrupt?)")


def _read_bytes(f):
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as source:
            return source.read()
    return f.read()


def _target(location, map_location):
    """The device a tensor saved at `location` loads to."""
    if map_location is None:
        return Device(location)
    if isinstance(map_location, dict):
        return Device(map_location.get(location, location))
    return Device(map_location)


def _place(array, location, map_location, requires_grad=False):
    tensor = Tensor(array)
    device = _target(location, map_location)
    if device.type != "cpu":
        from distml._backend import cupy
        if cupy is None:
            raise RuntimeError("Attempting to deserialize object on a CUDA device but CUDA is not available. "
                               "If you are running on a CPU-only machine, please use distml.load with "
                               "map_location='cpu' to map your tensors to the CPU.")
        tensor = tensor.to(device)
    tensor.requires_grad = requires_grad
    return tensor


def _open_zip(data, name):
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise CheckpointError(f"{name} is truncated or corrupt: {error}") from None


def _read_entry(archive, entry, name):
    try:
        return archive.read(entry)
    except KeyError:
        raise CheckpointError(f"{name} is corrupt: the entry {entry!r} is missing") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:  # bad CRC, cut-off data, bad method
        raise CheckpointError(f"{name} is truncated or corrupt: {error} (in {entry!r})") from None


def _load_zip(data, name, map_location):
    archive = _open_zip(data, name)
    names = archive.namelist()
    if _HEADER in names:
        return _load_distml(archive, name, map_location)
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if pickles:
        return _load_torch(archive, pickles[0][:-len("data.pkl")], name, map_location)
    raise CheckpointError(f"{name} is a zip archive but neither a distml nor a PyTorch checkpoint")


def _load_distml(archive, name, map_location):
    try:
        header = json.loads(_read_entry(archive, _HEADER, name))
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{name} is corrupt: unreadable header ({error})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{name} is corrupt: format marker {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("version", 0) > VERSION:
        raise CheckpointError(f"{name} was written by a newer distml (format version {header['version']}; "
                              f"this one reads up to {VERSION})")
    tensors = []
    for i, entry in enumerate(header["tensors"]):
        raw = _read_entry(archive, f"distml/tensors/{i}", name)
        dtype, shape = np.dtype(entry["dtype"]), tuple(entry["shape"])
        if len(raw) != dtype.itemsize * int(np.prod(shape)):
            raise CheckpointError(f"{name} is corrupt: tensor {i} has {len(raw)} bytes, expected "
                                  f"{dtype.itemsize * int(np.prod(shape))} for {dtype} {list(shape)}")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if "device" in entry:
            tensors.append(_place(array, entry["device"], map_location, entry["requires_grad"]))
        else:
            tensors.append(array)
    try:
        return _decode(header["object"], tensors)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise CheckpointError(f"{name} is corrupt: bad object structure ({error!r})") from None


def _decode(node, tensors):
    if isinstance(node, list):
        return [_decode(x, tensors) for x in node]
    if not isinstance(node, dict):
        return node
    (tag, value), = node.items()
    if tag in ("$tensor", "$ndarray"):
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


# ---- PyTorch checkpoints ----

_TORCH_STORAGES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


def _bfloat16_to_float32(raw):
    """numpy has no bfloat16: widen (exactly) to float32, whose top 16 bits a bfloat16 is."""
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)


class _TorchTensor:
    """A tensor read from a PyTorch checkpoint, before it is placed on a device."""

    def __init__(self, array, location, requires_grad):
        self.array, self.location, self.requires_grad = array, location, requires_grad


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks, metadata=None):
    array, location = storage
    itemsize = array.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(array[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return _TorchTensor(view.copy(), location, requires_grad)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    data.requires_grad = requires_grad
    return data


_TORCH_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): Size,
}


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a PyTorch data.pkl allowing only the globals that rebuild tensors and containers."""

    def __init__(self, file, archive, prefix, name):
        super().__init__(file)
        self.archive, self.prefix, self.name = archive, prefix, name
        self.storages = {}
        byteorder = prefix + "byteorder"
        self.byteorder = archive.read(byteorder).decode() if byteorder in archive.namelist() else "little"

    def find_class(self, module, name):
        if (module, name) in _TORCH_GLOBALS:
            return _TORCH_GLOBALS[(module, name)]
        if module == "torch" and name in _TORCH_STORAGES:
            return _TORCH_STORAGES[name]
        raise CheckpointError(f"{self.name}: refusing to load {module}.{name}: distml reads only tensors, "
                              f"numbers, strings and containers from PyTorch checkpoints")

    def persistent_load(self, pid):
        kind, storage_type, key, location, numel = pid
        if kind != "storage":
            raise CheckpointError(f"{self.name}: unsupported persistent id {kind!r}")
        if key not in self.storages:
            raw = _read_entry(self.archive, f"{self.prefix}data/{key}", self.name)
            if storage_type == "bfloat16":
                array = _bfloat16_to_float32(raw)
            else:
                dtype = np.dtype(storage_type).newbyteorder("<" if self.byteorder == "little" else ">")
                array = np.frombuffer(raw, dtype=dtype).astype(np.dtype(storage_type))
            if array.size != numel:
                raise CheckpointError(f"{self.name} is corrupt: storage {key} has {array.size} elements, "
                                      f"expected {numel}")
            self.storages[key] = (array, location)
        return self.storages[key]


def _load_torch(archive, prefix, name, map_location):
    pickled = _read_entry(archive, prefix + "data.pkl", name)
    try:
        obj = _TorchUnpickler(io.BytesIO(pickled), archive, prefix, name).load()
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(f"{name} is corrupt: cannot read its data.pkl ({error!r})") from None
    return _place_torch(obj, map_location)


def _place_torch(obj, map_location):
    if isinstance(obj, _TorchTensor):
        return _place(obj.array, obj.location, map_location, obj.requires_grad)
    if isinstance(obj, dict):
        return type(obj)((k, _place_torch(v, map_location)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not isinstance(obj, Size):
        return type(obj)(_place_torch(x, map_location) for x in obj)
    return obj


# ---- safetensors ----

_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": "bfloat16"}


def _looks_like_safetensors(data):
    if len(data) < 10:
        return False
    size, = struct.unpack("<Q", data[:8])
    return size <= len(data) - 8 and data[8:9] == b"{"


def _load_safetensors(data, name, map_location):
    """safetensors: an 8-byte little-endian header size, a JSON header, then the raw bytes."""
    size, = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8:8 + size])
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{name} is corrupt: unreadable safetensors header ({error})") from None
    body = memoryview(data)[8 + size:]
    out = collections.OrderedDict()
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        kind = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if kind is None:
            raise CheckpointError(f"{name}: tensor {key!r} has dtype {entry['dtype']}, which distml cannot load")
        itemsize = 2 if kind == "bfloat16" else np.dtype(kind).itemsize
        shape = tuple(entry["shape"])
        if not 0 <= begin <= end <= len(body) or end - begin != itemsize * int(np.prod(shape)):
            raise CheckpointError(f"{name} is truncated or corrupt: tensor {key!r} spans bytes [{begin}, {end}) "
                                  f"of a {len(body)}-byte body, expected {itemsize * int(np.prod(shape))} bytes")
        raw = body[begin:end]
        if kind == "bfloat16":
            array = _bfloat16_to_float32(raw)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(kind).newbyteorder("<")).astype(kind)
        out[key] = _place(array.reshape(shape), "cpu", map_location)
    return out
