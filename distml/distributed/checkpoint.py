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
on keep theirs. An optimizer whose state is sharded over the ranks (ZeRO) fits in by gathering its
state in `state_dict()` and taking its own shard in `load_state_dict()`.

Layout: `<checkpoint_id>/<version>/shared.distml`, `<checkpoint_id>/<version>/rng-<rank>.distml` and
`<checkpoint_id>/latest`, which names the newest complete version; it is replaced atomically once
every rank's files are on disk, so a job killed while saving resumes from the previous checkpoint.
"""
import os
import random
import shutil

import numpy as np

import distml
import distml.distributed as dist
from distml.serialization import write_atomically
from distml.utils.data import DistributedSampler, StatefulDataLoader

_LATEST = "latest"
_SHARED = "shared.distml"


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
    shared = {key: value.state_dict() if hasattr(value, "state_dict") else value
              for key, value in state_dict.items() if not _per_rank(value)}
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
        distml.save({"world_size": world_size, "state": shared}, os.path.join(path, _SHARED))
    version = _broadcast(version)
    path = os.path.join(checkpoint_id, version)
    if own:
        distml.save(own, os.path.join(path, f"rng-{rank}.distml"))
    _barrier()
    if rank == 0:
        write_atomically(os.path.join(checkpoint_id, _LATEST), lambda f: f.write(version.encode() + b"\n"))
        for name in os.listdir(checkpoint_id):
            if name != version and name.startswith("v") and name[1:].isdigit():
                shutil.rmtree(os.path.join(checkpoint_id, name), ignore_errors=True)
    _barrier()


def load(state_dict, checkpoint_id):
    """Load the newest checkpoint in `checkpoint_id` into `state_dict` in place, on any number of ranks:
    stateful values through `load_state_dict`, plain values by replacing them in the dict."""
    if not exists(checkpoint_id):
        raise FileNotFoundError(f"no checkpoint in {checkpoint_id!r} (expected {os.path.join(checkpoint_id, _LATEST)})")
    rank, _ = _rank_and_world()
    path = _latest(checkpoint_id)
    saved = distml.load(os.path.join(path, _SHARED), map_location="cpu")
    shared = saved["state"]
    own_path = os.path.join(path, f"rng-{rank}.distml")
    own = distml.load(own_path, map_location="cpu") if os.path.exists(own_path) else {}
    missing = [key for key, value in state_dict.items()
               if key not in shared and not (_per_rank(value) and rank >= saved["world_size"])
               and key not in own]
    if missing:
        raise KeyError(f"checkpoint.load: {checkpoint_id!r} has no {missing}; it holds {sorted(shared) + sorted(own)}")
    for key, value in list(state_dict.items()):
        if _per_rank(value):
            if key in own:  # ranks from the saved world size on keep their own streams
                value.load_state_dict(own[key])
        elif hasattr(value, "load_state_dict"):
            value.load_state_dict(shared[key])
        else:
            state_dict[key] = shared[key]
