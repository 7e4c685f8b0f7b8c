"""Checkpoints that a job on any number of ranks can resume from (torch.distributed.checkpoint's names).

    from distml.distributed import checkpoint as dcp
    state = {"model": net, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler,
             "loader": train_loader, "rng": dcp.RNGState(), "step": step}
    if dcp.exists("ckpt"):
        dcp.load(state, checkpoint_id="ckpt")    # objects load in place; plain values are replaced in `state`
    ...
    state["step"] = step
    dcp.save(state, checkpoint_id="ckpt")        # every rank calls it, at the same step

Values with `state_dict()`/`load_state_dict()` (modules, optimizers, LR schedulers, GradScaler,
StatefulDataLoader, DistributedSampler) are saved through them; other values (ints, dicts) as they
are. Everything but `RNGState` is the same on every rank in data-parallel training (replicated);
each rank writes its own RNG state. A checkpoint written on N ranks loads on M: the data position is
global (see DistributedSampler), ranks below N get their RNG state back and ranks from N on keep theirs.

Every rank writes one data file, `shard-<rank>.safetensors`, holding
- its share of the replicated tensors (model parameters and buffers, a plain optimizer's state):
  each tensor is written by one rank, chosen by a balanced assignment by bytes that every rank
  computes alike (`_assign`), so the ranks write the model in parallel, once;
- its own elements of sharded state (ZeroRedundancyOptimizer, or any value with
  `sharded_state_dict()` and `load_sharded_state_dict()`), never gathered: one flat tensor per
  parameter, state name and element range.
Rank 0 writes `index.distml`: the rest of the state, which file holds which tensor (and which
element range of a sharded one), and the CRC-32 of every 1 MiB block of every tensor.

On load every rank reads every replicated tensor from whichever file holds it, straight into the
tensor at the same place of the value's current `state_dict()` where shape and dtype agree (a
model's parameters: no second copy of the model), and of sharded state only the element ranges its
new shard needs (`load_sharded_state_dict`; a value without it, a plain optimizer, gets the whole
state assembled). Every block read is checked against its checksum, so a range also reads the rest
of the blocks at its ends. A missing, truncated or corrupt data file raises CheckpointError naming
the file (and the tensor); the values may then be partly loaded.

Layout: `<checkpoint_id>/<version>/` holds `index.distml`, `shard-<rank>.safetensors` and
`rng-<rank>.distml`; `<checkpoint_id>/latest` names the newest complete version. Each file is
written atomically (temporary file, fsync, rename) and `latest` is replaced last, once every rank's
files are on disk, so a job killed while saving resumes from the previous checkpoint. Checkpoints
of the earlier layout (`shared.distml`, in which rank 0 wrote the replicated tensors; no checksums)
still load, unchecked.
"""
import contextlib
import heapq
import json
import os
import random
import shutil
import struct
import zlib
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

import distml
import distml.distributed as dist
from distml.dtypes import bfloat16
from distml.serialization import CheckpointError, write_atomically
from distml.tensor import Tensor
from distml.utils.data import DistributedSampler, StatefulDataLoader

_LATEST = "latest"
_INDEX = "index.distml"
_OLD_INDEX = "shared.distml"  # the layout before checksums: rank 0 wrote the replicated tensors into it
_FORMAT = 2
_BLOCK = 1 << 20  # bytes per checksum
# safetensors' dtype codes; bfloat16 is stored as its bits (U16), as NumPy's safetensors reader has no bfloat16.
_CODES = {np.dtype(t): code for t, code in [(np.float64, "F64"), (np.float32, "F32"), (np.float16, "F16"),
                                             (np.int64, "I64"), (np.int32, "I32"), (np.int16, "I16"),
                                             (np.int8, "I8"), (np.uint8, "U8"), (np.bool_, "BOOL")]}


