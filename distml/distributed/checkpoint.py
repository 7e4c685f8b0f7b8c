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
are. Everything but `RNGState` is the same on every rank in data-parallel training, so rank 0 writes
it once; each rank writes its own RNG state. A checkpoint written on N ranks loads on M: the data
position is global (see DistributedSampler), ranks below N get their RNG state back and ranks from N
on keep theirs.

State sharded over the ranks (ZeroRedundancyOptimizer, or any value with `sharded_state_dict()` and
`load_sharded_state_dict()`) is never gathered: each rank writes its own elements to
`shard-<rank>.safetensors` (one flat tensor per parameter and state name), and the shared file
records which element range of which tensor each file holds. On load each rank reads, from the
memory-mapped files, only the ranges its new shard needs (`safe_open(...).get_slice(key)[lo:hi]`).
A value without `load_sharded_state_dict` (a plain optimizer) gets the whole state assembled.

Layout: `<checkpoint_id>/<version>/shared.distml`, `rng-<rank>.distml` and `shard-<rank>.safetensors`
in it, and `<checkpoint_id>/latest`, which names the newest complete version; it is replaced
atomically once every rank's files are on disk, so a job killed while saving resumes from the
previous checkpoint. A missing, truncated or corrupt shard file raises CheckpointError naming it.
"""
import contextlib
import json
import os
import random
import shutil
import struct

import numpy as np

import distml
import distml.distributed as dist
from distml.dtypes import bfloat16
from distml.serialization import CheckpointError, write_atomically
from distml.utils.data import DistributedSampler, StatefulDataLoader

_LATEST = "latest"
_SHARED = "shared.distml"
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


def _barrier():
    if dist.is_initialized():
        dist.barrier()


def _broadcast(value):
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _per_rank(value):
    return getattr(value, "per_rank", False)


def _check_data_position(state):
    """Ranks must stop at the same place in the data, or the resumed epoch would skip or repeat samples."""
    if not dist.is_initialized():
        return
    positions = {key: value.state_dict() for key, value in state.items()
                 if isinstance(value, (StatefulDataLoader, DistributedSampler))}
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, positions)
    for other, theirs in enumerate(gathered):
        if theirs != gathered[0]:
            raise RuntimeError(f"checkpoint.save: ranks are at different places in the data: rank 0 has "
                               f"{gathered[0]}, rank {other} has {theirs}; call save at the same step on every rank")


def exists(checkpoint_id):
    """Whether `checkpoint_id` holds a complete checkpoint."""
    return os.path.isfile(os.path.join(checkpoint_id, _LATEST))


def _latest(checkpoint_id):
    with open(os.path.join(checkpoint_id, _LATEST)) as f:
        return os.path.join(checkpoint_id, f.read().strip())


def save(state_dict, checkpoint_id):
    """Write `state_dict` (name -> stateful object or plain value) as a new version of the
    checkpoint in directory `checkpoint_id`; every rank calls it at the same step."""
    rank, world_size = _rank_and_world()
    _check_data_position(state_dict)
    sharded = {key: value.sharded_state_dict() for key, value in state_dict.items()
               if hasattr(value, "sharded_state_dict")}
    shared = {key: value.state_dict() if hasattr(value, "state_dict") else value
              for key, value in state_dict.items() if not _per_rank(value) and key not in sharded}
    own = {key: value.state_dict() for key, value in state_dict.items() if _per_rank(value)}
    version = None
    if rank == 0:
        os.makedirs(checkpoint_id, exist_ok=True)
        number = 0
        if exists(checkpoint_id):
            number = int(os.path.basename(_latest(checkpoint_id)).lstrip("v")) + 1
        version = f"v{number}"
        path = os.path.join(checkpoint_id, version)
        shutil.rmtree(path, ignore_errors=True)  # left by a save that was killed
        os.makedirs(path)
    version = _broadcast(version)
    path = os.path.join(checkpoint_id, version)
    if own:
        distml.save(own, os.path.join(path, f"rng-{rank}.distml"))
    layout = _write_shard(path, rank, sharded) if sharded else None
    if sharded and dist.is_initialized():
        layouts = [None] * world_size
        dist.all_gather_object(layouts, layout)
    else:
        layouts = [layout]
    if rank == 0:
        shared_file = {"world_size": world_size, "state": shared}
        if sharded:
            shared_file["sharded"] = _merge_layouts(layouts, {key: common for key, (common, _) in sharded.items()})
        distml.save(shared_file, os.path.join(path, _SHARED))
    _barrier()
    if rank == 0:
        write_atomically(os.path.join(checkpoint_id, _LATEST), lambda f: f.write(version.encode() + b"\n"))
        for name in os.listdir(checkpoint_id):
            if name != version and name.startswith("v") and name[1:].isdigit():
                shutil.rmtree(os.path.join(checkpoint_id, name), ignore_errors=True)
    _barrier()


def _write_shard(path, rank, sharded):
    """Write this rank's elements of every sharded value to shard-<rank>.safetensors, one flat tensor
    per (value, parameter index, state name, first element); return what the file holds:
    {"file", "size", "chunks": [(key, index, name, shape, dtype, lo, hi, key in the file)],
    "other": [(key, index, {name: value})]}."""
    arrays, chunks, other = {}, [], []
    for key, (_, spans) in sharded.items():
        for index, lo, hi, shape, flat, rest in spans:
            for name, array in flat.items():
                if array.size != hi - lo:
                    raise ValueError(f"checkpoint.save: {key}'s state {name!r} of parameter {index} has "
                                     f"{array.size} elements for the range {lo}..{hi}")
                file_key = f"{key}/{index}/{name}/{lo}"
                arrays[file_key] = array
                chunks.append((key, index, name, tuple(shape), _dtype_name(array), lo, hi, file_key))
            if rest:
                other.append((key, index, rest))
    name = f"shard-{rank}.safetensors"
    size = _write_safetensors(os.path.join(path, name), arrays)
    return {"file": name, "size": size, "chunks": chunks, "other": other}


def _dtype_name(array):
    if array.dtype != bfloat16.np and array.dtype not in _CODES:
        raise TypeError(f"checkpoint.save: cannot store a sharded tensor of dtype {array.dtype}")
    return str(array.dtype)


def _write_safetensors(path, arrays):
    """Write 1-D `arrays` (name -> array) as a safetensors file, streaming each array's bytes (no
    copy of the whole file in memory); return the file's size."""
    header, offset = {}, 0
    for key, array in arrays.items():
        code = "U16" if array.dtype == bfloat16.np else _CODES[array.dtype]
        header[key] = {"dtype": code, "shape": [array.size], "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-aligned, as the safetensors library writes it

    def write(f):
        f.write(struct.pack("<Q", len(text)) + text)
        for array in arrays.values():
            f.write(np.ascontiguousarray(array).view(np.uint8))

    write_atomically(path, write)
    return 8 + len(text) + offset


def _merge_layouts(layouts, commons):
    """Every rank's `_write_shard` result as the shared file's index of the sharded values:
    {key: {"common", "tensors": {index: {name: (shape, dtype, [(file, file key, lo, hi)])}},
    "other": {index: {name: value}}}, "files": {file: size}}."""
    merged = {key: {"common": common, "tensors": {}, "other": {}} for key, common in commons.items()}
    files = {}
    for layout in layouts:
        files[layout["file"]] = layout["size"]
        for key, index, name, shape, dtype, lo, hi, file_key in layout["chunks"]:
            entry = merged[key]["tensors"].setdefault(index, {}).setdefault(name, (shape, dtype, []))
            entry[2].append((layout["file"], file_key, lo, hi))
        for key, index, rest in layout["other"]:
            merged[key]["other"].setdefault(index, rest)  # the same on every rank holding part of the parameter
    return {"values": merged, "files": files}


class _ShardReader:
    """Reads element ranges of the sharded tensors of a checkpoint version from its memory-mapped
    safetensors files, opening each file once; counts the bytes it read per file in `bytes_read`."""

    def __init__(self, path, index, stack):
        self.path, self.index, self.stack = path, index, stack
        self.handles, self.bytes_read = {}, {}

    def _open(self, name):
        if name not in self.handles:
            import safetensors

            file = os.path.join(self.path, name)
            expected = self.index["files"][name]
            if not os.path.isfile(file):
                raise CheckpointError(f"{file}: shard file missing (the checkpoint's index lists it)")
            if os.path.getsize(file) != expected:
                raise CheckpointError(f"{file} is truncated or corrupt: {os.path.getsize(file)} bytes, "
                                      f"the checkpoint's index says {expected}")
            try:
                self.handles[name] = self.stack.enter_context(safetensors.safe_open(file, framework="numpy"))
            except Exception as error:  # the library's SafetensorError on a damaged header
                raise CheckpointError(f"{file} is corrupt: unreadable safetensors file "
                                      f"({type(error).__name__}: {str(error)[:200]})") from error
        return self.handles[name]

    def read(self, key, index, lo, hi):
        """(flat, other) for elements lo..hi of parameter `index` of value `key`, as
        load_sharded_state_dict asks; None if the checkpoint holds no state for it."""
        value = self.index["values"][key]
        tensors, other = value["tensors"].get(index), value["other"].get(index)
        if tensors is None and other is None:
            return None
        flat = {name: self._range(name, entry, lo, hi) for name, entry in (tensors or {}).items()}
        return flat, dict(other or {})

    def _range(self, name, entry, lo, hi):
        shape, dtype, chunks = entry
        dtype = bfloat16.np if dtype == "bfloat16" else np.dtype(dtype)
        parts = []
        for file, file_key, start, stop in chunks:
            a, b = max(lo, start), min(hi, stop)
            if a >= b:
                continue
            handle = self._open(file)
            try:
                part = _read_slice(handle, file_key, a - start, b - start)
            except Exception as error:
                raise CheckpointError(f"{os.path.join(self.path, file)} is corrupt: cannot read {file_key!r} "
                                      f"({type(error).__name__}: {str(error)[:200]})") from error
            parts.append((a - lo, part.view(dtype)))
            self.bytes_read[file] = self.bytes_read.get(file, 0) + part.nbytes
        if sum(part.size for _, part in parts) != hi - lo:
            raise CheckpointError(f"{self.path}: the shard files hold {sum(p.size for _, p in parts)} of elements "
                                  f"{lo}..{hi} of {name!r}")
        if len(parts) == 1:  # the range lies in one saved chunk: its slice is the array, no second copy
            return parts[0][1]
        out = np.empty(hi - lo, dtype)
        for offset, part in parts:
            out[offset:offset + part.size] = part
        return out

    def whole(self, key):
        """The value's whole state dict, as one unsharded optimizer's (for a target without
        load_sharded_state_dict)."""
        value = self.index["values"][key]
        state = {}
        for index in sorted(set(value["tensors"]) | set(value["other"])):
            shapes = {name: entry[0] for name, entry in value["tensors"].get(index, {}).items()}
            numel = int(np.prod(next(iter(shapes.values())))) if shapes else 0
            flat, other = self.read(key, index, 0, numel)
            state[index] = {**other, **{name: distml.from_numpy(array.reshape(shapes[name]))
                                        for name, array in flat.items()}}
        return {"state": state, **value["common"]}


def _read_slice(handle, file_key, lo, hi):
    """Elements lo..hi of the 1-D tensor `file_key`: safetensors copies out only those bytes of the mapping."""
    return handle.get_slice(file_key)[lo:hi]


def load(state_dict, checkpoint_id):
    """Load the newest checkpoint in `checkpoint_id` into `state_dict` in place, on any number of ranks:
    stateful values through `load_state_dict` (sharded ones through `load_sharded_state_dict`, reading
    only this rank's ranges), plain values by replacing them in the dict. Returns the bytes of sharded
    state this rank read, per shard file."""
    if not exists(checkpoint_id):
        raise FileNotFoundError(f"no checkpoint in {checkpoint_id!r} (expected {os.path.join(checkpoint_id, _LATEST)})")
    rank, _ = _rank_and_world()
    path = _latest(checkpoint_id)
    saved = distml.load(os.path.join(path, _SHARED), map_location="cpu")
    shared = saved["state"]
    own_path = os.path.join(path, f"rng-{rank}.distml")
    own = distml.load(own_path, map_location="cpu") if os.path.exists(own_path) else {}
    sharded = saved["sharded"]["values"] if "sharded" in saved else {}
    missing = [key for key, value in state_dict.items()
               if key not in shared and key not in sharded and not (_per_rank(value) and rank >= saved["world_size"])
               and key not in own]
    if missing:
        raise KeyError(f"checkpoint.load: {checkpoint_id!r} has no {missing}; it holds "
                       f"{sorted(shared) + sorted(sharded) + sorted(own)}")
    with contextlib.ExitStack() as stack:
        reader = _ShardReader(path, saved.get("sharded"), stack)
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
                value.load_state_dict(shared[key])
            else:
                state_dict[key] = shared[key]
    return reader.bytes_read