class RNGState:
    """The calling rank's random streams as one stateful value: distml's global generator, NumPy's
    global RandomState and Python's `random`. Saved per rank by `save`."""

    per_rank = True

    def state_dict(self):
        numpy_state = np.random.get_state(legacy=False)
        numpy_state["state"] = {"key": numpy_state["state"]["key"].tolist(), "pos": numpy_state["state"]["pos"]}
        return {"distml": distml.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}

    def load_state_dict(self, state_dict):
        distml.set_rng_state(state_dict["distml"])
        numpy_state = dict(state_dict["numpy"])
        numpy_state["state"] = {"key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
                                "pos": numpy_state["state"]["pos"]}
        np.random.set_state(numpy_state)
        python_state = state_dict["python"]
        random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))


def _rank_and_world():
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather(value):
    if not dist.is_initialized():
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def _per_rank(value):
    return getattr(value, "per_rank", False)


def _check_data_position(positions):
    """Ranks must stop at the same place in the data, or the resumed epoch would skip or repeat samples."""
    for other, theirs in enumerate(positions):
        if theirs != positions[0]:
            raise RuntimeError(f"checkpoint.save: ranks are at different places in the data: rank 0 has "
                               f"{positions[0]}, rank {other} has {theirs}; call save at the same step on every rank")


def exists(checkpoint_id):
    """Whether `checkpoint_id` holds a complete checkpoint."""
    return os.path.isfile(os.path.join(checkpoint_id, _LATEST))


def _latest(checkpoint_id):
    with open(os.path.join(checkpoint_id, _LATEST)) as f:
        return os.path.join(checkpoint_id, f.read().strip())


def _new_version(checkpoint_id):
    """Rank 0 makes the empty folder of the next version: v0, v1, ..."""
    os.makedirs(checkpoint_id, exist_ok=True)
    number = int(os.path.basename(_latest(checkpoint_id)).lstrip("v")) + 1 if exists(checkpoint_id) else 0
    path = os.path.join(checkpoint_id, f"v{number}")
    shutil.rmtree(path, ignore_errors=True)  # left by a save that was killed
    os.makedirs(path)
    return f"v{number}"


def _file(rank):
    return f"shard-{rank}.safetensors"


def save(state_dict, checkpoint_id):
    """Write `state_dict` (name -> stateful object or plain value) as a new version of the
    checkpoint in directory `checkpoint_id`; every rank calls it at the same step."""
    rank, world_size = _rank_and_world()
    sharded = {key: value.sharded_state_dict() for key, value in state_dict.items()
               if hasattr(value, "sharded_state_dict")}
    replicated = {key: value.state_dict() if hasattr(value, "state_dict") else value
                  for key, value in state_dict.items() if not _per_rank(value) and key not in sharded}
    own = {key: value.state_dict() for key, value in state_dict.items() if _per_rank(value)}
    tensors = []  # (path, host array) of every replicated tensor, in the state's order
    structure = {key: _rebuild(value, lambda path, leaf: _take(path, leaf, tensors), (key,))
                 for key, value in replicated.items()}
    arrays, chunks, other = _shard_arrays(sharded)
    positions = {key: value.state_dict() for key, value in state_dict.items()
                 if isinstance(value, (StatefulDataLoader, DistributedSampler))}
    version = _new_version(checkpoint_id) if rank == 0 else None
    # Every rank assigns the replicated tensors alike only if they are alike: their names, shapes and dtypes.
    replicas = zlib.crc32(repr([(p, array.shape, array.dtype) for p, array in tensors]).encode())
    gathered = _all_gather((positions, replicas, sum(array.nbytes for array in arrays.values()), version))
    _check_data_position([position for position, _, _, _ in gathered])
    for peer, (_, theirs, _, _) in enumerate(gathered):
        if theirs != replicas:
            raise RuntimeError(f"checkpoint.save: the replicated values' tensors (names, shapes, dtypes) differ "
                               f"between rank {rank} and rank {peer}; save the same model on every rank")
    version = gathered[0][3]
    path = os.path.join(checkpoint_id, version)
    owners = _assign([array.nbytes for _, array in tensors], [nbytes for _, _, nbytes, _ in gathered])
    arrays.update((_name(*p), array) for (p, array), owner in zip(tensors, owners) if owner == rank)
    if own:
        distml.save(own, os.path.join(path, f"rng-{rank}.distml"))
    written = _write_safetensors(os.path.join(path, _file(rank)), arrays) if arrays else None
    layouts = _all_gather((written, chunks, other))  # every rank's files are on disk once this returns
    if rank == 0:
        index = {"format": _FORMAT, "world_size": world_size, "block": _BLOCK, "state": structure,
                 "tensors": {p: (_file(owner), _name(*p), array.shape, _dtype_name(array))
                             for (p, array), owner in zip(tensors, owners)},
                 "files": {_file(r): written for r, (written, _, _) in enumerate(layouts) if written is not None},
                 "sharded": _merge_chunks(layouts, {key: common for key, (common, _) in sharded.items()})}
        distml.save(index, os.path.join(path, _INDEX))
        write_atomically(os.path.join(checkpoint_id, _LATEST), lambda f: f.write(version.encode() + b"\n"))
        for name in os.listdir(checkpoint_id):
            if name != version and name.startswith("v") and name[1:].isdigit():
                shutil.rmtree(os.path.join(checkpoint_id, name), ignore_errors=True)
    if dist.is_initialized():
        dist.barrier()  # no rank goes on before `latest` names this version


def _rebuild(value, leaf, path=()):
    """`value` with each leaf (not a dict, OrderedDict, list or tuple) replaced by leaf(path, it), where
    path is the keys and indices leading to it; an OrderedDict keeps its attributes (state_dict's _metadata)."""
    kind = type(value)
    if kind in (dict, OrderedDict):
        out = kind((k, _rebuild(v, leaf, path + (k,))) for k, v in value.items())
        if kind is OrderedDict:
            vars(out).update(vars(value))
        return out
    if kind in (list, tuple):
        return kind(_rebuild(v, leaf, path + (i,)) for i, v in enumerate(value))
    return leaf(path, value)


def _take(path, leaf, tensors):
    """A replicated tensor goes to a data file (None stays in its place in the index); other leaves stay."""
    if isinstance(leaf, Tensor) and _storable(leaf.array.dtype):
        tensors.append((path, leaf.numpy(force=True)))
        return None
    return leaf


def _name(*path):
    """A tensor's key in its data file, readable in errors: "['model']['0.weight']"."""
    return "".join(f"[{p!r}]" for p in path)


def _assign(sizes, loads):
    """The rank that writes each replicated tensor: the largest tensor first, each to the rank with the
    fewest bytes so far (starting from `loads`, each rank's sharded bytes; ties to the lower rank), as
    in longest-processing-time scheduling. Every rank computes the same answer.

        _assign([40, 30, 20, 10], [0, 0]) == [0, 1, 1, 0]
    """
    ranks = [(load, rank) for rank, load in enumerate(loads)]
    heapq.heapify(ranks)
    owners = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):  # stable: equal sizes in the state's order
        load, owners[i] = heapq.heappop(ranks)
        heapq.heappush(ranks, (load + sizes[i], owners[i]))
    return owners


def _storable(np_dtype):
    return np_dtype == bfloat16.np or np_dtype in _CODES


def _dtype_name(array):
    return str(array.dtype)


def _np_dtype(name):
    return bfloat16.np if name == "bfloat16" else np.dtype(name)


def _bytes(array):
    """The bytes of a C-contiguous array, as a (writable where the array is) memoryview that shares its memory."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _shard_arrays(sharded):
    """This rank's elements of every sharded value: ({file key: flat array}, chunks, other), where the
    chunks [(key, index, name, shape, dtype, lo, hi, file key)] and other [(key, index, {name: value})]
    go to the index."""
    arrays, chunks, other = {}, [], []
    for key, (_, spans) in sharded.items():
        for index, lo, hi, shape, flat, rest in spans:
            for name, array in flat.items():
                if array.size != hi - lo:
                    raise ValueError(f"checkpoint.save: {key}'s state {name!r} of parameter {index} has "
                                     f"{array.size} elements for the range {lo}..{hi}")
                if not _storable(array.dtype):
                    raise TypeError(f"checkpoint.save: cannot store a sharded tensor of dtype {array.dtype}")
                file_key = _name(key, "state", index, name) + f"[{lo}:{hi}]"
                arrays[file_key] = array
                chunks.append((key, index, name, tuple(shape), _dtype_name(array), lo, hi, file_key))
            if rest:
                other.append((key, index, rest))
    return arrays, chunks, other


def _write_safetensors(path, arrays):
    """Write `arrays` (name -> array) as a safetensors file, streaming each array's bytes (no copy of
    the whole file in memory); return (the file's size, {name: CRC-32 of each _BLOCK bytes})."""
    arrays = {key: np.ascontiguousarray(array) for key, array in arrays.items()}
    header, offset, crcs = {}, 0, {}
    for key, array in arrays.items():
        code = "U16" if array.dtype == bfloat16.np else _CODES[array.dtype]
        header[key] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-aligned, as the safetensors library writes it

    def write(f):
        f.write(struct.pack("<Q", len(text)) + text)
        for key, array in arrays.items():
            data = _bytes(array)
            crcs[key] = [zlib.crc32(data[i:i + _BLOCK]) for i in range(0, len(data), _BLOCK)]
            f.write(data)

    write_atomically(path, write)
    return 8 + len(text) + offset, crcs


def _merge_chunks(layouts, commons):
    """Every rank's chunks and other state as the index's record of the sharded values:
    {key: {"common", "tensors": {index: {name: (shape, dtype, [(file, file key, lo, hi)])}},
    "other": {index: {name: value}}}}."""
    merged = {key: {"common": common, "tensors": {}, "other": {}} for key, common in commons.items()}
    for rank, (_, chunks, other) in enumerate(layouts):
        for key, index, name, shape, dtype, lo, hi, file_key in chunks:
            entry = merged[key]["tensors"].setdefault(index, {}).setdefault(name, (shape, dtype, []))
            entry[2].append((_file(rank), file_key, lo, hi))
        for key, index, rest in other:
            merged[key]["other"].setdefault(index, rest)  # the same on every rank holding part of the parameter
    return merged


def _read_index(path):
    """The version's index; one of the earlier layout as the same record, without checksums."""
    if os.path.exists(os.path.join(path, _INDEX)) or not os.path.exists(os.path.join(path, _OLD_INDEX)):
        index = distml.load(os.path.join(path, _INDEX), map_location="cpu")
        if index["format"] > _FORMAT:
            raise CheckpointError(f"{path}: checkpoint format {index['format']} is newer than this distml's {_FORMAT}")
        return index
    old = distml.load(os.path.join(path, _OLD_INDEX), map_location="cpu")
    sharded = old.get("sharded", {"values": {}, "files": {}})
    return {"world_size": old["world_size"], "block": None, "state": old["state"], "tensors": {},
            "files": {name: (size, None) for name, size in sharded["files"].items()}, "sharded": sharded["values"]}


class _Reader:
    """Reads tensors, and element ranges of them, from a checkpoint version's data files (each opened
    once, read with plain positional reads into the destination), checking every block it reads against
    the index's checksums; counts the bytes it read per file in `bytes_read`."""

    def __init__(self, path, index, stack):
        self.path, self.index, self.stack = path, index, stack
        self.handles, self.bytes_read = {}, {}

    def _open(self, name):
        if name not in self.handles:
            file = os.path.join(self.path, name)
            expected = self.index["files"][name][0]
            if not os.path.isfile(file):
                raise CheckpointError(f"{file}: shard file missing (the checkpoint's index lists it)")
            if os.path.getsize(file) != expected:
                raise CheckpointError(f"{file} is truncated or corrupt: {os.path.getsize(file)} bytes, "
                                      f"the checkpoint's index says {expected}")
            f = self.stack.enter_context(open(file, "rb", buffering=0))
            try:
                (length,) = struct.unpack("<Q", f.read(8))
                if length > expected - 8:
                    raise ValueError(f"a header of {length} bytes")
                header = json.loads(f.read(length))
            except ValueError as error:  # JSON's and Unicode's errors are ValueErrors
                raise CheckpointError(f"{file} is corrupt: unreadable safetensors file ({str(error)[:200]})") from error
            self.handles[name] = f, 8 + length, header
        return self.handles[name]

    def read_into(self, name, key, start, out):
        """Bytes start.. of tensor `key` of data file `name` into `out` (a byte memoryview), block by block,
        each checked against its CRC-32."""
        f, base, header = self._open(name)
        file = os.path.join(self.path, name)
        entry = header.get(key) if isinstance(header, dict) else None
        if not isinstance(entry, dict) or "data_offsets" not in entry:
            raise CheckpointError(f"{file} is corrupt: it holds no tensor {key!r}, which the checkpoint's index lists")
        first, last = entry["data_offsets"]
        stop = start + len(out)
        if stop > last - first:
            raise CheckpointError(f"{file} is corrupt: tensor {key!r} has {last - first} bytes, the index needs {stop}")
        crcs = self.index["files"][name][1]
        if crcs is None:  # the layout before checksums
            _read_exactly(f, base + first + start, out, file)
            self.bytes_read[name] = self.bytes_read.get(name, 0) + len(out)
            return
        block = self.index["block"]
        for k in range(start // block, -(-stop // block)):
            a, b = k * block, min((k + 1) * block, last - first)
            inside = start <= a and b <= stop
            buffer = out[a - start:b - start] if inside else memoryview(bytearray(b - a))
            _read_exactly(f, base + first + a, buffer, file)
            if zlib.crc32(buffer) != crcs[key][k]:
                raise CheckpointError(f"{file} is corrupt: tensor {key!r} does not match its checksum "
                                      f"(bytes {a}..{b} of the tensor)")
            if not inside:
                lo, hi = max(a, start), min(b, stop)
                out[lo - start:hi - start] = buffer[lo - a:hi - a]
            self.bytes_read[name] = self.bytes_read.get(name, 0) + b - a

    def replicated(self, key, current):
        """Value `key`'s saved state, its tensors read into those at the same places of `current` (the
        value's state_dict() now) where shape and dtype agree, else into new ones."""
        refs = self.index["tensors"]
        return _rebuild(self.index["state"][key],
                        lambda path, leaf: self._tensor(refs[path], _at(current, path[1:])) if path in refs else leaf,
                        (key,))

    def _tensor(self, ref, dest):
        name, key, shape, dtype = ref
        dtype = _np_dtype(dtype)
        fits = (isinstance(dest, Tensor) and dest.is_cpu and dest.array.shape == tuple(shape)
                and dest.array.dtype == dtype and dest.array.flags.c_contiguous and dest.array.flags.writeable)
        out = dest if fits else Tensor(np.empty(shape, dtype))
        self.read_into(name, key, 0, _bytes(out.array))
        return out

    def read(self, key, index, lo, hi):
        """(flat, other) for elements lo..hi of parameter `index` of sharded value `key`, as
        load_sharded_state_dict asks; None if the checkpoint holds no state for it."""
        value = self.index["sharded"][key]
        tensors, other = value["tensors"].get(index), value["other"].get(index)
        if tensors is None and other is None:
            return None
        flat = {name: self._range(name, entry, lo, hi) for name, entry in (tensors or {}).items()}
        return flat, dict(other or {})

    def _range(self, name, entry, lo, hi):
        shape, dtype, chunks = entry
        out = np.empty(hi - lo, _np_dtype(dtype))
        view, size, covered = _bytes(out), out.itemsize, 0
        for file, file_key, start, stop in chunks:
            a, b = max(lo, start), min(hi, stop)
            if a < b:
                self.read_into(file, file_key, (a - start) * size, view[(a - lo) * size:(b - lo) * size])
                covered += b - a
        if covered != hi - lo:
            raise CheckpointError(f"{self.path}: the shard files hold {covered} of elements {lo}..{hi} of {name!r}")
        return out

    def whole(self, key):
        """The sharded value's whole state dict, as one unsharded optimizer's (for a target without
        load_sharded_state_dict)."""
        value = self.index["sharded"][key]
        state = {}
        for index in sorted(set(value["tensors"]) | set(value["other"])):
            shapes = {name: entry[0] for name, entry in value["tensors"].get(index, {}).items()}
            numel = int(np.prod(next(iter(shapes.values())))) if shapes else 0
            flat, other = self.read(key, index, 0, numel)
            state[index] = {**other, **{name: distml.from_numpy(array.reshape(shapes[name]))
                                        for name, array in flat.items()}}
        return {"state": state, **value["common"]}


def _read_exactly(f, offset, out, file):
    f.seek(offset)
    while len(out):
        count = f.readinto(out)
        if not count:
            raise CheckpointError(f"{file} is truncated: it ends at byte {offset}")
        out, offset = out[count:], offset + count


def _at(value, path):
    """What `value` holds at `path` (keys and indices), or None."""
    for p in path:
        if isinstance(value, Mapping):
            value = value.get(p)
        elif isinstance(value, (list, tuple)) and isinstance(p, int) and 0 <= p < len(value):
            value = value[p]
        else:
            return None
    return value


def load(state_dict, checkpoint_id):
    """Load the newest checkpoint in `checkpoint_id` into `state_dict` in place, on any number of ranks:
    stateful values through `load_state_dict` (sharded ones through `load_sharded_state_dict`, reading
    only this rank's ranges), plain values by replacing them in the dict. Returns the bytes this rank
    read per data file.

        bytes_read = dcp.load({"model": net, "optimizer": zero, "step": 0}, "ckpt")
    """
    if not exists(checkpoint_id):
        raise FileNotFoundError(f"no checkpoint in {checkpoint_id!r} (expected {os.path.join(checkpoint_id, _LATEST)})")
    rank, _ = _rank_and_world()
    path = _latest(checkpoint_id)
    index = _read_index(path)
    replicated, sharded = index["state"], index["sharded"]
    own_path = os.path.join(path, f"rng-{rank}.distml")
    own = distml.load(own_path, map_location="cpu") if os.path.exists(own_path) else {}
    missing = [key for key, value in state_dict.items()
               if key not in replicated and key not in sharded and key not in own
               and not (_per_rank(value) and rank >= index["world_size"])]
    if missing:
        raise KeyError(f"checkpoint.load: {checkpoint_id!r} has no {missing}; it holds "
                       f"{sorted(replicated) + sorted(sharded) + sorted(own)}")
    with contextlib.ExitStack() as stack:
        reader = _Reader(path, index, stack)
        for key, value in list(state_dict.items()):
            if _per_rank(value):
                if key in own:  # ranks from the saved world size on keep their own streams
                    value.load_state_dict(own[key])
            elif key in sharded and hasattr(value, "load_sharded_state_dict"):
                value.load_sharded_state_dict(sharded[key]["common"],
                                              lambda index, lo, hi, key=key: reader.read(key, index, lo, hi))
            elif key in sharded:
                value.load_state_dict(reader.whole(key))
            elif hasattr(value, "load_state_dict"):
                current = value.state_dict() if hasattr(value, "state_dict") else None
                value.load_state_dict(reader.replicated(key, current))
            else:
                state_dict[key] = reader.replicated(key, None)
    return reader.bytes_read
